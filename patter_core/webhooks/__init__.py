"""Carrier webhooks and their security, sans-IO.

Everything Twilio and Telnyx send us over HTTP, and everything we send back:

* Twilio: ``X-Twilio-Signature`` checks (:class:`TwilioSignatureValidator`,
  over :func:`public_url` / :func:`media_stream_url`), form decoding
  (:func:`parse_form`) into typed callbacks, TwiML answers, and Calls API
  requests (:class:`TwilioRest`).
* Telnyx: Ed25519 webhook verification (:class:`TelnyxSignatureVerifier`),
  envelope parsing (:func:`parse_telnyx_webhook`) and Call Control requests
  (:class:`TelnyxRest`).
* :class:`StreamTokens`: the short-lived HMAC that admits a media stream;
  :class:`StreamAdmission`: one live stream per call, no replays.

No sockets and no clock: ``now`` is an argument and REST calls come out as
:class:`~patter_core.http.HttpRequest` values for the runtime to send.
"""

from __future__ import annotations

from ._admission import StreamAdmission
from ._forms import (
    DEFAULT_MAX_FORM_BYTES,
    DEFAULT_MAX_FORM_FIELDS,
    FormData,
    Headers,
    header_value,
    parse_form,
)
from ._rest import CarrierApiError, RetryPolicy
from ._routing import routed_call
from ._telnyx_events import (
    DEFAULT_MAX_TELNYX_WEBHOOK_BYTES,
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
    decode_client_state,
    encode_client_state,
    parse_telnyx_webhook,
)
from ._telnyx_flow import (
    AMD_DIAL_MODE,
    TelnyxCallFlow,
    TelnyxFollowUp,
    is_our_leg,
    leg_client_state,
)
from ._telnyx_rest import (
    DEFAULT_TELNYX_API,
    TelnyxCall,
    TelnyxRest,
    derive_command_id,
    parse_telnyx_response,
)
from ._telnyx_signature import (
    DEFAULT_TELNYX_TOLERANCE_S,
    TelnyxSignatureVerifier,
    verify_telnyx_signature,
)
from ._tokens import DEFAULT_STREAM_TOKEN_TTL_S, StreamTokens
from ._twilio_events import (
    AMD_ANSWERED_BY,
    AmdCallback,
    CallStatusCallback,
    IncomingCall,
    RecordingStatusCallback,
    StreamStatusCallback,
    is_machine_end,
    parse_amd_callback,
    parse_call_status,
    parse_incoming_call,
    parse_recording_status,
    parse_stream_status,
)
from ._twilio_flow import (
    DEFAULT_MACHINE_DETECTION_TIMEOUT,
    STREAM_STATUS_PATH,
    AmdAction,
    StreamStatusLog,
    TwilioCallFlow,
    amd_action,
    machine_detection_timeout_problem,
    stream_status_log,
    voicemail_problem,
)
from ._twilio_rest import DEFAULT_TWILIO_API, TwilioCall, TwilioRest, parse_twilio_call
from ._twilio_signature import (
    HMAC_SHA1,
    HMAC_SHA256,
    TwilioSignatureValidator,
    media_stream_url,
    media_stream_urls,
    public_url,
    signature_algorithm,
)
from ._twiml import (
    INLINE_TWIML_MAX_CHARS,
    PARAMETER_MAX_CHARS,
    TWIML_CONTENT_TYPE,
    connect_stream_twiml,
    dial_twiml,
    hangup_twiml,
    reject_twiml,
    say_hangup_twiml,
    twilio_stream_url,
    xml_attribute,
    xml_text,
)

__all__ = [
    "AMD_ANSWERED_BY",
    "AMD_DIAL_MODE",
    "DEFAULT_MACHINE_DETECTION_TIMEOUT",
    "DEFAULT_MAX_FORM_BYTES",
    "DEFAULT_MAX_FORM_FIELDS",
    "DEFAULT_MAX_TELNYX_WEBHOOK_BYTES",
    "DEFAULT_STREAM_TOKEN_TTL_S",
    "DEFAULT_TELNYX_API",
    "DEFAULT_TELNYX_TOLERANCE_S",
    "DEFAULT_TWILIO_API",
    "HMAC_SHA1",
    "HMAC_SHA256",
    "INLINE_TWIML_MAX_CHARS",
    "PARAMETER_MAX_CHARS",
    "STREAM_STATUS_PATH",
    "TWIML_CONTENT_TYPE",
    "AmdAction",
    "AmdCallback",
    "CallStatusCallback",
    "CarrierApiError",
    "FormData",
    "Headers",
    "IncomingCall",
    "RecordingStatusCallback",
    "RetryPolicy",
    "StreamAdmission",
    "StreamStatusCallback",
    "StreamStatusLog",
    "StreamTokens",
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
    "TwilioCall",
    "TwilioCallFlow",
    "TwilioRest",
    "TwilioSignatureValidator",
    "amd_action",
    "connect_stream_twiml",
    "decode_client_state",
    "derive_command_id",
    "dial_twiml",
    "encode_client_state",
    "hangup_twiml",
    "header_value",
    "is_machine_end",
    "is_our_leg",
    "leg_client_state",
    "machine_detection_timeout_problem",
    "media_stream_url",
    "media_stream_urls",
    "parse_amd_callback",
    "parse_call_status",
    "parse_form",
    "parse_incoming_call",
    "parse_recording_status",
    "parse_stream_status",
    "parse_telnyx_response",
    "parse_telnyx_webhook",
    "parse_twilio_call",
    "public_url",
    "reject_twiml",
    "routed_call",
    "say_hangup_twiml",
    "signature_algorithm",
    "stream_status_log",
    "twilio_stream_url",
    "verify_telnyx_signature",
    "voicemail_problem",
    "xml_attribute",
    "xml_text",
]
