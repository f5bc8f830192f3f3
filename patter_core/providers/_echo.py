"""The echo agent: a provider session with no network, for trying a line out.

Theory of operation
-------------------

:class:`EchoSession` speaks PCM16 little-endian at 16 kHz both ways (the
canonical bus) and repeats what the caller said once they pause. It opens no
socket and never asks for I/O (:meth:`io_to_send` is always empty): every
event comes back from the call that made it, ``start(now)`` with
:class:`SessionReady`, ``send`` with the turn's events.

Turn taking is the core's energy voice-activity detector
(:mod:`patter_core.audio._vad`, one rule for every part that needs one), with
the echo's own numbers:

* a frame starts speech when its RMS is at least ``speech_rms`` (default 500
  of 32767, about -36 dBFS: well above line noise and comfort noise, well
  below speech at telephone levels, which sits around -20 dBFS), and keeps it
  going while at least 60% of that (the detector's hysteresis);
* after ``min_speech_ms`` (200 ms) of such frames in a row the caller is
  speaking: :class:`UserSpeechStarted` (so barge-in against the echo works as
  against a real agent). Shorter bursts are clicks and are forgotten;
* after ``silence_ms`` (600 ms) of quiet frames the turn is over:
  :class:`UserSpeechStopped`, then the utterance, from its first voiced
  frame to its last (no pre-roll), as :class:`AudioOut` chunks of
  ``chunk_ms`` (200 ms, so the bridge's marks give a fine playback position)
  with item ids ``"echo-1"``, ``"echo-2"``, ..., then :class:`ResponseDone`;
* an utterance is cut at ``max_utterance_ms`` (30 s) so memory stays bounded.

``Say(text)`` has no text-to-speech behind it: it plays two short 440 Hz
beeps (item ids ``"echo-say-1"``, ...), so a first message tells the caller
the line is live. ``Cancel`` forgets the utterance being collected;
``SendText``, ``ToolResult``, ``Truncate`` and ``UpdateInstructions`` are
accepted and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._errors import LocalProtocolError
from ..audio._format import PCM16_16K, AudioFormat
from ..audio._vad import FRAME_MS, EnergyVad, VadConfig, VadSpeechStarted
from ._events import (
    AudioOut,
    Cancel,
    ProviderCommand,
    ProviderEvent,
    ResponseDone,
    Say,
    SendAudio,
    SessionReady,
    UserSpeechStarted,
    UserSpeechStopped,
)
from ._io import IoResult
from ._session import AudioThroughSend, IoAction

__all__ = ["EchoConfig", "EchoSession"]

_RATE = 16000
# Speech goes on while a frame is at least this share of the onset level:
# VadConfig's own default ratio (300 of 500).
_END_LEVEL = 0.6


@dataclass(frozen=True, slots=True, kw_only=True)
class EchoConfig:
    """Voice-activity thresholds of the echo agent (see the module doc)."""

    speech_rms: float = 500.0
    min_speech_ms: int = 200
    silence_ms: int = 600
    chunk_ms: int = 200
    max_utterance_ms: int = 30_000
    beep_hz: float = 440.0
    beep_ms: int = 150
    beep_gap_ms: int = 100
    beep_amplitude: int = 8000  # about -12 dBFS: clearly audible, never clipped

    def __post_init__(self) -> None:
        for name in ("min_speech_ms", "silence_ms", "chunk_ms", "max_utterance_ms"):
            value = getattr(self, name)
            if value < FRAME_MS or value % FRAME_MS:
                raise LocalProtocolError(f"{name} must be a positive multiple of 20 ms")
        if self.speech_rms <= 0 or not 0 < self.beep_amplitude <= 32767:
            raise LocalProtocolError("speech_rms and beep_amplitude must be positive")


class EchoSession(AudioThroughSend):
    """A :class:`~patter_core.providers.ProviderSession` that repeats the caller."""

    def __init__(self, config: EchoConfig | None = None) -> None:
        self._config = config if config is not None else EchoConfig()
        self._closed = False
        config = self._config
        self._vad = EnergyVad(
            VadConfig(
                start_rms=config.speech_rms,
                end_rms=config.speech_rms * _END_LEVEL,
                start_ms=config.min_speech_ms,
                end_silence_ms=config.silence_ms,
                preroll_ms=0,
                max_utterance_ms=config.max_utterance_ms,
            )
        )
        self._turns = 0
        self._says = 0

    @property
    def input_format(self) -> AudioFormat:
        return PCM16_16K

    @property
    def output_format(self) -> AudioFormat:
        return PCM16_16K

    def start(self, now: float) -> list[ProviderEvent]:
        return [] if self._closed else [SessionReady()]

    def send(self, command: ProviderCommand, now: float) -> list[ProviderEvent]:
        if self._closed:
            return []
        if isinstance(command, SendAudio):
            return self._listen(command.audio)
        if isinstance(command, Say):
            return self._beeps()
        if isinstance(command, Cancel):
            self._vad.reset()
        return []

    def close(self, now: float) -> None:
        self._closed = True

    def io_to_send(self) -> list[IoAction]:
        return []  # no sockets, ever

    def receive_io(self, result: IoResult, now: float) -> list[ProviderEvent]:
        return []  # it asks for no I/O, so none is reported

    def next_deadline(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> list[ProviderEvent]:
        return []

    # -- internals -------------------------------------------------------------

    def _listen(self, audio: bytes) -> list[ProviderEvent]:
        events: list[ProviderEvent] = []
        for event in self._vad.feed(audio):
            if isinstance(event, VadSpeechStarted):
                events.append(UserSpeechStarted(item_id=f"echo-{self._turns + 1}"))
                continue
            self._turns += 1
            item = f"echo-{self._turns}"
            events.append(UserSpeechStopped(item_id=item))
            events += _chunks(event.audio, item, self._config.chunk_ms)
            events.append(ResponseDone(item_id=item))
        return events

    def _beeps(self) -> list[ProviderEvent]:
        config = self._config
        self._says += 1
        item = f"echo-say-{self._says}"
        n = config.beep_ms * _RATE // 1000
        t = np.arange(n) / _RATE
        # A 5 ms raised-cosine ramp at each end: an abrupt start clicks.
        ramp = min(n // 2, 5 * _RATE // 1000)
        envelope = np.ones(n)
        if ramp:
            fade = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
            envelope[:ramp] = fade
            envelope[n - ramp :] = fade[::-1]
        tone = config.beep_amplitude * envelope * np.sin(2 * np.pi * config.beep_hz * t)
        beep = np.round(tone).astype("<i2").tobytes()
        gap = bytes(config.beep_gap_ms * _RATE // 1000 * 2)
        events: list[ProviderEvent] = [AudioOut(audio=beep + gap + beep, item_id=item)]
        events.append(ResponseDone(item_id=item))
        return events


def _chunks(audio: bytes, item: str, chunk_ms: int) -> list[ProviderEvent]:
    size = chunk_ms * _RATE // 1000 * 2
    return [AudioOut(audio=audio[i : i + size], item_id=item) for i in range(0, len(audio), size)]
