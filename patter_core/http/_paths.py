"""The paths the server answers: :class:`Paths`, one constant each.

The router (:mod:`._router`) maps them to endpoints; the TwiML, the carrier
REST requests and the start-up lines build their URLs from the same names,
so a path is spelled once. Carriers post to whatever URL was configured on
the number, so changing one of these breaks every number set up with it.
"""

from __future__ import annotations

from typing import Final

__all__ = ["Paths"]


class Paths:
    """Every path the server answers. A name ending in a ``/`` is a prefix:
    one path segment (a call id, a recording id) follows it."""

    HEALTH: Final = "/health"
    READY: Final = "/ready"
    #: Twilio's voice webhook: answered with ``<Connect><Stream>``.
    TWILIO_VOICE: Final = "/webhooks/twilio/voice"
    #: ``Recordings.json`` status callbacks.
    TWILIO_RECORDING: Final = "/webhooks/twilio/recording"
    #: Asynchronous answering-machine detection results.
    TWILIO_AMD: Final = "/webhooks/twilio/amd"
    #: Call progress of the calls we place (``StatusCallback``).
    TWILIO_STATUS: Final = "/webhooks/twilio/status"
    #: ``<Stream statusCallback>``: stream started, stopped, failed.
    TWILIO_STREAM_STATUS: Final = "/webhooks/twilio/stream-status"
    #: A warm transfer: the person's call progress, and the conference's events.
    TWILIO_TRANSFER_STATUS: Final = "/webhooks/twilio/transfer-status"
    TWILIO_CONFERENCE_STATUS: Final = "/webhooks/twilio/conference-status"
    #: Every Telnyx Call Control webhook.
    TELNYX_VOICE: Final = "/webhooks/telnyx/voice"
    #: Media streams (prefixes): the carrier's call id follows.
    TWILIO_STREAM: Final = "/ws/stream/"
    TELNYX_STREAM: Final = "/ws/telnyx/stream/"
    METRICS: Final = "/metrics"
    DASHBOARD: Final = "/dashboard"
    API_CALLS: Final = "/api/calls"
    API_EVENTS: Final = "/api/calls/events"
    #: Prefixes: a call's id, a recording's id.
    API_CALL: Final = "/api/calls/"
    API_RECORDING: Final = "/api/recordings/"
