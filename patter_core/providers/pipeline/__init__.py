"""The pipeline provider: speech-to-text -> on_message handler or LLM -> text-to-speech.

Every piece is pure: the Deepgram and ElevenLabs/OpenAI wire formats, an
incremental Server-Sent Events parser, a streaming sentence splitter,
WAV and multipart builders, and :class:`PipelineSession`, which
turns them into one :class:`~patter_core.providers.ProviderSession`.
"""

from ...audio._vad import VadConfig
from ._config import OpenAISttConfig, PipelineConfig
from ._deepgram import (
    DeepgramConfig,
    deepgram_base_url_from_env,
    deepgram_url,
    parse_deepgram_message,
)
from ._llm import (
    ChatFinished,
    ChatStreamReader,
    LlmConfig,
    TextDelta,
    ToolCallRequest,
    build_chat_request,
)
from ._openai_stt import build_transcription_request, multipart_body, parse_transcription
from ._sentences import SentenceSplitter
from ._session import PipelineSession
from ._sse import SSEEvent, SSEParser
from ._tts import (
    ElevenLabsTtsConfig,
    OpenAITtsConfig,
    build_elevenlabs_request,
    build_openai_speech_request,
)
from ._tts_ws import (
    ElevenLabsWsTtsConfig,
    elevenlabs_ws_init_message,
    elevenlabs_ws_text_message,
    elevenlabs_ws_url,
    parse_tts_ws_message,
)
from ._wav import wav_bytes, wav_header

__all__ = [
    "ChatFinished",
    "ChatStreamReader",
    "DeepgramConfig",
    "ElevenLabsTtsConfig",
    "ElevenLabsWsTtsConfig",
    "LlmConfig",
    "OpenAISttConfig",
    "OpenAITtsConfig",
    "PipelineConfig",
    "PipelineSession",
    "SSEEvent",
    "SSEParser",
    "SentenceSplitter",
    "TextDelta",
    "ToolCallRequest",
    "VadConfig",
    "build_chat_request",
    "build_elevenlabs_request",
    "build_openai_speech_request",
    "build_transcription_request",
    "deepgram_base_url_from_env",
    "deepgram_url",
    "elevenlabs_ws_init_message",
    "elevenlabs_ws_text_message",
    "elevenlabs_ws_url",
    "multipart_body",
    "parse_deepgram_message",
    "parse_transcription",
    "parse_tts_ws_message",
    "wav_bytes",
    "wav_header",
]
