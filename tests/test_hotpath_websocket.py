"""The WebSocket's hot path: hand-built server frames and the guard task's timeouts.

Frames the server builds itself must be byte for byte what wsproto would
write (RFC 6455 section 5.2, unmasked); the guard must keep the idle (1001)
and send timeouts of a timeout scope per operation, with or without it.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
import anyio.abc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, TextMessage

from patter_anyio.net._guard import SocketGuard
from patter_anyio.net._loopstream import LoopStream, running_asyncio
from patter_anyio.net._loopstream import accept as loop_accept
from patter_anyio.net._websocket import WebSocket, WebSocketClosed
from patter_core._entropy import MaskKeys

Guarded = Literal["task", "shared"] | None


class _Sink:
    """A byte stream that keeps what is sent and never delivers anything."""

    def __init__(self) -> None:
        self.sent = bytearray()

    async def send(self, data: bytes) -> None:
        self.sent += data

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.sleep_forever()
        raise AssertionError

    async def aclose(self) -> None:
        pass


def _server_ws(sink: _Sink) -> WebSocket:
    return WebSocket(
        sink,  # type: ignore[arg-type]
        Connection(ConnectionType.SERVER),
        max_message_bytes=1 << 20,
    )


def _parse(data: bytes) -> list[object]:
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(data)
    return list(client.events())


_SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70001]


@pytest.mark.parametrize("size", _SIZES)
def test_server_frames_match_wsproto_at_length_boundaries(size: int) -> None:
    sink = _Sink()
    ws = _server_ws(sink)
    reference = Connection(ConnectionType.SERVER)
    text = "é" * (size // 2) + "a" * (size % 2)  # exactly `size` UTF-8 bytes
    data = bytes(i % 251 for i in range(size))
    for message, event in ((text, TextMessage(data=text)), (data, BytesMessage(data=data))):
        sink.sent.clear()
        anyio.run(ws.send, message)
        assert bytes(sink.sent) == reference.send(event)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300)), max_size=6))
def test_send_many_is_one_write_of_whole_frames(messages: list[str | bytes]) -> None:
    sink = _Sink()
    ws = _server_ws(sink)
    anyio.run(ws.send_many, messages)
    got = [e.data for e in _parse(bytes(sink.sent))]  # type: ignore[attr-defined]
    assert got == messages


def test_client_frames_stay_masked() -> None:
    sink = _Sink()
    ws = WebSocket(
        sink,  # type: ignore[arg-type]
        Connection(ConnectionType.CLIENT),
        max_message_bytes=1 << 20,
    )
    anyio.run(ws.send, "hello")
    assert sink.sent[1] & 0x80  # RFC 6455 section 5.3: a client masks every frame
    server = Connection(ConnectionType.SERVER)
    server.receive_data(bytes(sink.sent))
    assert [e.data for e in server.events()] == ["hello"]  # type: ignore[attr-defined]


def _mask_keys(wire: bytes) -> list[bytes]:
    """The masking key of every (short, masked) frame on ``wire``."""
    keys, at = [], 0
    while at < len(wire):
        size = wire[at + 1] & 0x7F
        assert wire[at + 1] & 0x80 and size < 126
        keys.append(wire[at + 2 : at + 6])
        at += 6 + size
    return keys


def test_every_client_frame_has_a_fresh_key() -> None:
    # Keys come from secrets a block at a time (MaskKeys); over a block
    # boundary and beyond, no key repeats and every frame reads back.
    sink = _Sink()
    ws = WebSocket(sink, Connection(ConnectionType.CLIENT), max_message_bytes=1 << 20)  # type: ignore[arg-type]
    messages = [f"m{i}" for i in range(600)]
    for message in messages:
        anyio.run(ws.send, message)
    keys = _mask_keys(bytes(sink.sent))
    assert len(keys) == 600 and len(set(keys)) == 600
    server = Connection(ConnectionType.SERVER)
    server.receive_data(bytes(sink.sent))
    assert [e.data for e in server.events()] == messages  # type: ignore[attr-defined]


def test_mask_keys_are_the_entropy_bytes_in_order() -> None:
    drawn: list[int] = []

    class Source:
        def token_bytes(self, n: int) -> bytes:
            drawn.append(n)
            return bytes((len(drawn) * 16 + i) % 256 for i in range(n))

    keys = MaskKeys(Source(), block_bytes=8)
    got = [keys.next() for _ in range(5)]
    assert got == [
        bytes([16, 17, 18, 19]),
        bytes([20, 21, 22, 23]),
        bytes([32, 33, 34, 35]),
        bytes([36, 37, 38, 39]),
        bytes([48, 49, 50, 51]),
    ]
    assert drawn == [8, 8, 8]  # one draw per block, not per key
    with pytest.raises(ValueError):
        MaskKeys(Source(), block_bytes=6)


# -- timeouts over real loopback sockets ----------------------------------------------


@asynccontextmanager
async def _pair(
    *,
    idle_timeout: float | None,
    send_timeout: float,
    guarded: Guarded,
    ours: bool = True,
    guard: SocketGuard | None = None,
) -> AsyncIterator[tuple[WebSocket, anyio.abc.SocketStream]]:
    """A server WebSocket and the raw peer socket. ``guarded``: its own guard
    task ("task"), watched by a ``SocketGuard`` ("shared": ``guard``, else
    a new one run here), or no guard (None). ``ours``: the server side is
    the stream the server accepts with (``LoopStream`` on asyncio); else
    anyio's own socket stream."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, await anyio.connect_tcp("127.0.0.1", port) as peer:
        accepted: list[anyio.abc.SocketStream] = []

        async def accept() -> None:
            async def keep(stream: anyio.abc.SocketStream) -> None:
                accepted.append(stream)
                await anyio.sleep_forever()

            if ours:
                await keep(await loop_accept(listener.listeners[0]))
            await listener.serve(keep)

        async with anyio.create_task_group() as tg:
            tg.start_soon(accept)
            while not accepted:
                await anyio.sleep(0.01)
            ws = WebSocket(
                accepted[0],
                Connection(ConnectionType.SERVER),
                max_message_bytes=1 << 24,
                idle_timeout=idle_timeout,
                send_timeout=send_timeout,
            )
            if guarded == "task":
                tg.start_soon(ws.guard)
                await anyio.sleep(0.05)  # let it start, on either backend
            elif guarded == "shared":
                if guard is None:
                    guard = SocketGuard()
                    tg.start_soon(guard.run)
                guard.watch(ws)
                await anyio.sleep(0.05)
            yield ws, peer
            tg.cancel_scope.cancel()


async def _read_all(peer: anyio.abc.SocketStream) -> bytes:
    data = bytearray()
    with anyio.move_on_after(2):
        while True:
            try:
                data += await peer.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
    return bytes(data)


@pytest.mark.anyio
@pytest.mark.parametrize("ours", [True, False])
@pytest.mark.parametrize("guarded", ["task", "shared", None])
async def test_idle_timeout_closes_1001(guarded: Guarded, ours: bool) -> None:
    async with _pair(idle_timeout=0.3, send_timeout=2.0, guarded=guarded, ours=ours) as (
        ws,
        peer,
    ):
        client = Connection(ConnectionType.CLIENT)
        # Traffic every 0.1 s keeps the socket open past the 0.3 s timeout.
        for _ in range(6):
            await peer.send(client.send(TextMessage(data="ping")))
            with anyio.fail_after(1):
                assert await ws.receive() == "ping"
            await anyio.sleep(0.1)
        start = anyio.current_time()
        with anyio.fail_after(3), pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
        assert closed.value.code == 1001
        assert 0.25 <= anyio.current_time() - start < 1.5
        reply = await _read_all(peer)
        assert reply == Connection(ConnectionType.SERVER).send(
            CloseConnection(code=1001, reason="idle timeout")
        )
        assert reply[:4] == b"\x88\x0e" + struct.pack("!H", 1001)


@pytest.mark.anyio
@pytest.mark.parametrize("ours", [True, False])
@pytest.mark.parametrize("guarded", ["task", "shared", None])
async def test_send_to_a_peer_that_stops_reading_times_out(guarded: Guarded, ours: bool) -> None:
    async with _pair(idle_timeout=None, send_timeout=0.3, guarded=guarded, ours=ours) as (
        ws,
        _peer,
    ):
        chunk = b"\x00" * (1 << 20)
        with anyio.fail_after(10), pytest.raises(WebSocketClosed) as closed:
            while True:  # until the kernel's buffers are full and a send stalls
                await ws.send(chunk)
        assert (closed.value.code, closed.value.reason) == (1006, "send timed out")
        assert ws.closed is not None and ws.closed.code == 1006


@pytest.mark.anyio
async def test_guard_runs_once_and_ends_with_the_connection() -> None:
    async with _pair(idle_timeout=None, send_timeout=5.0, guarded="task") as (ws, peer):
        with pytest.raises(Exception, match="already guarded"):
            await ws.guard()
        with pytest.raises(Exception, match="already guarded"):
            SocketGuard().watch(ws)
        await peer.aclose()
        with anyio.fail_after(2), pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
        assert closed.value.code == 1006


@pytest.mark.anyio
async def test_one_guard_keeps_each_socket_s_own_deadlines() -> None:
    # Three sockets, one guard task. The guard first sleeps for the slow
    # socket's 5 s period; the sockets that join later with 0.3 s deadlines
    # must wake it: one idles out (1001) on time, one stalls a send (1006)
    # on time, and the slow one, with traffic, stays open.
    guard = SocketGuard()
    async with anyio.create_task_group() as tg:
        tg.start_soon(guard.run)
        async with _pair(idle_timeout=5.0, send_timeout=5.0, guarded="shared", guard=guard) as (
            slow,
            slow_peer,
        ):
            await anyio.sleep(0.1)  # the guard is asleep until ~5 s from now
            async with (
                _pair(idle_timeout=0.3, send_timeout=5.0, guarded="shared", guard=guard) as (
                    idle,
                    _idle_peer,
                ),
                _pair(idle_timeout=None, send_timeout=0.3, guarded="shared", guard=guard) as (
                    stalled,
                    _stalled_peer,
                ),
            ):
                assert len(guard) == 3
                started = anyio.current_time()
                with anyio.fail_after(3), pytest.raises(WebSocketClosed) as idled:
                    await idle.receive()
                assert idled.value.code == 1001
                assert 0.2 <= anyio.current_time() - started < 1.5
                with anyio.fail_after(10), pytest.raises(WebSocketClosed) as timed_out:
                    while True:
                        await stalled.send(b"\x00" * (1 << 20))
                assert (timed_out.value.code, timed_out.value.reason) == (1006, "send timed out")
                await slow_peer.send(Connection(ConnectionType.CLIENT).send(TextMessage(data="hi")))
                with anyio.fail_after(1):
                    assert await slow.receive() == "hi"
                assert slow.is_open
        tg.cancel_scope.cancel()
    # The two it closed left the heap; the slow one leaves at its next look.
    assert len(guard) == 1


# -- the asyncio stream and the lock ---------------------------------------------


@pytest.mark.anyio
async def test_the_server_stream_is_ours_on_asyncio_and_anyio_s_on_trio() -> None:
    async with _pair(idle_timeout=None, send_timeout=1.0, guarded=None) as (ws, peer):
        stream = ws._stream
        assert isinstance(stream, LoopStream) == (running_asyncio() is not None)
        # Bytes both ways, whole, in order; max_bytes splits without loss.
        await stream.send(b"hello")
        with anyio.fail_after(2):
            assert await peer.receive() == b"hello"
        await peer.send(b"abcdef")
        got = b""
        with anyio.fail_after(2):
            got += await stream.receive(4)
            got += await stream.receive(4)
        assert got == b"abcdef"
        assert stream.extra(anyio.abc.SocketAttribute.remote_address)[0] == "127.0.0.1"
        await peer.send_eof()
        with anyio.fail_after(2), pytest.raises(anyio.EndOfStream):
            await stream.receive()
        await stream.aclose()
        with pytest.raises(anyio.ClosedResourceError):
            await stream.send(b"x")


@pytest.mark.anyio
async def test_loop_stream_flushes_on_close_and_reports_a_dead_peer() -> None:
    async with _pair(idle_timeout=None, send_timeout=1.0, guarded=None) as (ws, peer):
        stream = ws._stream
        # What was written before aclose() reaches the peer, then its EOF.
        await stream.send(b"x" * 200_000)
        await stream.aclose()
        data = bytearray()
        with anyio.fail_after(5):
            while True:
                try:
                    data += await peer.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
        assert len(data) == 200_000


@pytest.mark.anyio
async def test_fast_lock_hands_over_in_order_and_survives_cancellation() -> None:
    from patter_anyio.net._lock import FastLock

    lock = FastLock()
    order: list[str] = []
    assert lock.acquire_nowait()
    assert not lock.acquire_nowait()

    async def waiter(name: str) -> None:
        async with lock:
            order.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter, "a")
        await anyio.sleep(0.01)
        cancelled = anyio.CancelScope()

        async def give_up() -> None:
            with cancelled:
                await waiter("never")

        tg.start_soon(give_up)
        await anyio.sleep(0.01)
        tg.start_soon(waiter, "b")
        await anyio.sleep(0.01)
        cancelled.cancel()  # a waiter that leaves the queue does not block the rest
        await anyio.sleep(0.01)
        assert order == []
        lock.release()
    assert order == ["a", "b"]
    assert not lock.locked()
    # Handed over and cancelled at once: whichever wins, the lock ends free.
    assert lock.acquire_nowait()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def late() -> None:
                async with lock:
                    order.append("late")

            tg.start_soon(late)
            await anyio.sleep(0.01)
            lock.release()
            scope.cancel()
    assert not lock.locked()


@pytest.mark.anyio
async def test_send_nowait_writes_at_once_or_hands_over_to_send() -> None:
    async with _pair(idle_timeout=None, send_timeout=1.0, guarded=None) as (ws, peer):
        client = Connection(ConnectionType.CLIENT)
        if running_asyncio() is None:
            # trio: anyio's stream; the runner always awaits send().
            assert not ws.send_nowait("x") and not ws.send_many_nowait(["x"])
            return
        assert ws.send_nowait("hello")
        assert ws.send_many_nowait(["a", b"\x01"])
        got = bytearray()
        with anyio.fail_after(2):
            while len(got) < 7 + 3 + 3:
                got += await peer.receive()
        client.receive_data(bytes(got))
        events = list(client.events())
        assert [e.data for e in events] == ["hello", "a", b"\x01"]  # type: ignore[attr-defined]
        # Another writer holds the socket: nothing is written, send() must.
        assert ws._send_lock.acquire_nowait()
        assert not ws.send_nowait("later")
        ws._send_lock.release()
        # A peer that stops reading: once the buffer passes its mark,
        # send_nowait declines and send() waits (and times out).
        chunk = b"\x00" * (1 << 16)
        with anyio.fail_after(10):
            while ws.send_nowait(chunk):
                pass
        with anyio.fail_after(5), pytest.raises(WebSocketClosed):
            await ws.send(chunk)
        # Closed: declined, and send() says why.
        assert not ws.send_nowait("closed")
        with pytest.raises(WebSocketClosed):
            await ws.send("closed")


@pytest.mark.anyio
async def test_close_sees_an_answer_already_read_with_an_earlier_message() -> None:
    """The peer's Close arrived in the same read as a message the server
    took: close() finds it in what was read instead of waiting 2 s for it."""
    async with _pair(idle_timeout=None, send_timeout=1.0, guarded=None) as (ws, peer):
        client = Connection(ConnectionType.CLIENT)
        await peer.send(
            client.send(TextMessage(data="last words"))
            + client.send(CloseConnection(code=1000, reason="bye"))
        )
        with anyio.fail_after(2):
            assert await ws.receive() == "last words"
        began = anyio.current_time()
        await ws.close(1000)
        assert anyio.current_time() - began < 0.5
        assert ws.closed is not None and ws.closed.code == 1000


@pytest.mark.anyio
async def test_our_sockets_send_small_frames_at_once() -> None:
    """TCP_NODELAY on both kinds of socket our asyncio stream makes: an
    accepted one (asyncio's transport leaves Nagle on for proto 0) and a
    connected one. With Nagle, a frame waits for the peer's ACK."""
    import socket

    from patter_anyio.net._loopstream import connect

    def nodelay(stream: Any) -> int:
        raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        return int(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    async with _pair(idle_timeout=None, send_timeout=1.0, guarded=None) as (ws, _peer):
        assert nodelay(ws._stream) == 1
        port = ws._stream.extra(anyio.abc.SocketAttribute.local_port)
        client = await connect("127.0.0.1", port)
        try:
            assert nodelay(client) == 1
        finally:
            await client.aclose()


class _LooksNow:
    """Stands in for a WebSocket whose next look is always the present
    instant (what float rounding could once make of a deadline)."""

    def __init__(self) -> None:
        self.nows: list[float] = []

    def start_guard(self) -> None:
        pass

    def end_guard(self) -> None:
        pass

    def guard_check(self, now: float) -> float | None:
        self.nows.append(now)
        return now if len(self.nows) < 50 else None


@pytest.mark.anyio
async def test_a_look_at_the_present_instant_waits_for_the_next_pass() -> None:
    # The guard takes the due sockets out before it looks at them: one put
    # back for the same instant is looked at again on a later pass (after a
    # yield to the loop), never again and again within one.
    guard = SocketGuard()
    fake = _LooksNow()
    async with anyio.create_task_group() as tg:
        tg.start_soon(guard.run)
        guard.watch(fake)  # type: ignore[arg-type]
        with anyio.fail_after(5):
            while len(fake.nows) < 50:
                await anyio.sleep(0.001)
        tg.cancel_scope.cancel()
    assert len(set(fake.nows)) == len(fake.nows) == 50
    assert len(guard) == 0
