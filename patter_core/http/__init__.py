"""HTTP values and routing decisions (pure)."""

from ._types import HttpRequest, HttpResponse

__all__ = ["HttpRequest", "HttpResponse"]
