"""A call as the caller heard it: caller on the left, agent on the right.

Theory of operation. The clock is the caller's own audio: carriers send it
continuously (silence included) in real time, so the number of caller
samples received so far says where "now" is on the recording's timeline,
without reading any clock. Caller audio is appended to the left channel as
it arrives.

Agent audio is not placed when it is sent: a provider often sends an answer
faster than real time, and the carrier plays it out over the following
seconds. It waits in a queue, tagged with the timeline position it was sent
at, and is placed when the carrier says it was played:

* a mark echo (the bridge passes the stream's ``played_ms``) confirms audio
  up to that point: it ended playing *now*, so it is placed to end at the
  current position (never before it was sent, never over audio placed
  earlier);
* a ``clear`` cuts the answer: the audio the carrier had started playing
  (from the end of the last placed audio, or from when it was sent if
  later) is placed up to *now*, and the rest is dropped -- the caller never
  heard it;
* at the end, what is still queued is placed where it would have played.

The recorder holds only what is not yet taken: :meth:`StereoRecorder.take`
returns the interleaved 16-bit stereo PCM that can no longer change, for
the runtime to write away from the call's hot path. Past ``max_buffer_ms``
of untaken audio (a stalled disk), the oldest is dropped and counted.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..audio._format import AudioFormat, Encoding
from ..audio._g711 import alaw_decode_array, pcm16_view, ulaw_decode_array

__all__ = ["StereoRecorder"]

#: Untaken audio held at most (ms): the runtime takes it every second or so;
#: a minute covers a disk that stalls for that long.
DEFAULT_MAX_BUFFER_MS = 60_000

_Samples = npt.NDArray[np.int16]


def _decode(data: bytes, fmt: AudioFormat) -> _Samples:
    if fmt.encoding is Encoding.ULAW:
        return ulaw_decode_array(np.frombuffer(data, dtype=np.uint8))
    if fmt.encoding is Encoding.ALAW:
        return alaw_decode_array(np.frombuffer(data, dtype=np.uint8))
    if fmt.encoding is Encoding.PCM16BE:
        return pcm16_view(data[: len(data) // 2 * 2], np.dtype(">i2")).astype(np.int16)
    return pcm16_view(data[: len(data) // 2 * 2]).astype(np.int16)


class StereoRecorder:
    __slots__ = (
        "_base",
        "_caller",
        "_max_buffer",
        "_max_buffer_ms",
        "_pending",
        "_placed_end",
        "_played_ms",
        "_right",
        "dropped_samples",
        "rate",
        "stopped",
    )

    def __init__(self, *, max_buffer_ms: int = DEFAULT_MAX_BUFFER_MS) -> None:
        #: The recording's sample rate: the carrier's, fixed by its first audio.
        self.rate: int | None = None
        self._max_buffer_ms = max_buffer_ms
        self._max_buffer = 0
        # Timeline position of sample 0 of the buffers below (taken before it).
        self._base = 0
        self._caller = np.zeros(0, dtype=np.int16)  # left, from _base
        self._right = np.zeros(0, dtype=np.int16)  # right, from _base
        # Agent audio sent, not yet placed: (position sent at, samples).
        self._pending: list[tuple[int, _Samples]] = []
        self._placed_end = 0  # timeline end of the agent audio placed so far
        self._played_ms = 0.0
        #: Samples dropped because the runtime did not take them in time.
        self.dropped_samples = 0
        #: Set when the runtime gave up writing: nothing more is kept.
        self.stopped = False

    # -- input -----------------------------------------------------------------

    @property
    def now(self) -> int:
        """The timeline position of "now": caller samples received."""
        return self._base + len(self._caller)

    def caller(self, payload: bytes, fmt: AudioFormat) -> None:
        if self.stopped or not self._rate_ok(fmt):
            return
        self._caller = np.concatenate((self._caller, _decode(payload, fmt)))
        self._bound()

    def agent(self, audio: bytes, fmt: AudioFormat) -> None:
        """Agent audio sent to the carrier (queued until played)."""
        if self.stopped or not audio or not self._rate_ok(fmt):
            return
        self._pending.append((self.now, _decode(audio, fmt)))

    def played(self, played_ms: float) -> None:
        """A mark echo: the carrier has played ``played_ms`` of what it was sent."""
        if self.rate is None or played_ms <= self._played_ms:
            return
        count = int(played_ms * self.rate / 1000) - int(self._played_ms * self.rate / 1000)
        self._played_ms = played_ms
        chunks = self._pop(count)
        total = sum(len(c) for _, c in chunks)
        if total:
            sent = chunks[0][0]
            self._place(max(self.now - total, sent, self._placed_end), chunks)

    def cleared(self) -> None:
        """A ``clear``: what was playing is cut here, the rest never played."""
        if self._pending:
            start = max(self._pending[0][0], self._placed_end)
            heard = max(0, self.now - start)
            self._place(start, self._pop(heard))
        self._pending = []
        # The stream counts played and sent audio from here without the cut.

    def finish(self) -> bytes:
        """The call ended: place what is still queued where it would play; the rest."""
        while self._pending:
            sent, samples = self._pending.pop(0)
            self._place(max(sent, self._placed_end), [(sent, samples)])
        end = max(self.now, self._placed_end)
        return self._take(end)

    def take(self) -> bytes:
        """Stereo PCM (16-bit little-endian, left first) that can no longer change."""
        limit = self.now
        if self._pending:
            limit = min(limit, max(self._pending[0][0], self._placed_end))
        return self._take(limit)

    # -- internals ---------------------------------------------------------------

    def _rate_ok(self, fmt: AudioFormat) -> bool:
        if self.rate is None:
            self.rate = fmt.sample_rate
            self._max_buffer = self._max_buffer_ms * fmt.sample_rate // 1000
        # A leg whose two directions differ in rate is not recorded on that side.
        return fmt.sample_rate == self.rate

    def _pop(self, count: int) -> list[tuple[int, _Samples]]:
        out: list[tuple[int, _Samples]] = []
        while count > 0 and self._pending:
            sent, samples = self._pending[0]
            if len(samples) <= count:
                out.append(self._pending.pop(0))
                count -= len(samples)
            else:
                out.append((sent, samples[:count]))
                self._pending[0] = (sent, samples[count:])
                count = 0
        return out

    def _place(self, start: int, chunks: list[tuple[int, _Samples]]) -> None:
        if not chunks:
            return
        audio = np.concatenate([samples for _, samples in chunks])
        end = start + len(audio)
        offset = start - self._base
        if offset < 0:  # already taken (only after a drop): keep what is left
            audio = audio[-offset:]
            offset = 0
        need = offset + len(audio)
        if len(self._right) < need:
            self._right = np.concatenate(
                (self._right, np.zeros(need - len(self._right), dtype=np.int16))
            )
        self._right[offset:need] = audio
        self._placed_end = max(self._placed_end, end)
        self._bound()

    def _take(self, limit: int) -> bytes:
        count = limit - self._base
        if count <= 0:
            return b""
        left = _fit(self._caller, count)
        right = _fit(self._right, count)
        self._caller = self._caller[count:]
        self._right = self._right[count:]
        self._base = limit
        out = np.empty(count * 2, dtype="<i2")
        out[0::2] = left
        out[1::2] = right
        return out.tobytes()

    def _bound(self) -> None:
        # Measured on the caller's side: dropping never moves "now".
        excess = len(self._caller) - self._max_buffer
        if self._max_buffer and excess > 0:
            self.dropped_samples += excess
            self._caller = self._caller[excess:]
            self._right = self._right[excess:]
            self._base += excess


def _fit(samples: _Samples, count: int) -> _Samples:
    if len(samples) >= count:
        return samples[:count]
    return np.concatenate((samples, np.zeros(count - len(samples), dtype=np.int16)))
