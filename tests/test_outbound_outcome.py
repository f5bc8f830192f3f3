"""The outcome of an outbound call, pure: carrier webhooks in, status and outcome out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_anyio.calls._controls import TwilioControl
from patter_core.audio import ULAW_8K
from patter_core.bridge import BridgeConfig
from patter_core.bridge._config import call_info
from patter_core.bridge._tools import decide
from patter_core.http import HttpRequest
from patter_core.media import Start
from patter_core.providers import SendText, ToolCall, ToolResult
from patter_core.webhooks import (
    AmdCallback,
    CallOutcome,
    CallStatusCallback,
    IncomingCall,
    OutboundCallState,
    StreamTokens,
    TelnyxEvent,
    TelnyxRest,
    TelnyxWarmTransfer,
    TransferStep,
    TwilioCallFlow,
    TwilioRest,
    TwilioWarmTransfer,
    parse_call_status,
    parse_form,
    parse_telnyx_webhook,
)
from patter_core.webhooks._outcome import machine_detection_kind
from patter_core.webhooks._warm_transfer import warm_leg_caller
from tests.test_bridge_support import FakeControl, Rig, http_calls

SID = "CA" + "1" * 32


def _status(status: str, seq: int | None, **extra: Any) -> CallStatusCallback:
    return CallStatusCallback(
        call_sid=SID, account_sid="AC1", call_status=status, sequence_number=seq, **extra
    )


def _telnyx(event_type: str, **payload: Any) -> TelnyxEvent:
    body = {
        "data": {
            "event_type": event_type,
            "id": f"ev-{event_type}-{sorted(payload.items())}",
            "payload": {"call_control_id": "v3:leg", **payload},
        }
    }
    return parse_telnyx_webhook(json.dumps(body).encode())


def test_twilio_statuses_once_in_order_late_and_repeated_ones_dropped() -> None:
    state = OutboundCallState(SID, carrier="twilio", placed_at=100.0)
    seen = [
        state.twilio_status(_status("initiated", 0), 100.1).status,
        state.twilio_status(_status("ringing", 2), 101.0).status,
        # Sequence 1 arrives after 2: stale, dropped.
        state.twilio_status(_status("initiated", 1), 101.1).status,
        state.twilio_status(_status("in-progress", 3), 104.0).status,
        # No sequence number, a status going back: dropped.
        state.twilio_status(_status("ringing", None), 104.1).status,
    ]
    assert seen == ["initiated", "ringing", None, "answered", None]
    assert state.outcome is None
    end = state.twilio_status(_status("completed", 4, call_duration=31), 135.0)
    assert (end.status, end.outcome) == ("completed", CallOutcome.ANSWERED)
    assert state.duration == 31.0 and state.ended_at == 135.0
    # Nothing after the end (a redelivery).
    assert state.twilio_status(_status("completed", 5), 136.0).outcome is None


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("busy", CallOutcome.BUSY),
        ("no-answer", CallOutcome.NO_ANSWER),
        ("failed", CallOutcome.FAILED),
        ("canceled", CallOutcome.CANCELED),
    ],
)
def test_twilio_unanswered_outcomes(status: str, outcome: CallOutcome) -> None:
    state = OutboundCallState(SID, carrier="twilio", placed_at=0.0)
    update = state.twilio_status(_status(status, 0, sip_response_code=486), 5.0)
    assert update.outcome is outcome and state.duration is None
    assert state.carrier_end_reason == f"{status} (SIP 486)"


def test_twilio_amd_once_and_voicemail_outcome() -> None:
    state = OutboundCallState(SID, carrier="twilio", placed_at=0.0)
    state.twilio_status(_status("in-progress", 0), 1.0)
    amd = state.twilio_amd(
        AmdCallback(call_sid=SID, account_sid="AC1", answered_by="machine_end_silence"), 3.0
    )
    assert amd.machine is not None
    assert (amd.machine.result, amd.machine.raw) == ("machine", "machine_end_silence")
    again = state.twilio_amd(AmdCallback(call_sid=SID, account_sid="AC1", answered_by="human"), 4.0)
    assert again.machine is None
    assert state.twilio_status(_status("completed", 1), 9.0).outcome is CallOutcome.VOICEMAIL


def test_twilio_completed_without_answered_counts_as_answered() -> None:
    state = OutboundCallState(SID, carrier="twilio", placed_at=0.0)
    update = state.twilio_status(_status("completed", 3, call_duration=12), 20.0)
    assert update.outcome is CallOutcome.ANSWERED and state.answered_at == 8.0
    assert state.duration == 12.0


@pytest.mark.parametrize(
    ("cause", "outcome"),
    [
        ("user_busy", CallOutcome.BUSY),
        ("timeout", CallOutcome.NO_ANSWER),
        ("no_answer", CallOutcome.NO_ANSWER),
        ("originator_cancel", CallOutcome.CANCELED),
        ("call_rejected", CallOutcome.FAILED),
        ("unspecified", CallOutcome.FAILED),
    ],
)
def test_telnyx_hangup_cause_of_an_unanswered_call(cause: str, outcome: CallOutcome) -> None:
    state = OutboundCallState("v3:leg", carrier="telnyx", placed_at=0.0)
    assert state.telnyx_event(_telnyx("call.initiated", direction="outgoing"), 0.1).status == (
        "initiated"
    )
    update = state.telnyx_event(_telnyx("call.hangup", hangup_cause=cause), 20.0)
    assert update.outcome is outcome and state.carrier_end_reason == cause


def test_telnyx_answered_machine_then_hangup_is_voicemail() -> None:
    state = OutboundCallState("v3:leg", carrier="telnyx", placed_at=0.0)
    state.telnyx_event(_telnyx("call.initiated"), 0.1)
    assert state.telnyx_event(_telnyx("call.answered"), 5.0).status == "answered"
    machine = state.telnyx_event(_telnyx("call.machine.detection.ended", result="machine"), 7.0)
    assert machine.machine is not None and machine.machine.result == "machine"
    # The greeting's end is the same machine: not reported twice.
    assert (
        state.telnyx_event(
            _telnyx("call.machine.greeting.ended", result="beep_detected"), 9.0
        ).machine
        is None
    )
    end = state.telnyx_event(_telnyx("call.hangup", hangup_cause="normal_clearing"), 25.0)
    assert (end.status, end.outcome) == ("completed", CallOutcome.VOICEMAIL)
    assert state.duration == 20.0


def test_machine_detection_kinds() -> None:
    kinds = {
        raw: machine_detection_kind(raw)
        for raw in (
            "human",
            "fax",
            "unknown",
            "machine_start",
            "machine_end_beep",
            "machine",
            "not_sure",
            "beep_detected",
        )
    }
    assert kinds == {
        "human": "human",
        "fax": "fax",
        "unknown": "unknown",
        "machine_start": "machine",
        "machine_end_beep": "machine",
        "machine": "machine",
        "not_sure": "unknown",
        "beep_detected": "machine",
    }


def test_variables_go_in_parameters_and_fill_the_prompt() -> None:
    flow = TwilioCallFlow(StreamTokens(b"k" * 32), webhook_host="abc.ngrok.app", rest=None)
    call = IncomingCall(
        call_sid=SID,
        account_sid="AC1",
        from_="+15550001111",
        to="+15550002222",
        direction="outbound-api",
        call_status="in-progress",
    )
    twiml = flow.answer(call, 0.0, variables={"name": 'Ada "A" & <B>'})
    assert '<Parameter name="var_name" value="Ada &quot;A&quot; &amp; &lt;B&gt;" />' in twiml
    assert f'url="wss://abc.ngrok.app/ws/stream/{SID}"' in twiml
    start = Start(
        stream_id="MZ1",
        call_id=SID,
        media_format=ULAW_8K,
        custom_parameters={
            "caller": "+15550001111",
            "callee": "+15550002222",
            "var_name": "Ada",
            "name": "not a variable: no var_ prefix",
            "stream_token": "secret",
        },
    )
    info = call_info(
        start,
        "twilio",
        BridgeConfig(
            instructions="Call {name} at {callee}. {stream_token}", first_message="Hi {name}"
        ),
        (),
    )
    assert info.instructions == "Call Ada at +15550002222. {stream_token}"
    assert info.first_message == "Hi Ada"


def test_transfer_modes_and_the_allowlist_for_both() -> None:
    config = BridgeConfig(transfer_allowlist=frozenset({"+14155550123"}))
    warm = decide(
        config,
        "transfer_call",
        json.dumps({"number": "+1 (415) 555-0123", "mode": "warm", "summary": "Refund."}),
    )
    assert (warm.kind, warm.target, warm.mode, warm.summary) == (
        "transfer",
        "+14155550123",
        "warm",
        "Refund.",
    )
    cold = decide(config, "transfer_call", '{"number": "+14155550123"}')
    assert (cold.kind, cold.mode) == ("transfer", "cold")
    for arguments, words in (
        ({"number": "+19005550000", "mode": "warm"}, "not one the call may be transferred to"),
        ({"number": "+19005550000"}, "not one the call may be transferred to"),
        ({"number": "+14155550123", "mode": "lukewarm"}, "mode must be cold or warm"),
        ({"number": "+14155550123", "mode": "warm", "summary": "x" * 1501}, "at most 1500"),
        ({"number": "+14155550123", "mode": "warm", "summary": 5}, "summary must be text"),
    ):
        refused = decide(config, "transfer_call", json.dumps(arguments))
        assert refused.kind == "error" and words in json.loads(refused.output)["error"]
    off = decide(BridgeConfig(), "transfer_call", '{"number": "+14155550123", "mode": "warm"}')
    assert json.loads(off.output) == {"error": "transfers are disabled"}


def test_person_status_decides_the_caller_move_or_the_note() -> None:
    rest = TwilioRest("AC" + "a" * 32, "token", base_url="https://api.example.test")
    warm = TwilioWarmTransfer(rest, webhook_host="abc.ngrok.app")

    def person(status: str) -> CallStatusCallback:
        form = parse_form(
            f"CallSid=CA9&AccountSid=AC1&CallStatus={status}&To=%2B14155550123".encode()
        )
        return parse_call_status(form)

    moved = warm.on_person_status(SID, person("in-progress"))
    assert moved.step is TransferStep.MOVE_CALLER
    ((purpose, request),) = moved.requests
    assert purpose == "warm_transfer" and request.url.endswith(f"/Calls/{SID}.json")
    for status, why in (("busy", "busy"), ("no-answer", "no answer"), ("failed", "failed")):
        told = warm.on_person_status(SID, person(status))
        assert told.step is TransferStep.TELL_AGENT and told.requests == ()
        assert f"to +14155550123 did not go through ({why})" in told.note
    for status in ("initiated", "ringing", "completed"):
        assert warm.on_person_status(SID, person(status)).step is TransferStep.NOTHING


class _WarmControl(FakeControl):
    def warm_transfer(self, call_id: str, target: str, summary: str) -> HttpRequest | None:
        return HttpRequest(
            method="POST", url=f"https://carrier.invalid/{call_id}/warm", body=summary.encode()
        )


def _warm_call(rig: Rig) -> list[Any]:
    rig.connect()
    arguments = json.dumps({"number": "+14155550123", "mode": "warm", "summary": "Refund."})
    return rig.provider([ToolCall(call_id="w", name="transfer_call", arguments=arguments)], 2.0)


def test_warm_transfer_keeps_the_caller_and_the_agent_can_be_told() -> None:
    config = BridgeConfig(transfer_allowlist=frozenset({"+14155550123"}))
    rig = Rig(config)
    rig.bridge._control = _WarmControl()
    out = _warm_call(rig)
    (call,) = http_calls(out)
    assert call.purpose == "warm_transfer" and call.request.body == b"Refund."
    assert rig.session.commands[-1] == ToolResult(
        call_id="w", output='{"status": "calling", "number": "+14155550123"}'
    )
    assert not rig.bridge.ended  # the caller stays with the agent
    rig.bridge.tell_agent("It did not go through.", 3.0)
    assert rig.session.commands[-1] == SendText(text="It did not go through.")


def test_warm_transfer_without_carrier_support_is_a_clear_tool_error() -> None:
    rig = Rig(BridgeConfig(transfer_allowlist=frozenset({"+14155550123"})))
    out = _warm_call(rig)  # FakeControl, like Telnyx here, has no warm_transfer
    assert http_calls(out) == []
    result = rig.session.commands[-1]
    assert isinstance(result, ToolResult) and result.is_error
    assert json.loads(result.output) == {
        "error": "warm transfers are not available here; use mode cold"
    }


def test_telnyx_warm_transfer_steps_once_each() -> None:
    rest = TelnyxRest("KEY", base_url="https://api.example.test/v2")
    warm = TelnyxWarmTransfer(rest, connection_id="conn", webhook_host="abc.ngrok.app")
    dial = warm.dial_person(
        caller_id="v3:caller", target="+14155550123", from_="+15550001111", summary="Refund."
    )
    body = json.loads(dial.body)
    assert (body["to"], body["from"], body["timeout_secs"]) == ("+14155550123", "+15550001111", 20)
    state = body["client_state"]
    assert warm_leg_caller(state) == "v3:caller" and warm_leg_caller("bm9wZQ==") is None
    assert "stream_url" not in body  # the person is never streamed to an agent

    def person(event_type: str, **payload: Any) -> TelnyxEvent:
        return _telnyx(event_type, call_control_id="v3:person", client_state=state, **payload)

    spoken = warm.on_event(person("call.answered"))
    ((purpose, speak),) = spoken.requests
    assert purpose == "warm_summary" and speak.url.endswith("/calls/v3%3Aperson/actions/speak")
    assert json.loads(speak.body)["payload"] == "Refund."
    assert warm.on_event(person("call.answered", again=1)).requests == ()  # redelivered
    joined = warm.on_event(person("call.speak.ended"))
    assert joined.step is TransferStep.MOVE_CALLER
    assert [(p, r.url.rsplit("/", 3)[-3:]) for p, r in joined.requests] == [
        ("streaming_stop", ["v3%3Acaller", "actions", "streaming_stop"]),
        ("warm_transfer", ["v3%3Acaller", "actions", "bridge"]),
    ]
    assert json.loads(joined.requests[1][1].body)["call_control_id"] == "v3:person"
    # Done: the person's later hang-up tells nobody anything.
    assert warm.on_event(person("call.hangup", hangup_cause="normal_clearing")).step is (
        TransferStep.NOTHING
    )

    warm.dial_person(caller_id="v3:caller", target="+14155550123", from_="+1555", summary="")
    told = warm.on_event(person("call.hangup", hangup_cause="timeout"))
    assert told.step is TransferStep.TELL_AGENT
    assert "to +14155550123 did not go through (no answer)" in told.note


def test_twilio_warm_transfer_needs_our_number_and_a_summary_that_fits() -> None:
    rest = TwilioRest("AC" + "a" * 32, "token", base_url="https://api.example.test")
    flow = TwilioCallFlow(StreamTokens(b"k" * 32), webhook_host="abc.ngrok.app", rest=rest)
    control = TwilioControl(rest, "abc.ngrok.app", flow, "+15550001111")
    request = control.warm_transfer(SID, "+14155550123", "Refund.")
    assert request is not None and request.url.endswith("/Calls.json")
    # 1,500 ampersands are 7,500 characters of TwiML: past Twilio's 4,000.
    assert control.warm_transfer(SID, "+14155550123", "&" * 1500) is None
    assert TwilioControl(rest, "abc.ngrok.app", flow, None).warm_transfer(SID, "+1", "x") is None


_RANK = {"initiated": 0, "ringing": 1, "answered": 2}


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "queued",
                    "initiated",
                    "ringing",
                    "in-progress",
                    "completed",
                    "busy",
                    "no-answer",
                    "failed",
                    "canceled",
                ]
            ),
            st.one_of(st.none(), st.integers(0, 20)),
        ),
        max_size=25,
    )
)
@settings(max_examples=300, deadline=None)
def test_twilio_statuses_any_order_each_once_terminal_last(
    events: list[tuple[str, int | None]],
) -> None:
    state = OutboundCallState(SID, carrier="twilio", placed_at=0.0)
    reported: list[str] = []
    outcomes = []
    for i, (status, seq) in enumerate(events):
        update = state.twilio_status(_status(status, seq), float(i))
        if update.status:
            reported.append(update.status)
        if update.outcome:
            outcomes.append(update.outcome)
    assert len(reported) == len(set(reported))  # each status once
    progress = [_RANK[s] for s in reported if s in _RANK]
    assert progress == sorted(progress)  # never back
    terminal = [s for s in reported if s not in _RANK]
    assert len(terminal) <= 1 and len(outcomes) == len(terminal)
    if terminal:
        assert reported[-1] == terminal[0]  # nothing after the end
        assert state.finished and state.ended_at is not None
