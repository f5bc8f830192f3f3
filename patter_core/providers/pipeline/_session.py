"""PipelineSession: speech-to-text -> on_message handler or LLM -> text-to-speech, pure.

Theory of operation
-------------------

Three parts, each in a module of its own, share one outbox
(:mod:`._outbox`: the I/O asked for, the events made, names, the live HTTP
channels); the session composes them and routes what comes back:

* speech-in (:mod:`._speech_in`): the caller's audio to turns (Deepgram, or
  the energy VAD plus one transcription request per utterance);
* the conversation (:mod:`._conversation`): history, the handler or LLM
  rounds, tools, truncation to what was heard;
* speech-out (:mod:`._speech_out`): an answer's sentences to audio, in
  order (one HTTP request per sentence, or one stream-input socket per
  answer).

Channels (named I/O the runtime performs for us):

=============  =========================================================
``stt``        Deepgram live WebSocket (binary audio in, JSON results out)
``stt-<n>``    one OpenAI transcription POST per utterance (energy VAD)
``llm-<n>``    one streamed chat-completions POST per LLM round
``tts-<n>``    one streamed text-to-speech POST per sentence
``ttsws-<n>``  ElevenLabs stream-input WebSocket, one per answer
=============  =========================================================

A ``CloseSocket`` on an HTTP channel means "abort that request"; data that
still arrives on a channel we gave up is ignored, and every request gets a
fresh channel name, so late bytes can never be taken for a newer answer's.
A response that is not 2xx fails its request with the body's first words.

A turn: a final transcript emits ``Transcript(user)`` and either a
``CallHandler`` (handler mode) or an LLM request; complete sentences go to
speech at once, so the first audio plays while the LLM is still writing;
audio goes out in sentence order as ``AudioOut(item_id=answer)``; the answer
ends with ``Transcript(assistant)`` then ``ResponseDone``. Barge-in:
``UserSpeechStarted``, then the bridge's ``Cancel`` and ``Truncate``.

Every call returns the events it made (``start`` and ``send`` too).
``AnswerStage``: ``stt_final``, ``llm_first_token``, ``tts_request``;
``ResponseDone.usage``: ``tts_characters``.
"""

from __future__ import annotations

from typing import Any

from ..._entropy import Entropy
from ...audio._format import PCM16_16K, AudioFormat
from .. import _io
from .._events import (
    Cancel,
    ProviderCommand,
    ProviderEvent,
    Say,
    SendAudio,
    SendText,
    ToolResult,
    Truncate,
    UpdateInstructions,
)
from .._session import AudioThroughSend, IoAction
from ._answer import Answer
from ._config import PipelineConfig
from ._conversation import Conversation
from ._outbox import PipelineOutbox
from ._speech_in import MAX_TRANSCRIPTION_BYTES, STT, SpeechIn

__all__ = ["PipelineSession"]

# Error bodies are read for the message only; 4 KiB holds any JSON error.
MAX_ERROR_BODY_BYTES = 4096


class PipelineSession(AudioThroughSend):
    """Implements :class:`~patter_core.providers.ProviderSession`."""

    def __init__(self, config: PipelineConfig, *, entropy: Entropy) -> None:
        self._config = config
        self._output_format = config.tts.output_format
        self._out = PipelineOutbox()
        self._in = SpeechIn(config, entropy, self._out)
        self._talk = Conversation(config, self._out)
        self._speech = self._talk.speech

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
        return self._talk.history

    def start(self, now: float) -> list[ProviderEvent]:
        self._in.start()
        if self._config.first_message:
            self._talk.say(self._config.first_message)
        return self._out.take()

    def send(self, command: ProviderCommand, now: float) -> list[ProviderEvent]:
        if self._talk.closed:
            return []
        if isinstance(command, SendAudio):
            self._in.audio(command.audio, now)
        elif isinstance(command, Cancel):
            self._talk.cancel()
        elif isinstance(command, Truncate):
            self._talk.truncate(command.item_id, command.played_ms)
        elif isinstance(command, ToolResult):
            self._talk.tool_result(command.call_id, command.output)
        elif isinstance(command, Say):
            self._talk.say(command.text)
        elif isinstance(command, SendText):
            self._talk.user_turn(command.text, spoken=False)
        elif isinstance(command, UpdateInstructions):
            self._talk.instructions = command.instructions
        return self._out.take()

    def close(self, now: float) -> None:
        if self._talk.closed:
            return
        self._talk.closed = True
        self._in.close()
        self._out.abort_all()
        self._speech.close()

    def io_to_send(self) -> list[IoAction]:
        return self._out.take_io()

    def receive_io(self, result: _io.IoResult, now: float) -> list[ProviderEvent]:
        if not self._talk.closed:  # after close, late results are meaningless
            self._route(result, now)
        return self._out.take()

    def next_deadline(self) -> float | None:
        return self._in.next_deadline()

    def handle_timer(self, now: float) -> list[ProviderEvent]:
        self._in.handle_timer(now)
        return self._out.take()

    # -- routing what came back -----------------------------------------------

    def _route(self, result: _io.IoResult, now: float) -> None:
        if isinstance(result, _io.SocketMessage | _io.SocketOpened | _io.SocketClosed):
            self._socket(result, now)
        elif isinstance(result, _io.HandlerReplied):
            self._talk.handler_replied(result.request_id, result.text)
        elif result.channel in self._out.channels:  # an HTTP request not given up
            if isinstance(result, _io.HttpData):
                self._http_data(result.channel, result.data)
            elif isinstance(result, _io.HttpStarted):
                self._out.status[result.channel] = result.status
                self._out.body[result.channel] = bytearray()
            elif isinstance(result, _io.HttpDone):
                self._http_done(result.channel)
            else:
                self._http_failure(result.channel, result.message)

    def _socket(
        self, result: _io.SocketMessage | _io.SocketOpened | _io.SocketClosed, now: float
    ) -> None:
        channel = result.channel
        if channel == STT and self._in.deepgram is not None:
            if isinstance(result, _io.SocketOpened):
                self._in.opened(now)
            elif not self._in.open:
                return  # a late message or close of a stream we closed
            elif isinstance(result, _io.SocketMessage):
                text = self._in.message(result.data)
                if text:
                    self._talk.user_turn(text, spoken=True)
            else:
                self._in.closed(result.code, result.reason)
        elif self._speech.owns(channel):
            if isinstance(result, _io.SocketOpened):
                self._speech.opened(channel)
            elif isinstance(result, _io.SocketMessage):
                self._speech.message(channel, result.data)
            else:
                self._speech.closed(channel, result.code, result.reason)

    def _http_data(self, channel: _io.ChannelId, data: bytes) -> None:
        owner = self._out.channels[channel]
        status = self._out.status.get(channel, 200)
        body = self._out.body.setdefault(channel, bytearray())
        if not 200 <= status < 300:
            body += data[: max(0, MAX_ERROR_BODY_BYTES - len(body))]
        elif isinstance(owner, Answer):
            self._talk.llm_data(owner, channel, data)
        elif isinstance(owner, tuple):
            self._speech.data(owner[0], owner[1], data)
        elif len(body) + len(data) > MAX_TRANSCRIPTION_BYTES:
            self._http_failure(channel, "transcription answer too large")
        else:
            body += data

    def _http_done(self, channel: _io.ChannelId) -> None:
        owner = self._out.channels[channel]
        status = self._out.status.get(channel, 200)
        if not 200 <= status < 300:
            text = bytes(self._out.body.get(channel, b"")).decode("utf-8", "replace")
            self._http_failure(channel, f"HTTP {status}: {text[:300]}")
        elif isinstance(owner, Answer):
            self._talk.llm_done(owner, channel)
        elif isinstance(owner, tuple):
            self._out.forget(channel)
            self._speech.done(owner[0], owner[1])
        else:
            body = bytes(self._out.body.get(channel, b""))
            self._out.forget(channel)
            said = self._in.transcribed(body)
            if said:
                self._talk.user_turn(said, spoken=True)

    def _http_failure(self, channel: _io.ChannelId, message: str) -> None:
        owner = self._out.channels.get(channel)
        self._out.abort(channel)
        if isinstance(owner, Answer):
            self._talk.llm_failed(owner, message)
        elif isinstance(owner, tuple):
            self._speech.failed(owner[0], owner[1], message)
        else:
            self._in.failed(message)
