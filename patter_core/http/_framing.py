"""Request framing rules stricter than h11's defaults, decided without I/O.

Theory of operation: h11 parses requests leniently where RFC 9112 lets a
recipient choose, and a server that sits behind a proxy must not be lenient
there, because two parsers that frame one byte stream differently are how
requests are smuggled. Where h11 has no option to refuse, the runtime shows
these functions what h11 is about to parse (the unparsed bytes of its
receive buffer, or the parsed head) and answers with the status they name:

* :func:`check_head` -- on the parsed head: a version other than HTTP/1.0
  or HTTP/1.1 (h11 accepts any ``HTTP/d.d``) is 505; ``Content-Length``
  together with ``Transfer-Encoding`` (h11 frames by the latter and drops
  nothing) is 400 and the connection closes.
* :func:`check_raw_head` -- on the raw head, before h11 parses it: obsolete
  line folding (h11 silently joins folded lines) is 400.
* :func:`check_chunk_header` -- on the raw bytes at a chunk boundary: a
  chunk announced larger than what the body may still hold is 413 at once,
  instead of after the body timeout.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .._errors import RemoteProtocolError
from ._limits import ServerLimits

__all__ = ["check_chunk_header", "check_head", "check_raw_head"]

# RFC 9112 section 2.3: HTTP/1.1 servers answer 1.0 and 1.1 requests.
_VERSIONS = frozenset({"1.0", "1.1"})
# The end of a head: an empty line (h11 also accepts a bare LF).
_HEAD_END = re.compile(rb"\n\r?\n")
# A line after the start line that begins with whitespace: RFC 9112 section
# 5.2 obs-fold, or (before the first field) section 2.2's whitespace after the
# start line. Both may be rejected with 400; a proxy in front may read them
# differently, so we do.
_FOLD = re.compile(rb"\n[ \t]")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
# More hex digits than this already exceed any body limit an int can hold
# sensibly; no need to convert them.
_MAX_HEX_DIGITS = 16


def check_head(http_version: str, headers: Sequence[tuple[str, str]]) -> None:
    """Raise for a parsed request head that must not be served."""
    if http_version not in _VERSIONS:
        # RFC 9110 section 15.6.6.
        raise RemoteProtocolError("HTTP version not supported", http_status=505)
    names = {name.lower() for name, _ in headers}
    if "content-length" in names and "transfer-encoding" in names:
        # RFC 9112 section 6.1: such a message "ought to be handled as an
        # error", and a server "MUST close the connection after responding".
        raise RemoteProtocolError("both Content-Length and Transfer-Encoding")


def check_raw_head(pending: bytes) -> None:
    """Raise 400 if the head at the start of ``pending`` folds a line.

    ``pending`` is what the parser has not consumed yet; only the head (up
    to its empty line, or all of it while incomplete) is looked at, never
    the body after it.
    """
    end = _HEAD_END.search(pending)
    head = pending if end is None else pending[: end.start() + 1]
    if _FOLD.search(head) is not None:
        raise RemoteProtocolError("obsolete line folding in the request head")


def check_chunk_header(pending: bytes, received: int, limits: ServerLimits) -> None:
    """Raise 413 if the chunk-size line at the start of ``pending`` announces
    more than the body may still hold.

    ``pending`` starts at a chunk boundary: the rest of the previous chunk's
    CRLF (if any) and then the next chunk-size line, complete or not.
    Leading hex digits already fix a lower bound on the size, so a line still
    arriving is judged as soon as the bound is too large. Anything that is
    not a chunk size (a trailer, garbage) is left to the parser.
    """
    if pending.startswith(b"\r\n"):
        pending = pending[2:]
    elif pending.startswith(b"\n"):
        pending = pending[1:]
    digits = _HEX.match(pending)
    if digits is None:
        return
    # h11 allows leading zeros (up to 20 digits in all); they add nothing.
    text = digits.group().lstrip(b"0") or b"0"
    room = limits.max_body_bytes - received
    if len(text) > _MAX_HEX_DIGITS or int(text, 16) > room:
        raise RemoteProtocolError("request body too large", http_status=413)
