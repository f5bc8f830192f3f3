"""The call bridge: one pure object per call between carrier and AI agent."""

from ._actions import (
    Action,
    CallbackName,
    CloseCarrier,
    FireCallback,
    HttpCall,
    LogProblem,
    ProviderIo,
    RunTool,
    SendToCarrier,
    SetTimer,
)
from ._bridge import CallBridge
from ._config import (
    BridgeConfig,
    CallInfo,
    CarrierControl,
    MediaStream,
    SessionFactory,
    TokenVerifier,
    ToolSpec,
    TranscoderFactory,
    Transcoding,
    default_transcoder,
    fill_prompt_variables,
    normalize_number,
)
from ._tools import END_CALL, TRANSFER_CALL, offered_tools

__all__ = [
    "END_CALL",
    "TRANSFER_CALL",
    "Action",
    "BridgeConfig",
    "CallBridge",
    "CallInfo",
    "CallbackName",
    "CarrierControl",
    "CloseCarrier",
    "FireCallback",
    "HttpCall",
    "LogProblem",
    "MediaStream",
    "ProviderIo",
    "RunTool",
    "SendToCarrier",
    "SessionFactory",
    "SetTimer",
    "TokenVerifier",
    "ToolSpec",
    "TranscoderFactory",
    "Transcoding",
    "default_transcoder",
    "fill_prompt_variables",
    "normalize_number",
    "offered_tools",
]
