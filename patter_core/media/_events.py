"""Events of a carrier media stream (Twilio Media Streams, Telnyx media streaming).

Both carriers' streams produce these same types, so the call bridge never asks
which carrier a call is on. Events are frozen, slotted, keyword-only
dataclasses, as in h11.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..audio._format import AudioFormat

__all__ = [
    "Connected",
    "Dtmf",
    "Mark",
    "Media",
    "MediaEvent",
    "Start",
    "Stop",
    "StreamError",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected:
    """The first message of a stream."""

    protocol: str = ""
    version: str = ""
    #: Telnyx only: the ``x-telnyx-streaming-auth-token`` echoed in ``connected``.
    auth_token: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    """The stream's metadata; arrives exactly once, before any media."""

    stream_id: str  # Twilio streamSid / Telnyx stream_id
    call_id: str  # Twilio callSid / Telnyx call_control_id
    media_format: AudioFormat  # what the carrier sends us (and expects back)
    account_id: str = ""  # Twilio accountSid / Telnyx user_id
    tracks: tuple[str, ...] = ()
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    caller: str = ""  # Telnyx start.from (Twilio: pass it as a custom parameter)
    callee: str = ""  # Telnyx start.to
    client_state: str | None = None  # Telnyx only, base64 as sent


@dataclass(frozen=True, slots=True, kw_only=True)
class Media:
    """One chunk of caller audio, decoded from base64, in ``Start.media_format``."""

    payload: bytes
    track: str = "inbound"
    chunk: int = 0
    timestamp: int = 0  # milliseconds since the stream started


@dataclass(frozen=True, slots=True, kw_only=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Mark:
    """A mark we sent, echoed back: the audio before it has played (or was cleared)."""

    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop:
    """The carrier ended the stream; nothing may follow."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamError:
    """Telnyx ``error`` frame (e.g. code 100005 rate_limit_reached)."""

    title: str
    code: str
    detail: str = ""


MediaEvent = Connected | Start | Media | Dtmf | Mark | Stop | StreamError
