"""The shape every provider session has, and the I/O it asks the runtime for.

Theory of operation
-------------------

A provider session is a pure object. It never opens a socket; instead it
*asks* for I/O with :data:`IoAction` values, drained with
:meth:`ProviderSession.io_to_send`, and is *told* what happened through the
``socket_*``, ``http_*`` and ``handler_result`` methods, each of which returns
the :mod:`common events <patter_core.providers._events>` that the input
produced. The bridge gives it commands with :meth:`ProviderSession.send`.

Connections are named by a *channel* string: a realtime provider uses a single
socket channel ("main"); the pipeline uses several ("stt", "tts", "llm").

A realtime session, start to end::

    session.start(now)                      -> io: OpenSocket("main", url, headers)
    session.socket_opened("main", now)      -> io: SendMessage("main", session.update ...)
    session.socket_message("main", m, now)  -> [SessionReady()], [AudioOut(...)], ...
    session.send(SendAudio(audio=...), now) -> io: SendMessage("main", append ...)
    session.close(now)                      -> io: CloseSocket("main")

Time-driven behaviour (keep-alives, timeouts) is exposed as
:meth:`next_deadline` / :meth:`handle_timer`, as in aioquic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..audio._format import AudioFormat
from ..http._types import HttpRequest
from ._events import ProviderCommand, ProviderEvent

__all__ = [
    "CallHandler",
    "CloseSocket",
    "IoAction",
    "NoHttpMixin",
    "OpenSocket",
    "ProviderSession",
    "SendMessage",
    "StartHttp",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenSocket:
    """Open a WebSocket client connection; report with ``socket_opened``."""

    channel: str
    url: str  # ws:// or wss://
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SendMessage:
    """Send one WebSocket message (text for ``str``, binary for ``bytes``)."""

    channel: str
    data: str | bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseSocket:
    channel: str
    code: int = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class StartHttp:
    """Make an HTTP request; stream the answer back through ``http_*`` calls."""

    channel: str
    request: HttpRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class CallHandler:
    """Pipeline mode: call the user's ``on_message`` with the caller's text.

    The runtime awaits the handler and reports with ``handler_result``.
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

    def start(self, now: float) -> None: ...

    def send(self, command: ProviderCommand, now: float) -> None: ...

    def close(self, now: float) -> None: ...

    def io_to_send(self) -> list[IoAction]: ...

    def socket_opened(self, channel: str, now: float) -> list[ProviderEvent]: ...

    def socket_message(
        self, channel: str, data: str | bytes, now: float
    ) -> list[ProviderEvent]: ...

    def socket_closed(
        self, channel: str, code: int, reason: str, now: float
    ) -> list[ProviderEvent]: ...

    def http_response_start(
        self, channel: str, status: int, headers: tuple[tuple[str, str], ...], now: float
    ) -> list[ProviderEvent]: ...

    def http_data(self, channel: str, data: bytes, now: float) -> list[ProviderEvent]: ...

    def http_done(self, channel: str, now: float) -> list[ProviderEvent]: ...

    def http_failed(self, channel: str, message: str, now: float) -> list[ProviderEvent]: ...

    def handler_result(self, request_id: int, text: str, now: float) -> list[ProviderEvent]: ...

    def next_deadline(self) -> float | None: ...

    def handle_timer(self, now: float) -> list[ProviderEvent]: ...


class NoHttpMixin:
    """The HTTP and handler inputs of a session that never asks for them.

    The runtime only reports on I/O a session requested, so for a session
    that starts no HTTP request and no handler call these inputs cannot
    happen; they answer with no events rather than raise.
    """

    def http_response_start(
        self, channel: str, status: int, headers: tuple[tuple[str, str], ...], now: float
    ) -> list[ProviderEvent]:
        return []

    def http_data(self, channel: str, data: bytes, now: float) -> list[ProviderEvent]:
        return []

    def http_done(self, channel: str, now: float) -> list[ProviderEvent]:
        return []

    def http_failed(self, channel: str, message: str, now: float) -> list[ProviderEvent]:
        return []

    def handler_result(self, request_id: int, text: str, now: float) -> list[ProviderEvent]:
        return []
