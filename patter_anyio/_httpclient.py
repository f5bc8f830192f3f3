"""Outgoing HTTP/1.1 over anyio (TLS with the system trust store), driven by h11.

The core builds every REST call as a :class:`patter_core.http.HttpRequest`;
this module only opens the socket, writes it and reads the answer, one
request per connection (``Connection: close``), because calls to carrier
and provider APIs are rare next to the media traffic.

Rules: redirects are never followed (a 3xx raises :class:`RedirectRefused`,
so a credential-bearing request is never re-sent to another host); the
response body is capped (:class:`ResponseTooLarge`); every wait has a
deadline (:class:`ClientTimeout`); network and framing failures become
:class:`ClientConnectionError` / :class:`ClientProtocolError`. All derive
from :class:`ClientError`, a :class:`patter_core.PatterError`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import anyio.abc
import h11

from patter_core import PatterError
from patter_core.http import HttpRequest, HttpResponse

__all__ = [
    "ClientConnectionError",
    "ClientError",
    "ClientProtocolError",
    "ClientTimeout",
    "RedirectRefused",
    "ResponseTooLarge",
    "StreamingResponse",
    "request",
    "stream_request",
]

_READ_SIZE = 65536
# A response head larger than this is not an API answer.
_MAX_RESPONSE_HEAD = 64 * 1024
_USER_AGENT = "patter-local/0.1"


class ClientError(PatterError):
    """An outgoing request failed."""


class ClientTimeout(ClientError):
    """The peer did not answer in time."""


class ClientConnectionError(ClientError):
    """Could not connect, TLS failed, or the connection dropped."""


class ClientProtocolError(ClientError):
    """The peer's answer was not valid HTTP (or not a valid WebSocket handshake)."""

    def __init__(self, message: str, *, status: int | None = None, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class ResponseTooLarge(ClientError):
    """The response body passed ``max_response_bytes``."""


class RedirectRefused(ClientError):
    """The server answered 3xx; we do not follow redirects."""

    def __init__(self, status: int, location: str | None) -> None:
        super().__init__(f"redirect refused: {status} to {location!r}")
        self.status = status
        self.location = location


_default_context: ssl.SSLContext | None = None


def default_ssl_context() -> ssl.SSLContext:
    """The system trust store, hostname checking on (created once)."""
    global _default_context
    if _default_context is None:
        _default_context = ssl.create_default_context()
    return _default_context


@dataclass(frozen=True, slots=True)
class _Target:
    secure: bool
    host: str
    port: int
    path: str
    host_header: str


def parse_url(url: str, *, secure_schemes: tuple[str, ...] = ("https", "wss")) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ClientError(f"invalid URL {url!r}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise ClientError(f"unsupported URL {url!r}")
    secure = scheme in secure_schemes
    default = 443 if secure else 80
    host = parts.hostname
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if port in (None, default) else f"{bracketed}:{port}"
    return _Target(secure, host, port or default, path, host_header)


async def open_stream(target: _Target, ssl_context: ssl.SSLContext | None) -> anyio.abc.ByteStream:
    """TCP (and TLS for https/wss) to the target; errors become ClientError."""
    try:
        if target.secure:
            return await anyio.connect_tcp(
                target.host,
                target.port,
                ssl_context=ssl_context or default_ssl_context(),
                tls_hostname=target.host,
            )
        return await anyio.connect_tcp(target.host, target.port)
    except (OSError, anyio.BrokenResourceError) as exc:
        raise ClientConnectionError(
            f"cannot connect to {target.host}:{target.port}: {exc}"
        ) from exc


def _request_bytes(conn: h11.Connection, req: HttpRequest, target: _Target) -> bytes:
    names = {name.lower() for name, _ in req.headers}
    headers = [(name, value) for name, value in req.headers if name.lower() != "connection"]
    if "host" not in names:
        headers.insert(0, ("host", target.host_header))
    if "user-agent" not in names:
        headers.append(("user-agent", _USER_AGENT))
    framed = "content-length" in names or "transfer-encoding" in names
    if not framed and (req.body or req.method.upper() in ("POST", "PUT", "PATCH")):
        headers.append(("content-length", str(len(req.body))))
    headers.append(("connection", "close"))
    try:
        data = conn.send(h11.Request(method=req.method, target=target.path, headers=headers)) or b""
        if req.body:
            data += conn.send(h11.Data(data=req.body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError as exc:
        raise ClientError(f"cannot send this request: {exc}") from exc
    return data


class StreamingResponse:
    """Status and headers now, the body as it arrives (``async for chunk in resp``)."""

    def __init__(
        self,
        conn: h11.Connection,
        stream: anyio.abc.ByteStream,
        head: h11.Response,
        *,
        read_timeout: float,
        max_response_bytes: int,
    ) -> None:
        self._conn = conn
        self._stream = stream
        self.status: int = head.status_code
        self.headers: tuple[tuple[str, str], ...] = tuple(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers
        )
        self._read_timeout = read_timeout
        self._max = max_response_bytes
        self._received = 0
        self._done = False

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while not self._done:
            try:
                with anyio.fail_after(self._read_timeout):
                    event = await _next_event(self._conn, self._stream)
            except TimeoutError as exc:
                raise ClientTimeout("response body stalled") from exc
            if isinstance(event, h11.Data):
                self._received += len(event.data)
                if self._received > self._max:
                    raise ResponseTooLarge(f"response body over {self._max} bytes")
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._done = True
            else:
                raise ClientProtocolError("connection closed mid-body")

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self])


async def _next_event(conn: h11.Connection, stream: anyio.abc.ByteStream) -> h11.Event:
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise ClientProtocolError(f"invalid HTTP response: {exc}") from exc
        if event is h11.NEED_DATA:
            try:
                data = await stream.receive(_READ_SIZE)
            except anyio.EndOfStream:
                data = b""
            except (anyio.BrokenResourceError, OSError) as exc:
                raise ClientConnectionError(f"connection lost: {exc}") from exc
            conn.receive_data(data)
            continue
        if isinstance(event, h11.ConnectionClosed):
            raise ClientProtocolError("connection closed before the response ended")
        return event  # type: ignore[return-value]


async def _read_head(conn: h11.Connection, stream: anyio.abc.ByteStream) -> h11.Response:
    while True:
        event = await _next_event(conn, stream)
        if isinstance(event, h11.InformationalResponse):
            continue  # 100 Continue and friends
        if isinstance(event, h11.Response):
            return event
        raise ClientProtocolError(f"unexpected {type(event).__name__}")


@asynccontextmanager
async def stream_request(
    req: HttpRequest,
    *,
    timeout: float,
    read_timeout: float | None = None,
    max_response_bytes: int,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[StreamingResponse]:
    """Send ``req``; yield the response with its body still to read.

    ``timeout`` bounds connecting and reading the head; ``read_timeout``
    (default ``timeout``) bounds each wait for more body, so a long SSE or
    audio stream lives as long as data keeps coming.
    """
    target = parse_url(req.url)
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_RESPONSE_HEAD)
    try:
        with anyio.fail_after(timeout):
            stream = await open_stream(target, ssl_context)
    except TimeoutError as exc:
        raise ClientTimeout(f"connecting to {target.host} timed out") from exc
    try:
        try:
            with anyio.fail_after(timeout):
                await stream.send(_request_bytes(conn, req, target))
                head = await _read_head(conn, stream)
        except TimeoutError as exc:
            raise ClientTimeout(f"{target.host} did not answer in time") from exc
        except (anyio.BrokenResourceError, OSError) as exc:
            raise ClientConnectionError(f"connection lost: {exc}") from exc
        if 300 <= head.status_code < 400:
            location = None
            for name, value in head.headers:
                if name == b"location":
                    location = value.decode("latin-1")
            raise RedirectRefused(head.status_code, location)
        yield StreamingResponse(
            conn,
            stream,
            head,
            read_timeout=read_timeout if read_timeout is not None else timeout,
            max_response_bytes=max_response_bytes,
        )
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()


async def request(
    req: HttpRequest,
    *,
    timeout: float,
    max_response_bytes: int,
    ssl_context: ssl.SSLContext | None = None,
) -> HttpResponse:
    """Send ``req`` and read the whole answer within ``timeout`` seconds."""
    try:
        with anyio.fail_after(timeout):
            async with stream_request(
                req,
                timeout=timeout,
                max_response_bytes=max_response_bytes,
                ssl_context=ssl_context,
            ) as response:
                body = await response.read()
    except TimeoutError as exc:
        raise ClientTimeout(f"request to {req.url} timed out") from exc
    return HttpResponse(status=response.status, headers=response.headers, body=body)
