"""WebSocket data frames (RFC 6455 section 5), read and written without
wsproto's general machinery.

A call's sockets carry ~150 small messages a second, each one frame, never
compressed (we offer and accept no extension). wsproto parses them through
a generator per frame, a message decoder and an incremental UTF-8 decoder;
that was ~10% of the server's time (DESIGN.md, "The hot path").
:class:`FrameReader` finds frame boundaries itself and hands out whole data
messages; control frames (ping, pong, close) go back to wsproto whole, byte
for byte, so the closing handshake stays wsproto's. :func:`frame` builds a
data frame, masked when a client sends it.

The reader enforces what a server or client must (section 5.1-5.5): frames
from a client are masked and a server's are not, no RSV bit without an
extension, no reserved opcode, a continuation only inside a fragmented
message and a new message only outside one, a control frame of at most 125
bytes and not fragmented, a text message valid UTF-8 (checked when it is
whole), and at most ``max_message_bytes`` per message, refused from the
frame header before its payload is held. A violation is a
:class:`FrameError` with the close code section 7.4.1 gives it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

__all__ = ["ControlFrame", "FrameError", "FrameReader", "frame"]

_HEAD_7 = struct.Struct("!BB")
_HEAD_16 = struct.Struct("!BBH")
_HEAD_64 = struct.Struct("!BBQ")
_FIN = 0x80
_RSV = 0x70
_MASK_BIT = 0x80
_CONTINUATION = 0x0
_TEXT = 0x1
_BINARY = 0x2
_CONTROL = frozenset({0x8, 0x9, 0xA})


@dataclass(frozen=True, slots=True)
class ControlFrame:
    """A whole close, ping or pong frame, exactly as it arrived."""

    raw: bytes


@dataclass(frozen=True, slots=True)
class FrameError:
    """The peer broke the framing rules: close with ``code``."""

    code: int
    reason: str


# From this many bytes on, numpy masks a payload four bytes at a time faster
# than one XOR of Python integers (which costs ~2 ns a byte, numpy a fixed
# ~1.7 us): a transcoded call's 1.3 KB provider messages take that way,
# a carrier's 300-byte frames the other.
_NUMPY_MASK_FROM = 768


def _unmask(payload: bytes, key: bytes) -> bytes:
    size = len(payload)
    if not size:
        return b""
    if size >= _NUMPY_MASK_FROM:
        whole = size & ~3
        body = np.frombuffer(payload, np.uint32, whole >> 2) ^ np.frombuffer(key, np.uint32)
        if whole == size:
            return body.tobytes()
        return body.tobytes() + _unmask(payload[whole:], key)
    pad = (key * ((size >> 2) + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(pad, "little")).to_bytes(
        size, "little"
    )


def frame(data: str | bytes, mask: bytes | None = None) -> bytes:
    """One final text (``str``) or binary (``bytes``) frame; ``mask`` (four
    unpredictable bytes) is required on a client's frames and forbidden on a
    server's (section 5.3)."""
    if isinstance(data, str):
        first = _FIN | _TEXT
        payload = data.encode("utf-8")
    else:
        first = _FIN | _BINARY
        payload = bytes(data)
    size = len(payload)
    flag = 0
    if mask is not None:
        flag = _MASK_BIT
        payload = mask + _unmask(payload, mask)
    if size < 126:
        return _HEAD_7.pack(first, flag | size) + payload
    if size < 65536:
        return _HEAD_16.pack(first, flag | 126, size) + payload
    return _HEAD_64.pack(first, flag | 127, size) + payload


class FrameReader:
    """Bytes in, whole messages out, for one side of one connection.

    ``client`` is our role: a client reads a server's unmasked frames, a
    server a client's masked ones. Feed bytes with :meth:`receive_data`,
    then call :meth:`next_event` until it returns None: each call gives a
    whole message (``str`` or ``bytes``), a :class:`ControlFrame`, or a
    :class:`FrameError`, after which the reader gives nothing more.
    """

    __slots__ = ("_binary", "_buf", "_failed", "_masked", "_max", "_parts", "_pos", "_size")

    def __init__(self, *, client: bool, max_message_bytes: int) -> None:
        self._masked = 0 if client else _MASK_BIT
        self._max = max_message_bytes
        self._buf = b""
        self._pos = 0
        # The fragments of a message in progress (None: none in progress).
        self._parts: list[bytes] | None = None
        self._binary = False
        self._size = 0
        self._failed = False

    def receive_data(self, data: bytes) -> None:
        if self._pos < len(self._buf):
            self._buf = self._buf[self._pos :] + data
        else:
            self._buf = data
        self._pos = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet part of an event."""
        return len(self._buf) - self._pos

    def _fail(self, code: int, reason: str) -> FrameError:
        self._failed = True
        self._buf = b""
        self._pos = 0
        self._parts = None
        return FrameError(code, reason)

    def next_event(self) -> str | bytes | ControlFrame | FrameError | None:
        while True:
            if self._failed:
                return None
            buf = self._buf
            pos = self._pos
            have = len(buf) - pos
            if have < 2:
                return None
            first = buf[pos]
            second = buf[pos + 1]
            size = second & 0x7F
            head = 2
            if size == 126:
                if have < 4:
                    return None
                size = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif size == 127:
                if have < 10:
                    return None
                size = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
                if size >> 63:
                    return self._fail(1002, "invalid payload length")
            if first & _RSV:
                return self._fail(1002, "reserved bits set")
            if (second & _MASK_BIT) != self._masked:
                if self._masked:
                    return self._fail(1002, "unmasked frame from a client")
                return self._fail(1002, "masked frame from a server")
            opcode = first & 0x0F
            if opcode in _CONTROL:
                if size > 125 or not first & _FIN:
                    return self._fail(1002, "invalid control frame")
            elif opcode == _CONTINUATION:
                if self._parts is None:
                    return self._fail(1002, "continuation outside a message")
            elif opcode in (_TEXT, _BINARY):
                if self._parts is not None:
                    return self._fail(1002, "new message inside a fragmented one")
            else:
                return self._fail(1002, "reserved opcode")
            if opcode not in _CONTROL and self._size + size > self._max:
                return self._fail(1009, "message too big")
            if self._masked:
                head += 4
            end = pos + head + size
            if len(buf) < end:
                return None
            if end == len(buf):
                # All read: drop the chunk (it can be large after a burst),
                # not keep it alive until the next one arrives.
                self._buf = b""
                self._pos = 0
            else:
                self._pos = end
            if opcode in _CONTROL:
                return ControlFrame(bytes(buf[pos:end]))
            payload = buf[pos + head : end]
            if self._masked:
                payload = _unmask(payload, buf[pos + head - 4 : pos + head])
            if opcode != _CONTINUATION:
                self._binary = opcode == _BINARY
                if first & _FIN:
                    return self._message(payload)
                self._parts = [payload]
                self._size = size
                continue
            assert self._parts is not None
            self._parts.append(payload)
            self._size += size
            if first & _FIN:
                whole = b"".join(self._parts)
                self._parts = None
                self._size = 0
                return self._message(whole)

    def _message(self, payload: bytes) -> str | bytes | FrameError:
        if self._binary:
            return bytes(payload)
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            return self._fail(1007, "invalid UTF-8 in a text message")
