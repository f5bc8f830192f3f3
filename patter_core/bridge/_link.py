"""The bridge's end of the provider session.

:class:`SessionLink` holds the session once it exists and everything about
talking to it that is not a decision about the call: commands other than
audio are held (bounded) until the session is ready and then sent in order,
the session's I/O requests become the bridge's actions as soon as they are
made, the events that commands, audio and the session's own timer produce
wait in ``later`` until the bridge handles them (:meth:`drain`), and the
sockets it opened are known, so that a close can be told from a failure to
connect.
"""

from __future__ import annotations

from collections.abc import Callable

from ..providers._events import ProviderCommand, ProviderEvent, SendAudio
from ..providers._io import ChannelId, IoResult
from ..providers._session import CloseSocket, ProviderSession
from ._actions import Outbox, ProviderIo
from ._limits import ProviderCap

__all__ = ["SessionLink"]

EventHandler = Callable[[list[ProviderEvent], float], None]


class SessionLink:
    """One call's provider session, as the bridge talks to it."""

    __slots__ = (
        "_cap",
        "_handle",
        "_max_pending",
        "_opened",
        "_out",
        "_pending",
        "later",
        "ready",
        "session",
    )

    def __init__(self, out: Outbox, cap: ProviderCap, handle: EventHandler) -> None:
        self._out = out
        self._cap = cap  # learns of the sockets the session retires
        self._handle = handle  # the bridge's: handles a batch of events
        self.session: ProviderSession | None = None
        #: The session said it is ready (``SessionReady``).
        self.ready = False
        self._pending: list[ProviderCommand] = []
        self._max_pending = 0
        #: Events made by commands, audio and timers, for :meth:`drain`.
        self.later: list[ProviderEvent] = []
        self._opened: set[ChannelId] = set()

    def open(self, session: ProviderSession, now: float, *, max_pending: int) -> None:
        """Start ``session``; up to ``max_pending`` commands wait for it to be ready."""
        self.session, self._max_pending = session, max_pending
        self.later += session.start(now)

    def receive(self, result: IoResult, now: float) -> list[ProviderEvent]:
        assert self.session is not None
        return self.session.receive_io(result, now)

    def command(self, command: ProviderCommand, now: float) -> None:
        """Send ``command`` (caller audio always; anything else once ready)."""
        session = self.session
        if session is None:
            return
        if not self.ready and not isinstance(command, SendAudio):
            if len(self._pending) < self._max_pending:
                self._pending.append(command)
            return
        self.later += session.send(command, now)
        self.collect_io()

    def audio(self, audio: bytes, now: float) -> None:
        """Caller audio (not empty): its one message at once when the session
        takes it so (``audio_now``), else a ``SendAudio`` whose events wait."""
        session = self.session
        assert session is not None
        if session.audio_now:
            self.collect_io()  # anything the session asked for first goes first
            self._out.append(ProviderIo(action=session.audio_message(audio)))
        else:
            self.later += session.send(SendAudio(audio=audio), now)

    def take_held(self) -> list[ProviderCommand]:
        """The commands held until readiness, oldest first (none are held after)."""
        held, self._pending = self._pending, []
        return held

    def collect_io(self) -> None:
        """The session's I/O requests, as actions, in order."""
        if self.session is not None:
            for io in self.session.io_to_send():
                self._out.append(ProviderIo(action=io))
                if isinstance(io, CloseSocket):  # e.g. an OpenAI session renewed
                    self._cap.retired.add(io.channel)

    def drain(self, now: float, *, timers: bool) -> None:
        """Pass on the I/O; handle the waiting events and, with ``timers``, the
        session's timer if it is due (the handler stops at the call's end)."""
        session = self.session
        if timers and session is not None:
            deadline = session.next_deadline()
            if deadline is not None and deadline <= now:
                self.later += session.handle_timer(now)
        self.collect_io()
        while self.later:
            events, self.later = self.later, []
            self._handle(events, now)
            self.collect_io()

    def close(self, now: float) -> None:
        """The call ended: the session closes, its last I/O passed on."""
        if self.session is not None:
            self.session.close(now)
            self.collect_io()

    def socket_opened(self, channel: ChannelId) -> None:
        self._opened.add(channel)

    def socket_closed(self, channel: ChannelId) -> bool:
        """Forget ``channel``; True when it had opened (a close, not a failure to connect)."""
        opened = channel in self._opened
        self._opened.discard(channel)
        return opened
