"""What happened to an outbound call: its status changes, its AMD answer, its outcome.

Theory of operation. One :class:`OutboundCallState` per call this process
placed. The carrier's progress webhooks (Twilio ``StatusCallback`` and the
async AMD callback; Telnyx ``call.*`` and ``call.machine.*``) go in, each
with ``now``; an :class:`OutcomeUpdate` comes out saying what to report:

* ``status``: a new call status (``initiated``, ``ringing``, ``answered``,
  then one terminal status), each reported once, in order. Twilio may
  deliver callbacks out of order (PROTOCOLS.md section 2.3): one with a
  ``SequenceNumber`` not above the last one seen, or a status that would go
  back (``ringing`` after ``answered``), is dropped.
* ``machine``: the answering-machine result, once per call (the first one
  wins; DetectMessageEnd and Telnyx's greeting events may add later ones).
* ``outcome``: set once, with the terminal status.

Outcomes. A call that was answered ends ``answered``, or ``voicemail`` when
a machine took it (``fax`` when a fax did; it never reached anyone). A call
that never was answered ends as the carrier says: Twilio's ``busy``,
``no-answer``, ``failed``, ``canceled``; Telnyx's ``hangup_cause``
(``user_busy`` busy, ``timeout``/``no_answer`` no answer,
``originator_cancel`` canceled, anything else failed, PROTOCOLS.md section 4).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ._telnyx_events import (
    TelnyxCallAnswered,
    TelnyxCallHangup,
    TelnyxCallInitiated,
    TelnyxEvent,
    TelnyxMachineDetectionEnded,
    TelnyxMachineGreetingEnded,
)
from ._twilio_events import AmdCallback, CallStatusCallback

__all__ = [
    "CallOutcome",
    "MachineDetection",
    "OutboundCallState",
    "OutcomeUpdate",
    "machine_detection_kind",
]


class CallOutcome(enum.Enum):
    """How an outbound call ended."""

    ANSWERED = "answered"
    VOICEMAIL = "voicemail"
    FAX = "fax"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELED = "canceled"


# Our status words, in the order a call goes through them.
_ORDER = {"initiated": 0, "ringing": 1, "answered": 2}
_TERMINAL = frozenset({"completed", "busy", "no_answer", "failed", "canceled"})

# Twilio CallStatus -> our status word ("queued" says nothing new: dropped).
_TWILIO_STATUS = {
    "initiated": "initiated",
    "ringing": "ringing",
    "in-progress": "answered",
    "answered": "answered",
    "completed": "completed",
    "busy": "busy",
    "no-answer": "no_answer",
    "failed": "failed",
    "canceled": "canceled",
}
_UNANSWERED = {
    "busy": CallOutcome.BUSY,
    "no_answer": CallOutcome.NO_ANSWER,
    "failed": CallOutcome.FAILED,
    "canceled": CallOutcome.CANCELED,
}
# Telnyx hangup_cause of a call that was never answered -> our status word.
_TELNYX_UNANSWERED = {
    "user_busy": "busy",
    "timeout": "no_answer",
    "no_answer": "no_answer",
    "originator_cancel": "canceled",
}


def machine_detection_kind(raw: str) -> str:
    """``human``, ``machine``, ``fax`` or ``unknown`` for a carrier's AMD answer.

    Twilio: ``human``, ``fax``, ``unknown``, ``machine_start`` and
    ``machine_end_*``; Telnyx: ``human``, ``machine``, ``not_sure`` and the
    greeting results (``beep_detected``, ``ended``) that only a machine has.
    """
    if raw in ("human", "fax"):
        return raw
    if raw.startswith("machine") or raw in ("beep_detected", "ended"):
        return "machine"
    return "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineDetection:
    """An answering-machine result: ``result`` is human, machine, fax or unknown."""

    call_id: str
    result: str
    #: The carrier's own word (``machine_end_beep``, ``not_sure``, ...).
    raw: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OutcomeUpdate:
    """What one webhook changed (module doc); all None when nothing did."""

    status: str | None = None
    machine: MachineDetection | None = None
    outcome: CallOutcome | None = None


_NOTHING = OutcomeUpdate()


class OutboundCallState:
    """Pure: the carrier's view of one outbound call (module doc)."""

    def __init__(self, call_id: str, *, carrier: str, placed_at: float) -> None:
        self.call_id = call_id
        self.carrier = carrier
        self.placed_at = placed_at
        self.status: str | None = None
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.outcome: CallOutcome | None = None
        self.machine: MachineDetection | None = None
        #: The carrier's reason for the end (Twilio's CallStatus or SIP code,
        #: Telnyx's hangup_cause).
        self.carrier_end_reason: str | None = None
        #: Twilio's ``CallDuration`` (whole seconds), the carrier's own count.
        self.carrier_duration: int | None = None
        self._sequence = -1

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def duration(self) -> float | None:
        """Seconds from the answer to the end (None when never answered):
        the carrier's count when it gave one, else ours."""
        if self.answered_at is not None and self.carrier_duration is not None:
            return float(self.carrier_duration)
        if self.answered_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.answered_at)

    # -- Twilio ----------------------------------------------------------------

    def twilio_status(self, event: CallStatusCallback, now: float) -> OutcomeUpdate:
        if event.sequence_number is not None:
            if event.sequence_number <= self._sequence:
                return _NOTHING
            self._sequence = event.sequence_number
        status = _TWILIO_STATUS.get(event.call_status)
        if status is None:
            return _NOTHING
        reason = event.call_status
        if event.sip_response_code is not None and status in _UNANSWERED:
            reason = f"{event.call_status} (SIP {event.sip_response_code})"
        if status == "completed" and event.call_duration is not None:
            self.carrier_duration = event.call_duration
            if self.answered_at is None:
                # The answered callback was lost; the duration says when it was.
                self.answered_at = max(self.placed_at, now - event.call_duration)
        machine = None
        if event.answered_by and self.machine is None:
            machine = self._amd(event.answered_by)
        update = self._advance(status, now, reason)
        if machine is not None:
            return OutcomeUpdate(status=update.status, machine=machine, outcome=update.outcome)
        return update

    def twilio_amd(self, event: AmdCallback, now: float) -> OutcomeUpdate:
        del now
        machine = self._amd(event.answered_by) if self.machine is None else None
        return OutcomeUpdate(machine=machine) if machine else _NOTHING

    # -- Telnyx ----------------------------------------------------------------

    def telnyx_event(self, event: TelnyxEvent, now: float) -> OutcomeUpdate:
        if isinstance(event, TelnyxCallInitiated):
            return self._advance("initiated", now, None)
        if isinstance(event, TelnyxCallAnswered):
            return self._advance("answered", now, None)
        if isinstance(event, TelnyxCallHangup):
            cause = event.hangup_cause or "unspecified"
            if self.answered_at is not None:
                status = "completed"
            else:
                status = _TELNYX_UNANSWERED.get(cause, "failed")
            return self._advance(status, now, cause)
        if isinstance(event, TelnyxMachineDetectionEnded | TelnyxMachineGreetingEnded):
            raw = event.payload.get("result")
            if isinstance(event, TelnyxMachineGreetingEnded):
                raw = raw if raw in ("beep_detected", "ended") else "ended"
            if not isinstance(raw, str) or self.machine is not None:
                return _NOTHING
            return OutcomeUpdate(machine=self._amd(raw))
        return _NOTHING

    # -- the shared part ---------------------------------------------------------

    def _amd(self, raw: str) -> MachineDetection:
        self.machine = MachineDetection(
            call_id=self.call_id, result=machine_detection_kind(raw), raw=raw
        )
        return self.machine

    def _advance(self, status: str, now: float, reason: str | None) -> OutcomeUpdate:
        if self.outcome is not None or status == self.status:
            return _NOTHING
        if status in _ORDER:
            if self.status is not None and _ORDER.get(self.status, 99) >= _ORDER[status]:
                return _NOTHING
            self.status = status
            if status == "answered":
                self.answered_at = now
            return OutcomeUpdate(status=status)
        assert status in _TERMINAL
        self.status = status
        self.ended_at = now
        self.carrier_end_reason = reason
        self.outcome = self._outcome(status)
        return OutcomeUpdate(status=status, outcome=self.outcome)

    def _outcome(self, status: str) -> CallOutcome:
        if status in _UNANSWERED:
            return _UNANSWERED[status]
        kind = self.machine.result if self.machine else None
        if kind == "machine":
            return CallOutcome.VOICEMAIL
        if kind == "fax":
            return CallOutcome.FAX
        return CallOutcome.ANSWERED
