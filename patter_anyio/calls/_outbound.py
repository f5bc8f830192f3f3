"""Outbound calls of this process: their status callbacks and their outcome.

Every decision (which status is new, which AMD answer counts, how the call
ended) is :class:`~patter_core.webhooks.OutboundCallState`'s; this module
keeps one per call placed here, fires ``on_call_status`` and
``on_machine_detection``, and wakes ``call(wait=True)`` with a
:class:`CallResult` once the carrier says the call is over and its stream,
if it ran here, has ended (its transcript is then known).

A webhook for a call this process did not place (another instance's, or
one after the state was dropped) is logged at DEBUG and otherwise ignored:
behind a load balancer that is normal, not an error. The last few such
webhooks are kept a while, though: the carrier may post ``initiated``
before its answer to the create request has reached us, and the call then
catches up with them (:meth:`OutboundCalls.catch_up`).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from patter_core import PatterError
from patter_core.webhooks import (
    AmdCallback,
    CallStatusCallback,
    CarrierApiError,
    OutboundCallState,
    OutcomeUpdate,
    StreamTokens,
    TelnyxCallFlow,
    TelnyxEvent,
    TelnyxRest,
    TwilioCallFlow,
    TwilioRest,
    parse_telnyx_response,
    parse_twilio_call,
)

from .._agent import InvalidOption
from .._settings import CarrierSettings
from ..net._rest import carrier_request
from ._call import maybe_await

__all__ = ["CallResult", "OutboundCalls", "ServerStopped"]

log = logging.getLogger("patter_anyio.outbound")

# Calls whose outcome is still open; a dialler whose calls never end (no
# status callbacks reach us) must not grow this without bound.
_MAX_TRACKED = 10_000
# Webhooks of unknown calls kept for a call whose create answer is still on
# its way: a few per call, for the calls being placed at one moment.
_MAX_EARLY = 1_000


@dataclass(frozen=True, slots=True, kw_only=True)
class CallResult:
    """What happened to an outbound call (``call(..., wait=True)``).

    ``outcome``: ``answered``, ``voicemail``, ``fax``, ``no_answer``,
    ``busy``, ``failed`` or ``canceled``. ``answered_by``: the carrier's
    answering-machine answer when detection was asked for (``human``,
    ``machine_end_beep``, ``not_sure``, ...). ``started_at``/``ended_at``:
    wall-clock seconds from placing the call to its end; ``duration``:
    seconds from the answer to the end (0 when never answered).
    ``transcript``: the conversation when its stream ran in this process.
    ``end_reason``: why the call ended (the call's own reason when its
    stream ran here, such as ``carrier_hangup`` or ``end_call``, else the
    carrier's: ``busy``, ``no-answer (SIP 480)``, ``user_busy``, ...).
    """

    call_id: str
    outcome: str
    answered_by: str | None
    started_at: float
    ended_at: float
    duration: float
    transcript: Sequence[Mapping[str, Any]] = ()
    end_reason: str | None = None


Callback = Callable[[dict[str, Any]], Any]


class ServerStopped(PatterError):
    """``call(wait=True)`` cannot know the outcome: the server stopped first."""


@dataclass(slots=True)
class _Tracked:
    state: OutboundCallState
    done: anyio.Event = field(default_factory=anyio.Event)
    stream_live: bool = False
    call_end: Mapping[str, Any] | None = None
    result: CallResult | None = None


class OutboundCalls:
    """The outbound calls this process placed, by carrier call id."""

    def __init__(
        self,
        *,
        on_call_status: Callback | None = None,
        on_machine_detection: Callback | None = None,
        clock: Callable[[], float],
    ) -> None:
        self.on_call_status = on_call_status
        self.on_machine_detection = on_machine_detection
        self._clock = clock
        self._calls: dict[str, _Tracked] = {}
        self._early: dict[str, list[CallStatusCallback | AmdCallback | TelnyxEvent]] = {}

    def __contains__(self, call_id: str) -> bool:
        return call_id in self._calls

    def placed(self, call_id: str, carrier: str) -> _Tracked:
        """Start tracking ``call_id`` (right after the carrier accepted it)."""
        if len(self._calls) >= _MAX_TRACKED:
            self._calls.pop(next(iter(self._calls)))
        state = OutboundCallState(call_id, carrier=carrier, placed_at=self._clock())
        tracked = _Tracked(state=state)
        self._calls[call_id] = tracked
        return tracked

    async def catch_up(self, tracked: _Tracked) -> None:
        """Apply the webhooks of this call that came before it was placed."""
        for event in self._early.pop(tracked.state.call_id, ()):
            if isinstance(event, CallStatusCallback):
                await self.twilio_status(event)
            elif isinstance(event, AmdCallback):
                await self.twilio_amd(event)
            else:
                await self.telnyx_event(event)

    @staticmethod
    async def wait(tracked: _Tracked) -> CallResult:
        """The call's result, once it is over (see the module doc).

        Raises :class:`ServerStopped` when the server stops first: its
        webhooks, which would have said how the call ended, stop with it.
        """
        await tracked.done.wait()
        if tracked.result is None:
            raise ServerStopped(f"the server stopped before call {tracked.state.call_id} ended")
        return tracked.result

    def abandon(self) -> None:
        """The server is stopping: wake every ``wait`` (see :meth:`wait`)."""
        calls, self._calls = self._calls, {}
        for tracked in calls.values():
            tracked.done.set()

    # -- carrier webhooks ---------------------------------------------------------

    async def twilio_status(self, event: CallStatusCallback) -> None:
        tracked = self._find(event.call_sid, event, f"status {event.call_status}")
        if tracked is not None:
            await self._apply(tracked, tracked.state.twilio_status(event, self._clock()))

    async def twilio_amd(self, event: AmdCallback) -> None:
        tracked = self._find(event.call_sid, event, f"AMD {event.answered_by}")
        if tracked is not None:
            await self._apply(tracked, tracked.state.twilio_amd(event, self._clock()))

    async def telnyx_event(self, event: TelnyxEvent) -> None:
        call_id = event.call_control_id
        tracked = self._find(call_id, event, event.event_type) if call_id else None
        if tracked is not None:
            await self._apply(tracked, tracked.state.telnyx_event(event, self._clock()))

    # -- the call's stream ----------------------------------------------------------

    def stream_started(self, call_id: str) -> bool:
        tracked = self._calls.get(call_id)
        if tracked is None:
            return False
        tracked.stream_live = True
        return True

    def stream_ended(self, call_id: str, call_end: Mapping[str, Any] | None) -> None:
        tracked = self._calls.get(call_id)
        if tracked is None:
            return
        tracked.stream_live = False
        if call_end is not None:
            tracked.call_end = call_end
        self._maybe_done(call_id, tracked)

    # -- inside -----------------------------------------------------------------

    def _find(
        self, call_id: str, event: CallStatusCallback | AmdCallback | TelnyxEvent, what: str
    ) -> _Tracked | None:
        tracked = self._calls.get(call_id)
        if tracked is None:
            log.debug("%s for call %s, not placed by this process: ignored", what, call_id)
            if call_id not in self._early and len(self._early) >= _MAX_EARLY:
                self._early.pop(next(iter(self._early)))
            early = self._early.setdefault(call_id, [])
            if len(early) < 8:
                early.append(event)
        return tracked

    async def _apply(self, tracked: _Tracked, update: OutcomeUpdate) -> None:
        state = tracked.state
        if update.machine is not None:
            log.info(
                "call %s answered by %s (%s)",
                state.call_id,
                update.machine.result,
                update.machine.raw,
            )
            await self._fire(
                self.on_machine_detection,
                {
                    "call_id": state.call_id,
                    "result": update.machine.result,
                    "raw": update.machine.raw,
                    "carrier": state.carrier,
                },
            )
        if update.status is not None:
            log.info("outbound call %s is %s", state.call_id, update.status)
            await self._fire(
                self.on_call_status,
                {"call_id": state.call_id, "status": update.status, "carrier": state.carrier},
            )
        if update.outcome is not None:
            self._maybe_done(state.call_id, tracked)

    def _maybe_done(self, call_id: str, tracked: _Tracked) -> None:
        state = tracked.state
        if state.outcome is None or tracked.stream_live or tracked.result is not None:
            return
        end = tracked.call_end or {}
        ended_at = state.ended_at if state.ended_at is not None else self._clock()
        reason = end.get("reason") if tracked.call_end else state.carrier_end_reason
        tracked.result = CallResult(
            call_id=call_id,
            outcome=state.outcome.value,
            answered_by=state.machine.raw if state.machine else None,
            started_at=state.placed_at,
            ended_at=ended_at,
            duration=state.duration or 0.0,
            transcript=tuple(end.get("transcript") or ()),
            end_reason=reason if isinstance(reason, str) else state.carrier_end_reason,
        )
        log.info("outbound call %s ended: %s", call_id, tracked.result.outcome)
        self._calls.pop(call_id, None)
        tracked.done.set()

    async def _fire(self, callback: Callback | None, payload: dict[str, Any]) -> None:
        # Awaited before the webhook is answered: the callbacks of one call
        # then run in the carrier's order, never two at once.
        if callback is None:
            return
        try:
            await maybe_await(callback(payload))
        except Exception:
            log.exception("outbound call callback failed")


def carrier_rest(carriers: CarrierSettings) -> tuple[TwilioRest | None, TelnyxRest | None]:
    """The REST clients of the configured carrier accounts (None: not configured)."""
    twilio = (
        TwilioRest(
            carriers.twilio_sid, carriers.twilio_token, base_url=carriers.twilio_api_base_url
        )
        if carriers.twilio_sid and carriers.twilio_token
        else None
    )
    telnyx = (
        TelnyxRest(carriers.telnyx_key, base_url=carriers.telnyx_api_base_url)
        if carriers.telnyx_key
        else None
    )
    return twilio, telnyx


async def place_call(
    carriers: CarrierSettings,
    tokens: StreamTokens,
    *,
    to: str,
    from_: str,
    machine_detection: bool,
    machine_detection_timeout: int,
    ring_timeout: int | None,
) -> tuple[str, str]:
    """Ask the configured carrier to place the call: ``(call id, carrier)``.

    Twilio fetches our TwiML when the call is answered (the status callback,
    the AMD callback and the ring timeout ride on the create request);
    Telnyx dials with our leg marker in ``client_state`` and streams once
    the far end answers.
    """
    host = carriers.webhook_host
    number = from_
    twilio, telnyx = carrier_rest(carriers)
    if twilio is not None:
        flow = TwilioCallFlow(tokens, webhook_host=host, rest=twilio)
        req = flow.create_call(
            to=to,
            from_=number,
            machine_detection=machine_detection,
            machine_detection_timeout=machine_detection_timeout,
            ring_timeout=ring_timeout,
        )
        response = await carrier_request(req)
        return parse_twilio_call(response).sid, "twilio"
    if telnyx is not None:
        if not carriers.telnyx_connection_id:
            raise InvalidOption("Telnyx outbound calls need telnyx_connection_id")
        req = TelnyxCallFlow(telnyx, tokens, webhook_host=host).dial(
            to=to,
            from_=number,
            connection_id=carriers.telnyx_connection_id,
            machine_detection=machine_detection,
            ring_timeout=ring_timeout,
            nonce=secrets.token_hex(8),
        )
        response = await carrier_request(req)
        telnyx_id = parse_telnyx_response(response).call_control_id
        if not telnyx_id:
            raise CarrierApiError(
                "Telnyx answered the dial without a call_control_id", api_status=response.status
            )
        return telnyx_id, "telnyx"
    raise InvalidOption(
        "an outbound call needs Twilio (twilio_sid and twilio_token, or "
        "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN) or Telnyx (telnyx_key or TELNYX_API_KEY)"
    )
