"""How :class:`PipelineSession` drives text-to-speech WebSockets (ElevenLabs stream-input).

Kept apart from the session so that each file reads in one sitting; the
session mixes this in and owns every attribute named below. One socket per
answer (:class:`~._tts_ws.SpeechSocket`), on a fresh ``ttsws-<n>`` channel
each time, so a late message or close of a socket we gave up can never be
taken for a newer one's.

With :class:`ElevenLabsWsTtsConfig`, the pipeline's answer sentences go, as
they complete, on one WebSocket opened when the answer starts (its handshake
hides behind the LLM's first token); audio comes back in order and is counted
into sentences by its alignment; the end of the text sends ``{"text": ""}``
and the server's ``isFinal`` ends the answer. ``Cancel`` closes the socket
(late audio on it is dropped: its channel is gone). An unexpected close
opens a new socket for the text whose audio never came, once in a row; a
second close fails the answer with a ``ProviderError``.
"""

from __future__ import annotations

from ..._errors import RemoteProtocolError
from .._events import AnswerStage, AudioOut, ProviderError, ProviderEvent
from .._session import CloseSocket, IoAction
from ._answer import Answer
from ._tts_ws import SpeechSocket, TtsWsAudio, TtsWsError, TtsWsFinal, parse_tts_ws_message

__all__ = ["SpeechSocketsMixin"]


class SpeechSocketsMixin:
    _io: list[IoAction]
    _events: list[ProviderEvent]
    _counter: int
    _speech: dict[str, SpeechSocket]  # answer item id -> its socket state
    _speech_channels: dict[str, Answer]  # live channel -> answer

    # provided by the session
    def _finish(self, answer: Answer, status: str) -> None:
        raise NotImplementedError

    def _cancel(self, answer: Answer, status: str = "cancelled") -> None:
        raise NotImplementedError

    def _pump(self, answer: Answer) -> None:
        raise NotImplementedError

    # -- channels -------------------------------------------------------------

    def _speech_channel(self, answer: Answer) -> str:
        self._counter += 1
        channel = f"ttsws-{self._counter}"
        self._speech_channels[channel] = answer
        return channel

    def _drop_speech_channel(self, channel: str) -> None:
        if self._speech_channels.pop(channel, None) is not None:
            self._io.append(CloseSocket(channel=channel))

    def _speech_of(self, channel: str) -> tuple[Answer, SpeechSocket] | None:
        answer = self._speech_channels.get(channel)
        speech = self._speech.get(answer.item_id) if answer is not None else None
        if answer is None or speech is None or speech.channel != channel or answer.finished:
            return None
        return answer, speech

    # -- driving --------------------------------------------------------------

    def _pump_speech(self, answer: Answer) -> None:
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
        self._io += speech.sync(
            answer.sentences,
            source_open=answer.source_open,
            new_channel=lambda: self._speech_channel(answer),
        )
        if not sent and speech.sent:  # the answer's first text on its way to TTS
            self._events.append(AnswerStage(stage="tts_request"))

    def _speech_opened(self, channel: str) -> None:
        found = self._speech_of(channel)
        if found is not None:
            answer, speech = found
            self._io.append(speech.opened())
            self._pump(answer)

    def _speech_message(self, channel: str, data: str | bytes) -> None:
        found = self._speech_of(channel)
        if found is None:
            return
        answer, speech = found
        try:
            events = parse_tts_ws_message(data)
        except RemoteProtocolError as exc:
            self._events.append(ProviderError(message=f"TTS: {exc}", code="tts_protocol"))
            return
        for event in events:
            if isinstance(event, TtsWsAudio):
                pcm = speech.audio(answer.sentences, event)
                if pcm:
                    self._events.append(AudioOut(audio=pcm, item_id=answer.item_id))
            elif isinstance(event, TtsWsError):
                speech.last_error = event.message
                self._events.append(
                    ProviderError(message=f"TTS: {event.message}", code=event.code or "tts")
                )
            elif isinstance(event, TtsWsFinal) and speech.ended:
                for sentence in answer.sentences:
                    sentence.done = True
                answer.head = len(answer.sentences)
                self._finish(answer, answer.status)
                return

    def _speech_closed(self, channel: str, code: int, reason: str) -> None:
        found = self._speech_of(channel)
        self._speech_channels.pop(channel, None)
        if found is None:
            return
        answer, speech = found
        if speech.lost(answer.sentences):
            self._pump(answer)  # a new socket if text waits for audio
            return
        detail = speech.last_error or reason or "no reason given"
        self._events.append(
            ProviderError(message=f"TTS: stream closed ({code}: {detail})", code="tts")
        )
        self._cancel(answer, "failed")
