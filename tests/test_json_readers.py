"""The core's one set of JSON readers (patter_core/_json.py): what each accepts,
the one error it raises (with its close code), and that the carrier streams
and the provider parsers raise that same error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core import MalformedMessage, RemoteProtocolError
from patter_core._json import (
    b64decode,
    get_counter,
    get_int,
    get_object,
    get_str,
    load_message,
    opt_str,
)
from patter_core.media import TelnyxMediaStream, TwilioMediaStream
from patter_core.providers.pipeline._deepgram import parse_deepgram_message
from patter_core.providers.pipeline._llm import ChatStreamReader
from patter_core.providers.pipeline._openai_stt import parse_transcription
from patter_core.providers.pipeline._tts_ws import parse_tts_ws_message


def test_load_message_accepts_one_object_from_str_or_bytes() -> None:
    assert load_message('{"a":1}', 100) == {"a": 1}
    assert load_message(b'{"a":"\xc3\xa9"}', 100) == {"a": "\u00e9"}


@pytest.mark.parametrize(
    ("message", "close_code"),
    [
        ("[1]", 1007),
        ("nope", 1007),
        (b"\xff{}", 1007),  # not UTF-8
        ("[" * 100_000 + "]" * 100_000, 1009),  # over the limit before any parsing
        ('{"a":"' + "\u00e9" * 60 + '"}', 1009),  # 60 characters, 120 UTF-8 bytes
    ],
)
def test_load_message_refusals(message: str | bytes, close_code: int) -> None:
    with pytest.raises(MalformedMessage) as info:
        load_message(message, 100)
    assert isinstance(info.value, RemoteProtocolError)
    assert info.value.close_code == close_code
    assert info.value.http_status == (413 if close_code == 1009 else 400)


def test_deep_nesting_within_the_limit_is_malformed_not_a_crash() -> None:
    with pytest.raises(MalformedMessage) as info:
        load_message("[" * 100_000 + "]" * 100_000, 1 << 20)
    assert info.value.close_code == 1007


def test_field_readers() -> None:
    obj: dict[str, Any] = {"o": {"x": 1}, "s": "t", "n": 7, "b": True, "c": "42", "z": None}
    assert get_object(obj, "o") == {"x": 1}
    assert get_object(obj, "missing", required=False) == {}
    assert get_str(obj, "s") == "t"
    assert get_str(obj, "z", "default") == "default"
    assert get_str(obj, "missing", "") == ""
    assert opt_str(obj, "s") == "t" and opt_str(obj, "z") is None and opt_str(obj, "m") is None
    assert get_int(obj, "n") == 7
    assert get_counter(obj, "c") == 42 and get_counter(obj, "n") == 7
    assert get_counter(obj, "missing") == 0
    assert b64decode("AAEC") == b"\x00\x01\x02"


@pytest.mark.parametrize(
    "read",
    [
        lambda o: get_object(o, "s"),
        lambda o: get_object(o, "missing"),
        lambda o: get_str(o, "n"),
        lambda o: get_str(o, "missing"),
        lambda o: opt_str(o, "n"),
        lambda o: get_int(o, "b"),  # a JSON boolean is not a number
        lambda o: get_int(o, "s"),
        lambda o: get_counter(o, "neg"),
        lambda o: get_counter(o, "long"),
        lambda o: get_counter(o, "b"),
        lambda o: b64decode("AA=A"),
        lambda o: b64decode("\u00e9"),
    ],
)
def test_field_refusals_are_one_error(read: Any) -> None:
    obj = {"s": "t", "n": 7, "b": True, "neg": "-1", "long": "1" * 19}
    with pytest.raises(MalformedMessage) as info:
        read(obj)
    assert info.value.close_code == 1007


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=80), st.text(max_size=80)))
def test_any_input_parses_or_is_malformed(data: str | bytes) -> None:
    try:
        value = load_message(data, 64)
    except MalformedMessage:
        return
    assert isinstance(value, dict)


@pytest.mark.parametrize(
    "parse",
    [
        lambda m: TwilioMediaStream().receive(m),
        lambda m: TelnyxMediaStream().receive(m),
        parse_deepgram_message,
        parse_tts_ws_message,
        lambda m: parse_transcription(
            m.encode("utf-8", "surrogateescape") if isinstance(m, str) else m
        ),
        lambda m: ChatStreamReader().feed(
            b"data: " + (m.encode() if isinstance(m, str) else m) + b"\n\n"
        ),
    ],
)
@pytest.mark.parametrize("message", ["[]", "{oops", b"\xfe"])
def test_carriers_and_providers_raise_the_same_error(parse: Any, message: str | bytes) -> None:
    with pytest.raises(MalformedMessage) as info:
        parse(message)
    assert info.value.close_code == 1007


def test_webhook_bodies_and_carrier_answers_use_the_same_readers() -> None:
    from patter_core.http import HttpResponse
    from patter_core.webhooks import CarrierApiError, parse_telnyx_webhook, parse_twilio_call

    for body, status in ((b"[]", 400), (b"\xff", 400), (b"{}" + b" " * 70_000, 413)):
        with pytest.raises(MalformedMessage) as info:
            parse_telnyx_webhook(body, max_bytes=65_536)
        assert info.value.http_status == status
    with pytest.raises(CarrierApiError, match=r"status 201.*not a JSON object") as api:
        parse_twilio_call(HttpResponse(status=201, headers=(), body=b"[1]"))
    assert api.value.api_status == 201 and api.value.http_status == 502


def test_a_field_of_the_wrong_type_in_a_carrier_message() -> None:
    stream = TwilioMediaStream()
    with pytest.raises(MalformedMessage, match="'start' must be a JSON object"):
        stream.receive('{"event":"start","start":"x","streamSid":"MZ1"}')


# -- the scanner fast path agrees with json.loads ----------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _outcome(parse: Any, text: str) -> tuple[str, Any]:
    try:
        return ("value", parse(text))
    except (ValueError, RecursionError) as exc:
        return ("error", type(exc))


@settings(max_examples=400, deadline=None)
@given(
    value=_json_values,
    before=st.sampled_from(["", " ", "\n", "\ufeff", "x"]),
    after=st.sampled_from(["", " ", "\t\n", "x", "{}", "]"]),
)
def test_fast_loads_agrees_with_json_loads(value: Any, before: str, after: str) -> None:
    from patter_core._json import _loads

    text = before + json.dumps(value) + after
    assert _outcome(_loads, text) == _outcome(json.loads, text)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60))
def test_fast_loads_agrees_on_any_text(text: str) -> None:
    from patter_core._json import _loads

    assert _outcome(_loads, text) == _outcome(json.loads, text)
