"""HTTP values and routing decisions (pure)."""

from ._clientip import TrustedProxies, client_ip
from ._framing import ChunkGuard, HeadGuard, check_head
from ._health import health_response
from ._limits import ServerLimits
from ._logthrottle import LogThrottle, Suppressed
from ._paths import Paths
from ._ratelimit import ConnectionLimiter
from ._router import Endpoint, Reject, Route, Router, check_body_size, websocket_accept
from ._types import HttpRequest, HttpResponse, text_response

__all__ = [
    "ChunkGuard",
    "ConnectionLimiter",
    "Endpoint",
    "HeadGuard",
    "HttpRequest",
    "HttpResponse",
    "LogThrottle",
    "Paths",
    "Reject",
    "Route",
    "Router",
    "ServerLimits",
    "Suppressed",
    "TrustedProxies",
    "check_body_size",
    "check_head",
    "client_ip",
    "health_response",
    "text_response",
    "websocket_accept",
]
