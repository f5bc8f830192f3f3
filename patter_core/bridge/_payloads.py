"""What the application's callbacks hear, as typed values; dicts only at the edge.

The bridge fires ``on_call_start`` with a :class:`CallStarted`,
``on_transcript`` with a :class:`TranscriptLine` and ``on_call_end`` with a
:class:`CallEnded` (its ``reason`` an :class:`EndReason`). The user's
callbacks receive the documented dicts; ``as_dict`` builds them, and is the
only place that does.

Timestamps: every ``now`` the bridge is given comes from the runtime's
monotonic clock (deadlines must not jump with the wall clock). The times a
user sees (``started_at``, ``ended_at``, a transcript line's ``time``, a
turn's ``speech_stopped_at``) are wall-clock seconds, so ``as_dict`` takes
``to_wall``, which turns a monotonic reading into one; the default keeps
the number as it is (a test's plain float clock).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from .._deadlines import ToWall, same_time
from ._metrics import CallMetrics

__all__ = [
    "CallEnded",
    "CallStarted",
    "CallbackPayload",
    "EndReason",
    "ToWall",
    "TranscriptLine",
    "same_time",
]


class EndReason(enum.Enum):
    """Why a call ended; the value is ``on_call_end``'s ``reason``."""

    #: The application ended it (``hangup()``; ``detail`` says why).
    HANGUP = "hangup"
    #: The model called the built-in ``end_call`` tool (after its goodbye).
    END_CALL = "end_call"
    #: An answering machine got the voicemail message.
    VOICEMAIL = "voicemail"
    #: A fax machine answered.
    FAX = "fax"
    #: The provider refused, failed, or was not ready in time.
    PROVIDER_ERROR = "provider_error"
    #: The provider closed the session.
    PROVIDER_CLOSED = "provider_closed"
    #: The provider's own session cap was reached.
    PROVIDER_LIMIT = "provider_limit"
    #: No valid ``start`` in time.
    START_TIMEOUT = "start_timeout"
    #: A started call went without media.
    MEDIA_TIMEOUT = "media_timeout"
    #: The stream token was missing, wrong or replayed (closed 1008).
    TOKEN_REJECTED = "token_rejected"
    #: Nobody spoke after the reprompts.
    SILENCE = "silence"
    #: The agent's ``max_duration`` was reached.
    MAX_DURATION = "max_duration"
    #: The carrier sent ``stop``.
    CARRIER_STOP = "carrier_stop"
    #: The carrier's media socket closed or was lost.
    CARRIER_DISCONNECTED = "carrier_disconnected"
    #: The carrier's stream broke its protocol (e.g. a codec we cannot decode).
    CARRIER_PROTOCOL_ERROR = "carrier_protocol_error"
    #: The server stopped and the call's grace time was over.
    SERVER_SHUTDOWN = "server_shutdown"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted:
    """``on_call_start``: who is calling whom (the custom parameters carry no
    stream token: it is ours, never the application's)."""

    call_id: str
    stream_id: str
    caller: str
    callee: str
    carrier: str
    custom_parameters: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self, to_wall: ToWall = same_time) -> dict[str, object]:
        return {
            "call_id": self.call_id,
            "stream_id": self.stream_id,
            "caller": self.caller,
            "callee": self.callee,
            "carrier": self.carrier,
            "custom_parameters": dict(self.custom_parameters),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptLine:
    """One final segment: ``on_transcript`` hears it with its call id; in
    ``on_call_end``'s ``transcript`` it is ``{"role", "text", "time"}``."""

    role: str
    text: str
    #: The bridge's ``now`` when the segment was final.
    time: float
    call_id: str = ""

    def entry(self, to_wall: ToWall = same_time) -> dict[str, object]:
        """The segment as ``on_call_end``'s transcript lists it."""
        return {"role": self.role, "text": self.text, "time": to_wall(self.time)}

    def as_dict(self, to_wall: ToWall = same_time) -> dict[str, object]:
        return {"call_id": self.call_id, **self.entry(to_wall)}


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded:
    """``on_call_end``: who, when, why, what was said, and what was counted.

    Empty ids for a stream that was never accepted. ``detail``,
    ``carrier_errors`` (when not 0), ``provider_close`` and
    ``transferred_to`` appear in the dict only where they apply.
    """

    call_id: str
    stream_id: str
    caller: str
    callee: str
    carrier: str
    started_at: float | None
    ended_at: float
    reason: EndReason
    transcript: tuple[TranscriptLine, ...] = ()
    frames_in: int = 0
    frames_buffered: int = 0
    frames_dropped: int = 0
    #: The application's, the carrier's or the provider's words on the end.
    detail: str | None = None
    carrier_errors: int = 0
    #: The provider's close code and reason, when it closed the session.
    provider_close: tuple[int, str] | None = None
    transferred_to: str | None = None
    metrics: CallMetrics | None = None

    def as_dict(self, to_wall: ToWall = same_time) -> dict[str, object]:
        started = self.started_at
        out: dict[str, object] = {
            "call_id": self.call_id,
            "stream_id": self.stream_id,
            "caller": self.caller,
            "callee": self.callee,
            "carrier": self.carrier,
            "started_at": to_wall(started) if started is not None else None,
            "ended_at": to_wall(self.ended_at),
            "reason": self.reason.value,
            "transcript": [line.entry(to_wall) for line in self.transcript],
            "frames_in": self.frames_in,
            "frames_buffered": self.frames_buffered,
            "frames_dropped": self.frames_dropped,
        }
        if self.detail is not None:
            out["detail"] = self.detail
        if self.carrier_errors:
            out["carrier_errors"] = self.carrier_errors
        if self.provider_close is not None:
            out["provider_close_code"], out["provider_close_reason"] = self.provider_close
        if self.transferred_to is not None:
            out["transferred_to"] = self.transferred_to
        if self.metrics is not None:
            out["metrics"] = self.metrics.as_dict(to_wall)
        return out


CallbackPayload = CallStarted | TranscriptLine | CallEnded
