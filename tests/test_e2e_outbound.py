"""End to end: outbound calls with an outcome (``call(wait=True)``) and their callbacks.

The server is ``Patter.serve`` on 127.0.0.1. Twilio is
:class:`tests.fakes.servers.TwilioCallsFake`: its Calls API on loopback,
which then sends the signed status, voice and AMD webhooks a real Twilio
sends for the call, in its order.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import pytest

from patter_anyio import CallResult, InvalidOption, Patter, ServerStopped
from tests.fakes.carrier import telnyx_webhook
from tests.fakes.http_fakes import (
    TWILIO_SID,
    TWILIO_TOKEN,
    WEBHOOK_HOST,
    Recorder,
    form_fields,
    post_twilio_form,
    stream_parameters,
    twilio_stream,
)
from tests.fakes.servers import (
    RunningRestServer,
    TwilioCallsFake,
    rest_server,
    telnyx_responder,
)
from tests.test_e2e_telnyx import CALLEE, CALLER, SIGNING_KEY, call_payload, telnyx_phone

pytestmark = pytest.mark.anyio

OUR_NUMBER = "+15550001111"
PERSON = "+15550002222"
MACHINE = "+15550003333"
BUSY = "+15550004444"
NOBODY = "+15550005555"
BROKEN = "+15550006666"
OUTCOMES = {
    PERSON: "answered",
    MACHINE: "voicemail",
    BUSY: "busy",
    NOBODY: "no-answer",
    BROKEN: "failed",
}


@asynccontextmanager
async def _serving(
    **serve: Any,
) -> AsyncIterator[tuple[Patter, TwilioCallsFake, RunningRestServer, Recorder]]:
    fake = TwilioCallsFake(TWILIO_TOKEN, OUTCOMES, host=WEBHOOK_HOST)
    rec = Recorder()
    with rest_server(fake.responder) as rest:
        phone = Patter(
            mode="local",
            twilio_sid=TWILIO_SID,
            twilio_token=TWILIO_TOKEN,
            phone_number=OUR_NUMBER,
            webhook_url=WEBHOOK_HOST,
            twilio_api_base_url=rest.base_url,
        )
        agent = phone.agent(provider="echo", first_message="Hello {name}, about {topic}.")
        async with anyio.create_task_group() as tg:
            fake.server_port = await tg.start(
                partial(
                    phone.serve,
                    agent,
                    None,
                    handle_signals=False,
                    on_call_status=rec.hook("on_call_status"),
                    on_machine_detection=rec.hook("on_machine_detection", is_async=True),
                    on_call_start=rec.hook("on_call_start"),
                    on_call_end=rec.hook("on_call_end"),
                    **serve,
                )
            )
            yield phone, fake, rest, rec
            tg.cancel_scope.cancel()


def _statuses(rec: Recorder, call_id: str) -> list[str]:
    return [p["status"] for p in rec.of("on_call_status") if p["call_id"] == call_id]


async def test_answered_call_returns_its_transcript() -> None:
    async with _serving() as (phone, fake, rest, rec):
        result: list[CallResult] = []

        async def place() -> None:
            result.append(
                await phone.call(
                    PERSON,
                    wait=True,
                    ring_timeout=20,
                    variables={"name": "Ada & <Bob>", "topic": "the invoice"},
                )
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(place)
            twiml = await anyio.to_thread.run_sync(fake.wait_answered, "CA" + "1".zfill(32))
            params = stream_parameters(twiml)
            sid = "CA" + "1".zfill(32)
            # The variables travel as <Parameter>, escaped; the stream URL
            # carries nothing but the call id.
            assert params["var_name"] == "Ada & <Bob>"
            assert params["var_topic"] == "the invoice"
            assert f'url="wss://{WEBHOOK_HOST}/ws/stream/{sid}"' in twiml
            async with twilio_stream(fake.server_port or 0, sid, params) as carrier:
                await carrier.start()
                await carrier.dtmf("7")
                await rec.wait_for("on_call_start")
                await carrier.wait_for(lambda log: bool(log.events("media")), what="the greeting")
                await carrier.stop()
            fake.hang_up(sid)

        (done,) = result
        assert done.call_id == sid
        assert done.outcome == "answered"
        assert done.answered_by is None
        assert [t["text"] for t in done.transcript] == ["[DTMF 7]"]
        (started,) = rec.of("on_call_start")
        assert started["custom_parameters"] == {
            "caller": OUR_NUMBER,
            "callee": PERSON,
            "var_name": "Ada & <Bob>",
            "var_topic": "the invoice",
        }
        assert done.end_reason == rec.of("on_call_end")[0]["reason"]
        assert done.ended_at >= done.started_at
        assert done.duration >= 0
        assert _statuses(rec, sid) == ["initiated", "ringing", "answered", "completed"]
        assert rec.of("on_machine_detection") == []

    # The create request: status callback with its events, and the ring timeout.
    create = next(r for r in rest.requests if r.path.endswith("/Calls.json"))
    fields = form_fields(create.body)
    assert ("StatusCallback", f"https://{WEBHOOK_HOST}/webhooks/twilio/status") in fields
    assert ("StatusCallbackMethod", "POST") in fields
    assert [v for k, v in fields if k == "StatusCallbackEvent"] == [
        "initiated",
        "ringing",
        "answered",
        "completed",
    ]
    assert ("Timeout", "20") in fields
    # Never in a URL: no variable reaches the create request at all.
    assert "invoice" not in create.body.decode()
    # Every webhook Twilio sent was accepted (signed, known).
    assert {status for _, _, status in fake.webhooks} == {200}


async def test_voicemail_outcome_with_machine_detection_and_the_drop() -> None:
    async with _serving(voicemail_message="Please call us back.") as (phone, fake, rest, rec):
        # No stream runs here for this call: the drop goes out as TwiML.
        done = await phone.call(MACHINE, wait=True, machine_detection=True)
        assert done.outcome == "voicemail"
        assert done.answered_by == "machine_end_beep"
        assert done.transcript == ()
        assert done.duration >= 1
        (detected,) = rec.of("on_machine_detection")
        assert detected == {
            "call_id": done.call_id,
            "result": "machine",
            "raw": "machine_end_beep",
            "carrier": "twilio",
        }
        assert _statuses(rec, done.call_id) == ["initiated", "ringing", "answered", "completed"]
        update = next(r for r in rest.requests if r.path.endswith(f"/Calls/{done.call_id}.json"))
        assert update.form["Twiml"].endswith("<Say>Please call us back.</Say><Hangup /></Response>")
        # A second AMD result for the same call (a retry) fires nothing more.
        status, _ = await post_twilio_form(
            fake.server_port or 0,
            "/webhooks/twilio/amd",
            {"CallSid": done.call_id, "AccountSid": TWILIO_SID, "AnsweredBy": "human"},
        )
        assert status == 200
        assert len(rec.of("on_machine_detection")) == 1


@pytest.mark.parametrize(
    ("number", "outcome", "statuses", "reason"),
    [
        (BUSY, "busy", ["initiated", "ringing", "busy"], "busy (SIP 486)"),
        (NOBODY, "no_answer", ["initiated", "ringing", "no_answer"], "no-answer (SIP 487)"),
        (BROKEN, "failed", ["failed"], "failed (SIP 404)"),
    ],
)
async def test_unanswered_outcomes(
    number: str, outcome: str, statuses: list[str], reason: str
) -> None:
    async with _serving() as (phone, _fake, _rest, rec):
        done = await phone.call(number, wait=True, ring_timeout=15)
        assert (done.outcome, done.end_reason, done.duration) == (outcome, reason, 0.0)
        assert done.answered_by is None
        assert done.transcript == ()
        assert _statuses(rec, done.call_id) == statuses
        assert rec.of("on_call_end") == []


async def test_without_wait_the_callbacks_report_the_same() -> None:
    async with _serving() as (phone, _fake, _rest, rec):
        call_id = await phone.call(BUSY)
        assert isinstance(call_id, str) and call_id.startswith("CA")
        await rec.wait_for("on_call_status", lambda p: p["status"] == "busy")
        assert _statuses(rec, call_id) == ["initiated", "ringing", "busy"]


async def test_status_of_an_unknown_call_is_200_and_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with _serving() as (_phone, fake, _rest, rec):
        caplog.set_level(logging.DEBUG, logger="patter_anyio")
        status, body = await post_twilio_form(
            fake.server_port or 0,
            "/webhooks/twilio/status",
            {"CallSid": "CA" + "9" * 32, "AccountSid": TWILIO_SID, "CallStatus": "completed"},
        )
        assert status == 200
        assert body.decode().endswith("<Response />")
        assert rec.of("on_call_status") == []
        mentions = [r for r in caplog.records if "CA" + "9" * 32 in r.getMessage()]
        assert mentions and all(r.levelno == logging.DEBUG for r in mentions)


async def test_bad_options_are_refused_before_dialling() -> None:
    async with _serving() as (phone, _fake, rest, _rec):
        for kwargs, words in [
            ({"ring_timeout": 2}, "ring_timeout must be whole seconds in 5-600"),
            ({"variables": {"caller": "x"}}, "variable 'caller' is reserved"),
            ({"variables": {"bad name": "x"}}, "variable names must be words"),
            ({"variables": {"n": 5}}, "variable 'n' must be text"),
            ({"variables": {"n": "x" * 500}}, "variable 'n' is too long"),
        ]:
            with pytest.raises(InvalidOption, match=words):
                await phone.call(PERSON, **kwargs)
        assert rest.requests == []
    idle = Patter(
        mode="local",
        twilio_sid=TWILIO_SID,
        twilio_token=TWILIO_TOKEN,
        phone_number=OUR_NUMBER,
        webhook_url=WEBHOOK_HOST,
    )
    with pytest.raises(InvalidOption, match="wait=True needs this Patter's serve"):
        await idle.call(PERSON, wait=True)


@pytest.mark.parametrize(("cause", "outcome"), [("user_busy", "busy"), ("timeout", "no_answer")])
async def test_telnyx_outcome_from_the_hangup_cause(cause: str, outcome: str) -> None:
    rec = Recorder()
    with rest_server(telnyx_responder) as rest:
        phone = telnyx_phone(rest, phone_number=CALLER, telnyx_connection_id="conn-e2e")
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(
                    phone.serve,
                    phone.agent(provider="echo"),
                    None,
                    handle_signals=False,
                    on_call_status=rec.hook("on_call_status"),
                )
            )
            results: list[CallResult] = []

            async def place() -> None:
                results.append(await phone.call(CALLEE, wait=True, ring_timeout=30))

            tg.start_soon(place)
            dial = await anyio.to_thread.run_sync(
                partial(rest.wait_for, lambda r: r.path == "/v2/calls")
            )
            assert dial.json["timeout_secs"] == 30
            call_id = "v3:fake-outbound"
            leg = dict(call_payload(call_id), client_state=dial.json["client_state"])
            leg["direction"] = "outgoing"
            # Posted at once: they may well beat the dial's answer to call().
            for event_type, extra in (
                ("call.initiated", {}),
                ("call.hangup", {"hangup_cause": cause}),
            ):
                hook = await telnyx_webhook(port, SIGNING_KEY, event_type, dict(leg, **extra))
                assert hook.status == 200
            with anyio.fail_after(10):
                while not results:
                    await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
    (done,) = results
    assert (done.call_id, done.outcome, done.end_reason) == (call_id, outcome, cause)
    assert [p["status"] for p in rec.of("on_call_status")] == ["initiated", outcome]
    assert all(p["carrier"] == "telnyx" for p in rec.of("on_call_status"))


async def test_wait_ends_with_an_error_when_the_server_stops_first() -> None:
    async with _serving() as (phone, fake, _rest, _rec):
        errors: list[BaseException] = []

        async def place() -> None:
            try:
                await phone.call(PERSON, wait=True)
            except ServerStopped as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(place)
            sid = "CA" + "1".zfill(32)
            await anyio.to_thread.run_sync(fake.wait_answered, sid)
            phone.stop()
        fake.hang_up(sid)
    (error,) = errors
    assert str(error) == f"the server stopped before call {sid} ended"


async def test_telnyx_variables_go_with_the_stream() -> None:
    with rest_server(telnyx_responder) as rest:
        phone = telnyx_phone(rest, phone_number=CALLER, telnyx_connection_id="conn-e2e")
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(phone.serve, phone.agent(provider="echo"), None, handle_signals=False)
            )
            call_id = await phone.call(CALLEE, variables={"name": "Ada", "topic": "invoice"})
            (dial,) = [r for r in rest.requests if r.path == "/v2/calls"]
            assert "Ada" not in dial.body.decode()  # not in the dial, nor any URL
            leg = dict(call_payload(call_id), client_state=dial.json["client_state"])
            hook = await telnyx_webhook(port, SIGNING_KEY, "call.answered", leg)
            assert hook.status == 200
            start = await anyio.to_thread.run_sync(
                partial(rest.wait_for, lambda r: r.path.endswith("/actions/streaming_start"))
            )
            tg.cancel_scope.cancel()
    assert start.json["custom_parameters"] == [
        {"name": "var_name", "value": "Ada"},
        {"name": "var_topic", "value": "invoice"},
    ]
    assert "Ada" not in start.json["stream_url"]
