"""Twilio's decisions, pure: the answer TwiML, the dial, AMD, stream status, limits."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]
from twilio.twiml.voice_response import Connect, VoiceResponse  # type: ignore[import-untyped]

from patter_core import LocalProtocolError, SignatureError
from patter_core.webhooks import (
    AmdAction,
    FormData,
    IncomingCall,
    StreamStatusCallback,
    StreamTokens,
    TwilioCallFlow,
    TwilioRest,
    TwilioSignatureValidator,
)
from patter_core.webhooks._twilio_flow import amd_action, stream_status_log, voicemail_problem
from patter_core.webhooks._twilio_signature import media_stream_urls
from patter_core.webhooks._twiml import connect_stream_twiml, say_hangup_twiml

HOST = "abc.ngrok.app"
SID = "CA" + "1" * 32
TOKENS = StreamTokens(b"0123456789abcdef0123456789abcdef")
REST = TwilioRest("AC" + "2" * 32, "token", base_url="https://api.test")
FLOW = TwilioCallFlow(TOKENS, webhook_host=HOST, rest=REST)


def _call(direction: str, from_: str, to: str) -> IncomingCall:
    return IncomingCall(
        call_sid=SID,
        account_sid="AC" + "2" * 32,
        from_=from_,
        to=to,
        direction=direction,
        call_status="in-progress",
    )


@pytest.mark.parametrize(
    ("answered_by", "action"),
    [
        ("machine_end_beep", AmdAction.LEAVE_MESSAGE),
        ("machine_end_silence", AmdAction.LEAVE_MESSAGE),
        ("machine_end_other", AmdAction.LEAVE_MESSAGE),
        ("unknown", AmdAction.LEAVE_MESSAGE),
        ("fax", AmdAction.HANG_UP),
        ("human", AmdAction.NOTHING),
        ("machine_start", AmdAction.NOTHING),
        ("something_new", AmdAction.NOTHING),
    ],
)
def test_amd_actions(answered_by: str, action: AmdAction) -> None:
    assert amd_action(answered_by) is action


def test_answer_is_the_sdks_twiml_with_a_stream_status_callback() -> None:
    twiml = FLOW.answer(_call("inbound", "+14155550100", "+18005550199"), 1000.0)
    token = TOKENS.issue(SID, 1000.0)
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(
        url=f"wss://{HOST}/ws/stream/{SID}",
        status_callback=f"https://{HOST}/webhooks/twilio/stream-status",
        status_callback_method="POST",
    )
    stream.parameter(name="caller", value="+14155550100")
    stream.parameter(name="callee", value="+18005550199")
    stream.parameter(name="stream_token", value=token)
    response.append(connect)
    assert twiml == str(response)


def test_voice_answer_is_the_whole_http_answer() -> None:
    call = _call("inbound", "+14155550100", "+18005550199")
    answered = FLOW.voice_answer(call, 1000.0, host_header="ignored.example")
    assert (answered.status, answered.headers) == (
        200,
        (("content-type", "text/xml; charset=utf-8"),),
    )
    assert answered.body == FLOW.answer(call, 1000.0).encode()
    assert f"wss://{HOST}/ws/stream/{SID}".encode() in answered.body
    refused = FLOW.voice_answer(call, 1000.0, admitted=False)
    assert (refused.status, refused.body) == (
        200,
        b'<?xml version="1.0" encoding="UTF-8"?><Response><Reject /></Response>',
    )
    # No configured host: the request's Host, else a 400 that says why.
    hostless = TwilioCallFlow(TOKENS, webhook_host=None, rest=None)
    via_header = hostless.voice_answer(call, 1000.0, host_header="h.example")
    assert b'url="wss://h.example/ws/stream/' in via_header.body
    nowhere = hostless.voice_answer(call, 1000.0)
    assert (nowhere.status, nowhere.body) == (
        400,
        b"no webhook host configured and no Host header\n",
    )
    assert nowhere.headers == (("content-type", "text/plain; charset=utf-8"),)
    too_long = FLOW.voice_answer(_call("inbound", "x" * 600, "+1"), 1000.0)
    assert too_long.status == 400 and b"'caller'" in too_long.body


def test_outbound_parties_are_from_the_callers_and_callees_point_of_view() -> None:
    """Outbound: we placed the call (caller, From) to the person we dialled (callee, To)."""
    twiml = FLOW.answer(_call("outbound-api", "+18005550199", "+14155550100"), 1000.0)
    assert '<Parameter name="caller" value="+18005550199" />' in twiml
    assert '<Parameter name="callee" value="+14155550100" />' in twiml


def test_parameter_limit_is_checked_when_building_twiml() -> None:
    connect_stream_twiml("wss://h/x", [("caller", "1" * 494)])  # 500 exactly
    with pytest.raises(LocalProtocolError, match="Twilio allows 500"):
        connect_stream_twiml("wss://h/x", [("caller", "1" * 495)])
    with pytest.raises(LocalProtocolError, match="'caller'"):
        FLOW.answer(_call("inbound", "x" * 600, "+1"), 0.0)


def test_inline_twiml_is_capped_at_4000_characters() -> None:
    text = "a" * (4000 - (len(say_hangup_twiml("a")) - 1))
    assert voicemail_problem(text) is None
    request = REST.update_call_twiml(SID, say_hangup_twiml(text))
    assert len(dict(parse_qsl(request.body.decode()))["Twiml"]) == 4000
    assert voicemail_problem(text + "a") is not None
    with pytest.raises(LocalProtocolError, match="Twilio allows 4000"):
        REST.update_call_twiml(SID, say_hangup_twiml(text + "a"))
    with pytest.raises(LocalProtocolError, match="Twilio allows 4000"):
        REST.create_call(to="+1", from_="+2", twiml=say_hangup_twiml(text + "a"))
    # What counts is the escaped TwiML: "&" is five characters there.
    assert voicemail_problem("&" * 1000) is not None


def test_create_call_carries_the_detection_timeout() -> None:
    request = FLOW.create_call(to="+14155550100", from_="+18005550199", machine_detection=True)
    form = dict(parse_qsl(request.body.decode()))
    assert form["MachineDetection"] == "DetectMessageEnd"
    assert form["MachineDetectionTimeout"] == "45"
    assert form["AsyncAmd"] == "true"
    plain = FLOW.create_call(to="+1", from_="+2", machine_detection=False)
    assert "MachineDetectionTimeout" not in dict(parse_qsl(plain.body.decode()))
    with pytest.raises(LocalProtocolError, match="whole seconds in 3-59, not 60"):
        FLOW.create_call(to="+1", from_="+2", machine_detection=True, machine_detection_timeout=60)


def test_create_call_is_the_exact_form_twilio_documents() -> None:
    request = FLOW.create_call(
        to="+14155550100", from_="+18005550199", machine_detection=True, ring_timeout=30
    )
    assert (request.method, request.url) == (
        "POST",
        f"https://api.test/2010-04-01/Accounts/AC{'2' * 32}/Calls.json",
    )
    assert parse_qsl(request.body.decode()) == [
        ("To", "+14155550100"),
        ("From", "+18005550199"),
        ("Url", f"https://{HOST}/webhooks/twilio/voice"),
        ("StatusCallback", f"https://{HOST}/webhooks/twilio/status"),
        ("StatusCallbackMethod", "POST"),
        ("StatusCallbackEvent", "initiated"),
        ("StatusCallbackEvent", "ringing"),
        ("StatusCallbackEvent", "answered"),
        ("StatusCallbackEvent", "completed"),
        ("MachineDetection", "DetectMessageEnd"),
        ("MachineDetectionTimeout", "45"),
        ("AsyncAmd", "true"),
        ("AsyncAmdStatusCallback", f"https://{HOST}/webhooks/twilio/amd"),
        ("AsyncAmdStatusCallbackMethod", "POST"),
        ("Timeout", "30"),
    ]


def test_start_recording_reports_to_the_recording_webhook() -> None:
    request = FLOW.start_recording(SID)
    assert request is not None
    assert request.url == (
        f"https://api.test/2010-04-01/Accounts/AC{'2' * 32}/Calls/{SID}/Recordings.json"
    )
    assert parse_qsl(request.body.decode()) == [
        ("RecordingStatusCallback", f"https://{HOST}/webhooks/twilio/recording"),
        ("RecordingStatusCallbackMethod", "POST"),
        ("RecordingStatusCallbackEvent", "completed"),
    ]
    hostless = TwilioCallFlow(TOKENS, webhook_host=None, rest=REST).start_recording(SID)
    assert hostless is not None and hostless.body == b""
    assert TwilioCallFlow(TOKENS, webhook_host=HOST, rest=None).start_recording(SID) is None


def test_amd_without_a_stream() -> None:
    assert FLOW.amd_without_stream(SID, "human", "Call back") == ()
    assert FLOW.amd_without_stream(SID, "machine_end_beep", None) == ()
    ((purpose, request),) = FLOW.amd_without_stream(SID, "unknown", "Call back")
    assert purpose == "voicemail"
    assert dict(parse_qsl(request.body.decode())) == {"Twiml": say_hangup_twiml("Call back")}
    ((purpose, request),) = FLOW.amd_without_stream(SID, "fax", "Call back")
    assert purpose == "hangup"
    assert dict(parse_qsl(request.body.decode())) == {"Status": "completed"}
    assert (
        TwilioCallFlow(TOKENS, webhook_host=HOST, rest=None).amd_without_stream(SID, "fax", "x")
        == ()
    )


def test_upgrade_signed_over_either_url_form_and_nothing_else() -> None:
    validator = TwilioSignatureValidator("secret")
    path = f"/ws/stream/{SID}"
    urls = media_stream_urls(HOST, path)
    assert urls == (f"wss://{HOST}{path}", f"wss://{HOST}{path}/")
    assert media_stream_urls(HOST, path + "/") == (f"wss://{HOST}{path}/", f"wss://{HOST}{path}")
    sign = RequestValidator("secret").compute_signature
    for signed in urls:
        validator.validate_upgrade(urls=urls, headers=[("X-Twilio-Signature", sign(signed, {}))])
    for other in (f"wss://{HOST}{path}//", f"https://{HOST}{path}", f"wss://{HOST}/ws/x/{SID}"):
        with pytest.raises(SignatureError):
            validator.validate_upgrade(urls=urls, headers=[("X-Twilio-Signature", sign(other, {}))])
    with pytest.raises(SignatureError):
        validator.validate_upgrade(urls=urls, headers=[])


def test_stream_status_log_lines() -> None:
    def event(kind: str, error: str | None = None) -> StreamStatusCallback:
        return StreamStatusCallback(
            call_sid=SID,
            account_sid="AC",
            stream_sid="MZ1",
            stream_event=kind,
            stream_error=error,
            form=FormData(),
        )

    started = stream_status_log(event("stream-started"))
    assert not started.warning and started.text == f"stream-started call={SID} stream=MZ1"
    error = stream_status_log(event("stream-error", "31920 Stream - WebSocket - Handshake Error"))
    assert error.warning and error.error_code == "31920"
    assert error.text.startswith(f"stream-error call={SID} stream=MZ1 code=31920: ")
    vague = stream_status_log(event("stream-error"))
    assert vague.warning and vague.error_code is None and "code=unknown" in vague.text
