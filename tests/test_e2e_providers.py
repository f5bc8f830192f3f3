"""End to end over loopback: provider behaviour as the providers document it.

The real server, a Twilio carrier stream on its own thread, and fake
providers on 127.0.0.1 (see :mod:`tests.test_e2e_realtime` for the setting).
"""

from __future__ import annotations

import base64

import anyio
import pytest

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
from tests.fakes.fake_elevenlabs import FakeElevenLabs
from tests.fakes.provider_servers import provider_server
from tests.test_e2e_echo import AUTH_TOKEN, CALL_SID
from tests.test_e2e_realtime import (
    PROMPT,
    Recorded,
    answer_call,
    of_type,
    serving,
    twilio_phone,
    twilio_rest,
)

pytestmark = pytest.mark.anyio


async def test_elevenlabs_pcm_agent_hears_pcm(anyio_backend: str) -> None:
    """An agent whose input is PCM 16 kHz gets 640-byte PCM frames, not mu-law."""
    fake = FakeElevenLabs(agent_id="agent_pcm", input_format="pcm_16000")
    seen = Recorded()
    caller_audio = ulaw_silence(100) + ulaw_tone(300, 600) + ulaw_silence(200)
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, elevenlabs_base_url=provider.base_url)
        agent = phone.agent(provider="elevenlabs", agent_id="agent_pcm", system_prompt=PROMPT)
        async with serving(phone, agent, seen) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> CarrierStream:
                async with carrier_stream(
                    local_ws_url(port, stream_url),
                    headers={"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)},
                ) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("conversation_initiation_client_data"))
                    await anyio.sleep(0.2)  # the metadata reaches the session
                    await call.send_audio(caller_audio, speed=4)
                    await anyio.sleep(0.3)
                    await call.stop()
                    await call.wait(call.closed.is_set, what="the server closing the stream")
                    return call

            await run_in_asyncio_thread(carrier)
            await seen.wait_ended()
    chunks = [m["user_audio_chunk"] for m in fake.received if "user_audio_chunk" in m]
    assert chunks, "no caller audio reached the agent"
    sizes = {len(base64.b64decode(c)) for c in chunks}
    assert sizes == {640}, sizes  # 20 ms of 16 kHz PCM16, every chunk
    pcm = bytes(fake.audio_in)
    # Nearly all of the caller's audio arrived (mu-law 1 byte -> PCM 4 bytes).
    assert len(pcm) >= 4 * (len(caller_audio) - 160 * 5)
    heard = tone_report(pcm, rate=16000, pcm16=True)
    assert abs(heard.peak_hz - 300) < 5 and heard.snr_db >= 30, heard
