"""Agent audio on its way to the caller: converted, framed, marked, flushed, cut.

:class:`AgentAudio` turns each chunk of provider audio into the carrier's
format (a :class:`Transcoder` rebuilt if the session's output format
changes) and into 20 ms media messages of the stream object, followed by a
mark named ``"<seq>:<item id>:<end ms>"`` (:class:`Playback`): a mark per
chunk, not per frame (DESIGN.md, the hot path), and no closer than
:data:`MARK_SPACING_MS` of audio to the one before. A provider that sends
20 ms deltas would otherwise double the carrier's traffic (a mark out and its
echo back per frame, a third of the messages the call handles); a mark
every 100 ms bounds how far ``played_ms`` trails the caller's ear, which is
what a barge-in's truncation is measured with. At the end of an answer the
partial last frame and the resampler's tail are flushed and the audio not
yet marked is marked, so that ``played_ms`` can reach ``sent_ms``. On a
barge-in it gives the ``clear`` message and, for every item with unplayed
audio, how much of it the caller heard; the resampler's tail then belongs to
the cut audio and is dropped. A local recording, when there is one, gets the
audio exactly as the carrier does, and hears of every ``clear``.
"""

from __future__ import annotations

from ..audio._format import AudioFormat
from ..recording._stereo import StereoRecorder
from ._config import MediaStream, TranscoderFactory, Transcoding
from ._playback import Playback

__all__ = ["MARK_SPACING_MS", "AgentAudio"]

#: Least audio (ms) between two marks within an answer; the answer's end is
#: always marked. Chunks at least this long get a mark each, as before.
MARK_SPACING_MS = 100


class AgentAudio:
    """The provider-to-caller direction of one call."""

    __slots__ = (
        "_converter",
        "_make",
        "_marked_ms",
        "_recorder",
        "_src",
        "_stream",
        "frames_out",
        "playback",
    )

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
        #: ``sent_ms`` at the last mark (the audio after it is not marked yet).
        self._marked_ms = -MARK_SPACING_MS

    @property
    def unplayed(self) -> bool:
        """Audio sent to the carrier that it has not played yet."""
        return self._stream.played_ms < self._stream.sent_ms

    def mark_echoed(self) -> None:
        """A mark came back: a local recording, if any, learns what has played."""
        if self._recorder is not None:
            self._recorder.played(self._stream.played_ms)

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
        if not frames and int(self._stream.sent_ms) <= self._marked_ms:
            return []  # every frame sent is marked already
        return frames + self._frames(self.playback.current, b"")

    def cut(self) -> tuple[str, list[tuple[str, int]]]:
        """Barge-in: the ``clear`` message, and ``(item, ms heard)`` per item cut."""
        played = int(self._stream.played_ms)  # before the clear moves the clock
        clear = self._stream.send_clear()
        if self._recorder is not None:
            self._recorder.cleared()
        cut = self.playback.interrupt(played)
        self._marked_ms = int(self._stream.sent_ms)  # the clear took the clock back to played
        if self._converter is not None:
            self._converter.flush()  # the resampler's tail belongs to the cut audio
        return clear, cut

    def _frames(self, item: str | None, audio: bytes) -> list[str]:
        """Media for ``audio`` and, when due, a mark; empty ``audio``: the
        answer's end, always marked."""
        stream = self._stream
        start = int(stream.sent_ms)
        frames = self._media(audio)
        end = int(stream.sent_ms)
        self.playback.chunk_sent(item, start, end)
        if audio and end - self._marked_ms < MARK_SPACING_MS:
            return frames
        self._marked_ms = end
        frames.append(stream.send_mark(self.playback.mark_name(item, end)))
        return frames

    def _media(self, audio: bytes) -> list[str]:
        fmt = self._stream.send_format
        if self._recorder is not None and fmt is not None and audio:
            self._recorder.agent(audio, fmt)
        frames = self._stream.send_media(audio)
        self.frames_out += len(frames)
        return frames
