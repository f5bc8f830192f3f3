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
import re

from .._errors import CLOSE_BAD_DATA, CLOSE_TOO_BIG, RemoteProtocolError
from .._json import (
    JSON_COUNTER,
    JSON_PLAIN_STR,
    JsonObject,
    get_counter,
    get_object,
    get_str,
    load_message,
)

__all__ = [
    "CLOSE_BAD_DATA",
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL",
    "CLOSE_TOO_BIG",
    "CLOSE_UNSUPPORTED",
    "JsonObject",
    "bad",
    "decode_audio",
    "decode_payload",
    "get_counter",
    "get_object",
    "get_str",
    "load_message",
    "media_head",
]

# The JSON readers above are the core's own (patter_core/_json.py); the streams
# take them from here with the close codes.
CLOSE_PROTOCOL = 1002
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008


def bad(message: str, close_code: int = CLOSE_BAD_DATA) -> RemoteProtocolError:
    return RemoteProtocolError(message, close_code=close_code)


def decode_payload(media: JsonObject, max_bytes: int, sample_bytes: int) -> bytes:
    """Decode ``media.payload`` (standard base64, padded) into raw audio bytes."""
    text = media.get("payload")
    if not isinstance(text, str):
        raise bad("'payload' must be a base64 string")
    return decode_audio(text, max_bytes, sample_bytes)


def decode_audio(text: str, max_bytes: int, sample_bytes: int) -> bytes:
    """A payload's base64 text as raw audio bytes, with the same limits."""
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


def media_head(sequence_key: str) -> re.Pattern[str]:
    """A media message as its carrier documents it, compact and in key order
    (Twilio and Telnyx differ only in the sequence's name), up to its
    payload: groups ``seq``, ``track``, ``chunk``, ``ts``. For the
    exact-shape readers (``CarrierStream._media_shape``)."""
    return re.compile(
        '{"event":"media","'
        + sequence_key
        + '":"(?P<seq>'
        + JSON_COUNTER
        + ')","media":{"track":"(?P<track>'
        + JSON_PLAIN_STR
        + ')","chunk":"(?P<chunk>'
        + JSON_COUNTER
        + ')","timestamp":"(?P<ts>'
        + JSON_COUNTER
        + ')","payload":"'
    )
