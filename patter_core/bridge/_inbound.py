"""Caller audio on its way to the provider: held until the session is ready.

A provider session is not ready when the carrier's first frames arrive: a
real one takes 300 to 1,000 ms (TLS, the WebSocket handshake, the session
confirmation), and Twilio sends media right after ``start``. What the caller
says then ("Hello?") must reach the agent, so :class:`CallerAudio` keeps the
frames as they came, bounded by ``max_held_ms`` (the oldest dropped past it,
and counted), and converts and hands them over in order once the session is
ready. Conversion happens once per frame, when it is sent, to whatever format
the session takes at that moment: a session may learn its input format late
(ElevenLabs announces it in its first message), and no caller audio must go
out in a format it no longer takes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ..audio._format import AudioFormat
from ..providers._session import ProviderSession
from ..recording._stereo import StereoRecorder
from ._config import TranscoderFactory, Transcoding

if TYPE_CHECKING:  # _link imports _actions, which imports this module through _metrics
    from ._link import SessionLink

__all__ = ["CallerAudio"]


class CallerAudio:
    """The caller-to-provider direction of one call: hold, convert, count."""

    __slots__ = (
        "_converter",
        "_dst",
        "_held",
        "_held_ms",
        "_make",
        "_max_held_ms",
        "_recorder",
        "frames_dropped",
        "frames_held",
        "frames_in",
        "ms_sent",
    )

    def __init__(
        self,
        make_transcoder: TranscoderFactory,
        *,
        max_held_ms: int,
        recorder: StereoRecorder | None = None,
    ) -> None:
        self._make = make_transcoder
        self._recorder = recorder
        self._max_held_ms = max_held_ms
        self._held: deque[bytes] = deque()
        self._held_ms = 0.0
        self._converter: Transcoding | None = None
        self._dst: AudioFormat | None = None
        #: Frames received from the carrier after ``start``.
        self.frames_in = 0
        #: Frames held because the session was not ready yet.
        self.frames_held = 0
        #: Held frames dropped (oldest first) because the hold was full.
        self.frames_dropped = 0
        #: Milliseconds of caller audio sent to the session.
        self.ms_sent = 0.0

    def frame(self, payload: bytes, src: AudioFormat | None) -> bool:
        """Count a frame from the carrier; True when it has audio to pass on
        (then a local recording, if any, gets it)."""
        self.frames_in += 1
        if src is None or not payload:
            return False
        if self._recorder is not None:
            self._recorder.caller(payload, src)
        return True

    def hold(self, payload: bytes, src: AudioFormat) -> None:
        """Keep a frame until :meth:`release`; the oldest go past the bound."""
        self._held.append(payload)
        self._held_ms += src.ms_for_bytes(len(payload))
        self.frames_held += 1
        while self._held and self._held_ms > self._max_held_ms:
            oldest = self._held.popleft()
            self._held_ms -= src.ms_for_bytes(len(oldest))
            self.frames_dropped += 1

    def release(self) -> Iterator[bytes]:
        """The held frames, oldest first (the hold is empty afterwards)."""
        held, self._held = self._held, deque()
        self._held_ms = 0.0
        return iter(held)

    def send(
        self, payloads: Iterable[bytes], src: AudioFormat, link: SessionLink, now: float
    ) -> bool:
        """Convert and send through ``link``, in order; True when anything went."""
        session = link.session
        if session is None:
            return False
        sent = False
        for payload in payloads:
            audio = self.to_session(payload, src, session)
            if audio:
                link.audio(audio, now)
                sent = True
        return sent

    def to_session(self, payload: bytes, src: AudioFormat, session: ProviderSession) -> bytes:
        """``payload`` in the session's format, counted as sent unless empty."""
        audio = self.convert(payload, src, session.input_format)
        if audio:
            self.ms_sent += src.ms_for_bytes(len(payload))
        return audio

    def convert(self, payload: bytes, src: AudioFormat, dst: AudioFormat) -> bytes:
        """``payload`` in ``dst``; the converter is rebuilt when ``dst`` changes."""
        converter = self._converter
        if converter is None or (dst is not self._dst and dst != self._dst):
            converter = self._converter = self._make(src, dst)
            self._dst = dst
        return converter.convert(payload)
