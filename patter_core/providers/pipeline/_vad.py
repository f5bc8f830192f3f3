"""A small energy voice-activity detector: decides when a caller's utterance ends.

Used with the HTTP transcription path, where nobody else tells us that the
caller stopped talking. It looks at 20 ms frames of 16 kHz PCM16 and compares
each frame's RMS level with two thresholds (hysteresis): speech starts after
``start_ms`` of frames above ``start_rms``, and ends after ``end_silence_ms``
of frames below ``end_rms``. The utterance handed back includes ``preroll_ms``
of audio before the start, so the first syllable is not clipped.

The defaults suit telephone audio decoded from G.711: line noise sits around
RMS 20-100 (about -60 to -50 dBFS); speech is typically 1000-5000.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EnergyVad", "VadConfig", "VadSpeechEnded", "VadSpeechStarted"]

_FRAME_BYTES = 640  # 20 ms of 16 kHz 16-bit mono


@dataclass(frozen=True, slots=True, kw_only=True)
class VadConfig:
    # RMS 500 is about -36 dBFS: clearly above line noise, below quiet speech.
    start_rms: float = 500.0
    # Lower end threshold (hysteresis) so trailing soft syllables stay inside.
    end_rms: float = 300.0
    # 60 ms of loud frames: a click or a pop is shorter than that.
    start_ms: int = 60
    # 700 ms of quiet: longer than the pause between words, short enough for a turn.
    end_silence_ms: int = 700
    preroll_ms: int = 200
    # A 30 s monologue is cut and transcribed anyway; it bounds memory (960 KB).
    max_utterance_ms: int = 30000


@dataclass(frozen=True, slots=True, kw_only=True)
class VadSpeechStarted:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class VadSpeechEnded:
    audio: bytes  # PCM16 16 kHz, the whole utterance including the pre-roll


class EnergyVad:
    def __init__(self, config: VadConfig | None = None) -> None:
        self._config = config or VadConfig()
        self._pending = b""  # bytes short of a full frame
        self._preroll: list[bytes] = []
        self._speech: list[bytes] = []
        self._in_speech = False
        self._loud_frames = 0
        self._quiet_frames = 0

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def feed(self, pcm: bytes) -> list[VadSpeechStarted | VadSpeechEnded]:
        cfg = self._config
        data = self._pending + pcm
        usable = len(data) - len(data) % _FRAME_BYTES
        self._pending = data[usable:]
        out: list[VadSpeechStarted | VadSpeechEnded] = []
        if not usable:
            return out
        samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float64)
        levels = np.sqrt(np.mean(samples.reshape(-1, _FRAME_BYTES // 2) ** 2, axis=1))
        start_frames = max(1, cfg.start_ms // 20)
        end_frames = max(1, cfg.end_silence_ms // 20)
        preroll_frames = cfg.preroll_ms // 20
        max_frames = max(1, cfg.max_utterance_ms // 20)
        for index, level in enumerate(levels.tolist()):
            frame = data[index * _FRAME_BYTES : (index + 1) * _FRAME_BYTES]
            if not self._in_speech:
                self._preroll.append(frame)
                self._loud_frames = self._loud_frames + 1 if level >= cfg.start_rms else 0
                if self._loud_frames >= start_frames:
                    self._in_speech = True
                    self._quiet_frames = 0
                    keep = preroll_frames + start_frames
                    self._speech = self._preroll[-keep:]
                    self._preroll = []
                    out.append(VadSpeechStarted())
                else:
                    del self._preroll[: max(0, len(self._preroll) - preroll_frames - start_frames)]
                continue
            self._speech.append(frame)
            self._quiet_frames = self._quiet_frames + 1 if level < cfg.end_rms else 0
            if self._quiet_frames >= end_frames or len(self._speech) >= max_frames:
                out.append(VadSpeechEnded(audio=b"".join(self._speech)))
                self._speech = []
                self._in_speech = False
                self._loud_frames = 0
        return out
