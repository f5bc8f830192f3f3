"""Text-to-speech requests over HTTP streaming: one request per sentence.

* OpenAI, API reference "Create speech": ``POST {base}/audio/speech`` with JSON
  ``{"model", "voice", "input", "response_format"}``; ``response_format: "pcm"``
  returns raw 24 kHz 16-bit little-endian mono samples, no header, streamed.
  ``instructions`` (voice direction) works with ``gpt-4o-mini-tts`` only.
* ElevenLabs, API reference "Stream speech": ``POST
  /v1/text-to-speech/{voice_id}/stream?output_format=pcm_16000`` with header
  ``xi-api-key`` and JSON ``{"text", "model_id"}`` (optional
  ``voice_settings``); the answer streams raw 16 kHz PCM16 LE for ``pcm_16000``.

:class:`PcmAligner` keeps a chunk boundary that falls inside a sample from
reaching the audio bus: HTTP chunks are cut anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ..._base_urls import DEFAULT_ELEVENLABS_BASE_URL, DEFAULT_OPENAI_BASE_URL
from ...audio._format import PCM16_16K, PCM16_24K, AudioFormat
from ...http._types import HttpRequest
from .._models import ELEVENLABS_TTS_MODEL, OPENAI_TTS_MODEL, OPENAI_TTS_VOICE

__all__ = [
    "ElevenLabsTtsConfig",
    "OpenAITtsConfig",
    "PcmAligner",
    "build_elevenlabs_request",
    "build_openai_speech_request",
    "build_tts_request",
]


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAITtsConfig:
    api_key: str
    base_url: str = DEFAULT_OPENAI_BASE_URL
    model: str = OPENAI_TTS_MODEL
    voice: str = OPENAI_TTS_VOICE
    instructions: str | None = None

    @property
    def output_format(self) -> AudioFormat:
        return PCM16_24K


@dataclass(frozen=True, slots=True, kw_only=True)
class ElevenLabsTtsConfig:
    api_key: str
    voice_id: str = "21m00Tcm4TlvDq8ikWAM"  # a premade voice available on every account
    base_url: str = DEFAULT_ELEVENLABS_BASE_URL
    # The Flash models are the low-latency ones (about 75 ms to first audio).
    model_id: str = ELEVENLABS_TTS_MODEL
    voice_settings: Mapping[str, Any] | None = field(default=None)

    @property
    def output_format(self) -> AudioFormat:
        return PCM16_16K


def build_openai_speech_request(config: OpenAITtsConfig, text: str) -> HttpRequest:
    body: dict[str, Any] = {
        "model": config.model,
        "voice": config.voice,
        "input": text,
        "response_format": "pcm",
    }
    if config.instructions:
        body["instructions"] = config.instructions
    payload = _json(body)
    return HttpRequest(
        method="POST",
        url=config.base_url.rstrip("/") + "/audio/speech",
        headers=(
            ("authorization", f"Bearer {config.api_key}"),
            ("content-type", "application/json"),
            ("content-length", str(len(payload))),
        ),
        body=payload,
    )


def build_elevenlabs_request(config: ElevenLabsTtsConfig, text: str) -> HttpRequest:
    body: dict[str, Any] = {"text": text, "model_id": config.model_id}
    if config.voice_settings is not None:
        body["voice_settings"] = dict(config.voice_settings)
    payload = _json(body)
    url = (
        f"{config.base_url.rstrip('/')}/v1/text-to-speech/{quote(config.voice_id, safe='')}"
        "/stream?output_format=pcm_16000"
    )
    return HttpRequest(
        method="POST",
        url=url,
        headers=(
            ("xi-api-key", config.api_key),
            ("content-type", "application/json"),
            ("content-length", str(len(payload))),
        ),
        body=payload,
    )


def build_tts_request(config: ElevenLabsTtsConfig | OpenAITtsConfig, text: str) -> HttpRequest:
    if isinstance(config, OpenAITtsConfig):
        return build_openai_speech_request(config, text)
    return build_elevenlabs_request(config, text)


class PcmAligner:
    """Pass PCM16 bytes through in whole samples, carrying an odd byte over."""

    __slots__ = ("_carry",)

    def __init__(self) -> None:
        self._carry = b""

    def push(self, data: bytes) -> bytes:
        data = self._carry + data
        cut = len(data) & ~1
        self._carry = data[cut:]
        return data[:cut]
