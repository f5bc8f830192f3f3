"""Routing decisions for the embedded server, made without I/O.

Theory of operation: the runtime parses a request head (h11 does that) and
asks :meth:`Router.route` what to do with it, passing the method, the raw
request target, the headers and the socket's peer address. The answer is
either a :class:`Route` (which endpoint; for a media WebSocket also the
handshake answer and a held per-IP slot) or a :class:`Reject` (status,
headers, why). Every protocol rule lives here -- which paths exist, which
methods they take, what a valid WebSocket upgrade looks like (RFC 6455
section 4.2.1), how large a body may be, how many streams one client may
hold -- so the runtime only moves bytes.

A :class:`Route` for a WebSocket holds a slot in the per-IP limiter; the
runtime must hand it back with :meth:`Router.release` when the socket
closes, whatever happened.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from .._errors import RemoteProtocolError
from ..monitor._access import MonitorAccess
from ._clientip import TrustedProxies, client_ip
from ._framing import check_head
from ._limits import ServerLimits
from ._paths import Paths
from ._ratelimit import ConnectionLimiter
from ._types import header_values

__all__ = [
    "Endpoint",
    "Reject",
    "Route",
    "Router",
    "check_body_size",
    "websocket_accept",
]

# RFC 6455 section 1.3: the fixed GUID appended to Sec-WebSocket-Key.
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Carrier call ids: Twilio "CA" + 32 hex, Telnyx "v3:" + base64url. Allow
# that alphabet and nothing else, so an id is safe in logs, URLs and TwiML.
_CALL_ID = re.compile(r"[A-Za-z0-9._:~-]{1,128}")


class Endpoint(enum.Enum):
    HEALTH = "health"
    READY = "ready"
    TWILIO_VOICE = "twilio_voice"
    TWILIO_RECORDING = "twilio_recording"
    TWILIO_AMD = "twilio_amd"
    TWILIO_STATUS = "twilio_status"
    TWILIO_STREAM_STATUS = "twilio_stream_status"
    #: A warm transfer: the person's call progress, and the conference's events.
    TWILIO_TRANSFER_STATUS = "twilio_transfer_status"
    TWILIO_CONFERENCE_STATUS = "twilio_conference_status"
    TELNYX_VOICE = "telnyx_voice"
    TWILIO_STREAM = "twilio_stream"
    TELNYX_STREAM = "telnyx_stream"
    METRICS = "metrics"
    DASHBOARD = "dashboard"
    API_CALLS = "api_calls"
    API_CALL = "api_call"
    API_EVENTS = "api_events"
    API_RECORDING = "api_recording"
    #: A path under one of the prefixes a router was built with (``mounts``):
    #: another application served by the same server, such as the fake
    #: Telnyx Call Control API of ``patter dial``. The product has none.
    MOUNTED = "mounted"

    @property
    def is_websocket(self) -> bool:
        return self in (Endpoint.TWILIO_STREAM, Endpoint.TELNYX_STREAM)

    @property
    def is_monitor(self) -> bool:
        """Behind the dashboard's access rule (:class:`MonitorAccess`)."""
        return self in _MONITOR

    @property
    def starts_calls(self) -> bool:
        """Refused while draining: what would bring a new call to this instance."""
        return self in _CALL_STARTERS


#: The voice webhooks answer new calls and the streams carry them; status,
#: recording and AMD callbacks concern calls already live here and still pass.
_CALL_STARTERS = frozenset(
    {Endpoint.TWILIO_VOICE, Endpoint.TELNYX_VOICE, Endpoint.TWILIO_STREAM, Endpoint.TELNYX_STREAM}
)

_MONITOR = frozenset(
    {
        Endpoint.METRICS,
        Endpoint.DASHBOARD,
        Endpoint.API_CALLS,
        Endpoint.API_CALL,
        Endpoint.API_EVENTS,
        Endpoint.API_RECORDING,
    }
)

_EXACT: dict[str, tuple[Endpoint, tuple[str, ...]]] = {
    Paths.HEALTH: (Endpoint.HEALTH, ("GET", "HEAD")),
    Paths.READY: (Endpoint.READY, ("GET", "HEAD")),
    Paths.TWILIO_VOICE: (Endpoint.TWILIO_VOICE, ("POST",)),
    Paths.TWILIO_RECORDING: (Endpoint.TWILIO_RECORDING, ("POST",)),
    Paths.TWILIO_AMD: (Endpoint.TWILIO_AMD, ("POST",)),
    Paths.TWILIO_STATUS: (Endpoint.TWILIO_STATUS, ("POST",)),
    Paths.TWILIO_STREAM_STATUS: (Endpoint.TWILIO_STREAM_STATUS, ("POST",)),
    Paths.TWILIO_TRANSFER_STATUS: (Endpoint.TWILIO_TRANSFER_STATUS, ("POST",)),
    Paths.TWILIO_CONFERENCE_STATUS: (Endpoint.TWILIO_CONFERENCE_STATUS, ("POST",)),
    Paths.TELNYX_VOICE: (Endpoint.TELNYX_VOICE, ("POST",)),
    Paths.METRICS: (Endpoint.METRICS, ("GET", "HEAD")),
    Paths.DASHBOARD: (Endpoint.DASHBOARD, ("GET", "HEAD")),
    Paths.API_CALLS: (Endpoint.API_CALLS, ("GET", "HEAD")),
    Paths.API_EVENTS: (Endpoint.API_EVENTS, ("GET",)),
}
_PREFIXES: tuple[tuple[str, Endpoint], ...] = (
    (Paths.TWILIO_STREAM, Endpoint.TWILIO_STREAM),
    (Paths.TELNYX_STREAM, Endpoint.TELNYX_STREAM),
    (Paths.API_CALL, Endpoint.API_CALL),
    (Paths.API_RECORDING, Endpoint.API_RECORDING),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Serve ``endpoint``. ``target`` is the raw request target (path and
    query, exactly as sent: Twilio signs it that way)."""

    endpoint: Endpoint
    target: str
    path: str
    query: str
    client_ip: str
    call_id: str | None = None
    # For a WebSocket: the Sec-WebSocket-Accept value to answer 101 with.
    websocket_accept: str | None = None
    # For a dashboard page opened with ``?token=``: the cookie to set.
    set_cookie: str | None = None

    def upgrade_headers(self) -> list[tuple[str, str]]:
        """The headers of the 101 answer (RFC 6455 section 4.2.2)."""
        if self.websocket_accept is None:
            raise RemoteProtocolError("not a WebSocket route")
        return [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-accept", self.websocket_accept),
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject:
    """Answer ``status`` with ``headers`` and close the connection."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = field(default=())
    #: A refused media-stream upgrade (counted by reason on /metrics).
    stream: bool = False


def websocket_accept(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    digest = hashlib.sha1(key.encode("ascii") + _WS_GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def check_body_size(received: int, limits: ServerLimits) -> None:
    """Raise 413 once a body has grown past the limit (chunked bodies
    announce no length, so the runtime calls this as bytes arrive)."""
    if received > limits.max_body_bytes:
        raise RemoteProtocolError("request body too large", http_status=413)


def _tokens(headers: Sequence[tuple[str, str]], name: str) -> set[str]:
    return {
        part.strip().lower() for value in header_values(headers, name) for part in value.split(",")
    }


def _single(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    values = header_values(headers, name)
    if len(values) != 1:
        return None
    return values[0].strip()


def _check_upgrade(headers: Sequence[tuple[str, str]]) -> str | Reject:
    """Validate a WebSocket opening handshake (RFC 6455 section 4.2.1)."""
    if "websocket" not in _tokens(headers, "upgrade") or "upgrade" not in _tokens(
        headers, "connection"
    ):
        # Section 4.2.2: a plain GET to a WebSocket resource may be answered
        # 426 with the Upgrade header (RFC 9110 section 15.5.22).
        return Reject(
            status=426,
            reason="this endpoint takes a WebSocket upgrade",
            headers=(("upgrade", "websocket"), ("connection", "Upgrade")),
        )
    if _single(headers, "sec-websocket-version") != "13":
        # Section 4.4: answer with the versions we speak.
        return Reject(
            status=426,
            reason="unsupported WebSocket version",
            headers=(("sec-websocket-version", "13"),),
        )
    key = _single(headers, "sec-websocket-key")
    if key is None:
        return Reject(status=400, reason="missing Sec-WebSocket-Key")
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        return Reject(status=400, reason="invalid Sec-WebSocket-Key")
    return websocket_accept(key)


class Router:
    """Decides each request; owns the per-IP WebSocket limiter."""

    __slots__ = ("_limiter", "_mounts", "_trusted", "access", "draining", "limits")

    def __init__(
        self,
        limits: ServerLimits | None = None,
        trusted_proxies: Iterable[str] = (),
        access: MonitorAccess | None = None,
        mounts: Iterable[str] = (),
    ) -> None:
        #: Who may read the dashboard, its API and /metrics; None: nobody.
        self.access = access
        #: Path prefixes handed whole to the application, any method
        #: (:attr:`Endpoint.MOUNTED`), after the product's own paths.
        self._mounts = tuple(mounts)
        self.limits = limits if limits is not None else ServerLimits()
        self._trusted = TrustedProxies(trusted_proxies)
        self._limiter = ConnectionLimiter(self.limits.max_ws_per_ip)
        #: Set when a shutdown begins: new calls are refused with 503 (a
        #: balancer retries them on another instance), live ones go on.
        self.draining = False

    def client_ip(self, peer: str, headers: Sequence[tuple[str, str]]) -> str:
        return client_ip(peer, headers, self._trusted)

    def live_streams(self, ip: str) -> int:
        return self._limiter.count(ip)

    def route(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        peer: str,
        *,
        http_version: str = "1.1",
    ) -> Route | Reject:
        """What to do with one request head."""
        decision = self._route(method, target, headers, peer, http_version)
        stream_paths = tuple(prefix for prefix, e in _PREFIXES if e.is_websocket)
        if isinstance(decision, Reject) and target.startswith(stream_paths):
            return Reject(
                status=decision.status,
                reason=decision.reason,
                headers=decision.headers,
                stream=True,
            )
        return decision

    def _route(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        peer: str,
        http_version: str,
    ) -> Route | Reject:
        try:
            check_head(http_version, headers)
        except RemoteProtocolError as exc:
            return Reject(status=exc.http_status, reason=str(exc))
        # h11 bounds only a head that arrives in pieces; one that arrives
        # whole in a single read is measured here (request line plus
        # "name: value\r\n" per header, as on the wire).
        head_size = len(method) + len(target) + 12
        head_size += sum(len(name) + len(value) + 4 for name, value in headers)
        if head_size > self.limits.max_head_bytes:
            return Reject(status=431, reason="request header fields too large")
        if not target.startswith("/"):
            # Only origin-form targets (RFC 9112 section 3.2.1) reach a server
            # that is not a proxy.
            return Reject(status=400, reason="request target must be a path")
        path, _, query = target.partition("?")
        endpoint: Endpoint | None = None
        allowed: tuple[str, ...] = ()
        call_id: str | None = None
        exact = _EXACT.get(path)
        if exact is not None:
            endpoint, allowed = exact
        else:
            for prefix, candidate in _PREFIXES:
                if path.startswith(prefix):
                    # An undecodable escape becomes U+FFFD, which the id
                    # pattern rejects: 404, never a decode error.
                    segment = unquote(path[len(prefix) :], errors="replace")
                    if _CALL_ID.fullmatch(segment) is None:
                        return Reject(status=404, reason="not found")
                    methods = ("GET",) if candidate.is_websocket else ("GET", "HEAD")
                    endpoint, allowed, call_id = candidate, methods, segment
                    break
        if endpoint is None and path.startswith(self._mounts):
            endpoint, allowed = Endpoint.MOUNTED, (method,)
        if endpoint is None:
            return Reject(status=404, reason="not found")
        if method not in allowed:
            return Reject(
                status=405,
                reason="method not allowed",
                headers=(("allow", ", ".join(allowed)),),
            )
        if self.draining and endpoint.starts_calls:
            return Reject(
                status=503,
                reason="this instance is shutting down",
                headers=(("retry-after", "1"),),
            )
        ip = self.client_ip(peer, headers)
        set_cookie = None
        if endpoint.is_monitor:
            if self.access is None:
                return Reject(status=404, reason="not found")
            access = self.access.check(headers, query)
            if not access.allowed:
                # RFC 6750 section 3: a 401 names the scheme it wants.
                extra = (("www-authenticate", "Bearer"),) if access.status == 401 else ()
                return Reject(status=access.status, reason=access.reason, headers=extra)
            set_cookie = access.set_cookie
        if not endpoint.is_websocket:
            length = _single(headers, "content-length")
            # isascii: str.isdigit() admits "¹" and other digits int() refuses.
            if (
                length is not None
                and length.isascii()
                and length.isdigit()
                and int(length) > self.limits.max_body_bytes
            ):
                return Reject(status=413, reason="request body too large")
            return Route(
                endpoint=endpoint,
                target=target,
                path=path,
                query=query,
                client_ip=ip,
                call_id=call_id,
                set_cookie=set_cookie,
            )
        accept = _check_upgrade(headers)
        if isinstance(accept, Reject):
            return accept
        if not self._limiter.acquire(ip):
            return Reject(
                status=429,
                reason="too many concurrent streams from this address",
                # A hint only; a carrier retries on its own schedule.
                headers=(("retry-after", "5"),),
            )
        return Route(
            endpoint=endpoint,
            target=target,
            path=path,
            query=query,
            client_ip=ip,
            call_id=call_id,
            websocket_accept=accept,
        )

    def release(self, route: Route) -> None:
        """Give back the slot a WebSocket route holds."""
        if route.endpoint.is_websocket:
            self._limiter.release(route.client_ip)
