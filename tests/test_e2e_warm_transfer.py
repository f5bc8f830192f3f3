"""Warm transfer on Twilio over loopback: the person is called and briefed, then the
caller joins them; when nobody answers, the agent is told and keeps the caller.

The model is the ElevenLabs fake (it calls ``transfer_call`` and reads the
result and any note we send it); Twilio's REST API is the recording REST
fake; Twilio's webhooks are posted signed, over the full URL with its query.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from patter_core.webhooks._warm_transfer import HOLD_MUSIC_URL
from tests.fakes.carrier import (
    carrier_stream,
    local_ws_url,
    run_in_asyncio_thread,
    telnyx_webhook,
)
from tests.fakes.carrier import (
    stream_signature as sign_stream,
)
from tests.fakes.fake_elevenlabs import FakeElevenLabs
from tests.fakes.http_fakes import post_twilio_form
from tests.fakes.provider_servers import provider_server
from tests.fakes.servers import RecordedRequest, RunningRestServer, rest_server, telnyx_responder
from tests.test_e2e_echo import ACCOUNT_SID, AUTH_TOKEN, CALL_SID, HOST
from tests.test_e2e_realtime import (
    Recorded,
    answer_call,
    of_type,
    serving,
    twilio_phone,
    twilio_rest,
)
from tests.test_e2e_telnyx import CALL_ID as TELNYX_CALL
from tests.test_e2e_telnyx import (
    CALLEE,
    CALLER,
    SIGNING_KEY,
    answer_and_stream,
    call_payload,
    telnyx_phone,
)

pytestmark = pytest.mark.anyio

OUR_NUMBER = "+15550001111"
PERSON = "+14155550123"
SUMMARY = "Ada wants a refund for order 42 & a call back <today>."
CALLS = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls"
TELNYX_NUMBER = "+13125550111"


def _creates(rest: RunningRestServer) -> list[RecordedRequest]:
    return [r for r in list(rest.requests) if r.path == CALLS + ".json"]


def _updates(rest: RunningRestServer) -> list[RecordedRequest]:
    return [r for r in list(rest.requests) if r.path == f"{CALLS}/{CALL_SID}.json"]


async def _run_transfer(person_status: str) -> dict[str, Any]:
    fake = FakeElevenLabs(agent_id="agent_warm")
    seen = Recorded()
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, elevenlabs_base_url=provider.base_url, phone_number=OUR_NUMBER)
        agent = phone.agent(
            provider="elevenlabs", agent_id="agent_warm", transfer_allowlist=[PERSON]
        )
        async with serving(phone, agent, seen) as port:
            stream_url, params = await answer_call(port)
            out: dict[str, Any] = {"rest": rest, "seen": seen}

            async def carrier() -> None:
                async with carrier_stream(
                    local_ws_url(port, stream_url),
                    headers={"X-Twilio-Signature": sign_stream(stream_url, AUTH_TOKEN)},
                ) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("conversation_initiation_client_data"))
                    # A number outside the allowlist: refused, in either mode.
                    provider.push(
                        lambda: fake.tool_call(
                            "transfer_call",
                            {"number": "+19005550000", "mode": "warm", "summary": "x"},
                            "outside",
                        )
                    )
                    out["outside"] = await provider.wait_for(
                        lambda m: m.get("tool_call_id") == "outside"
                    )
                    provider.push(
                        lambda: fake.tool_call(
                            "transfer_call",
                            {"number": PERSON, "mode": "warm", "summary": SUMMARY},
                            "warm",
                        )
                    )
                    out["warm"] = await provider.wait_for(lambda m: m.get("tool_call_id") == "warm")
                    out["calls_during"] = len(_updates(rest))
                    create = await asyncio.to_thread(
                        rest.wait_for, lambda r: r.path == CALLS + ".json"
                    )
                    callback = create.form["StatusCallback"]
                    parts = urlsplit(callback)
                    path = f"{parts.path}?{parts.query}"
                    for status in ("ringing", person_status):
                        answer = await post_twilio_form(
                            port,
                            path,
                            {
                                "CallSid": "CA" + "9" * 32,
                                "AccountSid": ACCOUNT_SID,
                                "CallStatus": status,
                                "To": PERSON,
                                "From": OUR_NUMBER,
                            },
                            token=AUTH_TOKEN,
                            host=HOST,
                        )
                        assert answer[0] == 200
                    # A conference event, on its own signed endpoint.
                    answer = await post_twilio_form(
                        port,
                        "/webhooks/twilio/conference-status",
                        {
                            "AccountSid": ACCOUNT_SID,
                            "CallSid": CALL_SID,
                            "FriendlyName": f"patter-{CALL_SID}",
                            "StatusCallbackEvent": "participant-join",
                        },
                        token=AUTH_TOKEN,
                        host=HOST,
                    )
                    assert answer[0] == 200
                    forged = await post_twilio_form(
                        port, path, {"CallSid": "CA1", "AccountSid": ACCOUNT_SID}, sign=False
                    )
                    assert forged[0] == 403
                    if person_status == "in-progress":
                        # Twilio runs the new TwiML: the stream stops.
                        out["move"] = await run_wait(rest)
                    else:
                        out["note"] = await provider.wait_for(of_type("user_message"))
                    await call.stop()
                    await call.wait(call.closed.is_set, what="the stream closing")

            await run_in_asyncio_thread(carrier, timeout=30)
            out["end"] = await seen.wait_ended()
            (out["create"],) = _creates(rest)
            out["updates"] = _updates(rest)
            return out


async def run_wait(rest: RunningRestServer) -> RecordedRequest:
    for _ in range(200):
        updates = _updates(rest)
        if updates:
            return updates[0]
        await asyncio.sleep(0.02)
    raise AssertionError("the caller was not moved")


async def test_warm_transfer_briefs_the_person_then_moves_the_caller() -> None:
    out = await _run_transfer("in-progress")
    assert out["outside"]["is_error"] is True
    assert "not one the call may be transferred to" in out["outside"]["result"]
    assert out["warm"]["is_error"] is False
    assert '"status": "calling"' in out["warm"]["result"]
    # Until the person answered, the caller stayed with the agent.
    assert out["calls_during"] == 0

    # The person's call: the summary first, then the conference.
    create = out["create"]
    fields = parse_qsl(create.body.decode(), keep_blank_values=True)
    assert ("To", PERSON) in fields and ("From", OUR_NUMBER) in fields
    assert ("Timeout", "20") in fields
    assert dict(fields)["StatusCallback"] == (
        f"https://{HOST}/webhooks/twilio/transfer-status?call={CALL_SID}"
    )
    assert [v for k, v in fields if k == "StatusCallbackEvent"] == [
        "initiated",
        "ringing",
        "answered",
        "completed",
    ]
    assert dict(fields)["Twiml"] == (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        "<Say>Ada wants a refund for order 42 &amp; a call back &lt;today&gt;.</Say>"
        '<Dial><Conference beep="false" endConferenceOnExit="true" '
        f'startConferenceOnEnter="true">patter-{CALL_SID}</Conference></Dial></Response>'
    )

    # Answered: the caller's call is moved into the conference, on hold music.
    (move,) = out["updates"]
    assert move.form == {
        "Twiml": '<?xml version="1.0" encoding="UTF-8"?><Response><Dial><Conference '
        'beep="false" endConferenceOnExit="true" startConferenceOnEnter="false" '
        f'statusCallback="https://{HOST}/webhooks/twilio/conference-status" '
        'statusCallbackEvent="start end join leave" statusCallbackMethod="POST" '
        f'waitUrl="{HOLD_MUSIC_URL.replace("&", "&amp;")}">patter-{CALL_SID}'
        "</Conference></Dial></Response>"
    }
    # The agent's stream ended with the carrier's stop; no hangup was sent.
    assert out["end"]["reason"] == "carrier_stop"
    assert all("Status" not in r.form for r in out["updates"])


async def test_warm_transfer_not_answered_falls_back_to_the_agent() -> None:
    out = await _run_transfer("no-answer")
    assert out["warm"]["is_error"] is False
    # The caller was never moved; the agent was told, and still has them.
    assert out["updates"] == []
    note = out["note"]["text"]
    assert f"The warm transfer to {PERSON} did not go through (no answer)" in note
    assert "the caller is still with you" in note


async def _telnyx_transfer(person_event: str) -> dict[str, Any]:
    fake = FakeElevenLabs(agent_id="agent_warm")
    seen = Recorded()
    person_id = "v3:fake-outbound"  # what the fake Telnyx API answers a dial with
    with provider_server(fake) as provider, rest_server(telnyx_responder) as rest:
        phone = telnyx_phone(
            rest,
            elevenlabs_base_url=provider.base_url,
            phone_number=TELNYX_NUMBER,
            telnyx_connection_id="conn-warm",
        )
        agent = phone.agent(
            provider="elevenlabs", agent_id="agent_warm", transfer_allowlist=[PERSON]
        )
        out: dict[str, Any] = {}
        async with serving(phone, agent, seen) as port:
            stream = await answer_and_stream(port, rest)

            async def carrier() -> None:
                async with carrier_stream(
                    local_ws_url(port, stream["stream_url"]),
                    headers={"x-telnyx-streaming-auth-token": stream["stream_auth_token"]},
                    carrier="telnyx",
                ) as call:
                    await call.start(call_id=TELNYX_CALL, caller=CALLER, callee=CALLEE)
                    await provider.wait_for(of_type("conversation_initiation_client_data"))
                    provider.push(
                        lambda: fake.tool_call(
                            "transfer_call",
                            {"number": PERSON, "mode": "warm", "summary": SUMMARY},
                            "warm",
                        )
                    )
                    out["warm"] = await provider.wait_for(lambda m: m.get("tool_call_id") == "warm")
                    dial = await asyncio.to_thread(rest.wait_for, lambda r: r.path == "/v2/calls")
                    out["dial"] = dial.json
                    leg = dict(
                        call_payload(person_id),
                        client_state=dial.json["client_state"],
                        direction="outgoing",
                    )
                    if person_event == "answered":
                        for event_type in ("call.initiated", "call.answered"):
                            await telnyx_webhook_sync(port, event_type, leg)
                        out["speak"] = await asyncio.to_thread(
                            rest.wait_for, lambda r: r.path.endswith("/actions/speak")
                        )
                        await telnyx_webhook_sync(port, "call.speak.ended", leg)
                        out["bridge"] = await asyncio.to_thread(
                            rest.wait_for, lambda r: r.path.endswith("/actions/bridge")
                        )
                    else:
                        await telnyx_webhook_sync(
                            port, "call.hangup", dict(leg, hangup_cause="user_busy")
                        )
                        out["note"] = await provider.wait_for(of_type("user_message"))
                    await call.stop()
                    await call.wait(call.closed.is_set, what="the stream closing")

            await run_in_asyncio_thread(carrier, timeout=30)
            await seen.wait_ended()
        out["paths"] = [unquote(r.path) for r in list(rest.requests)]
        out["requests"] = list(rest.requests)
    return out


async def telnyx_webhook_sync(port: int, event_type: str, payload: dict[str, Any]) -> None:
    answer = await telnyx_webhook(port, SIGNING_KEY, event_type, payload)
    assert answer.status == 200, answer


async def test_telnyx_warm_transfer_speaks_the_summary_then_bridges() -> None:
    out = await _telnyx_transfer("answered")
    assert out["warm"]["is_error"] is False
    dial = out["dial"]
    assert (dial["to"], dial["from"], dial["timeout_secs"]) == (PERSON, TELNYX_NUMBER, 20)
    assert dial["connection_id"] == "conn-warm" and "stream_url" not in dial
    speak = out["speak"]
    assert unquote(speak.path) == "/v2/calls/v3:fake-outbound/actions/speak"
    assert speak.json["payload"] == SUMMARY
    bridge = out["bridge"]
    assert unquote(bridge.path) == f"/v2/calls/{TELNYX_CALL}/actions/bridge"
    assert bridge.json["call_control_id"] == "v3:fake-outbound"
    # The agent's stream is stopped before the two are bridged; the person's
    # leg never gets a stream (or an agent) of its own.
    paths = out["paths"]
    stop = paths.index(f"/v2/calls/{TELNYX_CALL}/actions/streaming_stop")
    assert stop < paths.index(f"/v2/calls/{TELNYX_CALL}/actions/bridge")
    assert not any(p.startswith("/v2/calls/v3:fake-outbound/actions/streaming") for p in paths)


async def test_telnyx_warm_transfer_not_answered_tells_the_agent() -> None:
    out = await _telnyx_transfer("busy")
    assert f"The warm transfer to {PERSON} did not go through (busy)" in out["note"]["text"]
    assert not any(p.endswith(("/actions/bridge", "/actions/streaming_stop")) for p in out["paths"])
