"""A provider session opened before its call's stream, and adopted by it.

A warm start (``prewarm``): at a verified voice webhook the runtime opens
and configures the provider session of the call it is about to answer, so
that it is ready -- often with the greeting's first audio already in hand
-- when the carrier's media stream starts. Its socket was opened, and its
first events produced, with no bridge yet. :class:`WarmSession` hands that
session to the bridge as if it had just been made:

* ``start`` starts nothing (the session started at the webhook) and returns
  the events it produced meanwhile (``SessionReady``, the greeting's audio),
  so the bridge handles them in order, as from a session just started;
* ``SocketOpened`` for a channel already open gives no events (the session
  saw the opening then);
* everything else goes to the session itself.

The bridge takes a warm session only from its session factory, which it
calls after the stream's token passed: a refused stream never adopts one.
"""

from __future__ import annotations

from ..audio._format import AudioFormat
from ._events import ProviderCommand, ProviderEvent
from ._io import ChannelId, IoResult, SocketOpened
from ._session import IoAction, ProviderSession

__all__ = ["WarmSession"]


class WarmSession:
    """``session`` with the events it gave before adoption, replayed first."""

    __slots__ = ("_events", "_opened", "session")

    def __init__(
        self, session: ProviderSession, events: list[ProviderEvent], opened: frozenset[ChannelId]
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

    @property
    def audio_now(self) -> bool:
        return self.session.audio_now

    def audio_message(self, audio: bytes) -> IoAction:
        return self.session.audio_message(audio)

    def start(self, now: float) -> list[ProviderEvent]:
        """Already started, at the webhook: what it said since."""
        events, self._events = self._events, []
        return events

    def send(self, command: ProviderCommand, now: float) -> list[ProviderEvent]:
        return self.session.send(command, now)

    def close(self, now: float) -> None:
        self.session.close(now)

    def io_to_send(self) -> list[IoAction]:
        return self.session.io_to_send()

    def receive_io(self, result: IoResult, now: float) -> list[ProviderEvent]:
        if isinstance(result, SocketOpened) and result.channel in self._opened:
            self._opened.discard(result.channel)  # a later reopening is the session's own
            return []
        return self.session.receive_io(result, now)

    def next_deadline(self) -> float | None:
        return self.session.next_deadline()

    def handle_timer(self, now: float) -> list[ProviderEvent]:
        return self.session.handle_timer(now)
