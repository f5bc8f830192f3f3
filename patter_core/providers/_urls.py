"""Base URLs of the realtime providers, and the endpoints derived from them.

The defaults and their environment overrides live in
:mod:`patter_core._base_urls`. The configuration carries an ``http(s)://``
base and the WebSocket URL is derived from it by swapping the scheme (http ->
ws, https -> wss). The core never reads the environment itself; the runtime
passes its ``os.environ`` to the ``*_from_env`` functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from .._base_urls import base_url_from_env
from .._errors import LocalProtocolError

__all__ = [
    "elevenlabs_base_url_from_env",
    "elevenlabs_conversation_url",
    "elevenlabs_signed_url_endpoint",
    "openai_base_url_from_env",
    "openai_realtime_url",
    "to_websocket_url",
]


_WS_SCHEME = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_HTTP_SCHEME = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def _split_base(base_url: str) -> tuple[str, str]:
    """Return (scheme, rest-without-trailing-slash) or raise LocalProtocolError."""
    if not isinstance(base_url, str):
        raise LocalProtocolError(f"base_url must be a str, not {type(base_url).__name__}")
    parts = urlsplit(base_url)
    scheme = parts.scheme.lower()
    if scheme not in _WS_SCHEME or not parts.netloc:
        raise LocalProtocolError(f"base_url must be an absolute http(s) or ws(s) URL: {base_url!r}")
    if parts.query or parts.fragment:
        raise LocalProtocolError(f"base_url must not carry a query or fragment: {base_url!r}")
    return scheme, base_url[len(parts.scheme) :].rstrip("/")


def to_websocket_url(base_url: str) -> str:
    """``https://host/v1`` -> ``wss://host/v1`` (ws/wss pass through)."""
    scheme, rest = _split_base(base_url)
    return _WS_SCHEME[scheme] + rest


def _to_http_url(base_url: str) -> str:
    scheme, rest = _split_base(base_url)
    return _HTTP_SCHEME[scheme] + rest


def openai_realtime_url(base_url: str, model: str) -> str:
    """The GA Realtime endpoint: ``{ws base}/realtime?model=...`` (PROTOCOLS.md §5.1)."""
    return f"{to_websocket_url(base_url)}/realtime?model={quote(model, safe='')}"


def elevenlabs_conversation_url(base_url: str, agent_id: str) -> str:
    """The public-agent endpoint ``/v1/convai/conversation?agent_id=...`` (§6)."""
    return (
        f"{to_websocket_url(base_url)}/v1/convai/conversation?agent_id={quote(agent_id, safe='')}"
    )


def elevenlabs_signed_url_endpoint(base_url: str, agent_id: str) -> str:
    """The HTTPS endpoint that trades an API key for a signed WebSocket URL (§6)."""
    return (
        f"{_to_http_url(base_url)}/v1/convai/conversation/get-signed-url"
        f"?agent_id={quote(agent_id, safe='')}"
    )


def openai_base_url_from_env(env: Mapping[str, str]) -> str:
    """``OPENAI_BASE_URL`` if set and non-empty, else the public API."""
    return base_url_from_env(env, "OPENAI_BASE_URL")


def elevenlabs_base_url_from_env(env: Mapping[str, str]) -> str:
    """``ELEVENLABS_BASE_URL`` if set and non-empty, else the public API."""
    return base_url_from_env(env, "ELEVENLABS_BASE_URL")
