"""``WebSocket.pump``: every message handed on once, in order, on every path.

On asyncio our stream gives the bytes that arrive while the pump waits to
the WebSocket in the transport's callback, and the messages they complete
are delivered there, without a task switch; whatever the delivery cannot
finish at once (an awaitable), a control frame, an error or the end asked
for goes back to the pump's task, and later bytes wait their turn. These
tests hold both paths (and trio's, which has only the task) to the same
outcome over real loopback sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import anyio
import anyio.abc
import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import CloseConnection, Ping, Pong, TextMessage

from patter_anyio.net._loopstream import running_asyncio
from patter_anyio.net._websocket import WebSocket, WebSocketClosed

from .test_hotpath_websocket import Guarded, _pair, _read_all

# idle_timeout and guard: the read without a timeout, the guard's read
# (each noting when it started), and a timeout scope per read (no callback
# path: the scope could not see the traffic).
_READS = [(None, None), (5.0, "shared"), (5.0, "task"), (5.0, None)]


def _in_callback() -> bool:
    """True when running in a transport's callback, outside any task."""
    return running_asyncio() is not None and asyncio.current_task() is None


class _Log:
    """What a pump delivered, and from where."""

    def __init__(self, slow_every: int = 0) -> None:
        self.events: list[str] = []
        self.callback = 0
        self.slow_every = slow_every

    def deliver(self, message: str | bytes) -> Awaitable[None] | None:
        assert isinstance(message, str)
        self.events.append(message)
        self.callback += _in_callback()
        n = int(message[1:])
        if self.slow_every and n % self.slow_every == 0:
            return self._finish(message)
        return None

    async def _finish(self, message: str) -> None:
        await anyio.sleep(0.01)
        self.events.append(f"done {message}")


def _messages(n: int) -> list[str]:
    return [f"m{i}" for i in range(n)]


async def _pump_until(ws: WebSocket, log: _Log, count: int) -> None:
    await ws.pump(
        log.deliver, until=lambda: sum(not e.startswith("done") for e in log.events) >= count
    )


@pytest.mark.anyio
@pytest.mark.parametrize(("idle_timeout", "guarded"), _READS)
@pytest.mark.parametrize("chunk", [1, 9, 4096])
async def test_every_message_once_in_order_with_pings_and_slow_deliveries(
    idle_timeout: float | None, guarded: Guarded, chunk: int
) -> None:
    """Messages with pings between them, cut into chunks of ``chunk`` bytes
    and sent a few at a time while the pump waits; every third delivery
    needs the task. The log must read m0, m1, m2, done m2, m3, ... and each
    ping is answered."""
    n = 30
    async with _pair(idle_timeout=idle_timeout, send_timeout=2.0, guarded=guarded) as (ws, peer):
        client = Connection(ConnectionType.CLIENT)
        wire = b""
        for i, message in enumerate(_messages(n)):
            wire += client.send(TextMessage(data=message))
            if i % 7 == 3:
                wire += client.send(Ping(payload=f"p{i}".encode()))
        log = _Log(slow_every=3)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_pump_until, ws, log, n)
            for at in range(0, len(wire), chunk):
                await peer.send(wire[at : at + chunk])
                if at // chunk % 5 == 0:
                    await anyio.sleep(0.002)  # let the pump wait again
        expected: list[str] = []
        for i, message in enumerate(_messages(n)):
            expected.append(message)
            if i % 3 == 0:
                expected.append(f"done {message}")
        assert log.events == expected
        # Each ping answered with its payload (RFC 6455 section 5.5.2).
        answers = Connection(ConnectionType.CLIENT)
        await ws.close(1000)
        answers.receive_data(await _read_all(peer))
        pongs = [e.payload for e in answers.events() if isinstance(e, Pong)]
        assert pongs == [f"p{i}".encode() for i in range(n) if i % 7 == 3]
        if running_asyncio() is not None and (idle_timeout is None or guarded is not None):
            assert log.callback > 0  # not vacuous: some took the callback path
        else:
            assert log.callback == 0  # trio, or a timeout scope per read: the task reads


@pytest.mark.anyio
@pytest.mark.parametrize("fast", [True, False])
async def test_until_stops_after_that_message_and_the_rest_wait_for_the_next_read(
    fast: bool,
) -> None:
    """``until`` true after m4: the pump returns, m5.. are not delivered,
    and the next receive() gets m5 (nothing lost, nothing reordered), with
    m0..m9 in one write or one by one."""
    async with _pair(idle_timeout=None, send_timeout=2.0, guarded=None) as (ws, peer):
        client = Connection(ConnectionType.CLIENT)
        log = _Log()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_pump_until, ws, log, 5)
            await anyio.sleep(0.01)
            frames = [client.send(TextMessage(data=m)) for m in _messages(10)]
            if fast:
                await peer.send(b"".join(frames))
            else:
                for frame in frames:
                    await peer.send(frame)
        assert log.events == _messages(5)
        with anyio.fail_after(2):
            assert [await ws.receive() for _ in range(5)] == _messages(10)[5:]


@pytest.mark.anyio
async def test_an_error_in_delivery_is_raised_by_the_pump_once() -> None:
    async with _pair(idle_timeout=None, send_timeout=2.0, guarded=None) as (ws, peer):
        client = Connection(ConnectionType.CLIENT)
        seen: list[str | bytes] = []
        boom = ValueError("bridge fault")

        def deliver(message: str | bytes) -> None:
            seen.append(message)
            if message == "m2":
                raise boom

        await peer.send(b"".join(client.send(TextMessage(data=m)) for m in _messages(6)))
        with anyio.fail_after(2), pytest.raises(ValueError) as raised:
            await ws.pump(deliver)
        assert raised.value is boom
        assert seen == ["m0", "m1", "m2"]
        assert await ws.receive() == "m3"  # the socket itself is still open


async def _pump_until_closed(
    ws: WebSocket, peer: anyio.abc.SocketStream, wire: bytes
) -> tuple[_Log, WebSocketClosed, list[CloseConnection]]:
    """Pump while ``wire`` arrives in one write, until the socket closes:
    what was delivered, how it closed, and the Close frames the peer got."""
    log = _Log()
    closed: list[WebSocketClosed] = []
    async with anyio.create_task_group() as tg:

        async def pump() -> None:
            with pytest.raises(WebSocketClosed) as raised:
                await ws.pump(log.deliver)
            closed.append(raised.value)

        tg.start_soon(pump)
        await anyio.sleep(0.01)
        await peer.send(wire)
    reply = Connection(ConnectionType.CLIENT)
    reply.receive_data(await _read_all(peer))
    return log, closed[0], [e for e in reply.events() if isinstance(e, CloseConnection)]


@pytest.mark.anyio
async def test_the_peer_s_close_after_messages_in_one_read() -> None:
    async with _pair(idle_timeout=None, send_timeout=2.0, guarded=None) as (ws, peer):
        client = Connection(ConnectionType.CLIENT)
        wire = b"".join(client.send(TextMessage(data=m)) for m in _messages(3))
        wire += client.send(CloseConnection(code=1000, reason="bye"))
        log, closed, frames = await _pump_until_closed(ws, peer, wire)
        assert log.events == _messages(3)
        assert (closed.code, closed.reason) == (1000, "bye")
        # The answering Close (RFC 6455 section 5.5.1).
        assert [(e.code, e.reason) for e in frames] == [(1000, "bye")]


@pytest.mark.anyio
async def test_a_message_too_big_in_the_callback_closes_1009() -> None:
    async with _pair(idle_timeout=None, send_timeout=2.0, guarded=None) as (ws, peer):
        ws._reader = type(ws._reader)(client=False, max_message_bytes=16)
        client = Connection(ConnectionType.CLIENT)
        wire = client.send(TextMessage(data="m0")) + client.send(TextMessage(data="x" * 17))
        log, closed, frames = await _pump_until_closed(ws, peer, wire)
        assert log.events == ["m0"]
        assert closed.code == 1009
        assert [e.code for e in frames] == [1009]


@pytest.mark.anyio
async def test_traffic_delivered_in_the_callback_keeps_an_idle_socket_open() -> None:
    """The guard's idle clock restarts with every read the callback does:
    messages every 0.1 s keep a 0.3 s idle timeout from firing for 1 s,
    and once they stop the socket closes with 1001 on time."""
    async with _pair(idle_timeout=0.3, send_timeout=2.0, guarded="shared") as (ws, peer):
        client = Connection(ConnectionType.CLIENT)
        log = _Log()
        closed: list[tuple[int, float]] = []
        async with anyio.create_task_group() as tg:

            async def pump() -> None:
                try:
                    await ws.pump(log.deliver)
                except WebSocketClosed as exc:
                    closed.append((exc.code, anyio.current_time()))

            tg.start_soon(pump)
            for message in _messages(10):
                await anyio.sleep(0.1)
                await peer.send(client.send(TextMessage(data=message)))
            last = anyio.current_time()
        assert log.events == _messages(10)
        assert len(closed) == 1
        code, when = closed[0]
        assert code == 1001
        assert 0.25 <= when - last < 1.5


@pytest.mark.anyio
async def test_work_handed_to_a_cancelled_pump_still_runs() -> None:
    """A delivery in the callback returns work (which may hold the call's
    lock) and the pump's task is cancelled before it resumes: the work
    runs anyway, once."""
    if running_asyncio() is None:
        pytest.skip("trio delivers in the task only")
    async with _pair(idle_timeout=None, send_timeout=2.0, guarded=None) as (ws, peer):
        client = Connection(ConnectionType.CLIENT)
        ran: list[str] = []
        scope = anyio.CancelScope()

        async def work(message: str | bytes) -> None:
            await anyio.sleep(0)
            ran.append(str(message))

        def deliver(message: str | bytes) -> Awaitable[None]:
            assert _in_callback()
            scope.cancel()
            return work(message)

        async def pump() -> None:
            with scope:
                await ws.pump(deliver)

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            await anyio.sleep(0.01)
            await peer.send(client.send(TextMessage(data="m0")))
        assert ran == ["m0"]


@pytest.mark.anyio
async def test_receive_fed_hands_back_before_the_bytes_queued_after() -> None:
    """The feed keeps the first bytes and asks for the task; bytes that
    arrive before the task runs are queued, and must come after: the task
    first gets b"" (look at what the feed kept), then the queued bytes."""
    if running_asyncio() is None:
        pytest.skip("our stream is asyncio's")
    async with _pair(idle_timeout=None, send_timeout=2.0, guarded=None) as (ws, _peer):
        stream = ws._stream
        protocol = stream._protocol  # type: ignore[attr-defined]
        fed: list[bytes] = []
        got: list[bytes] = []

        def feed(data: bytes) -> bool:
            fed.append(data)
            return data == b"taken"

        async def reader() -> None:
            got.append(await stream.receive_fed(feed))  # type: ignore[attr-defined]
            got.append(await stream.receive())

        with anyio.fail_after(2):
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                await anyio.sleep(0.01)
                protocol.data_received(b"taken")  # dealt with: the task sleeps on
                protocol.data_received(b"kept")  # kept, the task is woken
                protocol.data_received(b"queued")  # before the task ran
        assert fed == [b"taken", b"kept"]
        assert got == [b"", b"queued"]
