"""What our side does after each Telnyx webhook: the call-control decisions.

Telnyx ignores commands in webhook replies (the reply is an empty 200), so
every step of a call is a REST command we send when the matching webhook
arrives:

============================  ==============================================
``call.initiated`` incoming   ``answer`` (without a stream: see below)
``call.answered``             ``streaming_start`` with a fresh stream token
``call.machine.greeting.ended``  the machine's greeting is over: the moment
                              for a voicemail drop (reported, not acted on)
anything else                 nothing
============================  ==============================================

The stream starts on ``call.answered`` for calls in both directions (an
outbound ``dial`` is answered by the far end), and with ``streaming_start``
rather than ``answer``'s own stream fields because only ``streaming_start``
carries ``stream_auth_token`` and a sampling rate (PROTOCOLS.md §4.3).
``call.machine.detection.ended`` says "machine" while the greeting still
plays, so the drop waits for ``greeting.ended`` (outbound calls dial with
``answering_machine_detection="detect_beep"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..http._types import HttpRequest
from ._telnyx_events import (
    TelnyxCallAnswered,
    TelnyxCallInitiated,
    TelnyxEvent,
    TelnyxMachineGreetingEnded,
)
from ._telnyx_rest import TelnyxRest
from ._tokens import StreamTokens

__all__ = ["TelnyxCallFlow", "TelnyxFollowUp"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TelnyxFollowUp:
    """The requests to send (``(purpose, request)``, in order) and what to tell the call."""

    requests: tuple[tuple[str, HttpRequest], ...] = ()
    #: The answering machine's greeting is over (time to leave a message).
    machine_greeting_ended: bool = False
    #: Why nothing could be done although something should have been.
    problem: str | None = None


class TelnyxCallFlow:
    """Pure: a Telnyx webhook event and ``now`` in, a :class:`TelnyxFollowUp` out."""

    def __init__(
        self,
        rest: TelnyxRest,
        tokens: StreamTokens,
        *,
        webhook_host: str | None,
        codec: Literal["PCMU", "L16"] = "PCMU",
    ) -> None:
        self._rest = rest
        self._tokens = tokens
        self._host = webhook_host
        self._codec = codec

    def stream_url(self, call_control_id: str) -> str | None:
        if not self._host:
            return None
        return f"wss://{self._host}/ws/telnyx/stream/{call_control_id}"

    def on_event(self, event: TelnyxEvent, now: float) -> TelnyxFollowUp:
        call_id = event.call_control_id
        if not call_id:
            return TelnyxFollowUp()
        if isinstance(event, TelnyxCallInitiated):
            if str(event.payload.get("direction", "incoming")) != "incoming":
                return TelnyxFollowUp()  # our own dial: it streams once answered
            return TelnyxFollowUp(
                requests=(("answer", self._rest.answer(call_id, stream_url=None)),)
            )
        if isinstance(event, TelnyxCallAnswered):
            url = self.stream_url(call_id)
            if url is None:
                return TelnyxFollowUp(
                    problem=f"cannot stream Telnyx call {call_id}: no webhook host configured"
                )
            l16 = self._codec == "L16"
            request = self._rest.streaming_start(
                call_id,
                stream_url=url,
                stream_codec="L16" if l16 else "PCMU",
                stream_bidirectional_codec="L16" if l16 else "PCMU",
                stream_bidirectional_sampling_rate=16000 if l16 else None,
                stream_auth_token=self._tokens.issue(call_id, now),
            )
            return TelnyxFollowUp(requests=(("streaming_start", request),))
        if isinstance(event, TelnyxMachineGreetingEnded):
            return TelnyxFollowUp(machine_greeting_ended=True)
        return TelnyxFollowUp()
