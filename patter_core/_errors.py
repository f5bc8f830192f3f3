"""The error hierarchy shared by every protocol in :mod:`patter_core`.

Two kinds of failure, as in h11 and wsproto:

* :class:`LocalProtocolError` -- *we* asked for something the protocol does not
  allow (sending media before ``start``, a transcoder fed an odd byte count).
  It is a bug in the caller, raised before anything goes on the wire.
* :class:`RemoteProtocolError` -- the *peer* sent something wrong. It carries
  what to answer with: an HTTP status (``http_status``) for a request, a
  WebSocket close code (``close_code``) for a stream.

Every exception a ``patter_core`` object raises on bad input is one of these
(or a subclass); anything else escaping is a bug, and the fuzz harnesses in
``fuzz/`` hunt for exactly that.
"""

from __future__ import annotations

__all__ = [
    "CLOSE_BAD_DATA",
    "CLOSE_TOO_BIG",
    "LocalProtocolError",
    "MalformedMessage",
    "PatterError",
    "RemoteProtocolError",
    "SignatureError",
]

CLOSE_BAD_DATA = 1007  # RFC 6455 7.4.1: invalid payload data
CLOSE_TOO_BIG = 1009  # RFC 6455 7.4.1: message too big


class PatterError(Exception):
    """Base class of every error raised by patter-local on purpose."""


class LocalProtocolError(PatterError, ValueError):
    """We misused a protocol object (or passed it an invalid value).

    It subclasses :class:`ValueError` so that code validating arguments the
    usual Python way keeps working.
    """


class RemoteProtocolError(PatterError):
    """The peer broke the protocol.

    ``http_status`` is the status to answer an HTTP request with and
    ``close_code`` the WebSocket close code to close a stream with (RFC 6455
    section 7.4.1: 1002 protocol error, 1007 invalid payload data, 1008 policy
    violation, 1009 message too big).
    """

    def __init__(self, message: str, *, http_status: int = 400, close_code: int = 1002) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.close_code = close_code


class SignatureError(RemoteProtocolError):
    """A webhook or stream failed authentication (answer 403 / close 1008)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, http_status=403, close_code=1008)


class MalformedMessage(RemoteProtocolError):
    """A peer's JSON message is not what its protocol says (:mod:`patter_core._json`).

    Close 1007 and HTTP 400; over the size limit, close 1009 and HTTP 413.
    """

    def __init__(self, message: str, *, close_code: int = CLOSE_BAD_DATA) -> None:
        status = 413 if close_code == CLOSE_TOO_BIG else 400
        super().__init__(message, http_status=status, close_code=close_code)
