"""Outgoing HTTP/1.1 over anyio (TLS with the system trust store), driven by h11.

The core builds every REST call as a :class:`patter_core.http.HttpRequest`;
this module only opens the socket, writes it and reads the answer.

Without a pool each request has a connection of its own and says
``Connection: close``: carrier REST calls are rare next to the media
traffic. With an :class:`HttpPool` (what a call's pipeline uses: a request
per sentence to the TTS host, one per LLM round) a connection whose
exchange ended cleanly is kept and the next request to the same host skips
the TCP and TLS handshakes (100-300 ms on real networks).

Rules: redirects are never followed (a 3xx raises :class:`RedirectRefused`,
so a credential-bearing request is never re-sent to another host); the
response body is capped (:class:`ResponseTooLarge`); every wait has a
deadline (:class:`ClientTimeout`); network and framing failures become
:class:`ClientConnectionError` / :class:`ClientProtocolError`. All derive
from :class:`ClientError`, a :class:`patter_core.PatterError`.

Reuse, when in doubt, does not happen. A connection goes back to the pool
only when h11 says both sides are ``DONE`` (the whole response was read
and neither side asked to close: RFC 9112 section 9.3), nothing followed
the response, and no exception or cancellation left the exchange. Before
an idle connection is used it must be idle for less than the pool's
``idle_timeout`` and its socket must have nothing to read: a readable idle
socket is either an EOF (the server closed it) or bytes nobody asked for,
and both mean "open a new one". Nothing has been sent at that point, so
this is safe for any method. If a reused connection still fails before any
byte of the response arrives, the request is retried once on a fresh
connection only for idempotent methods: RFC 9112 section 9.3.1 forbids
retrying a POST automatically, as the server may have acted on it.
"""

from __future__ import annotations

import contextlib
import select
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import anyio
import anyio.abc
import h11

from patter_core import PatterError
from patter_core.http import HttpRequest, HttpResponse
from patter_core.http._types import find_header
from patter_core.webhooks import RetryPolicy

from .._errors import STREAM_LOST
from ._loopstream import LoopStream, connect

__all__ = [
    "ClientConnectionError",
    "ClientError",
    "ClientProtocolError",
    "ClientTimeout",
    "HttpPool",
    "RedirectRefused",
    "ResponseTooLarge",
    "StreamingResponse",
    "request",
    "request_with_retry",
    "stream_request",
]

_READ_SIZE = 65536
# A response head larger than this is not an API answer.
_MAX_RESPONSE_HEAD = 64 * 1024
_USER_AGENT = "patter-local/0.1"
# A polite close (TLS close_notify) of a connection whose exchange ended;
# a peer that does not answer it within this long is dropped regardless.
_CLOSE_TIMEOUT = 1.0
# RFC 9110 section 9.2.2: the methods whose repetition has the same effect.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


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
            return await connect(
                target.host,
                target.port,
                ssl_context=ssl_context or default_ssl_context(),
                tls_hostname=target.host,
            )
        return await connect(target.host, target.port)
    except STREAM_LOST as exc:
        raise ClientConnectionError(
            f"cannot connect to {target.host}:{target.port}: {exc}"
        ) from exc


# -- one connection ------------------------------------------------------------------

# Connections are shared only between requests that would have opened the
# same one: same scheme, host, port and TLS settings (a request that pins
# its own SSLContext never rides a connection verified with another).
_Key = tuple[bool, str, int, ssl.SSLContext | None]


class _Connection:
    """One HTTP/1.1 connection: its byte stream and its h11 state machine."""

    __slots__ = ("h11", "idle_since", "key", "received", "reused", "stream")

    def __init__(self, stream: anyio.abc.ByteStream, key: _Key) -> None:
        self.stream = stream
        self.key = key
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_RESPONSE_HEAD)
        #: Bytes received in the current exchange (nothing yet: a retry is safe).
        self.received = 0
        self.reused = False
        self.idle_since = 0.0

    def reusable(self) -> bool:
        """The exchange ended cleanly and both sides keep the connection open."""
        conn = self.h11
        return (
            conn.our_state is h11.DONE
            and conn.their_state is h11.DONE
            # Bytes after the response would be read as the next answer.
            and conn.trailing_data == (b"", False)
        )

    def looks_idle(self) -> bool:
        """True if the socket has nothing to read (no EOF, no stray bytes)."""
        stream = self.stream
        if isinstance(stream, LoopStream):
            # Reading never stops on it: what arrived is in its buffer.
            return stream.idle()
        sock = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if sock is None:
            return False  # cannot tell: do not reuse
        try:
            fd = sock.fileno()
            if fd < 0:
                return False
            if hasattr(select, "poll"):
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                return not poller.poll(0)
            readable, _, _ = select.select([fd], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    async def close(self, *, graceful: bool) -> None:
        """Close; an aborted exchange is dropped at once, without TLS goodbyes."""
        if not graceful:
            await anyio.aclose_forcefully(self.stream)
            return
        # A peer that went first (TLS without close_notify) breaks the
        # goodbye; the socket is closed all the same, the answer was read.
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(_CLOSE_TIMEOUT),
            contextlib.suppress(*STREAM_LOST),
        ):
            await self.stream.aclose()


async def _next_event(conn: _Connection) -> h11.Event:
    while True:
        try:
            event = conn.h11.next_event()
        except h11.RemoteProtocolError as exc:
            raise ClientProtocolError(f"invalid HTTP response: {exc}") from exc
        if event is h11.NEED_DATA:
            try:
                data = await conn.stream.receive(_READ_SIZE)
            except anyio.EndOfStream:
                data = b""
            except STREAM_LOST as exc:
                raise ClientConnectionError(f"connection lost: {exc}") from exc
            conn.received += len(data)
            conn.h11.receive_data(data)
            continue
        if isinstance(event, h11.ConnectionClosed):
            raise ClientProtocolError("connection closed before the response ended")
        return event  # type: ignore[return-value]


async def _read_head(conn: _Connection) -> h11.Response:
    while True:
        event = await _next_event(conn)
        if isinstance(event, h11.InformationalResponse):
            continue  # 100 Continue and friends
        if isinstance(event, h11.Response):
            return event
        raise ClientProtocolError(f"unexpected {type(event).__name__}")


# -- the pool ------------------------------------------------------------------------


class HttpPool:
    """Idle keep-alive connections, shared by the requests of one event loop.

    Pass it as ``pool=`` to :func:`request` / :func:`stream_request`. It
    holds idle connections only; requests in flight each have their own
    connection, so concurrent requests to one host open more (a call has a
    few at most). Use it from one event loop; :meth:`aclose` (or ``async
    with``) closes what it holds, and a closed pool keeps nothing.
    """

    def __init__(
        self,
        *,
        max_idle_per_host: int = 4,
        max_idle: int = 16,
        idle_timeout: float = 30.0,
    ) -> None:
        if max_idle_per_host < 0 or max_idle < 0 or not idle_timeout >= 0:
            raise ValueError("pool limits must be non-negative")
        # A call's pipeline runs at most an LLM stream and a TTS request or
        # two at once per host; more idle sockets than that are never used.
        self.max_idle_per_host = max_idle_per_host
        # A call talks to a handful of hosts; this caps the sockets (file
        # descriptors) held open for nothing when it talks to more.
        self.max_idle = max_idle
        # Servers drop idle keep-alive connections after their own timeout
        # (commonly 60 s or more behind load balancers); giving them up
        # sooner keeps us from racing the server's close with a request.
        self.idle_timeout = idle_timeout
        #: Connections this pool's requests opened (reuse keeps it small).
        self.connections_opened = 0
        self._idle: dict[_Key, list[_Connection]] = {}
        self._closed = False

    def idle_count(self) -> int:
        return sum(len(conns) for conns in self._idle.values())

    async def __aenter__(self) -> HttpPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every idle connection; later releases are closed, not kept."""
        self._closed = True
        idle = [conn for conns in self._idle.values() for conn in conns]
        self._idle.clear()
        with anyio.CancelScope(shield=True):
            for conn in idle:
                await conn.close(graceful=False)

    def _expired(self, now: float) -> list[_Connection]:
        stale: list[_Connection] = []
        for key in list(self._idle):
            conns = self._idle[key]
            fresh = [c for c in conns if now - c.idle_since < self.idle_timeout]
            stale += [c for c in conns if now - c.idle_since >= self.idle_timeout]
            if fresh:
                self._idle[key] = fresh
            else:
                del self._idle[key]
        return stale

    async def _acquire(self, key: _Key) -> _Connection | None:
        """The most recently used live idle connection for ``key``, if any."""
        stale = self._expired(anyio.current_time())
        found: _Connection | None = None
        conns = self._idle.get(key)
        while conns and found is None:
            conn = conns.pop()
            if conn.looks_idle():
                found = conn
            else:
                stale.append(conn)
        if not conns:
            self._idle.pop(key, None)
        # Shielded: a cancellation here must not leave ``found`` unowned.
        with anyio.CancelScope(shield=True):
            for conn in stale:
                await conn.close(graceful=False)
        if found is not None:
            found.h11.start_next_cycle()
            found.received = 0
            found.reused = True
        return found

    async def _release(self, conn: _Connection) -> None:
        """Keep ``conn`` if its exchange ended cleanly and there is room; else close it."""
        now = anyio.current_time()
        drop = self._expired(now)
        conns = self._idle.setdefault(conn.key, [])
        if self._closed or not conn.reusable() or self.max_idle_per_host == 0:
            drop.append(conn)
        else:
            conn.idle_since = now
            conns.append(conn)
            if len(conns) > self.max_idle_per_host:
                drop.append(conns.pop(0))
            while self.idle_count() > self.max_idle:
                oldest = min(
                    (c for cs in self._idle.values() for c in cs), key=lambda c: c.idle_since
                )
                self._idle[oldest.key].remove(oldest)
                drop.append(oldest)
        for key in [k for k, cs in self._idle.items() if not cs]:
            del self._idle[key]
        # Dropped at once: a polite TLS close waits a round trip, and this
        # runs as the request that released ``conn`` finishes.
        for old in drop:
            await old.close(graceful=False)


# -- one exchange ----------------------------------------------------------------------


def _request_bytes(
    conn: h11.Connection, req: HttpRequest, target: _Target, *, keep_alive: bool
) -> bytes:
    names = {name.lower() for name, _ in req.headers}
    headers = [(name, value) for name, value in req.headers if name.lower() != "connection"]
    if "host" not in names:
        headers.insert(0, ("host", target.host_header))
    if "user-agent" not in names:
        headers.append(("user-agent", _USER_AGENT))
    framed = "content-length" in names or "transfer-encoding" in names
    if not framed and (req.body or req.method.upper() in ("POST", "PUT", "PATCH")):
        headers.append(("content-length", str(len(req.body))))
    if not keep_alive:
        # HTTP/1.1 keeps connections open by default (RFC 9112 section 9.3).
        headers.append(("connection", "close"))
    try:
        data = conn.send(h11.Request(method=req.method, target=target.path, headers=headers)) or b""
        if req.body:
            data += conn.send(h11.Data(data=req.body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError as exc:
        raise ClientError(f"cannot send this request: {exc}") from exc
    return data


async def _connect(
    target: _Target, key: _Key, ssl_context: ssl.SSLContext | None, timeout: float
) -> _Connection:
    try:
        with anyio.fail_after(timeout):
            stream = await open_stream(target, ssl_context)
    except TimeoutError as exc:
        raise ClientTimeout(f"connecting to {target.host} timed out") from exc
    return _Connection(stream, key)


async def _exchange(
    conn: _Connection, req: HttpRequest, target: _Target, timeout: float, *, keep_alive: bool
) -> h11.Response:
    data = _request_bytes(conn.h11, req, target, keep_alive=keep_alive)
    try:
        with anyio.fail_after(timeout):
            await conn.stream.send(data)
            return await _read_head(conn)
    except TimeoutError as exc:
        raise ClientTimeout(f"{target.host} did not answer in time") from exc
    except STREAM_LOST as exc:
        raise ClientConnectionError(f"connection lost: {exc}") from exc


async def _start(
    req: HttpRequest,
    target: _Target,
    ssl_context: ssl.SSLContext | None,
    pool: HttpPool | None,
    timeout: float,
) -> tuple[_Connection, h11.Response]:
    """A connection (reused or new) with the request sent and the head read."""
    key: _Key = (target.secure, target.host, target.port, ssl_context)
    may_retry = req.method.upper() in _IDEMPOTENT
    from_pool = pool is not None
    while True:
        conn = await pool._acquire(key) if pool is not None and from_pool else None
        if conn is None:
            conn = await _connect(target, key, ssl_context, timeout)
            if pool is not None:
                pool.connections_opened += 1
        try:
            head = await _exchange(conn, req, target, timeout, keep_alive=pool is not None)
        except (ClientConnectionError, ClientProtocolError):
            await conn.close(graceful=False)
            # A reused connection that died before answering anything: the
            # server most likely closed it while idle. Only a request that
            # may be repeated goes again, once, on a new connection.
            if conn.reused and conn.received == 0 and may_retry:
                may_retry = from_pool = False
                continue
            raise
        except BaseException:
            await conn.close(graceful=False)
            raise
        return conn, head


def _text_headers(head: h11.Response) -> tuple[tuple[str, str], ...]:
    # RFC 9110 §5.5: field values are octets; latin-1 keeps every one.
    return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers)


class StreamingResponse:
    """Status and headers now, the body as it arrives (``async for chunk in resp``)."""

    def __init__(
        self,
        conn: _Connection,
        head: h11.Response,
        *,
        read_timeout: float,
        max_response_bytes: int,
    ) -> None:
        self._conn = conn
        self.status: int = head.status_code
        self.headers = _text_headers(head)
        self._read_timeout = read_timeout
        self._max = max_response_bytes
        self._received = 0
        self._done = False

    def header(self, name: str) -> str | None:
        return find_header(self.headers, name)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while not self._done:
            try:
                with anyio.fail_after(self._read_timeout):
                    event = await _next_event(self._conn)
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


@asynccontextmanager
async def stream_request(
    req: HttpRequest,
    *,
    timeout: float,
    read_timeout: float | None = None,
    max_response_bytes: int,
    ssl_context: ssl.SSLContext | None = None,
    pool: HttpPool | None = None,
) -> AsyncIterator[StreamingResponse]:
    """Send ``req``; yield the response with its body still to read.

    ``timeout`` bounds connecting and reading the head; ``read_timeout``
    (default ``timeout``) bounds each wait for more body, so a long SSE or
    audio stream lives as long as data keeps coming. With ``pool`` the
    connection may be one kept from an earlier request, and goes back to
    the pool if the body was read to its end; leaving early (an error,
    a cancellation, a body not read to the end) closes it.
    """
    target = parse_url(req.url)
    conn, head = await _start(req, target, ssl_context, pool, timeout)
    try:
        if 300 <= head.status_code < 400:
            raise RedirectRefused(head.status_code, find_header(_text_headers(head), "location"))
        yield StreamingResponse(
            conn,
            head,
            read_timeout=read_timeout if read_timeout is not None else timeout,
            max_response_bytes=max_response_bytes,
        )
    except BaseException:
        await conn.close(graceful=False)
        raise
    if pool is not None:
        with anyio.CancelScope(shield=True):
            await pool._release(conn)
    else:
        ended = conn.h11.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED)
        await conn.close(graceful=ended)


async def request(
    req: HttpRequest,
    *,
    timeout: float,
    max_response_bytes: int,
    ssl_context: ssl.SSLContext | None = None,
    pool: HttpPool | None = None,
) -> HttpResponse:
    """Send ``req`` and read the whole answer within ``timeout`` seconds."""
    try:
        with anyio.fail_after(timeout):
            async with stream_request(
                req,
                timeout=timeout,
                max_response_bytes=max_response_bytes,
                ssl_context=ssl_context,
                pool=pool,
            ) as response:
                body = await response.read()
    except TimeoutError as exc:
        raise ClientTimeout(f"request to {req.url} timed out") from exc
    return HttpResponse(status=response.status, headers=response.headers, body=body)


async def request_with_retry(
    req: HttpRequest,
    policy: RetryPolicy,
    *,
    timeout: float,
    max_response_bytes: int,
    pool: HttpPool | None = None,
) -> HttpResponse:
    """:func:`request`, sent again when ``policy`` says so (a 5xx, a failed
    connection or a timeout); the last answer is returned, or the last
    connection failure raised. Only for idempotent requests."""
    attempts = 0
    while True:
        attempts += 1
        try:
            response = await request(
                req, timeout=timeout, max_response_bytes=max_response_bytes, pool=pool
            )
        except (ClientConnectionError, ClientTimeout, ClientProtocolError):
            delay = policy.delay_after(attempts, None)
            if delay is None:
                raise
        else:
            delay = policy.delay_after(attempts, response.status)
            if delay is None:
                return response
        await anyio.sleep(delay)
