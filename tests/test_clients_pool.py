"""Keep-alive reuse in the outgoing HTTP client, against a raw-socket server."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import pytest
from anyio.streams.tls import TLSListener

from patter_anyio.net._httpclient import (
    ClientProtocolError,
    HttpPool,
    RedirectRefused,
    ResponseTooLarge,
    request,
    stream_request,
)
from patter_core.http import HttpRequest

pytestmark = pytest.mark.anyio

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Server:
    port: int = 0
    #: One list per accepted connection: the requests it carried.
    connections: list[list[bytes]] = field(default_factory=list)
    #: Indices of connections the client closed (EOF seen by the server).
    client_closed: list[int] = field(default_factory=list)

    @property
    def accepts(self) -> int:
        return len(self.connections)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


# Answers one request: (stream, request bytes, connection index, request
# index on that connection). Returns False to close the connection after.
Script = Callable[[anyio.abc.ByteStream, bytes, int, int], Awaitable[bool]]


async def _read_request(stream: anyio.abc.ByteStream) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return None
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += await stream.receive()
    return head + b"\r\n\r\n" + rest


@asynccontextmanager
async def keepalive_server(
    script: Script, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[Server]:
    """Serves many requests per connection until ``script`` or the client closes."""
    server = Server()

    async def handle(stream: anyio.abc.ByteStream) -> None:
        index = len(server.connections)
        seen: list[bytes] = []
        server.connections.append(seen)
        async with stream:
            while True:
                req = await _read_request(stream)
                if req is None:
                    server.client_closed.append(index)
                    return
                seen.append(req)
                if not await script(stream, req, index, len(seen) - 1):
                    return

    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    server.port = tcp.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
    listener: anyio.abc.Listener[anyio.abc.ByteStream] = (
        tcp if tls is None else TLSListener(tcp, tls, standard_compatible=False)
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


def answer(data: bytes, *, keep: bool = True) -> Script:
    async def script(stream: anyio.abc.ByteStream, req: bytes, conn: int, n: int) -> bool:
        await stream.send(data)
        return keep

    return script


def get(server: Server, path: str = "/") -> HttpRequest:
    return HttpRequest(method="GET", url=server.url(path))


def post(server: Server, body: bytes) -> HttpRequest:
    return HttpRequest(
        method="POST",
        url=server.url("/v1/speech"),
        headers=(("content-type", "application/json"),),
        body=body,
    )


async def _settle() -> None:
    """Let the server's side of the sockets catch up (FIN, EOF)."""
    await anyio.sleep(0.05)


async def test_sequential_requests_reuse_one_connection() -> None:
    async with keepalive_server(answer(OK)) as server, HttpPool() as pool:
        for body in (b'{"a":1}', b'{"a":2}'):
            resp = await request(post(server, body), timeout=5, max_response_bytes=100, pool=pool)
            assert (resp.status, resp.body) == (200, b"ok")
        resp = await request(get(server), timeout=5, max_response_bytes=100, pool=pool)
        assert resp.body == b"ok"
        assert server.accepts == 1
        assert pool.connections_opened == 1
        assert pool.idle_count() == 1
    requests = server.connections[0]
    assert [r.split(b"\r\n\r\n")[1] for r in requests] == [b'{"a":1}', b'{"a":2}', b""]
    # Keep-alive is HTTP/1.1's default: the pooled request does not say close.
    assert all(b"connection:" not in r.lower() for r in requests)


async def test_without_a_pool_every_request_closes() -> None:
    async with keepalive_server(answer(OK)) as server:
        for _ in range(2):
            await request(get(server), timeout=5, max_response_bytes=100)
        await _settle()
    assert server.accepts == 2
    assert all(b"connection: close" in c[0] for c in server.connections)


async def test_chunked_streaming_response_read_to_the_end_is_reused() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    async with keepalive_server(answer(chunked)) as server, HttpPool() as pool:
        for _ in range(3):
            async with stream_request(
                get(server), timeout=5, max_response_bytes=100, pool=pool
            ) as resp:
                assert b"".join([c async for c in resp]) == b"abcde"
        assert server.accepts == 1


async def test_response_not_fully_read_is_not_reused() -> None:
    async with keepalive_server(answer(OK)) as server, HttpPool() as pool:
        async with stream_request(get(server), timeout=5, max_response_bytes=100, pool=pool) as r:
            assert r.status == 200  # body left unread
        assert pool.idle_count() == 0
        resp = await request(get(server), timeout=5, max_response_bytes=100, pool=pool)
        assert resp.body == b"ok"
        await _settle()
        assert server.accepts == 2
        assert 0 in server.client_closed


async def test_server_that_says_close_gets_a_new_connection() -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    async with keepalive_server(answer(closing, keep=False)) as server, HttpPool() as pool:
        for _ in range(2):
            resp = await request(post(server, b"{}"), timeout=5, max_response_bytes=100, pool=pool)
            assert resp.body == b"ok"
        assert pool.idle_count() == 0
        assert server.accepts == 2


async def test_http10_answer_is_not_reused() -> None:
    async with keepalive_server(answer(b"HTTP/1.0 200 OK\r\n\r\nold", keep=False)) as server:
        async with HttpPool() as pool:
            for _ in range(2):
                resp = await request(get(server), timeout=5, max_response_bytes=100, pool=pool)
                assert resp.body == b"old"
        assert server.accepts == 2


async def test_server_closing_while_idle_is_noticed_before_sending() -> None:
    # The server answers with keep-alive, then closes the idle connection.
    async with keepalive_server(answer(OK, keep=False)) as server, HttpPool() as pool:
        await request(post(server, b"1"), timeout=5, max_response_bytes=100, pool=pool)
        await _settle()
        resp = await request(post(server, b"2"), timeout=5, max_response_bytes=100, pool=pool)
        assert resp.body == b"ok"
        assert pool.connections_opened == 2
    # Each POST reached the server exactly once.
    assert [len(c) for c in server.connections] == [1, 1]


async def _vanish_on_second(stream: anyio.abc.ByteStream, req: bytes, conn: int, n: int) -> bool:
    """Answers the first request of a connection; drops the second unanswered.

    This is the server closing an idle connection just as our next request
    arrives: the socket looked fine when the request was sent.
    """
    if n == 0:
        await stream.send(OK)
        return True
    return False


async def test_get_on_a_connection_that_dies_unanswered_is_retried_once() -> None:
    async with keepalive_server(_vanish_on_second) as server, HttpPool() as pool:
        await request(get(server), timeout=5, max_response_bytes=100, pool=pool)
        resp = await request(get(server, "/again"), timeout=5, max_response_bytes=100, pool=pool)
        assert resp.body == b"ok"
    assert [len(c) for c in server.connections] == [2, 1]
    assert server.connections[1][0].startswith(b"GET /again ")


async def test_post_on_a_connection_that_dies_unanswered_is_not_resent() -> None:
    async with keepalive_server(_vanish_on_second) as server, HttpPool() as pool:
        await request(post(server, b"1"), timeout=5, max_response_bytes=100, pool=pool)
        with pytest.raises(ClientProtocolError):
            await request(post(server, b"2"), timeout=5, max_response_bytes=100, pool=pool)
        await _settle()
    # The server may have acted on it: it must have seen it once, not twice.
    assert [len(c) for c in server.connections] == [2]


async def test_failure_on_a_fresh_connection_is_not_retried() -> None:
    async def drop(stream: anyio.abc.ByteStream, req: bytes, conn: int, n: int) -> bool:
        return False

    async with keepalive_server(drop) as server, HttpPool() as pool:
        with pytest.raises(ClientProtocolError):
            await request(get(server), timeout=5, max_response_bytes=100, pool=pool)
    assert server.accepts == 1


async def test_cancelled_stream_is_not_reused() -> None:
    release = anyio.Event()

    async def slow(stream: anyio.abc.ByteStream, req: bytes, conn: int, n: int) -> bool:
        if conn == 0:
            await stream.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\naudi\r\n")
            await release.wait()
            await stream.send(b"1\r\no\r\n0\r\n\r\n")
            return True
        await stream.send(OK)
        return True

    async with keepalive_server(slow) as server, HttpPool() as pool:
        chunks: list[bytes] = []
        with anyio.CancelScope() as scope:
            async with stream_request(
                get(server), timeout=5, max_response_bytes=100, pool=pool
            ) as resp:
                async for chunk in resp:
                    chunks.append(chunk)
                    scope.cancel()  # barge-in: the pipeline drops the TTS request
        assert chunks == [b"audi"]
        assert pool.idle_count() == 0
        release.set()
        resp2 = await request(get(server), timeout=5, max_response_bytes=100, pool=pool)
        assert resp2.body == b"ok"
        assert server.accepts == 2


async def test_redirect_and_oversize_answers_close_the_connection() -> None:
    redirect = b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere/\r\nContent-Length: 0\r\n\r\n"
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + b"x" * 500

    async def script(stream: anyio.abc.ByteStream, req: bytes, conn: int, n: int) -> bool:
        await stream.send(redirect if b"/redirect" in req else big)
        return True

    async with keepalive_server(script) as server, HttpPool() as pool:
        with pytest.raises(RedirectRefused):
            await request(get(server, "/redirect"), timeout=5, max_response_bytes=100, pool=pool)
        assert pool.idle_count() == 0
        with pytest.raises(ResponseTooLarge):
            await request(get(server, "/big"), timeout=5, max_response_bytes=100, pool=pool)
        assert pool.idle_count() == 0
        assert server.accepts == 2


async def test_bytes_after_the_response_forbid_reuse() -> None:
    async with keepalive_server(answer(OK + b"HTTP/1.1 200 OK\r\n")) as server:
        async with HttpPool() as pool:
            for _ in range(2):
                resp = await request(get(server), timeout=5, max_response_bytes=100, pool=pool)
                assert resp.body == b"ok"
            assert pool.idle_count() == 0
        assert server.accepts == 2


async def test_idle_limit_per_host_and_in_total() -> None:
    arrived = anyio.Event()
    waiting = 0

    async def together(stream: anyio.abc.ByteStream, req: bytes, conn: int, n: int) -> bool:
        # Hold the first three answers until all three requests are in, so
        # they need three connections at once.
        nonlocal waiting
        if conn < 3 and n == 0:
            waiting += 1
            if waiting == 3:
                arrived.set()
            await arrived.wait()
        await stream.send(OK)
        return True

    async with keepalive_server(together) as server, keepalive_server(answer(OK)) as other:
        async with HttpPool(max_idle_per_host=2, max_idle=3) as pool:
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(
                        lambda: request(get(server), timeout=5, max_response_bytes=100, pool=pool)
                    )
            assert server.accepts == 3
            assert pool.idle_count() == 2  # one over the per-host limit was closed
            for _ in range(2):
                await request(get(other), timeout=5, max_response_bytes=100, pool=pool)
            assert pool.idle_count() == 3  # the oldest idle one made room
            await request(get(server), timeout=5, max_response_bytes=100, pool=pool)
            await request(get(other), timeout=5, max_response_bytes=100, pool=pool)
            assert (server.accepts, other.accepts) == (3, 1)
        await _settle()
        assert sorted(server.client_closed) == [0, 1, 2]


async def test_idle_timeout() -> None:
    async with keepalive_server(answer(OK)) as server, HttpPool(idle_timeout=0.2) as pool:
        await request(get(server), timeout=5, max_response_bytes=100, pool=pool)
        await request(get(server), timeout=5, max_response_bytes=100, pool=pool)
        assert server.accepts == 1
        await anyio.sleep(0.3)
        await request(get(server), timeout=5, max_response_bytes=100, pool=pool)
        assert server.accepts == 2
        await _settle()
        assert server.client_closed == [0]  # the expired one was closed


async def test_closed_pool_keeps_nothing() -> None:
    async with keepalive_server(answer(OK)) as server:
        pool = HttpPool()
        await request(get(server), timeout=5, max_response_bytes=100, pool=pool)
        assert pool.idle_count() == 1
        await pool.aclose()
        assert pool.idle_count() == 0
        await request(get(server), timeout=5, max_response_bytes=100, pool=pool)
        assert pool.idle_count() == 0
        await _settle()
        assert server.accepts == 2
        assert sorted(server.client_closed) == [0, 1]


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        HttpPool(max_idle_per_host=-1)
    with pytest.raises(ValueError):
        HttpPool(idle_timeout=float("nan"))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway self-signed certificate for 127.0.0.1 (EC: quick to make)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    where = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            openssl,
            *("req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(where / "key.pem"), "-out", str(where / "cert.pem")),
        ],
        check=True,
        capture_output=True,
    )
    return where


async def test_tls_connection_is_reused(certificate: Path) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certificate / "cert.pem", certificate / "key.pem")
    client_ctx = ssl.create_default_context(cafile=str(certificate / "cert.pem"))
    async with keepalive_server(answer(OK), tls=server_ctx) as server, HttpPool() as pool:
        url = f"https://127.0.0.1:{server.port}/"
        for _ in range(3):
            resp = await request(
                HttpRequest(method="POST", url=url, body=b"{}"),
                timeout=5,
                max_response_bytes=100,
                ssl_context=client_ctx,
                pool=pool,
            )
            assert resp.body == b"ok"
        assert server.accepts == 1
        # Another TLS configuration never rides a connection verified with this one.
        other_ctx = ssl.create_default_context(cafile=str(certificate / "cert.pem"))
        await request(
            HttpRequest(method="GET", url=url),
            timeout=5,
            max_response_bytes=100,
            ssl_context=other_ctx,
            pool=pool,
        )
        assert server.accepts == 2
