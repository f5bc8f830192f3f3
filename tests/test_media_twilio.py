"""Twilio Media Streams: the documented frames in, exact bytes out, and every refusal."""

from __future__ import annotations

import base64
import json

import pytest

from patter_core import LocalProtocolError, RemoteProtocolError
from patter_core.audio import ULAW_8K
from patter_core.media import (
    Connected,
    Dtmf,
    Mark,
    Media,
    MediaLimits,
    Start,
    Stop,
    TwilioMediaStream,
)

SID = "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"

# PROTOCOLS.md section 3, verbatim (the media payload there is elided with
# "..."; its first twelve characters are used, which are valid base64).
CONNECTED = '{"event":"connected","protocol":"Call","version":"1.0.0"}'
START = (
    '{"event":"start","sequenceNumber":"1","start":{"accountSid":"ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",'
    '"streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX","callSid":"CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",'
    '"tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},'
    '"customParameters":{"FirstName":"Jane","LastName":"Doe","RemoteParty":"Bob"}},'
    '"streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"}'
)
MEDIA = (
    '{"event":"media","sequenceNumber":"4","media":{"track":"inbound","chunk":"2","timestamp":"5",'
    '"payload":"no+JhoaJjpzS"},"streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"}'
)
DTMF = (
    '{"event":"dtmf","streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX","sequenceNumber":"5",'
    '"dtmf":{"track":"inbound_track","digit":"1"}}'
)
MARK = (
    '{"event":"mark","sequenceNumber":"4","streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",'
    '"mark":{"name":"my label"}}'
)
STOP = (
    '{"event":"stop","sequenceNumber":"5","stop":{"accountSid":"ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",'
    '"callSid":"CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"},"streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"}'
)


def started() -> TwilioMediaStream:
    stream = TwilioMediaStream()
    stream.receive(CONNECTED)
    stream.receive(START)
    return stream


def close_code(stream: TwilioMediaStream, message: str | bytes) -> int:
    with pytest.raises(RemoteProtocolError) as info:
        stream.receive(message)
    return info.value.close_code


def test_documented_frames_parse() -> None:
    stream = TwilioMediaStream()
    assert stream.media_format is None and stream.stream_id is None
    assert stream.receive(CONNECTED) == [Connected(protocol="Call", version="1.0.0")]
    [start] = stream.receive(START)
    assert start == Start(
        stream_id=SID,
        call_id="CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        media_format=ULAW_8K,
        account_id="ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        tracks=("inbound",),
        custom_parameters={"FirstName": "Jane", "LastName": "Doe", "RemoteParty": "Bob"},
    )
    assert stream.media_format == ULAW_8K
    assert stream.stream_id == SID and stream.call_id == "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    assert stream.receive(MEDIA) == [
        Media(payload=bytes.fromhex("9e8f898686898e9cd2"), track="inbound", chunk=2, timestamp=5)
    ]
    assert stream.receive(DTMF) == [Dtmf(digit="1")]
    stream.send_mark("my label")
    assert stream.receive(MARK) == [Mark(name="my label")]
    assert stream.receive(STOP) == [Stop()]
    assert stream.stopped


def test_bytes_message_is_accepted_as_utf8() -> None:
    stream = TwilioMediaStream()
    assert stream.receive(CONNECTED.encode()) == [Connected(protocol="Call", version="1.0.0")]


def test_outgoing_frames_byte_for_byte() -> None:
    stream = started()
    frame = bytes(range(160))
    [media] = stream.send_media(frame)
    assert media == (
        '{"event":"media","streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX","media":{"payload":"'
        + base64.b64encode(frame).decode()
        + '"}}'
    )
    assert stream.send_mark("my label") == (
        '{"event":"mark","streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX","mark":{"name":"my label"}}'
    )
    assert stream.send_clear() == '{"event":"clear","streamSid":"MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"}'
    # The same shapes as the documented messages, field for field.
    assert json.loads(media)["media"]["payload"] == base64.b64encode(frame).decode()


def test_stream_id_and_mark_names_are_escaped() -> None:
    stream = TwilioMediaStream()
    start = json.loads(START)
    start["start"]["streamSid"] = 'MZ"}, "event":"x'
    stream.receive(json.dumps(start))
    [media] = stream.send_media(b"\xff" * 160)
    assert json.loads(media)["streamSid"] == 'MZ"}, "event":"x'
    assert json.loads(stream.send_mark('a"b\\c\u00e9'))["mark"]["name"] == 'a"b\\c\u00e9'


def test_framing_20ms_remainder_and_flush() -> None:
    stream = started()
    assert stream.send_media(b"\x01" * 100) == []
    assert stream.sent_ms == 0
    out = stream.send_media(b"\x02" * 300)  # 400 bytes: two frames, 80 left
    assert [len(base64.b64decode(json.loads(m)["media"]["payload"])) for m in out] == [160, 160]
    assert base64.b64decode(json.loads(out[0])["media"]["payload"]) == b"\x01" * 100 + b"\x02" * 60
    assert stream.sent_ms == 40
    [rest] = stream.flush_media()  # Twilio: sent as it is, no padding
    assert base64.b64decode(json.loads(rest)["media"]["payload"]) == b"\x02" * 80
    assert stream.sent_ms == 50
    assert stream.flush_media() == []
    assert stream.send_media(b"") == []


def test_mark_bookkeeping_and_clear() -> None:
    stream = started()
    stream.send_media(b"\xff" * 800)  # 100 ms
    stream.send_mark("a")
    stream.send_media(b"\xff" * 800)
    stream.send_mark("b")
    stream.send_media(b"\xff" * 100)  # 100 bytes buffered, not sent
    assert (stream.sent_ms, stream.played_ms, stream.pending_marks) == (200, 0, ("a", "b"))
    stream.receive(MARK.replace("my label", "a"))
    assert (stream.played_ms, stream.pending_marks) == (100, ("b",))
    stream.send_clear()
    assert (stream.sent_ms, stream.played_ms) == (100, 100)
    assert stream.flush_media() == []  # the remainder went with the clear
    # The cleared mark still comes back, but proves nothing about playback.
    assert stream.receive(MARK.replace("my label", "b")) == [Mark(name="b")]
    assert (stream.sent_ms, stream.played_ms, stream.pending_marks) == (100, 100, ())
    stream.send_media(b"\xff" * 160)
    stream.send_mark("c")
    stream.receive(MARK.replace("my label", "c"))
    assert (stream.sent_ms, stream.played_ms) == (120, 120)


def test_unknown_and_skipped_marks() -> None:
    stream = started()
    stream.send_media(b"\xff" * 160)
    stream.send_mark("a")
    stream.send_media(b"\xff" * 160)
    stream.send_mark("b")
    assert stream.receive(MARK.replace("my label", "stranger")) == [Mark(name="stranger")]
    assert stream.played_ms == 0
    # An echo of "b" implies "a" played too (echoes come in order).
    stream.receive(MARK.replace("my label", "b"))
    assert (stream.played_ms, stream.pending_marks) == (40, ())


def test_pending_marks_are_bounded() -> None:
    stream = TwilioMediaStream(limits=MediaLimits(max_pending_marks=2))
    stream.receive(START)
    for name in "abc":
        stream.send_mark(name)
    assert stream.pending_marks == ("b", "c") and stream.marks_evicted == 1


def test_sending_before_start_or_after_stop_is_our_error() -> None:
    stream = TwilioMediaStream()
    stream.receive(CONNECTED)
    for send in (
        lambda: stream.send_media(b"\xff"),
        stream.flush_media,
        lambda: stream.send_mark("x"),
        stream.send_clear,
    ):
        with pytest.raises(LocalProtocolError):
            send()
    stream.receive(START)
    stream.receive(STOP)
    with pytest.raises(LocalProtocolError, match="after stop"):
        stream.send_media(b"\xff")
    with pytest.raises(LocalProtocolError):
        started().send_media("text")  # type: ignore[arg-type]


def test_connected_is_optional() -> None:
    stream = TwilioMediaStream()
    assert isinstance(stream.receive(START)[0], Start)


@pytest.mark.parametrize(
    ("before", "message"),
    [
        ([], MEDIA),  # media before start
        ([CONNECTED], DTMF),
        ([CONNECTED], MARK),
        ([CONNECTED, START], START),  # a second start
        ([CONNECTED, START], CONNECTED),
        ([CONNECTED, START, STOP], MEDIA),  # anything after stop
        ([CONNECTED, START, STOP], STOP),
        ([CONNECTED, START, STOP], '{"event":"whatever"}'),
    ],
)
def test_order_violations_close_1002(before: list[str], message: str) -> None:
    stream = TwilioMediaStream()
    for m in before:
        stream.receive(m)
    assert close_code(stream, message) == 1002


def test_unknown_events_are_ignored_and_counted() -> None:
    stream = started()
    assert stream.receive('{"event":"future-thing","x":1}') == []
    assert stream.unknown_events == 1


@pytest.mark.parametrize(
    "message",
    [
        b"\xff\xfe{}",  # not UTF-8
        "not json",
        "[1, 2]",
        '{"event": 5}',
        '{"no_event": true}',
        '{"event":"media","media":{"payload":"no+JhoaJjpzS..."}}',  # the docs' elided payload
        '{"event":"media","media":{"payload":"abc"}}',  # bad padding
        '{"event":"media","media":{"payload":"é"}}',
        '{"event":"media","media":{"payload":7}}',
        '{"event":"media","media":"x"}',
        '{"event":"media","media":{"payload":"","chunk":"-1"}}',
        '{"event":"media","media":{"payload":"","chunk":"1e3"}}',
        '{"event":"media","media":{"payload":"","timestamp":true}}',
        '{"event":"media","media":{"payload":"","track":1}}',
        '{"event":"dtmf","dtmf":{"digit":1}}',
        '{"event":"dtmf","dtmf":{"digit":""}}',
        '{"event":"mark","mark":{"name":null}}',
        '{"event":"mark","mark":[]}',
        "[" * 100_000 + "]" * 100_000,
        '{"event":"media","media":{"payload":"","chunk":"' + "9" * 5000 + '"}}',
    ],
)
def test_bad_payloads_close_1007(message: str | bytes) -> None:
    assert close_code(started(), message) == 1007


def test_bad_start_frames() -> None:
    start = json.loads(START)
    start["start"]["mediaFormat"]["encoding"] = "audio/x-l16"
    assert close_code(TwilioMediaStream(), json.dumps(start)) == 1003
    start = json.loads(START)
    del start["start"]["callSid"]
    assert close_code(TwilioMediaStream(), json.dumps(start)) == 1007
    start = json.loads(START)
    start["start"]["customParameters"] = {"a": 1}
    assert close_code(TwilioMediaStream(), json.dumps(start)) == 1007
    start = json.loads(START)
    start["start"]["tracks"] = "inbound"
    assert close_code(TwilioMediaStream(), json.dumps(start)) == 1007
    # A start without mediaFormat is Twilio's only format.
    start = json.loads(START)
    del start["start"]["mediaFormat"]
    stream = TwilioMediaStream()
    stream.receive(json.dumps(start))
    assert stream.media_format == ULAW_8K


def test_media_for_another_stream_closes_1008() -> None:
    assert close_code(started(), MEDIA.replace("MZXX", "MZYY")) == 1008


def test_size_limits_close_1009() -> None:
    limits = MediaLimits(max_message_bytes=200, max_payload_bytes=160)
    big = '{"event":"connected","protocol":"' + "x" * 300 + '"}'
    assert close_code(TwilioMediaStream(limits=limits), big) == 1009
    assert close_code(TwilioMediaStream(limits=limits), big.encode()) == 1009
    # Multi-byte characters count as their UTF-8 size.
    wide = '{"event":"connected","protocol":"' + "\u20ac" * 60 + '"}'
    assert len(wide) < 200 < len(wide.encode())
    assert close_code(TwilioMediaStream(limits=limits), wide) == 1009
    stream = TwilioMediaStream(limits=MediaLimits(max_payload_bytes=160))
    stream.receive(START)
    ok = base64.b64encode(b"\xff" * 160).decode()
    assert stream.receive(MEDIA.replace("no+JhoaJjpzS", ok))[0] == Media(
        payload=b"\xff" * 160, chunk=2, timestamp=5
    )
    too_big = base64.b64encode(b"\xff" * 161).decode()
    assert close_code(stream, MEDIA.replace("no+JhoaJjpzS", too_big)) == 1009


def test_limits_validate() -> None:
    with pytest.raises(LocalProtocolError):
        MediaLimits(max_message_bytes=0)
    with pytest.raises(LocalProtocolError):
        MediaLimits(reorder_window=-1)
    with pytest.raises(LocalProtocolError):
        TwilioMediaStream(limits=object())  # type: ignore[arg-type]
