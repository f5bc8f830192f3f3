"""The carrier side of a call's controls: :class:`~patter_core.bridge.CarrierControl`
over Twilio's REST API and over Telnyx Call Control.

Each method returns the request a core flow built (or None: "this carrier
cannot"); the call runner sends it.
"""

from __future__ import annotations

from patter_core import LocalProtocolError
from patter_core.http import HttpRequest
from patter_core.webhooks import (
    TelnyxCallFlow,
    TelnyxRest,
    TelnyxWarmTransfer,
    TwilioCallFlow,
    TwilioRest,
    TwilioWarmTransfer,
)
from patter_core.webhooks._twiml import dial_twiml

__all__ = ["TelnyxControl", "TwilioControl"]


class TwilioControl:
    """:class:`~patter_core.bridge.CarrierControl` over Twilio's REST API."""

    def __init__(
        self,
        rest: TwilioRest,
        webhook_host: str | None,
        flow: TwilioCallFlow,
        phone_number: str | None = None,
    ) -> None:
        self._rest = rest
        self._host = webhook_host
        self._flow = flow
        self._number = phone_number

    def warm_transfer(self, call_id: str, target: str, summary: str) -> HttpRequest | None:
        # The person sees our number; without one (or a public host for the
        # status callbacks) a warm transfer cannot be placed.
        if not (self._host and self._number):
            return None
        warm = TwilioWarmTransfer(self._rest, webhook_host=self._host)
        try:
            return warm.dial_person(
                caller_sid=call_id, target=target, from_=self._number, summary=summary
            )
        except LocalProtocolError:
            return None  # a summary past Twilio's inline TwiML limit once escaped

    def leave_message(self, call_id: str, text: str) -> HttpRequest | None:
        return self._flow.leave_message(call_id, text)

    def hangup(self, call_id: str) -> HttpRequest | None:
        return self._rest.hang_up(call_id)

    def transfer(self, call_id: str, target: str) -> HttpRequest | None:
        return self._rest.update_call_twiml(call_id, dial_twiml(target))

    def start_recording(self, call_id: str) -> HttpRequest | None:
        return self._flow.start_recording(call_id)


class TelnyxControl:
    """:class:`~patter_core.bridge.CarrierControl` over Telnyx Call Control."""

    def __init__(
        self,
        rest: TelnyxRest,
        flow: TelnyxCallFlow,
        warm: TelnyxWarmTransfer | None = None,
        phone_number: str | None = None,
    ) -> None:
        self._rest = rest
        self._flow = flow
        self._warm = warm
        self._number = phone_number

    def warm_transfer(self, call_id: str, target: str, summary: str) -> HttpRequest | None:
        # Needs telnyx_connection_id (to dial), a public host and our number.
        if self._warm is None or not self._number:
            return None
        return self._warm.dial_person(
            caller_id=call_id, target=target, from_=self._number, summary=summary
        )

    def hangup(self, call_id: str) -> HttpRequest | None:
        return self._rest.hangup(call_id)

    def transfer(self, call_id: str, target: str) -> HttpRequest | None:
        return self._rest.transfer(call_id, to=target)

    def start_recording(self, call_id: str) -> HttpRequest | None:
        return self._rest.record_start(call_id)

    def leave_message(self, call_id: str, text: str) -> HttpRequest | None:
        # speak, marked so that its call.speak.ended hangs up (the flow).
        ((_, request),) = self._flow.voicemail_drop(call_id, text).requests
        return request
