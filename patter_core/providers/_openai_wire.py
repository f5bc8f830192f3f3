"""The OpenAI Realtime client events we write, and the one server event we
read without a dict: the wire vocabulary of :mod:`._openai_realtime`, pure.

Commands become client events (PROTOCOLS.md §5.2) in :func:`encode`; the
session around it decides when each goes out (one response at a time, held
until live). The hot path's two messages are fixed strings around their
base64: an append per 20 ms of caller audio, and an audio delta from the
server in the shape the API reference shows (``DELTA_HEAD``).
"""

from __future__ import annotations

import re
from dataclasses import replace

from .._errors import LocalProtocolError
from .._json import JSON_PLAIN_STR, JSON_UINT
from ._base import b64encode, dumps
from ._events import (
    Cancel,
    HoldBargeIn,
    ProviderCommand,
    ResumeBargeIn,
    Say,
    SendAudio,
    SendText,
    ToolResult,
    Truncate,
    UpdateInstructions,
)
from ._openai_config import OpenAITurnDetection

__all__ = [
    "CREATE_PREFIX",
    "DELTA_HEAD",
    "RESPONSE_CREATE",
    "SAY_EXACTLY_PREFIX",
    "append",
    "encode",
    "say",
]

#: How a greeting or ``Say`` is worded: the Realtime API has no "speak this
#: text" event, so we ask for a response whose per-response instructions are
#: to repeat the text verbatim.
SAY_EXACTLY_PREFIX = "Say exactly this to the caller, word for word, and nothing else: "

# The hot path: one append per 20 ms frame in each call. Base64 needs no JSON
# escaping, so the message is two constant strings around the payload.
_APPEND_PREFIX = '{"type":"input_audio_buffer.append","audio":"'
_APPEND_SUFFIX = '"}'
RESPONSE_CREATE = '{"type":"response.create"}'
#: What every ``response.create`` we write starts with (the session queues them).
CREATE_PREFIX = '{"type":"response.create"'
_RESPONSE_CANCEL = '{"type":"response.cancel"}'

#: An audio delta exactly as the API reference shows it, compact and in its
#: key order, up to the audio (group 1: item_id); '"}' closes it. The
#: session reads such a delta without a dict (``_message_shape``).
DELTA_HEAD = re.compile(
    '{"type":"response\\.output_audio\\.delta","event_id":"'
    + JSON_PLAIN_STR
    + '","response_id":"'
    + JSON_PLAIN_STR
    + '","item_id":"('
    + JSON_PLAIN_STR
    + ')","output_index":'
    + JSON_UINT
    + ',"content_index":'
    + JSON_UINT
    + ',"delta":"'
)


def append(audio: bytes) -> str:
    """``input_audio_buffer.append`` for a chunk of caller audio."""
    return _APPEND_PREFIX + b64encode(audio) + _APPEND_SUFFIX


def say(text: str) -> str:
    """A ``response.create`` that speaks ``text`` word for word."""
    return dumps(
        {"type": "response.create", "response": {"instructions": SAY_EXACTLY_PREFIX + text}}
    )


def encode(
    command: ProviderCommand, turn_detection: OpenAITurnDetection | None
) -> list[tuple[str, bool]]:
    """The client events for ``command``: ``(text, is_audio)`` each, in order."""
    if isinstance(command, SendAudio):
        return [(append(command.audio), True)] if command.audio else []
    if isinstance(command, Cancel):
        return [(_RESPONSE_CANCEL, False)]
    if isinstance(command, Truncate):
        if command.played_ms < 0:
            raise LocalProtocolError(f"played_ms must be >= 0, not {command.played_ms}")
        item = {
            "type": "conversation.item.truncate",
            "item_id": command.item_id,
            "content_index": 0,
            "audio_end_ms": command.played_ms,
        }
        return [(dumps(item), False)]
    if isinstance(command, ToolResult):
        output = {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": command.call_id,
                "output": command.output,
            },
        }
        return [(dumps(output), False)]  # the session asks for the response
    if isinstance(command, Say):
        return [(say(command.text), False)]
    if isinstance(command, SendText):
        item = {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": command.text}],
            },
        }
        return [(dumps(item), False), (RESPONSE_CREATE, False)]
    if isinstance(command, (HoldBargeIn, ResumeBargeIn)):
        # The server cancels its own answer on speech (interrupt_response)
        # and answers the speech (create_response): both off while held,
        # the configured detection again once resumed.
        if turn_detection is None:
            return []
        held = turn_detection
        if isinstance(command, HoldBargeIn):
            held = replace(turn_detection, interrupt_response=False, create_response=False)
        update = {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {"input": {"turn_detection": held.to_json()}},
            },
        }
        return [(dumps(update), False)]
    if isinstance(command, UpdateInstructions):
        update = {
            "type": "session.update",
            "session": {"type": "realtime", "instructions": command.instructions},
        }
        return [(dumps(update), False)]
    raise LocalProtocolError(f"not a provider command: {command!r}")
