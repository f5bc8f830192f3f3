"""Carrier webhooks and their security, sans-IO.

Everything Twilio and Telnyx send us over HTTP, and everything we send back:

* Twilio: ``X-Twilio-Signature`` checks (:class:`TwilioSignatureValidator`,
  over the public URL of a webhook or of a media stream's upgrade), form
  decoding (:func:`parse_form`) into typed callbacks, the call flow's TwiML
  answers (:class:`TwilioCallFlow`), and Calls API requests
  (:class:`TwilioRest`).
* Telnyx: Ed25519 webhook verification (:class:`TelnyxSignatureVerifier`),
  envelope parsing (:func:`parse_telnyx_webhook`) and Call Control requests
  (:class:`TelnyxRest`).
* :class:`StreamTokens`: the short-lived HMAC that admits a media stream;
  :class:`StreamAdmission`: one live stream per call, no replays.

The package exports the protocol objects; the wire helpers underneath them
(TwiML and XML builders, URL and signature helpers, client-state codecs,
limits' defaults) stay importable from their private modules.

No sockets and no clock: ``now`` is an argument and REST calls come out as
:class:`~patter_core.http.HttpRequest` values for the runtime to send.
"""

from __future__ import annotations

from ._admission import StreamAdmission
from ._forms import FormData, Headers, parse_form
from ._outcome import CallOutcome, MachineDetection, OutboundCallState, OutcomeUpdate
from ._outgoing import WebhookAnswer
from ._rest import CarrierApiError, RetryPolicy
from ._telnyx_events import (
    TelnyxCallAnswered,
    TelnyxCallHangup,
    TelnyxCallInitiated,
    TelnyxDtmfReceived,
    TelnyxEvent,
    TelnyxMachineDetectionEnded,
    TelnyxMachineGreetingEnded,
    TelnyxStreamingFailed,
    TelnyxStreamingStarted,
    TelnyxStreamingStopped,
    TelnyxUnknownEvent,
    parse_telnyx_webhook,
)
from ._telnyx_flow import TelnyxCallFlow, TelnyxFollowUp
from ._telnyx_rest import TelnyxCall, TelnyxRest, parse_telnyx_response
from ._telnyx_signature import TelnyxSignatureVerifier
from ._tokens import StreamTokens
from ._twilio_events import (
    AmdCallback,
    CallStatusCallback,
    IncomingCall,
    RecordingStatusCallback,
    StreamStatusCallback,
    parse_amd_callback,
    parse_call_status,
    parse_incoming_call,
    parse_recording_status,
    parse_stream_status,
)
from ._twilio_flow import AmdAction, StreamStatusLog, TwilioCallFlow
from ._twilio_rest import TwilioCall, TwilioRest, parse_twilio_call
from ._twilio_signature import TwilioSignatureValidator
from ._twiml_read import StreamTwiml, read_stream_twiml
from ._warm_transfer import TelnyxWarmTransfer, TransferFollowUp, TransferStep, TwilioWarmTransfer

__all__ = [
    "AmdAction",
    "AmdCallback",
    "CallOutcome",
    "CallStatusCallback",
    "CarrierApiError",
    "FormData",
    "Headers",
    "IncomingCall",
    "MachineDetection",
    "OutboundCallState",
    "OutcomeUpdate",
    "RecordingStatusCallback",
    "RetryPolicy",
    "StreamAdmission",
    "StreamStatusCallback",
    "StreamStatusLog",
    "StreamTokens",
    "StreamTwiml",
    "TelnyxCall",
    "TelnyxCallAnswered",
    "TelnyxCallFlow",
    "TelnyxCallHangup",
    "TelnyxCallInitiated",
    "TelnyxDtmfReceived",
    "TelnyxEvent",
    "TelnyxFollowUp",
    "TelnyxMachineDetectionEnded",
    "TelnyxMachineGreetingEnded",
    "TelnyxRest",
    "TelnyxSignatureVerifier",
    "TelnyxStreamingFailed",
    "TelnyxStreamingStarted",
    "TelnyxStreamingStopped",
    "TelnyxUnknownEvent",
    "TelnyxWarmTransfer",
    "TransferFollowUp",
    "TransferStep",
    "TwilioCall",
    "TwilioCallFlow",
    "TwilioRest",
    "TwilioSignatureValidator",
    "TwilioWarmTransfer",
    "WebhookAnswer",
    "parse_amd_callback",
    "parse_call_status",
    "parse_form",
    "parse_incoming_call",
    "parse_recording_status",
    "parse_stream_status",
    "parse_telnyx_response",
    "parse_telnyx_webhook",
    "parse_twilio_call",
    "read_stream_twiml",
]
