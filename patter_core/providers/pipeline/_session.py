"""PipelineSession: speech-to-text -> on_message handler or LLM -> text-to-speech, pure.

Theory of operation
-------------------

Channels (named I/O the runtime performs for us):

=============  =========================================================
``stt``        Deepgram live WebSocket (binary audio in, JSON results out)
``stt-<n>``    one OpenAI transcription POST per utterance (energy VAD)
``llm-<n>``    one streamed chat-completions POST per LLM round
``tts-<n>``    one streamed text-to-speech POST per sentence
``ttsws-<n>``  ElevenLabs stream-input WebSocket, one per answer (below)
=============  =========================================================

A ``CloseSocket`` on an HTTP channel means "abort that request"; data that
still arrives on a channel we gave up is ignored, and every request gets a
fresh channel name, so late bytes can never be taken for a newer answer's.

A turn: a final transcript (Deepgram ``speech_final`` or ``UtteranceEnd``, or
the VAD's end plus a transcription) emits ``Transcript(user)`` and either a
``CallHandler`` (handler mode) or an LLM request. Streamed text goes through
the :class:`SentenceSplitter`; each complete sentence starts its TTS request
at once (up to ``max_parallel_tts`` in flight), so the first audio plays
while the LLM is still writing. Audio goes out in sentence order as
``AudioOut(item_id=answer)``; when the last sentence is done and the source
is closed: ``Transcript(assistant)`` then ``ResponseDone``. With
:class:`ElevenLabsWsTtsConfig`: one WebSocket per answer (:mod:`._tts_ws_session`).

Barge-in: Deepgram ``SpeechStarted``, an interim result with text, or the VAD
start emit ``UserSpeechStarted``. The bridge answers with ``Cancel`` (abort
the LLM and the TTS requests, drop queued text) and ``Truncate(item_id,
played_ms)``, which rewrites the answer's assistant messages in the history to
the words the caller heard (see :func:`heard_text`).

Every call returns the events it made (``start`` and ``send`` too).
``AnswerStage``: ``stt_final``,
``llm_first_token``, ``tts_request``; ``ResponseDone.usage``: ``tts_characters``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from ..._entropy import Entropy
from ..._errors import RemoteProtocolError
from ...audio._format import PCM16_16K, AudioFormat
from .. import _io
from .._events import (
    AnswerStage,
    AudioOut,
    Cancel,
    ProviderCommand,
    ProviderError,
    ProviderEvent,
    ResponseDone,
    Say,
    SendAudio,
    SendText,
    SessionReady,
    ToolCall,
    ToolResult,
    Transcript,
    Truncate,
    UpdateInstructions,
    UserSpeechStarted,
    UserSpeechStopped,
)
from .._session import CallHandler, CloseSocket, IoAction, OpenSocket, SendMessage, StartHttp
from ._answer import Answer, Sentence, heard_text
from ._config import OpenAISttConfig, PipelineConfig
from ._deepgram import (
    CLOSE_STREAM,
    KEEP_ALIVE,
    DeepgramConfig,
    DeepgramError,
    DeepgramResult,
    DeepgramSpeechStarted,
    DeepgramUtteranceEnd,
    UtteranceAssembler,
    deepgram_headers,
    deepgram_url,
    parse_deepgram_message,
)
from ._llm import ChatFinished, ChatStreamReader, TextDelta, build_chat_request
from ._openai_stt import build_transcription_request, parse_transcription
from ._tts import build_tts_request
from ._tts_ws import ElevenLabsWsTtsConfig, SpeechSocket
from ._tts_ws_session import SpeechSocketsMixin
from ._vad import EnergyVad, VadSpeechStarted

__all__ = ["PipelineSession"]

# Audio that arrives before the Deepgram socket is open is held, up to 2 s
# (64 KB): enough for a slow TLS handshake, bounded if it never opens.
MAX_EARLY_AUDIO_BYTES = 2 * PCM16_16K.bytes_per_second
# Error bodies are read for the message only; 4 KiB holds any JSON error.
MAX_ERROR_BODY_BYTES = 4096
# A transcription answer is a short JSON object.
MAX_TRANSCRIPTION_BYTES = 64 * 1024
# Audio of later sentences waiting for the one playing: 4 MiB is over a
# minute at 24 kHz, far beyond two sentences.
MAX_BUFFERED_TTS_BYTES = 4 << 20
# Recent answers kept for a late Truncate.
RECENT_ANSWERS = 8
# Tool calls of cancelled answers, remembered so their late results are
# dropped quietly rather than reported as unknown.
RECENT_CALL_IDS = 64
_TRANSCRIPTION = "transcription"  # owner tag of an stt-<n> channel
# Says queued behind an answer in progress (first message, voicemail drop).
MAX_QUEUED_SAYS = 8


class PipelineSession(SpeechSocketsMixin):
    """Implements :class:`~patter_core.providers.ProviderSession`."""

    def __init__(self, config: PipelineConfig, *, entropy: Entropy) -> None:
        self._config = config
        self._entropy = entropy
        self._output_format = config.tts.output_format
        self._bytes_per_ms = self._output_format.bytes_per_second / 1000.0
        self._instructions = config.system_prompt
        self._events: list[ProviderEvent] = []
        self._io: list[IoAction] = []
        self._closed = False
        self._counter = 0
        self._channels: dict[str, Any] = {}  # live HTTP channel -> owner
        self._http_status: dict[str, int] = {}
        self._http_body: dict[str, bytearray] = {}
        self._history: list[dict[str, Any]] = []
        self._answer: Answer | None = None
        self._recent: deque[Answer] = deque(maxlen=RECENT_ANSWERS)
        self._says: deque[str] = deque()
        self._handler_request: int | None = None
        self._tool_owner: dict[str, Answer] = {}
        self._dropped_calls: deque[str] = deque(maxlen=RECENT_CALL_IDS)
        self._buffered_tts = 0
        # speech to text
        self._user_speaking = False
        self._stt_open = False
        self._early_audio = bytearray()
        self._last_stt_send = 0.0
        self._utterance = UtteranceAssembler()
        self._vad = EnergyVad(config.stt.vad) if isinstance(config.stt, OpenAISttConfig) else None
        self._deepgram = config.stt if isinstance(config.stt, DeepgramConfig) else None
        # text to speech over a WebSocket: answer item id -> its socket state,
        # live channel -> answer
        self._ws_tts = config.tts if isinstance(config.tts, ElevenLabsWsTtsConfig) else None
        self._speech: dict[str, SpeechSocket] = {}
        self._speech_channels: dict[str, Answer] = {}

    # -- ProviderSession ------------------------------------------------------

    @property
    def input_format(self) -> AudioFormat:
        return PCM16_16K

    @property
    def output_format(self) -> AudioFormat:
        return self._output_format

    @property
    def history(self) -> list[dict[str, Any]]:
        """The conversation as chat-completions messages (without the system prompt)."""
        return self._history

    def start(self, now: float) -> list[ProviderEvent]:
        stt = self._config.stt
        if isinstance(stt, DeepgramConfig):
            self._io.append(
                OpenSocket(channel="stt", url=deepgram_url(stt), headers=deepgram_headers(stt))
            )
        else:
            self._events.append(SessionReady())  # nothing to connect before the first turn
        if self._config.first_message:
            self._say(self._config.first_message)
        return self._take()

    def send(self, command: ProviderCommand, now: float) -> list[ProviderEvent]:
        if self._closed:
            return []
        if isinstance(command, SendAudio):
            self._send_audio(command.audio, now)
        elif isinstance(command, Cancel):
            self._says.clear()
            self._handler_request = None
            if self._answer is not None:
                self._cancel(self._answer)
        elif isinstance(command, Truncate):
            self._truncate(command.item_id, command.played_ms)
        elif isinstance(command, ToolResult):
            self._tool_result(command.call_id, command.output)
        elif isinstance(command, Say):
            self._say(command.text)
        elif isinstance(command, SendText):
            self._user_turn(command.text, spoken=False)
        elif isinstance(command, UpdateInstructions):
            self._instructions = command.instructions
        return self._take()

    def close(self, now: float) -> None:
        if self._closed:
            return
        self._closed = True
        if self._stt_open:
            self._io.append(SendMessage(channel="stt", data=CLOSE_STREAM))
            self._io.append(CloseSocket(channel="stt"))
            self._stt_open = False
        for channel in list(self._channels):
            self._abort(channel)
        for channel in list(self._speech_channels):
            self._drop_speech_channel(channel)

    def io_to_send(self) -> list[IoAction]:
        io, self._io = self._io, []
        return io

    def receive_io(self, result: _io.IoResult, now: float) -> list[ProviderEvent]:
        if type(result) is _io.SocketMessage:
            return self._socket_message(result.channel, result.data)
        if isinstance(result, _io.HttpData):
            return self._http_data(result.channel, result.data)
        if isinstance(result, _io.HttpStarted):
            return self._http_started(result.channel, result.status)
        if isinstance(result, _io.HttpDone):
            return self._http_done(result.channel)
        if isinstance(result, _io.HttpFailed):
            return self._http_failed(result.channel, result.message)
        if isinstance(result, _io.SocketOpened):
            return self._socket_opened(result.channel, now)
        if isinstance(result, _io.SocketClosed):
            return self._socket_closed(result.channel, result.code, result.reason)
        assert isinstance(result, _io.HandlerReplied)
        return self._handler_replied(result.request_id, result.text)

    def _socket_opened(self, channel: str, now: float) -> list[ProviderEvent]:
        if channel == "stt" and self._deepgram is not None and not self._closed:
            self._stt_open = True
            self._last_stt_send = now
            if self._early_audio:
                self._io.append(SendMessage(channel="stt", data=bytes(self._early_audio)))
                self._early_audio.clear()
            self._events.append(SessionReady())
        elif channel in self._speech_channels and not self._closed:
            self._speech_opened(channel)
        return self._take()

    def _socket_message(self, channel: str, data: str | bytes) -> list[ProviderEvent]:
        if channel == "stt" and self._stt_open and not self._closed:
            try:
                message = parse_deepgram_message(data)
            except RemoteProtocolError as exc:
                self._events.append(ProviderError(message=str(exc), code="stt_protocol"))
                return self._take()
            if isinstance(message, DeepgramResult):
                self._stt_result(message)
            elif isinstance(message, DeepgramSpeechStarted):
                self._speech_started()
            elif isinstance(message, DeepgramUtteranceEnd):
                text = self._utterance.utterance_end()
                if text:
                    self._user_utterance(text)
            elif isinstance(message, DeepgramError):
                self._events.append(ProviderError(message=message.message, code=message.code))
        elif channel in self._speech_channels and not self._closed:
            self._speech_message(channel, data)
        return self._take()

    def _socket_closed(self, channel: str, code: int, reason: str) -> list[ProviderEvent]:
        if channel == "stt" and self._stt_open and not self._closed:
            self._stt_open = False
            self._events.append(
                ProviderError(
                    message=f"speech-to-text stream closed ({code} {reason})".strip(),
                    fatal=True,
                    code=reason or str(code),
                )
            )
        elif channel in self._speech_channels and not self._closed:
            self._speech_closed(channel, code, reason)
        return self._take()

    def _http_started(self, channel: str, status: int) -> list[ProviderEvent]:
        if channel in self._channels:
            self._http_status[channel] = status
            self._http_body[channel] = bytearray()
        return self._take()

    def _http_data(self, channel: str, data: bytes) -> list[ProviderEvent]:
        if channel not in self._channels:
            return self._take()
        owner = self._channels[channel]
        status = self._http_status.get(channel, 200)
        body = self._http_body.setdefault(channel, bytearray())
        if not 200 <= status < 300:
            body += data[: max(0, MAX_ERROR_BODY_BYTES - len(body))]
        elif isinstance(owner, Answer):
            self._llm_data(owner, channel, data)
        elif isinstance(owner, tuple):
            self._tts_data(owner[0], owner[1], data)
        else:
            if len(body) + len(data) > MAX_TRANSCRIPTION_BYTES:
                self._http_failure(channel, "transcription answer too large")
            else:
                body += data
        return self._take()

    def _http_done(self, channel: str) -> list[ProviderEvent]:
        if channel not in self._channels:
            return self._take()
        owner = self._channels[channel]
        status = self._http_status.get(channel, 200)
        if not 200 <= status < 300:
            text = bytes(self._http_body.get(channel, b"")).decode("utf-8", "replace")
            self._http_failure(channel, f"HTTP {status}: {text[:300]}")
        elif isinstance(owner, Answer):
            self._llm_done(owner, channel)
        elif isinstance(owner, tuple):
            self._forget(channel)
            self._tts_done(owner[0], owner[1])
        else:
            body = bytes(self._http_body.get(channel, b""))
            self._forget(channel)
            try:
                text = parse_transcription(body).strip()
            except RemoteProtocolError as exc:
                self._events.append(ProviderError(message=str(exc), code="stt_protocol"))
            else:
                if text:
                    self._events.append(Transcript(role="user", text=text, final=True))
                    self._user_turn(text, spoken=True)
        return self._take()

    def _http_failed(self, channel: str, message: str) -> list[ProviderEvent]:
        if channel in self._channels:
            self._http_failure(channel, message)
        return self._take()

    def _handler_replied(self, request_id: int, text: str) -> list[ProviderEvent]:
        if request_id == self._handler_request and not self._closed:
            self._handler_request = None
            self._say(text)
        return self._take()

    def next_deadline(self) -> float | None:
        if self._stt_open and self._deepgram is not None:
            return self._last_stt_send + self._deepgram.keepalive_interval_s
        return None

    def handle_timer(self, now: float) -> list[ProviderEvent]:
        dg = self._deepgram
        if (
            self._stt_open
            and dg is not None
            and now >= self._last_stt_send + dg.keepalive_interval_s
        ):
            self._io.append(SendMessage(channel="stt", data=KEEP_ALIVE))
            self._last_stt_send = now
        return self._take()

    # -- speech to text -------------------------------------------------------

    def _send_audio(self, audio: bytes, now: float) -> None:
        if self._vad is not None:
            for event in self._vad.feed(audio):
                if isinstance(event, VadSpeechStarted):
                    self._speech_started()
                else:
                    self._user_speaking = False
                    self._events.append(UserSpeechStopped())
                    stt = self._config.stt
                    assert isinstance(stt, OpenAISttConfig)
                    request = build_transcription_request(
                        event.audio,
                        api_key=stt.api_key,
                        entropy=self._entropy,
                        base_url=stt.base_url,
                        model=stt.model,
                        language=stt.language,
                    )
                    self._start_http("stt", request, _TRANSCRIPTION)
        elif self._stt_open:
            self._io.append(SendMessage(channel="stt", data=bytes(audio)))
            self._last_stt_send = now
        else:
            self._early_audio += audio
            del self._early_audio[: max(0, len(self._early_audio) - MAX_EARLY_AUDIO_BYTES)]

    def _speech_started(self) -> None:
        if not self._user_speaking:
            self._user_speaking = True
            self._events.append(UserSpeechStarted())

    def _stt_result(self, result: DeepgramResult) -> None:
        if result.transcript.strip():
            self._speech_started()  # an interim with words is speech, VAD event or not
        interim, final = self._utterance.result(result)
        if interim:
            self._events.append(Transcript(role="user", text=interim, final=False))
        if final:
            self._user_utterance(final)

    def _user_utterance(self, text: str) -> None:
        if self._user_speaking:
            self._user_speaking = False
            self._events.append(UserSpeechStopped())
        self._events.append(Transcript(role="user", text=text, final=True))
        self._events.append(AnswerStage(stage="stt_final"))
        self._user_turn(text, spoken=True)

    # -- turns ----------------------------------------------------------------

    def _user_turn(self, text: str, *, spoken: bool) -> None:
        self._says.clear()  # first, or finishing the old answer would start one
        if self._answer is not None:
            self._cancel(self._answer)  # the caller moved on; the old answer is moot
        self._append_history({"role": "user", "content": text})
        if self._config.use_handler:
            self._counter += 1
            self._handler_request = self._counter
            self._io.append(CallHandler(request_id=self._counter, text=text))
            return
        answer = self._new_answer(source_open=True)
        self._request_llm(answer)

    def _say(self, text: str) -> None:
        if self._answer is not None:
            if len(self._says) < MAX_QUEUED_SAYS:
                self._says.append(text)
            return
        answer = self._new_answer(source_open=False)
        answer.add_sentences(answer.splitter.feed(text) + answer.splitter.flush())
        if text.strip():
            message = {"role": "assistant", "content": text.strip()}
            answer.round_messages[0] = message
            self._append_history(message)
        self._pump(answer)

    def _new_answer(self, *, source_open: bool) -> Answer:
        self._counter += 1
        answer = Answer(f"answer-{self._counter}", source_open=source_open)
        self._answer = answer
        if self._ws_tts is not None:
            # connect now: the handshake runs while the LLM writes
            speech = self._speech[answer.item_id] = SpeechSocket(self._ws_tts)
            self._io.append(speech.connect(self._speech_channel(answer)))
        return answer

    def _append_history(self, message: dict[str, Any]) -> None:
        self._history.append(message)
        excess = len(self._history) - self._config.max_history_messages
        if excess > 0:
            del self._history[:excess]
            # never start on a tool result whose call was dropped
            while self._history and self._history[0].get("role") == "tool":
                del self._history[0]

    # -- LLM ------------------------------------------------------------------

    def _request_llm(self, answer: Answer) -> None:
        llm = self._config.llm
        assert llm is not None
        messages: list[Mapping[str, Any]] = []
        if self._instructions:
            messages.append({"role": "system", "content": self._instructions})
        messages += self._history
        answer.reader = ChatStreamReader()
        answer.round_text = []
        answer.llm_channel = self._start_http("llm", build_chat_request(llm, messages), answer)

    def _llm_data(self, answer: Answer, channel: str, data: bytes) -> None:
        assert answer.reader is not None
        try:
            items = answer.reader.feed(data)
        except RemoteProtocolError as exc:
            self._abort(channel)
            self._llm_failed(answer, str(exc))
            return
        self._llm_items(answer, items)

    def _llm_done(self, answer: Answer, channel: str) -> None:
        assert answer.reader is not None
        self._forget(channel)
        try:
            items = answer.reader.end_of_body()
        except RemoteProtocolError as exc:
            self._llm_failed(answer, str(exc))
            return
        self._llm_items(answer, items)

    def _llm_items(self, answer: Answer, items: list[Any]) -> None:
        calls: list[ToolCall] = []
        for item in items:
            if isinstance(item, TextDelta):
                if not answer.round and not answer.round_text:
                    self._events.append(AnswerStage(stage="llm_first_token"))
                answer.round_text.append(item.text)
                answer.add_sentences(answer.splitter.feed(item.text))
            elif isinstance(item, ChatFinished):
                if answer.llm_channel is not None:
                    self._abort(answer.llm_channel)  # nothing more to read
                answer.llm_channel = None
                answer.add_sentences(answer.splitter.flush())
                self._end_round(answer, calls)
            else:
                calls.append(
                    ToolCall(call_id=item.call_id, name=item.name, arguments=item.arguments)
                )
        self._pump(answer)

    def _end_round(self, answer: Answer, calls: list[ToolCall]) -> None:
        text = "".join(answer.round_text).strip()
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in calls
            ]
        if text or calls:
            answer.round_messages[answer.round] = message
            self._append_history(message)
        answer.round += 1
        if calls:
            answer.pending_calls = {call.call_id for call in calls}
            for call in calls:
                self._tool_owner[call.call_id] = answer
            self._events += calls
        else:
            answer.source_open = False

    def _tool_result(self, call_id: str, output: str) -> None:
        answer = self._tool_owner.pop(call_id, None)
        if answer is None or call_id not in answer.pending_calls:
            if call_id in self._dropped_calls:
                return  # its answer was cancelled; the history already holds a result
            self._events.append(
                ProviderError(message=f"no tool call {call_id!r} is waiting", code="unknown_call")
            )
            return
        answer.pending_calls.discard(call_id)
        self._append_history({"role": "tool", "tool_call_id": call_id, "content": output})
        if not answer.pending_calls and not answer.finished:
            self._request_llm(answer)

    def _llm_failed(self, answer: Answer, message: str) -> None:
        self._events.append(ProviderError(message=f"LLM: {message}", code="llm"))
        answer.llm_channel = None
        answer.status = "failed"
        answer.add_sentences(answer.splitter.flush())
        self._end_round(answer, [])
        self._pump(answer)

    # -- text to speech -------------------------------------------------------

    def _pump(self, answer: Answer) -> None:
        """Start TTS requests for the next sentences; finish the answer when done."""
        if answer.finished:
            return
        tts = self._config.tts
        if isinstance(tts, ElevenLabsWsTtsConfig):
            self._pump_speech(answer)
            return
        limit = answer.head + self._config.max_parallel_tts
        for sentence in answer.sentences[answer.head : limit]:
            if sentence.channel is None and not sentence.done:
                if sentence is answer.sentences[0]:
                    self._events.append(AnswerStage(stage="tts_request"))
                request = build_tts_request(tts, sentence.text)
                sentence.channel = self._start_http("tts", request, (answer, sentence))
        if answer.all_played_out():
            self._finish(answer, answer.status)

    def _tts_data(self, answer: Answer, sentence: Sentence, data: bytes) -> None:
        pcm = sentence.aligner.push(data)
        if not pcm:
            return
        if answer.sentences[answer.head] is sentence:
            sentence.audio_bytes += len(pcm)
            self._events.append(AudioOut(audio=pcm, item_id=answer.item_id))
        elif self._buffered_tts + len(pcm) <= MAX_BUFFERED_TTS_BYTES:
            self._buffered_tts += len(pcm)
            sentence.buffered.append(pcm)

    def _tts_done(self, answer: Answer, sentence: Sentence) -> None:
        sentence.done = True
        while answer.head < len(answer.sentences) and answer.sentences[answer.head].done:
            answer.head += 1
            if answer.head < len(answer.sentences):
                nxt = answer.sentences[answer.head]
                for pcm in nxt.buffered:
                    self._buffered_tts -= len(pcm)
                    nxt.audio_bytes += len(pcm)
                    self._events.append(AudioOut(audio=pcm, item_id=answer.item_id))
                nxt.buffered = []
        self._pump(answer)

    def _finish(self, answer: Answer, status: str) -> None:
        answer.finished = True
        speech = self._speech.pop(answer.item_id, None)
        if speech is not None and speech.channel is not None:
            self._drop_speech_channel(speech.channel)
        if self._answer is answer:
            self._answer = None
        self._recent.append(answer)
        spoken = answer.spoken_text()  # what the caller could hear
        if spoken:
            self._events.append(Transcript(role="assistant", text=spoken, item_id=answer.item_id))
        sent = sum(len(s.text) for s in answer.sentences if s.channel or s.audio_bytes)
        usage = (("tts_characters", sent),)
        self._events.append(ResponseDone(item_id=answer.item_id, status=status, usage=usage))
        if self._says and self._answer is None and not self._closed:
            self._say(self._says.popleft())

    # -- barge-in -------------------------------------------------------------

    def _cancel(self, answer: Answer, status: str = "cancelled") -> None:
        if answer.finished:
            return
        if answer.llm_channel is not None:
            self._abort(answer.llm_channel)
            answer.llm_channel = None
            # the round in progress: keep what was voiced, as its own message
            spoken = " ".join(
                s.text for s in answer.sentences if s.round == answer.round and s.audio_bytes
            )
            if spoken:
                message = {"role": "assistant", "content": spoken}
                answer.round_messages[answer.round] = message
                self._append_history(message)
        for call_id in sorted(answer.pending_calls):
            # the history must answer every tool call before the next request
            self._tool_owner.pop(call_id, None)
            self._dropped_calls.append(call_id)
            self._append_history({"role": "tool", "tool_call_id": call_id, "content": "cancelled"})
        answer.pending_calls = set()
        for sentence in answer.sentences:
            if sentence.channel is not None and sentence.channel in self._channels:
                self._abort(sentence.channel)
            self._buffered_tts -= sum(len(pcm) for pcm in sentence.buffered)
            sentence.buffered = []
        answer.source_open = False
        self._truncate_messages(answer, None)
        self._finish(answer, status)

    def _truncate(self, item_id: str, played_ms: int) -> None:
        if self._answer is not None and self._answer.item_id == item_id:
            self._cancel(self._answer)
        for answer in self._recent:
            if answer.item_id == item_id:
                self._truncate_messages(answer, max(0, played_ms))
                return

    def _truncate_messages(self, answer: Answer, played_ms: int | None) -> None:
        """Cut the answer's assistant messages to the heard (or, if None, voiced) words."""
        if played_ms is None:
            heard = [s.text if s.audio_bytes else "" for s in answer.sentences]
        else:
            heard = heard_text(answer.sentences, played_ms, self._bytes_per_ms)
        for message in answer.cut_messages(heard):
            if message in self._history:
                self._history.remove(message)

    # -- HTTP channels --------------------------------------------------------

    def _start_http(self, kind: str, request: Any, owner: Any) -> str:
        self._counter += 1
        channel = f"{kind}-{self._counter}"
        self._channels[channel] = owner
        self._io.append(StartHttp(channel=channel, request=request))
        return channel

    def _forget(self, channel: str) -> None:
        self._channels.pop(channel, None)
        self._http_status.pop(channel, None)
        self._http_body.pop(channel, None)

    def _abort(self, channel: str) -> None:
        if channel in self._channels:
            self._forget(channel)
            self._io.append(CloseSocket(channel=channel))

    def _http_failure(self, channel: str, message: str) -> None:
        owner = self._channels.get(channel)
        self._abort(channel)
        if isinstance(owner, Answer):
            self._llm_failed(owner, message)
        elif isinstance(owner, tuple):
            self._events.append(ProviderError(message=f"TTS: {message}", code="tts"))
            self._tts_done(owner[0], owner[1])
        else:
            self._events.append(ProviderError(message=f"STT: {message}", code="stt"))

    def _take(self) -> list[ProviderEvent]:
        events, self._events = self._events, []
        return events
