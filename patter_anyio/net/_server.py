"""The embedded HTTP and WebSocket server: anyio sockets, h11, wsproto.

Theory of operation: one task per TCP connection runs an h11 server state
machine. Each request head is handed to the pure
:class:`patter_core.http.Router`, which answers with a route or a
rejection; this module only reads, writes and keeps time:

* the head must arrive within ``header_timeout`` of accept (or
  ``keepalive_timeout`` of the previous response), so a client trickling
  bytes is cut off; the head is capped at ``max_head_bytes`` (431);
* a body must arrive within ``body_timeout`` and stay under
  ``max_body_bytes`` (413);
* where the core is stricter than h11 (folded header lines, chunk sizes
  that cannot fit; see :mod:`patter_core.http._framing`), its guards see
  each read before h11 does;
* an error answer to a client still sending its body is followed by a
  bounded drain (``linger_bytes``, ``linger_timeout``), so the client reads
  the answer instead of a connection reset;
* a WebSocket upgrade is answered through h11 (101), and the bytes h11 has
  already read past the head go to a wsproto ``Connection``;
* a client that pipelines (sends its next request before reading the
  answer) gets its first answer with ``Connection: close``: carriers never
  pipeline, and refusing it keeps one request in flight per connection.

Shutdown: :meth:`Server.stop` stops accepting, closes idle keep-alive
connections, lets live requests and calls finish for ``shutdown_grace``
seconds (``stop(immediate=True)``, a second signal, cuts that short), asks
the owner to end the calls still live (``end_calls``: each ends as
``server_shutdown`` and its ``on_call_end`` runs), then closes every
WebSocket still open with 1001 (going away).

Refused stream upgrades are logged through a
:class:`~patter_core.http.LogThrottle`: the first few per reason in full,
then one line with a count per interval.
"""

from __future__ import annotations

import contextlib
import http
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

import anyio
import anyio.abc
import h11
from anyio.abc import SocketAttribute
from anyio.streams.stapled import MultiListener
from wsproto.connection import Connection, ConnectionType

from patter_core import RemoteProtocolError, __version__
from patter_core.http import (
    ChunkGuard,
    Endpoint,
    HeadGuard,
    HttpResponse,
    LogThrottle,
    Reject,
    Route,
    Router,
    ServerLimits,
    Suppressed,
)
from patter_core.http._health import health_response
from patter_core.http._router import check_body_size
from patter_core.http._types import find_header
from patter_core.monitor import MonitorAccess

from .._clock import SYSTEM_CLOCK
from .._errors import STREAM_ENDED, STREAM_LOST
from ._gc import startup_heap_frozen
from ._guard import SocketGuard
from ._loopstream import accept
from ._monitor import Monitor
from ._websocket import WebSocket, WebSocketClosed

__all__ = [
    "Application",
    "Server",
    "ServerRequest",
    "StreamHandler",
    "StreamRequest",
]

log = logging.getLogger("patter_anyio.server")

_READ_SIZE = 65536
# A short write deadline for error answers to a client we are about to drop.
_ERROR_SEND_TIMEOUT = 2.0
# After the 1001 closes, how long to wait for handlers to return.
_CLOSE_WAIT = 3.0

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerRequest:
    """An HTTP request as the application sees it (body already read)."""

    method: str
    target: str
    headers: Headers
    body: bytes
    client_ip: str

    def header(self, name: str) -> str | None:
        return find_header(self.headers, name)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamRequest:
    """A media WebSocket upgrade: which carrier, which call, from whom."""

    carrier: Literal["twilio", "telnyx"]
    call_id: str
    target: str
    headers: Headers
    client_ip: str

    def header(self, name: str) -> str | None:
        return find_header(self.headers, name)


StreamHandler = Callable[[WebSocket, StreamRequest], Awaitable[None]]


class Application(Protocol):
    """What the server calls; :class:`patter_anyio.WebhookApp` is the real one."""

    async def handle_http(self, route: Route, request: ServerRequest) -> HttpResponse: ...

    async def authorize_stream(self, request: StreamRequest) -> Reject | None: ...

    async def handle_stream(self, ws: WebSocket, request: StreamRequest) -> None: ...


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _decode_headers(raw: Iterable[tuple[bytes, bytes]]) -> Headers:
    # h11 lower-cases names; latin-1 maps every byte, so decoding cannot fail.
    return tuple((name.decode("latin-1"), value.decode("latin-1")) for name, value in raw)


class _Timeout(Exception):
    pass


def _body_pending(conn: h11.Connection) -> bool:
    """Whether the client may still be sending the body of the request we
    are refusing (what h11 already holds of it is discarded here)."""
    try:
        while conn.their_state is h11.SEND_BODY:
            if conn.next_event() is h11.NEED_DATA:
                return True
    except h11.RemoteProtocolError:
        return True
    return False


class Server:
    """Serve ``app`` on ``host:port`` until :meth:`stop` is called."""

    def __init__(
        self,
        app: Application,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        limits: ServerLimits | None = None,
        trusted_proxies: Iterable[str] = (),
        reuse_port: bool = False,
        mounts: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.limits = limits if limits is not None else ServerLimits()
        # mounts: path prefixes served by ``app`` whole (the dial tool's fake
        # carrier API); the product's server has none.
        self.router = Router(self.limits, trusted_proxies, mounts=mounts)
        self.reuse_port = reuse_port
        self._stop = anyio.Event()
        self._hurry = anyio.Event()
        self._busy = 0  # HTTP requests being answered
        self._stopping = False
        #: Ends the calls still live when the grace time is over (the owner's
        #: runtime sets it); they report ``server_shutdown``.
        self.end_calls: Callable[[], Awaitable[None]] | None = None
        self._refusals = LogThrottle()
        self._live = 0
        self._waiting: set[anyio.CancelScope] = set()
        self._websockets: set[WebSocket] = set()
        #: Enforces the idle and send timeouts of this server's WebSockets
        #: from one task; the owner's runtime gives it the provider
        #: sockets of the calls too.
        self.guard = SocketGuard()
        #: The dashboard, its API and /metrics (see :meth:`attach_monitor`).
        self.monitor: Monitor | None = None

    def attach_monitor(self, monitor: Monitor, *, token: str | None = None) -> str | None:
        """Serve ``monitor`` under the dashboard's access rule for this
        server's bind address; the start-up warning when that leaves it off."""
        access = MonitorAccess(bind_host=self.host, token=token)
        self.monitor = monitor
        self.router.access = access
        return access.startup_message()

    # --------------------------------------------------------------- control
    def stop(self, *, immediate: bool = False) -> None:
        """Begin a graceful shutdown (safe to call more than once);
        ``immediate`` skips what is left of the grace time."""
        self._stop.set()
        if immediate:
            self._hurry.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def live_connections(self) -> int:
        return self._live

    @property
    def live_calls(self) -> int:
        """Media streams open now."""
        return len(self._websockets)

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, report the bound port through ``task_status``, serve until
        stopped, then drain."""
        listener = await anyio.create_tcp_listener(
            local_host=self.host, local_port=self.port, reuse_port=self.reuse_port
        )
        self.port = listener.listeners[0].extra(SocketAttribute.local_port)
        log.debug("bound %s:%d", self.host, self.port)
        task_status.started(self.port)
        with startup_heap_frozen():
            await self._serve(listener)

    async def _serve(self, listener: MultiListener[anyio.abc.SocketStream]) -> None:
        async with anyio.create_task_group() as tg:
            accept_scope = anyio.CancelScope()

            async def accept_all() -> None:
                try:
                    with accept_scope:
                        async with anyio.create_task_group() as accepting:
                            for sub in listener.listeners:
                                accepting.start_soon(self._accept_loop, sub, tg)
                finally:
                    with anyio.CancelScope(shield=True):
                        await listener.aclose()

            tg.start_soon(accept_all)
            tg.start_soon(self._report_refusals)
            tg.start_soon(self.guard.run)
            await self._stop.wait()
            # Drain: still accepting, so health checks read 503 "draining"
            # and new calls are refused with a 503 a balancer retries
            # elsewhere; live calls and requests go on.
            self._stopping = True
            self.router.draining = True
            for scope in list(self._waiting):
                scope.cancel()
            log.log(
                logging.INFO if self._websockets else logging.DEBUG,
                "draining: %d live call(s), up to %g s",
                len(self._websockets),
                self.limits.shutdown_grace,
            )
            with anyio.move_on_after(self.limits.shutdown_grace):
                while (self._websockets or self._busy) and not self._hurry.is_set():
                    with anyio.move_on_after(0.05):
                        await self._hurry.wait()
            accept_scope.cancel()
            if self.end_calls is not None and self._websockets:
                with anyio.move_on_after(_CLOSE_WAIT):
                    await self.end_calls()
            for ws in list(self._websockets):
                tg.start_soon(ws.close, 1001, "server shutting down")
            with anyio.move_on_after(_CLOSE_WAIT):
                while self._live:
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        self._log_suppressed(self._refusals.take(SYSTEM_CLOCK.monotonic(), all_=True))
        log.info("stopped")

    async def _report_refusals(self) -> None:
        """One line per reason and interval for refusals not logged in full."""
        while True:
            deadline = self._refusals.next_deadline()
            await anyio.sleep(
                1.0 if deadline is None else max(0.0, deadline - SYSTEM_CLOCK.monotonic())
            )
            self._log_suppressed(self._refusals.take(SYSTEM_CLOCK.monotonic()))

    @staticmethod
    def _log_suppressed(counts: Iterable[Suppressed]) -> None:
        for item in counts:
            log.warning("%d more stream upgrades refused: %s", item.count, item.reason)

    async def _accept_loop(
        self,
        listener: anyio.abc.Listener[anyio.abc.SocketStream],
        tg: anyio.abc.TaskGroup,
    ) -> None:
        # create_tcp_listener builds one SocketListener per bound address.
        assert isinstance(listener, anyio.abc.SocketListener)
        while True:
            try:
                stream = await accept(listener)
            except OSError as exc:
                # Out of file descriptors and the like: back off and keep
                # serving the connections we have, instead of dying.
                log.warning("accept failed: %s", exc)
                await anyio.sleep(0.1)
                continue
            tg.start_soon(self._connection, stream)

    # ------------------------------------------------------------ connection
    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        self._live += 1
        try:
            address = stream.extra(SocketAttribute.remote_address)
            peer = str(address[0]) if isinstance(address, tuple) else str(address)
            await self._http_loop(stream, peer)
        except Exception:
            log.exception("connection failed")
        finally:
            self._live -= 1
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _read_event(
        self,
        conn: h11.Connection,
        stream: anyio.abc.ByteStream,
        guard: HeadGuard | ChunkGuard | None = None,
    ) -> h11.Event | type[h11.PAUSED]:
        # ``guard`` sees each read before h11 does, for the rules the core is
        # stricter on than h11 (it raises RemoteProtocolError).
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            try:
                data = await stream.receive(_READ_SIZE)
            except STREAM_ENDED:
                data = b""
            if guard is not None:
                guard.feed(data)
            conn.receive_data(data)

    async def _http_loop(self, stream: anyio.abc.SocketStream, peer: str) -> None:
        limits = self.limits
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head_bytes)
        deadline = limits.header_timeout
        while True:
            # Waiting for a head: shutdown may cancel this wait at any time.
            scope = anyio.CancelScope(deadline=anyio.current_time() + deadline)
            self._waiting.add(scope)
            try:
                with scope:
                    guard = HeadGuard()
                    guard.feed(conn.trailing_data[0])  # a next request already read
                    event = await self._read_event(conn, stream, guard)
            except h11.RemoteProtocolError as exc:
                await self._send_error(conn, stream, exc.error_status_hint, str(exc))
                return
            except RemoteProtocolError as exc:
                await self._send_error(conn, stream, exc.http_status, str(exc))
                return
            finally:
                self._waiting.discard(scope)
            if scope.cancelled_caught:
                if conn.trailing_data[0] and not self._stopping:
                    # Part of a head arrived, too slowly.
                    await self._send_error(conn, stream, 408, "request head timed out")
                return
            if not isinstance(event, h11.Request):
                return  # ConnectionClosed, or the client hung up mid-head
            keep_going = await self._handle_request(conn, stream, peer, event)
            if not keep_going or conn.our_state is not h11.DONE or self._stopping:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return
            deadline = limits.keepalive_timeout

    async def _send_error(
        self,
        conn: h11.Connection,
        stream: anyio.abc.ByteStream,
        status: int,
        reason: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        # A client still sending its request body (a 413, a refused upgrade
        # with a body) is drained after the answer, so it can read it.
        linger = _body_pending(conn)
        body = (reason + "\n").encode("utf-8")
        await self._send_response(
            conn,
            stream,
            HttpResponse(
                status=status,
                headers=(*headers, ("content-type", "text/plain; charset=utf-8")),
                body=body,
            ),
            close=True,
            timeout=_ERROR_SEND_TIMEOUT,
        )
        if linger:
            await self._linger(stream)

    async def _linger(self, stream: anyio.abc.ByteStream) -> None:
        """Half-close, then read and discard until the client closes, up to
        ``linger_bytes`` or ``linger_timeout``: closing with unread input
        would reset the connection and could destroy the answer."""
        budget = self.limits.linger_bytes
        with anyio.move_on_after(self.limits.linger_timeout):
            try:
                await stream.send_eof()
                while budget > 0:
                    budget -= len(await stream.receive(_READ_SIZE))
            except STREAM_ENDED:
                pass

    async def _send_response(
        self,
        conn: h11.Connection,
        stream: anyio.abc.ByteStream,
        response: HttpResponse,
        *,
        close: bool,
        head_only: bool = False,
        timeout: float | None = None,
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        headers = [
            (k, v) for k, v in response.headers if k.lower() not in ("content-length", "connection")
        ]
        headers.append(("content-length", str(len(response.body))))
        if close:
            headers.append(("connection", "close"))
        try:
            data = conn.send(
                h11.Response(
                    status_code=response.status, headers=headers, reason=_reason(response.status)
                )
            )
            if response.body and not head_only:
                data += conn.send(h11.Data(data=response.body)) or b""
            data += conn.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            log.exception("could not frame response")
            return
        try:
            with anyio.fail_after(timeout if timeout is not None else self.limits.send_timeout):
                await stream.send(data or b"")
        except STREAM_LOST:  # TimeoutError is an OSError
            pass

    async def _handle_request(
        self,
        conn: h11.Connection,
        stream: anyio.abc.SocketStream,
        peer: str,
        request: h11.Request,
    ) -> bool:
        """Answer one request; False when the connection must close."""
        method = request.method.decode("ascii", "replace")
        target = request.target.decode("ascii", "replace")
        headers = _decode_headers(request.headers)
        decision = self.router.route(
            method,
            target,
            headers,
            peer,
            http_version=request.http_version.decode("ascii", "replace"),
        )
        if isinstance(decision, Reject):
            if decision.stream and self.monitor is not None:
                self.monitor.refused(decision.reason)
            if decision.status == 429 and self._refusals.admit("429", SYSTEM_CLOCK.monotonic()):
                log.warning(
                    "stream %s from %s refused (429): %s; the limit is per address, so "
                    "behind a proxy give --trusted-proxy so callers are counted, not the proxy",
                    target.split("?", 1)[0],
                    self.router.client_ip(peer, headers),
                    decision.reason,
                )
            await self._send_error(conn, stream, decision.status, decision.reason, decision.headers)
            return False
        if decision.endpoint.is_websocket:
            try:
                await self._websocket(conn, stream, decision, headers)
            finally:
                self.router.release(decision)
            return False
        try:
            with anyio.fail_after(self.limits.body_timeout):
                body = await self._read_body(
                    conn, stream, chunked=any(name == "transfer-encoding" for name, _ in headers)
                )
        except TimeoutError:
            await self._send_error(conn, stream, 408, "request body timed out")
            return False
        except RemoteProtocolError as exc:
            await self._send_error(conn, stream, exc.http_status, str(exc))
            return False
        except h11.RemoteProtocolError as exc:
            await self._send_error(conn, stream, exc.error_status_hint, str(exc))
            return False
        if body is None:
            return False
        if decision.endpoint is Endpoint.API_EVENTS:
            await self._event_stream(conn, stream, decision)
            return False
        # Bytes of a next request already buffered: the client pipelines.
        pipelined = bool(conn.trailing_data[0])
        server_request = ServerRequest(
            method=method, target=target, headers=headers, body=body, client_ip=decision.client_ip
        )
        self._busy += 1
        try:
            if decision.endpoint in (Endpoint.HEALTH, Endpoint.READY):
                response = health_response(
                    draining=self.router.draining, calls=len(self._websockets), version=__version__
                )
            elif decision.endpoint.is_monitor and self.monitor is not None:
                response = await self.monitor.respond(decision)
            else:
                response = await self.app.handle_http(decision, server_request)
        except Exception:
            log.exception("handler failed for %s %s", method, decision.path)
            response = HttpResponse(
                status=500, headers=(("content-type", "text/plain"),), body=b"internal error\n"
            )
        finally:
            self._busy -= 1
        if decision.set_cookie is not None:
            response = HttpResponse(
                status=response.status,
                headers=(*response.headers, ("set-cookie", decision.set_cookie)),
                body=response.body,
            )
        close = pipelined or self._stopping or conn.their_state is h11.MUST_CLOSE
        await self._send_response(conn, stream, response, close=close, head_only=method == "HEAD")
        return not close

    async def _event_stream(
        self, conn: h11.Connection, stream: anyio.abc.ByteStream, route: Route
    ) -> None:
        """``GET /api/calls/events``: a chunked ``text/event-stream`` answer,
        written as the monitor produces events, until the client goes away
        or a shutdown begins."""
        subscription = self.monitor.subscribe() if self.monitor is not None else None
        if subscription is None:
            await self._send_error(conn, stream, 503, "too many event streams open")
            return
        headers = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-store"),
            # nginx buffers proxied answers unless told not to.
            ("x-accel-buffering", "no"),
        ]
        if route.set_cookie is not None:
            headers.append(("set-cookie", route.set_cookie))
        scope = anyio.CancelScope()
        self._waiting.add(scope)
        if self._stopping:
            scope.cancel()
        try:
            with scope:
                # No Content-Length: h11 frames the body as chunks.
                data = conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
                data = (data or b"") + (conn.send(h11.Data(data=subscription.first)) or b"")
                while True:
                    with anyio.fail_after(self.limits.send_timeout):
                        await stream.send(data)
                    data = conn.send(h11.Data(data=await subscription.next())) or b""
        except STREAM_LOST:  # TimeoutError is an OSError
            return  # the client is gone
        finally:
            subscription.close()
            self._waiting.discard(scope)
        # Shutdown: end the body properly, so the client sees a clean end.
        with (
            anyio.CancelScope(shield=True),
            anyio.move_on_after(_ERROR_SEND_TIMEOUT),
            contextlib.suppress(*STREAM_LOST),
        ):
            await stream.send(conn.send(h11.EndOfMessage()) or b"")

    async def _read_body(
        self, conn: h11.Connection, stream: anyio.abc.ByteStream, *, chunked: bool
    ) -> bytes | None:
        parts: list[bytes] = []
        size = 0
        # h11 frames by Transfer-Encoding whenever it is present; the guard
        # reads each chunk-size line before h11 has the chunk's data.
        guard = None
        if chunked:
            guard = ChunkGuard(self.limits)
            guard.feed(conn.trailing_data[0])  # read together with the head
        while True:
            event = await self._read_event(conn, stream, guard)
            if isinstance(event, h11.Data):
                size += len(event.data)
                check_body_size(size, self.limits)
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            else:
                return None  # the client went away mid-body

    async def _websocket(
        self,
        conn: h11.Connection,
        stream: anyio.abc.SocketStream,
        route: Route,
        headers: Headers,
    ) -> None:
        carrier: Literal["twilio", "telnyx"] = (
            "telnyx" if route.endpoint is Endpoint.TELNYX_STREAM else "twilio"
        )
        assert route.call_id is not None
        request = StreamRequest(
            carrier=carrier,
            call_id=route.call_id,
            target=route.target,
            headers=headers,
            client_ip=route.client_ip,
        )
        denied = await self.app.authorize_stream(request)
        if denied is not None:
            if self.monitor is not None:
                self.monitor.refused(denied.reason)
            if self._refusals.admit(denied.reason, SYSTEM_CLOCK.monotonic()):
                log.warning("stream %s refused: %s", route.call_id, denied.reason)
            await self._send_error(conn, stream, denied.status, denied.reason, denied.headers)
            return
        try:
            data = conn.send(
                h11.InformationalResponse(
                    status_code=101, headers=route.upgrade_headers(), reason=b"Switching Protocols"
                )
            )
            with anyio.fail_after(self.limits.send_timeout):
                await stream.send(data or b"")
        except STREAM_LOST:  # TimeoutError is an OSError
            return
        trailing, _ = conn.trailing_data
        ws = WebSocket(
            stream,
            Connection(ConnectionType.SERVER),
            trailing=bytes(trailing),
            max_message_bytes=self.limits.max_ws_message_bytes,
            idle_timeout=self.limits.ws_idle_timeout,
            send_timeout=self.limits.send_timeout,
        )
        self._websockets.add(ws)
        log.info("stream open carrier=%s call=%s ip=%s", carrier, route.call_id, route.client_ip)
        code = 1000
        self.guard.watch(ws)  # the idle and send timeouts
        try:
            await self.app.handle_stream(ws, request)
        except WebSocketClosed:
            pass
        except Exception:
            log.exception("stream handler failed for call %s", route.call_id)
            code = 1011  # RFC 6455 section 7.4.1: unexpected condition
        finally:
            self._websockets.discard(ws)
            with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_WAIT):
                if ws.is_open:
                    await ws.close(code, "" if code == 1000 else "internal error")
            closed = ws.closed
            log.info(
                "stream closed call=%s code=%s",
                route.call_id,
                closed.code if closed is not None else code,
            )
            await ws.aclose()
