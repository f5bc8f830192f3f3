"""How a call ends: the carrier request it needs, and what ``on_call_end`` says.

Every ending of a :class:`~patter_core.bridge.CallBridge` runs one path; this
module holds its two decisions:

* which endings tell the carrier by REST (:data:`HANGUP_REASONS`: those where
  *we* end the call; a Telnyx call outlives its media socket, a Twilio one
  would go on to the next TwiML verb), and whether the caller first hears
  ``error_message`` (:data:`PROVIDER_FAILURES`, through the carrier's own
  voice: Twilio ``<Say>`` then ``<Hangup/>``, Telnyx ``speak`` then ``hangup``);
* the ``on_call_end`` payload (:class:`~patter_core.bridge.CallEnded`): who,
  when, why, the transcript, the caller audio counted by the hold
  (``frames_in``, ``frames_buffered``, ``frames_dropped``), and, where they
  apply, ``detail``, ``carrier_errors``, the provider's close code and reason,
  and ``transferred_to``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..http._types import HttpRequest
from ._config import CallInfo, CarrierControl
from ._inbound import CallerAudio
from ._metrics import CallMetrics
from ._payloads import CallEnded, EndReason, TranscriptLine

__all__ = [
    "HANGUP_REASONS",
    "PROVIDER_FAILURES",
    "EndNotes",
    "call_end_payload",
    "carrier_request",
]

HANGUP_REASONS = frozenset(
    {
        EndReason.END_CALL,
        EndReason.HANGUP,
        EndReason.VOICEMAIL,
        EndReason.FAX,
        EndReason.PROVIDER_ERROR,
        EndReason.PROVIDER_CLOSED,
        EndReason.PROVIDER_LIMIT,
        EndReason.MEDIA_TIMEOUT,
        EndReason.SERVER_SHUTDOWN,
        EndReason.SILENCE,
        EndReason.MAX_DURATION,
    }
)
PROVIDER_FAILURES = frozenset({EndReason.PROVIDER_ERROR, EndReason.PROVIDER_CLOSED})
#: Endings whose ``detail`` is the application's or the carrier's words.
_CARRIER_DETAIL = frozenset({EndReason.HANGUP, EndReason.CARRIER_PROTOCOL_ERROR})


def carrier_request(
    control: CarrierControl, call_id: str, reason: EndReason, error_message: str
) -> HttpRequest | None:
    """The REST request an ending needs (None: the carrier is left alone)."""
    if reason not in HANGUP_REASONS:
        return None
    request = None
    if reason in PROVIDER_FAILURES and error_message:
        request = control.leave_message(call_id, error_message)
    return request if request is not None else control.hangup(call_id)


@dataclass(slots=True)
class EndNotes:
    """What ``on_call_end`` says besides its reason, noted as the call goes."""

    #: A carrier protocol error, or the application's reason for hanging up.
    carrier_detail: str = ""
    #: Why the provider failed, in our words or its own (the first one kept).
    provider_detail: str = ""
    #: Carrier error reports (Telnyx ``error`` frames).
    carrier_errors: int = 0
    #: The number a transfer was asked for: no ending hangs up after it.
    transferred_to: str | None = None

    def provider_failed(self, detail: str) -> None:
        """Note why the provider failed, unless a reason is noted already."""
        if detail and not self.provider_detail:
            self.provider_detail = detail


def call_end_payload(
    info: CallInfo | None,
    notes: EndNotes,
    *,
    carrier: str,
    started_at: float | None,
    now: float,
    reason: EndReason,
    transcript: Sequence[TranscriptLine],
    inbound: CallerAudio,
    provider_close: tuple[int, str] | None,
    metrics: CallMetrics | None = None,
) -> CallEnded:
    """``on_call_end``'s payload (empty ids for a stream never accepted)."""
    detail = None
    if reason in _CARRIER_DETAIL:
        detail = notes.carrier_detail
    elif reason in PROVIDER_FAILURES:
        detail = notes.provider_detail
    return CallEnded(
        call_id=info.call_id if info is not None else "",
        stream_id=info.stream_id if info is not None else "",
        caller=info.caller if info is not None else "",
        callee=info.callee if info is not None else "",
        carrier=carrier,
        started_at=started_at,
        ended_at=now,
        reason=reason,
        transcript=tuple(transcript),
        frames_in=inbound.frames_in,
        frames_buffered=inbound.frames_held,
        frames_dropped=inbound.frames_dropped,
        detail=detail,
        carrier_errors=notes.carrier_errors,
        provider_close=provider_close,
        transferred_to=notes.transferred_to,
        metrics=metrics,
    )
