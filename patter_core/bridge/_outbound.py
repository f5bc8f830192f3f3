"""Agent audio on its way to the caller: converted, framed, marked, flushed, cut.

:class:`AgentAudio` turns each chunk of provider audio into the carrier's
format (a :class:`Transcoder` rebuilt if the session's output format
changes) and into 20 ms media messages of the stream object, followed by one
mark per chunk named ``"<seq>:<item id>:<end ms>"`` (:class:`Playback`): a
mark per chunk, not per frame (DESIGN.md, the hot path). At the end of an
answer the partial last frame and the resampler's tail are flushed and
marked, so that ``played_ms`` can reach ``sent_ms``. On a barge-in it gives
the ``clear`` message and, for every item with unplayed audio, how much of it
the caller heard; the resampler's tail then belongs to the cut audio and is
dropped. A local recording, when there is one, gets the audio exactly as the
carrier does, and hears of every ``clear``.
"""

from __future__ import annotations

from ..audio._format import AudioFormat
from ..recording._stereo import StereoRecorder
from ._config import MediaStream, TranscoderFactory, Transcoding
from ._playback import Playback

__all__ = ["AgentAudio"]


class AgentAudio:
    """The provider-to-caller direction of one call."""

    __slots__ = ("_converter", "_make", "_recorder", "_src", "_stream", "frames_out", "playback")

    def __init__(
        self,
        stream: MediaStream,
        make_transcoder: TranscoderFactory,
        *,
        recorder: StereoRecorder | None = None,
    ) -> None:
        self._stream = stream
        self._make = make_transcoder
        self._recorder = recorder
        #: Media messages sent to the carrier.
        self.frames_out = 0
        self._converter: Transcoding | None = None
        self._src: AudioFormat | None = None
        #: Which item's audio sits where on the carrier's playback clock.
        self.playback = Playback()

    @property
    def unplayed(self) -> bool:
        """Audio sent to the carrier that it has not played yet."""
        return self._stream.played_ms < self._stream.sent_ms

    def send(self, item: str | None, audio: bytes, src: AudioFormat) -> list[str] | None:
        """The media messages and the mark for one chunk; None when it is not
        played (audio of a cancelled answer, or no stream format yet)."""
        fmt = self._stream.send_format
        if fmt is None or not self.playback.accepts(item):
            return None
        converter = self._converter
        if converter is None or self._src != src:
            converter = self._converter = self._make(src, fmt)
            self._src = src
        return self._frames(item, converter.convert(audio))

    def response_done(self) -> list[str]:
        """The answer is complete: its last partial frame and tail, marked."""
        self.playback.response_done()
        if self._converter is None or not self.playback.has_current_audio():
            return []
        tail = self._converter.flush()
        frames = self._media(tail) if tail else []
        flushed = self._stream.flush_media()
        self.frames_out += len(flushed)
        frames += flushed
        if not frames:
            return []
        return frames + self._frames(self.playback.current, b"")

    def cut(self) -> tuple[str, list[tuple[str, int]]]:
        """Barge-in: the ``clear`` message, and ``(item, ms heard)`` per item cut."""
        played = int(self._stream.played_ms)  # before the clear moves the clock
        clear = self._stream.send_clear()
        if self._recorder is not None:
            self._recorder.cleared()
        cut = self.playback.interrupt(played)
        if self._converter is not None:
            self._converter.flush()  # the resampler's tail belongs to the cut audio
        return clear, cut

    def _frames(self, item: str | None, audio: bytes) -> list[str]:
        stream = self._stream
        start = int(stream.sent_ms)
        frames = self._media(audio)
        name = self.playback.chunk_sent(item, start, int(stream.sent_ms))
        frames.append(stream.send_mark(name))
        return frames

    def _media(self, audio: bytes) -> list[str]:
        fmt = self._stream.send_format
        if self._recorder is not None and fmt is not None and audio:
            self._recorder.agent(audio, fmt)
        frames = self._stream.send_media(audio)
        self.frames_out += len(frames)
        return frames
