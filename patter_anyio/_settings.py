"""Settings the runtime is built from: carrier accounts, provider keys, stream timeouts."""

from __future__ import annotations

from dataclasses import dataclass, field

from patter_core._base_urls import (
    DEFAULT_DEEPGRAM_BASE_URL,
    DEFAULT_ELEVENLABS_BASE_URL,
    DEFAULT_OPENAI_BASE_URL,
    DEFAULT_TELNYX_API,
    DEFAULT_TWILIO_API,
)
from patter_core.webhooks import RetryPolicy

__all__ = ["CarrierSettings", "ProviderSettings", "StreamTimeouts"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CarrierSettings:
    """Carrier accounts and the public host they reach us on."""

    webhook_host: str | None = None
    phone_number: str | None = None
    twilio_sid: str | None = None
    twilio_token: str | None = field(default=None, repr=False)
    telnyx_key: str | None = field(default=None, repr=False)
    telnyx_public_key: str | None = None
    telnyx_connection_id: str | None = None
    #: "PCMU" (default: G.711 both ways, certain on every leg) or "L16" (16 kHz).
    telnyx_codec: str = "PCMU"
    #: [R] PROTOCOLS.md §4.4: L16 byte order unverified; big-endian per RFC 3551.
    telnyx_l16_byte_order: str = "big"
    twilio_api_base_url: str = DEFAULT_TWILIO_API
    telnyx_api_base_url: str = DEFAULT_TELNYX_API
    #: Telnyx commands carry a command_id, so a 5xx or a lost connection is retried.
    telnyx_retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamTimeouts:
    """How long a media stream may go without ``start``, and a call without media."""

    #: Seconds from the upgrade to a valid ``start`` (pings do not count).
    start: float = 10.0
    #: Seconds a started call may go without media (carriers send it
    #: continuously, silence included).
    media: float = 15.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSettings:
    """AI provider keys and endpoints."""

    openai_key: str | None = field(default=None, repr=False)
    elevenlabs_key: str | None = field(default=None, repr=False)
    elevenlabs_agent_id: str | None = None
    deepgram_key: str | None = field(default=None, repr=False)
    openai_base_url: str = DEFAULT_OPENAI_BASE_URL
    elevenlabs_base_url: str = DEFAULT_ELEVENLABS_BASE_URL
    deepgram_base_url: str = DEFAULT_DEEPGRAM_BASE_URL
