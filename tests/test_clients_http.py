"""The outgoing HTTP client against a tiny raw-socket server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from patter_anyio.net._httpclient import (
    ClientConnectionError,
    ClientProtocolError,
    ClientTimeout,
    RedirectRefused,
    ResponseTooLarge,
    request,
    request_with_retry,
    stream_request,
)
from patter_anyio.net._rest import carrier_request, send_rest
from patter_core.http import HttpRequest
from patter_core.webhooks import RetryPolicy
from patter_core.webhooks._outgoing import DEFAULT_MAX_WEBHOOK_RESPONSE_BYTES

pytestmark = pytest.mark.anyio

Script = Callable[[anyio.abc.SocketStream, bytes], Any]


async def _read_request(stream: anyio.abc.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
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
async def raw_server(script: Script) -> AsyncIterator[tuple[int, list[bytes]]]:
    """Accepts connections; hands each request to ``script`` to answer."""
    seen: list[bytes] = []

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            req = await _read_request(stream)
            seen.append(req)
            await script(stream, req)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield port, seen
        finally:
            tg.cancel_scope.cancel()


def reply(data: bytes) -> Script:
    async def script(stream: anyio.abc.SocketStream, req: bytes) -> None:
        await stream.send(data)

    return script


async def test_content_length_response_and_request_framing() -> None:
    async with raw_server(
        reply(
            b'HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
        )
    ) as (port, seen):
        resp = await request(
            HttpRequest(
                method="POST",
                url=f"http://127.0.0.1:{port}/v2/calls?x=1",
                headers=(("authorization", "Bearer k"), ("content-type", "application/json")),
                body=b'{"a":1}',
            ),
            timeout=5,
            max_response_bytes=1000,
        )
    assert resp.status == 201
    assert resp.header("Content-Type") == "application/json"
    assert resp.body == b'{"ok":true}'
    head, _, body = seen[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v2/calls?x=1 HTTP/1.1"
    assert f"host: 127.0.0.1:{port}".encode() in lines
    assert b"authorization: Bearer k" in lines
    assert b"content-length: 7" in lines
    assert body == b'{"a":1}'


async def test_chunked_response() -> None:
    async with raw_server(
        reply(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )
    ) as (port, _):
        resp = await request(
            HttpRequest(method="GET", url=f"http://127.0.0.1:{port}/"),
            timeout=5,
            max_response_bytes=100,
        )
    assert (resp.status, resp.body) == (200, b"hello world")


async def test_read_until_close_response() -> None:
    async with raw_server(reply(b"HTTP/1.0 200 OK\r\n\r\nuntil close")) as (port, _):
        resp = await request(
            HttpRequest(method="GET", url=f"http://127.0.0.1:{port}/"),
            timeout=5,
            max_response_bytes=100,
        )
    assert resp.body == b"until close"


async def test_error_status_is_returned_not_raised() -> None:
    async with raw_server(reply(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope")) as (
        port,
        _,
    ):
        resp = await request(
            HttpRequest(method="GET", url=f"http://127.0.0.1:{port}/"),
            timeout=5,
            max_response_bytes=100,
        )
    assert (resp.status, resp.body) == (404, b"nope")


async def test_oversize_response_refused() -> None:
    async with raw_server(
        reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000)
    ) as (port, _):
        with pytest.raises(ResponseTooLarge):
            await request(
                HttpRequest(method="GET", url=f"http://127.0.0.1:{port}/"),
                timeout=5,
                max_response_bytes=4096,
            )


async def test_redirect_refused_not_followed() -> None:
    async with raw_server(
        reply(b"HTTP/1.1 302 Found\r\nLocation: http://evil.example/\r\nContent-Length: 0\r\n\r\n")
    ) as (port, seen):
        with pytest.raises(RedirectRefused) as info:
            await request(
                HttpRequest(method="GET", url=f"http://127.0.0.1:{port}/"),
                timeout=5,
                max_response_bytes=100,
            )
    assert (info.value.status, info.value.location) == (302, "http://evil.example/")
    assert len(seen) == 1


async def test_timeout() -> None:
    async def silent(stream: anyio.abc.SocketStream, req: bytes) -> None:
        await anyio.sleep(10)

    async with raw_server(silent) as (port, _):
        start = anyio.current_time()
        with pytest.raises(ClientTimeout):
            await request(
                HttpRequest(method="GET", url=f"http://127.0.0.1:{port}/"),
                timeout=0.3,
                max_response_bytes=100,
            )
        assert anyio.current_time() - start < 2


async def test_connection_refused_and_bad_response() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.listeners[0].extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    with pytest.raises(ClientConnectionError):
        await request(
            HttpRequest(method="GET", url=f"http://127.0.0.1:{port}/"),
            timeout=5,
            max_response_bytes=1,
        )
    async with raw_server(reply(b"SMTP ready\r\n\r\n")) as (port, _):
        with pytest.raises(ClientProtocolError):
            await request(
                HttpRequest(method="GET", url=f"http://127.0.0.1:{port}/"),
                timeout=5,
                max_response_bytes=100,
            )


async def test_streaming_body_arrives_in_pieces() -> None:
    release = anyio.Event()

    async def sse(stream: anyio.abc.SocketStream, req: bytes) -> None:
        await stream.send(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        await stream.send(b"7\r\ndata: 1\r\n")
        await release.wait()
        await stream.send(b"7\r\ndata: 2\r\n0\r\n\r\n")

    async with raw_server(sse) as (port, _):
        chunks = []
        async with stream_request(
            HttpRequest(method="GET", url=f"http://127.0.0.1:{port}/events"),
            timeout=5,
            max_response_bytes=100,
        ) as resp:
            assert resp.status == 200
            assert resp.header("content-type") == "text/event-stream"
            async for chunk in resp:
                chunks.append(chunk)
                release.set()
    assert chunks == [b"data: 1", b"data: 2"]


async def test_streaming_read_timeout() -> None:
    async def stall(stream: anyio.abc.SocketStream, req: bytes) -> None:
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await anyio.sleep(10)

    async with raw_server(stall) as (port, _):
        with pytest.raises(ClientTimeout):
            async with stream_request(
                HttpRequest(method="GET", url=f"http://127.0.0.1:{port}/"),
                timeout=5,
                read_timeout=0.3,
                max_response_bytes=100,
            ) as resp:
                async for _ in resp:
                    pass


async def test_retry_after_a_dropped_connection_and_a_5xx_not_a_4xx() -> None:
    """Carrier commands: a connection closed without an answer and a 503 are
    sent again (after the policy's delay); a 4xx is returned at once."""
    answers = [
        b"",  # the connection is dropped without an answer
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 422 Unprocessable Entity\r\nContent-Length: 3\r\n\r\nbad",
    ]

    async def script(stream: anyio.abc.SocketStream, req: bytes) -> None:
        answer = answers.pop(0)
        if answer:
            await stream.send(answer)

    policy = RetryPolicy(first_delay_s=0.01, max_delay_s=0.05)
    async with raw_server(script) as (port, seen):
        req = HttpRequest(method="POST", url=f"http://127.0.0.1:{port}/c", body=b"{}")
        ok = await request_with_retry(req, policy, timeout=5, max_response_bytes=100)
        assert (ok.status, ok.body, len(seen)) == (200, b"ok", 3)
        refused = await request_with_retry(req, policy, timeout=5, max_response_bytes=100)
        assert (refused.status, len(seen)) == (422, 4)
    # A server that never answers: the last failure is raised after max_attempts.
    async with raw_server(lambda stream, req: anyio.sleep(0)) as (port, seen):
        req = HttpRequest(method="POST", url=f"http://127.0.0.1:{port}/c", body=b"{}")
        with pytest.raises(ClientProtocolError):
            await request_with_retry(
                req,
                RetryPolicy(max_attempts=2, first_delay_s=0.01),
                timeout=5,
                max_response_bytes=1,
            )
        assert len(seen) == 2


async def test_carrier_commands_share_one_size_limit_and_log_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """send_rest: the core's 1 MiB limit on every carrier answer; a refusal,
    an error status or a lost connection is one WARNING naming the command."""
    limit = DEFAULT_MAX_WEBHOOK_RESPONSE_BYTES
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % limit + b"x" * limit,
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (limit + 1) + b"x" * (limit + 1),
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\ngone",
    ]

    async def script(stream: anyio.abc.SocketStream, req: bytes) -> None:
        await stream.send(answers.pop(0))

    caplog.set_level(logging.INFO, logger="patter_anyio.rest")
    async with raw_server(script) as (port, seen):
        req = HttpRequest(method="POST", url=f"http://127.0.0.1:{port}/c", body=b"{}")
        full = await send_rest(req, "hangup")
        assert full is not None and len(full.body) == limit
        with pytest.raises(ResponseTooLarge):
            await carrier_request(req)
        gone = await send_rest(req, "hangup")
        assert gone is not None and gone.status == 404
        assert len(seen) == 3
    assert [r.getMessage() for r in caplog.records] == [
        "carrier hangup request done (200)",
        "carrier hangup request answered 404: gone",
    ]
    caplog.clear()
    async with raw_server(reply(b"")) as (port, seen):
        req = HttpRequest(method="POST", url=f"http://127.0.0.1:{port}/c", body=b"{}")
        assert await send_rest(req, "speak", retry=RetryPolicy(first_delay_s=0.01)) is None
        assert len(seen) == 4  # Telnyx's policy: four attempts in all
    (line,) = caplog.records
    assert line.levelno == logging.WARNING
    assert line.getMessage().startswith("carrier speak request failed: ")
