"""Twilio and Telnyx REST request builders and response parsers."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import parse_qsl

import pytest

from patter_core import LocalProtocolError
from patter_core.http import HttpResponse
from patter_core.webhooks import (
    CarrierApiError,
    RetryPolicy,
    TelnyxRest,
    TwilioRest,
    parse_telnyx_response,
    parse_twilio_call,
)

ACCOUNT = "AC0123456789abcdef0123456789abcdef"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_twilio_create_call() -> None:
    rest = TwilioRest(ACCOUNT, "secret")
    req = rest.create_call(
        to="+15550001111",
        from_="+15550002222",
        url="https://h.example/webhooks/twilio/voice",
        status_callback="https://h.example/webhooks/twilio/status",
        machine_detection="DetectMessageEnd",
        async_amd=True,
        async_amd_status_callback="https://h.example/webhooks/twilio/amd",
    )
    assert req.method == "POST"
    assert req.url == f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
    headers = dict(req.headers)
    assert headers["authorization"] == _basic(ACCOUNT, "secret")
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    fields = parse_qsl(req.body.decode(), keep_blank_values=True)
    assert fields == [
        ("To", "+15550001111"),
        ("From", "+15550002222"),
        ("Url", "https://h.example/webhooks/twilio/voice"),
        ("StatusCallback", "https://h.example/webhooks/twilio/status"),
        ("StatusCallbackMethod", "POST"),
        ("StatusCallbackEvent", "initiated"),
        ("StatusCallbackEvent", "ringing"),
        ("StatusCallbackEvent", "answered"),
        ("StatusCallbackEvent", "completed"),
        ("MachineDetection", "DetectMessageEnd"),
        ("AsyncAmd", "true"),
        ("AsyncAmdStatusCallback", "https://h.example/webhooks/twilio/amd"),
        ("AsyncAmdStatusCallbackMethod", "POST"),
    ]
    assert b"%2B15550001111" in req.body  # '+' is percent-encoded, not a space


def test_twilio_twiml_update_hangup_recording() -> None:
    rest = TwilioRest(ACCOUNT, "secret", base_url="http://127.0.0.1:9999/", username="SK1")
    assert dict(rest.hang_up("CA1").headers)["authorization"] == _basic("SK1", "secret")
    twiml = '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup /></Response>'
    req = rest.create_call(to="+1", from_="+2", twiml=twiml)
    assert dict(parse_qsl(req.body.decode()))["Twiml"] == twiml
    update = rest.update_call_twiml("CA1", twiml)
    assert update.url == f"http://127.0.0.1:9999/2010-04-01/Accounts/{ACCOUNT}/Calls/CA1.json"
    assert parse_qsl(update.body.decode()) == [("Twiml", twiml)]
    hang = rest.hang_up("CA/1")
    assert hang.url.endswith("/Calls/CA%2F1.json")
    assert hang.body == b"Status=completed"
    rec = rest.start_recording("CA1", recording_status_callback="https://h/rec")
    assert rec.url.endswith("/Calls/CA1/Recordings.json")
    assert parse_qsl(rec.body.decode()) == [
        ("RecordingStatusCallback", "https://h/rec"),
        ("RecordingStatusCallbackMethod", "POST"),
        ("RecordingStatusCallbackEvent", "completed"),
    ]
    with pytest.raises(LocalProtocolError):
        rest.create_call(to="+1", from_="+2")
    with pytest.raises(LocalProtocolError):
        rest.create_call(to="+1", from_="+2", url="u", twiml="t")
    with pytest.raises(LocalProtocolError):
        rest.hang_up("")


def test_parse_twilio_call() -> None:
    call = parse_twilio_call(HttpResponse(status=201, body=b'{"sid": "CA1", "status": "queued"}'))
    assert (call.sid, call.status) == ("CA1", "queued")
    with pytest.raises(CarrierApiError) as info:
        parse_twilio_call(
            HttpResponse(
                status=400, body=b'{"code": 21211, "message": "Invalid To", "status": 400}'
            )
        )
    assert (info.value.api_status, info.value.api_code, info.value.api_message) == (
        400,
        "21211",
        "Invalid To",
    )
    assert info.value.http_status == 502
    for body in (b"", b"<html>", b"[]", b'{"sid": 5}', b'{"status": "queued"}', b"[" * 50000):
        with pytest.raises(CarrierApiError):
            parse_twilio_call(HttpResponse(status=200, body=body))
    with pytest.raises(CarrierApiError):
        parse_twilio_call(HttpResponse(status=500, body=b"oops"))


def derived(body: bytes) -> dict[str, object]:
    """The JSON body less its command_id, which must be the derived one."""
    obj = json.loads(body)
    command_id = obj.pop("command_id")
    assert isinstance(command_id, str)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", command_id)
    return dict(obj)


def test_telnyx_command_id_derived_from_call_and_command() -> None:
    rest = TelnyxRest("K")
    ids = [json.loads(r.body)["command_id"] for r in (rest.hangup("a"), rest.hangup("a"))]
    assert ids[0] == ids[1]  # the same command again: Telnyx runs it once
    others = {
        json.loads(r.body)["command_id"]
        for r in (rest.hangup("b"), rest.speak("a", payload="x"), rest.speak("a", payload="y"))
    }
    assert len(others) == 3 and ids[0] not in others
    assert json.loads(rest.hangup("a", command_id="mine").body)["command_id"] == "mine"


def test_telnyx_answer_and_streaming_start() -> None:
    rest = TelnyxRest("KEY123")
    req = rest.answer(
        "v3:abc/def",
        stream_url="wss://h.example/ws/telnyx/v3:abc",
        client_state="eyJ0ZW5hbnQiOiJhY21lIn0=",
        command_id="891510ac-f3e4-11e8-af5b-de00688a4901",
    )
    assert req.url == "https://api.telnyx.com/v2/calls/v3%3Aabc%2Fdef/actions/answer"
    assert dict(req.headers)["authorization"] == "Bearer KEY123"
    assert dict(req.headers)["content-type"] == "application/json"
    assert json.loads(req.body) == {
        "stream_url": "wss://h.example/ws/telnyx/v3:abc",
        "stream_track": "inbound_track",
        "stream_codec": "PCMU",
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": "PCMU",
        "client_state": "eyJ0ZW5hbnQiOiJhY21lIn0=",
        "command_id": "891510ac-f3e4-11e8-af5b-de00688a4901",
    }
    assert derived(rest.answer("c").body) == {}
    start = rest.streaming_start(
        "c",
        stream_url="wss://h/ws",
        stream_auth_token="v1.1.abc",
        custom_parameters={"tenant": "acme"},
    )
    assert start.url.endswith("/calls/c/actions/streaming_start")
    assert derived(start.body) == {
        "stream_url": "wss://h/ws",
        "stream_track": "inbound_track",
        "stream_codec": "L16",
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": "L16",
        "stream_bidirectional_sampling_rate": 16000,
        "stream_auth_token": "v1.1.abc",
        "custom_parameters": [{"name": "tenant", "value": "acme"}],
    }
    with pytest.raises(LocalProtocolError):
        rest.streaming_start("c", stream_url="https://h/ws")


def test_telnyx_speak_hangup_dial() -> None:
    rest = TelnyxRest("K", base_url="http://127.0.0.1:1/v2/")
    speak = rest.speak("c", payload="Hello é", voice="female", command_id="x")
    assert speak.url == "http://127.0.0.1:1/v2/calls/c/actions/speak"
    assert json.loads(speak.body) == {
        "payload": "Hello é",
        "voice": "female",
        "service_level": "basic",  # the API takes male/female only with it
        "command_id": "x",
    }
    premium = rest.speak("c", payload="Hi", voice="Telnyx.KokoroTTS.af")
    assert derived(premium.body) == {"payload": "Hi", "voice": "Telnyx.KokoroTTS.af"}
    assert derived(rest.hangup("c").body) == {}
    dial = rest.dial(
        to="+1",
        from_="+2",
        connection_id="conn",
        stream_url="wss://h/ws",
        stream_auth_token="t",
        answering_machine_detection="detect_beep",
        webhook_url="https://h/webhooks/telnyx",
    )
    assert dial.url == "http://127.0.0.1:1/v2/calls"
    body = derived(dial.body)
    assert body["to"] == "+1" and body["from"] == "+2" and body["connection_id"] == "conn"
    assert body["stream_bidirectional_sampling_rate"] == 16000
    assert body["answering_machine_detection"] == "detect_beep"
    assert body["webhook_url"] == "https://h/webhooks/telnyx"
    assert body["stream_auth_token"] == "t"


def test_parse_telnyx_response() -> None:
    ok = parse_telnyx_response(
        HttpResponse(status=200, body=b'{"data":{"call_control_id":"v3:x","result":"ok"}}')
    )
    assert (ok.call_control_id, ok.result) == ("v3:x", "ok")
    with pytest.raises(CarrierApiError) as info:
        parse_telnyx_response(
            HttpResponse(
                status=422, body=b'{"errors":[{"code":"90018","title":"Call has already ended"}]}'
            )
        )
    assert (info.value.api_code, info.value.api_message) == ("90018", "Call has already ended")
    for body in (b"", b"{}", b'{"data": 1}', b'{"data":{"call_control_id":1}}'):
        with pytest.raises(CarrierApiError):
            parse_telnyx_response(HttpResponse(status=200, body=body))


def test_telnyx_transfer_and_record_start() -> None:
    rest = TelnyxRest("KEY", base_url="https://api.example/v2")
    req = rest.transfer("v3:abc", to="+15550001111")
    assert req.method == "POST"
    assert req.url == "https://api.example/v2/calls/v3%3Aabc/actions/transfer"
    assert dict(req.headers)["authorization"] == "Bearer KEY"
    assert derived(req.body) == {"to": "+15550001111"}
    req = rest.record_start("v3:abc")
    assert req.url == "https://api.example/v2/calls/v3%3Aabc/actions/record_start"
    assert derived(req.body) == {"format": "mp3", "channels": "single"}


def test_retry_policy_backs_off_on_5xx_and_failures_never_on_4xx() -> None:
    policy = RetryPolicy()
    assert [policy.delay_after(n, 503) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, None]
    assert policy.delay_after(1, None) == 0.5  # the connection failed
    assert [policy.delay_after(1, s) for s in (200, 400, 404, 422, 429)] == [None] * 5
    assert RetryPolicy(max_attempts=1).delay_after(1, 500) is None
    assert RetryPolicy(first_delay_s=3, max_delay_s=4).delay_after(3, 502) == 4
    with pytest.raises(LocalProtocolError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(LocalProtocolError):
        RetryPolicy(first_delay_s=5, max_delay_s=1)
