"""End to end over loopback: the server under an unlucky operator and a hostile peer.

The caller's first words survive a slow provider; a stream token opens one
stream for one call, once; streams that never start or go quiet end; a
provider that refuses, stalls or never confirms ends the call fast and by
name; shutdown names its calls; a flood of refusals writes a few lines.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from patter_anyio import Patter
from tests.fakes.carrier import (
    carrier_stream,
    local_ws_url,
    run_in_asyncio_thread,
    stream_signature,
    ulaw_tone,
)
from tests.fakes.fake_openai_realtime import FakeOpenAIRealtime
from tests.fakes.provider_servers import provider_server
from tests.test_e2e_echo import AUTH_TOKEN, CALL_SID
from tests.test_e2e_realtime import (
    OPENAI_KEY,
    Recorded,
    answer_call,
    serving,
    twilio_phone,
    twilio_rest,
)

pytestmark = pytest.mark.anyio

FRAMES = 600
FRAME_BYTES = 160


def tagged_frames(count: int = FRAMES) -> list[bytes]:
    """20 ms mu-law frames of a 300 Hz tone, each carrying its index in its first bytes."""
    tone = ulaw_tone(300, 20)
    return [i.to_bytes(2, "big") + tone[2:] for i in range(count)]


def signed(stream_url: str) -> dict[str, str]:
    return {"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)}


# -- 1. the caller's first words -----------------------------------------------------------


@pytest.mark.parametrize("ready_delay", [0.0, 0.3, 1.0])
async def test_every_caller_frame_reaches_a_slow_provider(
    anyio_backend: str, ready_delay: float
) -> None:
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY, ready_delay=ready_delay)
    seen = Recorded()
    frames = tagged_frames()
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(provider="openai")
        async with serving(phone, agent, seen) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> None:
                async with carrier_stream(
                    local_ws_url(port, stream_url), headers=signed(stream_url)
                ) as call:
                    # Twilio sends media right after start, in real time: the
                    # first 1.5 s go out before a slow provider is ready.
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await call.send_audio(b"".join(frames[:75]), speed=1)
                    await call.send_audio(b"".join(frames[75:]), speed=10)
                    await call.wait(
                        lambda: len(fake.audio_in) >= FRAMES * FRAME_BYTES,
                        what="every caller frame at the provider",
                    )
                    await call.stop()
                    await call.wait(call.closed.is_set, what="the server closing the stream")

            await run_in_asyncio_thread(carrier, timeout=30)
            end = await seen.wait_ended()

    # mu-law passes through untouched: every tagged frame, once, in order.
    audio_in = bytes(fake.audio_in)
    got = [int.from_bytes(audio_in[i : i + 2], "big") for i in range(0, len(audio_in), 160)]
    assert got == list(range(FRAMES))
    assert audio_in == b"".join(frames)
    assert end["reason"] == "carrier_stop"
    assert end["frames_in"] == FRAMES and end["frames_dropped"] == 0
    # Held while the provider got ready: about its delay's worth of frames.
    if ready_delay >= 0.3:
        assert end["frames_buffered"] >= ready_delay * 50 * 0.8, end
    # The stream token is ours: the application never sees it.
    assert "stream_token" not in seen.starts[0]["custom_parameters"]


# -- 2. one stream per call, once ----------------------------------------------------------


async def _refused_stream(url: str, headers: dict[str, str], start: dict[str, Any]) -> int | None:
    """Open a stream, send connected + start, return the server's close code."""
    async with connect(url, additional_headers=headers, open_timeout=5) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps(start))
        try:
            with anyio.fail_after(5):
                while True:
                    await ws.recv()
        except ConnectionClosed:
            pass
        return ws.close_code


def start_message(call_id: str, params: dict[str, str]) -> dict[str, Any]:
    return {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": "MZ" + "7" * 32,
        "start": {
            "accountSid": "AC" + "0" * 32,
            "streamSid": "MZ" + "7" * 32,
            "callSid": call_id,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": params,
        },
    }


async def test_a_token_opens_one_stream_for_its_own_call_once(anyio_backend: str) -> None:
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    seen = Recorded()
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(provider="openai")
        async with serving(phone, agent, seen) as port:
            stream_url, params = await answer_call(port)
            url = local_ws_url(port, stream_url)
            other_public = stream_url.replace(CALL_SID, "CA" + "9" * 32)
            other_url = local_ws_url(port, other_public)

            async def carrier() -> dict[str, Any]:
                codes: dict[str, Any] = {}
                async with carrier_stream(url, headers=signed(stream_url)) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(lambda m: m.get("type") == "session.update")
                    codes["connections_live"] = provider.connections
                    # The same token and call again, while the call is live.
                    codes["second"] = await _refused_stream(
                        url, signed(stream_url), start_message(CALL_SID, params)
                    )
                    # The token on another call's path, start naming our call.
                    codes["path_mismatch"] = await _refused_stream(
                        other_url, signed(other_public), start_message(CALL_SID, params)
                    )
                    codes["connections_after"] = provider.connections
                    await call.send_audio(ulaw_tone(300, 200))
                    await call.stop()
                    await call.wait(call.closed.is_set, what="the server closing the stream")
                # The call is over: its token is spent.
                codes["replay"] = await _refused_stream(
                    url, signed(stream_url), start_message(CALL_SID, params)
                )
                codes["connections_end"] = provider.connections
                return codes

            codes = await run_in_asyncio_thread(carrier, timeout=30)
            with anyio.fail_after(5):
                while len(seen.ends) < 4:
                    await anyio.sleep(0.01)

    assert codes["connections_live"] == 1
    assert codes["second"] == 1008
    assert codes["path_mismatch"] == 1008
    assert codes["replay"] == 1008
    # None of the three refused streams opened a provider connection.
    assert codes["connections_after"] == 1 and codes["connections_end"] == 1
    reasons = sorted(e["reason"] for e in seen.ends)
    assert reasons == ["carrier_stop", "token_rejected", "token_rejected", "token_rejected"]
    assert len(seen.starts) == 1


# -- 3. streams that never start, calls that go quiet --------------------------------------


async def test_a_stream_without_start_is_closed_at_the_start_timeout(anyio_backend: str) -> None:
    seen = Recorded()
    with twilio_rest() as rest:
        phone = twilio_phone(rest)
        async with serving(phone, phone.agent(provider="echo"), seen, start_timeout=0.5) as port:
            stream_url, _ = await answer_call(port)

            async def peer() -> tuple[int | None, float]:
                loop = anyio.current_time
                async with connect(
                    local_ws_url(port, stream_url), additional_headers=signed(stream_url)
                ) as ws:
                    begin = loop()
                    await ws.send(json.dumps({"event": "connected", "protocol": "Call"}))
                    try:
                        with anyio.fail_after(5):
                            while True:  # pings and unknown events do not count
                                await ws.ping()
                                await ws.send(json.dumps({"event": "whatever"}))
                                await anyio.sleep(0.1)
                    except ConnectionClosed:
                        pass
                    return ws.close_code, loop() - begin

            code, elapsed = await run_in_asyncio_thread(peer)
            end = await seen.wait_ended()
    assert code == 1008
    assert 0.4 <= elapsed < 2.0, elapsed
    assert end["reason"] == "start_timeout"


async def test_a_started_call_without_media_ends_at_the_media_timeout(anyio_backend: str) -> None:
    seen = Recorded()
    with twilio_rest() as rest:
        phone = twilio_phone(rest)
        agent = phone.agent(provider="echo")
        async with serving(phone, agent, seen, media_timeout=0.6) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> float:
                async with carrier_stream(
                    local_ws_url(port, stream_url), headers=signed(stream_url)
                ) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await call.send_audio(ulaw_tone(300, 200))
                    begin = anyio.current_time()
                    await call.wait(call.closed.is_set, what="the server ending the call")
                    return anyio.current_time() - begin

            elapsed = await run_in_asyncio_thread(carrier)
            end = await seen.wait_ended()
    assert 0.4 <= elapsed < 2.5, elapsed
    assert end["reason"] == "media_timeout"
    assert end["frames_in"] == 10


# -- 4. provider failures: fast and named --------------------------------------------------


class _RefusingOpenAI(FakeOpenAIRealtime):
    # OpenAI's answer to a bad key, as its API documents the error shape.
    refusal_body = json.dumps(
        {
            "error": {
                "message": "Incorrect API key provided: sk-e2e-***.",
                "type": "invalid_request_error",
                "code": "invalid_api_key",
            }
        }
    )

    def check_handshake(self, path: str, headers: Any) -> int | None:
        return 401


@pytest.mark.parametrize("failure", ["refused", "silent", "unconfirmed"])
async def test_a_failing_provider_ends_the_call_within_the_set_up_bound(
    anyio_backend: str, failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="patter_anyio")
    seen = Recorded()
    silent = socket.socket()  # accepts TCP (the backlog does), never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    fake = (
        _RefusingOpenAI(api_key=OPENAI_KEY)
        if failure == "refused"
        else FakeOpenAIRealtime(api_key=OPENAI_KEY, confirm_session=False)
    )
    try:
        with provider_server(fake) as provider, twilio_rest() as rest:
            base = (
                f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
                if failure == "silent"
                else provider.base_url + "/v1"
            )
            phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=base)
            agent = phone.agent(
                provider="openai", provider_timeout=1.0, error_message="Sorry, try again later."
            )
            async with serving(phone, agent, seen) as port:
                stream_url, params = await answer_call(port)

                async def carrier() -> float:
                    async with carrier_stream(
                        local_ws_url(port, stream_url), headers=signed(stream_url)
                    ) as call:
                        await call.start(call_id=CALL_SID, custom_parameters=params)
                        begin = anyio.current_time()
                        sender = asyncio.create_task(call.send_audio(ulaw_tone(300, 3000)))
                        await call.wait(call.closed.is_set, what="the server ending the call")
                        elapsed = anyio.current_time() - begin
                        sender.cancel()
                        return elapsed

                elapsed = await run_in_asyncio_thread(carrier)
                end = await seen.wait_ended()
            updates = [r.form for r in list(rest.requests) if r.method == "POST"]
    finally:
        silent.close()
    assert end["reason"] == "provider_error", end
    bound = 0.3 if failure == "refused" else 1.6
    assert elapsed < bound, elapsed
    # One warning, naming the provider's words and what to check.
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"call {CALL_SID} ended: the AI provider failed: {end['detail']} "
        "(check the provider's key, model and base URL)"
    ], warnings
    if failure == "refused":
        assert end["detail"] == "HTTP 401: Incorrect API key provided: sk-e2e-***.", end
    else:
        assert "not ready within 1 s" in end["detail"], end
    # The caller hears the error message, then the call hangs up.
    (update,) = updates
    assert update["Twiml"] == (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<Response><Say>Sorry, try again later.</Say><Hangup /></Response>"
    ), update


# -- shutdown and floods --------------------------------------------------------------------


async def _stopped_mid_call(
    phone: Patter, seen: Recorded, stop: Any, **options: Any
) -> tuple[float, int | None]:
    """A live echo call (media flowing) while ``stop()`` runs; returns how long
    the call went on after ``stop()`` began, and the server's close code."""
    async with serving(phone, phone.agent(provider="echo"), seen, **options) as port:
        stream_url, params = await answer_call(port)

        async def carrier() -> int | None:
            async with carrier_stream(
                local_ws_url(port, stream_url), headers=signed(stream_url)
            ) as call:
                await call.start(call_id=CALL_SID, custom_parameters=params)
                sender = asyncio.create_task(call.send_audio(ulaw_tone(300, 8000)))
                await call.wait(call.closed.is_set, what="the shutdown ending the call")
                sender.cancel()
                return call.close_code

        result: list[int | None] = []

        async def run_carrier() -> None:
            result.append(await run_in_asyncio_thread(carrier))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_carrier)
            with anyio.fail_after(5):
                while not seen.starts:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.2)
            begin = await stop()
        elapsed = anyio.current_time() - begin
        await seen.wait_ended()
    return elapsed, result[0]


async def test_shutdown_ends_live_calls_as_server_shutdown(anyio_backend: str) -> None:
    seen = Recorded()
    with twilio_rest() as rest:
        phone = twilio_phone(rest)

        async def stop() -> float:
            begin = anyio.current_time()
            phone.stop()
            return begin

        elapsed, code = await _stopped_mid_call(phone, seen, stop, shutdown_grace=0.5)
    # Live for the grace time (0.5 s), then ended by name, once.
    assert 0.4 <= elapsed < 3.0, elapsed
    assert code == 1001
    assert seen.ends[0]["reason"] == "server_shutdown"


async def test_a_flood_of_refused_upgrades_writes_a_few_lines(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="patter_anyio")
    seen = Recorded()
    with twilio_rest() as rest:
        phone = twilio_phone(rest)
        async with serving(phone, phone.agent(provider="echo"), seen) as port:
            stream_url, _ = await answer_call(port)
            url = local_ws_url(port, stream_url)

            async def flood() -> int:
                refused = 0
                for _ in range(300):
                    try:
                        async with connect(url, additional_headers={"X-Twilio-Signature": "bad"}):
                            pass
                    except InvalidStatus as exc:
                        assert exc.response.status_code == 403
                        refused += 1
                return refused

            assert await run_in_asyncio_thread(flood, timeout=60) == 300
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    refusal_lines = [r.getMessage() for r in warnings if "refused" in r.getMessage()]
    assert len(warnings) <= 20, [r.getMessage() for r in warnings]
    # The rest are counted, not lost: the lines account for all 300.
    counted = sum(
        int(line.split()[0]) if line.split()[0].isdigit() else 1 for line in refusal_lines
    )
    assert counted == 300, refusal_lines


async def test_a_second_stop_ends_live_calls_at_once(anyio_backend: str) -> None:
    seen = Recorded()
    with twilio_rest() as rest:
        phone = twilio_phone(rest)

        async def stop_twice() -> float:
            phone.stop()
            await anyio.sleep(0.3)
            assert not seen.ends  # draining: the call goes on
            begin = anyio.current_time()
            phone.stop(immediate=True)  # what a second SIGTERM does
            return begin

        elapsed, code = await _stopped_mid_call(phone, seen, stop_twice, shutdown_grace=30)
    assert elapsed < 3.0, elapsed  # not the 30 s grace
    assert code == 1001
    assert seen.ends[0]["reason"] == "server_shutdown"


async def test_telnyx_caller_hears_the_error_message_then_the_call_hangs_up(
    anyio_backend: str,
) -> None:
    from tests.fakes.carrier import telnyx_webhook
    from tests.fakes.servers import rest_server, telnyx_responder
    from tests.test_e2e_telnyx import (
        CALL_ID,
        CALLEE,
        CALLER,
        SIGNING_KEY,
        actions,
        answer_and_stream,
        call_payload,
        telnyx_phone,
        wait_actions,
    )

    seen = Recorded()
    fake = _RefusingOpenAI(api_key=OPENAI_KEY)
    with provider_server(fake) as provider, rest_server(telnyx_responder) as rest:
        phone = telnyx_phone(
            rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1"
        )
        agent = phone.agent(provider="openai", error_message="Sorry, try again later.")
        async with serving(phone, agent, seen) as port:
            stream = await answer_and_stream(port, rest)

            async def carrier() -> None:
                async with carrier_stream(
                    local_ws_url(port, stream["stream_url"]),
                    headers={"x-telnyx-streaming-auth-token": stream["stream_auth_token"]},
                    carrier="telnyx",
                ) as call:
                    await call.start(call_id=CALL_ID, caller=CALLER, callee=CALLEE)
                    await call.wait(call.closed.is_set, what="the server ending the call")

            await run_in_asyncio_thread(carrier)
            end = await seen.wait_ended()
            (speak,) = await wait_actions(rest, "speak")
            assert actions(rest, "hangup") == []  # not before the speech has ended
            ended = await telnyx_webhook(
                port,
                SIGNING_KEY,
                "call.speak.ended",
                dict(call_payload(), client_state=speak.json["client_state"], status="completed"),
            )
            assert ended.status == 200
            await wait_actions(rest, "hangup")
    assert end["reason"] == "provider_error"
    assert speak.json["payload"] == "Sorry, try again later."


async def test_pipeline_speech_to_text_gets_every_frame_sent_before_its_socket_opened(
    anyio_backend: str,
) -> None:
    from tests.fakes.http_fakes import (
        DeepgramFake,
        deepgram_server,
        pipeline_http_server,
        twilio_stream,
        ulaw_frames,
    )
    from tests.fakes.http_fakes import (
        incoming_call as pipeline_call,
    )
    from tests.test_e2e_pipeline import _assert_tone, _phone

    seen = Recorded()
    # Deepgram answers the opening handshake 500 ms late: the first 25 frames
    # arrive while its socket is not open.
    dg_fake = DeepgramFake(transcript=None, handshake_delay=0.5)
    with pipeline_http_server() as http, deepgram_server(dg_fake) as dg:
        phone = _phone(http, dg)
        agent = phone.agent(provider="pipeline", stt="deepgram", tts="openai")
        async with serving(phone, agent, seen, on_message=lambda m: "unused") as port:
            call_sid = "CA" + "b" * 32
            params = await pipeline_call(port, call_sid)
            async with twilio_stream(port, call_sid, params) as carrier:
                await carrier.start()
                await carrier.media(ulaw_frames(300, 2000))  # 100 frames, real time
                with anyio.fail_after(5):
                    while len(dg.audio) < 100 * 640:
                        await anyio.sleep(0.01)
                await carrier.stop()
            end = await seen.wait_ended()
    # Every frame, converted to 16 kHz linear16 once: 640 bytes each, none lost.
    assert len(dg.audio) == 100 * 640
    _assert_tone(bytes(dg.audio), 16000, 300, "caller audio at Deepgram")
    assert end["frames_in"] == 100 and end["frames_dropped"] == 0
    assert end["frames_buffered"] >= 20, end
