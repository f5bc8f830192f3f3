"""Speech in: the caller's audio to turns, for :class:`~._session.PipelineSession`.

Two ways, by configuration:

* Deepgram (:class:`DeepgramConfig`): one live WebSocket, channel ``stt``,
  opened at ``start``. Audio goes out as binary messages (held, up to
  :data:`MAX_EARLY_AUDIO_BYTES`, until the socket is open; then a
  ``KeepAlive`` when none went for ``keepalive_interval_s``). ``SpeechStarted``
  or an interim result with words is :class:`UserSpeechStarted`; a final
  (``speech_final`` or ``UtteranceEnd``) is the turn.
* OpenAI transcription (:class:`OpenAISttConfig`): the energy VAD cuts the
  utterances; each is one POST on a fresh ``stt-<n>`` channel, and its
  answer is the turn. Nothing to connect: ready at ``start``.

A turn gives ``UserSpeechStopped`` (if speech had started), the final
``Transcript(user)`` and ``AnswerStage("stt_final")``; its text goes back to
the session, which hands it to the conversation.
"""

from __future__ import annotations

from ..._entropy import Entropy
from ..._errors import RemoteProtocolError
from ...audio._format import PCM16_16K
from ...audio._vad import EnergyVad, VadSpeechStarted
from .._events import (
    AnswerStage,
    ProviderError,
    SessionReady,
    Transcript,
    UserSpeechStarted,
    UserSpeechStopped,
)
from .._io import ChannelId
from .._session import CloseSocket, OpenSocket, SendMessage
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
from ._openai_stt import build_transcription_request, parse_transcription
from ._outbox import TRANSCRIPTION, PipelineOutbox

__all__ = ["MAX_EARLY_AUDIO_BYTES", "MAX_TRANSCRIPTION_BYTES", "STT", "SpeechIn"]

STT = ChannelId("stt")  # the Deepgram socket's channel
# Audio that arrives before the Deepgram socket is open is held, up to 2 s
# (64 KB): enough for a slow TLS handshake, bounded if it never opens.
MAX_EARLY_AUDIO_BYTES = 2 * PCM16_16K.bytes_per_second
# A transcription answer is a short JSON object.
MAX_TRANSCRIPTION_BYTES = 64 * 1024


class SpeechIn:
    """The caller's audio in, the caller's turns out (module doc)."""

    def __init__(self, config: PipelineConfig, entropy: Entropy, out: PipelineOutbox) -> None:
        stt = config.stt
        self._out = out
        self._entropy = entropy
        self._vad = EnergyVad(stt.vad) if isinstance(stt, OpenAISttConfig) else None
        self._openai = stt if isinstance(stt, OpenAISttConfig) else None
        self.deepgram = stt if isinstance(stt, DeepgramConfig) else None
        self._user_speaking = False
        #: The Deepgram socket is open (and not closed by either side since).
        self.open = False
        self._early_audio = bytearray()
        self._last_send = 0.0
        self._utterance = UtteranceAssembler()

    def start(self) -> None:
        if self.deepgram is not None:
            dg = self.deepgram
            self._out.io.append(
                OpenSocket(channel=STT, url=deepgram_url(dg), headers=deepgram_headers(dg))
            )
        else:
            self._out.events.append(SessionReady())  # nothing to connect before the first turn

    def close(self) -> None:
        if self.open:
            self._out.io.append(SendMessage(channel=STT, data=CLOSE_STREAM))
            self._out.io.append(CloseSocket(channel=STT))
            self.open = False

    def audio(self, audio: bytes, now: float) -> None:
        if self._vad is not None:
            for event in self._vad.feed(audio):
                if isinstance(event, VadSpeechStarted):
                    self._speech_started()
                else:
                    self._user_speaking = False
                    self._out.events.append(UserSpeechStopped())
                    stt = self._openai
                    assert stt is not None
                    request = build_transcription_request(
                        event.audio,
                        api_key=stt.api_key,
                        entropy=self._entropy,
                        base_url=stt.base_url,
                        model=stt.model,
                        language=stt.language,
                    )
                    self._out.start_http("stt", request, TRANSCRIPTION)
        elif self.open:
            self._out.io.append(SendMessage(channel=STT, data=bytes(audio)))
            self._last_send = now
        else:
            self._early_audio += audio
            del self._early_audio[: max(0, len(self._early_audio) - MAX_EARLY_AUDIO_BYTES)]

    # -- the Deepgram socket --------------------------------------------------

    def opened(self, now: float) -> None:
        self.open = True
        self._last_send = now
        if self._early_audio:
            self._out.io.append(SendMessage(channel=STT, data=bytes(self._early_audio)))
            self._early_audio.clear()
        self._out.events.append(SessionReady())

    def message(self, data: str | bytes) -> str | None:
        """A Deepgram message; the turn's text when it ends one."""
        try:
            message = parse_deepgram_message(data)
        except RemoteProtocolError as exc:
            self._out.events.append(ProviderError(message=str(exc), code="stt_protocol"))
            return None
        if isinstance(message, DeepgramResult):
            if message.transcript.strip():
                self._speech_started()  # an interim with words is speech, VAD event or not
            interim, final = self._utterance.result(message)
            if interim:
                self._out.events.append(Transcript(role="user", text=interim, final=False))
            if final:
                return self._turn(final)
        elif isinstance(message, DeepgramSpeechStarted):
            self._speech_started()
        elif isinstance(message, DeepgramUtteranceEnd):
            text = self._utterance.utterance_end()
            if text:
                return self._turn(text)
        elif isinstance(message, DeepgramError):
            self._out.events.append(ProviderError(message=message.message, code=message.code))
        return None

    def closed(self, code: int, reason: str) -> None:
        self.open = False
        self._out.events.append(
            ProviderError(
                message=f"speech-to-text stream closed ({code} {reason})".strip(),
                fatal=True,
                code=reason or str(code),
            )
        )

    def next_deadline(self) -> float | None:
        if self.open and self.deepgram is not None:
            return self._last_send + self.deepgram.keepalive_interval_s
        return None

    def handle_timer(self, now: float) -> None:
        dg = self.deepgram
        if self.open and dg is not None and now >= self._last_send + dg.keepalive_interval_s:
            self._out.io.append(SendMessage(channel=STT, data=KEEP_ALIVE))
            self._last_send = now

    # -- a transcription request ----------------------------------------------

    def transcribed(self, body: bytes) -> str | None:
        """A transcription's answer; its text when there is one (a turn)."""
        try:
            text = parse_transcription(body).strip()
        except RemoteProtocolError as exc:
            self._out.events.append(ProviderError(message=str(exc), code="stt_protocol"))
            return None
        if not text:
            return None
        self._out.events.append(Transcript(role="user", text=text, final=True))
        return text

    def failed(self, message: str) -> None:
        self._out.events.append(ProviderError(message=f"STT: {message}", code="stt"))

    # -- turns ----------------------------------------------------------------

    def _speech_started(self) -> None:
        if not self._user_speaking:
            self._user_speaking = True
            self._out.events.append(UserSpeechStarted())

    def _turn(self, text: str) -> str:
        if self._user_speaking:
            self._user_speaking = False
            self._out.events.append(UserSpeechStopped())
        self._out.events.append(Transcript(role="user", text=text, final=True))
        self._out.events.append(AnswerStage(stage="stt_final"))
        return text
