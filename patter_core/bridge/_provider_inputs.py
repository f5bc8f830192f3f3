"""The provider session's I/O results that the bridge only passes on.

A message on a provider socket, an HTTP response's parts, the user's
``on_message`` answer: each goes to the session, and the events it returns
are the bridge's to handle (``CallBridge._provider_input``). The inputs that
decide something themselves (a socket opened or closed, a tool's result)
live in the bridge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..providers._events import ProviderEvent
from ..providers._session import ProviderSession
from ._actions import Action

__all__ = ["ProviderInputs"]

_Call = Callable[[ProviderSession], list[ProviderEvent]]


class _Bridge(Protocol):
    def _provider_input(self, call: _Call, now: float) -> list[Action]: ...


class ProviderInputs:
    """The pass-through provider inputs of :class:`~patter_core.bridge.CallBridge`."""

    __slots__ = ()

    def provider_socket_message(
        self: _Bridge, channel: str, data: str | bytes, now: float
    ) -> list[Action]:
        return self._provider_input(lambda s: s.socket_message(channel, data, now), now)

    def provider_http_response_start(
        self: _Bridge, channel: str, status: int, headers: tuple[tuple[str, str], ...], now: float
    ) -> list[Action]:
        return self._provider_input(
            lambda s: s.http_response_start(channel, status, headers, now), now
        )

    def provider_http_data(self: _Bridge, channel: str, data: bytes, now: float) -> list[Action]:
        return self._provider_input(lambda s: s.http_data(channel, data, now), now)

    def provider_http_done(self: _Bridge, channel: str, now: float) -> list[Action]:
        return self._provider_input(lambda s: s.http_done(channel, now), now)

    def provider_http_failed(
        self: _Bridge, channel: str, message: str, now: float
    ) -> list[Action]:
        return self._provider_input(lambda s: s.http_failed(channel, message, now), now)

    def handler_result(self: _Bridge, request_id: int, text: str, now: float) -> list[Action]:
        """The user's ``on_message`` handler answered (pipeline mode)."""
        return self._provider_input(lambda s: s.handler_result(request_id, text, now), now)
