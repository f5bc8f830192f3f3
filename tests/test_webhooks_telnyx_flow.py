"""The Telnyx call-control decisions, pure: webhook event in, REST commands out."""

from __future__ import annotations

import json

import pytest
from twilio.twiml.voice_response import VoiceResponse  # type: ignore[import-untyped]

from patter_core import SignatureError
from patter_core.webhooks import (
    StreamTokens,
    TelnyxCallFlow,
    TelnyxRest,
    dial_twiml,
    parse_telnyx_webhook,
)

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = 1_700_000_000.0


def event(event_type: str, **payload: object) -> bytes:
    body = {
        "data": {
            "event_type": event_type,
            "id": "evt-1",
            "payload": {"call_control_id": "v3:call-1", **payload},
            "record_type": "event",
        }
    }
    return json.dumps(body).encode()


def flow(host: str | None = "abc.ngrok.app", codec: str = "PCMU") -> TelnyxCallFlow:
    return TelnyxCallFlow(
        TelnyxRest("KEY", base_url="https://api.example/v2"),
        StreamTokens(SECRET),
        webhook_host=host,
        codec=codec,  # type: ignore[arg-type]
    )


def test_incoming_call_is_answered_without_a_stream() -> None:
    follow_up = flow().on_event(
        parse_telnyx_webhook(event("call.initiated", direction="incoming")), NOW
    )
    ((purpose, req),) = follow_up.requests
    assert purpose == "answer"
    assert req.url == "https://api.example/v2/calls/v3%3Acall-1/actions/answer"
    assert "stream_url" not in json.loads(req.body)
    assert not follow_up.machine_greeting_ended and follow_up.problem is None


def test_our_own_dial_is_not_answered() -> None:
    follow_up = flow().on_event(
        parse_telnyx_webhook(event("call.initiated", direction="outgoing")), NOW
    )
    assert follow_up.requests == ()


@pytest.mark.parametrize(
    ("codec", "expected"),
    [
        ("PCMU", {"stream_codec": "PCMU", "stream_bidirectional_codec": "PCMU"}),
        (
            "L16",
            {
                "stream_codec": "L16",
                "stream_bidirectional_codec": "L16",
                "stream_bidirectional_sampling_rate": 16000,
            },
        ),
    ],
)
def test_answered_call_streams_with_a_token_for_that_call(
    codec: str, expected: dict[str, object]
) -> None:
    follow_up = flow(codec=codec).on_event(parse_telnyx_webhook(event("call.answered")), NOW)
    ((purpose, req),) = follow_up.requests
    assert purpose == "streaming_start"
    body = json.loads(req.body)
    assert body["stream_url"] == "wss://abc.ngrok.app/ws/telnyx/stream/v3:call-1"
    assert body["stream_bidirectional_mode"] == "rtp"
    for key, value in expected.items():
        assert body[key] == value
    if codec == "PCMU":
        assert "stream_bidirectional_sampling_rate" not in body
    tokens = StreamTokens(SECRET)
    tokens.verify(body["stream_auth_token"], "v3:call-1", NOW + 1)
    with pytest.raises(SignatureError):
        tokens.verify(body["stream_auth_token"], "v3:other-call", NOW + 1)


def test_no_webhook_host_is_a_reported_problem() -> None:
    follow_up = flow(host=None).on_event(parse_telnyx_webhook(event("call.answered")), NOW)
    assert follow_up.requests == ()
    assert follow_up.problem is not None and "webhook host" in follow_up.problem


def test_voicemail_waits_for_the_end_of_the_greeting() -> None:
    detection = flow().on_event(
        parse_telnyx_webhook(event("call.machine.detection.ended", result="machine")), NOW
    )
    assert detection.requests == () and not detection.machine_greeting_ended
    greeting = flow().on_event(
        parse_telnyx_webhook(event("call.machine.greeting.ended", result="beep_detected")), NOW
    )
    assert greeting.requests == () and greeting.machine_greeting_ended


@pytest.mark.parametrize("event_type", ["call.hangup", "streaming.started", "call.bridged"])
def test_other_events_need_nothing(event_type: str) -> None:
    assert flow().on_event(parse_telnyx_webhook(event(event_type)), NOW).requests == ()


@pytest.mark.parametrize("target", ["+15550001111", 'sip:a@b.c"/><Hangup/>', "<&>"])
def test_dial_twiml_matches_the_official_builder(target: str) -> None:
    response = VoiceResponse()
    response.dial(target)
    assert dial_twiml(target) == str(response)
