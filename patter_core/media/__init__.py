"""Carrier media stream protocols (Twilio Media Streams, Telnyx media streaming).

Two roles, as h11 has client and server: the agent's (``TwilioMediaStream``,
``TelnyxMediaStream``), which the server runs, and the carrier's
(``TwilioCarrierSide``, ``TelnyxCarrierSide`` and ``CarrierPlayback``), which
the dial tool, the test carriers and the call benchmark run.
"""

from ._carrier import (
    AgentEvent,
    AgentMedia,
    CarrierSide,
    Clear,
    Ignored,
    TelnyxCarrierSide,
    TwilioCarrierSide,
    parse_agent_message,
)
from ._events import Connected, Dtmf, Mark, Media, MediaEvent, Start, Stop, StreamError
from ._limits import MediaLimits
from ._playback import CarrierPlayback
from ._telnyx import PayloadDecoder, TelnyxMediaStream
from ._twilio import TwilioMediaStream

__all__ = [
    "AgentEvent",
    "AgentMedia",
    "CarrierPlayback",
    "CarrierSide",
    "Clear",
    "Connected",
    "Dtmf",
    "Ignored",
    "Mark",
    "Media",
    "MediaEvent",
    "MediaLimits",
    "PayloadDecoder",
    "Start",
    "Stop",
    "StreamError",
    "TelnyxCarrierSide",
    "TelnyxMediaStream",
    "TwilioCarrierSide",
    "TwilioMediaStream",
    "parse_agent_message",
]
