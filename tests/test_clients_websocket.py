"""The outgoing WebSocket client against the ``websockets`` package's server."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.abc
import pytest
from websockets.http11 import Response
from websockets.sync.server import ServerConnection, serve

from patter_anyio.net._httpclient import ClientProtocolError, ClientTimeout
from patter_anyio.net._websocket import WebSocketClosed
from patter_anyio.net._wsclient import connect_websocket

pytestmark = pytest.mark.anyio


class PeerServer:
    """A ``websockets`` server in a thread; ``behaviour`` runs per connection."""

    def __init__(self, behaviour: Callable[[ServerConnection], None], **kw: Any) -> None:
        self.headers: list[dict[str, str]] = []
        self.closed: list[int | None] = []

        def handler(conn: ServerConnection) -> None:
            assert conn.request is not None
            self.headers.append({k.lower(): v for k, v in conn.request.headers.raw_items()})
            behaviour(conn)

        self.server = serve(handler, "127.0.0.1", 0, **kw)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def peer_factory() -> Iterator[Callable[..., PeerServer]]:
    servers: list[PeerServer] = []

    def make(behaviour: Callable[[ServerConnection], None], **kw: Any) -> PeerServer:
        server = PeerServer(behaviour, **kw)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def echo(conn: ServerConnection) -> None:
    for message in conn:
        conn.send(message)


async def test_echo_headers_and_send_many(peer_factory: Callable[..., PeerServer]) -> None:
    peer = peer_factory(echo)
    async with connect_websocket(
        f"ws://127.0.0.1:{peer.port}/v1/realtime?model=m",
        headers=[("Authorization", "Bearer sk-test")],
        timeout=5,
    ) as ws:
        await ws.send("hello")
        assert await ws.receive() == "hello"
        await ws.send(b"\x00\x01\x02")
        assert await ws.receive() == b"\x00\x01\x02"
        await ws.send_many(["a", b"b", "c" * 70000])
        assert [await ws.receive() for _ in range(3)] == ["a", b"b", "c" * 70000]
    assert peer.headers[0]["authorization"] == "Bearer sk-test"
    assert peer.headers[0]["host"] == f"127.0.0.1:{peer.port}"


async def test_server_close_code_reaches_receive(peer_factory: Callable[..., PeerServer]) -> None:
    def close_4000(conn: ServerConnection) -> None:
        conn.recv()
        conn.close(4000, "beta_api_shape_disabled")

    peer = peer_factory(close_4000)
    async with connect_websocket(f"ws://127.0.0.1:{peer.port}/", timeout=5) as ws:
        await ws.send("x")
        with pytest.raises(WebSocketClosed) as info:
            await ws.receive()
        assert (info.value.code, info.value.reason) == (4000, "beta_api_shape_disabled")
        with pytest.raises(WebSocketClosed):
            await ws.send("after close")


async def test_server_ping_answered(peer_factory: Callable[..., PeerServer]) -> None:
    results: list[bool] = []

    def pinger(conn: ServerConnection) -> None:
        results.append(conn.ping(b"hi").wait(5))
        conn.send("done")
        conn.recv()

    peer = peer_factory(pinger)
    async with connect_websocket(f"ws://127.0.0.1:{peer.port}/", timeout=5) as ws:
        assert await ws.receive() == "done"
        await ws.send("bye")
    assert results == [True]


async def test_oversize_message_closes_1009(peer_factory: Callable[..., PeerServer]) -> None:
    codes: list[int | None] = []

    def big(conn: ServerConnection) -> None:
        conn.send("x" * 5000)
        with contextlib.suppress(Exception):
            conn.recv()
        codes.append(conn.close_code)

    peer = peer_factory(big)
    async with connect_websocket(
        f"ws://127.0.0.1:{peer.port}/", timeout=5, max_message_bytes=4096
    ) as ws:
        with pytest.raises(WebSocketClosed) as info:
            await ws.receive()
        assert info.value.code == 1009
    for _ in range(100):
        if codes:
            break
        await anyio.sleep(0.02)
    assert codes == [1009]


async def test_refused_handshake(peer_factory: Callable[..., PeerServer]) -> None:
    def refuse(conn: ServerConnection, request: Any) -> Response:
        return conn.respond(403, "no key\n")

    peer = peer_factory(echo, process_request=refuse)
    with pytest.raises(ClientProtocolError) as info:
        async with connect_websocket(f"ws://127.0.0.1:{peer.port}/", timeout=5):
            pass
    assert info.value.status == 403
    assert info.value.body == b"no key\n"


async def test_bad_accept_and_silent_server() -> None:
    async def bad_accept(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            if b"/silent" in data:
                await anyio.sleep(10)
            await stream.send(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: d3JvbmcgYWNjZXB0IHZhbHVlIQ==\r\n\r\n"
            )
            await anyio.sleep(1)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, bad_accept)
        with pytest.raises(ClientProtocolError):
            async with connect_websocket(f"ws://127.0.0.1:{port}/", timeout=5):
                pass
        with pytest.raises(ClientTimeout):
            async with connect_websocket(f"ws://127.0.0.1:{port}/silent", timeout=0.3):
                pass
        tg.cancel_scope.cancel()
