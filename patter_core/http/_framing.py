"""Request framing rules stricter than h11's defaults, decided without I/O.

Theory of operation: h11 parses requests leniently where RFC 9112 lets a
recipient choose, and a server that sits behind a proxy must not be lenient
there, because two parsers that frame one byte stream differently are how
requests are smuggled. Where h11 has no option to refuse, the runtime shows
these rules the parsed head, or the raw bytes as they arrive from the
socket, and answers with the status a :class:`RemoteProtocolError` names:

* :func:`check_head` -- on the parsed head: a version other than HTTP/1.0
  or HTTP/1.1 (h11 accepts any ``HTTP/d.d``) is 505; ``Content-Length``
  together with ``Transfer-Encoding`` (h11 frames by the latter and drops
  nothing) is 400 and the connection closes.
* :class:`HeadGuard` -- on the raw head, before h11 parses it: obsolete
  line folding (h11 silently joins folded lines) is 400.
* :class:`ChunkGuard` -- on the raw bytes of a chunked body: a chunk
  announced larger than what the body may still hold is 413 at once (h11
  reveals a chunk's size only as its data arrives, so a client announcing
  4 GiB and sending nothing would otherwise wait out the body timeout).

Both guards follow the bytes incrementally (each byte is looked at once,
whatever the read sizes), and step aside when the bytes stop looking like
what they check: malformed framing is h11's to refuse.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence

from .._errors import RemoteProtocolError
from ._limits import ServerLimits

__all__ = ["ChunkGuard", "HeadGuard", "check_head"]

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
# A size of more significant hex digits than this (2**64 and up) fits no
# body limit; it is refused before it is converted.
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


class HeadGuard:
    """Watches one request head for obsolete line folding (400).

    Feed it the bytes of a request from its first byte on; it stops looking
    at the empty line that ends the head, so body bytes are never judged.
    """

    __slots__ = ("_done", "_tail")

    def __init__(self) -> None:
        self._tail = b""
        self._done = False

    def feed(self, data: bytes) -> None:
        if self._done or not data:
            return
        # The two bytes kept from the last feed let a fold or the head's end
        # be seen across a read boundary.
        buf = self._tail + data
        end = _HEAD_END.search(buf)
        head = buf if end is None else buf[: end.start() + 1]
        if _FOLD.search(head) is not None:
            raise RemoteProtocolError("obsolete line folding in the request head")
        self._done = end is not None
        self._tail = buf[-2:]


class _Chunk(enum.Enum):
    SIZE = "size"  # reading the hex digits of a chunk-size line
    LINE = "line"  # the rest of that line (extensions), up to LF
    DATA = "data"  # the chunk's data
    DATA_END = "data_end"  # the CRLF after the data
    OFF = "off"  # last chunk seen, or framing h11 will refuse: stop looking


class ChunkGuard:
    """Watches a chunked body's chunk-size lines (413 when one cannot fit).

    Feed it the body's bytes from the first byte after the head. The sizes
    announced so far plus the one being read must stay within
    ``max_body_bytes``; leading hex digits already bound the size from
    below, so a size line still arriving is judged as soon as it is too
    large.
    """

    __slots__ = ("_announced", "_digits", "_limit", "_remaining", "_seen", "_size", "_state")

    def __init__(self, limits: ServerLimits) -> None:
        self._limit = limits.max_body_bytes
        self._announced = 0
        self._state = _Chunk.SIZE
        self._size = 0
        self._digits = 0  # significant hex digits of the size so far
        self._seen = False  # any digit on this size line yet
        self._remaining = 0

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n and self._state is not _Chunk.OFF:
            state = self._state
            if state is _Chunk.DATA:
                take = min(self._remaining, n - i)
                i += take
                self._remaining -= take
                if not self._remaining:
                    self._state = _Chunk.DATA_END
            elif state is _Chunk.SIZE:
                i = self._size_digits(data, i)
            elif state is _Chunk.LINE:
                j = data.find(b"\n", i)
                if j < 0:
                    return
                i = j + 1
                if self._size == 0:
                    self._state = _Chunk.OFF  # the last chunk; trailers follow
                else:
                    self._announced += self._size
                    self._remaining, self._size, self._digits = self._size, 0, 0
                    self._seen = False
                    self._state = _Chunk.DATA
            else:  # DATA_END
                j = data.find(b"\n", i)
                if j < 0:
                    return
                i = j + 1
                self._state = _Chunk.SIZE

    def _size_digits(self, data: bytes, i: int) -> int:
        match = _HEX.match(data, i)
        if match is None:
            # The size ended (an extension, CR or LF follows), or never began:
            # garbage, which h11 refuses with 400.
            self._state = _Chunk.LINE if self._seen else _Chunk.OFF
            return i
        self._seen = True
        text = match.group()
        if not self._size:
            # h11 allows leading zeros (20 digits in all); they add nothing.
            text = text.lstrip(b"0")
        if self._digits + len(text) > _MAX_HEX_DIGITS:
            raise RemoteProtocolError("request body too large", http_status=413)
        if text:
            self._digits += len(text)
            self._size = self._size * 16 ** len(text) + int(text, 16)
        if self._announced + self._size > self._limit:
            raise RemoteProtocolError("request body too large", http_status=413)
        return match.end()  # at the end of ``data``, more digits may follow
