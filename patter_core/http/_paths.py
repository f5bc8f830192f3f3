"""The paths the server answers, one constant each.

The router (:mod:`._router`) maps them to endpoints; the TwiML, the carrier
REST requests and the start-up lines build their URLs from the same names,
so a path is spelled once. Carriers post to whatever URL was configured on
the number, so changing one of these breaks every number set up with it.
"""

from __future__ import annotations

__all__ = [
    "API_CALLS_PATH",
    "API_CALL_PREFIX",
    "API_EVENTS_PATH",
    "API_RECORDING_PREFIX",
    "DASHBOARD_PATH",
    "HEALTH_PATH",
    "METRICS_PATH",
    "READY_PATH",
    "TELNYX_STREAM_PREFIX",
    "TELNYX_VOICE_PATH",
    "TWILIO_AMD_PATH",
    "TWILIO_CONFERENCE_STATUS_PATH",
    "TWILIO_RECORDING_PATH",
    "TWILIO_STATUS_PATH",
    "TWILIO_STREAM_PREFIX",
    "TWILIO_STREAM_STATUS_PATH",
    "TWILIO_TRANSFER_STATUS_PATH",
    "TWILIO_VOICE_PATH",
]

HEALTH_PATH = "/health"
READY_PATH = "/ready"
#: Twilio's voice webhook: answered with ``<Connect><Stream>``.
TWILIO_VOICE_PATH = "/webhooks/twilio/voice"
#: ``<Start><Recording>`` / ``Recordings.json`` status callbacks.
TWILIO_RECORDING_PATH = "/webhooks/twilio/recording"
#: Asynchronous answering-machine detection results.
TWILIO_AMD_PATH = "/webhooks/twilio/amd"
#: Call progress of the calls we place (``StatusCallback``).
TWILIO_STATUS_PATH = "/webhooks/twilio/status"
#: ``<Stream statusCallback>``: stream started, stopped, failed.
TWILIO_STREAM_STATUS_PATH = "/webhooks/twilio/stream-status"
#: A warm transfer: the person's call progress, and the conference's events.
TWILIO_TRANSFER_STATUS_PATH = "/webhooks/twilio/transfer-status"
TWILIO_CONFERENCE_STATUS_PATH = "/webhooks/twilio/conference-status"
#: Every Telnyx Call Control webhook.
TELNYX_VOICE_PATH = "/webhooks/telnyx/voice"
#: Media streams: the prefix, then the carrier's call id as one segment.
TWILIO_STREAM_PREFIX = "/ws/stream/"
TELNYX_STREAM_PREFIX = "/ws/telnyx/stream/"
METRICS_PATH = "/metrics"
DASHBOARD_PATH = "/dashboard"
API_CALLS_PATH = "/api/calls"
API_EVENTS_PATH = "/api/calls/events"
API_CALL_PREFIX = "/api/calls/"
API_RECORDING_PREFIX = "/api/recordings/"
