"""Carrying an OpenAI Realtime conversation over to a new session before the old one expires.

Theory of operation
-------------------

A Realtime session ends at ``session.expires_at`` (60 minutes; the server
closes with 1001 and no warning). ``renew_before_expiry`` seconds before
that, :class:`~patter_core.providers.OpenAIRealtimeSession` opens a second
socket on a new channel (``main.2``, ``main.3`` ...) while the call goes on
over the first::

    renewal socket opened   -> session.update (same instructions, tools, audio)
    its session.updated     -> the conversation so far as conversation.item.create
                               (user turns as input_text, agent turns as output_text)
    old session idle        -> switch: caller audio and commands go to the new
                               channel from the next frame; the old socket is closed

"Idle" is no active response and no tool call waiting for its output, so no
answer is cut and no output goes to a session that never saw its call; at
``SWITCH_BY_SECONDS`` before the old session's end the switch happens
regardless. Caller audio is never held back: until the switch it goes to
the old session, then to the new one. If the new session cannot be set up
(refused, closed, not ready within the set-up timeout) the session reports
:class:`~patter_core.providers.SessionLimit` so the bridge ends the call
with a closing line (``provider_limit``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ._base import dumps
from ._io import ChannelId

__all__ = ["MAX_HISTORY_ITEMS", "SWITCH_BY_SECONDS", "Renewal", "history_items"]

#: Switch to the new session at the latest this long before the old one ends,
#: even mid-answer: the server's own close would cut it anyway.
SWITCH_BY_SECONDS = 10.0
#: Transcript segments carried over. An hour's call has a few hundred; the
#: newest 200 keep the context that matters within the model's window.
MAX_HISTORY_ITEMS = 200


@dataclass(slots=True)
class Renewal:
    """One replacement session being set up."""

    channel: ChannelId
    deadline: float  # ready by then, or the renewal failed
    expires_at: float | None = None
    session_id: str | None = None
    ready: bool = False


def history_items(history: Iterable[tuple[str, str]]) -> list[str]:
    """``conversation.item.create`` messages re-telling ``(role, text)`` turns, in order."""
    out = []
    for role, text in history:
        kind = "output_text" if role == "assistant" else "input_text"
        item = {
            "type": "message",
            "role": "assistant" if role == "assistant" else "user",
            "content": [{"type": kind, "text": text}],
        }
        out.append(dumps({"type": "conversation.item.create", "item": item}))
    return out
