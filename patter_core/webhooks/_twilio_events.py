"""Twilio voice webhooks as typed events (PROTOCOLS.md §2.1, §2.3-§2.5).

Each parser takes the decoded :class:`FormData` of a request whose signature
has already been checked and returns a frozen event. Only what a call needs
is lifted into typed fields; the whole form stays on ``form`` so a field
Twilio adds tomorrow is still reachable. A missing required field (no
``CallSid``) or a number that is not a number raises
``RemoteProtocolError(http_status=400)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import RemoteProtocolError
from ._forms import FormData

__all__ = [
    "AMD_ANSWERED_BY",
    "AmdCallback",
    "CallStatusCallback",
    "IncomingCall",
    "RecordingStatusCallback",
    "StreamStatusCallback",
    "is_machine_end",
    "parse_amd_callback",
    "parse_call_status",
    "parse_incoming_call",
    "parse_recording_status",
    "parse_stream_status",
]

#: ``AnsweredBy`` values (§2.4): the first four with ``MachineDetection=Enable``,
#: the ``machine_end_*`` ones with ``DetectMessageEnd``. Others are kept as is.
AMD_ANSWERED_BY = (
    "human",
    "machine_start",
    "fax",
    "unknown",
    "machine_end_beep",
    "machine_end_silence",
    "machine_end_other",
)

_NO_FORM = FormData()

# Integers Twilio sends are durations, sequence numbers and SIP codes; ten
# digits is far beyond any of them and keeps int() off huge strings.
_MAX_INT_DIGITS = 10


def is_machine_end(answered_by: str | None) -> bool:
    """True when a machine finished its greeting (``machine_end_*``, §2.4).

    That is the moment to play a voicemail drop: the beep (or the silence
    after the greeting) has passed, so the message is recorded from its start.
    """
    return answered_by is not None and answered_by.startswith("machine_end_")


def _required(form: FormData, name: str) -> str:
    value = form.get(name)
    if not value:
        raise RemoteProtocolError(f"webhook without {name}", http_status=400)
    return value


def _optional(form: FormData, name: str) -> str | None:
    # Twilio sends many fields as empty strings (geo data it lacks); for a
    # typed optional field an empty string means "not given".
    return form.get(name) or None


def _int(form: FormData, name: str) -> int | None:
    value = form.get(name)
    if not value:
        return None
    text = value[1:] if value[0] in "+-" else value
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_INT_DIGITS:
        raise RemoteProtocolError(f"{name} is not an integer: {value[:40]!r}", http_status=400)
    return int(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingCall:
    """The voice webhook: a call arrived (or an outbound call was answered)."""

    call_sid: str
    account_sid: str
    from_: str | None
    to: str | None
    direction: str | None
    call_status: str | None
    caller_name: str | None = None
    forwarded_from: str | None = None
    parent_call_sid: str | None = None
    answered_by: str | None = None
    stir_verstat: str | None = None
    form: FormData = _NO_FORM


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStatusCallback:
    """A ``StatusCallback`` progress event (§2.3). May arrive out of order:
    order them by ``sequence_number``."""

    call_sid: str
    account_sid: str
    call_status: str
    call_duration: int | None = None
    sequence_number: int | None = None
    timestamp: str | None = None
    sip_response_code: int | None = None
    answered_by: str | None = None
    callback_source: str | None = None
    form: FormData = _NO_FORM


@dataclass(frozen=True, slots=True, kw_only=True)
class AmdCallback:
    """The asynchronous answering-machine-detection result (§2.4)."""

    call_sid: str
    account_sid: str
    answered_by: str
    machine_detection_duration_ms: int | None = None
    form: FormData = _NO_FORM

    @property
    def machine_finished_greeting(self) -> bool:
        return is_machine_end(self.answered_by)

    @property
    def is_human(self) -> bool:
        return self.answered_by == "human"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStatusCallback:
    """A ``RecordingStatusCallback`` (§2.5)."""

    call_sid: str
    account_sid: str
    recording_sid: str
    recording_status: str
    recording_url: str | None = None
    recording_duration: int | None = None
    recording_channels: int | None = None
    recording_source: str | None = None
    error_code: str | None = None
    form: FormData = _NO_FORM


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStatusCallback:
    """A ``<Stream statusCallback>`` event (§2.2): started, stopped, error."""

    call_sid: str
    account_sid: str
    stream_sid: str
    stream_event: str
    stream_name: str | None = None
    stream_error: str | None = None
    timestamp: str | None = None
    form: FormData = _NO_FORM


def parse_incoming_call(form: FormData) -> IncomingCall:
    return IncomingCall(
        call_sid=_required(form, "CallSid"),
        account_sid=_required(form, "AccountSid"),
        from_=_optional(form, "From"),
        to=_optional(form, "To"),
        direction=_optional(form, "Direction"),
        call_status=_optional(form, "CallStatus"),
        caller_name=_optional(form, "CallerName"),
        forwarded_from=_optional(form, "ForwardedFrom"),
        parent_call_sid=_optional(form, "ParentCallSid"),
        answered_by=_optional(form, "AnsweredBy"),
        stir_verstat=_optional(form, "StirVerstat"),
        form=form,
    )


def parse_call_status(form: FormData) -> CallStatusCallback:
    return CallStatusCallback(
        call_sid=_required(form, "CallSid"),
        account_sid=_required(form, "AccountSid"),
        call_status=_required(form, "CallStatus"),
        # "CallDuration" is the documented name; "Duration" is sent alongside
        # (rounded up to minutes on some accounts), so prefer the former.
        call_duration=_int(form, "CallDuration"),
        sequence_number=_int(form, "SequenceNumber"),
        timestamp=_optional(form, "Timestamp"),
        sip_response_code=_int(form, "SipResponseCode"),
        answered_by=_optional(form, "AnsweredBy"),
        callback_source=_optional(form, "CallbackSource"),
        form=form,
    )


def parse_amd_callback(form: FormData) -> AmdCallback:
    return AmdCallback(
        call_sid=_required(form, "CallSid"),
        account_sid=_required(form, "AccountSid"),
        answered_by=_required(form, "AnsweredBy"),
        machine_detection_duration_ms=_int(form, "MachineDetectionDuration"),
        form=form,
    )


def parse_recording_status(form: FormData) -> RecordingStatusCallback:
    return RecordingStatusCallback(
        call_sid=_required(form, "CallSid"),
        account_sid=_required(form, "AccountSid"),
        recording_sid=_required(form, "RecordingSid"),
        recording_status=_required(form, "RecordingStatus"),
        recording_url=_optional(form, "RecordingUrl"),
        recording_duration=_int(form, "RecordingDuration"),
        recording_channels=_int(form, "RecordingChannels"),
        recording_source=_optional(form, "RecordingSource"),
        error_code=_optional(form, "ErrorCode"),
        form=form,
    )


def parse_stream_status(form: FormData) -> StreamStatusCallback:
    return StreamStatusCallback(
        call_sid=_required(form, "CallSid"),
        account_sid=_required(form, "AccountSid"),
        stream_sid=_required(form, "StreamSid"),
        stream_event=_required(form, "StreamEvent"),
        stream_name=_optional(form, "StreamName"),
        stream_error=_optional(form, "StreamError"),
        timestamp=_optional(form, "Timestamp"),
        form=form,
    )
