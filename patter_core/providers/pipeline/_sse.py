"""An incremental Server-Sent Events parser (the wire format of streamed LLM answers).

Theory of operation
-------------------

The WHATWG HTML standard, section 9.2 "Server-sent events", defines the
format as lines ended by CRLF, LF or a lone CR. A line starting with ``:`` is
a comment; otherwise it is ``field: value`` (one optional space after the
colon is dropped; a line without a colon is a field with an empty value). The
fields are ``event`` (the type), ``data`` (appended to a buffer, a LF between
repeated lines), ``id`` (ignored if it contains NUL) and ``retry`` (ASCII
digits only). A blank line dispatches the event; an event whose data buffer
is empty is not dispatched. The stream is UTF-8, decoded with replacement.

:meth:`SSEParser.feed` takes bytes cut anywhere -- inside a UTF-8 sequence,
between a CR and its LF -- and returns the events completed so far. Bytes are
split into lines *before* decoding, so a multi-byte character is always
decoded whole; a trailing CR is remembered so that an LF at the start of the
next chunk is not taken for a second, empty line.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..._errors import RemoteProtocolError

__all__ = ["SSEEvent", "SSEParser"]

# One SSE line carries one chat-completion chunk (a few hundred bytes, a few KB
# with long tool arguments). 1 MiB is far above any honest line and bounds the
# memory a peer that never sends a newline can make us hold.
DEFAULT_MAX_LINE_BYTES = 1 << 20
# An event may join many ``data:`` lines; 4 MiB bounds the join the same way.
DEFAULT_MAX_EVENT_BYTES = 4 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class SSEEvent:
    """One dispatched event; ``event`` defaults to ``"message"`` as in the spec."""

    data: str
    event: str = "message"
    id: str | None = None  # the last event id seen so far on the stream
    retry: int | None = None  # a reconnection time (ms) sent in this event's block


class SSEParser:
    """Feed bytes, get :class:`SSEEvent` values; never raises but RemoteProtocolError."""

    def __init__(
        self,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self._max_line_bytes = max_line_bytes
        self._max_event_bytes = max_event_bytes
        self._buffer = bytearray()
        self._skip_lf = False  # the previous chunk ended with CR
        self._started = False  # a leading BOM is dropped once
        self._data: list[str] = []
        self._data_size = 0
        self._event_type = ""
        self._last_id: str | None = None
        self._retry: int | None = None

    @property
    def last_event_id(self) -> str | None:
        return self._last_id

    def feed(self, data: bytes) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if not data:
            return events
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        self._buffer += data
        if not self._started:
            # "One leading U+FEFF BYTE ORDER MARK character must be ignored."
            if len(self._buffer) < 3 and b"\xef\xbb\xbf".startswith(bytes(self._buffer)):
                return events
            self._started = True
            if self._buffer[:3] == b"\xef\xbb\xbf":
                del self._buffer[:3]
        start = 0
        buf = self._buffer
        size = len(buf)
        while start < size:
            cr = buf.find(b"\r", start)
            lf = buf.find(b"\n", start)
            if cr < 0 and lf < 0:
                break
            if cr < 0 or (0 <= lf < cr):
                end, nxt = lf, lf + 1
            elif cr + 1 < size:
                end, nxt = cr, cr + 2 if buf[cr + 1] == 0x0A else cr + 1
            else:  # CR is the last byte: its LF may come in the next chunk
                end, nxt = cr, cr + 1
                self._skip_lf = True
            self._line(bytes(buf[start:end]), events)
            start = nxt
        del buf[:start]
        if len(buf) > self._max_line_bytes:
            raise RemoteProtocolError(
                f"SSE line longer than {self._max_line_bytes} bytes", http_status=502
            )
        return events

    def _line(self, raw: bytes, events: list[SSEEvent]) -> None:
        if len(raw) > self._max_line_bytes:
            raise RemoteProtocolError(
                f"SSE line longer than {self._max_line_bytes} bytes", http_status=502
            )
        if not raw:
            self._dispatch(events)
            return
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return  # a comment (servers send ": keep-alive" lines)
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data_size += len(value) + 1
            if self._data_size > self._max_event_bytes:
                raise RemoteProtocolError(
                    f"SSE event larger than {self._max_event_bytes} bytes", http_status=502
                )
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\x00" not in value:
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        # any other field name is ignored, as the spec says

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._data:
            events.append(
                SSEEvent(
                    data="\n".join(self._data),
                    event=self._event_type or "message",
                    id=self._last_id,
                    retry=self._retry,
                )
            )
        self._data = []
        self._data_size = 0
        self._event_type = ""
        self._retry = None
