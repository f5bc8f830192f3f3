"""What the server shows about its calls: the dashboard's board, its access
rule, server-sent events and the Prometheus text format (pure)."""

from ._access import AccessDecision, MonitorAccess, is_loopback, token_problem
from ._board import BoardEvent, CallBoard, sse_comment, sse_event
from ._prometheus import CONTENT_TYPE, Family, Sample, histogram, render

__all__ = [
    "CONTENT_TYPE",
    "AccessDecision",
    "BoardEvent",
    "CallBoard",
    "Family",
    "MonitorAccess",
    "Sample",
    "histogram",
    "is_loopback",
    "render",
    "sse_comment",
    "sse_event",
    "token_problem",
]
