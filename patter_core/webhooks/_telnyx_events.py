"""Telnyx Call Control webhooks as typed events (PROTOCOLS.md §4.1).

A webhook is a JSON envelope ``{"data": {"event_type", "id", "occurred_at",
"payload": {...}, "record_type"}, "meta": {...}}``. :func:`parse_telnyx_webhook`
checks the envelope's shape and returns one event per known ``event_type``,
or :class:`TelnyxUnknownEvent` for any other type (Telnyx adds types; we
must not fail on them). Every event keeps the whole ``payload``, read-only.

Telnyx may deliver a webhook twice or out of order (its "receiving webhooks"
guide): use ``event_id`` to drop duplicates. Parse the raw body only after
its signature has been verified.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .._errors import RemoteProtocolError
from .._json import load_message

__all__ = [
    "DEFAULT_MAX_TELNYX_WEBHOOK_BYTES",
    "TelnyxCallAnswered",
    "TelnyxCallHangup",
    "TelnyxCallInitiated",
    "TelnyxDtmfReceived",
    "TelnyxEvent",
    "TelnyxMachineDetectionEnded",
    "TelnyxMachineGreetingEnded",
    "TelnyxStreamingFailed",
    "TelnyxStreamingStarted",
    "TelnyxStreamingStopped",
    "TelnyxUnknownEvent",
    "decode_client_state",
    "encode_client_state",
    "parse_telnyx_webhook",
]

# Call webhooks are 1-3 KB; SIP headers and tags can grow them, so 256 KiB
# is ample headroom while bounding what a request can make us parse.
DEFAULT_MAX_TELNYX_WEBHOOK_BYTES = 256 * 1024
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"Telnyx webhook: {message}", http_status=400)


@dataclass(frozen=True, slots=True, kw_only=True)
class TelnyxEvent:
    """Fields every Call Control webhook carries."""

    event_type: str
    event_id: str | None = None
    occurred_at: str | None = None
    call_control_id: str | None = None
    call_leg_id: str | None = None
    call_session_id: str | None = None
    connection_id: str | None = None
    #: base64 text we set on a command, echoed back (see decode_client_state).
    client_state: str | None = None
    payload: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True, kw_only=True)
class TelnyxCallInitiated(TelnyxEvent):
    """``call.initiated``: a call arrived (``direction`` incoming) or was dialled."""

    direction: str | None = None
    from_: str | None = None
    to: str | None = None
    state: str | None = None
    caller_id_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TelnyxCallAnswered(TelnyxEvent):
    from_: str | None = None
    to: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TelnyxCallHangup(TelnyxEvent):
    """``call.hangup``: ``hangup_cause`` such as normal_clearing, user_busy;
    ``hangup_source`` caller, callee or unknown."""

    hangup_cause: str | None = None
    hangup_source: str | None = None
    sip_hangup_cause: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TelnyxStreamingStarted(TelnyxEvent):
    stream_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TelnyxStreamingStopped(TelnyxEvent):
    stream_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TelnyxStreamingFailed(TelnyxEvent):
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TelnyxMachineDetectionEnded(TelnyxEvent):
    """``call.machine.detection.ended``: ``result`` human, machine or not_sure."""

    result: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TelnyxMachineGreetingEnded(TelnyxEvent):
    """``call.machine.greeting.ended``: the machine's greeting is over (the
    moment to leave a message); ``result`` e.g. beep_detected, ended."""

    result: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TelnyxDtmfReceived(TelnyxEvent):
    digit: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TelnyxUnknownEvent(TelnyxEvent):
    """Any ``event_type`` we do not model; read ``payload``."""


def _str(payload: Mapping[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is None or isinstance(value, str):
        return value
    # Numbers where Telnyx documents strings (connection_id has been seen
    # both ways) are kept as text; anything else is a wrong shape.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _bad(f"{name} is not a string")


def parse_telnyx_webhook(
    body: bytes, *, max_bytes: int = DEFAULT_MAX_TELNYX_WEBHOOK_BYTES
) -> TelnyxEvent:
    """Decode a webhook body into one event.

    Raises RemoteProtocolError 413 for a body over ``max_bytes``, 400 for
    anything that is not the documented envelope: not UTF-8 JSON, ``data``
    or ``payload`` not an object, no string ``event_type``, a known call
    event without ``call_control_id``, a DTMF event without its digit.
    """
    document = load_message(body, max_bytes)
    data = document.get("data")
    if not isinstance(data, dict):
        raise _bad("no data object")
    event_type = data.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise _bad("no event_type")
    raw_payload = data.get("payload", {})
    if not isinstance(raw_payload, dict):
        raise _bad("payload is not an object")
    payload: Mapping[str, Any] = MappingProxyType(raw_payload)
    common: dict[str, Any] = {
        "event_type": event_type,
        "event_id": _str(data, "id"),
        "occurred_at": _str(data, "occurred_at"),
        "call_control_id": _str(payload, "call_control_id"),
        "call_leg_id": _str(payload, "call_leg_id"),
        "call_session_id": _str(payload, "call_session_id"),
        "connection_id": _str(payload, "connection_id"),
        "client_state": _str(payload, "client_state"),
        "payload": payload,
    }
    builder = _BUILDERS.get(event_type)
    if builder is None:
        return TelnyxUnknownEvent(**common)
    if not common["call_control_id"]:
        raise _bad(f"{event_type} without call_control_id")
    return builder(payload, common)


def _initiated(p: Mapping[str, Any], common: dict[str, Any]) -> TelnyxEvent:
    return TelnyxCallInitiated(
        **common,
        direction=_str(p, "direction"),
        from_=_str(p, "from"),
        to=_str(p, "to"),
        state=_str(p, "state"),
        caller_id_name=_str(p, "caller_id_name"),
    )


def _answered(p: Mapping[str, Any], common: dict[str, Any]) -> TelnyxEvent:
    return TelnyxCallAnswered(**common, from_=_str(p, "from"), to=_str(p, "to"))


def _hangup(p: Mapping[str, Any], common: dict[str, Any]) -> TelnyxEvent:
    return TelnyxCallHangup(
        **common,
        hangup_cause=_str(p, "hangup_cause"),
        hangup_source=_str(p, "hangup_source"),
        sip_hangup_cause=_str(p, "sip_hangup_cause"),
    )


def _dtmf(p: Mapping[str, Any], common: dict[str, Any]) -> TelnyxEvent:
    digit = _str(p, "digit")
    if not digit:
        raise _bad("call.dtmf.received without digit")
    return TelnyxDtmfReceived(**common, digit=digit)


_Builder = Callable[[Mapping[str, Any], dict[str, Any]], TelnyxEvent]
_BUILDERS: dict[str, _Builder] = {
    "call.initiated": _initiated,
    "call.answered": _answered,
    "call.hangup": _hangup,
    "streaming.started": lambda p, c: TelnyxStreamingStarted(**c, stream_url=_str(p, "stream_url")),
    "streaming.stopped": lambda p, c: TelnyxStreamingStopped(**c, stream_url=_str(p, "stream_url")),
    "streaming.failed": lambda p, c: TelnyxStreamingFailed(
        **c, failure_reason=_str(p, "failure_reason")
    ),
    "call.machine.detection.ended": lambda p, c: TelnyxMachineDetectionEnded(
        **c, result=_str(p, "result")
    ),
    "call.machine.greeting.ended": lambda p, c: TelnyxMachineGreetingEnded(
        **c, result=_str(p, "result")
    ),
    "call.dtmf.received": _dtmf,
}


def encode_client_state(data: bytes | str) -> str:
    """base64 text for a command's ``client_state`` (Telnyx requires base64)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def decode_client_state(client_state: str) -> bytes:
    """The bytes behind an echoed ``client_state``; RemoteProtocolError(400)
    when it is not base64 (it came back over the network)."""
    try:
        return base64.b64decode(client_state.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise _bad("client_state is not base64") from None
