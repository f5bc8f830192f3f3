"""HTTP values and routing decisions (pure)."""

from ._clientip import TrustedProxies
from ._framing import ChunkGuard, HeadGuard
from ._limits import ServerLimits
from ._logthrottle import LogThrottle, Suppressed
from ._paths import Paths
from ._ratelimit import ConnectionLimiter
from ._router import Endpoint, Reject, Route, Router
from ._types import HttpRequest, HttpResponse

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
]
