"""The typed callback payloads and the documented dicts built from them.

The bridge fires ``CallStarted``, ``TranscriptLine`` and ``CallEnded``; the
user's callbacks get ``as_dict(to_wall)``: exactly the keys README.md
documents, the optional ones only where they apply, and every timestamp
turned from the bridge's monotonic clock into wall-clock seconds.
"""

from __future__ import annotations

import pytest

from patter_anyio._clock import Clock
from patter_core.bridge import CallEnded, CallStarted, EndReason, FireCallback, TranscriptLine
from patter_core.bridge._metrics import BargeIn, CallMetrics, LatencySummary, Turn
from tests.test_bridge_support import Rig, connected, start

# A monotonic reading of 100.0 is the wall-clock second 1_700_000_100.0.
CLOCK = Clock(monotonic=lambda: 100.0, wall=lambda: 1_700_000_100.0)
WALL = 1_700_000_000.0


def test_call_started_is_the_documented_dict() -> None:
    started = CallStarted(
        call_id="CA1",
        stream_id="MZ1",
        caller="+15550001",
        callee="+15550002",
        carrier="twilio",
        custom_parameters={"var_name": "Ann"},
    )
    as_dict = started.as_dict(CLOCK.to_wall)
    assert as_dict == {
        "call_id": "CA1",
        "stream_id": "MZ1",
        "caller": "+15550001",
        "callee": "+15550002",
        "carrier": "twilio",
        "custom_parameters": {"var_name": "Ann"},
    }
    # The user may change their copy; the payload stays as it was.
    as_dict["custom_parameters"]["var_name"] = "Bob"  # type: ignore[index]
    assert started.custom_parameters == {"var_name": "Ann"}


def test_transcript_line_for_on_transcript_and_for_the_call_end() -> None:
    line = TranscriptLine(call_id="CA1", role="user", text="Hi there", time=12.5)
    assert line.as_dict(CLOCK.to_wall) == {
        "call_id": "CA1",
        "role": "user",
        "text": "Hi there",
        "time": WALL + 12.5,
    }
    assert line.entry(CLOCK.to_wall) == {"role": "user", "text": "Hi there", "time": WALL + 12.5}
    # Without a clock (the core's tests) the number is kept as it is.
    assert line.as_dict()["time"] == 12.5


def _ended(**changes: object) -> CallEnded:
    fields: dict[str, object] = {
        "call_id": "CA1",
        "stream_id": "MZ1",
        "caller": "+15550001",
        "callee": "+15550002",
        "carrier": "telnyx",
        "started_at": 10.0,
        "ended_at": 25.0,
        "reason": EndReason.CARRIER_STOP,
        "transcript": (TranscriptLine(role="assistant", text="Hello", time=11.0),),
        "frames_in": 700,
        "frames_buffered": 20,
        "frames_dropped": 1,
    }
    fields.update(changes)
    return CallEnded(**fields)  # type: ignore[arg-type]


def test_call_ended_has_only_the_keys_that_apply() -> None:
    assert _ended().as_dict(CLOCK.to_wall) == {
        "call_id": "CA1",
        "stream_id": "MZ1",
        "caller": "+15550001",
        "callee": "+15550002",
        "carrier": "telnyx",
        "started_at": WALL + 10.0,
        "ended_at": WALL + 25.0,
        "reason": "carrier_stop",
        "transcript": [{"role": "assistant", "text": "Hello", "time": WALL + 11.0}],
        "frames_in": 700,
        "frames_buffered": 20,
        "frames_dropped": 1,
    }


def test_call_ended_with_every_optional_key() -> None:
    metrics = CallMetrics(
        duration_s=15.0,
        turns=(Turn(speech_stopped_at=12.0, first_audio_at=12.5),),
        latency_ms=LatencySummary.of([500.0]),
        barge_ins=(BargeIn(at=13.0, quiet_ms=80.0),),
        frames_in=700,
        frames_out=650,
        frames_buffered=20,
        frames_dropped=1,
        usage={"input_tokens": 9},
    )
    ended = _ended(
        reason=EndReason.PROVIDER_CLOSED,
        detail="bye",
        carrier_errors=2,
        provider_close=(1000, "max_duration_exceeded"),
        transferred_to="+15550009",
        metrics=metrics,
    )
    as_dict = ended.as_dict(CLOCK.to_wall)
    assert list(as_dict)[-7:] == [
        "frames_dropped",
        "detail",
        "carrier_errors",
        "provider_close_code",
        "provider_close_reason",
        "transferred_to",
        "metrics",
    ]
    assert as_dict["reason"] == "provider_closed"
    assert (as_dict["detail"], as_dict["carrier_errors"]) == ("bye", 2)
    assert (as_dict["provider_close_code"], as_dict["provider_close_reason"]) == (
        1000,
        "max_duration_exceeded",
    )
    assert as_dict["transferred_to"] == "+15550009"
    assert as_dict["metrics"] == {
        "duration_s": 15.0,
        "turns": [
            {"speech_stopped_at": WALL + 12.0, "first_audio_at": WALL + 12.5, "latency_ms": 500.0}
        ],
        "latency_ms": {"p50": 500.0, "p95": 500.0, "max": 500.0},
        "barge_ins": 1,
        "barge_in_details": [{"at": WALL + 13.0, "quiet_ms": 80.0}],
        "frames_in": 700,
        "frames_out": 650,
        "frames_buffered": 20,
        "frames_dropped": 1,
        "usage": {"input_tokens": 9},
    }


def test_a_stream_never_started_has_no_start_time() -> None:
    as_dict = _ended(started_at=None, reason=EndReason.TOKEN_REJECTED).as_dict(CLOCK.to_wall)
    assert as_dict["started_at"] is None and as_dict["reason"] == "token_rejected"


#: Every ``on_call_end`` reason the README documents, and the enum's values.
DOCUMENTED_REASONS = {
    EndReason.HANGUP: "hangup",
    EndReason.END_CALL: "end_call",
    EndReason.VOICEMAIL: "voicemail",
    EndReason.FAX: "fax",
    EndReason.PROVIDER_ERROR: "provider_error",
    EndReason.PROVIDER_CLOSED: "provider_closed",
    EndReason.PROVIDER_LIMIT: "provider_limit",
    EndReason.START_TIMEOUT: "start_timeout",
    EndReason.MEDIA_TIMEOUT: "media_timeout",
    EndReason.TOKEN_REJECTED: "token_rejected",
    EndReason.SILENCE: "silence",
    EndReason.MAX_DURATION: "max_duration",
    EndReason.CARRIER_STOP: "carrier_stop",
    EndReason.CARRIER_DISCONNECTED: "carrier_disconnected",
    EndReason.CARRIER_PROTOCOL_ERROR: "carrier_protocol_error",
    EndReason.SERVER_SHUTDOWN: "server_shutdown",
}


@pytest.mark.parametrize("reason", list(EndReason), ids=lambda r: r.name)
def test_each_end_reason_is_its_documented_string(reason: EndReason) -> None:
    as_dict = _ended(reason=reason, detail="why").as_dict()
    assert as_dict["reason"] == DOCUMENTED_REASONS[reason]
    assert type(as_dict["reason"]) is str  # JSON-ready, not the enum


def test_every_end_reason_is_listed() -> None:
    assert set(EndReason) == set(DOCUMENTED_REASONS)


def test_the_bridge_fires_typed_payloads() -> None:
    rig = Rig()
    rig.carrier(connected(), 1.0)
    started = [a for a in rig.carrier(start(), 1.0) if isinstance(a, FireCallback)]
    assert [type(a.payload) for a in started] == [CallStarted]
    ended = [a for a in rig.bridge.hangup("done", 4.0) if isinstance(a, FireCallback)]
    assert len(ended) == 1 and isinstance(ended[0].payload, CallEnded)
    payload = ended[0].payload
    assert payload.reason is EndReason.HANGUP and payload.detail == "done"
    assert (payload.started_at, payload.ended_at) == (1.0, 4.0)


def test_the_clock_converts_a_monotonic_reading_to_wall_time() -> None:
    assert CLOCK.to_wall(100.0) == 1_700_000_100.0
    assert CLOCK.to_wall(40.0) == 1_700_000_040.0
