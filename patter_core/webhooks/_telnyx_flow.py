"""What our side does after each Telnyx webhook: the call-control decisions.

Telnyx ignores commands in webhook replies (the reply is an empty 200), so
every step of a call is a REST command we send when the matching webhook
arrives:

==================================  ==========================================
``call.initiated`` incoming         ``answer`` (without a stream: see below),
                                    marking the leg as ours
``call.answered`` on a leg of ours  ``streaming_start`` with a fresh stream
                                    token (once per call)
``call.machine.greeting.ended``     ``beep_detected`` / ``ended``: the greeting
                                    is over, time for a voicemail drop;
                                    ``not_sure``: reported as ``unknown``
``call.machine.detection.ended``    ``human`` / ``not_sure`` reported
                                    (``machine`` waits for the greeting)
``call.speak.ended`` of a voicemail ``hangup`` (see :meth:`voicemail_drop`)
anything else                       nothing
==================================  ==========================================

Legs. After a ``transfer`` the new leg's ``call.initiated``,
``call.bridged`` and ``call.answered`` reach the same webhook (PROTOCOLS.md
§4.4, "Transfers"); streaming it would start a second agent talking to the
person the caller was transferred to. So every leg we answer or dial carries
our ``client_state`` (:func:`leg_client_state`), which Telnyx echoes in every
later webhook of that leg, and any event of a leg without it is ignored.

Duplicates. Telnyx may deliver a webhook more than once and out of order
(§4.4, "Duplicates"): an event whose ``data.id`` was already handled is
dropped (the last :data:`MAX_REMEMBERED_EVENTS` ids are remembered), and a
call gets one ``streaming_start`` however many ``call.answered`` arrive.

The stream starts on ``call.answered`` for calls in both directions (an
outbound ``dial`` is answered by the far end), and with ``streaming_start``
rather than ``answer``'s own stream fields because only ``streaming_start``
carries ``stream_auth_token`` and a sampling rate (PROTOCOLS.md §4.3).
Outbound calls dial with ``answering_machine_detection="greeting_end"``:
``detect_beep`` reports the end of a greeting only when a beep is heard, so
a greeting that ends in silence would get no message.
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .._errors import LocalProtocolError
from ..http._paths import Paths
from ..http._types import HttpRequest
from ._telnyx_events import (
    TelnyxCallAnswered,
    TelnyxCallInitiated,
    TelnyxEvent,
    TelnyxMachineDetectionEnded,
    TelnyxMachineGreetingEnded,
)
from ._telnyx_rest import TelnyxRest
from ._tokens import StreamTokens
from ._twilio_events import is_machine_end
from ._variables import variable_parameters

__all__ = [
    "AMD_DIAL_MODE",
    "MAX_REMEMBERED_EVENTS",
    "TelnyxCallFlow",
    "TelnyxFollowUp",
    "dial_leg",
    "is_our_leg",
    "leg_client_state",
]

#: What an outbound call asks for: a greeting.ended on a beep or on silence.
AMD_DIAL_MODE = "greeting_end"
# Webhook ids remembered to drop redeliveries, and calls remembered as
# streamed. Telnyx retries a webhook within minutes; a busy server sees a few
# webhooks per call and a few calls a second, so 10 000 covers well over the
# retry horizon in about a megabyte.
MAX_REMEMBERED_EVENTS = 10_000
_LEG_PREFIX = b"patter:leg"
# The nonce of a leg leaving a voicemail: its speak.ended means hang up.
_VOICEMAIL = "voicemail"

# greeting.ended and detection.ended results (PROTOCOLS.md §4.4, "AMD") in the
# ``answered_by`` words the Twilio side uses: machine_end_* is a voicemail drop.
_GREETING = {"beep_detected": "machine_end_beep", "ended": "machine_end_silence"}
_DETECTION = {"human": "human", "not_sure": "unknown"}


def leg_client_state(nonce: str = "") -> str:
    """The ``client_state`` that marks a leg as ours (``nonce`` keeps dials apart)."""
    raw = _LEG_PREFIX + (b":" + nonce.encode("utf-8") if nonce else b"")
    return base64.b64encode(raw).decode("ascii")


_VOICEMAIL_STATE = leg_client_state(_VOICEMAIL)


def dial_leg(
    rest: TelnyxRest,
    *,
    to: str,
    from_: str,
    connection_id: str,
    webhook_host: str,
    client_state: str,
    ring_timeout: int | None,
    machine_detection: bool = False,
) -> HttpRequest:
    """``dial`` for a leg of ours: no stream fields (the stream starts on its
    ``call.answered``, see the module doc), webhooks to
    :data:`~patter_core.http.Paths.TELNYX_VOICE`, ``client_state`` marking it."""
    return rest.dial(
        to=to,
        from_=from_,
        connection_id=connection_id,
        stream_url=None,
        stream_codec=None,
        stream_bidirectional_mode=None,
        stream_bidirectional_codec=None,
        stream_bidirectional_sampling_rate=None,
        answering_machine_detection=AMD_DIAL_MODE if machine_detection else None,
        webhook_url=f"https://{webhook_host}{Paths.TELNYX_VOICE}",
        client_state=client_state,
        timeout_secs=ring_timeout,
    )


def is_our_leg(client_state: str | None) -> bool:
    """Whether an echoed ``client_state`` is one :func:`leg_client_state` made."""
    if not client_state:
        return False
    try:
        raw = base64.b64decode(client_state.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False
    return raw == _LEG_PREFIX or raw.startswith(_LEG_PREFIX + b":")


@dataclass(frozen=True, slots=True, kw_only=True)
class TelnyxFollowUp:
    """The requests to send (``(purpose, request)``, in order) and what to tell the call."""

    requests: tuple[tuple[str, HttpRequest], ...] = ()
    #: Answering-machine detection in the Twilio side's words (``machine_end_beep``,
    #: ``machine_end_silence``, ``human``, ``unknown``), or None.
    answered_by: str | None = None
    #: Why nothing could be done although something should have been.
    problem: str | None = None
    #: Why the event was ignored (a redelivery, a leg that is not ours).
    ignored: str | None = None

    @property
    def machine_greeting_ended(self) -> bool:
        """The answering machine's greeting is over (time to leave a message)."""
        return self.answered_by is not None and self.answered_by.startswith("machine_end")


class _Bounded:
    """A set remembering its last ``limit`` members."""

    __slots__ = ("_items", "_limit")

    def __init__(self, limit: int) -> None:
        self._items: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def add(self, item: str) -> bool:
        """Add ``item``; False if it was already there."""
        if item in self._items:
            return False
        self._items[item] = None
        if len(self._items) > self._limit:
            self._items.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._items)


class TelnyxCallFlow:
    """Pure: a Telnyx webhook event and ``now`` in, a :class:`TelnyxFollowUp` out."""

    def __init__(
        self,
        rest: TelnyxRest,
        tokens: StreamTokens,
        *,
        webhook_host: str | None,
        codec: Literal["PCMU", "L16"] = "PCMU",
        max_remembered: int = MAX_REMEMBERED_EVENTS,
    ) -> None:
        self._rest = rest
        self._tokens = tokens
        self._host = webhook_host
        self._codec = codec
        self._seen = _Bounded(max_remembered)
        self._streamed = _Bounded(max_remembered)

    @property
    def codec(self) -> Literal["PCMU", "L16"]:
        """What the stream is asked for both ways (``stream_codec`` and the bidirectional one)."""
        return self._codec

    @property
    def sampling_rate(self) -> int:
        return 16000 if self._codec == "L16" else 8000

    def stream_url(self, call_control_id: str) -> str | None:
        if not self._host:
            return None
        return f"wss://{self._host}{Paths.TELNYX_STREAM}{call_control_id}"

    def on_event(
        self, event: TelnyxEvent, now: float, *, variables: Mapping[str, str] | None = None
    ) -> TelnyxFollowUp:
        """The follow-up of one webhook; ``variables`` (an outbound call's)
        go with its stream as ``custom_parameters``, never in its URL."""
        call_id = event.call_control_id
        if not call_id:
            return TelnyxFollowUp()
        if event.event_id and not self._seen.add(event.event_id):
            return TelnyxFollowUp(ignored=f"{event.event_type} {event.event_id} already handled")
        if isinstance(event, TelnyxCallInitiated):
            if str(event.payload.get("direction", "incoming")) != "incoming":
                return TelnyxFollowUp()  # a dial (ours or a transfer's): nothing to answer
            request = self._rest.answer(call_id, stream_url=None, client_state=leg_client_state())
            return TelnyxFollowUp(requests=(("answer", request),))
        if not is_our_leg(event.client_state):
            return TelnyxFollowUp(
                ignored=f"{event.event_type} on leg {call_id}, which we did not answer or dial"
            )
        if isinstance(event, TelnyxCallAnswered):
            return self._stream(call_id, now, variables or {})
        if isinstance(event, TelnyxMachineGreetingEnded):
            return TelnyxFollowUp(answered_by=_GREETING.get(event.result or "", "unknown"))
        if isinstance(event, TelnyxMachineDetectionEnded):
            return TelnyxFollowUp(answered_by=_DETECTION.get(event.result or ""))
        if event.event_type == "call.speak.ended" and event.client_state == _VOICEMAIL_STATE:
            return TelnyxFollowUp(requests=(("hangup", self._rest.hangup(call_id)),))
        return TelnyxFollowUp()

    def dial(
        self,
        *,
        to: str,
        from_: str,
        connection_id: str,
        machine_detection: bool,
        ring_timeout: int | None,
        nonce: str,
    ) -> HttpRequest:
        """``dial`` for an outbound call (:func:`dial_leg`); ``nonce`` keeps two
        dials to one number apart (Telnyx derives ``command_id`` from the state).

        Raises LocalProtocolError without a public host: Telnyx must reach us.
        """
        if not self._host:
            raise LocalProtocolError("outbound Telnyx calls need a public host")
        return dial_leg(
            self._rest,
            to=to,
            from_=from_,
            connection_id=connection_id,
            webhook_host=self._host,
            client_state=leg_client_state(nonce),
            ring_timeout=ring_timeout,
            machine_detection=machine_detection,
        )

    def reject(self, call_id: str) -> TelnyxFollowUp:
        """Refuse an incoming call instead of answering it (the application's
        ``route`` chose no agent)."""
        return TelnyxFollowUp(requests=(("reject", self._rest.reject(call_id)),))

    def amd_without_stream(
        self, call_id: str, answered_by: str, message: str | None
    ) -> tuple[tuple[str, HttpRequest], ...]:
        """An AMD result (in Twilio's words, see :class:`TelnyxFollowUp`) for a
        call whose stream is not live here: the ``(purpose, request)`` pairs.

        At the end of a greeting, :meth:`voicemail_drop` says ``message``;
        anything else, or no message, needs nothing.
        """
        if not message or not is_machine_end(answered_by):
            return ()
        return self.voicemail_drop(call_id, message).requests

    def voicemail_drop(self, call_id: str, message: str) -> TelnyxFollowUp:
        """Leave ``message`` on a machine when no stream of ours carries the call.

        ``speak`` marks the leg so that its ``call.speak.ended`` hangs up.
        """
        request = self._rest.speak(call_id, payload=message, client_state=_VOICEMAIL_STATE)
        return TelnyxFollowUp(requests=(("voicemail", request),))

    def _stream(self, call_id: str, now: float, variables: Mapping[str, str]) -> TelnyxFollowUp:
        url = self.stream_url(call_id)
        if url is None:
            return TelnyxFollowUp(
                problem=f"cannot stream Telnyx call {call_id}: no webhook host configured"
            )
        if not self._streamed.add(call_id):
            return TelnyxFollowUp(ignored=f"call {call_id} already has its stream")
        l16 = self._codec == "L16"
        # Both codecs are always named: with "default" Telnyx streams in the
        # call's own codec (G.722, Opus on HD legs), which we cannot decode.
        request = self._rest.streaming_start(
            call_id,
            stream_url=url,
            stream_codec="L16" if l16 else "PCMU",
            stream_bidirectional_codec="L16" if l16 else "PCMU",
            stream_bidirectional_sampling_rate=16000 if l16 else None,
            stream_auth_token=self._tokens.issue(call_id, now),
            custom_parameters=variable_parameters(variables),
            client_state=leg_client_state(),
        )
        return TelnyxFollowUp(requests=(("streaming_start", request),))
