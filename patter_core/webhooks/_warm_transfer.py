"""A warm transfer on Twilio: the person is called and briefed, then the caller joins.

Theory of operation (the caller stays with the agent until the person
answers, then moves; the order that never leaves the caller alone):

1. ``transfer_call(mode="warm")``: :meth:`TwilioWarmTransfer.dial_person`
   creates a call to the person whose TwiML says the agent's summary first
   (``<Say>``) and then joins the conference named after the caller's call
   (:func:`conference_name`). Its ``Timeout`` is the ring time; its status
   callback goes to ``Paths.TWILIO_TRANSFER_STATUS`` with the caller's call
   sid in the query (signed with the rest of the URL).
2. The person's status webhooks (:meth:`TwilioWarmTransfer.on_person_status`):
   ``in-progress`` (answered) -> move the caller into the conference
   (:meth:`TwilioWarmTransfer.move_caller`: new TwiML for the caller's call,
   which ends the agent's stream; the caller hears hold music until the
   person, briefed, joins); ``busy``, ``no-answer``, ``failed``,
   ``canceled`` -> tell the agent, which is still with the caller.
3. The conference's own events (``Paths.TWILIO_CONFERENCE_STATUS``) are logged.

On Telnyx (:class:`TelnyxWarmTransfer`), the same order with Call Control:
``dial`` the person (``timeout_secs`` the ring time), their leg marked with
a ``client_state`` naming the caller's leg (:func:`warm_leg_state`, echoed
in every webhook of that leg); on its ``call.answered``, ``speak`` the
summary on their leg; on its ``call.speak.ended``, ``streaming_stop`` on the
caller's leg (the agent's stream ends) and ``bridge`` the two; a
``call.hangup`` before that tells the agent. Redelivered webhooks do each
step once.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import quote

from ..http._paths import Paths
from ..http._types import HttpRequest
from ._telnyx_events import TelnyxCallAnswered, TelnyxCallHangup, TelnyxEvent
from ._telnyx_flow import dial_leg
from ._telnyx_rest import TelnyxRest
from ._twilio_events import CallStatusCallback
from ._twilio_rest import TwilioRest
from ._twiml import conference_twiml

__all__ = [
    "HOLD_MUSIC_URL",
    "WARM_TRANSFER_RING_SECONDS",
    "TelnyxWarmTransfer",
    "TransferFollowUp",
    "TransferStep",
    "TwilioWarmTransfer",
    "conference_name",
    "warm_leg_caller",
    "warm_leg_state",
]

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
    #: ``(purpose, request)`` to send, in order (MOVE_CALLER, or a Telnyx step).
    requests: tuple[tuple[str, HttpRequest], ...] = ()
    #: The note for the agent (TELL_AGENT).
    note: str = ""


def _note(number: str, why: str) -> str:
    return (
        f"The warm transfer to {number} did not go through ({why}): the caller "
        "is still with you. Tell them, and keep helping them."
    )


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
                f"https://{self._host}{Paths.TWILIO_TRANSFER_STATUS}?call={quote(caller_sid, safe='')}"
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
                "statusCallback": f"https://{self._host}{Paths.TWILIO_CONFERENCE_STATUS}",
                "statusCallbackEvent": "start end join leave",
                "statusCallbackMethod": "POST",
            },
        )
        return self._rest.update_call_twiml(caller_sid, twiml)

    def on_person_status(self, caller_sid: str, status: CallStatusCallback) -> TransferFollowUp:
        """What the person's call progress asks for (module doc, step 2)."""
        if status.call_status == "in-progress":
            request = self.move_caller(caller_sid)
            return TransferFollowUp(
                step=TransferStep.MOVE_CALLER, requests=(("warm_transfer", request),)
            )
        why = _NOT_ANSWERED.get(status.call_status)
        if why is None:
            return TransferFollowUp(step=TransferStep.NOTHING)
        number = status.form.get("To") or "the number"
        return TransferFollowUp(step=TransferStep.TELL_AGENT, note=_note(number, why))


_WARM_PREFIX = b"patter:warm:"
# Warm transfers remembered (summary by caller leg): one per live call at
# most, and a server carries far fewer calls than this.
_MAX_PENDING = 10_000
_NOT_ANSWERED_CAUSES = {
    "user_busy": "busy",
    "timeout": "no answer",
    "no_answer": "no answer",
    "call_rejected": "rejected",
}


def warm_leg_state(caller_id: str) -> str:
    """The ``client_state`` of a person's leg: names the caller's leg it is for."""
    return base64.b64encode(_WARM_PREFIX + caller_id.encode("utf-8")).decode("ascii")


def warm_leg_caller(client_state: str | None) -> str | None:
    """The caller's leg a warm-transfer leg is for, or None for any other leg."""
    if not client_state:
        return None
    try:
        raw = base64.b64decode(client_state.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    if not raw.startswith(_WARM_PREFIX):
        return None
    try:
        return raw[len(_WARM_PREFIX) :].decode("utf-8") or None
    except UnicodeDecodeError:
        return None


class TelnyxWarmTransfer:
    """Pure: a warm transfer with Call Control (module doc)."""

    def __init__(self, rest: TelnyxRest, *, connection_id: str, webhook_host: str) -> None:
        self._rest = rest
        self._connection_id = connection_id
        self._host = webhook_host
        #: caller leg -> (person's number, summary), until the person is bridged.
        self._pending: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._spoken: set[str] = set()

    def dial_person(
        self,
        *,
        caller_id: str,
        target: str,
        from_: str,
        summary: str,
        ring_timeout: int = WARM_TRANSFER_RING_SECONDS,
    ) -> HttpRequest:
        if len(self._pending) >= _MAX_PENDING:
            self._pending.popitem(last=False)
        self._pending[caller_id] = (target, summary)
        return dial_leg(
            self._rest,
            to=target,
            from_=from_,
            connection_id=self._connection_id,
            webhook_host=self._host,
            client_state=warm_leg_state(caller_id),
            ring_timeout=ring_timeout,
        )

    def on_event(self, event: TelnyxEvent) -> TransferFollowUp:
        """A webhook of a person's leg (``warm_leg_caller`` named its caller)."""
        caller_id = warm_leg_caller(event.client_state)
        person = event.call_control_id
        pending = self._pending.get(caller_id) if caller_id else None
        if caller_id is None or person is None or pending is None:
            return TransferFollowUp(step=TransferStep.NOTHING)
        target, summary = pending
        state = warm_leg_state(caller_id)
        if isinstance(event, TelnyxCallAnswered) and person not in self._spoken:
            self._spoken.add(person)
            if summary:
                request = self._rest.speak(person, payload=summary, client_state=state)
                return TransferFollowUp(
                    step=TransferStep.NOTHING, requests=(("warm_summary", request),)
                )
            return self._join(caller_id, person)
        if event.event_type == "call.speak.ended" and person in self._spoken:
            return self._join(caller_id, person)
        if isinstance(event, TelnyxCallHangup):
            # Still pending: the person was never bridged with the caller.
            del self._pending[caller_id]
            self._spoken.discard(person)
            cause = event.hangup_cause or "unspecified"
            why = _NOT_ANSWERED_CAUSES.get(cause, cause.replace("_", " "))
            return TransferFollowUp(step=TransferStep.TELL_AGENT, note=_note(target, why))
        return TransferFollowUp(step=TransferStep.NOTHING)

    def _join(self, caller_id: str, person: str) -> TransferFollowUp:
        del self._pending[caller_id]
        self._spoken.discard(person)
        return TransferFollowUp(
            step=TransferStep.MOVE_CALLER,
            requests=(
                ("streaming_stop", self._rest.streaming_stop(caller_id)),
                ("warm_transfer", self._rest.bridge(caller_id, other=person)),
            ),
        )
