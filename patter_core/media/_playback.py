"""The carrier's playback of the agent's audio: when it plays, when marks come back.

:class:`CarrierPlayback` is what a carrier does with the audio an agent
sends on a bidirectional stream: it queues it and plays it out in real
time, so a ``mark`` comes back only when the audio sent before it has
played, and a ``clear`` throws away what is still queued and returns every
pending mark at once (PROTOCOLS.md section 3: "echo of a mark you sent,
once the audio before it has played -- or immediately when a clear flushes
it"). It is pure: every call takes ``now``, seconds on the caller's own
playback clock (since the stream started, or a test's frozen or sped-up
clock), so runtimes drive it from a clock and tests from plain numbers.

Theory of operation. Audio is μ-law 8 kHz, one byte a sample, the clock
counts samples. ``play_end`` is the moment the queued audio runs out.
Audio arriving while something is queued plays right after it; audio
arriving to an empty queue starts a new talk spurt ``jitter_buffer``
seconds later, as a real jitter buffer would, so frames that arrive with
less jitter than that still play back to back. A chunk that arrives after
the queue ran dry, less than ``spurt_gap`` after it did, is a late frame in
the middle of speech: how late it was is kept in ``late_ms``.

Positions: ``received`` counts the bytes queued, less those a ``clear``
dropped unheard, so it is the agent's "sent" position; :meth:`played`
says how much of it has played by ``now``. With ``record`` the heard audio
is also written into a PCM16 timeline at the moment it plays
(:meth:`heard`), silence where nothing played, a ``clear`` cutting it at
``now``; and the arrival figures ``gaps_ms`` and ``late_ms`` are kept.
Without it (a load generator), each chunk costs a few integer operations.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import numpy.typing as npt

from ..audio._g711 import ulaw_decode

__all__ = ["CarrierPlayback"]

RATE = 8000  # μ-law 8 kHz: one byte, one sample
# Audio the carrier holds for one stream; an agent streaming far ahead of
# real time is cut off here rather than growing memory without bound
# (10 minutes of PCM16 8 kHz is 9.6 MB).
DEFAULT_MAX_SECONDS = 600.0
# A talk spurt starts this long after its first audio arrives. 60 ms is a
# typical adaptive jitter-buffer depth for a well-behaved network path; the
# exact figure a carrier uses is not published.
DEFAULT_JITTER_BUFFER_S = 0.06
# A queue that ran dry for longer than this was a pause between utterances,
# not a late frame.
DEFAULT_SPURT_GAP_S = 0.5


class CarrierPlayback:
    """A carrier's playback queue for one stream; see the module docstring."""

    def __init__(
        self,
        *,
        jitter_buffer: float = DEFAULT_JITTER_BUFFER_S,
        spurt_gap: float = DEFAULT_SPURT_GAP_S,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        record: bool = True,
    ) -> None:
        self._jitter = jitter_buffer
        self._spurt_gap = spurt_gap
        self._max_samples = round(max_seconds * RATE)
        self._record = record
        self._timeline = np.zeros(0, dtype=np.int16)
        self._written = 0  # samples of the timeline in use
        self._end_sample = 0
        # Runs of queued audio not yet known to have played: (first sample
        # on the clock, position of its first byte, length). Contiguous
        # audio extends the last run, so there are few.
        self._runs: deque[list[int]] = deque()
        self._marks: deque[tuple[float, str]] = deque()
        self._last_arrival: float | None = None
        # The first audio, and the first after a clear, begins a talk spurt:
        # it cannot be late for a slot.
        self._new_spurt = True
        self.received = 0
        self.first_audio_at: float | None = None
        self.frames_received = 0
        self.bytes_received = 0
        self.dropped_samples = 0  # over the length limit, or cleared unheard
        self.gaps_ms: list[float] = []  # inter-arrival gaps of agent media
        self.late_ms: list[float] = []  # lateness against the playback slot

    # ----------------------------------------------------------------- audio
    def add_audio(self, ulaw: bytes, now: float) -> None:
        """Queue agent audio (μ-law 8 kHz) that arrived at ``now``."""
        self.frames_received += 1
        self.bytes_received += len(ulaw)
        record = self._record
        if self.first_audio_at is None:
            self.first_audio_at = now
        if record and self._last_arrival is not None:
            self.gaps_ms.append((now - self._last_arrival) * 1000.0)
        self._last_arrival = now
        end = self._end_sample
        if now < end / RATE:
            first = end  # queued right behind what is playing
            if record:
                self.late_ms.append(0.0)
        else:
            dry_for = now - end / RATE
            if record and not self._new_spurt and dry_for < self._spurt_gap:
                self.late_ms.append(dry_for * 1000.0)
            first = max(end, round((now + self._jitter) * RATE))
        self._new_spurt = False
        size = len(ulaw)
        room = self._max_samples - first
        if size > room:
            size = max(0, room)
            self.dropped_samples += len(ulaw) - size
            if not size:
                return
            ulaw = ulaw[:size]
        elif not size:
            return
        if record:
            self._write(first, np.frombuffer(ulaw_decode(ulaw), dtype="<i2"))
        runs = self._runs
        last = runs[-1] if runs else None
        if last is not None and last[0] + last[2] == first:
            last[2] += size
        else:
            runs.append([first, self.received, size])
        self.received += size
        # Whole samples throughout, so back-to-back chunks neither overlap
        # nor leave a one-sample hole to float rounding.
        self._end_sample = first + size

    @property
    def play_end(self) -> float:
        """When the queued audio runs out (seconds on the playback clock)."""
        return self._end_sample / RATE

    def _write(self, first: int, pcm: npt.NDArray[np.int16]) -> None:
        end = first + len(pcm)
        if end > len(self._timeline):
            grown = np.zeros(max(end, 2 * len(self._timeline), RATE), dtype=np.int16)
            grown[: self._written] = self._timeline[: self._written]
            self._timeline = grown
        if first > self._written:
            self._timeline[self._written : first] = 0
        self._timeline[first:end] = pcm
        self._written = max(self._written, end)

    def buffered_seconds(self, now: float) -> float:
        return max(0.0, self.play_end - now)

    def played(self, now: float) -> int:
        """Bytes of ``received`` that have played by ``now``."""
        sample = math.floor(now * RATE)
        runs = self._runs
        while runs and runs[0][0] + runs[0][2] <= sample:
            runs.popleft()
        if not runs:
            return self.received
        first, position, _ = runs[0]
        return position + max(0, sample - first)

    # ----------------------------------------------------------------- marks
    def add_mark(self, name: str, now: float) -> list[str]:
        """Queue a mark; returns it at once if nothing is left to play."""
        if self.play_end <= now and not self._marks:
            return [name]
        self._marks.append((max(self.play_end, now), name))
        return []

    def due_marks(self, now: float) -> list[str]:
        """Marks whose audio has finished playing by ``now``, in order."""
        out: list[str] = []
        while self._marks and self._marks[0][0] <= now:
            out.append(self._marks.popleft()[1])
        return out

    def next_deadline(self) -> float | None:
        """When the next pending mark falls due, or None."""
        return self._marks[0][0] if self._marks else None

    @property
    def pending_marks(self) -> int:
        return len(self._marks)

    def clear(self, now: float) -> list[str]:
        """Drop what is still queued; return every pending mark (Twilio's ``clear``)."""
        played = self.played(now)
        self.dropped_samples += self.received - played
        self.received = played
        self._runs.clear()
        cut = max(0, math.floor(now * RATE))  # what has played by now, whole samples
        if self._written > cut:
            self._timeline[cut : self._written] = 0
            self._written = cut
        self._end_sample = min(self._end_sample, cut)
        self._new_spurt = True
        marks = [name for _, name in self._marks]
        self._marks.clear()
        return marks

    # ---------------------------------------------------------------- result
    def heard(self, until: float) -> bytes:
        """PCM16 8 kHz of what played from 0 to ``until`` (silence elsewhere; needs ``record``)."""
        total = max(0, round(until * RATE))
        out = np.zeros(total, dtype="<i2")
        n = min(total, self._written)
        out[:n] = self._timeline[:n]
        return out.tobytes()
