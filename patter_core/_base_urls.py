"""The public base URL of every service we call, defined once, and its override.

Each vendor's SDK lets its base URL be overridden through the environment
(``OPENAI_BASE_URL``, ``ELEVENLABS_BASE_URL``, ``DEEPGRAM_BASE_URL``) to reach a
proxy, a regional server or a test double; the carriers' REST bases follow the
same pattern here (``TWILIO_API_BASE_URL``, ``TELNYX_API_BASE_URL``).

A base is an ``http(s)://`` URL, the form the SDKs use; where a service speaks
WebSocket (OpenAI Realtime, ElevenLabs, Deepgram live transcription) the
``ws(s)://`` URL is derived from it by swapping the scheme
(:func:`patter_core.providers._urls.to_websocket_url`), so one base serves a
service's REST and WebSocket endpoints alike. Deepgram is no exception:
``https://api.deepgram.com`` becomes ``wss://api.deepgram.com/v1/listen``.

The core never reads the environment itself: the runtime passes its
``os.environ`` to :func:`base_url_from_env`.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "BASE_URL_VARIABLES",
    "DEFAULT_DEEPGRAM_BASE_URL",
    "DEFAULT_ELEVENLABS_BASE_URL",
    "DEFAULT_OPENAI_BASE_URL",
    "DEFAULT_TELNYX_API",
    "DEFAULT_TWILIO_API",
    "base_url_from_env",
]

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_ELEVENLABS_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_DEEPGRAM_BASE_URL = "https://api.deepgram.com"
# Twilio's REST paths carry their own version (/2010-04-01/...); Telnyx's do not.
DEFAULT_TWILIO_API = "https://api.twilio.com"
DEFAULT_TELNYX_API = "https://api.telnyx.com/v2"

#: Each override's environment variable and the default it replaces.
BASE_URL_VARIABLES: Mapping[str, str] = {
    "OPENAI_BASE_URL": DEFAULT_OPENAI_BASE_URL,
    "ELEVENLABS_BASE_URL": DEFAULT_ELEVENLABS_BASE_URL,
    "DEEPGRAM_BASE_URL": DEFAULT_DEEPGRAM_BASE_URL,
    "TWILIO_API_BASE_URL": DEFAULT_TWILIO_API,
    "TELNYX_API_BASE_URL": DEFAULT_TELNYX_API,
}


def base_url_from_env(env: Mapping[str, str], variable: str) -> str:
    """``env[variable]`` if set and non-empty, else the public default."""
    return env.get(variable) or BASE_URL_VARIABLES[variable]
