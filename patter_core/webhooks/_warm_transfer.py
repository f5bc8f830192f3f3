"""A warm transfer on Twilio: the person is called and briefed, then the caller joins.

Theory of operation (the caller stays with the agent until the person
answers, then moves; the order that never leaves the caller alone):

1. ``transfer_call(mode="warm")``: :meth:`TwilioWarmTransfer.dial_person`
   creates a call to the person whose TwiML says the agent's summary first
   (``<Say>``) and then joins the conference named after the caller's call
   (:func:`conference_name`). Its ``Timeout`` is the ring time; its status
   callback goes to :data:`TRANSFER_STATUS_PATH` with the caller's call sid
   in the query (signed with the rest of the URL).
2. The person's status webhooks (:meth:`TwilioWarmTransfer.on_person_status`):
   ``in-progress`` (answered) -> move the caller into the conference
   (:meth:`TwilioWarmTransfer.move_caller`: new TwiML for the caller's call,
   which ends the agent's stream; the caller hears hold music until the
   person, briefed, joins); ``busy``, ``no-answer``, ``failed``,
   ``canceled`` -> tell the agent, which is still with the caller.
3. The conference's own events (:data:`CONFERENCE_STATUS_PATH`) are logged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import quote

from ..http._types import HttpRequest
from ._twilio_events import CallStatusCallback
from ._twilio_rest import TwilioRest
from ._twiml import conference_twiml

__all__ = [
    "CONFERENCE_STATUS_PATH",
    "HOLD_MUSIC_URL",
    "TRANSFER_STATUS_PATH",
    "WARM_TRANSFER_RING_SECONDS",
    "TransferFollowUp",
    "TransferStep",
    "TwilioWarmTransfer",
    "conference_name",
]

#: The person's call progress (``?call=`` names the caller's call).
TRANSFER_STATUS_PATH = "/webhooks/twilio/transfer-status"
#: The conference's start, end, join and leave events.
CONFERENCE_STATUS_PATH = "/webhooks/twilio/conference-status"
#: Seconds the person's phone may ring: about five rings, before most
#: voicemail systems pick up (which would take the transfer instead).
WARM_TRANSFER_RING_SECONDS = 20
#: Twilio's own hold music (its default ``waitUrl``), named so the TwiML says it.
HOLD_MUSIC_URL = "https://twimlets.com/holdmusic?Bucket=com.twilio.music.classical"

_NOT_ANSWERED = {
    "busy": "busy",
    "no-answer": "no answer",
    "failed": "failed",
    "canceled": "canceled",
}


def conference_name(call_sid: str) -> str:
    """The conference of a warm transfer: one per caller's call."""
    return f"patter-{call_sid}"


class TransferStep(enum.Enum):
    NOTHING = "nothing"
    MOVE_CALLER = "move_caller"
    TELL_AGENT = "tell_agent"


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferFollowUp:
    step: TransferStep
    #: The request to send (MOVE_CALLER), or the note for the agent (TELL_AGENT).
    request: HttpRequest | None = None
    note: str = ""


class TwilioWarmTransfer:
    """Pure: the requests of a warm transfer for one account and public host."""

    def __init__(self, rest: TwilioRest, *, webhook_host: str) -> None:
        self._rest = rest
        self._host = webhook_host

    def dial_person(
        self,
        *,
        caller_sid: str,
        target: str,
        from_: str,
        summary: str,
        ring_timeout: int = WARM_TRANSFER_RING_SECONDS,
    ) -> HttpRequest:
        """Call the person: the summary, then the conference (module doc, step 1)."""
        twiml = conference_twiml(
            conference_name(caller_sid),
            say=summary or None,
            attributes={
                "beep": "false",
                "startConferenceOnEnter": "true",
                "endConferenceOnExit": "true",
            },
        )
        return self._rest.create_call(
            to=target,
            from_=from_,
            twiml=twiml,
            status_callback=(
                f"https://{self._host}{TRANSFER_STATUS_PATH}?call={quote(caller_sid, safe='')}"
            ),
            status_callback_events=("initiated", "ringing", "answered", "completed"),
            timeout=ring_timeout,
        )

    def move_caller(self, caller_sid: str) -> HttpRequest:
        """The caller's call joins the conference (ends its stream to the agent)."""
        twiml = conference_twiml(
            conference_name(caller_sid),
            attributes={
                "beep": "false",
                # On hold music until the person, briefed, joins.
                "startConferenceOnEnter": "false",
                "endConferenceOnExit": "true",
                "waitUrl": HOLD_MUSIC_URL,
                "statusCallback": f"https://{self._host}{CONFERENCE_STATUS_PATH}",
                "statusCallbackEvent": "start end join leave",
                "statusCallbackMethod": "POST",
            },
        )
        return self._rest.update_call_twiml(caller_sid, twiml)

    def on_person_status(self, caller_sid: str, status: CallStatusCallback) -> TransferFollowUp:
        """What the person's call progress asks for (module doc, step 2)."""
        if status.call_status == "in-progress":
            return TransferFollowUp(
                step=TransferStep.MOVE_CALLER, request=self.move_caller(caller_sid)
            )
        why = _NOT_ANSWERED.get(status.call_status)
        if why is None:
            return TransferFollowUp(step=TransferStep.NOTHING)
        number = status.form.get("To") or "the number"
        return TransferFollowUp(
            step=TransferStep.TELL_AGENT,
            note=(
                f"The warm transfer to {number} did not go through ({why}): the caller "
                "is still with you. Tell them, and keep helping them."
            ),
        )
