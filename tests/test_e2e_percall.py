"""End to end over loopback: per-call behaviour.

Silence reprompts and the hang-up, the call's maximum duration, a greeting
that must play in full, and on_call_start's overrides reaching the
provider's ``session.update``. The real server (``Patter.serve`` on
127.0.0.1), the fake OpenAI Realtime server, the fake Twilio REST API and
Twilio's end of the media stream (:mod:`tests.fakes.carrier`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import pytest

from patter_anyio import InvalidOption, Patter, Tool
from tests.fakes.carrier import (
    CarrierStream,
    carrier_stream,
    local_ws_url,
    parse_stream_twiml,
    run_in_asyncio_thread,
    stream_signature,
    telnyx_webhook,
    twilio_voice_webhook,
    ulaw_tone,
)
from tests.fakes.fake_openai_realtime import FakeOpenAIRealtime
from tests.fakes.provider_servers import provider_server
from tests.fakes.servers import rest_server, telnyx_responder
from tests.test_e2e_echo import AUTH_TOKEN, CALL_SID, HOST, incoming_call_form
from tests.test_e2e_realtime import (
    OPENAI_KEY,
    Recorded,
    answer_call,
    hangups,
    of_type,
    serving,
    twilio_phone,
    twilio_rest,
)
from tests.test_e2e_telnyx import SIGNING_KEY, telnyx_phone, wait_actions
from tests.test_e2e_telnyx import actions as telnyx_actions
from tests.test_e2e_telnyx import call_payload as telnyx_call_payload

pytestmark = pytest.mark.anyio


def _creates(fake: FakeOpenAIRealtime) -> list[str]:
    """The instructions of every ``response.create`` (what the agent was asked to say)."""
    return [
        (m.get("response") or {}).get("instructions", "")
        for m in fake.received
        if m["type"] == "response.create"
    ]


def _detections(fake: FakeOpenAIRealtime) -> list[dict[str, Any]]:
    return [
        m["session"]["audio"]["input"]["turn_detection"]
        for m in fake.received
        if m["type"] == "session.update" and "audio" in m["session"]
    ]


@asynccontextmanager
async def _serving(
    phone: Patter, agent: Any, seen: Recorded, on_call_start: Any, **options: Any
) -> AsyncIterator[int]:
    """``serve`` on an ephemeral port with the test's own ``on_call_start``."""
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(
                    phone.serve,
                    agent,
                    None,
                    handle_signals=False,
                    on_call_start=on_call_start,
                    on_call_end=seen.ends.append,
                    **options,
                )
            )
            try:
                yield port
            finally:
                phone.stop()


async def _call_until_closed(port: int, timeout: float = 10.0) -> CarrierStream:
    stream_url, params = await answer_call(port)

    async def carrier() -> CarrierStream:
        headers = {"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)}
        async with carrier_stream(local_ws_url(port, stream_url), headers=headers) as call:
            await call.start(call_id=CALL_SID, custom_parameters=params)
            await call.wait(call.closed.is_set, timeout=timeout, what="the hang-up")
            return call

    result: CarrierStream = await run_in_asyncio_thread(carrier, timeout=timeout + 5)
    return result


async def test_silence_reprompts_once_then_hangs_up_with_reason_silence() -> None:
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    fake.answer = lambda _: fake.respond(ulaw_tone(500, 200), "line")
    seen = Recorded()
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(provider="openai", silence_timeout=0.6, silence_message="Hello?")
        async with serving(phone, agent, seen) as port:
            call = await _call_until_closed(port)
            end = await seen.wait_ended()
    # One reprompt, then the goodbye; each played before the next quiet spell.
    said = _creates(fake)
    assert len(said) == 2, said
    assert said[0].endswith("Hello?")
    assert said[1].endswith("It seems nobody is there. Goodbye.")
    assert call.played_at_close == len(call.audio) == 2 * 1600  # both lines heard whole
    assert end["reason"] == "silence"
    assert hangups(rest) == [{"Status": "completed"}]


async def test_max_duration_says_a_closing_line_and_hangs_up() -> None:
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    fake.answer = lambda _: fake.respond(ulaw_tone(500, 200), "bye")
    seen = Recorded()
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(provider="openai", max_duration=1.0)
        async with serving(phone, agent, seen) as port:
            call = await _call_until_closed(port)
            end = await seen.wait_ended()
    assert [s.rsplit(" ", 1)[-1] for s in _creates(fake)] == ["Goodbye."]
    assert call.played_at_close == len(call.audio) == 1600
    assert end["reason"] == "max_duration"
    assert 1.0 <= end["ended_at"] - end["started_at"] < 3.0
    # The deadlines ran on the monotonic clock; the times the user sees are
    # wall-clock seconds, as the transcript's are.
    assert abs(end["ended_at"] - time.time()) < 10.0
    assert all(abs(line["time"] - time.time()) < 10.0 for line in end["transcript"])
    assert hangups(rest) == [{"Status": "completed"}]


async def _greeting_call(interruptible: bool) -> tuple[CarrierStream, FakeOpenAIRealtime, int]:
    """A 1.5 s greeting; the caller talks over it 300 ms in."""
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    greeting = ulaw_tone(700, 1500)
    # The greeting streams, and is not over when the caller starts talking.
    fake.answer = lambda _: fake.begin_response() + fake.audio(greeting)
    seen = Recorded()
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(
            provider="openai",
            first_message="This call is recorded.",
            first_message_interruptible=interruptible,
        )
        async with serving(phone, agent, seen) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> CarrierStream:
                headers = {"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)}
                async with carrier_stream(local_ws_url(port, stream_url), headers=headers) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await call.wait(lambda: call.played_ms >= 300, what="the greeting playing")
                    # Loud caller audio, and the server hearing speech.
                    await call.send_audio(ulaw_tone(300, 200, amplitude=20000))
                    provider.push(lambda: fake.speech_started(audio_start_ms=300))
                    await anyio.sleep(0.3)
                    provider.push(lambda: fake.end_response() if fake.active_response else [])
                    await anyio.sleep(1.6)
                    return call

            call = await run_in_asyncio_thread(carrier)
    return call, fake, len(greeting)


async def test_greeting_not_interruptible_arrives_whole() -> None:
    call, fake, size = await _greeting_call(interruptible=False)
    assert call.clears == []  # no clear
    kinds = [m["type"] for m in fake.received]
    assert "response.cancel" not in kinds and "conversation.item.truncate" not in kinds
    assert len(call.audio) == size and call.heard == call.audio  # whole, and heard
    # The server's own barge-in held for the greeting, then given back.
    detections = _detections(fake)
    assert [d["interrupt_response"] for d in detections] == [True, False, True]
    assert [d["create_response"] for d in detections] == [True, False, True]


async def test_greeting_interruptible_by_default_is_cleared() -> None:
    call, fake, size = await _greeting_call(interruptible=True)
    assert len(call.clears) == 1
    kinds = [m["type"] for m in fake.received]
    assert "conversation.item.truncate" in kinds
    assert len(call.heard) < size
    assert [d["interrupt_response"] for d in _detections(fake)] == [True]


async def test_on_call_start_overrides_and_outbound_variables_reach_the_provider() -> None:
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    seen = Recorded()

    looked_up: list[dict[str, Any]] = []

    def lookup(arguments: dict[str, Any], call: dict[str, Any]) -> dict[str, str]:
        looked_up.append(arguments)
        return {"status": "shipped"}

    async def on_call_start(call: dict[str, Any]) -> dict[str, Any]:
        seen.starts.append(call)
        await anyio.sleep(0.1)  # e.g. a database lookup
        return {
            "system_prompt": "Help {name} with order {order} on {callee}.",
            "first_message": "Hi {name}!",
            "voice": "cedar",
            "variables": {"name": "Ada"},
            # This call's own tool: its handler runs for this call.
            "tools": [Tool(name="lookup_order", handler=lookup, description="Find it")],
        }

    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(provider="openai", system_prompt="Default.", first_message="Hey.")
        async with _serving(phone, agent, seen, on_call_start) as port:
            stream_url, params = await answer_call(port)
            # An outbound call's variables travel as var_ parameters of the stream.
            params = {**params, "var_order": "A-7"}

            async def carrier() -> None:
                headers = {"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)}
                async with carrier_stream(local_ws_url(port, stream_url), headers=headers) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("response.create"))
                    provider.push(lambda: fake.function_call("lookup_order", '{"id": "A-7"}'))
                    await provider.wait_for(of_type("conversation.item.create"))
                    await call.stop()

            await run_in_asyncio_thread(carrier)
            await seen.wait_ended()
    assert looked_up == [{"id": "A-7"}]
    (output,) = [m for m in fake.received if m["type"] == "conversation.item.create"]
    assert json.loads(output["item"]["output"]) == {"status": "shipped"}
    (update,) = [m for m in fake.received if m["type"] == "session.update"]
    assert "lookup_order" in [t["name"] for t in update["session"]["tools"]]
    session = update["session"]
    callee = seen.starts[0]["callee"]
    assert session["instructions"] == f"Help Ada with order A-7 on {callee}."
    assert session["audio"]["output"]["voice"] == "cedar"
    assert _creates(fake)[0].endswith("Hi Ada!")


def test_per_call_options_are_checked() -> None:
    phone = Patter(openai_key="sk-x")
    for bad in (
        {"silence_timeout": 0},
        {"silence_timeout": -1.0},
        {"max_duration": 0},
        {"silence_reprompts": -1},
        {"silence_reprompts": 1.5},
        {"silence_message": ""},
        {"barge_in_min_ms": -10},
        {"first_message_interruptible": "no"},
    ):
        with pytest.raises(InvalidOption):
            phone.agent(**bad)
    with pytest.raises(InvalidOption, match="elevenlabs"):
        Patter(elevenlabs_key="k", elevenlabs_agent_id="a").agent(
            provider="elevenlabs", first_message_interruptible=False
        )
    with pytest.raises(InvalidOption, match="pipeline"):
        phone.agent(provider="pipeline", barge_in_min_ms=200)
    agent = phone.agent(silence_timeout=8, barge_in_min_ms=250)
    assert agent.silence_timeout == 8 and agent.max_duration == 3600.0


# -- routing before answering -------------------------------------------------------


SALES = "+18005550111"


async def _routed_call(port: int, to: str) -> tuple[int, bytes]:
    form = dict(incoming_call_form(), To=to, Called=to)
    answer = await twilio_voice_webhook(port, host=HOST, auth_token=AUTH_TOKEN, form=form)
    return answer.status, answer.body


async def test_route_picks_an_agent_by_callee_and_none_rejects() -> None:
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    seen = Recorded()
    calls: list[dict[str, Any]] = []
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        default = phone.agent(provider="openai", system_prompt="Support.", first_message="Hi.")
        sales = phone.agent(
            provider="openai", system_prompt="Sales for {caller}.", first_message="Sales here."
        )

        async def route(call: dict[str, Any]) -> Any:
            calls.append(call)
            if call["callee"] == "+19995550000":
                return None
            return sales if call["callee"] == SALES else default

        async with serving(phone, default, seen, route=route) as port:
            # None: Twilio's <Reject/>, and no provider connection at all.
            status, body = await _routed_call(port, "+19995550000")
            assert status == 200 and b"<Reject />" in body and b"<Stream" not in body
            assert fake.accepted == 0
            # The sales number: the sales agent's prompt and greeting.
            status, body = await _routed_call(port, SALES)
            assert status == 200 and b"<Stream" in body
            stream_url, params = parse_stream_twiml(body)

            async def carrier() -> None:
                headers = {"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)}
                async with carrier_stream(local_ws_url(port, stream_url), headers=headers) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("response.create"))
                    await call.stop()

            await run_in_asyncio_thread(carrier)
            await seen.wait_ended()
    assert [c["callee"] for c in calls] == ["+19995550000", SALES]
    assert calls[1]["carrier"] == "twilio" and calls[1]["call_id"] == CALL_SID
    assert calls[1]["params"]["To"] == SALES  # the carrier's own fields
    (update,) = [m for m in fake.received if m["type"] == "session.update"]
    assert update["session"]["instructions"] == f"Sales for {calls[1]['caller']}."
    assert _creates(fake)[0].endswith("Sales here.")


@pytest.mark.parametrize("answer", ["slow", "raises", "not an agent"])
async def test_a_broken_route_gives_the_default_agent(answer: str) -> None:
    seen = Recorded()

    def route(call: dict[str, Any]) -> Any:  # sync: run in a worker thread
        if answer == "slow":
            time.sleep(1.0)
        if answer == "raises":
            raise RuntimeError("lookup failed")
        return "sales"

    with twilio_rest() as rest:
        phone = twilio_phone(rest)
        agent = phone.agent(provider="echo")
        async with serving(phone, agent, seen, route=route, route_timeout=0.3) as port:
            began = time.monotonic()
            status, body = await _routed_call(port, SALES)
            took = time.monotonic() - began
    assert status == 200 and b"<Stream" in body  # answered, by the default agent
    assert took < 0.9


async def test_telnyx_route_none_rejects_through_call_control() -> None:
    seen = Recorded()
    with rest_server(telnyx_responder) as rest:
        phone = telnyx_phone(rest)
        agent = phone.agent(provider="echo")
        async with serving(phone, agent, seen, route=lambda call: None) as port:
            initiated = await telnyx_webhook(
                port, SIGNING_KEY, "call.initiated", telnyx_call_payload()
            )
            assert initiated.status == 200
            (reject,) = await wait_actions(rest, "reject")
    assert reject.json["cause"] == "CALL_REJECTED"
    assert telnyx_actions(rest, "answer") == []


def test_route_is_checked_at_serve() -> None:
    phone = Patter(openai_key="sk-x")

    async def main(**options: Any) -> None:
        await phone.serve(phone.agent(), None, handle_signals=False, **options)

    with pytest.raises(InvalidOption, match="route must be callable"):
        anyio.run(partial(main, route="sales"))
    with pytest.raises(InvalidOption, match="route_timeout"):
        anyio.run(partial(main, route=lambda call: None, route_timeout=0))


# -- a warm start ---------------------------------------------------------------------


async def greeting_latency(*, prewarm: bool, ready_delay: float = 0.3) -> dict[str, Any]:
    """One call: the webhook, the stream a second later, the greeting; the
    time from ``start`` to the greeting's first audio at the carrier."""
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY, ready_delay=ready_delay)
    fake.answer = lambda _: fake.respond(ulaw_tone(600, 400), "Hello there!")
    seen = Recorded()
    out: dict[str, Any] = {}
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(provider="openai", first_message="Hello there!", prewarm=prewarm)
        async with _serving(phone, agent, seen, None) as port:
            stream_url, params = await answer_call(port)
            await anyio.sleep(1.0)  # Twilio starts the stream a second or so later
            out["connections_before_stream"] = fake.accepted

            async def carrier() -> float:
                headers = {"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)}
                async with carrier_stream(local_ws_url(port, stream_url), headers=headers) as call:
                    began = time.monotonic()
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await call.wait(lambda: len(call.audio) > 0, what="the greeting")
                    took = time.monotonic() - began
                    await call.wait_played_out(400)
                    await call.stop()
                    return took

            out["first_audio_s"] = await run_in_asyncio_thread(carrier)
            await seen.wait_ended()
    out["connections"] = fake.accepted
    out["creates"] = len(_creates(fake))
    return out


async def test_prewarm_opens_at_the_webhook_and_greets_sooner() -> None:
    warm = await greeting_latency(prewarm=True)
    cold = await greeting_latency(prewarm=False)
    # Warm: the provider connection opened during the webhook, and was adopted.
    assert warm["connections"] == 1 and warm["creates"] == 1
    assert warm["connections_before_stream"] == 1
    assert cold["connections_before_stream"] == 0 and cold["connections"] == 1
    # The 300 ms set-up is off the caller's clock.
    assert warm["first_audio_s"] + 0.2 < cold["first_audio_s"], (warm, cold)


async def test_an_unused_prewarmed_session_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("patter_anyio.calls._prewarm.WARM_TTL", 0.5)
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    seen = Recorded()
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(provider="openai", system_prompt="Hi.")
        async with _serving(phone, agent, seen, None) as port:
            await answer_call(port)
            await provider.wait_for(of_type("session.update"))  # opened at the webhook
            assert provider.connections == 1 and provider.client_close_codes == []
            began = time.monotonic()
            with anyio.fail_after(3):
                while not provider.client_close_codes:
                    await anyio.sleep(0.02)
            waited = time.monotonic() - began
    assert provider.client_close_codes == [1000]  # closed by us, cleanly
    assert 0.2 < waited < 1.5
    assert seen.ends == []  # no call ever started


async def test_a_refused_stream_does_not_adopt_the_warm_session() -> None:
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    fake.answer = lambda _: fake.respond(ulaw_tone(600, 200), "Hello!")
    seen = Recorded()
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(provider="openai", first_message="Hello!")
        async with _serving(phone, agent, seen, None) as port:
            stream_url, params = await answer_call(port)
            await provider.wait_for(of_type("response.create"))  # warm, greeting asked for

            async def carrier() -> tuple[int | None, int]:
                headers = {"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)}
                url = local_ws_url(port, stream_url)
                forged = dict(params, stream_token=params["stream_token"][:-4] + "AAAA")
                async with carrier_stream(url, headers=headers) as bad:
                    await bad.start(call_id=CALL_SID, custom_parameters=forged)
                    await bad.wait(bad.closed.is_set, what="the refusal")
                async with carrier_stream(url, headers=headers) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await call.wait_played_out(200)
                    await call.stop()
                return bad.close_code, len(bad.audio)

            close_code, bad_audio = await run_in_asyncio_thread(carrier)
            with anyio.fail_after(5):
                while len(seen.ends) < 2:
                    await anyio.sleep(0.01)
    assert close_code == 1008 and bad_audio == 0  # the forged stream heard nothing
    assert [e["reason"] for e in seen.ends] == ["token_rejected", "carrier_stop"]
    # The real stream adopted the one warm session: no second connection.
    assert provider.connections == 1 and len(_creates(fake)) == 1


async def test_speech_shorter_than_barge_in_min_ms_does_not_interrupt() -> None:
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    fake.answer = lambda _: fake.begin_response() + fake.audio(ulaw_tone(700, 3000))
    seen = Recorded()
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(provider="openai", first_message="Hello.", barge_in_min_ms=300)
        async with serving(phone, agent, seen) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> tuple[list[int], float]:
                headers = {"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)}
                async with carrier_stream(local_ws_url(port, stream_url), headers=headers) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await call.wait(lambda: call.played_ms >= 200, what="the answer playing")
                    # "mm-hm": 100 ms of speech.
                    provider.push(lambda: fake.speech_started(audio_start_ms=200))
                    await anyio.sleep(0.1)
                    provider.push(lambda: fake.speech_stopped(audio_end_ms=300))
                    await anyio.sleep(0.5)
                    coughs = list(call.clears)
                    # Real speech: the barge-in comes 300 ms after it began.
                    began = time.monotonic()
                    provider.push(lambda: fake.speech_started(audio_start_ms=900))
                    await call.wait(lambda: bool(call.clears), what="the clear")
                    return coughs, time.monotonic() - began

            coughs, waited = await run_in_asyncio_thread(carrier)
    assert coughs == []
    assert 0.25 <= waited < 1.0
    # The server does not cancel by itself: the bridge decides, then cancels.
    assert [d["interrupt_response"] for d in _detections(fake)] == [False]
    kinds = [m["type"] for m in fake.received]
    assert kinds.count("response.cancel") == 1


async def test_a_fault_in_a_warm_start_costs_only_the_warm_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug of ours while prewarming (here: the connect raises TypeError, as
    uvloop's did for an argument it lacks) is logged once; the server keeps
    serving and the call opens its own session."""
    import patter_anyio.calls._prewarm as prewarm_module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("create_connection() got an unexpected keyword argument")

    monkeypatch.setattr(prewarm_module, "connect_websocket", broken)
    caplog.set_level(logging.ERROR, logger="patter_anyio")
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    fake.answer = lambda _: fake.respond(ulaw_tone(600, 200), "Hello!")
    seen = Recorded()
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(provider="openai", first_message="Hello!")
        async with _serving(phone, agent, seen, None) as port:
            stream_url, params = await answer_call(port)
            await anyio.sleep(0.3)

            async def carrier() -> None:
                headers = {"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)}
                async with carrier_stream(local_ws_url(port, stream_url), headers=headers) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await call.wait_played_out(200)
                    await call.stop()

            await run_in_asyncio_thread(carrier)
            end = await seen.wait_ended()
    assert end["reason"] == "carrier_stop"
    assert provider.connections == 1  # the call's own, after the warm start failed
    faults = [r for r in caplog.records if "prewarm for call" in r.getMessage()]
    assert len(faults) == 1 and faults[0].exc_info is not None
