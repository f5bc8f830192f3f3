"""OpenAI Realtime settings and the GA ``session.update`` they produce (PROTOCOLS.md §5.2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .._base_urls import DEFAULT_OPENAI_BASE_URL
from .._errors import LocalProtocolError
from ..audio._format import ALAW_8K, PCM16_24K, ULAW_8K, AudioFormat
from ._base import (
    DEFAULT_MAX_MALFORMED_MESSAGES,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_PENDING_BYTES,
    DEFAULT_SETUP_TIMEOUT,
)
from ._models import REALTIME_MODEL, REALTIME_TRANSCRIPTION_MODEL, REALTIME_VOICE

__all__ = [
    "FORMATS",
    "REASONING_EFFORTS",
    "OpenAIRealtimeConfig",
    "OpenAITurnDetection",
    "session_update",
]

# GA audio format objects (PROTOCOLS.md §5.2) and the AudioFormat each carries.
FORMATS: dict[str, tuple[dict[str, object], AudioFormat]] = {
    "pcmu": ({"type": "audio/pcmu"}, ULAW_8K),
    "pcma": ({"type": "audio/pcma"}, ALAW_8K),
    "pcm24": ({"type": "audio/pcm", "rate": 24000}, PCM16_24K),  # the only PCM rate
}

# Three failed answers in a row: the caller has heard silence three times and
# the cause (quota, rate limit) will not clear within a call.
DEFAULT_MAX_FAILED_RESPONSES = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAITurnDetection:
    """``audio.input.turn_detection``; the defaults are the server's own (§5.2)."""

    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float = 0.5  # server_vad only
    prefix_padding_ms: int = 300  # server_vad only
    silence_duration_ms: int = 500  # server_vad only
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"  # semantic_vad only
    create_response: bool = True
    # The server cancels its own answer when the caller talks over it.
    interrupt_response: bool = True
    idle_timeout_ms: int | None = None  # server_vad only

    def to_json(self) -> dict[str, object]:
        if self.type == "semantic_vad":
            return {
                "type": "semantic_vad",
                "eagerness": self.eagerness,
                "create_response": self.create_response,
                "interrupt_response": self.interrupt_response,
            }
        if self.type != "server_vad":
            raise LocalProtocolError(f"unknown turn detection type {self.type!r}")
        out: dict[str, object] = {
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
            "create_response": self.create_response,
            "interrupt_response": self.interrupt_response,
        }
        if self.idle_timeout_ms is not None:
            out["idle_timeout_ms"] = self.idle_timeout_ms
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAIRealtimeConfig:
    """One agent's Realtime settings; ``tools`` are ``{name, description, parameters}``."""

    api_key: str
    model: str = REALTIME_MODEL
    voice: str = REALTIME_VOICE
    instructions: str = ""
    first_message: str | None = None
    tools: Sequence[Mapping[str, Any]] = ()
    # "pcmu" passes Twilio's mu-law 8 kHz through untouched; "pcm24" is the
    # API's only PCM rate, 24 kHz, resampled by the bridge.
    audio_format: Literal["pcmu", "pcma", "pcm24"] = "pcmu"
    # None means manual turns (the bridge commits and asks for responses).
    turn_detection: OpenAITurnDetection | None = field(default_factory=OpenAITurnDetection)
    input_transcription_model: str | None = REALTIME_TRANSCRIPTION_MODEL
    # A handset's microphone is near the mouth: near_field suits phone audio
    # (PROTOCOLS.md §5.2); None turns the server's filter off.
    noise_reduction: Literal["near_field", "far_field"] | None = "near_field"
    # Reasoning Realtime models (gpt-realtime-2 and later) only; None sends
    # nothing and keeps the server's default. "low" keeps a phone turn quick.
    reasoning_effort: Literal["minimal", "low", "medium", "high", "xhigh"] | None = None
    # Reasoning Realtime models only: may the model call several tools at once.
    parallel_tool_calls: bool | None = None
    base_url: str = DEFAULT_OPENAI_BASE_URL
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES
    max_malformed_messages: int = DEFAULT_MAX_MALFORMED_MESSAGES
    setup_timeout: float = DEFAULT_SETUP_TIMEOUT
    max_failed_responses: int = DEFAULT_MAX_FAILED_RESPONSES
    # Open a replacement session this long before session.expires_at and
    # carry the conversation over (_openai_renewal); None: do not, and let
    # the bridge end the call with a closing line instead. Two minutes leave
    # room to set it up and to wait for a quiet moment to switch.
    renew_before_expiry: float | None = 120.0
    # session.expires_at is Unix time, and ``now`` the runtime's monotonic
    # clock: wall-clock seconds minus that clock's reading puts the expiry
    # on the clock ``now`` runs on (0.0: ``now`` is wall time already).
    wall_offset: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.api_key, str) or not self.api_key:
            raise LocalProtocolError("api_key must be a non-empty string")
        if self.audio_format not in FORMATS:
            raise LocalProtocolError(f"audio_format must be one of {sorted(FORMATS)}")
        for tool in self.tools:
            if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
                raise LocalProtocolError(f"each tool needs a string 'name': {tool!r}")
        if self.max_message_bytes <= 0 or self.max_pending_bytes < 0:
            raise LocalProtocolError("message limits must be positive")
        if self.reasoning_effort not in (None, *REASONING_EFFORTS):
            raise LocalProtocolError(
                f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}"
            )
        if self.noise_reduction not in (None, "near_field", "far_field"):
            raise LocalProtocolError("noise_reduction must be near_field, far_field or None")


#: ``session.reasoning.effort`` values (the SDK's RealtimeReasoningEffort).
REASONING_EFFORTS = ("minimal", "low", "medium", "high", "xhigh")


def session_update(config: OpenAIRealtimeConfig) -> dict[str, object]:
    """The GA ``session.update`` for ``config`` (PROTOCOLS.md §5.2)."""
    fmt = FORMATS[config.audio_format][0]
    audio_in: dict[str, object] = {
        "format": fmt,
        "turn_detection": (
            config.turn_detection.to_json() if config.turn_detection is not None else None
        ),
    }
    if config.input_transcription_model is not None:
        audio_in["transcription"] = {"model": config.input_transcription_model}
    if config.noise_reduction is not None:
        audio_in["noise_reduction"] = {"type": config.noise_reduction}
    session: dict[str, object] = {
        "type": "realtime",
        "model": config.model,
        "output_modalities": ["audio"],
        "instructions": config.instructions,
        "audio": {"input": audio_in, "output": {"format": fmt, "voice": config.voice}},
    }
    if config.tools:
        session["tools"] = [
            {
                "type": "function",
                "name": tool["name"],
                "description": tool.get("description", ""),
                "parameters": tool.get("parameters", {"type": "object", "properties": {}}),
            }
            for tool in config.tools
        ]
        session["tool_choice"] = "auto"
    if config.reasoning_effort is not None:
        session["reasoning"] = {"effort": config.reasoning_effort}
    if config.parallel_tool_calls is not None:
        session["parallel_tool_calls"] = config.parallel_tool_calls
    return {"type": "session.update", "session": session}
