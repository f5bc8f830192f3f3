"""Why a provider refused us, in one line a user can act on.

A provider that refuses the WebSocket handshake answers with an HTTP status
and usually a small JSON body saying why: OpenAI ``{"error": {"message":
"Incorrect API key provided: ..."}}``, ElevenLabs ``{"detail": {"status":
..., "message": ...}}`` (or a plain ``detail`` string), Deepgram ``{"err_code":
..., "err_msg": ...}``. :func:`describe_refusal` turns that into ``"HTTP 401:
Incorrect API key provided: ..."`` for the log and ``on_call_end``'s
``detail``: printable, one line, bounded (the body is the peer's text).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["describe_refusal"]

#: Long enough for every provider's error sentence, short enough for a log line.
MAX_DETAIL_CHARS = 200


def _message(data: Any) -> str | None:
    if isinstance(data, str):
        return data
    if not isinstance(data, dict):
        return None
    for key in ("error", "detail"):
        found = _message(data.get(key))
        if found:
            return found
    for key in ("message", "err_msg", "msg"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _one_line(text: str) -> str:
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(cleaned.split())[:MAX_DETAIL_CHARS]


def describe_refusal(status: int | None, body: bytes) -> str:
    """``"HTTP <status>: <the provider's own words>"`` (or just the status)."""
    head = f"HTTP {status}" if status is not None else "handshake refused"
    text = body.decode("utf-8", "replace")
    try:
        found = _message(json.loads(text)) if text.strip() else None
    except (ValueError, RecursionError):
        found = text
    detail = _one_line(found or "")
    return f"{head}: {detail}" if detail else head
