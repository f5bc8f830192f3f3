"""The carrier's side of a Twilio Media Stream: frames Twilio writes, frames it reads.

``patter_core.media.TwilioMediaStream`` is the agent's side. The dial tool
plays Twilio, so it writes ``connected``, ``start``, ``media``, ``dtmf``,
``mark`` (echoes) and ``stop`` exactly as PROTOCOLS.md §3 shows them --
sequence numbers, chunks and timestamps as strings, ``mediaFormat``
numbers as numbers -- and reads the agent's ``media``, ``mark`` and
``clear``. The carrier side is not a hot path (50 frames a second, one
call), so frames go through ``json.dumps``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from patter_core import RemoteProtocolError

__all__ = [
    "AgentClear",
    "AgentMark",
    "AgentMedia",
    "AgentMessage",
    "AgentOther",
    "TwilioCarrierFrames",
    "parse_agent_message",
]

# RFC 6455 section 7.4.1: 1003/1007 for data we cannot accept; Twilio itself
# closes on malformed JSON. 1007 "inconsistent with the type of the message".
_BAD_FRAME = 1007
# An agent's media message is a chunk of TTS audio; Twilio documents no
# size, and a few seconds of μ-law base64 is well under this.
MAX_AGENT_MESSAGE_CHARS = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentMedia:
    payload: bytes  # μ-law 8 kHz


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentMark:
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentClear:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentOther:
    """A well-formed message the carrier ignores (Twilio drops unknown events)."""

    event: str


AgentMessage = AgentMedia | AgentMark | AgentClear | AgentOther


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, close_code=_BAD_FRAME)


def parse_agent_message(message: str | bytes) -> AgentMessage:
    """One message from the agent; bad input raises RemoteProtocolError (1007)."""
    if isinstance(message, bytes):
        raise _bad("agent sent a binary frame; Twilio expects JSON text")
    if len(message) > MAX_AGENT_MESSAGE_CHARS:
        raise _bad(f"agent message over {MAX_AGENT_MESSAGE_CHARS} characters")
    try:
        data: Any = json.loads(message)
    except ValueError:
        raise _bad("agent sent a frame that is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise _bad("agent frame has no event name")
    event = data["event"]
    if event == "media":
        media = data.get("media")
        payload = media.get("payload") if isinstance(media, dict) else None
        if not isinstance(payload, str):
            raise _bad("media frame without media.payload")
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise _bad("media payload is not base64") from None
        return AgentMedia(payload=audio)
    if event == "mark":
        mark = data.get("mark")
        name = mark.get("name") if isinstance(mark, dict) else None
        if not isinstance(name, str):
            raise _bad("mark frame without mark.name")
        return AgentMark(name=name)
    if event == "clear":
        return AgentClear()
    return AgentOther(event=event)


class TwilioCarrierFrames:
    """Builds the frames Twilio sends for one stream, numbering them as it does.

    ``sequenceNumber`` counts every frame after ``connected`` from 1 (the
    ``start`` frame is 1); ``media.chunk`` counts media frames from 1.
    """

    def __init__(self, *, account_sid: str, call_sid: str, stream_sid: str) -> None:
        self.account_sid = account_sid
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self._sequence = 0
        self._chunk = 0

    def _next(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    @staticmethod
    def _dump(frame: Mapping[str, Any]) -> str:
        return json.dumps(frame, separators=(",", ":"))

    def connected(self) -> str:
        return self._dump({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self, custom_parameters: Mapping[str, str]) -> str:
        return self._dump(
            {
                "event": "start",
                "sequenceNumber": self._next(),
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": dict(custom_parameters),
                },
                "streamSid": self.stream_sid,
            }
        )

    def media(self, payload: bytes, timestamp_ms: int) -> str:
        self._chunk += 1
        return self._dump(
            {
                "event": "media",
                "sequenceNumber": self._next(),
                "media": {
                    "track": "inbound",
                    "chunk": str(self._chunk),
                    "timestamp": str(timestamp_ms),
                    "payload": base64.b64encode(payload).decode("ascii"),
                },
                "streamSid": self.stream_sid,
            }
        )

    def dtmf(self, digit: str) -> str:
        # §3: dtmf.track is always "inbound_track".
        return self._dump(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": self._next(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def mark(self, name: str) -> str:
        return self._dump(
            {
                "event": "mark",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )

    def stop(self) -> str:
        return self._dump(
            {
                "event": "stop",
                "sequenceNumber": self._next(),
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
                "streamSid": self.stream_sid,
            }
        )
