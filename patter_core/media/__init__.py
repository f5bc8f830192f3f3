"""Carrier media stream protocols (Twilio Media Streams, Telnyx media streaming)."""

from ._events import Connected, Dtmf, Mark, Media, MediaEvent, Start, Stop, StreamError

__all__ = ["Connected", "Dtmf", "Mark", "Media", "MediaEvent", "Start", "Stop", "StreamError"]
