"""Deepgram live transcription over WebSocket: the URL, the control messages, the results.

Wire facts (developers.deepgram.com, "Live Audio" API reference and guides):

* ``wss://api.deepgram.com/v1/listen?<options>`` with header
  ``Authorization: Token <key>`` (Token, not Bearer).
* Audio goes as binary messages; raw audio needs ``encoding`` and
  ``sample_rate`` (we send ``linear16``, 16000, mono).
* ``{"type": "KeepAlive"}`` as a *text* frame keeps an idle stream open:
  "If no audio data or KeepAlive messages are sent within a 10-second window,
  the connection will close with a NET-0001 error"; the guide says to send it
  every 3-5 seconds. ``{"type": "CloseStream"}`` asks the server to flush and
  close.
* Results: ``{"type": "Results", "is_final": bool, "speech_final": bool,
  "channel": {"alternatives": [{"transcript": "...", ...}]}, ...}``.
  ``is_final`` marks a segment that will not change; ``speech_final`` marks the
  end of speech found by ``endpointing`` (ms of silence).
* ``vad_events=true`` adds ``{"type": "SpeechStarted", "channel": [0, 1],
  "timestamp": 9.54}``; ``utterance_end_ms`` adds ``{"type": "UtteranceEnd",
  "channel": [0, 1], "last_word_end": 2.395}`` (needs interim_results).
* ``{"type": "Metadata", "request_id": ..., ...}`` comes at the end of a stream.
* Errors arrive as a message with a ``description``/``message`` before the
  close, or as the close reason alone (e.g. ``NET-0001``, ``DATA-0000``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ..._base_urls import DEFAULT_DEEPGRAM_BASE_URL, base_url_from_env
from ..._json import load_message
from .._models import DEEPGRAM_STT_MODEL
from .._urls import to_websocket_url

__all__ = [
    "CLOSE_STREAM",
    "KEEP_ALIVE",
    "DeepgramConfig",
    "DeepgramError",
    "DeepgramMetadata",
    "DeepgramResult",
    "DeepgramSpeechStarted",
    "DeepgramUtteranceEnd",
    "UtteranceAssembler",
    "deepgram_base_url_from_env",
    "deepgram_headers",
    "deepgram_url",
    "parse_deepgram_message",
]

KEEP_ALIVE = '{"type":"KeepAlive"}'
CLOSE_STREAM = '{"type":"CloseStream"}'
# Results messages are a few KB (one alternative with word timings); 1 MiB
# bounds what a broken peer makes us parse.
MAX_MESSAGE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class DeepgramConfig:
    api_key: str
    # http(s) or ws(s); see deepgram_base_url_from_env
    base_url: str = DEFAULT_DEEPGRAM_BASE_URL
    model: str = DEEPGRAM_STT_MODEL
    language: str | None = "en"
    # 300 ms of silence ends speech: the guide's range for conversation.
    endpointing_ms: int = 300
    # UtteranceEnd backs up endpointing in noise; the docs advise >= 1000 ms.
    utterance_end_ms: int = 1000
    smart_format: bool = True
    punctuate: bool = True
    # Deepgram closes after 10 s without data; the guide says 3-5 s.
    keepalive_interval_s: float = 4.0


def deepgram_base_url_from_env(environ: Mapping[str, str]) -> str:
    """``DEEPGRAM_BASE_URL`` (the SDKs' override, for proxies and test doubles) or the default."""
    return base_url_from_env(environ, "DEEPGRAM_BASE_URL")


def deepgram_url(config: DeepgramConfig) -> str:
    params: list[tuple[str, str]] = [("model", config.model)]
    if config.language:
        params.append(("language", config.language))
    params += [
        ("encoding", "linear16"),
        ("sample_rate", "16000"),
        ("channels", "1"),
        ("interim_results", "true"),
        ("endpointing", str(config.endpointing_ms)),
        ("utterance_end_ms", str(config.utterance_end_ms)),
        ("vad_events", "true"),
        ("smart_format", "true" if config.smart_format else "false"),
        ("punctuate", "true" if config.punctuate else "false"),
    ]
    return to_websocket_url(config.base_url) + "/v1/listen?" + urlencode(params)


def deepgram_headers(config: DeepgramConfig) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Token {config.api_key}"),)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeepgramResult:
    transcript: str
    is_final: bool
    speech_final: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DeepgramSpeechStarted:
    timestamp: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DeepgramUtteranceEnd:
    last_word_end: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DeepgramMetadata:
    request_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeepgramError:
    message: str
    code: str | None = None


DeepgramEvent = (
    DeepgramResult | DeepgramSpeechStarted | DeepgramUtteranceEnd | DeepgramMetadata | DeepgramError
)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


def parse_deepgram_message(data: str | bytes) -> DeepgramEvent | None:
    """One server message; ``None`` for types we do not use (and future ones).

    A message that is not a JSON object raises :class:`~patter_core._json.MalformedMessage`.
    """
    value = load_message(data, MAX_MESSAGE_BYTES)
    kind = value.get("type")
    if kind == "Results":
        channel = value.get("channel")
        alternatives = channel.get("alternatives") if isinstance(channel, dict) else None
        first = alternatives[0] if isinstance(alternatives, list) and alternatives else None
        transcript = first.get("transcript") if isinstance(first, dict) else None
        return DeepgramResult(
            transcript=transcript if isinstance(transcript, str) else "",
            is_final=value.get("is_final") is True,
            speech_final=value.get("speech_final") is True,
        )
    if kind == "SpeechStarted":
        return DeepgramSpeechStarted(timestamp=_number(value.get("timestamp")))
    if kind == "UtteranceEnd":
        return DeepgramUtteranceEnd(last_word_end=_number(value.get("last_word_end")))
    if kind == "Metadata":
        request_id = value.get("request_id")
        return DeepgramMetadata(request_id=request_id if isinstance(request_id, str) else "")
    if kind == "Error" or ("err_code" in value or "err_msg" in value):
        # Seen as {"type":"Error","description":...,"message":...,"variant":...}
        # and, on the HTTP side, {"err_code":...,"err_msg":...}.
        text = value.get("description") or value.get("message") or value.get("err_msg")
        code = value.get("variant") or value.get("err_code")
        return DeepgramError(
            message=str(text) if text is not None else "Deepgram error",
            code=str(code) if code is not None else None,
        )
    return None


class UtteranceAssembler:
    """Joins the finalized segments of one utterance.

    Deepgram finalizes long speech in segments (``is_final``); the utterance
    ends at a segment that is also ``speech_final``, or at ``UtteranceEnd``
    when endpointing missed it in noise (the utterance-end guide).
    """

    def __init__(self) -> None:
        self._parts: list[str] = []

    def result(self, result: DeepgramResult) -> tuple[str | None, str | None]:
        """(text to show as an interim transcript, the finished utterance)."""
        text = result.transcript.strip()
        interim = None
        if text and result.is_final:
            self._parts.append(text)
            interim = None if result.speech_final else " ".join(self._parts)
        elif text:
            interim = " ".join([*self._parts, text])
        final = self.utterance_end() if result.is_final and result.speech_final else None
        return interim, final

    def utterance_end(self) -> str | None:
        text = " ".join(self._parts).strip()
        self._parts = []
        return text or None
