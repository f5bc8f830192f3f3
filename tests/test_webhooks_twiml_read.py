"""The one TwiML reader the carrier side uses (dial, test carriers, call benchmark)."""

from __future__ import annotations

import pytest

from patter_core import RemoteProtocolError
from patter_core.webhooks import read_stream_twiml
from patter_core.webhooks._twiml import connect_stream_twiml


def test_reads_what_the_server_writes() -> None:
    twiml = connect_stream_twiml(
        "wss://example.test/ws/stream/CA1", {"caller": "+1 <&>", "stream_token": "t"}
    )
    stream = read_stream_twiml(twiml)
    assert stream.url == "wss://example.test/ws/stream/CA1"
    assert stream.parameters == {"caller": "+1 <&>", "stream_token": "t"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not xml <", "not TwiML"),
        (b"<Say>hi</Say>", "root <Say>"),
        (b"<Response><Say>hi</Say></Response>", "the TwiML has no <Stream>"),
        (b'<Response><Start><Stream url="wss://x/y"/></Start></Response>', "only <Start><Stream>"),
        (b'<Response><Connect><Stream url="ws://x/y"/></Connect></Response>', "wss:// URLs"),
    ],
)
def test_refuses_what_twilio_could_not_follow(body: bytes, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        read_stream_twiml(body)
