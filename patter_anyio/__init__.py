"""patter_anyio: the thin anyio runtime (sockets, timers, tasks) around patter_core."""

from ._agent import Agent, InvalidOption, Tool
from ._cli import build_app, main, run_server
from ._config import ConfigError, ServerConfig, config_from_args
from ._console import BindError
from ._patter import Patter
from .calls._app import WebhookApp, WebhookHooks, read_until_close
from .calls._call import CallHooks, CallRunner
from .calls._outbound import CallResult, ServerStopped
from .calls._runtime import CarrierSettings, LocalRuntime, ProviderSettings
from .net._httpclient import (
    ClientConnectionError,
    ClientError,
    ClientProtocolError,
    ClientTimeout,
    HttpPool,
    RedirectRefused,
    ResponseTooLarge,
    StreamingResponse,
    request,
    stream_request,
)
from .net._server import Application, Server, ServerRequest, StreamHandler, StreamRequest
from .net._websocket import WebSocket, WebSocketClosed
from .net._wsclient import connect_websocket

__all__ = [
    "Agent",
    "Application",
    "BindError",
    "CallHooks",
    "CallResult",
    "CallRunner",
    "CarrierSettings",
    "ClientConnectionError",
    "ClientError",
    "ClientProtocolError",
    "ClientTimeout",
    "ConfigError",
    "HttpPool",
    "InvalidOption",
    "LocalRuntime",
    "Patter",
    "ProviderSettings",
    "RedirectRefused",
    "ResponseTooLarge",
    "Server",
    "ServerConfig",
    "ServerRequest",
    "ServerStopped",
    "StreamHandler",
    "StreamRequest",
    "StreamingResponse",
    "Tool",
    "WebSocket",
    "WebSocketClosed",
    "WebhookApp",
    "WebhookHooks",
    "build_app",
    "config_from_args",
    "connect_websocket",
    "main",
    "read_until_close",
    "request",
    "run_server",
    "stream_request",
]

__version__ = "0.1.0"
