"""TwiML: byte-for-byte against twilio-python, and injection-proof."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.twiml.voice_response import Connect, VoiceResponse  # type: ignore[import-untyped]

from patter_core import LocalProtocolError
from patter_core.webhooks._twiml import (
    connect_stream_twiml,
    hangup_twiml,
    say_hangup_twiml,
    twilio_stream_url,
    xml_attribute,
    xml_text,
)

_XML_CHAR = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _oracle_stream(url: str, params: list[tuple[str, str]], **attrs: str) -> str:
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=url, **attrs)
    for name, value in params:
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def test_protocols_sample_exact() -> None:
    expected = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream '
        'statusCallback="https://example.ngrok.app/stream-status" '
        'url="wss://example.ngrok.app/media-stream"><Parameter name="tenant" value="acme" />'
        '<Parameter name="callerNumber" value="+14155551234" /></Stream></Connect></Response>'
    )
    ours = connect_stream_twiml(
        "wss://example.ngrok.app/media-stream",
        [("tenant", "acme"), ("callerNumber", "+14155551234")],
        status_callback="https://example.ngrok.app/stream-status",
    )
    assert ours == expected


def test_injection_comes_out_as_data() -> None:
    evil = '"/><Redirect>http://evil</Redirect>'
    xml = connect_stream_twiml(
        twilio_stream_url("h.example", "CA1"), {"caller": evil, "callee": "+1", "token": "v1.1.x"}
    )
    assert "<Redirect>" not in xml
    root = ET.fromstring(xml)
    assert root.find("Redirect") is None
    assert [e.tag for e in root.iter()] == ["Response", "Connect", "Stream"] + ["Parameter"] * 3
    assert root.find("./Connect/Stream/Parameter[@name='caller']").get("value") == evil  # type: ignore[union-attr]
    assert xml == _oracle_stream(
        "wss://h.example/ws/stream/CA1", [("caller", evil), ("callee", "+1"), ("token", "v1.1.x")]
    )


def test_say_hangup_matches_twilio() -> None:
    text = 'Hello <b>"Jane"</b> & welcome'
    response = VoiceResponse()
    response.say(text, voice="Polly.Joanna", language="en-US")
    response.hangup()
    assert say_hangup_twiml(text, voice="Polly.Joanna", language="en-US") == str(response)
    empty = VoiceResponse()
    empty.say("")
    empty.hangup()
    assert say_hangup_twiml("") == str(empty)
    only = VoiceResponse()
    only.hangup()
    assert hangup_twiml() == str(only)


def test_stream_url_and_guards() -> None:
    assert twilio_stream_url("h.example", "CA0123") == "wss://h.example/ws/stream/CA0123"
    assert twilio_stream_url("h.example", "a/b?c") == "wss://h.example/ws/stream/a%2Fb%3Fc"
    with pytest.raises(LocalProtocolError):
        connect_stream_twiml("https://h/x")
    with pytest.raises(LocalProtocolError):
        connect_stream_twiml("wss://h/x?token=1")


def test_characters_outside_xml_are_replaced() -> None:
    assert xml_attribute("a\x00b\x1fc\ufffe") == "a\ufffdb\ufffdc\ufffd"
    assert xml_text("\ud800x\r") == "\ufffdx&#13;"
    xml = connect_stream_twiml("wss://h/x", {"v": "a\x00\x08\x0b"})
    assert ET.fromstring(xml).find(".//Parameter").get("value") == "a\ufffd\ufffd\ufffd"  # type: ignore[union-attr]


_ANY = st.text(max_size=40)
_VALID = st.text(st.characters(codec="utf-8"), max_size=40).filter(
    lambda s: not _NOT_XML_CHAR.search(s)
)


@settings(max_examples=300, deadline=None)
@given(caller=_ANY, callee=_ANY, extra=st.lists(st.tuples(_ANY, _ANY), max_size=3))
def test_any_unicode_parses_and_round_trips(
    caller: str, callee: str, extra: list[tuple[str, str]]
) -> None:
    params = [("caller", caller), ("callee", callee), *extra]
    xml = connect_stream_twiml("wss://h.example/ws/stream/CA1", params)
    root = ET.fromstring(xml.encode("utf-8"))
    stream = root.find("./Connect/Stream")
    assert stream is not None and stream.get("url") == "wss://h.example/ws/stream/CA1"
    got = [(p.get("name"), p.get("value")) for p in stream]
    assert got == [
        (_NOT_XML_CHAR.sub("\ufffd", k), _NOT_XML_CHAR.sub("\ufffd", v)) for k, v in params
    ]
    assert len(root) == 1 and len(root[0]) == 1  # nothing injected beside the stream


@settings(max_examples=200, deadline=None)
@given(params=st.lists(st.tuples(_VALID, _VALID), max_size=4), text=_VALID)
def test_bytes_match_twilio_for_xml_characters(params: list[tuple[str, str]], text: str) -> None:
    assert connect_stream_twiml("wss://h/ws", params) == _oracle_stream("wss://h/ws", params)
    # \r in a text node: twilio-python leaves it raw, we write &#13; (see module doc)
    response = VoiceResponse()
    response.say(text)
    response.hangup()
    assert say_hangup_twiml(text) == str(response).replace("\r", "&#13;")
    spoken = ET.fromstring(say_hangup_twiml(text).encode()).find("Say")
    assert spoken is not None and (spoken.text or "") == text
