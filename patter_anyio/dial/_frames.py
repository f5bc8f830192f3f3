"""The carrier's side of a media stream: frames Twilio or Telnyx writes, frames it reads.

``patter_core.media.TwilioMediaStream`` / ``TelnyxMediaStream`` are the
agent's side. The dial tool plays the carrier, so it writes ``connected``,
``start``, ``media``, ``dtmf``, ``mark`` (echoes) and ``stop`` exactly as
PROTOCOLS.md §3 (Twilio) and §4.4 (Telnyx) show them -- sequence numbers,
chunks and timestamps as strings, media-format numbers as numbers -- and
reads the agent's ``media``, ``mark`` and ``clear``, which both carriers
spell the same way. The carrier side is not a hot path (50 frames a
second, one call), so frames go through ``json.dumps``.

Both frame builders take and give the caller's audio as μ-law 8 kHz, the
dial tool's own format; :class:`TelnyxCarrierFrames` converts to and from
L16 when the server asked for it.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from patter_core import RemoteProtocolError
from patter_core.audio import PCM16_16K, ULAW_8K, AudioFormat, Encoding, Transcoder

__all__ = [
    "AgentClear",
    "AgentMark",
    "AgentMedia",
    "AgentMessage",
    "AgentOther",
    "CarrierFrames",
    "TelnyxCarrierFrames",
    "TwilioCarrierFrames",
    "iso_time",
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


def parse_agent_message(
    message: str | bytes, *, stream: tuple[str, str] | None = None
) -> AgentMessage:
    """One message from the agent; bad input raises RemoteProtocolError (1007).

    ``stream`` is ``(field, id)`` for a carrier that routes the agent's
    frames by a stream id: Twilio plays ``media``, ``mark`` and ``clear``
    only on the stream their ``streamSid`` names, so a frame without this
    stream's id is refused.
    """
    if isinstance(message, bytes):
        raise _bad("agent sent a binary frame; the carrier expects JSON text")
    if len(message) > MAX_AGENT_MESSAGE_CHARS:
        raise _bad(f"agent message over {MAX_AGENT_MESSAGE_CHARS} characters")
    try:
        data: Any = json.loads(message)
    except ValueError:
        raise _bad("agent sent a frame that is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise _bad("agent frame has no event name")
    event = data["event"]
    if stream is not None and event in ("media", "mark", "clear"):
        field, stream_id = stream
        if data.get(field) != stream_id:
            raise _bad(f"{event} frame without this stream's {field} ({stream_id})")
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


def iso_time(now: float) -> str:
    """Telnyx's timestamps: ISO 8601 UTC with microseconds and a ``Z``."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class CarrierFrames(Protocol):
    """What the call loop needs from a carrier's frame builder."""

    def connected(self) -> str: ...
    def start(self, custom_parameters: Mapping[str, str]) -> str: ...
    def media(self, payload: bytes, timestamp_ms: int) -> str: ...
    def dtmf(self, digit: str) -> str: ...
    def mark(self, name: str) -> str: ...
    def stop(self) -> str: ...
    def agent_audio(self, payload: bytes) -> bytes: ...
    @property
    def agent_stream(self) -> tuple[str, str] | None: ...
    def error(self) -> str | None: ...


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

    def agent_audio(self, payload: bytes) -> bytes:
        return payload  # Twilio streams are μ-law 8 kHz both ways (§3)

    @property
    def agent_stream(self) -> tuple[str, str] | None:
        """Twilio routes the agent's frames by ``streamSid`` (§3)."""
        return ("streamSid", self.stream_sid)

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

    def error(self) -> str | None:
        return None  # Twilio streams have no error frame


class TelnyxCarrierFrames:
    """Builds the frames Telnyx sends for one stream (PROTOCOLS.md §4.4).

    ``stream_id`` is top-level, ``call_control_id`` sits in ``start``;
    ``sequence_number`` counts frames after ``connected`` from 1 and
    ``media.chunk`` counts media frames from 1, as strings. With ``codec``
    ``"L16"`` the caller's μ-law is sent as 16-bit PCM at ``sample_rate`` in
    ``l16_byte_order`` (the docs do not state it, §4.4; the server's default
    is big-endian), and the agent's L16 comes back to μ-law 8 kHz.

    ``back_codec``/``back_rate``: what the agent must send (the
    ``stream_bidirectional_codec`` it started the stream with), which may
    differ from ``codec`` when Telnyx falls back to the call's own codec.
    The token rides nested in ``connected``, DTMF frames carry
    ``occurred_at``, ``start`` echoes ``client_state``, and :meth:`error` is
    the guide's error frame (``payload`` with an integer code).
    """

    def __init__(
        self,
        *,
        call_control_id: str,
        call_session_id: str,
        user_id: str,
        stream_id: str,
        from_number: str,
        to_number: str,
        auth_token: str | None = None,
        codec: Literal["PCMU", "L16", "G722"] = "PCMU",
        sample_rate: int = 8000,
        l16_byte_order: Literal["big", "little"] = "big",
        back_codec: Literal["PCMU", "L16"] | None = None,
        back_rate: int | None = None,
        client_state: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.call_control_id = call_control_id
        self.call_session_id = call_session_id
        self.user_id = user_id
        self.stream_id = stream_id
        self.from_number = from_number
        self.to_number = to_number
        self.auth_token = auth_token
        self.codec = codec
        self.sample_rate = {"L16": sample_rate, "G722": 16000}.get(codec, 8000)
        self.client_state = client_state
        self._clock = clock
        self._sequence = 0
        self._chunk = 0
        self._to_carrier: Transcoder | None = None
        self._from_agent: Transcoder | None = None
        order = Encoding.PCM16BE if l16_byte_order == "big" else Encoding.PCM16LE
        self._encode: Callable[[bytes], bytes] | None = None
        if codec == "L16":
            l16 = AudioFormat(encoding=order, sample_rate=self.sample_rate)
            self._to_carrier = Transcoder(ULAW_8K, l16)
        elif codec == "G722":
            from .._codecs import g722_encoder

            self._encode = g722_encoder()
            if self._encode is None:
                raise ValueError("G.722 needs the optional g722 package")
            self._to_carrier = Transcoder(ULAW_8K, PCM16_16K)
        back = codec if back_codec is None else back_codec
        if back == "L16":
            rate = back_rate or self.sample_rate
            # An agent may split a sample across messages; keep the odd byte.
            self._from_agent = Transcoder(
                AudioFormat(encoding=order, sample_rate=rate), ULAW_8K, carry_odd_byte=True
            )

    def _next(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    @staticmethod
    def _dump(frame: Mapping[str, Any]) -> str:
        return json.dumps(frame, separators=(",", ":"))

    def agent_audio(self, payload: bytes) -> bytes:
        """The agent's media payload as μ-law 8 kHz."""
        if self._from_agent is None:
            return payload
        return self._from_agent.convert(payload)

    @property
    def agent_stream(self) -> tuple[str, str] | None:
        return None  # Telnyx documents no stream id on what the agent sends

    def connected(self) -> str:
        frame: dict[str, Any] = {"event": "connected", "version": "1.0.0"}
        if self.auth_token is not None:
            # §4.3/§4.4: the stream_auth_token rides in this frame as well as
            # in the upgrade's header, nested as two implementations read it.
            frame["connected"] = {"x-telnyx-streaming-auth-token": self.auth_token}
        return self._dump(frame)

    def start(self, custom_parameters: Mapping[str, str]) -> str:
        return self._dump(
            {
                "event": "start",
                "sequence_number": self._next(),
                "start": {
                    "user_id": self.user_id,
                    "call_control_id": self.call_control_id,
                    "call_session_id": self.call_session_id,
                    "from": self.from_number,
                    "to": self.to_number,
                    "tags": [],
                    "client_state": self.client_state,
                    "custom_parameters": dict(custom_parameters),
                    "media_format": {
                        "encoding": self.codec,
                        "sample_rate": self.sample_rate,
                        "channels": 1,
                    },
                },
                "stream_id": self.stream_id,
            }
        )

    def media(self, payload: bytes, timestamp_ms: int) -> str:
        """One 20 ms frame of the caller's μ-law (converted for L16)."""
        if self._to_carrier is not None:
            payload = self._to_carrier.convert(payload)
        if self._encode is not None:
            payload = self._encode(payload)
        self._chunk += 1
        return self._dump(
            {
                "event": "media",
                "sequence_number": self._next(),
                "media": {
                    "track": "inbound",
                    "chunk": str(self._chunk),
                    "timestamp": str(timestamp_ms),
                    "payload": base64.b64encode(payload).decode("ascii"),
                },
                "stream_id": self.stream_id,
            }
        )

    def dtmf(self, digit: str) -> str:
        return self._dump(
            {
                "event": "dtmf",
                "stream_id": self.stream_id,
                "occurred_at": iso_time(self._clock()),
                "sequence_number": self._next(),
                "dtmf": {"digit": digit},
            }
        )

    def error(self) -> str | None:
        """The guide's error frame: body under ``payload``, an integer code."""
        return self._dump(
            {
                "event": "error",
                "payload": {
                    "code": 100002,
                    "title": "unknown_error",
                    "detail": "An unknown error occurred (simulated)",
                },
                "stream_id": self.stream_id,
            }
        )

    def mark(self, name: str) -> str:
        return self._dump(
            {
                "event": "mark",
                "sequence_number": self._next(),
                "mark": {"name": name},
                "stream_id": self.stream_id,
            }
        )

    def stop(self) -> str:
        return self._dump(
            {
                "event": "stop",
                "sequence_number": self._next(),
                "stop": {"user_id": self.user_id, "call_control_id": self.call_control_id},
                "stream_id": self.stream_id,
            }
        )
