"""A provider session opened before its call's stream, and adopted by it.

A warm start (``prewarm``): at a verified voice webhook the runtime opens
and configures the provider session of the call it is about to answer, so
that it is ready -- often with the greeting's first audio already in hand
-- when the carrier's media stream starts. Its socket was opened, and its
first events produced, with no bridge yet. :class:`WarmSession` hands that
session to the bridge as if it had just been made:

* ``start`` does nothing (the session started at the webhook);
* ``socket_opened`` for a channel already open gives no events (the session
  saw the opening then);
* the events it produced meanwhile (``SessionReady``, the greeting's audio)
  come out of ``handle_timer``, due at once, so the bridge, which runs a
  session's due timers right after starting it, handles them in order;
* everything else goes to the session itself.

The bridge takes a warm session only from its session factory, which it
calls after the stream's token passed: a refused stream never adopts one.
"""

from __future__ import annotations

import math

from ..audio._format import AudioFormat
from ._events import ProviderCommand, ProviderEvent
from ._session import IoAction, ProviderSession

__all__ = ["WarmSession"]


class WarmSession:
    """``session`` with the events it gave before adoption, replayed first."""

    __slots__ = ("_events", "_opened", "session")

    def __init__(
        self, session: ProviderSession, events: list[ProviderEvent], opened: frozenset[str]
    ) -> None:
        self.session = session
        self._events = events
        self._opened = set(opened)

    @property
    def input_format(self) -> AudioFormat:
        return self.session.input_format

    @property
    def output_format(self) -> AudioFormat:
        return self.session.output_format

    def start(self, now: float) -> None:
        """Already started, at the webhook."""

    def send(self, command: ProviderCommand, now: float) -> None:
        self.session.send(command, now)

    def close(self, now: float) -> None:
        self.session.close(now)

    def io_to_send(self) -> list[IoAction]:
        return self.session.io_to_send()

    def socket_opened(self, channel: str, now: float) -> list[ProviderEvent]:
        if channel in self._opened:
            self._opened.discard(channel)  # a later reopening is the session's own
            return []
        return self.session.socket_opened(channel, now)

    def socket_message(self, channel: str, data: str | bytes, now: float) -> list[ProviderEvent]:
        return self.session.socket_message(channel, data, now)

    def socket_closed(
        self, channel: str, code: int, reason: str, now: float
    ) -> list[ProviderEvent]:
        return self.session.socket_closed(channel, code, reason, now)

    def http_response_start(
        self, channel: str, status: int, headers: tuple[tuple[str, str], ...], now: float
    ) -> list[ProviderEvent]:
        return self.session.http_response_start(channel, status, headers, now)

    def http_data(self, channel: str, data: bytes, now: float) -> list[ProviderEvent]:
        return self.session.http_data(channel, data, now)

    def http_done(self, channel: str, now: float) -> list[ProviderEvent]:
        return self.session.http_done(channel, now)

    def http_failed(self, channel: str, message: str, now: float) -> list[ProviderEvent]:
        return self.session.http_failed(channel, message, now)

    def handler_result(self, request_id: int, text: str, now: float) -> list[ProviderEvent]:
        return self.session.handler_result(request_id, text, now)

    def next_deadline(self) -> float | None:
        return -math.inf if self._events else self.session.next_deadline()

    def handle_timer(self, now: float) -> list[ProviderEvent]:
        if self._events:
            events = list(self._events)
            self._events.clear()
            return events
        return self.session.handle_timer(now)
