"""Framer: cut a byte stream into fixed-size frames (e.g. 20 ms of mu-law = 160 bytes).

Carriers want audio in steady frames (Twilio plays whatever it gets, but
marks and barge-in bookkeeping are simplest per 20 ms), while providers
send chunks of any size. ``push`` returns every complete frame and keeps
the remainder; nothing is lost or duplicated. The remainder never exceeds
``frame_bytes - 1`` bytes, so a Framer's memory is bounded by its frame size.
"""

from __future__ import annotations

from .._errors import LocalProtocolError
from ._g711 import Buffer, require_bytes

__all__ = ["Framer"]

# One second of the widest format we carry (PCM16 at 192 kHz); a larger
# "frame" is a caller mistake (frames are meant to be milliseconds long).
_MAX_FRAME_BYTES = 384_000


class Framer:
    """Split pushed bytes into frames of exactly ``frame_bytes``."""

    __slots__ = ("_buf", "frame_bytes")

    def __init__(self, frame_bytes: int) -> None:
        if (
            not isinstance(frame_bytes, int)
            or isinstance(frame_bytes, bool)
            or not 1 <= frame_bytes <= _MAX_FRAME_BYTES
        ):
            raise LocalProtocolError(
                f"frame_bytes must be an int in 1..{_MAX_FRAME_BYTES}, not {frame_bytes!r}"
            )
        self.frame_bytes = frame_bytes
        self._buf = b""

    @property
    def remainder(self) -> bytes:
        """Bytes pushed but not yet returned as a frame."""
        return self._buf

    def push(self, data: Buffer) -> list[bytes]:
        """Add ``data``; return every complete frame now available, in order."""
        require_bytes(data)
        size = self.frame_bytes
        buf = self._buf + data if self._buf else bytes(data)
        end = len(buf) - len(buf) % size
        self._buf = buf[end:]
        if end == size:
            return [buf[:size] if end < len(buf) else buf]
        return [buf[i : i + size] for i in range(0, end, size)]

    def flush(self) -> bytes:
        """Return the remainder (shorter than a frame) and clear it."""
        rest, self._buf = self._buf, b""
        return rest
