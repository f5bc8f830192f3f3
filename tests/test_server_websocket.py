"""Media WebSockets on the real server: echo, limits, proxies, signatures, shutdown.

The carrier side is the independent ``websockets`` package (its threaded
client, so the same test runs under asyncio and trio).
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import pytest
from twilio.request_validator import RequestValidator
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from patter_anyio.calls._app import WebhookApp
from patter_anyio.net._server import Server, StreamRequest
from patter_anyio.net._websocket import WebSocket
from patter_core.http import ServerLimits

pytestmark = [
    pytest.mark.anyio,
    # The threaded client prefers a with-block; these tests close explicitly.
    pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning"),
]

HOST = "abc.ngrok.app"
TOKEN = "12345"
SECRET = b"s" * 32
FAST = ServerLimits(
    header_timeout=1.0,
    body_timeout=1.0,
    keepalive_timeout=1.0,
    ws_idle_timeout=5.0,
    send_timeout=2.0,
    shutdown_grace=1.0,
    max_ws_message_bytes=4096,
)


class Recorder:
    def __init__(self) -> None:
        self.requests: list[StreamRequest] = []
        self.closed_with: list[int] = []

    async def echo(self, ws: WebSocket, request: StreamRequest) -> None:
        self.requests.append(request)
        try:
            while True:
                await ws.send(await ws.receive())
        finally:
            if ws.closed is not None:
                self.closed_with.append(ws.closed.code)


@asynccontextmanager
async def running(
    handler: Any,
    *,
    limits: ServerLimits = FAST,
    trusted: tuple[str, ...] = (),
    auth_token: str | None = None,
) -> AsyncIterator[tuple[Server, int]]:
    app = WebhookApp(
        stream_secret=SECRET,
        webhook_host=HOST,
        twilio_auth_token=auth_token,
        stream_handler=handler,
    )
    server = Server(app, host="127.0.0.1", port=0, limits=limits, trusted_proxies=trusted)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        try:
            yield server, port
        finally:
            server.stop()


async def ws_connect(port: int, path: str = "/ws/stream/CA1", **kw: Any) -> ClientConnection:
    url = f"ws://127.0.0.1:{port}{path}"
    return await anyio.to_thread.run_sync(partial(connect, url, open_timeout=5, **kw))


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return await anyio.to_thread.run_sync(partial(fn, *args))


def roundtrip(ws: ClientConnection, message: str | bytes) -> str | bytes:
    ws.send(message)
    return ws.recv(timeout=5)


async def test_echo_text_binary_and_ping() -> None:
    rec = Recorder()
    async with running(rec.echo) as (_, port):
        ws = await ws_connect(port, additional_headers={"X-Custom": "yes"})
        assert await in_thread(roundtrip, ws, "hello") == "hello"
        assert await in_thread(roundtrip, ws, b"\x00\xff" * 100) == b"\x00\xff" * 100
        pong = await in_thread(ws.ping, b"abc")
        assert await in_thread(pong.wait, 5)
        await in_thread(ws.close)
        req = rec.requests[0]
        assert (req.carrier, req.call_id, req.client_ip) == ("twilio", "CA1", "127.0.0.1")
        assert req.header("x-custom") == "yes"


async def test_telnyx_stream_gets_token_header() -> None:
    rec = Recorder()
    async with running(rec.echo) as (_, port):
        ws = await ws_connect(
            port,
            "/ws/telnyx/stream/v3:abc_DEF-1",
            additional_headers={"x-telnyx-streaming-auth-token": "tok"},
        )
        assert await in_thread(roundtrip, ws, "x") == "x"
        await in_thread(ws.close)
    req = rec.requests[0]
    assert (req.carrier, req.call_id) == ("telnyx", "v3:abc_DEF-1")
    assert req.header("x-telnyx-streaming-auth-token") == "tok"


async def test_eleventh_websocket_from_one_ip_gets_429() -> None:
    rec = Recorder()
    async with running(rec.echo) as (_, port):
        first = [await ws_connect(port, f"/ws/stream/CA{i}") for i in range(10)]
        with pytest.raises(InvalidStatus) as info:
            await ws_connect(port, "/ws/stream/CA10")
        assert info.value.response.status_code == 429
        assert info.value.response.reason_phrase == "Too Many Requests"
        for i, ws in enumerate(first):
            assert await in_thread(roundtrip, ws, f"m{i}") == f"m{i}"
        # A slot frees when a stream closes.
        await in_thread(first[0].close)
        for _ in range(50):
            if len(rec.closed_with) == 1:
                break
            await anyio.sleep(0.02)
        extra = await ws_connect(port, "/ws/stream/CA11")
        assert await in_thread(roundtrip, extra, "again") == "again"
        for ws in [*first[1:], extra]:
            await in_thread(ws.close)


async def test_forwarded_for_ignored_without_trusted_proxy() -> None:
    rec = Recorder()
    limits = ServerLimits(**{**_fields(FAST), "max_ws_per_ip": 2})
    async with running(rec.echo, limits=limits) as (_, port):
        a = await ws_connect(port, additional_headers={"X-Forwarded-For": "1.1.1.1"})
        b = await ws_connect(port, additional_headers={"X-Forwarded-For": "2.2.2.2"})
        with pytest.raises(InvalidStatus) as info:
            await ws_connect(port, additional_headers={"X-Forwarded-For": "3.3.3.3"})
        assert info.value.response.status_code == 429
        assert {r.client_ip for r in rec.requests} == {"127.0.0.1"}
        for ws in (a, b):
            await in_thread(ws.close)


async def test_forwarded_for_honoured_from_trusted_proxy() -> None:
    rec = Recorder()
    limits = ServerLimits(**{**_fields(FAST), "max_ws_per_ip": 2})
    async with running(rec.echo, limits=limits, trusted=("127.0.0.1",)) as (_, port):
        opened = [
            await ws_connect(port, additional_headers={"X-Forwarded-For": ip})
            for ip in ("1.1.1.1", "2.2.2.2", "3.3.3.3", "1.1.1.1")
        ]
        # The client forges the left part; the proxy appended the real hop.
        with pytest.raises(InvalidStatus) as info:
            await ws_connect(port, additional_headers={"X-Forwarded-For": "9.9.9.9, 1.1.1.1"})
        assert info.value.response.status_code == 429
        assert [r.client_ip for r in rec.requests] == ["1.1.1.1", "2.2.2.2", "3.3.3.3", "1.1.1.1"]
        for ws in opened:
            await in_thread(ws.close)


async def test_twilio_upgrade_signature_checked() -> None:
    rec = Recorder()
    validator = RequestValidator(TOKEN)
    async with running(rec.echo, auth_token=TOKEN) as (_, port):
        with pytest.raises(InvalidStatus) as info:
            await ws_connect(port, "/ws/stream/CA9")
        assert info.value.response.status_code == 403
        # Signed over another URL (the Host header's): refused.
        bad = validator.compute_signature(f"wss://127.0.0.1:{port}/ws/stream/CA9", {})
        with pytest.raises(InvalidStatus):
            await ws_connect(port, "/ws/stream/CA9", additional_headers={"X-Twilio-Signature": bad})
        good = validator.compute_signature(f"wss://{HOST}/ws/stream/CA9", {})
        ws = await ws_connect(
            port, "/ws/stream/CA9", additional_headers={"X-Twilio-Signature": good}
        )
        assert await in_thread(roundtrip, ws, "ok") == "ok"
        await in_thread(ws.close)
        # Telnyx upgrades are not signed (their token is checked in the stream).
        ws = await ws_connect(port, "/ws/telnyx/stream/v3:x")
        await in_thread(ws.close)


def _expect_close(ws: ClientConnection) -> int | None:
    try:
        while True:
            ws.recv(timeout=5)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None


async def test_oversized_message_closes_1009() -> None:
    rec = Recorder()
    async with running(rec.echo) as (_, port):
        ws = await ws_connect(port, max_size=None)
        assert await in_thread(roundtrip, ws, "a" * 4096) == "a" * 4096
        await in_thread(ws.send, "a" * 4097)
        assert await in_thread(_expect_close, ws) == 1009
        ws2 = await ws_connect(port, max_size=None)
        await in_thread(ws2.send, b"\x01" * 5000)
        assert await in_thread(_expect_close, ws2) == 1009


async def test_idle_websocket_closed_1001() -> None:
    rec = Recorder()
    limits = ServerLimits(**{**_fields(FAST), "ws_idle_timeout": 0.3})
    async with running(rec.echo, limits=limits) as (_, port):
        ws = await ws_connect(port)
        with anyio.fail_after(3):
            assert await in_thread(_expect_close, ws) == 1001


def _raw_get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


async def test_shutdown_lets_a_call_finish_within_grace() -> None:
    rec = Recorder()
    limits = ServerLimits(**{**_fields(FAST), "shutdown_grace": 5.0})
    async with running(rec.echo, limits=limits) as (server, port):
        ws = await ws_connect(port)
        server.stop()
        await anyio.sleep(0.2)
        # Draining: new calls get a 503 a balancer retries elsewhere, the
        # health check says so, and the live call carries on.
        with pytest.raises(InvalidStatus) as refused:
            await ws_connect(port)
        assert refused.value.response.status_code == 503
        health = await in_thread(_raw_get, port, "/health")
        assert health.startswith(b"HTTP/1.1 503 ")
        body = json.loads(health.split(b"\r\n\r\n", 1)[1])
        assert body == {"status": "draining", "mode": "local", "calls": 1, "version": "0.1.0"}
        assert await in_thread(roundtrip, ws, "still here") == "still here"
        start = anyio.current_time()
        await in_thread(ws.close)
        while server.live_connections:
            await anyio.sleep(0.02)
        assert anyio.current_time() - start < 2.0
    assert rec.closed_with == [1000]


async def test_shutdown_closes_lingering_calls_with_1001() -> None:
    rec = Recorder()
    limits = ServerLimits(**{**_fields(FAST), "shutdown_grace": 0.5})
    async with running(rec.echo, limits=limits) as (server, port):
        ws = await ws_connect(port)
        start = anyio.current_time()
        server.stop()
        assert await in_thread(roundtrip, ws, "within grace") == "within grace"
        assert await in_thread(_expect_close, ws) == 1001
        assert 0.4 < anyio.current_time() - start < 3.0


async def test_handler_error_closes_1011() -> None:
    async def broken(ws: WebSocket, request: StreamRequest) -> None:
        await ws.receive()
        raise RuntimeError("bug")

    async with running(broken) as (_, port):
        ws = await ws_connect(port)
        await in_thread(ws.send, "x")
        assert await in_thread(_expect_close, ws) == 1011


async def test_upgrade_errors() -> None:
    rec = Recorder()
    async with running(rec.echo) as (_, port):
        reply = await _raw(port, b"GET /ws/stream/CA1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 426 ")
        reply = await _raw(
            port,
            b"GET /ws/stream/CA1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        assert reply.startswith(b"HTTP/1.1 426 ") and b"sec-websocket-version: 13" in reply.lower()
        reply = await _raw(
            port,
            b"GET /ws/stream/CA1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n",
        )
        assert reply.startswith(b"HTTP/1.1 400 ")
        reply = await _raw(
            port, b"POST /ws/stream/CA1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        )
        assert reply.startswith(b"HTTP/1.1 405 ") and b"allow: GET" in reply
        reply = await _raw(port, b"GET /ws/stream/bad%20id HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 404 ")


async def test_frames_sent_with_the_upgrade_are_not_lost() -> None:
    """Bytes after the head (h11's trailing data) go to wsproto."""
    rec = Recorder()
    async with running(rec.echo) as (_, port):
        # A masked text frame "hi" right behind the request head.
        frame = bytes([0x81, 0x82, 1, 2, 3, 4, ord("h") ^ 1, ord("i") ^ 2])
        head = (
            b"GET /ws/stream/CA1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        async with await anyio.connect_tcp("127.0.0.1", port) as s:
            await s.send(head + frame)
            data = b""
            with anyio.fail_after(5):
                while b"hi" not in data.partition(b"\r\n\r\n")[2]:
                    data += await s.receive()
        assert data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        # RFC 6455 section 1.3's worked example.
        assert b"\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in data
        assert data.endswith(b"\x81\x02hi")


def _fields(limits: ServerLimits) -> dict[str, Any]:
    return {name: getattr(limits, name) for name in limits.__slots__}


async def _raw(port: int, data: bytes) -> bytes:
    async with await anyio.connect_tcp("127.0.0.1", port) as s:
        await s.send(data)
        out = b""
        with anyio.fail_after(5):
            while True:
                try:
                    out += await s.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return out


async def test_a_429_leaves_one_line_that_says_why(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="patter_anyio")
    rec = Recorder()
    limits = ServerLimits(**{**_fields(FAST), "max_ws_per_ip": 1})
    async with running(rec.echo, limits=limits) as (_, port):
        first = await ws_connect(port, "/ws/stream/CA1")
        with pytest.raises(InvalidStatus) as info:
            await ws_connect(port, "/ws/stream/CA2?x=1")
        assert info.value.response.status_code == 429
        await in_thread(first.close)
    lines = [r.getMessage() for r in caplog.records if "(429)" in r.getMessage()]
    assert lines == [
        "stream /ws/stream/CA2 from 127.0.0.1 refused (429): too many concurrent streams from "
        "this address; the limit is per address, so behind a proxy give --trusted-proxy so "
        "callers are counted, not the proxy"
    ]
