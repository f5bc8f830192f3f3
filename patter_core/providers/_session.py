"""The shape every provider session has, and the I/O it asks the runtime for.

Theory of operation
-------------------

A provider session is a pure object. It never opens a socket; instead it
*asks* for I/O with :data:`IoAction` values, drained with
:meth:`ProviderSession.io_to_send`, and is *told* what happened with one
:data:`~patter_core.providers.IoResult` per outcome, given to
:meth:`ProviderSession.receive_io`. The bridge gives it commands with
:meth:`ProviderSession.send`. Every call returns the :mod:`common events
<patter_core.providers._events>` that it produced: nothing is held back for
a later call to collect.

Connections are named by a *channel* string: a realtime provider uses a single
socket channel ("main"); the pipeline uses several ("stt", "tts", "llm").

A realtime session, start to end::

    session.start(now)                       -> io: OpenSocket("main", url, headers)
    session.receive_io(SocketOpened(channel="main"), now)
                                             -> io: SendMessage("main", session.update ...)
    session.receive_io(SocketMessage(channel="main", data=m), now)
                                             -> [SessionReady()], [AudioOut(...)], ...
    session.send(SendAudio(audio=...), now)  -> io: SendMessage("main", append ...)
    session.close(now)                       -> io: CloseSocket("main")

Time-driven behaviour (keep-alives, timeouts) is exposed as
:meth:`next_deadline` / :meth:`handle_timer`, as in aioquic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .._errors import LocalProtocolError
from ..audio._format import AudioFormat
from ..http._types import HttpRequest
from ._events import ProviderCommand, ProviderEvent
from ._io import ChannelId, IoResult

__all__ = [
    "AudioThroughSend",
    "CallHandler",
    "CloseSocket",
    "IoAction",
    "OpenSocket",
    "ProviderSession",
    "SendMessage",
    "StartHttp",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenSocket:
    """Open a WebSocket client connection; reported with ``SocketOpened``."""

    channel: ChannelId
    url: str  # ws:// or wss://
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SendMessage:
    """Send one WebSocket message (text for ``str``, binary for ``bytes``)."""

    channel: ChannelId
    data: str | bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseSocket:
    channel: ChannelId
    code: int = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class StartHttp:
    """Make an HTTP request; its answer comes back as ``HttpStarted``,
    ``HttpData`` and ``HttpDone`` (or ``HttpFailed``)."""

    channel: ChannelId
    request: HttpRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class CallHandler:
    """Pipeline mode: call the user's ``on_message`` with the caller's text.

    The runtime awaits the handler and reports with ``HandlerReplied``.
    """

    request_id: int
    text: str


IoAction = OpenSocket | SendMessage | CloseSocket | StartHttp | CallHandler


class ProviderSession(Protocol):
    """What the bridge and the runtime rely on; every provider implements it."""

    @property
    def input_format(self) -> AudioFormat:
        """The format :class:`SendAudio` must carry."""
        ...

    @property
    def output_format(self) -> AudioFormat:
        """The format :class:`AudioOut` carries (may change until SessionReady)."""
        ...

    @property
    def audio_now(self) -> bool:
        """True when ``send(SendAudio(audio))`` would only send one message at
        once and make no event (a realtime session, live): the bridge then
        takes :meth:`audio_message` instead, its steady state's quick way."""
        ...

    def audio_message(self, audio: bytes) -> IoAction:
        """The message ``send(SendAudio(audio))`` would send; only while
        :attr:`audio_now`, for audio that is not empty."""
        ...

    def start(self, now: float) -> list[ProviderEvent]: ...

    def send(self, command: ProviderCommand, now: float) -> list[ProviderEvent]: ...

    def close(self, now: float) -> None: ...

    def io_to_send(self) -> list[IoAction]: ...

    def receive_io(self, result: IoResult, now: float) -> list[ProviderEvent]:
        """What the runtime did with one of the session's I/O actions."""
        ...

    def next_deadline(self) -> float | None: ...

    def handle_timer(self, now: float) -> list[ProviderEvent]: ...


class AudioThroughSend:
    """For a session whose caller audio can make events (a VAD listens to
    it): ``audio_now`` is never true, so every chunk goes through ``send``."""

    audio_now = False

    def audio_message(self, audio: bytes) -> IoAction:
        raise LocalProtocolError("this session takes caller audio through send()")
