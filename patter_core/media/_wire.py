"""Decoding one carrier WebSocket message into checked Python values.

The peer's bad input must leave as :class:`RemoteProtocolError` carrying the
WebSocket close code to answer with (RFC 6455 section 7.4.1), never as a
``KeyError``, ``TypeError``, ``UnicodeDecodeError`` or ``binascii.Error``:

* 1007 (invalid payload data): not UTF-8, not JSON, not an object, a field of
  the wrong type, bad base64;
* 1009 (message too big): over :attr:`MediaLimits.max_message_bytes` or a
  decoded payload over :attr:`MediaLimits.max_payload_bytes`;
* 1002 (protocol error): a well-formed message at the wrong moment (decided
  by the stream objects, not here);
* 1003 (unsupported data): a media format we cannot carry.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

from .._errors import RemoteProtocolError

__all__ = [
    "CLOSE_BAD_DATA",
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL",
    "CLOSE_TOO_BIG",
    "CLOSE_UNSUPPORTED",
    "JsonObject",
    "bad",
    "decode_payload",
    "get_counter",
    "get_object",
    "get_str",
    "load_message",
]

CLOSE_PROTOCOL = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_BAD_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009

JsonObject = dict[str, Any]

# Counters travel as decimal strings ("sequenceNumber":"4"). Eighteen digits
# hold any realistic count and keep int() far from Python's 4300-digit guard.
_MAX_COUNTER_DIGITS = 18


def bad(message: str, close_code: int = CLOSE_BAD_DATA) -> RemoteProtocolError:
    return RemoteProtocolError(message, close_code=close_code)


def load_message(message: str | bytes, max_bytes: int) -> JsonObject:
    """Parse one text message into a JSON object, enforcing the size limit."""
    if isinstance(message, str):
        size = len(message)
        # A str of n characters is between n and 4n UTF-8 bytes; only encode
        # (to measure) when the cheap bound cannot decide. "surrogatepass"
        # only measures: a WebSocket layer never hands us lone surrogates.
        if size > max_bytes // 4:
            size = len(message.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise bad(f"message of {size} bytes exceeds {max_bytes}", CLOSE_TOO_BIG)
        text = message
    elif isinstance(message, bytes | bytearray | memoryview):
        if len(message) > max_bytes:
            raise bad(f"message of {len(message)} bytes exceeds {max_bytes}", CLOSE_TOO_BIG)
        try:
            text = bytes(message).decode("utf-8")
        except UnicodeDecodeError:
            raise bad("message is not valid UTF-8") from None
    else:
        raise TypeError(f"message must be str or bytes, not {type(message).__name__}")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        # JSONDecodeError is a ValueError; so are over-long integer literals.
        # Deeply nested arrays exhaust the decoder's recursion guard.
        raise bad("message is not valid JSON") from None
    if not isinstance(value, dict):
        raise bad("message is not a JSON object")
    return value


def get_object(obj: JsonObject, key: str, *, required: bool = True) -> JsonObject:
    value = obj.get(key)
    if isinstance(value, dict):
        return value
    if value is None and not required:
        return {}
    raise bad(f"{key!r} must be a JSON object")


def get_str(obj: JsonObject, key: str, default: str | None = None) -> str:
    """A string field; missing (or null) gives ``default``, or fails if there is none."""
    value = obj.get(key)
    if isinstance(value, str):
        return value
    if value is None and default is not None:
        return default
    raise bad(f"{key!r} must be a string")


def get_counter(obj: JsonObject, key: str) -> int:
    """A non-negative counter sent as a decimal string (or, leniently, a JSON int); 0 if absent."""
    value = obj.get(key)
    if value is None:
        return 0
    if isinstance(value, str):
        if 0 < len(value) <= _MAX_COUNTER_DIGITS and value.isascii() and value.isdigit():
            return int(value)
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**18:
        return value
    raise bad(f"{key!r} must be a non-negative decimal counter")


def decode_payload(media: JsonObject, max_bytes: int, sample_bytes: int) -> bytes:
    """Decode ``media.payload`` (standard base64, padded) into raw audio bytes."""
    text = media.get("payload")
    if not isinstance(text, str):
        raise bad("'payload' must be a base64 string")
    # Refuse before allocating: 4 base64 characters carry 3 bytes, less up
    # to 2 for the padding.
    if len(text) // 4 * 3 - 2 > max_bytes:
        raise bad(f"payload exceeds {max_bytes} bytes", CLOSE_TOO_BIG)
    try:
        audio = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        # binascii.Error for bad characters or padding; ValueError for non-ASCII.
        raise bad("payload is not valid base64") from None
    if len(audio) > max_bytes:
        raise bad(f"payload exceeds {max_bytes} bytes", CLOSE_TOO_BIG)
    if len(audio) % sample_bytes:
        raise bad("payload is not a whole number of samples")
    return audio
