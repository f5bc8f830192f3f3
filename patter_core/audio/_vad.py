"""The energy voice-activity detector: where a caller's utterance starts and ends.

Theory of operation
-------------------

One rule serves every part that must find the caller's turns by itself: the
echo agent (turn taking and barge-in) and the pipeline's HTTP transcription
path (nobody else says when the caller stopped). It reads the canonical bus,
16 kHz PCM16, in 20 ms frames, and compares each frame's RMS level with two
thresholds:

* **Onset**: ``start_ms`` of *consecutive* frames at or above ``start_rms``
  start an utterance (:class:`VadSpeechStarted`). Consecutive, not added up:
  a click, a pop or a line's crackle is shorter than that however often it
  comes, while the first syllable of a word is voiced for longer.
* **Offset (hangover)**: once speaking, ``end_silence_ms`` of consecutive
  frames below ``end_rms`` end it (:class:`VadSpeechEnded`). ``end_rms`` is
  lower than ``start_rms`` (hysteresis), so a soft trailing syllable does not
  start the hangover, and the hangover is longer than the pause between words.
* **The utterance** handed back is ``preroll_ms`` of audio before the onset
  run (the first consonant is quieter than the threshold), the onset run, and
  everything up to the last frame at or above ``end_rms``. The hangover's
  quiet is left out: an echo should not repeat it, and a transcriber has
  nothing to hear in it (Whisper-style models are known to invent words in
  silence).
* ``max_utterance_ms`` cuts a monologue: at the cap the utterance ends as if
  the caller had paused, which bounds memory, and detection starts afresh.

Levels are in PCM16 units (full scale 32767). Telephone audio decoded from
G.711 has line noise around RMS 20-100 (about -60 to -50 dBFS) and speech at
roughly 1000-5000 (about -30 to -16 dBFS).

A frame is the unit: the events of a stream do not depend on how its bytes
were split into calls to :meth:`EnergyVad.feed` (a short tail waits for the
next call).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .._errors import LocalProtocolError

__all__ = [
    "FRAME_BYTES",
    "EnergyVad",
    "VadConfig",
    "VadEvent",
    "VadSpeechEnded",
    "VadSpeechStarted",
]

FRAME_MS = 20
FRAME_BYTES = 16000 * FRAME_MS // 1000 * 2  # 640: 20 ms of 16 kHz 16-bit mono


@dataclass(frozen=True, slots=True, kw_only=True)
class VadConfig:
    """Thresholds of :class:`EnergyVad` (durations are rounded down to 20 ms frames)."""

    # RMS 500 is about -36 dBFS: clearly above line and comfort noise, below
    # quiet speech.
    start_rms: float = 500.0
    # 60% of the onset level (about -40 dBFS): the hysteresis that keeps soft
    # trailing syllables inside the utterance.
    end_rms: float = 300.0
    # 60 ms of loud frames: a click or a pop is shorter than that.
    start_ms: int = 60
    # 700 ms of quiet: longer than the pause between words, short enough for a turn.
    end_silence_ms: int = 700
    # 200 ms before the onset: the quiet start of the first word.
    preroll_ms: int = 200
    # A 30 s monologue is cut and handed on anyway; it bounds memory (960 KB).
    max_utterance_ms: int = 30_000

    def __post_init__(self) -> None:
        if not 0 < self.end_rms <= self.start_rms:
            raise LocalProtocolError("VAD levels need 0 < end_rms <= start_rms")
        if self.preroll_ms < 0:
            raise LocalProtocolError("preroll_ms must not be negative")
        for name in ("start_ms", "end_silence_ms", "max_utterance_ms"):
            if getattr(self, name) < FRAME_MS:
                raise LocalProtocolError(f"{name} must be at least {FRAME_MS} ms")


@dataclass(frozen=True, slots=True, kw_only=True)
class VadSpeechStarted:
    """The onset run is complete: the caller is speaking."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VadSpeechEnded:
    """The hangover passed (or the cap was reached)."""

    audio: bytes  # PCM16 16 kHz: pre-roll, onset run, speech to its last voiced frame


VadEvent = VadSpeechStarted | VadSpeechEnded


class EnergyVad:
    """Finds utterances in a stream of 16 kHz PCM16 (see the module doc)."""

    def __init__(self, config: VadConfig | None = None) -> None:
        cfg = config if config is not None else VadConfig()
        self._start_rms = cfg.start_rms
        self._end_rms = cfg.end_rms
        self._start_frames = cfg.start_ms // FRAME_MS
        self._end_frames = cfg.end_silence_ms // FRAME_MS
        self._max_frames = cfg.max_utterance_ms // FRAME_MS
        # Before the onset: the pre-roll and the loud run so far, no more.
        self._before: deque[bytes] = deque(maxlen=cfg.preroll_ms // FRAME_MS + self._start_frames)
        self._pending = b""  # less than one frame, waiting for the next feed
        self._speech: list[bytes] = []
        self._in_speech = False
        self._loud = 0  # consecutive frames at or above start_rms, before the onset
        self._quiet = 0  # consecutive frames below end_rms, after it

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def reset(self) -> None:
        """Forget the utterance being collected (the frame alignment stays)."""
        self._before.clear()
        self._speech = []
        self._in_speech = False
        self._loud = 0
        self._quiet = 0

    def feed(self, pcm: bytes) -> list[VadEvent]:
        data = self._pending + pcm
        usable = len(data) - len(data) % FRAME_BYTES
        self._pending = data[usable:]
        if not usable:
            return []
        samples = np.frombuffer(data, dtype="<i2", count=usable // 2).astype(np.float64)
        levels = np.sqrt(np.mean(samples.reshape(-1, FRAME_BYTES // 2) ** 2, axis=1))
        out: list[VadEvent] = []
        for index, level in enumerate(levels.tolist()):
            event = self._frame(data[index * FRAME_BYTES : (index + 1) * FRAME_BYTES], level)
            if event is not None:
                out.append(event)
        return out

    def _frame(self, frame: bytes, level: float) -> VadEvent | None:
        if not self._in_speech:
            self._before.append(frame)
            self._loud = self._loud + 1 if level >= self._start_rms else 0
            if self._loud < self._start_frames:
                return None
            self._speech = list(self._before)
            self._before.clear()
            self._in_speech = True
            self._quiet = 0
            return VadSpeechStarted()
        self._speech.append(frame)
        self._quiet = self._quiet + 1 if level < self._end_rms else 0
        if self._quiet < self._end_frames and len(self._speech) < self._max_frames:
            return None
        audio = b"".join(self._speech[: len(self._speech) - self._quiet])
        self.reset()
        return VadSpeechEnded(audio=audio)
