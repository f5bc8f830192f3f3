"""End to end over loopback: provider behaviour as the providers document it.

The real server, a Twilio carrier stream on its own thread, and fake
providers on 127.0.0.1 (see :mod:`tests.test_e2e_realtime` for the setting).
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

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
from tests.fakes.fake_openai_realtime import FakeOpenAIRealtime
from tests.fakes.provider_servers import Close, provider_server
from tests.test_e2e_echo import AUTH_TOKEN, CALL_SID
from tests.test_e2e_realtime import (
    OPENAI_KEY,
    PROMPT,
    Recorded,
    answer_call,
    hangups,
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


async def test_elevenlabs_goodbye_plays_before_the_hangup(anyio_backend: str) -> None:
    """The agent's own end_call: its goodbye, then the server closes with 1000 at once."""
    fake = FakeElevenLabs(agent_id="agent_bye")
    seen = Recorded()
    goodbye = ulaw_tone(700, 1200)
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, elevenlabs_base_url=provider.base_url)
        agent = phone.agent(provider="elevenlabs", agent_id="agent_bye", system_prompt=PROMPT)
        async with serving(phone, agent, seen) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> tuple[CarrierStream, int, float]:
                async with carrier_stream(
                    local_ws_url(port, stream_url),
                    headers={"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)},
                ) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("conversation_initiation_client_data"))
                    await anyio.sleep(0.2)
                    start = len(call.audio)
                    began = anyio.current_time()
                    provider.push(lambda: [*fake.agent_says("Goodbye!", goodbye), Close(1000, "")])
                    await call.wait(call.closed.is_set, timeout=10, what="the server closing")
                    return call, start, anyio.current_time() - began

            call, start, took = await run_in_asyncio_thread(carrier)
            end = await seen.wait_ended()
            with anyio.fail_after(5):
                while not hangups(rest):
                    await anyio.sleep(0.01)
    # All of the goodbye reached the caller and played (marks echoed) before
    # the server hung up, though the provider had closed at once.
    heard = bytes(call.heard)[start:]
    assert heard[: len(goodbye)] == goodbye
    assert took >= 1.1, took  # 1.2 s of goodbye, played in real time
    assert end["reason"] == "provider_closed"
    assert (end["provider_close_code"], end["provider_close_reason"]) == (1000, "")
    assert hangups(rest) == [{"Status": "completed"}]


async def test_openai_end_call_of_a_cancelled_answer_does_not_hang_up_and_failures_are_logged(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="patter_anyio")
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    seen = Recorded()
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(provider="openai", system_prompt=PROMPT)
        async with serving(phone, agent, seen) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> CarrierStream:
                async with carrier_stream(
                    local_ws_url(port, stream_url),
                    headers={"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)},
                ) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("session.update"))
                    await anyio.sleep(0.2)
                    # The caller interrupted the answer that was calling end_call.
                    provider.push(
                        lambda: fake.function_call(
                            "end_call", "{}", call_id="c1", status="cancelled"
                        )
                    )
                    provider.push(fake.failed_response)
                    await anyio.sleep(0.5)
                    assert not call.closed.is_set()
                    await call.stop()
                    await call.wait(call.closed.is_set, what="the server closing the stream")
                    return call

            await run_in_asyncio_thread(carrier)
            end = await seen.wait_ended()
    assert end["reason"] == "carrier_stop"
    assert not hangups(rest)
    # Nothing answered the cancelled call.
    assert not [m for m in fake.received if m["type"] == "conversation.item.create"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    failed = [w for w in warnings if "provider error (response_failed)" in w]
    assert len(failed) == 1 and f"call={CALL_SID}" in failed[0]
    assert "rate_limit_exceeded" in failed[0]


async def test_openai_session_cap_ends_with_a_closing_line_and_provider_limit(
    anyio_backend: str,
) -> None:
    """A session expiring mid-call that cannot be replaced: a closing line, then provider_limit."""
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    # The cap is 20 s of margin plus about 1.5 s away; the replacement is refused.
    fake.expires_at = [time.time() + 21.5]
    fake.refuse_from = 1
    seen = Recorded()
    closing = ulaw_tone(600, 500)
    said: list[str] = []

    def closing_line(msg: dict[str, Any]) -> list[str]:
        said.append(msg.get("response", {}).get("instructions", ""))
        return fake.begin_response() + fake.audio(closing) + fake.end_response()

    fake.answer = closing_line
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(provider="openai", system_prompt=PROMPT)
        async with serving(phone, agent, seen) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> tuple[CarrierStream, int]:
                async with carrier_stream(
                    local_ws_url(port, stream_url),
                    headers={"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)},
                ) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("session.update"))
                    start = len(call.audio)
                    await call.wait(call.closed.is_set, timeout=10, what="the server closing")
                    return call, start

            call, start = await run_in_asyncio_thread(carrier)
            end = await seen.wait_ended()
            with anyio.fail_after(5):
                while not hangups(rest):
                    await anyio.sleep(0.01)
    assert len(said) == 1 and "time limit" in said[0]
    heard = bytes(call.heard)[start:]
    assert heard[: len(closing)] == closing  # the closing line played whole first
    assert end["reason"] == "provider_limit"
    assert "provider_close_code" not in end  # we ended it before the provider did
    assert provider.connections == 1  # the replacement was refused at the upgrade
    assert hangups(rest) == [{"Status": "completed"}]


async def test_openai_session_is_replaced_before_its_cap_and_the_call_goes_on(
    anyio_backend: str,
) -> None:
    """The session would expire mid-call: a new one gets the history and the call carries on."""
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    now = time.time()
    # Renewal starts 120 s before the end: 2.5 to 3.5 s into the call.
    fake.expires_at = [now + 123.5, now + 3700]
    seen = Recorded()
    first, later = ulaw_tone(1000, 400), ulaw_tone(400, 400)
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(provider="openai", system_prompt=PROMPT)
        async with serving(phone, agent, seen) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> tuple[CarrierStream, int, int]:
                async with carrier_stream(
                    local_ws_url(port, stream_url),
                    headers={"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)},
                ) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("session.update"))
                    provider.push(
                        lambda: (
                            fake.user_transcript("Where is my order?")
                            + fake.respond(first, "It has shipped.")
                        )
                    )
                    await call.wait_played_out(400)
                    # The replacement: a second connection, then ours to the first closes.
                    with anyio.fail_after(8):
                        while not provider.client_close_codes:
                            await call.send_audio(ulaw_silence(20))
                    audio_at_switch = len(fake.audio_in)
                    await call.send_audio(ulaw_tone(300, 400), speed=4)
                    mark = len(call.audio)
                    provider.push(lambda: fake.respond(later, "Anything else?"))
                    await call.wait(lambda: len(call.audio) - mark >= len(later), what="answer")
                    await call.stop()
                    await call.wait(call.closed.is_set, what="the server closing the stream")
                    return call, audio_at_switch, mark

            call, audio_at_switch, mark = await run_in_asyncio_thread(carrier)
            end = await seen.wait_ended()
    assert provider.connections == 2 and provider.client_close_codes[0] == 1000
    updates = [i for i, m in enumerate(fake.received) if m["type"] == "session.update"]
    assert len(updates) == 2
    replayed = [
        (m["item"]["role"], m["item"]["content"][0]["text"])
        for m in fake.received[updates[1] :]
        if m["type"] == "conversation.item.create"
    ]
    assert replayed == [("user", "Where is my order?"), ("assistant", "It has shipped.")]
    # Caller audio after the switch reached the new session, the tone intact.
    after = bytes(fake.audio_in[audio_at_switch:])
    heard_in = tone_report(after)
    assert abs(heard_in.peak_hz - 300) < 5 and heard_in.snr_db >= 30, heard_in
    # The new session's answer reached the caller.
    assert bytes(call.audio[mark : mark + len(later)]) == later
    assert end["reason"] == "carrier_stop" and "provider_close_code" not in end
    said = [(t["role"], t["text"]) for t in seen.transcripts]
    assert ("assistant", "Anything else?") in said
