"""Speech out: an answer's sentences to audio, for :class:`~._session.PipelineSession`.

Two ways, by configuration:

* HTTP (:class:`OpenAITtsConfig`, :class:`ElevenLabsTtsConfig`): each
  complete sentence starts its streamed POST on a fresh ``tts-<n>`` channel
  at once, up to ``max_parallel_tts`` in flight, so the first audio plays
  while the LLM still writes. The head sentence's audio goes out as it comes;
  later sentences' audio waits in their buffers (at most
  :data:`MAX_BUFFERED_TTS_BYTES` in all) until every sentence before them is
  done, so the caller hears them in order.
* The ElevenLabs stream-input WebSocket (:class:`ElevenLabsWsTtsConfig`): one
  socket per answer on a fresh ``ttsws-<n>`` channel, opened when the answer
  starts (its handshake hides behind the LLM's first token). Sentences go on
  it as they complete; audio comes back in order and is counted into
  sentences by its alignment; the end of the text sends ``{"text": ""}`` and
  the server's ``isFinal`` ends the answer. An unexpected close opens a new
  socket for the text whose audio never came, once in a row; a second close
  fails the answer with a ``ProviderError``.

When every sentence has played out, or the answer fails, the conversation
hears of it through the ``finish`` and ``cancel`` it gave at construction:
the answer's history and ``ResponseDone`` are the conversation's.
"""

from __future__ import annotations

from collections.abc import Callable

from ..._errors import RemoteProtocolError
from .._events import AnswerStage, AudioOut, ProviderError
from .._io import ChannelId
from .._session import CloseSocket
from ._answer import Answer, Sentence
from ._config import PipelineConfig
from ._outbox import PipelineOutbox
from ._tts import build_tts_request
from ._tts_ws import (
    ElevenLabsWsTtsConfig,
    SpeechSocket,
    TtsWsAudio,
    TtsWsError,
    TtsWsFinal,
    parse_tts_ws_message,
)

__all__ = ["MAX_BUFFERED_TTS_BYTES", "SpeechOut"]

# Audio of later sentences waiting for the one playing: 4 MiB is over a
# minute at 24 kHz, far beyond two sentences.
MAX_BUFFERED_TTS_BYTES = 4 << 20

Ending = Callable[[Answer, str], None]


class SpeechOut:
    """The answers' sentences in, their audio out, in order (module doc)."""

    def __init__(
        self, config: PipelineConfig, out: PipelineOutbox, *, finish: Ending, cancel: Ending
    ) -> None:
        self._tts = config.tts
        self._max_parallel = config.max_parallel_tts
        self._out = out
        self._finish = finish
        self._cancel = cancel
        self._buffered = 0  # bytes in later sentences' buffers
        self._ws = config.tts if isinstance(config.tts, ElevenLabsWsTtsConfig) else None
        self._speech: dict[str, SpeechSocket] = {}  # answer item id -> its socket state
        self._channels: dict[ChannelId, Answer] = {}  # live socket channel -> answer

    def begin(self, answer: Answer) -> None:
        """A new answer: with the stream-input socket, connect now."""
        if self._ws is not None:
            speech = self._speech[answer.item_id] = SpeechSocket(self._ws)
            self._out.io.append(speech.connect(self._new_channel(answer)))

    def pump(self, answer: Answer) -> None:
        """Start speech for the next sentences; finish the answer when done."""
        if answer.finished:
            return
        if self._ws is not None:
            self._pump_socket(answer)
            return
        tts = self._tts
        assert not isinstance(tts, ElevenLabsWsTtsConfig)
        limit = answer.head + self._max_parallel
        for sentence in answer.sentences[answer.head : limit]:
            if sentence.channel is None and not sentence.done:
                if sentence is answer.sentences[0]:
                    self._out.events.append(AnswerStage(stage="tts_request"))
                request = build_tts_request(tts, sentence.text)
                sentence.channel = self._out.start_http("tts", request, (answer, sentence))
        if answer.all_played_out():
            self._finish(answer, answer.status)

    def stop(self, answer: Answer) -> None:
        """The answer is cancelled: abort its requests, drop its waiting audio."""
        for sentence in answer.sentences:
            if sentence.channel is not None and sentence.channel in self._out.channels:
                self._out.abort(sentence.channel)
            self._buffered -= sum(len(pcm) for pcm in sentence.buffered)
            sentence.buffered = []

    def finished(self, answer: Answer) -> None:
        """The answer is over: its socket, if it has one, goes."""
        speech = self._speech.pop(answer.item_id, None)
        if speech is not None and speech.channel is not None:
            self._drop_channel(speech.channel)

    def close(self) -> None:
        for channel in list(self._channels):
            self._drop_channel(channel)

    # -- one HTTP request per sentence ------------------------------------------

    def data(self, answer: Answer, sentence: Sentence, data: bytes) -> None:
        pcm = sentence.aligner.push(data)
        if not pcm:
            return
        if answer.sentences[answer.head] is sentence:
            sentence.audio_bytes += len(pcm)
            self._out.events.append(AudioOut(audio=pcm, item_id=answer.item_id))
        elif self._buffered + len(pcm) <= MAX_BUFFERED_TTS_BYTES:
            self._buffered += len(pcm)
            sentence.buffered.append(pcm)

    def done(self, answer: Answer, sentence: Sentence) -> None:
        sentence.done = True
        while answer.head < len(answer.sentences) and answer.sentences[answer.head].done:
            answer.head += 1
            if answer.head < len(answer.sentences):
                nxt = answer.sentences[answer.head]
                for pcm in nxt.buffered:
                    self._buffered -= len(pcm)
                    nxt.audio_bytes += len(pcm)
                    self._out.events.append(AudioOut(audio=pcm, item_id=answer.item_id))
                nxt.buffered = []
        self.pump(answer)

    def failed(self, answer: Answer, sentence: Sentence, message: str) -> None:
        """The sentence's request failed: said, and skipped."""
        self._out.events.append(ProviderError(message=f"TTS: {message}", code="tts"))
        self.done(answer, sentence)

    # -- one stream-input socket per answer -------------------------------------

    def owns(self, channel: ChannelId) -> bool:
        return channel in self._channels

    def opened(self, channel: ChannelId) -> None:
        found = self._socket_of(channel)
        if found is not None:
            answer, speech = found
            self._out.io.append(speech.opened())
            self.pump(answer)

    def message(self, channel: ChannelId, data: str | bytes) -> None:
        found = self._socket_of(channel)
        if found is None:
            return
        answer, speech = found
        try:
            events = parse_tts_ws_message(data)
        except RemoteProtocolError as exc:
            self._out.events.append(ProviderError(message=f"TTS: {exc}", code="tts_protocol"))
            return
        for event in events:
            if isinstance(event, TtsWsAudio):
                pcm = speech.audio(answer.sentences, event)
                if pcm:
                    self._out.events.append(AudioOut(audio=pcm, item_id=answer.item_id))
            elif isinstance(event, TtsWsError):
                speech.last_error = event.message
                self._out.events.append(
                    ProviderError(message=f"TTS: {event.message}", code=event.code or "tts")
                )
            elif isinstance(event, TtsWsFinal) and speech.ended:
                for sentence in answer.sentences:
                    sentence.done = True
                answer.head = len(answer.sentences)
                self._finish(answer, answer.status)
                return

    def closed(self, channel: ChannelId, code: int, reason: str) -> None:
        found = self._socket_of(channel)
        self._channels.pop(channel, None)
        if found is None:
            return
        answer, speech = found
        if speech.lost(answer.sentences):
            self.pump(answer)  # a new socket if text waits for audio
            return
        detail = speech.last_error or reason or "no reason given"
        self._out.events.append(
            ProviderError(message=f"TTS: stream closed ({code}: {detail})", code="tts")
        )
        self._cancel(answer, "failed")

    def _pump_socket(self, answer: Answer) -> None:
        speech = self._speech.get(answer.item_id)
        if speech is None:
            return
        if not answer.source_open and (
            not answer.sentences
            or (speech.channel is None and speech.sent >= len(answer.sentences))
        ):
            # Nothing to say at all, or all of it voiced before a socket
            # closed: no isFinal will come, so finish here.
            self._finish(answer, answer.status)
            return
        sent = speech.sent
        self._out.io += speech.sync(
            answer.sentences,
            source_open=answer.source_open,
            new_channel=lambda: self._new_channel(answer),
        )
        if not sent and speech.sent:  # the answer's first text on its way to TTS
            self._out.events.append(AnswerStage(stage="tts_request"))

    def _new_channel(self, answer: Answer) -> ChannelId:
        channel = ChannelId(f"ttsws-{self._out.next_id()}")
        self._channels[channel] = answer
        return channel

    def _drop_channel(self, channel: ChannelId) -> None:
        if self._channels.pop(channel, None) is not None:
            self._out.io.append(CloseSocket(channel=channel))

    def _socket_of(self, channel: ChannelId) -> tuple[Answer, SpeechSocket] | None:
        answer = self._channels.get(channel)
        speech = self._speech.get(answer.item_id) if answer is not None else None
        if answer is None or speech is None or speech.channel != channel or answer.finished:
            return None
        return answer, speech
