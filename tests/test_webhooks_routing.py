"""Routing before answering, the pure parts: which webhooks are routed, what
``route`` sees, and the carriers' refusals on the wire."""

from __future__ import annotations

import json

import pytest

from patter_core import LocalProtocolError
from patter_core.webhooks import TelnyxRest, parse_form, parse_incoming_call, parse_telnyx_webhook
from patter_core.webhooks._routing import routed_call
from patter_core.webhooks._twiml import reject_twiml


def _twilio(direction: str) -> bytes:
    return (
        "AccountSid=AC1&CallSid=CA9&From=%2B14155550100&To=%2B18005550111"
        f"&Direction={direction}&CallStatus=ringing&FromCity=Oakland"
    ).encode()


def _telnyx(direction: str) -> bytes:
    payload = {
        "call_control_id": "v3:cc-1",
        "direction": direction,
        "from": "+13125550100",
        "to": "+13125550199",
        "state": "parked",
    }
    return json.dumps(
        {"data": {"event_type": "call.initiated", "id": "e1", "payload": payload}}
    ).encode()


def test_an_incoming_twilio_call_as_route_sees_it() -> None:
    call = routed_call(parse_incoming_call(parse_form(_twilio("inbound"))))
    assert call is not None
    params = call.pop("params")
    assert call == {
        "carrier": "twilio",
        "call_id": "CA9",
        "caller": "+14155550100",
        "callee": "+18005550111",
    }
    assert isinstance(params, dict) and params["FromCity"] == "Oakland"


def test_an_incoming_telnyx_call_as_route_sees_it() -> None:
    call = routed_call(parse_telnyx_webhook(_telnyx("incoming")))
    assert call is not None
    assert call["carrier"] == "telnyx" and call["call_id"] == "v3:cc-1"
    assert (call["caller"], call["callee"]) == ("+13125550100", "+13125550199")
    assert call["params"] == json.loads(_telnyx("incoming"))["data"]["payload"]


def test_calls_we_placed_are_not_routed() -> None:
    assert routed_call(parse_incoming_call(parse_form(_twilio("outbound-api")))) is None
    assert routed_call(parse_telnyx_webhook(_telnyx("outgoing"))) is None
    answered = json.loads(_telnyx("incoming"))
    answered["data"]["event_type"] = "call.answered"
    assert routed_call(parse_telnyx_webhook(json.dumps(answered).encode())) is None


def test_the_refusals_on_the_wire() -> None:
    assert reject_twiml() == '<?xml version="1.0" encoding="UTF-8"?><Response><Reject /></Response>'
    request = TelnyxRest("KEY1").reject("v3:cc/1")
    assert request.method == "POST"
    assert request.url == "https://api.telnyx.com/v2/calls/v3%3Acc%2F1/actions/reject"
    body = json.loads(request.body)
    assert body["cause"] == "CALL_REJECTED" and body["command_id"]  # safe to retry
    assert json.loads(TelnyxRest("KEY1").reject("c", cause="USER_BUSY").body)["cause"] == (
        "USER_BUSY"
    )
    with pytest.raises(LocalProtocolError):
        TelnyxRest("KEY1").reject("c", cause="NOPE")
