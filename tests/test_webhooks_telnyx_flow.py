"""The Telnyx call-control decisions, pure: webhook event in, REST commands out."""

from __future__ import annotations

import json

import pytest
from twilio.twiml.voice_response import VoiceResponse  # type: ignore[import-untyped]

from patter_core import LocalProtocolError, SignatureError
from patter_core.webhooks import StreamTokens, TelnyxCallFlow, TelnyxRest, parse_telnyx_webhook
from patter_core.webhooks._telnyx_flow import is_our_leg, leg_client_state
from patter_core.webhooks._twiml import dial_twiml

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = 1_700_000_000.0


OURS = leg_client_state()


def event(event_type: str, *, event_id: str = "", **payload: object) -> bytes:
    payload.setdefault("client_state", OURS)
    body = {
        "data": {
            "event_type": event_type,
            "id": event_id or f"evt-{event_type}",
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
    body = json.loads(req.body)
    assert "stream_url" not in body
    # The leg is marked as ours: Telnyx echoes client_state in its later webhooks.
    assert body["client_state"] == OURS and is_our_leg(body["client_state"])
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
    assert detection.answered_by is None


@pytest.mark.parametrize(
    ("event_type", "result", "answered_by", "drop"),
    [
        ("call.machine.greeting.ended", "beep_detected", "machine_end_beep", True),
        # greeting_end: a greeting that ends in silence gets the message too.
        ("call.machine.greeting.ended", "ended", "machine_end_silence", True),
        # not_sure is Twilio's "unknown": no drop, the agent carries on.
        ("call.machine.greeting.ended", "not_sure", "unknown", False),
        ("call.machine.detection.ended", "not_sure", "unknown", False),
        ("call.machine.detection.ended", "human", "human", False),
    ],
)
def test_machine_results_in_the_twilio_words(
    event_type: str, result: str, answered_by: str, drop: bool
) -> None:
    follow_up = flow().on_event(parse_telnyx_webhook(event(event_type, result=result)), NOW)
    assert follow_up.requests == ()
    assert (follow_up.answered_by, follow_up.machine_greeting_ended) == (answered_by, drop)


def test_transfer_target_leg_gets_no_stream() -> None:
    """The transferred-to leg's webhooks carry no client_state of ours."""
    f = flow()
    target = {"call_control_id": "v3:target", "client_state": None}
    for event_type, extra in (
        ("call.initiated", {"direction": "outgoing", "state": "bridging"}),
        ("call.bridged", {}),
        ("call.answered", {}),
        ("call.machine.greeting.ended", {"result": "ended"}),
    ):
        follow_up = f.on_event(parse_telnyx_webhook(event(event_type, **target, **extra)), NOW)
        assert follow_up.requests == () and follow_up.answered_by is None, event_type
    foreign = leg_client_state().replace("cGF0dGVy", "b3RoZXIx")  # another app's state
    assert not is_our_leg(foreign) and not is_our_leg("not base64!") and not is_our_leg(None)
    answered = f.on_event(
        parse_telnyx_webhook(event("call.answered", event_id="e2", client_state=foreign)), NOW
    )
    assert answered.requests == () and answered.ignored is not None
    # A dialled leg carries its own nonce and is ours.
    assert is_our_leg(leg_client_state("n0nce"))


def test_duplicate_webhooks_send_one_command() -> None:
    f = flow()
    initiated = parse_telnyx_webhook(event("call.initiated", direction="incoming"))
    assert len(f.on_event(initiated, NOW).requests) == 1
    assert f.on_event(initiated, NOW + 1).requests == ()  # the same data.id again
    first = f.on_event(parse_telnyx_webhook(event("call.answered", event_id="a1")), NOW)
    assert [purpose for purpose, _ in first.requests] == ["streaming_start"]
    again = f.on_event(parse_telnyx_webhook(event("call.answered", event_id="a1")), NOW)
    other_id = f.on_event(parse_telnyx_webhook(event("call.answered", event_id="a2")), NOW)
    assert again.requests == () and other_id.requests == ()


def test_remembered_event_ids_are_bounded() -> None:
    f = TelnyxCallFlow(TelnyxRest("KEY"), StreamTokens(SECRET), webhook_host="h", max_remembered=3)
    for n in range(5):
        f.on_event(parse_telnyx_webhook(event("call.hangup", event_id=f"h{n}")), NOW)
    # The oldest ids were forgotten: h0 counts as new again, h4 is still known.
    assert (
        f.on_event(parse_telnyx_webhook(event("call.hangup", event_id="h0")), NOW).ignored is None
    )
    assert f.on_event(parse_telnyx_webhook(event("call.hangup", event_id="h4")), NOW).ignored


@pytest.mark.parametrize("event_type", ["call.hangup", "streaming.started", "call.bridged"])
def test_other_events_need_nothing(event_type: str) -> None:
    assert flow().on_event(parse_telnyx_webhook(event(event_type)), NOW).requests == ()


@pytest.mark.parametrize("target", ["+15550001111", 'sip:a@b.c"/><Hangup/>', "<&>"])
def test_dial_twiml_matches_the_official_builder(target: str) -> None:
    response = VoiceResponse()
    response.dial(target)
    assert dial_twiml(target) == str(response)


def test_voicemail_drop_without_a_stream_speaks_then_hangs_up() -> None:
    f = flow()
    ((purpose, speak),) = f.voicemail_drop("v3:call-1", "Call us back.").requests
    assert purpose == "voicemail"
    assert speak.url == "https://api.example/v2/calls/v3%3Acall-1/actions/speak"
    body = json.loads(speak.body)
    assert (body["payload"], body["voice"], body["service_level"]) == (
        "Call us back.",
        "female",
        "basic",
    )
    assert is_our_leg(body["client_state"])
    ended = f.on_event(
        parse_telnyx_webhook(event("call.speak.ended", client_state=body["client_state"])), NOW
    )
    ((purpose, hangup),) = ended.requests
    assert purpose == "hangup" and hangup.url.endswith("/actions/hangup")
    # Any other speak ending on our leg hangs nothing up.
    other = f.on_event(parse_telnyx_webhook(event("call.speak.ended", event_id="s2")), NOW)
    assert other.requests == ()


def test_outbound_dial_is_a_leg_of_ours_without_stream_fields() -> None:
    flow = TelnyxCallFlow(
        TelnyxRest("KEY", base_url="https://api.test/v2"),
        StreamTokens(SECRET),
        webhook_host="abc.ngrok.app",
    )

    def dial(nonce: str, *, amd: bool, ring: int | None) -> dict[str, object]:
        request = flow.dial(
            to="+14155550100",
            from_="+18005550199",
            connection_id="conn-1",
            machine_detection=amd,
            ring_timeout=ring,
            nonce=nonce,
        )
        assert (request.method, request.url) == ("POST", "https://api.test/v2/calls")
        body = json.loads(request.body)
        assert isinstance(body, dict)
        return body

    body = dial("n1", amd=True, ring=30)
    command_id = body.pop("command_id")
    # No stream_* fields: the stream starts on call.answered with its token.
    assert body == {
        "to": "+14155550100",
        "from": "+18005550199",
        "connection_id": "conn-1",
        "answering_machine_detection": "greeting_end",
        "webhook_url": "https://abc.ngrok.app/webhooks/telnyx/voice",
        "client_state": leg_client_state("n1"),
        "timeout_secs": 30,
    }
    assert is_our_leg(leg_client_state("n1"))
    # The nonce keeps two dials to one number apart; the same dial repeats its id.
    assert dial("n1", amd=True, ring=30)["command_id"] == command_id
    assert dial("n2", amd=True, ring=30)["command_id"] != command_id
    plain = dial("n1", amd=False, ring=None)
    assert "answering_machine_detection" not in plain and "timeout_secs" not in plain
    hostless = TelnyxCallFlow(
        TelnyxRest("KEY", base_url="https://api.test/v2"), StreamTokens(SECRET), webhook_host=None
    )
    with pytest.raises(LocalProtocolError, match="public host"):
        hostless.dial(
            to="+1",
            from_="+2",
            connection_id="c",
            machine_detection=False,
            ring_timeout=None,
            nonce="n",
        )


def test_amd_without_a_stream_speaks_the_message_after_the_greeting() -> None:
    flow = TelnyxCallFlow(
        TelnyxRest("KEY", base_url="https://api.test/v2"),
        StreamTokens(SECRET),
        webhook_host="abc.ngrok.app",
    )
    assert flow.amd_without_stream("v3:call-1", "human", "Call back") == ()
    assert flow.amd_without_stream("v3:call-1", "unknown", "Call back") == ()
    assert flow.amd_without_stream("v3:call-1", "machine_end_beep", None) == ()
    ((purpose, request),) = flow.amd_without_stream("v3:call-1", "machine_end_beep", "Call back")
    assert purpose == "voicemail"
    # The drop test above follows this request to its hang-up.
    assert request == flow.voicemail_drop("v3:call-1", "Call back").requests[0][1]
    assert request.url == "https://api.test/v2/calls/v3%3Acall-1/actions/speak"
