"""Carrier media stream protocols (Twilio Media Streams, Telnyx media streaming)."""

from ._events import Connected, Dtmf, Mark, Media, MediaEvent, Start, Stop, StreamError
from ._limits import MediaLimits
from ._telnyx import PayloadDecoder, TelnyxMediaStream
from ._twilio import TwilioMediaStream

__all__ = [
    "Connected",
    "Dtmf",
    "Mark",
    "Media",
    "MediaEvent",
    "MediaLimits",
    "PayloadDecoder",
    "Start",
    "Stop",
    "StreamError",
    "TelnyxMediaStream",
    "TwilioMediaStream",
]
