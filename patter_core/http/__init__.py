"""HTTP values and routing decisions (pure)."""

from ._clientip import TrustedProxies, client_ip
from ._framing import ChunkGuard, HeadGuard, check_head
from ._health import health_response
from ._limits import ServerLimits
from ._logthrottle import LogThrottle, Suppressed
from ._paths import (
    API_CALL_PREFIX,
    API_CALLS_PATH,
    API_EVENTS_PATH,
    API_RECORDING_PREFIX,
    DASHBOARD_PATH,
    HEALTH_PATH,
    METRICS_PATH,
    READY_PATH,
    TELNYX_STREAM_PREFIX,
    TELNYX_VOICE_PATH,
    TWILIO_AMD_PATH,
    TWILIO_CONFERENCE_STATUS_PATH,
    TWILIO_RECORDING_PATH,
    TWILIO_STATUS_PATH,
    TWILIO_STREAM_PREFIX,
    TWILIO_STREAM_STATUS_PATH,
    TWILIO_TRANSFER_STATUS_PATH,
    TWILIO_VOICE_PATH,
)
from ._ratelimit import ConnectionLimiter
from ._router import Endpoint, Reject, Route, Router, check_body_size, websocket_accept
from ._types import HttpRequest, HttpResponse, text_response

__all__ = [
    "API_CALLS_PATH",
    "API_CALL_PREFIX",
    "API_EVENTS_PATH",
    "API_RECORDING_PREFIX",
    "DASHBOARD_PATH",
    "HEALTH_PATH",
    "METRICS_PATH",
    "READY_PATH",
    "TELNYX_STREAM_PREFIX",
    "TELNYX_VOICE_PATH",
    "TWILIO_AMD_PATH",
    "TWILIO_CONFERENCE_STATUS_PATH",
    "TWILIO_RECORDING_PATH",
    "TWILIO_STATUS_PATH",
    "TWILIO_STREAM_PREFIX",
    "TWILIO_STREAM_STATUS_PATH",
    "TWILIO_TRANSFER_STATUS_PATH",
    "TWILIO_VOICE_PATH",
    "ChunkGuard",
    "ConnectionLimiter",
    "Endpoint",
    "HeadGuard",
    "HttpRequest",
    "HttpResponse",
    "LogThrottle",
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
