"""The outcome of an outbound call, pure: carrier webhooks in, status and outcome out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from patter_core.audio import ULAW_8K
from patter_core.bridge import BridgeConfig
from patter_core.bridge._config import call_info
from patter_core.media import Start
from patter_core.webhooks import (
    AmdCallback,
    CallOutcome,
    CallStatusCallback,
    IncomingCall,
    OutboundCallState,
    StreamTokens,
    TelnyxEvent,
    TwilioCallFlow,
    machine_detection_kind,
    parse_telnyx_webhook,
)

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
    assert '<Parameter name="name" value="Ada &quot;A&quot; &amp; &lt;B&gt;" />' in twiml
    assert f'url="wss://abc.ngrok.app/ws/stream/{SID}"' in twiml
    start = Start(
        stream_id="MZ1",
        call_id=SID,
        media_format=ULAW_8K,
        custom_parameters={
            "caller": "+15550001111",
            "callee": "+15550002222",
            "name": "Ada",
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
