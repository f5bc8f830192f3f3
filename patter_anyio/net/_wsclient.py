"""Outgoing WebSockets (to AI providers, and to local fakes in tests).

wsproto does the opening handshake (it checks the 101 and the
Sec-WebSocket-Accept value, RFC 6455 section 4.1) and masks every frame
with fresh random bytes, as a client must (section 5.3); after that the
connection is the same :class:`~patter_anyio.WebSocket` the server hands
its handlers.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import anyio
import wsproto
import wsproto.utilities
from wsproto.connection import Connection, ConnectionType
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request

from .._errors import STREAM_LOST
from ._httpclient import (
    ClientConnectionError,
    ClientProtocolError,
    ClientTimeout,
    open_stream,
    parse_url,
)
from ._websocket import WebSocket

__all__ = ["connect_websocket"]

_READ_SIZE = 65536
# Provider messages (audio deltas, transcripts) are well under this; a
# bigger one is a bug or an attack, and closes with 1009.
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# Error bodies of refused handshakes are kept for the error message only.
_MAX_REJECT_BODY = 16 * 1024
# More than any handshake answer's head.
_MAX_HEAD = 64 * 1024
# Where a response head ends: an empty line.
_HEAD_END = re.compile(rb"\r?\n\r?\n")


@asynccontextmanager
async def connect_websocket(
    url: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
    timeout: float = 10.0,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    idle_timeout: float | None = None,
    send_timeout: float = 10.0,
    subprotocols: Iterable[str] = (),
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[WebSocket]:
    """Open ``ws://`` or ``wss://`` ``url`` within ``timeout`` seconds.

    A refused handshake raises :class:`ClientProtocolError` with the status
    and (the start of) the body; connection failures raise
    :class:`ClientConnectionError`, a slow server :class:`ClientTimeout`.
    The socket is closed (1000) when the block exits.
    """
    target = parse_url(url)
    ws_conn = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    try:
        with anyio.fail_after(timeout):
            stream = await open_stream(target, ssl_context)
    except TimeoutError as exc:
        raise ClientTimeout(f"connecting to {target.host} timed out") from exc
    try:
        try:
            with anyio.fail_after(timeout):
                await stream.send(
                    ws_conn.send(
                        Request(
                            host=target.host_header,
                            target=target.path,
                            extra_headers=[(k.encode(), v.encode()) for k, v in headers],
                            subprotocols=list(subprotocols),
                        )
                    )
                )
                trailing = await _handshake(ws_conn, stream)
        except TimeoutError as exc:
            raise ClientTimeout(f"WebSocket handshake with {target.host} timed out") from exc
        except STREAM_LOST as exc:
            raise ClientConnectionError(f"connection lost: {exc}") from exc
        assert ws_conn.connection is not None
        # The handshake's parsers are done: this frame lives as long as the
        # socket, and they need not.
        del ws_conn
        ws = WebSocket(
            stream,
            # A fresh connection: the frames after the 101 (``trailing``) go
            # to the WebSocket's own reader, not to the handshake's parser.
            Connection(ConnectionType.CLIENT),
            trailing=trailing,
            max_message_bytes=max_message_bytes,
            idle_timeout=idle_timeout,
            send_timeout=send_timeout,
        )
        try:
            yield ws
        finally:
            with anyio.CancelScope(shield=True):
                await ws.close(1000)
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()


async def _handshake(ws_conn: wsproto.WSConnection, stream: anyio.abc.ByteStream) -> bytes:
    """Read the server's answer; returns the bytes that came after a 101's
    head (the first frames, when the server sent them at once)."""
    reject_status: int | None = None
    reject_body = bytearray()
    received = bytearray()
    while True:
        try:
            data = await stream.receive(_READ_SIZE)
        except anyio.EndOfStream:
            data = b""
        if len(received) <= _MAX_HEAD:
            # Before the 101's head ends (h11 allows 16 KiB); a refusal's
            # body past this is not needed here.
            received += data
        try:
            ws_conn.receive_data(data or None)
            for event in ws_conn.events():
                if isinstance(event, AcceptConnection):
                    # A 101 has no body: its head ends at the first empty
                    # line (h11 takes a bare LF as a line end too).
                    end = _HEAD_END.search(received)
                    assert end is not None
                    return bytes(received[end.end() :])
                if isinstance(event, RejectConnection):
                    reject_status = event.status_code
                    if not event.has_body:
                        raise ClientProtocolError(
                            f"WebSocket handshake refused: {reject_status}", status=reject_status
                        )
                elif isinstance(event, RejectData):
                    if len(reject_body) < _MAX_REJECT_BODY:
                        reject_body += event.data
                    if event.body_finished:
                        raise ClientProtocolError(
                            f"WebSocket handshake refused: {reject_status}",
                            status=reject_status,
                            body=bytes(reject_body[:_MAX_REJECT_BODY]),
                        )
        except wsproto.utilities.RemoteProtocolError as exc:
            raise ClientProtocolError(f"invalid WebSocket handshake: {exc}") from exc
        except wsproto.utilities.LocalProtocolError as exc:
            raise ClientProtocolError(f"connection closed during handshake: {exc}") from exc
        if not data:
            raise ClientProtocolError(
                "connection closed during WebSocket handshake", status=reject_status
            )
