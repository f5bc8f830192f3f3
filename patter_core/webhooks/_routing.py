"""Which webhooks ask the application's ``route`` for an agent, and what it sees.

``serve(..., route=fn)`` chooses the agent of each incoming call before it
is answered: at Twilio's voice webhook (answered with ``<Connect><Stream>``,
or ``<Reject />`` when ``route`` says no) and at Telnyx's ``call.initiated``
(answered, or refused with ``actions/reject``). Only a call that *arrives*
is routed: the voice webhook of an outbound call we placed (Twilio
``Direction`` ``outbound-api``) and Telnyx legs we dialled already have
their agent.

What ``route`` gets is a plain dict: ``carrier``, ``call_id``, ``caller``,
``callee`` and ``params``, the carrier's own webhook fields (Twilio's form,
Telnyx's ``payload``), so a rule may use anything the carrier sent.
"""

from __future__ import annotations

from ._telnyx_events import TelnyxCallInitiated, TelnyxEvent
from ._twilio_events import IncomingCall

__all__ = ["routed_call"]


def routed_call(event: IncomingCall | TelnyxEvent) -> dict[str, object] | None:
    """The call as ``route`` sees it, or None when this webhook is not routed."""
    if isinstance(event, IncomingCall):
        if event.direction not in (None, "", "inbound"):
            return None
        return {
            "carrier": "twilio",
            "call_id": event.call_sid,
            "caller": event.from_ or "",
            "callee": event.to or "",
            "params": event.form.to_dict(),
        }
    if not isinstance(event, TelnyxCallInitiated) or not event.call_control_id:
        return None
    if (event.direction or "incoming") != "incoming":
        return None
    return {
        "carrier": "telnyx",
        "call_id": event.call_control_id,
        "caller": event.from_ or "",
        "callee": event.to or "",
        "params": dict(event.payload),
    }
