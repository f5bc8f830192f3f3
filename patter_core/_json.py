"""Strict readers for a peer's JSON messages: one message, one field at a time.

Every protocol that reads JSON from a peer (the carriers' media streams, the
realtime providers) parses it here, so the peer's bad input leaves as one
exception, :class:`MalformedMessage`, and never as a ``KeyError``,
``TypeError``, ``UnicodeDecodeError`` or ``json.JSONDecodeError``. It is a
:class:`~patter_core.RemoteProtocolError` carrying the WebSocket close code to
answer with (RFC 6455 section 7.4.1): 1007 (invalid payload data) for a
message that is not a JSON object or a field of the wrong type, 1009 (message
too big) for one over the size limit, and the matching HTTP status (400, 413)
for a webhook body. A carrier stream closes with it; a provider session
counts it and reports a non-fatal error.

Absent and ``null`` are the same to every reader: senders write both for
"no value".
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable
from typing import Any

from ._errors import CLOSE_TOO_BIG, MalformedMessage

__all__ = [
    "JSON_COUNTER",
    "JSON_PLAIN_STR",
    "JSON_UINT",
    "JsonObject",
    "b64decode",
    "get_counter",
    "get_int",
    "get_object",
    "get_str",
    "load_message",
    "opt_str",
]

JsonObject = dict[str, Any]

# Counters travel as decimal strings ("sequenceNumber":"4"). Eighteen digits
# hold any realistic count and keep int() far from Python's 4300-digit guard.
_MAX_COUNTER_DIGITS = 18


# Pieces of the exact-shape readers: a media message in the shape its sender
# documents (compact, key order and all) is read by one regular expression up
# to its audio, and the audio sliced out, instead of being parsed into a dict
# field by field. A reader returns what the general path would, or None,
# and then the general path reads the message (and says what is wrong with
# it, if anything). JSON_PLAIN_STR is a string's content without escapes or
# control characters (decoding it gives the same characters); JSON_UINT a
# JSON integer short of Python's digit limit; JSON_COUNTER the content of
# a string that get_counter takes (1 to 18 ASCII digits).
JSON_PLAIN_STR = r'[^"\\\x00-\x1f]*'
JSON_UINT = r"(?:0|[1-9][0-9]{0,17})"
JSON_COUNTER = f"[0-9]{{1,{_MAX_COUNTER_DIGITS}}}"

# The decoder's scanner, called directly: ``json.loads`` wraps it in two
# Python frames and two whitespace regex matches per call, which on a
# call's ~100 messages a second cost more than the parse itself
# (DESIGN.md, "The hot path"). Anything the scanner does not take whole
# from the first character (leading or trailing whitespace, a BOM, an
# error) goes to ``json.loads``, so the rules and messages stay its own.
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads(text: str) -> Any:
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return json.loads(text)
    if end != len(text):
        return json.loads(text)
    return value


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
            raise MalformedMessage(
                f"message of {size} bytes exceeds {max_bytes}", close_code=CLOSE_TOO_BIG
            )
        text = message
    elif isinstance(message, bytes | bytearray | memoryview):
        if len(message) > max_bytes:
            raise MalformedMessage(
                f"message of {len(message)} bytes exceeds {max_bytes}", close_code=CLOSE_TOO_BIG
            )
        try:
            text = bytes(message).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMessage("message is not valid UTF-8") from None
    else:
        raise TypeError(f"message must be str or bytes, not {type(message).__name__}")
    try:
        value = _loads(text)
    except (ValueError, RecursionError):
        # JSONDecodeError is a ValueError; so are over-long integer literals.
        # Deeply nested arrays exhaust the decoder's recursion guard.
        raise MalformedMessage("message is not valid JSON") from None
    if not isinstance(value, dict):
        raise MalformedMessage("message is not a JSON object")
    return value


def get_object(obj: JsonObject, key: str, *, required: bool = True) -> JsonObject:
    """An object field; absent gives ``{}`` when not ``required``."""
    value = obj.get(key)
    if isinstance(value, dict):
        return value
    if value is None and not required:
        return {}
    raise MalformedMessage(f"{key!r} must be a JSON object")


def get_str(obj: JsonObject, key: str, default: str | None = None) -> str:
    """A string field; absent gives ``default``, or fails if there is none."""
    value = obj.get(key)
    if isinstance(value, str):
        return value
    if value is None and default is not None:
        return default
    raise MalformedMessage(f"{key!r} must be a string")


def opt_str(obj: JsonObject, key: str) -> str | None:
    """A string field, or ``None`` when absent."""
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedMessage(f"{key!r} must be a string or absent")


def get_int(obj: JsonObject, key: str) -> int:
    """A JSON integer field (``true`` is not one, though Python says bool is an int)."""
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise MalformedMessage(f"{key!r} must be an integer")


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
    raise MalformedMessage(f"{key!r} must be a non-negative decimal counter")


def b64decode(text: str) -> bytes:
    """A field's standard base64 (audio, mostly), decoded strictly."""
    # Strict: the lenient mode silently skips characters outside the alphabet,
    # which would turn a corrupted delta into a shorter, wrong one.
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except ValueError:  # binascii.Error subclasses ValueError; so do non-ASCII strs
        raise MalformedMessage("bad base64 audio") from None
