"""OpenAI Realtime with 16-bit PCM at 24 kHz (``provider_audio="pcm24k"``):
the session asks for it both ways, the caller's mu-law reaches the model as
24 kHz PCM with the tone intact, and the model's PCM reaches the caller as
mu-law with its tone intact; every caller frame arrives. The default stays
mu-law passthrough (test_e2e_realtime)."""

from __future__ import annotations

import pytest

from patter_anyio import InvalidOption, Patter
from patter_core.providers import session_config
from patter_core.providers._openai_config import OpenAIRealtimeConfig
from tests.fakes.carrier import (
    CarrierStream,
    carrier_stream,
    local_ws_url,
    run_in_asyncio_thread,
    stream_signature,
    tone_report,
    ulaw_silence,
    ulaw_tone,
)
from tests.fakes.fake_openai_realtime import FakeOpenAIRealtime, tone
from tests.fakes.provider_servers import provider_server
from tests.test_e2e_realtime import (
    AUTH_TOKEN,
    CALL_SID,
    OPENAI_KEY,
    PROMPT,
    Recorded,
    answer_call,
    of_type,
    serving,
    twilio_phone,
    twilio_rest,
)

pytestmark = pytest.mark.anyio


def test_the_agent_option_picks_the_session_format() -> None:
    phone = Patter(openai_key="sk-x", webhook_url="example.test")
    from tests.test_provider_selection import info  # one CallInfo for the selection tests

    for choice, wanted in (("pcmu", "pcmu"), ("pcm24k", "pcm24")):
        agent = phone.agent(provider="openai", provider_audio=choice)
        config = session_config(agent, phone.providers, info(), use_handler=False)
        assert isinstance(config, OpenAIRealtimeConfig) and config.audio_format == wanted
    assert phone.agent(provider="openai").provider_audio == "pcmu"
    with pytest.raises(InvalidOption, match="provider_audio must be 'pcmu' or 'pcm24k'"):
        phone.agent(provider="openai", provider_audio="pcm16")
    with pytest.raises(InvalidOption, match="provider_audio applies to provider='openai' only"):
        Patter().agent(provider="echo", provider_audio="pcm24k")


async def test_a_call_with_pcm24k_is_transcoded_both_ways(anyio_backend: str) -> None:
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    seen = Recorded()
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(provider="openai", system_prompt=PROMPT, provider_audio="pcm24k")
        caller_audio = ulaw_silence(100) + ulaw_tone(300, 600) + ulaw_silence(200)
        answer = tone("pcm24", 600, hz=1000)
        async with serving(phone, agent, seen) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> CarrierStream:
                async with carrier_stream(
                    local_ws_url(port, stream_url),
                    headers={"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)},
                ) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("session.update"))
                    await call.send_audio(caller_audio, speed=4)
                    provider.push(lambda: fake.respond(answer, "One thousand hertz."))
                    await call.wait_played_out(600)
                    await call.stop()
                    return call

            call = await run_in_asyncio_thread(carrier)
            end = await seen.wait_ended()

    update = next(m for m in fake.received if m["type"] == "session.update")
    pcm24 = {"type": "audio/pcm", "rate": 24000}
    assert update["session"]["audio"]["input"]["format"] == pcm24
    assert update["session"]["audio"]["output"]["format"] == pcm24
    # Every caller frame reached the model, as 24 kHz PCM (three samples of
    # two bytes for each mu-law byte), the tone intact.
    assert len(fake.audio_in) == len(caller_audio) * 6
    heard_in = tone_report(bytes(fake.audio_in), rate=24000, pcm16=True)
    assert abs(heard_in.peak_hz - 300) < 5 and heard_in.snr_db >= 30, heard_in
    # The model's PCM reached the caller as mu-law, the tone intact.
    heard_out = tone_report(bytes(call.heard))
    assert abs(heard_out.peak_hz - 1000) < 5 and heard_out.snr_db >= 30, heard_out
    assert end["reason"] == "carrier_stop"
    assert end["metrics"]["frames_in"] == len(caller_audio) // 160
