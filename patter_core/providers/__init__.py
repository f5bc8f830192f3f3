"""AI provider session protocols and their common events and commands."""

from ._echo import EchoConfig, EchoSession
from ._elevenlabs import ElevenLabsConfig, ElevenLabsSession
from ._events import (
    AnswerStage,
    AudioOut,
    Cancel,
    HoldBargeIn,
    ProviderCommand,
    ProviderError,
    ProviderEvent,
    ResponseDone,
    ResumeBargeIn,
    Say,
    SendAudio,
    SendText,
    SessionLimit,
    SessionReady,
    ToolCall,
    ToolResult,
    Transcript,
    Truncate,
    UpdateInstructions,
    UserSpeechStarted,
    UserSpeechStopped,
)
from ._io import (
    MAIN_CHANNEL,
    ChannelId,
    HandlerReplied,
    HttpData,
    HttpDone,
    HttpFailed,
    HttpStarted,
    IoResult,
    SocketClosed,
    SocketMessage,
    SocketOpened,
)
from ._openai_realtime import OpenAIRealtimeConfig, OpenAIRealtimeSession, OpenAITurnDetection
from ._selection import (
    SttName,
    TtsName,
    can_prewarm,
    greets_natively,
    pipeline_parts,
    pipeline_parts_problem,
    select_session,
    selected_models,
    selection_problem,
    session_config,
)
from ._session import (
    CallHandler,
    CloseSocket,
    IoAction,
    OpenSocket,
    ProviderSession,
    SendMessage,
    StartHttp,
)
from ._warm import WarmSession
from .pipeline import (
    DeepgramConfig,
    ElevenLabsTtsConfig,
    ElevenLabsWsTtsConfig,
    LlmConfig,
    OpenAISttConfig,
    OpenAITtsConfig,
    PipelineConfig,
    PipelineSession,
)

__all__ = [
    "AnswerStage",
    "AudioOut",
    "CallHandler",
    "Cancel",
    "CloseSocket",
    "HoldBargeIn",
    "IoAction",
    "OpenSocket",
    "ProviderCommand",
    "ProviderError",
    "ProviderEvent",
    "ProviderSession",
    "ResponseDone",
    "ResumeBargeIn",
    "Say",
    "SendAudio",
    "SendMessage",
    "SendText",
    "SessionLimit",
    "SessionReady",
    "StartHttp",
    "ToolCall",
    "ToolResult",
    "Transcript",
    "Truncate",
    "UpdateInstructions",
    "UserSpeechStarted",
    "UserSpeechStopped",
    "WarmSession",
]

# What the runtime reports about a session's I/O (``receive_io``).
__all__ += [
    "MAIN_CHANNEL",
    "ChannelId",
    "HandlerReplied",
    "HttpData",
    "HttpDone",
    "HttpFailed",
    "HttpStarted",
    "IoResult",
    "SocketClosed",
    "SocketMessage",
    "SocketOpened",
]

# Realtime providers (OpenAI Realtime, ElevenLabs Conversational AI).
__all__ += [
    "ElevenLabsConfig",
    "ElevenLabsSession",
    "OpenAIRealtimeConfig",
    "OpenAIRealtimeSession",
    "OpenAITurnDetection",
]

# The speech-to-text -> handler or LLM -> text-to-speech pipeline.
__all__ += [
    "DeepgramConfig",
    "ElevenLabsTtsConfig",
    "ElevenLabsWsTtsConfig",
    "LlmConfig",
    "OpenAISttConfig",
    "OpenAITtsConfig",
    "PipelineConfig",
    "PipelineSession",
]

# The echo agent (no network): repeats the caller, for trying a line out.
__all__ += ["EchoConfig", "EchoSession"]

# Which session a call of an agent talks to (the product's defaults).
__all__ += [
    "SttName",
    "TtsName",
    "can_prewarm",
    "greets_natively",
    "pipeline_parts",
    "pipeline_parts_problem",
    "select_session",
    "selected_models",
    "selection_problem",
    "session_config",
]
