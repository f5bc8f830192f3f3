"""The carrier's role on a media stream: the frames Twilio or Telnyx writes, and
the agent's frames as the carrier reads them.

:class:`TwilioMediaStream` and :class:`TelnyxMediaStream` are the agent's
role. These are the other end, as h11 is both client and server: the dial
tool, the test carriers and the call benchmark play the carrier with them,
so every one of them speaks exactly the wire the agent role reads
(PROTOCOLS.md section 3 for Twilio, 4.4 for Telnyx):

* ``connected``, ``start``, ``media``, ``dtmf``, ``mark`` (echoes of the
  agent's marks) and ``stop``, numbered as the carriers number them:
  ``sequenceNumber``/``sequence_number`` counts every frame after
  ``connected`` from 1 (``start`` is 1), ``media.chunk`` counts media frames
  from 1, both as decimal strings; media-format numbers are numbers;
* Telnyx's ``error`` frame (the guide's shape: ``payload`` with an integer
  code); Twilio has none;
* :meth:`CarrierSide.receive` reads the agent's ``media``, ``mark`` and
  ``clear`` (spelled alike by both carriers). Twilio plays them only on the
  stream their ``streamSid`` names, so a Twilio frame without this stream's
  id is refused; Telnyx documents no id on what the agent sends.

``media`` is a load generator's hot path (50 frames a second per call), so
its frame is assembled from strings prebuilt once per stream, not through a
dict and ``json.dumps``; :meth:`CarrierSide.media_b64` takes a payload
already in base64, for callers that prebuild their audio too. What the
carrier does with the agent's audio in time (playing it, echoing marks when
it has played, flushing it on ``clear``) is :class:`.CarrierPlayback`.

Payloads are in the stream's own codec: μ-law for Twilio, whatever
``codec`` says for Telnyx (converting is the caller's business).
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from .._errors import LocalProtocolError, RemoteProtocolError
from ._events import Mark

__all__ = [
    "AgentEvent",
    "AgentMedia",
    "CarrierSide",
    "Clear",
    "Ignored",
    "TelnyxCarrierSide",
    "TwilioCarrierSide",
    "iso_time",
    "parse_agent_message",
]

# RFC 6455 section 7.4.1: 1007, "data within a message that was not
# consistent with the type of the message"; Twilio closes on malformed JSON.
_BAD_FRAME = 1007
# An agent's media message is a chunk of its audio; Twilio documents no
# size, and a few seconds of μ-law in base64 is well under this.
MAX_AGENT_MESSAGE_CHARS = 1024 * 1024
_TOKEN = "x-telnyx-streaming-auth-token"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentMedia:
    """A chunk of the agent's audio, decoded from base64, in the stream's codec.

    Not :class:`Media`: the carrier learns nothing but the payload, and a
    load generator reads 50 of these a second per call, so it is one field.
    """

    payload: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Clear:
    """The agent asked the carrier to drop the audio it has not played yet."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ignored:
    """A well-formed message the carrier does not act on (Twilio drops unknown events)."""

    event: str


#: What the carrier reads from the agent: its audio, its marks, ``clear``,
#: or something it ignores.
AgentEvent = AgentMedia | Mark | Clear | Ignored


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, close_code=_BAD_FRAME)


def parse_agent_message(
    message: str | bytes, *, stream: tuple[str, str] | None = None
) -> AgentEvent:
    """One message from the agent; bad input raises RemoteProtocolError (1007).

    ``stream`` is ``(field, id)`` for a carrier that routes the agent's
    frames by a stream id (Twilio's ``streamSid``): a ``media``, ``mark`` or
    ``clear`` without this stream's id is refused.
    """
    if not isinstance(message, str):
        raise _bad("agent sent a binary frame; the carrier expects JSON text")
    if len(message) > MAX_AGENT_MESSAGE_CHARS:
        raise _bad(f"agent message over {MAX_AGENT_MESSAGE_CHARS} characters")
    try:
        data: Any = json.loads(message)
    except (ValueError, RecursionError):
        raise _bad("agent sent a frame that is not JSON") from None
    event = data.get("event") if type(data) is dict else None
    if type(event) is not str:
        raise _bad("agent frame has no event name")
    if stream is not None and event in ("media", "mark", "clear"):
        field, stream_id = stream
        if data.get(field) != stream_id:
            raise _bad(f"{event} frame without this stream's {field} ({stream_id})")
    if event == "media":  # the hot path: 50 a second
        media = data.get("media")
        payload = media.get("payload") if type(media) is dict else None
        if type(payload) is not str:
            raise _bad("media frame without media.payload")
        try:
            return AgentMedia(payload=binascii.a2b_base64(payload, strict_mode=True))
        except (binascii.Error, ValueError):
            raise _bad("media payload is not base64") from None
    if event == "mark":
        mark = data.get("mark")
        name = mark.get("name") if type(mark) is dict else None
        if type(name) is not str:
            raise _bad("mark frame without mark.name")
        return Mark(name=name)
    if event == "clear":
        return Clear()
    return Ignored(event=event)


def iso_time(now: float) -> str:
    """Telnyx's timestamps: ISO 8601 UTC with microseconds and a ``Z`` (``now``: Unix time)."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dump(frame: Mapping[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"))


class CarrierSide:
    """What both carriers' roles share: numbering, the media template, reading.

    Subclasses set ``_seq_key``/``_id_key`` (the field names) and build the
    frames that differ.
    """

    _seq_key: str
    _id_key: str

    def __init__(self, stream_id: str) -> None:
        if not isinstance(stream_id, str) or not stream_id:
            raise LocalProtocolError("a carrier stream needs a non-empty stream id")
        self.stream_id = stream_id
        self._sequence = 0
        self._chunk = 0
        # '{"event":"media","<seq>":"' N '","media":{...,"chunk":"' C
        # '","timestamp":"' T '","payload":"' B64 '"},"<id>":"..."}'
        self._media_head = '{"event":"media","' + self._seq_key + '":"'
        self._media_tail = '"},"' + self._id_key + '":' + json.dumps(stream_id) + "}"
        #: ``(field, id)`` the agent's frames must carry, or None if nothing is checked.
        self.agent_stream: tuple[str, str] | None = None

    @property
    def media_frames(self) -> int:
        """Media frames built so far (the last ``chunk``)."""
        return self._chunk

    def _next(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    def take_sequence(self) -> int:
        """Reserve the next sequence number (to send a frame out of order)."""
        return int(self._next())

    def media(self, payload: bytes, timestamp_ms: int | None = None) -> str:
        """One media frame of caller audio in the stream's codec.

        ``timestamp_ms`` defaults to 20 ms per frame since the first.
        """
        return self.media_b64(
            binascii.b2a_base64(payload, newline=False).decode("ascii"), timestamp_ms
        )

    def media_b64(self, payload: str, timestamp_ms: int | None = None) -> str:
        """:meth:`media` for a payload already in base64 (prebuilt audio)."""
        self._sequence += 1
        self._chunk = chunk = self._chunk + 1
        stamp = (chunk - 1) * 20 if timestamp_ms is None else timestamp_ms
        return (
            f'{self._media_head}{self._sequence}","media":{{"track":"inbound","chunk":"{chunk}",'
            f'"timestamp":"{stamp}","payload":"{payload}{self._media_tail}'
        )

    def mark(self, name: str) -> str:
        """The echo of the agent's mark ``name``."""
        return _dump(
            {
                "event": "mark",
                self._seq_key: self._next(),
                self._id_key: self.stream_id,
                "mark": {"name": name},
            }
        )

    def error(self) -> str | None:
        """A stream error frame, where the carrier has one."""
        return None

    def receive(self, message: str | bytes) -> AgentEvent:
        """One message from the agent (RemoteProtocolError, close 1007, if bad)."""
        return parse_agent_message(message, stream=self.agent_stream)


class TwilioCarrierSide(CarrierSide):
    """Twilio's end of one Media Streams WebSocket (PROTOCOLS.md section 3)."""

    _seq_key = "sequenceNumber"
    _id_key = "streamSid"

    def __init__(self, *, account_sid: str, call_sid: str, stream_sid: str) -> None:
        super().__init__(stream_sid)
        self.account_sid = account_sid
        self.call_sid = call_sid
        self.agent_stream = ("streamSid", stream_sid)

    def connected(self) -> str:
        return _dump({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self, custom_parameters: Mapping[str, str] | None = None) -> str:
        return _dump(
            {
                "event": "start",
                "sequenceNumber": self._next(),
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_id,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": dict(custom_parameters or {}),
                },
                "streamSid": self.stream_id,
            }
        )

    def dtmf(self, digit: str, now: float = 0.0) -> str:
        """A key press (``now`` is unused: Twilio's frame carries no time)."""
        # Section 3: dtmf.track is always "inbound_track".
        return _dump(
            {
                "event": "dtmf",
                "streamSid": self.stream_id,
                "sequenceNumber": self._next(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def stop(self) -> str:
        return _dump(
            {
                "event": "stop",
                "sequenceNumber": self._next(),
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
                "streamSid": self.stream_id,
            }
        )


class TelnyxCarrierSide(CarrierSide):
    """Telnyx's end of one media streaming WebSocket (PROTOCOLS.md section 4.4).

    ``stream_id`` is top-level and ``call_control_id`` sits in ``start``.
    ``codec``/``sample_rate`` are what ``start.media_format`` announces (the
    payloads given to :meth:`media` must be in it). ``auth_token`` rides in
    ``connected`` nested under ``connected`` (as two implementations read
    it) or, with ``nested_token=False``, at the top level.
    """

    _seq_key = "sequence_number"
    _id_key = "stream_id"

    def __init__(
        self,
        *,
        call_control_id: str,
        stream_id: str,
        call_session_id: str = "",
        user_id: str = "",
        from_number: str = "",
        to_number: str = "",
        codec: Literal["PCMU", "PCMA", "L16", "G722"] = "PCMU",
        sample_rate: int = 8000,
        auth_token: str | None = None,
        nested_token: bool = True,
        client_state: str | None = None,
    ) -> None:
        super().__init__(stream_id)
        self.call_control_id = call_control_id
        self.call_session_id = call_session_id
        self.user_id = user_id
        self.from_number = from_number
        self.to_number = to_number
        self.codec = codec
        self.sample_rate = sample_rate
        self.auth_token = auth_token
        self.nested_token = nested_token
        self.client_state = client_state

    def connected(self) -> str:
        frame: dict[str, Any] = {"event": "connected", "version": "1.0.0"}
        if self.auth_token is not None:
            # Sections 4.3/4.4: the stream_auth_token rides in this frame as
            # well as in the upgrade's header.
            if self.nested_token:
                frame["connected"] = {_TOKEN: self.auth_token}
            else:
                frame[_TOKEN] = self.auth_token
        return _dump(frame)

    def start(self, custom_parameters: Mapping[str, str] | None = None) -> str:
        return _dump(
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
                    "custom_parameters": dict(custom_parameters or {}),
                    "media_format": {
                        "encoding": self.codec,
                        "sample_rate": self.sample_rate,
                        "channels": 1,
                    },
                },
                "stream_id": self.stream_id,
            }
        )

    def dtmf(self, digit: str, now: float = 0.0, *, sequence: int | None = None) -> str:
        """A key press at Unix time ``now`` (``occurred_at``).

        ``sequence`` numbers it out of turn (Telnyx's DTMF "may arrive out of
        order"); take one with :meth:`take_sequence`.
        """
        number = self._next() if sequence is None else str(sequence)
        return _dump(
            {
                "event": "dtmf",
                "stream_id": self.stream_id,
                "occurred_at": iso_time(now),
                "sequence_number": number,
                "dtmf": {"digit": digit},
            }
        )

    def error(self) -> str | None:
        """The guide's error frame: body under ``payload``, an integer code."""
        return _dump(
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

    def stop(self) -> str:
        return _dump(
            {
                "event": "stop",
                "sequence_number": self._next(),
                "stop": {"user_id": self.user_id, "call_control_id": self.call_control_id},
                "stream_id": self.stream_id,
            }
        )
