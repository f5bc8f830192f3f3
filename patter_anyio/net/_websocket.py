"""One WebSocket over an anyio byte stream, driven by wsproto.

The same class serves both sides: the server wraps an accepted upgrade
(wsproto ``Connection`` in SERVER mode, fed h11's trailing bytes) and the
client wraps a finished handshake. The application sees five calls:

* ``await ws.receive()`` -> the next whole message (``str`` or ``bytes``);
  pings are answered on the way; a close raises :class:`WebSocketClosed`.
* ``await ws.pump(deliver)``: the same messages, each handed to
  ``deliver``; a call's readers use it, and on asyncio it delivers in the
  transport's callback while it waits, without a task switch per message.
* ``await ws.send(data)`` and ``await ws.send_many([...])`` -- the latter
  writes every frame a wake-up produced in one socket write.
* ``await ws.close(code, reason)``.

Limits: a message larger than ``max_message_bytes`` closes with 1009
(RFC 6455 section 7.4.1; wsproto has no limit of its own, so we count as
fragments arrive and never hold more than the limit); no traffic for
``idle_timeout`` seconds closes with 1001; a peer that stops reading makes
a send fail after ``send_timeout``.

Timeouts are cheap when a guard watches the socket (:meth:`WebSocket.guard`
in a task beside its reader, or one :class:`SocketGuard` task for every
socket of a server): each read and write then only notes when it started,
and the guard, asleep until the earliest deadline, closes the connection
if one passes. Without a guard every read and write runs in a timeout
scope of its own, which on a call's ~300 messages a second costs more
than the framing (DESIGN.md, "The hot path").
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from time import monotonic
from typing import cast

import anyio
import anyio.abc
from wsproto.connection import Connection, ConnectionState
from wsproto.events import CloseConnection, Event, Ping

from patter_core import PatterError
from patter_core._entropy import MaskKeys
from patter_core.http._sockettime import next_look
from patter_core.http._wsframes import ControlFrame, FrameError, FrameReader, frame

from .._errors import STREAM_ENDED, STREAM_LOST
from ._lock import FastLock
from ._loopstream import LoopStream

__all__ = ["WebSocket", "WebSocketClosed"]

log = logging.getLogger("patter_anyio.websocket")

# How long close() waits for the peer's answering Close frame before it
# drops the TCP connection anyway (RFC 6455 section 7.1.1 lets either side
# give up on a peer that never answers).
_CLOSE_WAIT = 2.0
# One socket read; media frames are a few hundred bytes.
_READ_SIZE = 65536
# A whole data message, as the frame reader gives it (a tuple: ``str | bytes``
# would build a union object on every message).
_MESSAGE = (str, bytes)
# What the frame reader gives: a whole message, a control frame, a framing error.
ReaderItem = str | bytes | ControlFrame | FrameError
# The states in which wsproto reads frames (a Close ends them).
_READING = (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING)
# What pump()'s callback path hands its task when ``until`` is true.
_STOP = object()
# What a dead or stalled peer raises on a write (TimeoutError from fail_after).
_IO_ERRORS = STREAM_LOST


#: What we say when closing for the peer's malformed frames (RFC 6455 7.4.1),
#: instead of the parser's own text.
_CLOSE_WORDS = {
    1002: "protocol error",
    1007: "invalid frame payload data",
    1009: "message too big",
}


class WebSocketClosed(PatterError):
    """The WebSocket is closed; ``code`` and ``reason`` say how (1006 when
    the TCP connection dropped without a Close frame)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


class WebSocket:
    """A message-level WebSocket on top of an anyio byte stream."""

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        connection: Connection,
        *,
        trailing: bytes = b"",
        max_message_bytes: int,
        idle_timeout: float | None = None,
        send_timeout: float = 10.0,
    ) -> None:
        self._stream = stream
        # wsproto keeps the closing handshake and answers pings: it is given
        # the control frames only. Data frames are read and built by
        # patter_core's frame module (no extension is ever negotiated).
        self._conn = connection
        # A client masks its frames with unpredictable keys (RFC 6455
        # section 5.3); a server never masks.
        self._masks = MaskKeys(secrets) if connection.client else None
        self._events: deque[Event] = deque(connection.events())
        self._reader = FrameReader(client=connection.client, max_message_bytes=max_message_bytes)
        if trailing:
            self._reader.receive_data(trailing)
        self._idle_timeout = idle_timeout
        self._send_timeout = send_timeout
        self._send_lock = FastLock()
        # On asyncio a write usually completes without waiting (LoopStream).
        self._loop_stream = stream if isinstance(stream, LoopStream) else None
        self._receiving = False
        self._closed: WebSocketClosed | None = None
        # Set while guard() runs; then reads and writes note when they
        # started (monotonic seconds) instead of entering a timeout scope.
        self._guarded = False
        self._read_started: float | None = None
        self._write_started: float | None = None
        self._send_timed_out = False
        self._stream_closed = False
        # pump()'s: what it hands messages to, when it stops, and what the
        # transport's callback passed back to its task.
        self._deliver: Callable[[str | bytes], Awaitable[None] | None] | None = None
        self._until: Callable[[], bool] | None = None
        self._handoff: object = None
        self._work: Awaitable[None] | None = None

    # ------------------------------------------------------------------ state
    @property
    def closed(self) -> WebSocketClosed | None:
        """None while open; else how it closed."""
        return self._closed

    @property
    def is_open(self) -> bool:
        return self._closed is None and self._conn.state is ConnectionState.OPEN

    # ------------------------------------------------------------------- send
    async def _write(self, data: bytes) -> None:
        lock = self._send_lock
        if not lock.acquire_nowait():  # uncontended (the usual case): no wait
            await lock.acquire()
        try:
            stream = self._loop_stream
            if stream is not None:
                if stream.write_nowait(data):
                    return  # written, nothing to wait for
                # Written, but past the transport's high-water mark: the
                # drain is what the send timeout watches.
                wait = stream.drain()
            else:
                wait = self._stream.send(data)
            if self._guarded:
                self._write_started = monotonic()
                try:
                    await wait
                finally:
                    self._write_started = None
            else:
                with anyio.fail_after(self._send_timeout):
                    await wait
        finally:
            lock.release()

    def _frame(self, data: str | bytes) -> bytes:
        if self._closed is not None:
            raise self._closed
        if self._conn.state is not ConnectionState.OPEN:
            raise WebSocketClosed(1006, "closing")
        masks = self._masks
        return frame(data) if masks is None else frame(data, masks.next())

    async def send(self, data: str | bytes) -> None:
        await self._send_raw(self._frame(data))

    def send_nowait(self, data: str | bytes) -> bool:
        """Send ``data`` now, without awaiting, when nothing could make the
        write wait (our asyncio stream, no other writer, the transport's
        buffer below its mark); False (nothing sent) when :meth:`send` must,
        which also reports a socket that is gone."""
        stream = self._writable_now()
        if stream is None:
            return False
        stream.write_nowait(self._frame(data))
        return True

    def send_many_nowait(self, messages: Sequence[str | bytes]) -> bool:
        """:meth:`send_many` without awaiting, as :meth:`send_nowait`."""
        stream = self._writable_now()
        if stream is None:
            return False
        if messages:
            stream.write_nowait(b"".join([self._frame(m) for m in messages]))
        return True

    def _writable_now(self) -> LoopStream | None:
        """Our asyncio stream when a write can go out at once, else None."""
        stream = self._loop_stream
        if stream is None or self._send_lock.locked() or not stream.writable():
            return None
        return stream

    async def send_many(self, messages: Sequence[str | bytes]) -> None:
        """Send several messages in one socket write."""
        if messages:
            await self._send_raw(b"".join([self._frame(m) for m in messages]))

    async def _send_raw(self, data: bytes) -> None:
        try:
            await self._write(data)
        except TimeoutError as exc:
            await self._finish(WebSocketClosed(1006, "send timed out"))
            raise WebSocketClosed(1006, "send timed out") from exc
        except _IO_ERRORS as exc:
            # The guard closes the stream under a write that outlived
            # send_timeout: the writer sees the close, we report the timeout.
            reason = "send timed out" if self._send_timed_out else "connection lost"
            await self._finish(WebSocketClosed(1006, reason))
            raise WebSocketClosed(1006, reason) from exc

    # ---------------------------------------------------------------- receive
    async def receive(self) -> str | bytes:
        """The next message. Raises :class:`WebSocketClosed` once closed."""
        if self._receiving:
            raise PatterError("receive() is already running in another task")
        self._receiving = True
        try:
            message = await self._next(False)
            assert message is not None  # only pump() asks its reads to be fed
            return message
        finally:
            self._receiving = False

    async def pump(
        self,
        deliver: Callable[[str | bytes], Awaitable[None] | None],
        until: Callable[[], bool] | None = None,
    ) -> None:
        """Hand every message to ``deliver``, in order, until ``until()`` is
        true after one (then return) or the socket closes (raises
        :class:`WebSocketClosed`, as :meth:`receive`). ``deliver`` returns
        None when it is done with the message, or an awaitable that finishes
        it, awaited before the next message is delivered.

        On our asyncio stream, with no timeout scope around the read, the
        messages that arrive while this waits are delivered in the
        transport's callback, without waking this task, as long as
        ``deliver`` finishes each at once; the first that it cannot finish
        (or a control frame, an error, ``until``) comes back to this task,
        and what arrives meanwhile waits its turn."""
        if self._receiving:
            raise PatterError("receive() is already running in another task")
        self._receiving = True
        self._deliver = deliver
        self._until = until
        try:
            while True:
                message = await self._next(True)
                if message is None:
                    # What the transport's callback passed on, if anything.
                    work, self._work = self._work, None
                    if work is not None:
                        await work  # the rest of a message delivered there
                        if until is not None and until():
                            return
                        continue
                    handoff, self._handoff = self._handoff, None
                    if handoff is None:
                        continue  # bytes for the general path: read them there
                    if isinstance(handoff, BaseException):
                        raise handoff
                    if handoff is _STOP:
                        return
                    message = await self._process_events(cast(ReaderItem, handoff))
                    if message is None:
                        continue
                work = deliver(message)
                if work is not None:
                    await work
                if until is not None and until():
                    return
        finally:
            self._receiving = False
            self._deliver = self._until = self._handoff = None
            work, self._work = self._work, None
            if work is not None:
                # Cancelled before the task took it: the message's work
                # (which may hold its owner's lock) still runs.
                with anyio.CancelScope(shield=True):
                    await work

    def _fed(self, data: bytes) -> bool:
        """Bytes for :meth:`pump`, in the transport's callback (see
        :meth:`LoopStream.receive_fed`): True when every message they
        complete is delivered, False when the task must take over (what it
        must do first is in ``_handoff``)."""
        reader = self._reader
        reader.receive_data(data)
        if self._closed is not None or self._events or self._conn.state is not ConnectionState.OPEN:
            return False  # the general path reads these
        if self._read_started is not None:
            self._read_started = monotonic()  # traffic: the idle clock restarts
        deliver = self._deliver
        until = self._until
        assert deliver is not None
        try:
            while True:
                item = reader.next_event()
                if item is None:
                    return True
                if not isinstance(item, _MESSAGE):
                    self._handoff = item
                    return False
                work = deliver(item)
                if work is not None:
                    self._work = work
                    return False
                if until is not None and until():
                    self._handoff = _STOP
                    return False
        except BaseException as exc:  # raised by the task, as without this path
            self._handoff = exc
            return False

    async def _next(self, fed: bool) -> str | bytes | None:
        """The next message, or (``fed``, :meth:`pump`) None when the
        transport's callback passed the bytes on and the task must look."""
        while True:
            # The common case needs no coroutine: nothing for wsproto,
            # and a whole message in the frame reader.
            item = None if self._events else self._reader.next_event()
            if isinstance(item, _MESSAGE):
                return item
            if item is not None or self._events:
                message = await self._process_events(item)
                if message is not None:
                    return message
            if self._closed is not None:
                raise self._closed
            if await self._read(fed):
                return None

    async def _read(self, fed: bool = False) -> bool:
        """Read once into the frame reader; True when, instead, the bytes
        went to :meth:`_fed` and it asks the task to take over."""
        stream = self._loop_stream if fed else None
        try:
            if self._idle_timeout is not None and not self._guarded:
                with anyio.fail_after(self._idle_timeout):
                    data: bytes | None = await self._stream.receive(_READ_SIZE)
            else:
                if self._idle_timeout is not None:  # the guard watches it
                    self._read_started = monotonic()
                try:
                    if stream is None:
                        data = await self._stream.receive(_READ_SIZE)
                    elif not (data := await stream.receive_fed(self._fed, _READ_SIZE)):
                        return True
                finally:
                    self._read_started = None
        except TimeoutError:
            await self._fail(1001, "idle timeout")
            return False
        except STREAM_ENDED:
            data = None
        if self._conn.state is ConnectionState.CLOSED:
            # We already sent and got Close; any more bytes are ignored.
            await self._finish(self._closed or WebSocketClosed(1006))
            return False
        if data is None:
            # The TCP connection ended: wsproto reports it (1006 unless a
            # Close came first).
            self._conn.receive_data(None)
            self._events.extend(self._conn.events())
        else:
            self._reader.receive_data(data)
        return False

    async def _process_events(self, item: ReaderItem | None) -> str | bytes | None:
        """Handle ``item`` (what the frame reader just gave, if anything),
        then wsproto's events and the reader's next items, until a message
        (returned) or nothing more to do without reading (None)."""
        events = self._events
        while True:
            if item is None:
                while events:
                    event = events.popleft()
                    if isinstance(event, Ping):
                        # RFC 6455 section 5.5.2: answer with the same payload.
                        await self._send_control(event.response())
                    elif isinstance(event, CloseConnection):
                        await self._on_close(event)
                        return None
                    # A Pong needs nothing; wsproto gives us no data messages.
                item = self._reader.next_event()
                if item is None:
                    return None
            if isinstance(item, _MESSAGE):
                return item
            if isinstance(item, ControlFrame):
                if self._conn.state in _READING:
                    self._conn.receive_data(item.raw)
                    events.extend(self._conn.events())
                item = None
                continue
            await self._fail(item.code, _CLOSE_WORDS.get(item.code, "protocol error"))
            return None

    async def _send_control(self, event: Event) -> None:
        if self._conn.state is not ConnectionState.OPEN:
            return
        try:
            await self._write(self._conn.send(event))
        except _IO_ERRORS:
            await self._finish(WebSocketClosed(1006, "connection lost"))

    async def _on_close(self, event: CloseConnection) -> None:
        state = self._conn.state
        if state is ConnectionState.REMOTE_CLOSING:
            # The peer started the closing handshake: answer it (section 5.5.1).
            with contextlib.suppress(*_IO_ERRORS):
                await self._write(self._conn.send(event.response()))
            await self._finish(WebSocketClosed(event.code, event.reason or ""))
        elif state is ConnectionState.OPEN:
            # wsproto reports a malformed frame as a CloseConnection event
            # without changing state: we close with its code, in our words.
            await self._fail(event.code, _CLOSE_WORDS.get(event.code, "protocol error"))
        else:
            # The answer to our own Close, or the TCP connection dropped.
            if self._closed is None:
                self._closed = WebSocketClosed(event.code, event.reason or "")
            await self._finish(self._closed)

    async def _fail(self, code: int, reason: str) -> None:
        """Close because of something the peer did; do not wait for its answer."""
        if self._conn.state is ConnectionState.OPEN:
            with contextlib.suppress(*_IO_ERRORS):
                await self._write(self._conn.send(CloseConnection(code=code, reason=reason)))
        await self._finish(WebSocketClosed(code, reason))

    async def _finish(self, closed: WebSocketClosed) -> None:
        if self._closed is None:
            self._closed = closed
        self._stream_closed = True
        with anyio.CancelScope(shield=True):
            await self._stream.aclose()

    # ------------------------------------------------------------------ guard
    async def guard(self) -> None:
        """Enforce the idle and send timeouts until the connection is closed.

        Run it in a task of its own beside the reader and cancel it when done
        with the socket; a server watches all its sockets from one task
        instead (:class:`SocketGuard`). Both sleep until :meth:`guard_check`
        says, and act on what it finds due.
        """
        self.start_guard()
        try:
            while True:
                check = self.guard_check(monotonic())
                if check is None:
                    return
                if not isinstance(check, float):
                    await check()
                    return
                await anyio.sleep(check - monotonic())
        finally:
            self.end_guard()

    def start_guard(self) -> None:
        """A guard takes this socket: reads and writes note their start."""
        if self._guarded:
            raise PatterError("this WebSocket is already guarded")
        self._guarded = True

    def end_guard(self) -> None:
        self._guarded = False

    def guard_check(self, now: float) -> float | Callable[[], Awaitable[None]] | None:
        """What a guard does at ``now``: look again at the time returned,
        await the close returned (a timeout has passed), or, with None,
        stop watching (the connection is closed). The rule is the core's
        (:func:`patter_core.http._sockettime.next_look`)."""
        if self._stream_closed:
            return None
        look = next_look(
            now,
            read_started=self._read_started,
            write_started=self._write_started,
            send_timeout=self._send_timeout,
            idle_timeout=self._idle_timeout,
        )
        if isinstance(look, float):
            return look
        if look == "send":
            self._send_timed_out = True
            return self._send_expired
        return self._idle_close

    async def _send_expired(self) -> None:
        await self._finish(WebSocketClosed(1006, "send timed out"))

    async def _idle_close(self) -> None:
        # The reader waits in receive(): closing the stream under it wakes
        # it, and it reports the 1001 recorded here (RFC 6455 section 7.4.1).
        closed = WebSocketClosed(1001, "idle timeout")
        if self._closed is None:
            self._closed = closed
        if self._conn.state is ConnectionState.OPEN:
            frame = self._conn.send(CloseConnection(code=1001, reason="idle timeout"))
            # Nobody watches this write but its own scope.
            with (
                contextlib.suppress(TimeoutError, *_IO_ERRORS),
                anyio.fail_after(self._send_timeout),
            ):
                async with self._send_lock:
                    await self._stream.send(frame)
        await self._finish(closed)

    # ------------------------------------------------------------------ close
    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake and wait briefly for the answer.

        If another task is inside :meth:`receive`, that task sees the answer
        and finishes the close; otherwise this call reads until it arrives.
        """
        if self._closed is not None:
            return
        if self._conn.state is ConnectionState.OPEN:
            self._closed = WebSocketClosed(code, reason)
            try:
                await self._write(self._conn.send(CloseConnection(code=code, reason=reason)))
            except _IO_ERRORS:
                await self._finish(self._closed)
                return
        else:
            self._closed = WebSocketClosed(code, reason)
        if self._receiving:
            return
        with anyio.move_on_after(_CLOSE_WAIT):
            # The answer may be read already: a reader that took the frame
            # before it leaves the rest in the frame reader's buffer.
            self._drop_until_close()
            while self._conn.state is ConnectionState.LOCAL_CLOSING:
                try:
                    data: bytes | None = await self._stream.receive(_READ_SIZE)
                except STREAM_ENDED:
                    data = None
                if data is None:
                    self._conn.receive_data(None)
                    break
                self._reader.receive_data(data)
                self._drop_until_close()
        await self._finish(self._closed)

    def _drop_until_close(self) -> None:
        """After our Close, messages are dropped (RFC 6455 section 5.5.1):
        only the control frames (the answering Close) go to wsproto."""
        while (item := self._reader.next_event()) is not None:
            if isinstance(item, ControlFrame):
                if self._conn.state in _READING:
                    self._conn.receive_data(item.raw)
                    for _ in self._conn.events():
                        pass
            elif not isinstance(item, _MESSAGE):
                return  # broken framing: nothing more will be read

    async def aclose(self) -> None:
        """Drop the connection without a closing handshake."""
        await self._finish(self._closed or WebSocketClosed(1006, "aborted"))
