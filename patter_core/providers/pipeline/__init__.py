"""The pipeline provider: speech-to-text -> on_message handler or LLM -> text-to-speech.

Every piece is pure: the Deepgram and ElevenLabs/OpenAI wire formats, an
incremental Server-Sent Events parser, a streaming sentence splitter,
WAV and multipart builders, and :class:`PipelineSession`, which
turns them into one :class:`~patter_core.providers.ProviderSession`.
"""

from ...audio._vad import VadConfig
from ._config import OpenAISttConfig, PipelineConfig
from ._deepgram import DeepgramConfig
from ._llm import LlmConfig
from ._session import PipelineSession
from ._tts import ElevenLabsTtsConfig, OpenAITtsConfig
from ._tts_ws import ElevenLabsWsTtsConfig

__all__ = [
    "DeepgramConfig",
    "ElevenLabsTtsConfig",
    "ElevenLabsWsTtsConfig",
    "LlmConfig",
    "OpenAISttConfig",
    "OpenAITtsConfig",
    "PipelineConfig",
    "PipelineSession",
    "VadConfig",
]
