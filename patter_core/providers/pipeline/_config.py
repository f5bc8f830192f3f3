"""The pipeline's configuration: which speech-to-text, reply source and text-to-speech."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..._base_urls import DEFAULT_OPENAI_BASE_URL
from ..._errors import LocalProtocolError
from ...audio._vad import VadConfig
from .._models import OPENAI_STT_MODEL
from ._deepgram import DeepgramConfig
from ._llm import LlmConfig
from ._tts import ElevenLabsTtsConfig, OpenAITtsConfig
from ._tts_ws import ElevenLabsWsTtsConfig

__all__ = ["OpenAISttConfig", "PipelineConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAISttConfig:
    api_key: str
    base_url: str = DEFAULT_OPENAI_BASE_URL
    model: str = OPENAI_STT_MODEL
    language: str | None = None
    vad: VadConfig = field(default_factory=VadConfig)


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineConfig:
    """Which speech-to-text, text-to-speech and reply source to use.

    With ``use_handler`` the caller's text goes to the user's ``on_message``
    (through ``CallHandler``); otherwise ``llm`` must be given.
    """

    stt: DeepgramConfig | OpenAISttConfig
    # ElevenLabsWsTtsConfig: the stream-input WebSocket, one socket per answer
    tts: ElevenLabsTtsConfig | OpenAITtsConfig | ElevenLabsWsTtsConfig
    llm: LlmConfig | None = None
    use_handler: bool = False
    system_prompt: str = ""
    first_message: str = ""
    # Two requests in flight hide one request's latency behind the playing
    # sentence without flooding the TTS provider.
    max_parallel_tts: int = 2
    # About 50 turns; older messages are dropped to bound the request size.
    max_history_messages: int = 100

    def __post_init__(self) -> None:
        if not self.use_handler and self.llm is None:
            raise LocalProtocolError("PipelineConfig needs llm settings unless use_handler is set")
        if self.max_parallel_tts < 1:
            raise LocalProtocolError("max_parallel_tts must be at least 1")
