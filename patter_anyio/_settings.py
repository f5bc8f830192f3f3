"""Settings the runtime is built from: carrier accounts, provider keys, stream timeouts.

One model, built one way: the command line (flags and environment) and
``Patter(...)`` (arguments, else environment) each say where a value came
from (a :class:`Given`: the value and the name an error calls it by: the
flag, the variable or the argument), and :func:`build_settings` checks,
normalises and defaults them all alike into the frozen
:class:`CarrierSettings` and :class:`ProviderSettings` the runtime uses.
What differs between the doors is only where they read and what their
errors are (``fail``: :class:`ConfigError` for the CLI, ``InvalidOption``
for the Python API).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from patter_core import PatterError
from patter_core._base_urls import (
    DEFAULT_DEEPGRAM_BASE_URL,
    DEFAULT_ELEVENLABS_BASE_URL,
    DEFAULT_OPENAI_BASE_URL,
    DEFAULT_TELNYX_API,
    DEFAULT_TWILIO_API,
)
from patter_core.bridge._config import e164_number
from patter_core.webhooks import RetryPolicy

from ._errors import ConfigError

__all__ = [
    "KEY_VARIABLES",
    "URL_VARIABLES",
    "CarrierSettings",
    "Given",
    "ProviderSettings",
    "StreamTimeouts",
    "build_settings",
    "given",
    "normalise_webhook_host",
]


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


class Given(NamedTuple):
    """One setting as a door received it (None: not given)."""

    value: str | None
    #: What an error calls it: ``--phone-number``, ``OPENAI_BASE_URL``, ``phone_number``.
    name: str


def given(
    value: str | None, name: str, env: Mapping[str, str] | None = None, variable: str = ""
) -> Given:
    """The value a flag or an argument gave, else ``variable`` from ``env``
    (blank counts as unset); an error names whichever was used."""
    if value is not None or env is None or not variable:
        return Given(value, name)
    return Given(env.get(variable, "").strip() or None, variable)


Fail = Callable[[str], PatterError]

#: Keys both doors read from the environment when not given otherwise.
KEY_VARIABLES = {
    "twilio_sid": "TWILIO_ACCOUNT_SID",
    "twilio_token": "TWILIO_AUTH_TOKEN",
    "telnyx_key": "TELNYX_API_KEY",
    "telnyx_public_key": "TELNYX_PUBLIC_KEY",
    "openai_key": "OPENAI_API_KEY",
    "elevenlabs_key": "ELEVENLABS_API_KEY",
    "elevenlabs_agent_id": "ELEVENLABS_AGENT_ID",
    "deepgram_key": "DEEPGRAM_API_KEY",
}
#: Endpoints the command line reads from the environment (the API takes arguments).
URL_VARIABLES = {
    "openai_base_url": "OPENAI_BASE_URL",
    "elevenlabs_base_url": "ELEVENLABS_BASE_URL",
    "deepgram_base_url": "DEEPGRAM_BASE_URL",
    "twilio_api_base_url": "TWILIO_API_BASE_URL",
    "telnyx_api_base_url": "TELNYX_API_BASE_URL",
}

_HOST_PORT = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_HTTP = ("http://", "https://")
_HTTP_OR_WS = (*_HTTP, "ws://", "wss://")
#: Base URLs: REST endpoints take http(s); Deepgram's streaming one either.
_BASE_URL_SCHEMES = {
    "openai_base_url": _HTTP,
    "elevenlabs_base_url": _HTTP,
    "deepgram_base_url": _HTTP_OR_WS,
    "twilio_api_base_url": _HTTP,
    "telnyx_api_base_url": _HTTP,
}
_CARRIER_FIELDS = frozenset(f.name for f in fields(CarrierSettings))
_PROVIDER_FIELDS = frozenset(f.name for f in fields(ProviderSettings))


def _config_error(message: str) -> PatterError:
    return ConfigError(message)


def normalise_webhook_host(
    value: str, *, name: str = "--webhook-url", fail: Fail = _config_error
) -> str:
    """``https://abc.ngrok.app/`` -> ``abc.ngrok.app`` (scheme and slash dropped);
    ``name`` is what the error calls the setting."""
    host = value.strip()
    for prefix in ("https://", "http://", "wss://", "ws://"):
        if host.lower().startswith(prefix):
            host = host[len(prefix) :]
            break
    host = host.rstrip("/")
    if not _HOST_PORT.fullmatch(host):
        raise fail(f"{name} must be a public host such as abc.ngrok.app, not {value!r}")
    return host


def build_settings(
    settings: Mapping[str, Given], *, fail: Fail = _config_error, **plain: Any
) -> tuple[CarrierSettings, ProviderSettings]:
    """The carrier and provider settings from what a door was given.

    ``settings`` maps a field of :class:`CarrierSettings` or
    :class:`ProviderSettings` to its :class:`Given`; an unset one takes the
    field's default. ``plain`` are fields with no text to check (the Telnyx
    connection id and codec, already checked by their door). Every check
    raises ``fail(one line naming the setting as it was given)``.
    """
    values: dict[str, Any] = {}
    for key, (value, name) in settings.items():
        if value is None:
            continue
        if key == "webhook_host":
            value = normalise_webhook_host(value, name=name, fail=fail)
        elif key == "phone_number" and e164_number(value) is None:
            raise fail(f"{name} must be an E.164 number such as +15550001111, not {value!r}")
        elif key in _BASE_URL_SCHEMES:
            schemes = _BASE_URL_SCHEMES[key]
            if not value.startswith(schemes):
                kind = "an http(s) or ws(s)" if schemes is _HTTP_OR_WS else "an http(s)"
                raise fail(f"{name} must be {kind} URL, not {value!r}")
            value = value.rstrip("/")
        elif key == "telnyx_public_key":
            from patter_core.webhooks import TelnyxSignatureVerifier

            try:
                TelnyxSignatureVerifier(value)
            except PatterError:
                raise fail(f"{name} is not a base64 Ed25519 public key") from None
        values[key] = value
    values.update(plain)
    unknown = set(values) - _CARRIER_FIELDS - _PROVIDER_FIELDS
    assert not unknown, f"not a setting: {sorted(unknown)}"
    return (
        CarrierSettings(**{k: v for k, v in values.items() if k in _CARRIER_FIELDS}),
        ProviderSettings(**{k: v for k, v in values.items() if k in _PROVIDER_FIELDS}),
    )
