"""Plain HTTP request/response values that the core builds and the runtime sends."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HttpRequest", "HttpResponse"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    """A request ready to go on the wire: the runtime only opens the socket.

    ``url`` is absolute (``https://api.twilio.com/...``); ``headers`` are
    ``(name, value)`` pairs in order, names lower-case.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpResponse:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None
