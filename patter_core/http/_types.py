"""Plain HTTP request/response values that the core builds and the runtime sends."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HttpRequest", "HttpResponse", "text_response"]


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


def text_response(status: int, message: str) -> HttpResponse:
    """``message`` as one line of UTF-8 text: what a refused request is told."""
    return HttpResponse(
        status=status,
        headers=(("content-type", "text/plain; charset=utf-8"),),
        body=(message + "\n").encode("utf-8"),
    )
