"""Plain HTTP request/response values that the core builds and the runtime sends."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["HttpRequest", "HttpResponse", "find_header", "header_values", "text_response"]


def header_values(headers: Iterable[tuple[str, str]], name: str) -> list[str]:
    """Every value of header ``name``, in order (names match in any case,
    RFC 9110 §5.1): the one scan of a header list for a name."""
    name = name.lower()
    return [value for key, value in headers if key.lower() == name]


def find_header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name``, or None.

    Every request and response object answers ``header(name)`` with this;
    a security check that must refuse a repeated header uses
    :func:`patter_core.webhooks.header_value` instead.
    """
    values = header_values(headers, name)
    return values[0] if values else None


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
        return find_header(self.headers, name)


def text_response(status: int, message: str) -> HttpResponse:
    """``message`` as one line of UTF-8 text: what a refused request is told."""
    return HttpResponse(
        status=status,
        headers=(("content-type", "text/plain; charset=utf-8"),),
        body=(message + "\n").encode("utf-8"),
    )
