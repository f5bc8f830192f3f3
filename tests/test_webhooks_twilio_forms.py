"""Form decoding and the typed Twilio callbacks."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core import RemoteProtocolError
from patter_core.webhooks import (
    FormData,
    parse_amd_callback,
    parse_call_status,
    parse_form,
    parse_incoming_call,
    parse_recording_status,
    parse_stream_status,
)
from patter_core.webhooks._twilio_events import AMD_ANSWERED_BY, is_machine_end

INCOMING = (
    b"AccountSid=AC0123456789abcdef0123456789abcdef&ApiVersion=2010-04-01"
    b"&CallSid=CA0123456789abcdef0123456789abcdef&CallStatus=ringing&Called=%2B18005551212"
    b"&Caller=%2B14158675309&CallerName=Jane+Doe&Direction=inbound&ForwardedFrom="
    b"&From=%2B14158675309&FromCity=&FromCountry=US&To=%2B18005551212&StirVerstat=TN-Validation-Passed-A"
    b"&Custom=one&Custom=two"
)


def test_parse_form_multi_valued_and_empty() -> None:
    form = parse_form(b"a=1&b=&a=2&&c&d=x%20y+z&%C3%A9=%E2%82%AC")
    assert form.pairs == (("a", "1"), ("b", ""), ("a", "2"), ("c", ""), ("d", "x y z"), ("é", "€"))
    assert form.get("a") == "1"
    assert form.getall("a") == ["1", "2"]
    assert form.names() == ["a", "b", "c", "d", "é"]
    assert form.to_dict()["a"] == "1"
    assert "c" in form and "zz" not in form
    assert parse_form(b"") == FormData()


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"a=%FF", 400), (b"\xff=1", 400), (b"a=%C3", 400), (b"x" * 70000, 413), (b"a&" * 300, 413)],
)
def test_parse_form_errors(body: bytes, status: int) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_form(body)
    assert info.value.http_status == status


def test_parse_form_limits_are_configurable() -> None:
    assert len(parse_form(b"a&" * 300, max_fields=400)) == 300
    with pytest.raises(RemoteProtocolError):
        parse_form(b"a=1", max_bytes=2)
    # many empty pieces are not fields
    assert len(parse_form(b"&" * 1000 + b"a=1")) == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(), st.text()), max_size=10))
def test_parse_form_round_trips_urlencode(pairs: list[tuple[str, str]]) -> None:
    try:
        body = urlencode(pairs).encode()
    except UnicodeEncodeError:
        return  # lone surrogates cannot be sent at all
    assert list(parse_form(body)) == pairs
    assert list(parse_form(body)) == parse_qsl(body.decode(), keep_blank_values=True)


def test_incoming_call() -> None:
    call = parse_incoming_call(parse_form(INCOMING))
    assert call.call_sid == "CA0123456789abcdef0123456789abcdef"
    assert call.account_sid.startswith("AC")
    assert call.from_ == "+14158675309"
    assert call.to == "+18005551212"
    assert call.direction == "inbound"
    assert call.call_status == "ringing"
    assert call.caller_name == "Jane Doe"
    assert call.forwarded_from is None  # empty string means not given
    assert call.stir_verstat == "TN-Validation-Passed-A"
    # unknown fields kept, all values
    assert call.form.getall("Custom") == ["one", "two"]
    assert call.form.get("FromCountry") == "US"


@pytest.mark.parametrize(
    "parser", [parse_incoming_call, parse_call_status, parse_amd_callback, parse_recording_status]
)
def test_missing_call_sid_is_400(parser: object) -> None:
    form = parse_form(b"AccountSid=AC1&CallStatus=completed&AnsweredBy=human")
    with pytest.raises(RemoteProtocolError) as info:
        parser(form)  # type: ignore[operator]
    assert info.value.http_status == 400
    assert "CallSid" in str(info.value)


def test_call_status_callback() -> None:
    form = parse_form(
        b"AccountSid=AC1&CallSid=CA1&CallStatus=completed&CallDuration=42&Duration=1"
        b"&SequenceNumber=3&Timestamp=Wed%2C+08+Oct+2025+13%3A54%3A12+%2B0000"
        b"&SipResponseCode=200&AnsweredBy=human&CallbackSource=call-progress-events"
    )
    event = parse_call_status(form)
    assert (event.call_status, event.call_duration, event.sequence_number) == ("completed", 42, 3)
    assert event.timestamp == "Wed, 08 Oct 2025 13:54:12 +0000"
    assert event.sip_response_code == 200
    assert event.answered_by == "human"
    assert event.callback_source == "call-progress-events"
    assert event.form.get("Duration") == "1"


@pytest.mark.parametrize("bad", [b"abc", b"1.5", b"99999999999", b"%EF%BC%91"])
def test_bad_integers_are_400(bad: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_call_status(
            parse_form(b"AccountSid=AC1&CallSid=CA1&CallStatus=busy&CallDuration=" + bad)
        )
    assert info.value.http_status == 400


@pytest.mark.parametrize("answered_by", AMD_ANSWERED_BY)
def test_amd_callback(answered_by: str) -> None:
    form = parse_form(
        f"AccountSid=AC1&CallSid=CA1&AnsweredBy={answered_by}&MachineDetectionDuration=3412".encode()
    )
    event = parse_amd_callback(form)
    assert event.answered_by == answered_by
    assert event.machine_detection_duration_ms == 3412
    assert event.machine_finished_greeting == answered_by.startswith("machine_end_")
    assert event.is_human == (answered_by == "human")


def test_is_machine_end() -> None:
    assert is_machine_end("machine_end_beep")
    assert is_machine_end("machine_end_silence")
    assert is_machine_end("machine_end_other")
    assert not is_machine_end("machine_start")
    assert not is_machine_end(None)
    with pytest.raises(RemoteProtocolError):
        parse_amd_callback(parse_form(b"AccountSid=AC1&CallSid=CA1"))


def test_recording_and_stream_status() -> None:
    rec = parse_recording_status(
        parse_form(
            b"AccountSid=AC1&CallSid=CA1&RecordingSid=RE1&RecordingStatus=completed"
            b"&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2Fr%2FRE1&RecordingDuration=7"
            b"&RecordingChannels=2&RecordingSource=StartCallRecordingAPI&ErrorCode=0"
        )
    )
    assert (rec.recording_sid, rec.recording_status, rec.recording_duration) == (
        "RE1",
        "completed",
        7,
    )
    assert rec.recording_url == "https://api.twilio.com/r/RE1"
    assert rec.recording_channels == 2
    assert rec.recording_source == "StartCallRecordingAPI"
    with pytest.raises(RemoteProtocolError):
        parse_recording_status(parse_form(b"AccountSid=AC1&CallSid=CA1&RecordingStatus=x"))
    stream = parse_stream_status(
        parse_form(
            b"AccountSid=AC1&CallSid=CA1&StreamSid=MZ1&StreamEvent=stream-error&StreamError=boom"
        )
    )
    assert (stream.stream_sid, stream.stream_event, stream.stream_error) == (
        "MZ1",
        "stream-error",
        "boom",
    )


def test_events_are_frozen() -> None:
    call = parse_incoming_call(parse_form(INCOMING))
    with pytest.raises(AttributeError):
        call.call_sid = "x"  # type: ignore[misc]
