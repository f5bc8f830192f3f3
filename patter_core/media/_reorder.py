"""Restoring the order of Telnyx media frames within a small window.

Telnyx: "Media frame order is not guaranteed. Use media.chunk,
media.timestamp, and sequence_number to order frames" (PROTOCOLS.md section
4.4). We order by ``media.chunk``, a per-track counter of media frames that
starts at 1: ``sequence_number`` counts every message (marks and DTMF too), so
its gaps would look like lost audio.

Per track, ``next`` is the chunk we want to deliver next:

* ``chunk == next``: deliver it, then every held frame that now follows on;
* ``chunk > next``: hold it. If more than ``window`` frames are held, the
  missing one is given up for lost: skip to the lowest held chunk (counting
  the gap in ``lost``) and deliver what follows on. A frame can therefore
  arrive up to ``window`` frames late and still be put back in place, and a
  frame that is really lost delays the audio by ``window`` frames once;
* ``chunk < next``: its slot has passed. Delivering it now would splice
  old audio into the stream, so it is dropped: counted as a duplicate if it
  was delivered before (remembered for the last 64 slots), else as late.

Numbering is expected to start at 1, as Twilio documents for the same
field, so a first frame that overtook frame 1 is held, not delivered. If a
stream numbered from elsewhere, the cost is one window of delay at its start.
Before anything has been delivered a lower chunk lowers ``next``, and a
skipped gap is not counted as lost: where numbering starts is not documented.
"""

from __future__ import annotations

from collections import deque

from ._events import Dtmf, Media

__all__ = ["DigitReorder", "ReorderBuffer"]

# Delivered slots remembered for duplicate detection, as bits of one int.
_MEMORY = 64
_MEMORY_MASK = (1 << _MEMORY) - 1


class ReorderBuffer:
    """Frames of one track, put back in ``chunk`` order."""

    __slots__ = ("_delivered", "_held", "_next", "_started", "duplicate", "late", "lost", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self._next = 1
        self._started = False  # has anything been delivered yet?
        self._held: dict[int, Media] = {}
        # Bit i set: chunk ``_next - 1 - i`` was delivered.
        self._delivered = 0
        self.late = 0
        self.duplicate = 0
        self.lost = 0

    def push(self, frame: Media) -> list[Media]:
        chunk = frame.chunk
        expected = self._next
        if chunk == expected and not self._held:  # in order: the common case
            self._next = expected + 1
            self._delivered = ((self._delivered << 1) | 1) & _MEMORY_MASK
            self._started = True
            return [frame]
        if chunk < expected:
            if not self._started:
                self._next = chunk
                return self.push(frame)
            age = expected - 1 - chunk
            if age < _MEMORY and (self._delivered >> age) & 1:
                self.duplicate += 1
            else:
                self.late += 1
            return []
        held = self._held
        if chunk in held:
            self.duplicate += 1
            return []
        held[chunk] = frame
        out = self._release()
        while len(held) > self.window:
            lowest = min(held)
            gap = lowest - self._next
            if self._started:
                self.lost += gap
            self._skip(gap)
            out += self._release()
        return out

    def drain(self) -> list[Media]:
        """Deliver every held frame in order, counting the gaps as lost."""
        out: list[Media] = []
        held = self._held
        while held:
            gap = min(held) - self._next
            if self._started:
                self.lost += gap
            self._skip(gap)
            out += self._release()
        return out

    def _skip(self, gap: int) -> None:
        self._next += gap
        self._delivered = (self._delivered << min(gap, _MEMORY)) & _MEMORY_MASK

    def _release(self) -> list[Media]:
        out: list[Media] = []
        held = self._held
        while self._next in held:
            out.append(held.pop(self._next))
            self._next += 1
            self._delivered = ((self._delivered << 1) | 1) & _MEMORY_MASK
            self._started = True
        return out


# Digits held at once: a caller presses a few keys a second, so more than
# this held means the numbering is not advancing and waiting is pointless.
_MAX_HELD_DIGITS = 16
# Recently delivered sequence numbers remembered to drop a repeated frame.
_DIGIT_MEMORY = 64


class DigitReorder:
    """Telnyx DTMF digits put back in ``sequence_number`` order.

    ``sequence_number`` counts every message of the stream, so gaps between
    two digits are normal and cannot tell a missing digit. Instead a digit
    is held until the stream has numbered ``window`` messages past it
    (:meth:`seen`), by which time any digit that overtook it has arrived,
    and held digits leave in ascending order. A digit numbered below the
    last one delivered came too late to be put back: it is still delivered
    (a lost key press is worse than a late one) and counted in ``late``; a
    number delivered before is a repeat and dropped (``duplicate``).
    """

    __slots__ = ("_delivered", "_held", "_last", "duplicate", "late", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self._held: dict[int, Dtmf] = {}
        self._last = -1
        self._delivered: deque[int] = deque(maxlen=_DIGIT_MEMORY)
        self.late = 0
        self.duplicate = 0

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def push(self, sequence: int, digit: Dtmf) -> list[Dtmf]:
        if sequence in self._held or sequence in self._delivered:
            self.duplicate += 1
            return []
        if sequence < self._last:
            self.late += 1
            self._delivered.append(sequence)
            return [digit]
        self._held[sequence] = digit
        out = self.seen(sequence)
        while len(self._held) > _MAX_HELD_DIGITS:
            out += self._pop(min(self._held))
        return out

    def seen(self, sequence: int) -> list[Dtmf]:
        """A message numbered ``sequence`` arrived: release what it is past."""
        out: list[Dtmf] = []
        held = self._held
        while held:
            lowest = min(held)
            if sequence - lowest < self.window:
                break
            out += self._pop(lowest)
        return out

    def drain(self) -> list[Dtmf]:
        out: list[Dtmf] = []
        while self._held:
            out += self._pop(min(self._held))
        return out

    def _pop(self, sequence: int) -> list[Dtmf]:
        self._last = sequence
        self._delivered.append(sequence)
        return [self._held.pop(sequence)]
