"""A stream's ``start``: is it admitted, and what the application hears of it.

The stream token (Twilio ``<Parameter name="stream_token">``, else Telnyx's
``connected`` field or upgrade header) is checked *before* any provider
session exists, so a forged or replayed stream never costs a provider
connection: a missing token, a ``start`` naming another call than the
stream's URL path, or a refusal by the verifier (the runtime's admission
also refuses a second live stream for a call and a token whose call has
ended) closes the stream with 1008. The token is ours: it never reaches the
application's callbacks.
"""

from __future__ import annotations

from .._errors import RemoteProtocolError
from ..media._events import Start
from ._config import STREAM_TOKEN_PARAMETER, CallInfo, TokenVerifier
from ._payloads import CallStarted

__all__ = ["Admission", "call_start_payload"]


class Admission:
    """Who may start this stream: ``verify`` (None: no check), and the token
    and call id its ``start`` must carry."""

    __slots__ = ("_call_id", "_token", "_verify")

    def __init__(
        self, verify: TokenVerifier | None, token: str | None, expected_call_id: str | None
    ) -> None:
        self._verify = verify
        self._token = token  # Telnyx: the upgrade's auth-token header
        self._call_id = expected_call_id  # the stream URL path's

    def connected(self, auth_token: str | None) -> None:
        """Telnyx's ``connected`` names the token, if the upgrade did not."""
        if auth_token and self._token is None:
            self._token = auth_token

    def admits(self, start: Start, now: float) -> bool:
        """True when the stream may reach an agent."""
        if self._verify is None:
            return True
        token = start.custom_parameters.get(STREAM_TOKEN_PARAMETER) or self._token
        try:
            if not token:
                raise RemoteProtocolError("no stream token", close_code=1008)
            if self._call_id is not None and start.call_id != self._call_id:
                raise RemoteProtocolError("start names another call", close_code=1008)
            self._verify(token, start.call_id, now)
        except RemoteProtocolError:
            return False
        return True


def call_start_payload(info: CallInfo, carrier: str) -> CallStarted:
    """``on_call_start``'s payload (the custom parameters without our token)."""
    return CallStarted(
        call_id=info.call_id,
        stream_id=info.stream_id,
        caller=info.caller,
        callee=info.callee,
        carrier=carrier,
        custom_parameters=dict(info.custom_parameters),
    )
