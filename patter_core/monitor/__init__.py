"""What the server shows about its calls: the dashboard's board, its access
rule, server-sent events and the Prometheus text format (pure)."""

from ._access import AccessDecision, MonitorAccess
from ._board import BoardEvent, CallBoard
from ._prometheus import Family, Sample

__all__ = ["AccessDecision", "BoardEvent", "CallBoard", "Family", "MonitorAccess", "Sample"]
