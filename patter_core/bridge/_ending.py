"""How a call ends: the carrier request it needs, and what ``on_call_end`` says.

Every ending of a :class:`~patter_core.bridge.CallBridge` runs one path; this
module holds its two decisions:

* which endings tell the carrier by REST (:data:`HANGUP_REASONS`: those where
  *we* end the call; a Telnyx call outlives its media socket, a Twilio one
  would go on to the next TwiML verb), and whether the caller first hears
  ``error_message`` (:data:`PROVIDER_FAILURES`, through the carrier's own
  voice: Twilio ``<Say>`` then ``<Hangup/>``, Telnyx ``speak`` then ``hangup``);
* the ``on_call_end`` payload: who, when, why, the transcript, the caller
  audio counted by the hold (``frames_in``, ``frames_buffered``,
  ``frames_dropped``), and, where they apply, ``detail``, ``carrier_errors``,
  ``provider_close_code``/``provider_close_reason`` and ``transferred_to``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..http._types import HttpRequest
from ._config import CallInfo, CarrierControl
from ._inbound import CallerAudio

__all__ = ["HANGUP_REASONS", "PROVIDER_FAILURES", "call_end_payload", "carrier_request"]

HANGUP_REASONS = frozenset(
    {
        "end_call",
        "hangup",
        "voicemail",
        "fax",
        "provider_error",
        "provider_closed",
        "provider_limit",
        "media_timeout",
        "server_shutdown",
        "silence",
        "max_duration",
    }
)
PROVIDER_FAILURES = frozenset({"provider_error", "provider_closed"})
#: Endings whose ``detail`` is the application's or the carrier's words.
_CARRIER_DETAIL = frozenset({"hangup", "carrier_protocol_error"})


def carrier_request(
    control: CarrierControl, call_id: str, reason: str, error_message: str
) -> HttpRequest | None:
    """The REST request an ending needs (None: the carrier is left alone)."""
    if reason not in HANGUP_REASONS:
        return None
    request = None
    if reason in PROVIDER_FAILURES and error_message:
        request = control.leave_message(call_id, error_message)
    return request if request is not None else control.hangup(call_id)


def call_end_payload(
    info: CallInfo | None,
    *,
    carrier: str,
    started_at: float | None,
    now: float,
    reason: str,
    transcript: Sequence[Mapping[str, object]],
    inbound: CallerAudio,
    carrier_detail: str,
    provider_detail: str,
    carrier_errors: int,
    provider_close: tuple[int, str] | None,
    transferred_to: str | None,
) -> dict[str, object]:
    """``on_call_end``'s payload (empty ids for a stream never accepted)."""
    payload: dict[str, object] = {
        "call_id": info.call_id if info is not None else "",
        "stream_id": info.stream_id if info is not None else "",
        "caller": info.caller if info is not None else "",
        "callee": info.callee if info is not None else "",
        "carrier": carrier,
        "started_at": started_at,
        "ended_at": now,
        "reason": reason,
        "transcript": [dict(entry) for entry in transcript],
        "frames_in": inbound.frames_in,
        "frames_buffered": inbound.frames_held,
        "frames_dropped": inbound.frames_dropped,
    }
    if reason in _CARRIER_DETAIL:
        payload["detail"] = carrier_detail
    elif reason in PROVIDER_FAILURES:
        payload["detail"] = provider_detail
    if carrier_errors:
        payload["carrier_errors"] = carrier_errors
    if provider_close is not None:
        payload["provider_close_code"], payload["provider_close_reason"] = provider_close
    if transferred_to is not None:
        payload["transferred_to"] = transferred_to
    return payload
