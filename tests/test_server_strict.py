"""HTTP framing stricter than h11's defaults: pure rules, then each case on a
raw socket against the real server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_anyio.calls._app import WebhookApp
from patter_anyio.net._server import Server
from patter_core import RemoteProtocolError
from patter_core.http import ChunkGuard, HeadGuard, Reject, Router, ServerLimits
from patter_core.http._framing import check_head

from .test_server_http import SECRET, Events, exchange

# A body timeout far longer than any answer below must take: "at once" means
# the answer does not wait for it.
LIMITS = ServerLimits(
    header_timeout=5.0,
    body_timeout=10.0,
    keepalive_timeout=5.0,
    send_timeout=2.0,
    shutdown_grace=0.5,
    max_body_bytes=2048,
)
STATUS = "/webhooks/twilio/status"
# The reason phrase is the standard library's (it changed in Python 3.13).
TOO_LARGE = f"HTTP/1.1 413 {HTTPStatus(413).phrase}\r\n".encode()


# ------------------------------------------------------------------- pure
@pytest.mark.parametrize("version", ["0.9", "1.2", "2.0", "3.0"])
def test_versions_other_than_1_0_and_1_1_are_505(version: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        check_head(version, [])
    assert caught.value.http_status == 505
    decision = Router().route("GET", "/health", [], "127.0.0.1", http_version=version)
    assert isinstance(decision, Reject) and decision.status == 505


def test_http_1_0_and_1_1_pass() -> None:
    check_head("1.0", [])
    check_head("1.1", [("content-length", "3")])
    check_head("1.1", [("transfer-encoding", "chunked")])


def test_length_and_chunked_together_are_400() -> None:
    headers = [("content-length", "5"), ("transfer-encoding", "chunked")]
    decision = Router().route("POST", STATUS, headers, "127.0.0.1")
    assert isinstance(decision, Reject) and decision.status == 400


def feed_all_ways(make: Callable[[], HeadGuard | ChunkGuard], data: bytes) -> list[int | None]:
    """The status each way of cutting ``data`` into reads gives (None: passed)."""
    ways = [[data], [data[i : i + 1] for i in range(len(data))]]
    ways += [[data[:cut], data[cut:]] for cut in range(1, len(data))]
    out: list[int | None] = []
    for reads in ways:
        guard = make()
        try:
            for read in reads:
                guard.feed(read)
        except RemoteProtocolError as exc:
            out.append(exc.http_status)
        else:
            out.append(None)
    return out


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n",
        b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\n c\n\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n ",  # still arriving
    ],
)
def test_folded_heads_are_400(head: bytes) -> None:
    assert set(feed_all_ways(HeadGuard, head)) == {400}


@pytest.mark.parametrize(
    "data",
    [
        b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n\n \n ",  # whitespace in the body
        b"POST / HTTP/1.1\nContent-Length: 4\n\n\n \n ",
        b"POST / HTTP/1.1\r\nX-A: b c\r\n\r\n",
    ],
)
def test_unfolded_heads_pass(data: bytes) -> None:
    assert set(feed_all_ways(HeadGuard, data)) == {None}


def chunks(limit: int = 2048) -> Callable[[], ChunkGuard]:
    return lambda: ChunkGuard(ServerLimits(max_body_bytes=limit))


@pytest.mark.parametrize(
    "body",
    [
        b"801\r\n",  # 2049 > 2048
        b"FFFFFFFF",  # the line is not even complete yet
        b"400\r\n" + b"x" * 1024 + b"\r\n401\r\n",  # 1024 + 1025
        b"400;a=b\r\n" + b"x" * 1024 + b"\r\n400\r\n" + b"x" * 1024 + b"\r\n1",
        b"1" * 17,
        b"0000000000000801\r\n",
    ],
)
def test_chunk_larger_than_the_room_left_is_413(body: bytes) -> None:
    assert set(feed_all_ways(chunks(), body)) == {413}


@pytest.mark.parametrize(
    "body",
    [
        b"800\r\n",
        b"400\r\n" + b"x" * 1024 + b"\r\n400;ext=1\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n",
        b"0" * 19 + b"5\r\nxxxxx\r\n0\r\n\r\n",
        b"0\r\nX-Trailer: FFFFFFFF\r\n\r\n",  # trailers are h11's business
        b"zz\r\n" + b"F" * 30,  # garbage: h11 answers 400, the guard steps aside
        b"10\r\n" + b"F" * 16 + b"\r\n0\r\n\r\n",  # hex in the data is data
    ],
)
def test_chunks_that_fit_pass(body: bytes) -> None:
    assert set(feed_all_ways(chunks(), body)) == {None}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=8), st.integers(1, 1 << 40))
def test_guards_take_any_bytes(reads: list[bytes], limit: int) -> None:
    """Any input passes or raises our declared error, nothing else."""
    for guard in (HeadGuard(), ChunkGuard(ServerLimits(max_body_bytes=limit))):
        try:
            for read in reads:
                guard.feed(read)
        except RemoteProtocolError as exc:
            assert exc.http_status in (400, 413)


# ------------------------------------------------------------- raw socket
async_test = pytest.mark.anyio


@asynccontextmanager
async def running(
    limits: ServerLimits = LIMITS, events: Events | None = None
) -> AsyncIterator[int]:
    app = WebhookApp(stream_secret=SECRET, hooks=(events or Events()).hooks())
    server = Server(app, host="127.0.0.1", port=0, limits=limits)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        try:
            yield port
        finally:
            server.stop()


FORM = b"CallSid=CA1&CallStatus=completed"


@async_test
@pytest.mark.parametrize(
    ("request_bytes", "status_line"),
    [
        (
            b"POST " + STATUS.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 32\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"20\r\n" + FORM + b"\r\n0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\n",
        ),
        (
            b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n",
            b"HTTP/1.1 505 HTTP Version Not Supported\r\n",
        ),
        (
            b"GET /health HTTP/1.2\r\nHost: x\r\n\r\n",
            b"HTTP/1.1 505 HTTP Version Not Supported\r\n",
        ),
        (
            b"GET /health HTTP/0.9\r\nHost: x\r\n\r\n",
            b"HTTP/1.1 505 HTTP Version Not Supported\r\n",
        ),
        (
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\n",
        ),
        (b"GET /health HTTP/1.1\r\n Host: x\r\n\r\n", b"HTTP/1.1 400 Bad Request\r\n"),
        (b"GET /health HTTP/1.0\r\n\r\n", b"HTTP/1.1 200 OK\r\n"),
    ],
)
async def test_strict_framing_on_the_wire(request_bytes: bytes, status_line: bytes) -> None:
    events = Events()
    async with running(events=events) as port:
        # exchange() returns only once the server has closed the connection.
        reply = await exchange(port, request_bytes)
    assert reply.startswith(status_line)
    assert events.seen == []  # nothing reached the application


@async_test
async def test_length_and_chunked_close_even_with_keep_alive() -> None:
    smuggled = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    request = (
        b"POST " + STATUS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled
    )
    async with running() as port:
        reply = await exchange(port, request)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"connection: close" in reply.lower()
    # The second request hidden behind the first is never answered.
    assert reply.count(b"HTTP/1.1") == 1


@async_test
@pytest.mark.parametrize(
    "chunks",
    [
        b"FFFFFFFF\r\n",  # one chunk that can never fit, and no data after it
        b"400\r\n" + b"x" * 1024 + b"\r\n401\r\n",  # the second would overflow
        b"7FFFFFFFFFFFFFFFF",  # a size line still arriving
    ],
)
@pytest.mark.parametrize("with_head", [True, False], ids=["with-head", "after-head"])
async def test_oversized_chunk_is_413_at_once(chunks: bytes, with_head: bool) -> None:
    head = (
        b"POST " + STATUS.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    async with running() as port, await anyio.connect_tcp("127.0.0.1", port) as s:
        start = anyio.current_time()
        if with_head:
            await s.send(head + chunks)
        else:  # h11 has parsed the head before the size line arrives
            await s.send(head)
            await anyio.sleep(0.1)
            await s.send(chunks)
        reply = b""
        with anyio.fail_after(5):
            while True:
                try:
                    reply += await s.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
        elapsed = anyio.current_time() - start
    assert reply.startswith(TOO_LARGE)
    # Far below the 10 s body timeout: the client never finishes the chunk.
    assert elapsed < 3.0


@async_test
async def test_client_still_sending_reads_its_413() -> None:
    """A client streams 1 MiB past a 2 KiB limit before it reads: every send
    succeeds (no reset) and the answer it reads is the 413."""
    body_size = 1024 * 1024
    head = f"POST {STATUS} HTTP/1.1\r\nHost: x\r\nContent-Length: {body_size}\r\n\r\n".encode()
    piece = b"x" * 16384
    async with running() as port, await anyio.connect_tcp("127.0.0.1", port) as s:
        await s.send(head)
        await anyio.sleep(0.2)  # the server has answered and would close now
        sent = 0
        with anyio.fail_after(10):
            while sent < body_size:
                await s.send(piece)
                sent += len(piece)
            reply = b""
            while True:
                try:
                    reply += await s.receive()
                except anyio.EndOfStream:
                    break
    assert sent == body_size
    assert reply.startswith(TOO_LARGE)
    assert b"connection: close" in reply.lower()


@async_test
@pytest.mark.parametrize(
    ("linger_timeout", "linger_bytes", "at_least"),
    [(0.5, 1 << 30, 0.4), (30.0, 64 * 1024, 0.0)],
    ids=["time-bound", "byte-bound"],
)
async def test_linger_is_bounded_for_a_client_that_never_stops(
    linger_timeout: float, linger_bytes: int, at_least: float
) -> None:
    limits = ServerLimits(
        max_body_bytes=2048, linger_timeout=linger_timeout, linger_bytes=linger_bytes
    )
    head = f"POST {STATUS} HTTP/1.1\r\nHost: x\r\nContent-Length: {1 << 30}\r\n\r\n".encode()
    async with running(limits) as port, await anyio.connect_tcp("127.0.0.1", port) as s:
        start = anyio.current_time()
        await s.send(head)
        reply = b""
        ended = False
        with anyio.fail_after(5):
            try:
                while True:
                    await s.send(b"x" * 4096)
                    if not ended:
                        with anyio.move_on_after(0.001):
                            try:
                                reply += await s.receive()
                            except anyio.EndOfStream:
                                ended = True  # half-closed: the server drains
            except (anyio.BrokenResourceError, OSError):
                pass  # and then closes
        elapsed = anyio.current_time() - start
    assert reply.startswith(TOO_LARGE)
    assert at_least < elapsed < 3.0
