"""What the runtime reports back about the I/O a provider session asked for.

A session asks for I/O with :data:`~patter_core.providers.IoAction` values
(open a socket, send, start an HTTP request, call the handler); the runtime
performs them and reports each outcome as one :data:`IoResult`, given to
``ProviderSession.receive_io(result, now)`` (through
``CallBridge.provider_result(result, now)`` during a call), as h11's
``receive_data`` takes bytes. One typed value per outcome, one entry point:
a session answers only the kinds it asked for, and a result of a kind it
never asked for gives no events.

Actions and results name their connection with a :data:`ChannelId`, a
distinct type over ``str`` (free at run time), so that mypy tells a channel
from any other string; a session makes its ids with ``ChannelId("main")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

__all__ = [
    "MAIN_CHANNEL",
    "ChannelId",
    "HandlerReplied",
    "HttpData",
    "HttpDone",
    "HttpFailed",
    "HttpStarted",
    "IoResult",
    "SocketClosed",
    "SocketMessage",
    "SocketOpened",
]


#: The name of one connection a session asked for ("main", "stt", "llm-3").
ChannelId = NewType("ChannelId", str)
#: A realtime session's socket; the bridge ends the call when it closes.
MAIN_CHANNEL = ChannelId("main")


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketOpened:
    """The WebSocket of an ``OpenSocket`` is open (handshake done)."""

    channel: ChannelId


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketMessage:
    """One WebSocket message: text as ``str``, binary as ``bytes``."""

    channel: ChannelId
    data: str | bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketClosed:
    """The socket is gone: closed by the peer (its code and reason), lost, or
    never opened (connecting failed: 1006 and our words for why)."""

    channel: ChannelId
    code: int
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpStarted:
    """The head of a ``StartHttp`` request's response."""

    channel: ChannelId
    status: int
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpData:
    """A piece of the response body, as it arrived."""

    channel: ChannelId
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpDone:
    """The response body is complete."""

    channel: ChannelId


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpFailed:
    """The request failed (connect, timeout, a broken response) before it was done."""

    channel: ChannelId
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HandlerReplied:
    """The user's ``on_message`` handler answered a ``CallHandler`` ("" for nothing)."""

    request_id: int
    text: str


IoResult = (
    SocketOpened
    | SocketMessage
    | SocketClosed
    | HttpStarted
    | HttpData
    | HttpDone
    | HttpFailed
    | HandlerReplied
)
