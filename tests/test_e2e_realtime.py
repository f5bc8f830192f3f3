"""End to end over loopback: Twilio calls to the realtime providers, and stream security.

The real server (``Patter.serve`` on 127.0.0.1) talks to fake providers
served over real WebSockets (:mod:`tests.fakes.provider_servers`) and to a
fake Twilio REST API; the carrier is a ``websockets`` client on its own
thread (:mod:`tests.fakes.carrier`) that plays the agent's audio in real
time and echoes marks as Twilio does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import pytest
from websockets.exceptions import InvalidStatus

from patter_anyio import Patter
from patter_core.bridge import END_CALL
from tests.fakes.carrier import (
    CarrierStream,
    carrier_stream,
    local_ws_url,
    parse_stream_twiml,
    run_in_asyncio_thread,
    stream_signature,
    tone_report,
    twilio_voice_webhook,
    ulaw_silence,
    ulaw_tone,
)
from tests.fakes.fake_elevenlabs import FakeElevenLabs
from tests.fakes.fake_openai_realtime import FakeOpenAIRealtime
from tests.fakes.provider_servers import Close, ProviderServer, provider_server
from tests.fakes.servers import RunningRestServer, rest_server, twilio_responder
from tests.test_e2e_echo import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CALL_SID,
    CALLEE,
    CALLER,
    HOST,
    incoming_call_form,
)

pytestmark = pytest.mark.anyio

OPENAI_KEY = "sk-e2e-test"
PROMPT = "You take calls for Acme from {caller} to {callee}."
ORDER_TOOL = {
    "name": "lookup_order",
    "description": "Look up an order by number",
    "parameters": {
        "type": "object",
        "properties": {"order_number": {"type": "string"}},
        "required": ["order_number"],
    },
}


def of_type(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda msg: msg.get("type") == kind


@dataclass
class Recorded:
    """What the application's callbacks saw."""

    starts: list[dict[str, Any]] = field(default_factory=list)
    ends: list[dict[str, Any]] = field(default_factory=list)
    transcripts: list[dict[str, Any]] = field(default_factory=list)
    tools: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)

    async def wait_ended(self, timeout: float = 5.0) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            while not self.ends:
                await anyio.sleep(0.01)
        await anyio.sleep(0.1)  # a second on_call_end would have fired by now
        assert len(self.ends) == 1, self.ends
        return self.ends[0]


@contextmanager
def twilio_rest() -> Iterator[RunningRestServer]:
    with rest_server(twilio_responder) as rest:
        yield rest


@asynccontextmanager
async def serving(
    phone: Patter, agent: Any, seen: Recorded, **options: Any
) -> AsyncIterator[int]:
    """Run ``phone.serve`` on an ephemeral port for the block; yield the port.

    ``options`` go to ``serve()`` (timeouts, a voicemail message, ...)."""
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(
                    phone.serve,
                    agent,
                    None,
                    handle_signals=False,
                    on_call_start=seen.starts.append,
                    on_call_end=seen.ends.append,
                    on_transcript=seen.transcripts.append,
                    **options,
                )
            )
            try:
                yield port
            finally:
                phone.stop()


async def answer_call(port: int, call_sid: str = CALL_SID) -> tuple[str, dict[str, str]]:
    answer = await twilio_voice_webhook(
        port, host=HOST, auth_token=AUTH_TOKEN, form=incoming_call_form(call_sid)
    )
    assert answer.status == 200, answer.body
    return parse_stream_twiml(answer.body)


def twilio_phone(rest: RunningRestServer, **providers: Any) -> Patter:
    return Patter(
        twilio_sid=ACCOUNT_SID,
        twilio_token=AUTH_TOKEN,
        webhook_url=HOST,
        twilio_api_base_url=rest.base_url,
        stream_secret="e2e-stream-secret-0123456789",
        **providers,
    )


def hangups(rest: RunningRestServer, call_sid: str = CALL_SID) -> list[dict[str, str]]:
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call_sid}.json"
    return [r.form for r in list(rest.requests) if r.method == "POST" and r.path == path]


# -- OpenAI Realtime -------------------------------------------------------------------------


def expected_session_update() -> dict[str, Any]:
    """PROTOCOLS.md section 5.2, GA shape, mu-law both ways, prompt filled in."""
    return {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "model": "gpt-realtime-2.1",
            "output_modalities": ["audio"],
            "instructions": f"You take calls for Acme from {CALLER} to {CALLEE}.",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": {
                        "type": "server_vad",
                        "threshold": 0.5,
                        "prefix_padding_ms": 300,
                        "silence_duration_ms": 500,
                        "create_response": True,
                        "interrupt_response": True,
                    },
                    "transcription": {"model": "gpt-transcribe"},
                    "noise_reduction": {"type": "near_field"},
                },
                "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
            },
            "tools": [
                {"type": "function", **ORDER_TOOL},
                {
                    "type": "function",
                    "name": "end_call",
                    "description": END_CALL.description,
                    "parameters": dict(END_CALL.parameters),
                },
            ],
            "tool_choice": "auto",
        },
    }


@dataclass
class BargeIn:
    truncate: dict[str, Any]
    expected_end_ms: float


async def test_openai_call(anyio_backend: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="patter_anyio")
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    seen = Recorded()
    goodbye = ulaw_tone(500, 400)

    def spoken_answer(_: dict[str, Any]) -> list[str]:
        # What the model says when asked to answer (after a tool output).
        return (
            fake.begin_response()
            + fake.audio(goodbye)
            + fake.transcript("Goodbye!")
            + fake.end_response()
        )

    fake.answer = spoken_answer

    def lookup(arguments: dict[str, Any], call: dict[str, Any]) -> dict[str, Any]:
        seen.tools.append((arguments, call))
        return {"status": "shipped", "order": arguments.get("order_number")}

    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(
            provider="openai", system_prompt=PROMPT, tools=[dict(ORDER_TOOL, handler=lookup)]
        )
        caller_audio = ulaw_silence(100) + ulaw_tone(300, 600) + ulaw_silence(200)
        answer_1k = ulaw_tone(1000, 600)
        async with serving(phone, agent, seen) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> tuple[CarrierStream, bytes, BargeIn]:
                async with carrier_stream(
                    local_ws_url(port, stream_url),
                    headers={"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)},
                ) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("session.update"))
                    await anyio.sleep(0.2)  # session.updated reaches the bridge
                    await call.send_audio(caller_audio, speed=4)

                    # The caller has spoken: the model hears it and answers.
                    provider.push(
                        lambda: (
                            fake.speech_stopped(900)
                            + fake.user_transcript("Where is my order?")
                            + fake.respond(answer_1k, "Your order has shipped.")
                        )
                    )
                    await call.wait_played_out(600)
                    first_answer = bytes(call.heard)
                    barge_in = await interrupt(call, provider, fake)

                    # A tool call: the handler runs, its output goes back.
                    provider.push(
                        lambda: fake.function_call(
                            "lookup_order", '{"order_number": "A-42"}', call_id="call_lookup"
                        )
                    )
                    await provider.wait_for(of_type("response.create"), timeout=5)

                    # end_call: the REST hangup, then our side closes the stream.
                    provider.push(
                        lambda: fake.function_call(
                            "end_call", '{"reason": "caller is done"}', call_id="call_end"
                        )
                    )
                    await call.wait(call.closed.is_set, what="the server closing the stream")
                    return call, first_answer, barge_in

            call, first_answer, barge_in = await run_in_asyncio_thread(carrier)
            end = await seen.wait_ended()

    # The upgrade: GA endpoint, bearer key, no beta header.
    assert provider.handshakes == ["/v1/realtime?model=gpt-realtime-2.1"]
    headers = provider.handshake_headers[0]
    assert headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert "openai-beta" not in headers

    # session.update: the exact GA shape, first thing sent.
    assert fake.received[0] == expected_session_update()

    # Caller audio: mu-law passed through untouched, the tone intact.
    audio_in = bytes(fake.audio_in)
    assert len(audio_in) >= len(caller_audio) - 160 * 5
    assert caller_audio.endswith(audio_in)
    heard_in = tone_report(audio_in)
    assert abs(heard_in.peak_hz - 300) < 5 and heard_in.snr_db >= 30, heard_in

    # The model's answer reached the caller, bytes unchanged, and sounds right.
    assert first_answer == answer_1k
    heard_out = tone_report(first_answer)
    assert abs(heard_out.peak_hz - 1000) < 5 and heard_out.snr_db >= 30, heard_out

    # Transcripts of both sides reached on_transcript.
    said = [(t["role"], t["text"]) for t in seen.transcripts]
    assert ("user", "Where is my order?") in said
    assert ("assistant", "Your order has shipped.") in said
    assert all(t["call_id"] == CALL_SID for t in seen.transcripts)
    # ... and the log, one INFO line each, on a logger of their own.
    logged = [r.getMessage() for r in caplog.records if r.name == "patter_anyio.transcript"]
    assert f"call={CALL_SID} user: Where is my order?" in logged
    assert f"call={CALL_SID} assistant: Your order has shipped." in logged

    # Barge-in: clear to the carrier, cancel and truncate to the model, cut
    # where the carrier's echoed marks said playback had reached.
    assert len(call.clears) == 1
    assert provider.received_matching(of_type("response.cancel"))
    truncate = barge_in.truncate
    assert truncate["content_index"] == 0 and truncate["item_id"].startswith("item_")
    assert abs(truncate["audio_end_ms"] - barge_in.expected_end_ms) <= 20, barge_in

    # The tool: the handler got the model's arguments, its output went back.
    assert seen.tools == [
        ({"order_number": "A-42"}, {"call_id": CALL_SID, "caller": CALLER, "callee": CALLEE})
    ]
    outputs = [
        m["item"]
        for m in fake.received
        if m["type"] == "conversation.item.create" and m["item"]["type"] == "function_call_output"
    ]
    assert [o["call_id"] for o in outputs[:1]] == ["call_lookup"]
    assert json.loads(outputs[0]["output"]) == {"status": "shipped", "order": "A-42"}

    # end_call: its output went back, the model's goodbye played out before
    # the hang-up; one response at a time throughout.
    assert json.loads(outputs[-1]["output"])["status"].startswith("ending the call")
    assert [o["call_id"] for o in outputs[1:]] == ["call_end"]
    assert fake.refused_creates == 0
    heard_goodbye = tone_report(bytes(call.heard)[-len(goodbye) :])
    assert abs(heard_goodbye.peak_hz - 500) < 5 and heard_goodbye.snr_db >= 30, heard_goodbye
    # Twilio's REST API was told to complete the call; one on_call_end.
    assert hangups(rest) == [{"Status": "completed"}]
    assert end["reason"] == "end_call"
    assert (end["call_id"], end["caller"], end["callee"]) == (CALL_SID, CALLER, CALLEE)
    assert len(seen.starts) == 1
    assert call.close_code == 1000


async def end_call_with_goodbye(
    provider: ProviderServer, fake: FakeOpenAIRealtime, call_id: str = "call_end"
) -> None:
    """The model calls end_call; our answer to it asks for a goodbye, which it says."""
    provider.push(lambda: fake.function_call("end_call", "{}", call_id=call_id))
    await provider.wait_for(
        lambda m: m.get("type") == "conversation.item.create"
        and m["item"].get("call_id") == call_id
    )
    provider.push(lambda: fake.respond(ulaw_tone(440, 200), "Goodbye."))


async def interrupt(call: CarrierStream, provider: ProviderServer, fake: Any) -> BargeIn:
    """A long answer starts playing; the caller talks over it after about half a second."""
    start = len(call.audio)  # where this answer's audio begins on the stream
    provider.push(lambda: fake.begin_response() + fake.audio(ulaw_tone(1000, 2000)))
    await call.wait(lambda: call.played_ms - start / 8 >= 500, what="half a second played")
    call.freeze()  # playback stops here: no further mark is echoed
    await anyio.sleep(0.05)  # our last echo reaches the bridge before the barge-in
    played = [m for m in call.played_marks() if m.position > start]
    assert played, "no mark of the answer was echoed"
    provider.push(lambda: fake.speech_started(audio_start_ms=1500))
    await call.wait(lambda: bool(call.clears), what="clear")
    truncate = await provider.wait_for(of_type("conversation.item.truncate"))
    await provider.wait_for(of_type("response.cancel"))
    call.resume()
    return BargeIn(truncate=truncate, expected_end_ms=(played[-1].position - start) / 8)


async def test_openai_provider_closing_ends_the_call(anyio_backend: str) -> None:
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    seen = Recorded()
    with provider_server(fake) as provider, twilio_rest() as rest:
        # The provider hangs up on us as soon as caller audio arrives.
        provider.when(of_type("input_audio_buffer.append"), lambda _: [Close(1011, "overload")])
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
                    await call.send_audio(ulaw_tone(300, 200), speed=4)
                    await call.wait(call.closed.is_set, what="the server closing the stream")
                    return call

            call = await run_in_asyncio_thread(carrier)
            end = await seen.wait_ended()
            with anyio.fail_after(5):
                while not hangups(rest):
                    await anyio.sleep(0.01)
    assert call.closed.is_set() and call.close_code is not None
    assert end["reason"] == "provider_closed" and end["call_id"] == CALL_SID
    assert hangups(rest) == [{"Status": "completed"}]
    assert provider.connections == 1


# -- ElevenLabs --------------------------------------------------------------------------------


async def elevenlabs_call(
    anyio_backend: str, *, api_key: str | None
) -> tuple[FakeElevenLabs, ProviderServer, CarrierStream, bytes, Recorded]:
    fake = FakeElevenLabs(agent_id="agent_e2e", api_key=api_key)
    seen = Recorded()
    answer_1k = ulaw_tone(1000, 600)
    caller_audio = ulaw_silence(100) + ulaw_tone(300, 600) + ulaw_silence(200)
    pinged: list[int] = []

    def ping() -> list[str]:
        event_id, messages = fake.ping(ping_ms=42)
        pinged.append(event_id)
        return messages

    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, elevenlabs_key=api_key, elevenlabs_base_url=provider.base_url)
        agent = phone.agent(provider="elevenlabs", agent_id="agent_e2e", system_prompt=PROMPT)
        async with serving(phone, agent, seen) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> tuple[CarrierStream, bytes]:
                async with carrier_stream(
                    local_ws_url(port, stream_url),
                    headers={"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)},
                ) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("conversation_initiation_client_data"))
                    await anyio.sleep(0.2)  # the metadata reaches the session
                    await call.send_audio(caller_audio, speed=4)
                    provider.push(lambda: fake.agent_says("Hello from Acme.", answer_1k))
                    await call.wait_played_out(600)
                    first_answer = bytes(call.heard)

                    # ping -> pong with its event id.
                    provider.push(ping)
                    await provider.wait_for(of_type("pong"))

                    # A long answer, interrupted: the carrier is told to clear.
                    start = len(call.audio)
                    provider.push(lambda: fake.agent_says("Let me explain.", ulaw_tone(1000, 2000)))
                    await call.wait(lambda: call.played_ms - start / 8 >= 300, what="playing")
                    provider.push(fake.interruption)
                    await call.wait(lambda: bool(call.clears), what="clear")
                    await call.stop()
                    await call.wait(call.closed.is_set, what="the server closing the stream")
                    return call, first_answer

            call, first_answer = await run_in_asyncio_thread(carrier)
            end = await seen.wait_ended()
    assert end["reason"] == "carrier_stop"
    assert not hangups(rest)
    # Caller audio: ulaw_8000 both ways, so it passes through untouched.
    assert len(fake.audio_in) >= len(caller_audio) - 160 * 5
    assert caller_audio.endswith(bytes(fake.audio_in))
    heard_in = tone_report(bytes(fake.audio_in))
    assert abs(heard_in.peak_hz - 300) < 5 and heard_in.snr_db >= 30, heard_in
    assert first_answer == answer_1k
    heard_out = tone_report(first_answer)
    assert abs(heard_out.peak_hz - 1000) < 5 and heard_out.snr_db >= 30, heard_out
    assert fake.pongs == pinged and len(pinged) == 1
    assert len(call.clears) == 1
    assert ("assistant", "Hello from Acme.") in [(t["role"], t["text"]) for t in seen.transcripts]
    return fake, provider, call, first_answer, seen


async def test_elevenlabs_public_agent(anyio_backend: str) -> None:
    fake, provider, _, _, _ = await elevenlabs_call(anyio_backend, api_key=None)
    assert provider.http_requests == []
    assert provider.handshakes == ["/v1/convai/conversation?agent_id=agent_e2e"]
    init = fake.init
    assert init is not None and init["type"] == "conversation_initiation_client_data"
    assert init["dynamic_variables"] == {"caller": CALLER, "callee": CALLEE}
    prompt = init["conversation_config_override"]["agent"]["prompt"]["prompt"]
    assert prompt == f"You take calls for Acme from {CALLER} to {CALLEE}."


async def test_elevenlabs_private_agent_signed_url(anyio_backend: str) -> None:
    fake, provider, _, _, _ = await elevenlabs_call(anyio_backend, api_key="xi-e2e-key")
    (signed,) = provider.http_requests
    assert signed.url.endswith("/v1/convai/conversation/get-signed-url?agent_id=agent_e2e")
    assert dict(signed.headers)["xi-api-key"] == "xi-e2e-key"
    # The WebSocket went to the signed URL the endpoint handed out.
    assert provider.handshakes == [
        f"/v1/convai/conversation?agent_id=agent_e2e&conversation_signature={fake.signature}"
    ]
    assert fake.init is not None
    assert fake.init["dynamic_variables"] == {"caller": CALLER, "callee": CALLEE}


# -- security, end to end ------------------------------------------------------------------


async def test_twilio_webhook_signatures(anyio_backend: str) -> None:
    seen = Recorded()
    with twilio_rest() as rest:
        phone = twilio_phone(rest)
        async with serving(phone, phone.agent(provider="echo"), seen) as port:
            form = incoming_call_form()
            unsigned = await twilio_voice_webhook(
                port, host=HOST, auth_token=AUTH_TOKEN, form=form, signature=None
            )
            tampered = await twilio_voice_webhook(
                port, host=HOST, auth_token=AUTH_TOKEN, form=form, tamper={"To": "+19005550000"}
            )
            wrong_key = await twilio_voice_webhook(
                port, host=HOST, auth_token="not-the-token", form=form
            )
            good = await twilio_voice_webhook(port, host=HOST, auth_token=AUTH_TOKEN, form=form)
    for refused in (unsigned, tampered, wrong_key):
        assert refused.status == 403, refused
        assert b"Stream" not in refused.body and b"stream_token" not in refused.body
    assert good.status == 200 and b"<Stream" in good.body
    assert seen.starts == [] and seen.ends == []


async def test_stream_security_before_any_provider_connection(anyio_backend: str) -> None:
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    seen = Recorded()
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        async with serving(phone, phone.agent(provider="openai"), seen) as port:
            stream_url, params = await answer_call(port)
            other_url, other_params = await answer_call(port, "CA" + "2" * 32)
            url = local_ws_url(port, stream_url)

            async def carrier() -> dict[str, Any]:
                out: dict[str, Any] = {}
                # Upgrades without a valid signature are refused with 403.
                for name, headers in (
                    ("unsigned", {}),
                    ("bad", {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJlIGF0IGFsbA=="}),
                    # Signed for another call's URL: the URL is part of what is signed.
                    ("other", {"X-Twilio-Signature": stream_signature(other_url, AUTH_TOKEN)}),
                ):
                    try:
                        async with carrier_stream(url, headers=headers):
                            out[name] = "accepted"
                    except InvalidStatus as exc:
                        out[name] = exc.response.status_code
                # A signed upgrade with a forged or another call's stream token:
                # the stream is closed with 1008 when its start arrives.
                good = {"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)}
                for name, token in (
                    ("forged", params["stream_token"][:-4] + "AAAA"),
                    ("foreign", other_params["stream_token"]),
                    ("missing", None),
                ):
                    custom = dict(params)
                    if token is None:
                        del custom["stream_token"]
                    else:
                        custom["stream_token"] = token
                    async with carrier_stream(url, headers=good) as call:
                        await call.start(call_id=CALL_SID, custom_parameters=custom)
                        await call.send_audio(ulaw_tone(300, 100))
                        await call.wait(call.closed.is_set, what="the server closing it")
                        out[name] = call.close_code
                return out

            result = await run_in_asyncio_thread(carrier)
            with anyio.fail_after(5):
                while len(seen.ends) < 3:
                    await anyio.sleep(0.01)
    assert result == {
        "unsigned": 403,
        "bad": 403,
        "other": 403,
        "forged": 1008,
        "foreign": 1008,
        "missing": 1008,
    }
    # Nobody spent the provider's credits: no connection was ever attempted.
    assert provider.handshakes == [] and provider.connections == 0
    assert seen.starts == []
    assert [e["reason"] for e in seen.ends] == ["token_rejected"] * 3
    assert not hangups(rest)
