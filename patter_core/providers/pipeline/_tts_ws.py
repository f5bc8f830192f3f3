"""ElevenLabs text-to-speech over its WebSocket "stream-input" API: one socket per answer.

Wire facts (ElevenLabs API reference "WebSocket", ``GET
/v1/text-to-speech/{voice_id}/stream-input``; message models of the official
Python SDK, ``types/initialize_connection.py``, ``send_text.py``,
``audio_output.py``, ``final_output.py``, ``normalized_alignment.py``):

* ``wss://api.elevenlabs.io/v1/text-to-speech/{voice_id}/stream-input?model_id=...
  &output_format=pcm_16000`` with header ``xi-api-key`` (the key may also go
  in the first message as ``xi_api_key``; we keep it in the header, out of
  the message stream). ``pcm_16000`` is "PCM format (S16LE) with 16kHz sample
  rate", our audio bus as is.
* The first message "must be a blank space": ``{"text": " "}``, optionally
  with ``voice_settings`` and ``generation_config.chunk_length_schedule``
  ("should only be provided in the first message"; each item 50-500, default
  ``[120, 160, 250, 290]`` characters buffered before audio is generated).
* Text messages ``{"text": "...", ...}``: "should always end with a single
  space". ``try_trigger_generation`` generates "only if our buffer contains
  more than a minimum threshold of characters"; ``flush: true`` forces the
  buffer out "even when the length of text sent is smaller than" the
  schedule. We send whole sentences, so flushing each one gives the first
  audio without waiting for 120 characters.
* ``{"text": ""}`` ends the input; the server then finishes generating and
  sends ``{"isFinal": true}`` ("indicates the generation is complete; audio
  is null").
* Audio: ``{"audio": "<base64>", "isFinal": false, "normalizedAlignment":
  {"chars": [...], "charStartTimesMs": [...], "charDurationsMs": [...]},
  "alignment": {...}}``; ``alignment`` follows the text as sent,
  ``normalizedAlignment`` the normalized text (numbers spelled out). The
  alignment tells which sentence a chunk of audio speaks, which is what a
  barge-in needs to cut the history to the words heard.
* Errors arrive as a message and then a close with 1008, e.g. ``{"message":
  "Have not received a new text input within the timeout of 20.0 seconds...",
  "error": "input_timeout_exceeded", "code": 1008}`` (seen in livekit/agents
  #218; the 20 s idle close also in elevenlabs-docs #426).

Query parameters ``auto_mode`` and ``inactivity_timeout`` are in the vendor
documentation but their behaviour is not verified here [R]: both are off
unless configured, and ``extra_query`` passes anything else through.

:class:`SpeechSocket` is the state of one answer's socket: which sentences
went out, how far the alignment has come, whether the socket may be opened
once more after an unexpected close. The pipeline session drives it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from ..._base_urls import DEFAULT_ELEVENLABS_BASE_URL
from ..._json import b64decode, load_message, opt_str
from ...audio._format import PCM16_16K, AudioFormat
from .._io import ChannelId
from .._models import ELEVENLABS_TTS_MODEL
from .._session import IoAction, OpenSocket, SendMessage
from .._urls import to_websocket_url
from ._answer import Sentence
from ._tts import PcmAligner

__all__ = [
    "END_OF_INPUT",
    "ElevenLabsWsTtsConfig",
    "SpeechSocket",
    "TtsWsAudio",
    "TtsWsError",
    "TtsWsEvent",
    "TtsWsFinal",
    "elevenlabs_ws_headers",
    "elevenlabs_ws_init_message",
    "elevenlabs_ws_text_message",
    "elevenlabs_ws_url",
    "parse_tts_ws_message",
]

END_OF_INPUT = '{"text":""}'
# The runtime's WebSocket client refuses messages over 4 MiB; an audio chunk
# is a sentence or less (10 s of 16 kHz PCM is 427 KB in base64).
MAX_MESSAGE_BYTES = 4 << 20
# Without alignment, audio is counted into sentences at a speaking rate of
# about 15 characters a second (150 words a minute): 16 kHz PCM16 is
# 32000 bytes a second.
_FALLBACK_BYTES_PER_CHAR = 32000 // 15


@dataclass(frozen=True, slots=True, kw_only=True)
class ElevenLabsWsTtsConfig:
    api_key: str
    voice_id: str = "21m00Tcm4TlvDq8ikWAM"  # a premade voice available on every account
    base_url: str = DEFAULT_ELEVENLABS_BASE_URL  # http(s) or ws(s); the scheme is swapped
    # The Flash models are the low-latency ones (about 75 ms to first audio).
    model_id: str = ELEVENLABS_TTS_MODEL
    voice_settings: Mapping[str, Any] | None = field(default=None)
    # None keeps the server's schedule; with flush_each_sentence it rarely
    # matters, since every sentence is pushed out whole.
    chunk_length_schedule: tuple[int, ...] | None = None
    # True: {"flush": true} on every sentence (first audio at once);
    # False: {"try_trigger_generation": true}, the server's buffering decides.
    flush_each_sentence: bool = True
    auto_mode: bool = False  # [R] query "auto_mode=true": no buffering, for whole sentences
    inactivity_timeout_s: int | None = None  # [R] query "inactivity_timeout"; server default 20 s
    extra_query: tuple[tuple[str, str], ...] = ()  # [R] e.g. (("language_code", "de"),)
    # One new socket after an unexpected close; a second close in a row
    # fails the answer (the next answer starts afresh).
    max_reopens: int = 1

    @property
    def output_format(self) -> AudioFormat:
        return PCM16_16K


def elevenlabs_ws_url(config: ElevenLabsWsTtsConfig) -> str:
    params: list[tuple[str, str]] = [
        ("model_id", config.model_id),
        ("output_format", "pcm_16000"),
    ]
    if config.auto_mode:
        params.append(("auto_mode", "true"))
    if config.inactivity_timeout_s is not None:
        params.append(("inactivity_timeout", str(config.inactivity_timeout_s)))
    params += list(config.extra_query)
    return (
        f"{to_websocket_url(config.base_url)}/v1/text-to-speech/"
        f"{quote(config.voice_id, safe='')}/stream-input?{urlencode(params)}"
    )


def elevenlabs_ws_headers(config: ElevenLabsWsTtsConfig) -> tuple[tuple[str, str], ...]:
    return (("xi-api-key", config.api_key),)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def elevenlabs_ws_init_message(config: ElevenLabsWsTtsConfig) -> str:
    message: dict[str, Any] = {"text": " "}
    if config.voice_settings is not None:
        message["voice_settings"] = dict(config.voice_settings)
    if config.chunk_length_schedule is not None:
        message["generation_config"] = {"chunk_length_schedule": list(config.chunk_length_schedule)}
    return _dumps(message)


def elevenlabs_ws_text_message(text: str, *, flush: bool) -> str:
    # "Should always end with a single space"; an empty text would end the input.
    text = text.strip() + " "
    if flush:
        return _dumps({"text": text, "flush": True})
    return _dumps({"text": text, "try_trigger_generation": True})


@dataclass(frozen=True, slots=True, kw_only=True)
class TtsWsAudio:
    audio: bytes
    chars: int  # characters of aligned text this chunk speaks (whitespace not counted)


@dataclass(frozen=True, slots=True, kw_only=True)
class TtsWsFinal:
    """``isFinal``: every text sent has been spoken."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TtsWsError:
    message: str
    code: str | None = None


TtsWsEvent = TtsWsAudio | TtsWsFinal | TtsWsError


def _visible(text: str) -> int:
    return sum(1 for ch in text if not ch.isspace())


def _aligned_chars(value: dict[str, Any]) -> int:
    # ``alignment`` counts the characters we sent; the normalized one may
    # spell "42" as "forty-two", so it is only the fallback.
    for key in ("alignment", "normalizedAlignment"):
        alignment = value.get(key)
        chars = alignment.get("chars") if isinstance(alignment, dict) else None
        if isinstance(chars, list):
            return sum(_visible(ch) for ch in chars if isinstance(ch, str))
    return 0


def parse_tts_ws_message(data: str | bytes) -> list[TtsWsEvent]:
    """One server message; unknown shapes give no events."""
    value = load_message(data, MAX_MESSAGE_BYTES)
    events: list[TtsWsEvent] = []
    error = value.get("error")
    if error is not None and error is not False:
        message = value.get("message")
        events.append(
            TtsWsError(
                message=message if isinstance(message, str) and message else str(error),
                code=error if isinstance(error, str) else None,
            )
        )
    audio = opt_str(value, "audio")
    if audio:
        events.append(TtsWsAudio(audio=b64decode(audio), chars=_aligned_chars(value)))
    if value.get("isFinal") is True:
        events.append(TtsWsFinal())
    return events


class SpeechSocket:
    """One answer's socket: sentences out in order, audio back attributed to them.

    ``sent`` counts the answer's sentences written on the socket (a reopened
    socket starts again after the last sentence that got audio), ``aligned``
    the characters of them the audio has covered so far.
    """

    __slots__ = (
        "_aligner",
        "_config",
        "aligned",
        "channel",
        "ended",
        "failures",
        "last_error",
        "open",
        "sent",
    )

    def __init__(self, config: ElevenLabsWsTtsConfig) -> None:
        self._config = config
        self._aligner = PcmAligner()
        self.channel: ChannelId | None = None  # the live socket, connecting or open
        self.open = False
        self.sent = 0
        self.ended = False  # END_OF_INPUT written on the live socket
        self.aligned = 0
        self.failures = 0  # unexpected closes in a row
        self.last_error: str | None = None

    def connect(self, channel: ChannelId) -> OpenSocket:
        self.channel = channel
        self.open = False
        self.ended = False
        self._aligner = PcmAligner()
        return OpenSocket(
            channel=channel,
            url=elevenlabs_ws_url(self._config),
            headers=elevenlabs_ws_headers(self._config),
        )

    def opened(self) -> SendMessage:
        self.open = True
        assert self.channel is not None
        return SendMessage(channel=self.channel, data=elevenlabs_ws_init_message(self._config))

    def sync(
        self,
        sentences: Sequence[Sentence],
        *,
        source_open: bool,
        new_channel: Callable[[], ChannelId],
    ) -> list[IoAction]:
        """Write what is new; open a socket first if text waits and none is live."""
        if self.channel is None:
            if self.sent < len(sentences):
                return [self.connect(new_channel())]
            return []
        if not self.open:
            return []  # the connect is in flight; opened() then sync() again
        out: list[IoAction] = []
        flush = self._config.flush_each_sentence
        for sentence in sentences[self.sent :]:
            out.append(
                SendMessage(
                    channel=self.channel,
                    data=elevenlabs_ws_text_message(sentence.text, flush=flush),
                )
            )
        self.sent = len(sentences)
        if not source_open and not self.ended:
            self.ended = True
            out.append(SendMessage(channel=self.channel, data=END_OF_INPUT))
        return out

    def audio(self, sentences: Sequence[Sentence], chunk: TtsWsAudio) -> bytes:
        """Whole samples of ``chunk``, counted into the sentences they speak."""
        pcm = self._aligner.push(chunk.audio)
        spoken = sentences[: self.sent]
        if not pcm or not spoken:
            return b""
        self.failures = 0  # the socket works
        chars = chunk.chars or max(1, len(pcm) // _FALLBACK_BYTES_PER_CHAR)
        start = self.aligned
        self.aligned += chars
        # characters of each sentence within [start, start + chars)
        shares: list[tuple[Sentence, int]] = []
        edge = 0
        for sentence in spoken:
            lo, edge = edge, edge + _visible(sentence.text)
            overlap = min(edge, start + chars) - max(lo, start)
            if overlap > 0:
                shares.append((sentence, overlap))
        if not shares:
            # the alignment ran past the text we sent: the last sentence
            spoken[-1].audio_bytes += len(pcm)
            return pcm
        total = sum(n for _, n in shares)
        given = 0
        seen = 0
        for sentence, n in shares:
            seen += n
            upto = len(pcm) if seen == total else (len(pcm) * seen // total) & ~1
            sentence.audio_bytes += upto - given
            given = upto
        return pcm

    def lost(self, sentences: Sequence[Sentence]) -> bool:
        """The live socket closed unexpectedly; True if one more may be opened.

        Text whose audio never came goes again on the next socket: every
        sentence after the last one that got some audio.
        """
        self.channel = None
        self.open = False
        self.ended = False
        self.failures += 1
        voiced = [i for i, s in enumerate(sentences[: self.sent]) if s.audio_bytes]
        self.sent = voiced[-1] + 1 if voiced else 0
        self.aligned = sum(_visible(s.text) for s in sentences[: self.sent])
        return self.failures <= self._config.max_reopens
