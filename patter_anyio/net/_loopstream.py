"""A TCP byte stream for the asyncio backend that costs one event-loop
wake-up per read (none when its owner takes the bytes in the transport's
callback, :meth:`LoopStream.receive_fed`) and none per write.

anyio's asyncio ``SocketStream`` is correct and general, and per call it is
the largest cost after the socket system calls themselves (DESIGN.md, "The
hot path"): every ``receive`` turns reading on and off again (two
``epoll_ctl`` calls around each wait), and every ``send`` that did not
block still yields to the loop once (a cancel-shielded checkpoint), so a
message relayed from one socket to another takes two extra trips through
the scheduler. A call moves ~150 messages a second.

:class:`LoopStream` keeps the same contract (``anyio.abc.ByteStream``:
``receive``/``send``/``send_eof``/``aclose`` and the socket attributes)
over an ``asyncio.Protocol`` of its own:

* reading stays on; arriving bytes wait in a queue, bounded: past
  ``_READ_HIGH`` bytes the transport stops reading until the owner has
  taken them (TCP flow control then slows the peer);
* ``send`` writes to the transport and returns at once; it waits only when
  the transport's buffer passes its high-water mark, until it drains;
* ``aclose`` closes the transport after what is buffered is written, and
  aborts it if the peer has not taken it within ``_CLOSE_FLUSH`` seconds.

Errors are anyio's (``EndOfStream``, ``BrokenResourceError``,
``ClosedResourceError``), so the code above cannot tell the streams apart.
Under trio, or if anything here is unavailable, the server and the clients
use anyio's own streams (:func:`accept`, :func:`connect`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.abc import SocketAttribute

__all__ = ["LoopStream", "accept", "connect", "running_asyncio"]

# Bytes held for the owner before the transport stops reading.
_READ_HIGH = 256 * 1024
# The transport's write buffer: a send waits for it to drain past this.
_WRITE_HIGH = 256 * 1024
# How long aclose() lets buffered bytes drain before it drops the connection.
_CLOSE_FLUSH = 2.0


def _no_delay(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def running_asyncio() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or None on another backend."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _Protocol(asyncio.Protocol):
    __slots__ = (
        "buffered",
        "chunks",
        "closed",
        "drain",
        "eof",
        "error",
        "fed_wake",
        "feed",
        "lost",
        "reading_paused",
        "transport",
        "waiter",
        "write_paused",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.waiter: asyncio.Future[None] | None = None
        self.drain: asyncio.Future[None] | None = None
        self.eof = False
        self.lost = False
        self.closed = False
        self.error: BaseException | None = None
        # Set while the owner waits in receive_fed() (see there).
        self.feed: Callable[[bytes], bool] | None = None
        self.fed_wake = False
        self.reading_paused = False
        self.write_paused = False

    # -- asyncio's callbacks ---------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=_WRITE_HIGH)

    def data_received(self, data: bytes) -> None:
        feed = self.feed
        if feed is not None:
            # The owner waits in receive_fed() with nothing queued: the
            # bytes are its own at once, in this callback.
            if feed(data):
                return
            self.feed = None  # what comes next queues, until it reads again
            self.fed_wake = True
            self._wake_reader()
            return
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > _READ_HIGH and not self.reading_paused:
            self.reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        # Keep our half open: the owner may still write (a WebSocket's Close
        # answer after the peer's FIN, an HTTP response after a half-close).
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is not None:
            self.error = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writer(self) -> None:
        drain = self.drain
        if drain is not None and not drain.done():
            drain.set_result(None)


class LoopStream(anyio.abc.SocketStream):
    """An ``anyio.abc.SocketStream`` over an asyncio transport (see the
    module's notes)."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._receiving = False

    # -- reading -----------------------------------------------------------
    def idle(self) -> bool:
        """Nothing buffered, no end of stream: a pooled connection may be reused."""
        p = self._protocol
        return not (p.chunks or p.eof or p.lost or p.closed)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        p = self._protocol
        if self._receiving:
            raise anyio.BusyResourceError("reading from")
        if not p.chunks:
            if p.closed:
                raise anyio.ClosedResourceError
            if not (p.eof or p.lost):
                self._receiving = True
                waiter = p.waiter = self._loop.create_future()
                try:
                    await waiter
                finally:
                    p.waiter = None
                    self._receiving = False
                if p.fed_wake:
                    # receive_fed(): the feed kept bytes that come before
                    # any queued since, and asks for this task first.
                    p.fed_wake = False
                    return b""
            if not p.chunks:
                if p.closed:
                    raise anyio.ClosedResourceError
                if p.error is not None:
                    raise anyio.BrokenResourceError from p.error
                raise anyio.EndOfStream
        chunk = p.chunks.popleft()
        if len(chunk) > max_bytes:
            chunk, rest = chunk[:max_bytes], chunk[max_bytes:]
            p.chunks.appendleft(rest)
        p.buffered -= len(chunk)
        if p.reading_paused and p.buffered <= _READ_HIGH // 2 and not p.lost:
            p.reading_paused = False
            self._transport.resume_reading()
        return chunk

    async def receive_fed(self, feed: Callable[[bytes], bool], max_bytes: int = 65536) -> bytes:
        """:meth:`receive`, except that while it waits, the bytes that arrive
        go straight to ``feed``, in the transport's callback, and this task
        is not woken: ``feed`` returns True when it has dealt with them, or
        False when it has kept them but needs this task, and this then
        returns ``b""``. A task switch per message is what a call's reader
        costs most beyond its own work (DESIGN.md, "The hot path")."""
        p = self._protocol
        if p.chunks or p.eof or p.lost or p.closed or self._receiving:
            return await self.receive(max_bytes)
        p.feed = feed
        try:
            return await self.receive(max_bytes)
        finally:
            p.feed = None
            p.fed_wake = False

    # -- writing -----------------------------------------------------------
    def writable(self) -> bool:
        """A write now goes straight to the transport: open, and its buffer
        below the high-water mark."""
        p = self._protocol
        return not (p.closed or p.lost or p.write_paused)

    def write_nowait(self, item: bytes) -> bool:
        """Hand ``item`` to the transport; True when that is all, False when
        its buffer is past the high-water mark and the writer should
        ``await drain()`` before writing more."""
        p = self._protocol
        if p.closed:
            raise anyio.ClosedResourceError
        if p.lost:
            raise anyio.BrokenResourceError from p.error
        self._transport.write(item)
        return not p.write_paused

    async def send(self, item: bytes) -> None:
        if not self.write_nowait(item):
            await self.drain()

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its high-water mark."""
        p = self._protocol
        while p.write_paused and not p.lost:
            drain = p.drain = self._loop.create_future()
            try:
                await drain
            finally:
                p.drain = None
        if p.lost and p.error is not None:
            raise anyio.BrokenResourceError from p.error

    async def send_eof(self) -> None:
        if not self._protocol.lost and self._transport.can_write_eof():
            self._transport.write_eof()

    async def aclose(self) -> None:
        p = self._protocol
        if p.closed:
            return
        p.closed = True
        p._wake_reader()
        transport = self._transport
        if not transport.is_closing():
            transport.close()  # writes what is buffered first
            if transport.get_write_buffer_size():
                self._loop.call_later(_CLOSE_FLUSH, transport.abort)
        # A checkpoint, as anyio's aclose is one.
        await anyio.lowlevel.checkpoint()

    # -- attributes ----------------------------------------------------------
    @property
    def _raw_socket(self) -> socket.socket:
        sock = self._transport.get_extra_info("socket")
        assert sock is not None
        return sock  # type: ignore[no-any-return]


async def accept(
    listener: anyio.abc.SocketListener,
) -> anyio.abc.SocketStream:
    """The next connection on ``listener``: a :class:`LoopStream` on asyncio,
    anyio's own stream elsewhere."""
    loop = running_asyncio()
    if loop is None:
        return await listener.accept()
    raw: socket.socket = listener.extra(SocketAttribute.raw_socket)
    sock, _address = await loop.sock_accept(raw)
    # Small frames go out at once (no Nagle). asyncio's transport sets this
    # only on sockets created with proto IPPROTO_TCP, and an accepted one
    # has proto 0: left on, a write waits for the peer's ACK, which its next
    # frame carries 20 ms later.
    _no_delay(sock)
    try:
        transport, protocol = await loop.connect_accepted_socket(_Protocol, sock)
    except BaseException:
        sock.close()
        raise
    return LoopStream(transport, protocol)


async def connect(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    tls_hostname: str | None = None,
) -> anyio.abc.ByteStream:
    """A TCP (with ``ssl_context``, TLS) connection: a :class:`LoopStream` on
    asyncio, anyio's own streams elsewhere. Raises ``OSError`` (and
    ``ssl.SSLError``, an ``OSError``) when it cannot connect."""
    loop = running_asyncio()
    if loop is None:
        if ssl_context is None:
            return await anyio.connect_tcp(host, port)
        return await anyio.connect_tcp(
            host, port, ssl_context=ssl_context, tls_hostname=tls_hostname
        )
    # Happy eyeballs (RFC 8305) where the loop has it: uvloop's
    # create_connection takes no such argument and tries addresses in turn.
    hostname = (tls_hostname or host) if ssl_context is not None else None
    if isinstance(loop, asyncio.BaseEventLoop):
        transport, protocol = await loop.create_connection(
            _Protocol, host, port, ssl=ssl_context, server_hostname=hostname,
            happy_eyeballs_delay=0.25,
        )  # fmt: skip
    else:
        transport, protocol = await loop.create_connection(
            _Protocol, host, port, ssl=ssl_context, server_hostname=hostname
        )
    sock = transport.get_extra_info("socket")  # asyncio's TransportSocket, or uvloop's
    if sock is not None:
        _no_delay(sock)
    return LoopStream(transport, protocol)
