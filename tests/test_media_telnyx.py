"""Telnyx media streaming: the documented frames, formats, reordering, exact output."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence

import pytest

from patter_core import LocalProtocolError, RemoteProtocolError
from patter_core.audio import ALAW_8K, ULAW_8K, AudioFormat, Encoding
from patter_core.media import (
    Connected,
    Dtmf,
    Mark,
    Media,
    MediaLimits,
    PayloadDecoder,
    Start,
    Stop,
    StreamError,
    TelnyxMediaStream,
)

SID = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"
CCID = "v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ"

# PROTOCOLS.md section 4.4, verbatim except where the docs elide ids and
# payloads with an ellipsis (filled in here with valid values).
CONNECTED = '{"event":"connected","version":"1.0.0"}'
START = (
    '{"event":"start","sequence_number":"1","stream_id":"32DE0DEA-53CB-4B21-89A4-9E1819C043BC",'
    '"start":{"user_id":"3E6F995F-0000","call_control_id":"' + CCID + '",'
    '"call_session_id":"ff55a038-0000","from":"+13122010094","to":"+13122123456",'
    '"tags":["TAG1","TAG2"],"client_state":"aGF2ZSBhIG5pY2UgZGF5ID1d",'
    '"custom_parameters":{"customer_id":"customer_123"},'
    '"media_format":{"encoding":"PCMU","sample_rate":8000,"channels":1}}}'
)
MEDIA = (
    '{"event":"media","sequence_number":"4","media":{"track":"inbound","chunk":"2",'
    '"timestamp":"5","payload":"no+JhoaJjpzSHxAKBgYJ"},"stream_id":"32DE0DEA-53CB"}'
)
DTMF = '{"event":"dtmf","stream_id":"32DE0DEA-53CB","dtmf":{"digit":"1"}}'
STOP = (
    '{"event":"stop","sequence_number":"5","stop":{"user_id":"3E6F995F-0000",'
    '"call_control_id":"v2:x"},"stream_id":"32DE0DEA-53CB"}'
)
ERROR = (
    '{"stream_id":"32de0dea-53cb","event":"error","sequence_number":"6","error":'
    '{"title":"rate_limit_reached","code":"100005","detail":"Too many requests"}}'
)


def start_with(**media_format: object) -> str:
    frame = json.loads(START)
    frame["start"]["media_format"] = media_format
    return json.dumps(frame)


def media(chunk: int, payload: bytes = b"\xff" * 160, track: str = "inbound") -> str:
    return json.dumps(
        {
            "event": "media",
            "sequence_number": str(chunk + 2),
            "stream_id": SID,
            "media": {
                "track": track,
                "chunk": str(chunk),
                "timestamp": str(chunk * 20),
                "payload": base64.b64encode(payload).decode(),
            },
        }
    )


def started(**kwargs: object) -> TelnyxMediaStream:
    stream = TelnyxMediaStream(**kwargs)  # type: ignore[arg-type]
    stream.receive(CONNECTED)
    stream.receive(START)
    return stream


def close_code(stream: TelnyxMediaStream, message: str | bytes) -> int:
    with pytest.raises(RemoteProtocolError) as info:
        stream.receive(message)
    return info.value.close_code


def test_documented_frames_parse() -> None:
    stream = TelnyxMediaStream()
    assert stream.receive(CONNECTED) == [Connected(version="1.0.0")]
    assert stream.receive(START) == [
        Start(
            stream_id=SID,
            call_id=CCID,
            media_format=ULAW_8K,
            account_id="3E6F995F-0000",
            tracks=(),
            custom_parameters={"customer_id": "customer_123"},
            caller="+13122010094",
            callee="+13122123456",
            client_state="aGF2ZSBhIG5pY2UgZGF5ID1d",
        )
    ]
    assert (stream.stream_id, stream.call_id, stream.media_format) == (SID, CCID, ULAW_8K)
    # The documented frame is chunk 2: it follows chunk 1 (chunks count from 1).
    assert chunks(stream.receive(media(1))) == [1]
    [frame] = stream.receive(MEDIA)
    assert frame == Media(
        payload=base64.b64decode("no+JhoaJjpzSHxAKBgYJ"), track="inbound", chunk=2, timestamp=5
    )
    assert stream.receive(DTMF) == [Dtmf(digit="1")]
    assert stream.receive(ERROR) == [
        StreamError(title="rate_limit_reached", code="100005", detail="Too many requests")
    ]
    stream.send_mark("resp_1:chunk_42")
    assert stream.receive('{"event":"mark","mark":{"name":"resp_1:chunk_42"}}') == [
        Mark(name="resp_1:chunk_42")
    ]
    assert stream.pending_marks == ()
    assert stream.receive(STOP) == [Stop()]
    with pytest.raises(RemoteProtocolError):
        stream.receive(ERROR)


def test_auth_token_in_connected() -> None:
    stream = TelnyxMediaStream()
    frame = '{"event":"connected","version":"1.0.0","x-telnyx-streaming-auth-token":"s3cret"}'
    assert stream.receive(frame) == [Connected(version="1.0.0", auth_token="s3cret")]
    bad = '{"event":"connected","version":"1.0.0","x-telnyx-streaming-auth-token":1}'
    assert close_code(TelnyxMediaStream(), bad) == 1007


def test_outgoing_frames_byte_for_byte() -> None:
    stream = started()
    frame = bytes(range(160))
    assert stream.send_media(frame) == [
        '{"event":"media","media":{"payload":"' + base64.b64encode(frame).decode() + '"}}'
    ]
    assert (
        stream.send_mark("resp_1:chunk_42") == '{"event":"mark","mark":{"name":"resp_1:chunk_42"}}'
    )
    assert stream.send_clear() == '{"event":"clear"}'


@pytest.mark.parametrize(
    ("media_format", "expected", "silence"),
    [
        ({"encoding": "PCMU", "sample_rate": 8000, "channels": 1}, ULAW_8K, b"\xff"),
        ({"encoding": "audio/x-mulaw", "sample_rate": 8000}, ULAW_8K, b"\xff"),
        ({"encoding": "PCMA", "sample_rate": 8000}, ALAW_8K, b"\xd5"),
        ({"encoding": "pcma"}, ALAW_8K, b"\xd5"),
        (
            {"encoding": "L16", "sample_rate": 16000},
            AudioFormat(encoding=Encoding.PCM16BE, sample_rate=16000),
            b"\x00",
        ),
    ],
)
def test_formats_and_flush_padding(
    media_format: dict[str, object], expected: AudioFormat, silence: bytes
) -> None:
    stream = TelnyxMediaStream()
    stream.receive(start_with(**media_format))
    assert stream.media_format == expected
    frame_bytes = expected.bytes_for_ms(20)
    assert stream.send_media(b"\x01" * (frame_bytes + 10)) != []
    [rest] = stream.flush_media()
    # Telnyx needs chunks of at least 20 ms: the remainder is padded with silence.
    payload = base64.b64decode(json.loads(rest)["media"]["payload"])
    assert payload == b"\x01" * 10 + silence * (frame_bytes - 10)
    assert stream.sent_ms == 40


def test_l16_byte_order_is_configurable() -> None:
    stream = TelnyxMediaStream(l16_byte_order="little")
    stream.receive(start_with(encoding="L16", sample_rate=24000))
    assert stream.media_format == AudioFormat(encoding=Encoding.PCM16LE, sample_rate=24000)
    with pytest.raises(LocalProtocolError):
        TelnyxMediaStream(l16_byte_order="middle")  # type: ignore[arg-type]
    # Odd-length L16 payloads are not whole samples.
    assert close_code(stream, media(1, b"\x00" * 3)) == 1007


@pytest.mark.parametrize(
    ("media_format", "code"),
    [
        ({"encoding": "G722", "sample_rate": 16000}, 1003),
        ({"encoding": "OPUS", "sample_rate": 48000}, 1003),
        ({"encoding": "PCMU", "sample_rate": 16000}, 1003),
        ({"encoding": "L16"}, 1003),
        ({"encoding": "L16", "sample_rate": 16001}, 1003),
        ({"encoding": "PCMU", "sample_rate": 8000, "channels": 2}, 1003),
        ({"encoding": "PCMU", "sample_rate": "8000"}, 1007),
        ({"encoding": 1}, 1007),
    ],
)
def test_unsupported_formats(media_format: dict[str, object], code: int) -> None:
    assert close_code(TelnyxMediaStream(), start_with(**media_format)) == code


def test_start_variants() -> None:
    frame = json.loads(START)
    del frame["start"]["media_format"]
    assert close_code(TelnyxMediaStream(), json.dumps(frame)) == 1007
    frame = json.loads(START)
    frame["start"]["custom_parameters"] = [{"name": "tenant", "value": "acme"}]
    frame["start"]["client_state"] = None
    [start] = TelnyxMediaStream().receive(json.dumps(frame))
    assert isinstance(start, Start)
    assert start.custom_parameters == {"tenant": "acme"} and start.client_state is None
    frame["start"]["custom_parameters"] = [{"name": "tenant", "value": 1}]
    assert close_code(TelnyxMediaStream(), json.dumps(frame)) == 1007
    frame = json.loads(START)
    del frame["stream_id"]
    assert close_code(TelnyxMediaStream(), json.dumps(frame)) == 1007


def test_error_code_as_number_is_tolerated() -> None:
    stream = TelnyxMediaStream()
    assert stream.receive('{"event":"error","error":{"title":"t","code":100003}}') == [
        StreamError(title="t", code="100003")
    ]
    # A body of an unexpected shape is still an error report, never a hang-up.
    assert stream.receive('{"event":"error","error":{"code":[]}}') == [
        StreamError(title="", code="")
    ]
    assert stream.errors_received == 2


GUIDE_ERROR = (
    '{"event":"error","payload":{"code":100002,"title":"unknown_error",'
    '"detail":"An unknown error occurred"},"stream_id":"' + SID + '"}'
)


def test_guide_shaped_error_frame_is_reported_and_the_stream_goes_on() -> None:
    stream = started()
    assert stream.receive(GUIDE_ERROR) == [
        StreamError(title="unknown_error", code="100002", detail="An unknown error occurred")
    ]
    assert stream.receive(ERROR) == [
        StreamError(title="rate_limit_reached", code="100005", detail="Too many requests")
    ]
    assert stream.errors_received == 2
    assert chunks(stream.receive(media(1))) == [1]  # still streaming
    assert not stream.stopped


def test_nested_auth_token_in_connected() -> None:
    frame = json.dumps({"event": "connected", "version": "1.0.0", "connected": {_TOKEN: "n3sted"}})
    assert TelnyxMediaStream().receive(frame) == [Connected(version="1.0.0", auth_token="n3sted")]
    # Top level wins when both are there; a nested non-string is refused.
    both = json.dumps({"event": "connected", _TOKEN: "top", "connected": {_TOKEN: "n"}})
    assert TelnyxMediaStream().receive(both) == [Connected(auth_token="top")]
    wrong = json.dumps({"event": "connected", "connected": {_TOKEN: 5}})
    assert close_code(TelnyxMediaStream(), wrong) == 1007


_TOKEN = "x-telnyx-streaming-auth-token"


def dtmf(digit: str, sequence: int) -> str:
    return json.dumps(
        {
            "event": "dtmf",
            "stream_id": SID,
            "occurred_at": f"2026-12-06T03:00:00.{sequence:06d}Z",
            "sequence_number": str(sequence),
            "dtmf": {"digit": digit},
        }
    )


def digits(events: Sequence[object]) -> str:
    return "".join(e.digit for e in events if isinstance(e, Dtmf))


def test_dtmf_put_back_in_sequence_order() -> None:
    stream = started(limits=MediaLimits(dtmf_reorder_window=3))
    out: list[object] = []
    out += stream.receive(media(1))  # sequence 3
    out += stream.receive(dtmf("2", 5))  # overtook "1"
    out += stream.receive(dtmf("1", 4))
    assert digits(out) == ""  # held until the numbering is 3 past them
    out += stream.receive(media(4))  # sequence 6
    assert digits(out) == ""
    out += stream.receive(media(5))  # sequence 7: 7 - 4 >= 3 releases "1"
    assert digits(out) == "1"
    out += stream.receive(media(6))  # sequence 8 releases "2"
    assert digits(out) == "12"
    # A repeat of a delivered frame is dropped; a digit behind one already
    # delivered still arrives (late), never lost.
    assert stream.receive(dtmf("2", 5)) == []
    assert digits(stream.receive(dtmf("9", 2))) == "9" and stream.digits_late == 1
    # Held digits come out, in order, before stop.
    stream.receive(dtmf("4", 20))
    stream.receive(dtmf("3", 19))
    assert digits(stream.receive(STOP)) == "34"


def test_dtmf_without_numbering_or_window_passes_straight() -> None:
    assert digits(started().receive(DTMF)) == "1"
    stream = started(limits=MediaLimits(dtmf_reorder_window=0))
    assert digits(stream.receive(dtmf("5", 9))) == "5"
    with pytest.raises(LocalProtocolError):
        MediaLimits(dtmf_reorder_window=-1)


def test_sends_in_the_bidirectional_codec_whatever_arrives() -> None:
    """Asked for L16 16 kHz, Telnyx fell back to PCMU: we still send L16 16 kHz."""
    stream = started(bidirectional_codec="L16", bidirectional_sampling_rate=16000)
    assert stream.media_format == ULAW_8K
    l16 = AudioFormat(encoding=Encoding.PCM16BE, sample_rate=16000)
    assert stream.send_format == l16
    [frame] = stream.send_media(b"\x01\x02" * 320)  # 20 ms of L16 16 kHz = 640 bytes
    assert base64.b64decode(json.loads(frame)["media"]["payload"]) == b"\x01\x02" * 320
    assert stream.sent_ms == 20
    # Without one, the reply goes in the incoming format (PCMU: 160 bytes a frame).
    plain = started()
    assert plain.send_format == ULAW_8K and len(plain.send_media(b"\xff" * 160)) == 1
    with pytest.raises(LocalProtocolError):
        TelnyxMediaStream(bidirectional_codec="L16", bidirectional_sampling_rate=12345)


def chunks(events: Sequence[object]) -> list[int]:
    return [e.chunk for e in events if isinstance(e, Media)]


def test_reorder_within_window() -> None:
    stream = started()
    out: list[object] = []
    for chunk in (1, 3, 4, 2, 5, 7, 6):
        out += stream.receive(media(chunk, bytes([chunk]) * 160))
    assert chunks(out) == [1, 2, 3, 4, 5, 6, 7]
    assert [e.payload[0] for e in out if isinstance(e, Media)] == [1, 2, 3, 4, 5, 6, 7]
    assert (stream.frames_late, stream.frames_duplicate, stream.frames_lost) == (0, 0, 0)


def test_lost_frame_is_skipped_when_the_window_fills_then_late() -> None:
    stream = started(limits=MediaLimits(reorder_window=2))
    out: list[object] = []
    for chunk in (1, 3, 4):
        out += stream.receive(media(chunk))
    assert chunks(out) == [1]  # holding 3 and 4, waiting for 2
    out += stream.receive(media(5))  # three held > window: give 2 up
    assert chunks(out) == [1, 3, 4, 5]
    assert stream.frames_lost == 1
    assert stream.receive(media(2)) == []  # too late to splice in
    assert stream.receive(media(4)) == []  # already delivered
    assert (stream.frames_late, stream.frames_duplicate) == (1, 1)


def test_stop_drains_held_frames() -> None:
    stream = started()
    stream.receive(media(1))
    assert stream.receive(media(3)) == []
    assert stream.receive(media(3)) == []  # a duplicate of a held frame
    events = stream.receive(STOP)
    assert chunks(events) == [3] and events[-1] == Stop()
    assert (stream.frames_lost, stream.frames_duplicate) == (1, 1)


def test_drain_held_and_tracks() -> None:
    stream = started()
    stream.receive(media(2, track="outbound"))
    stream.receive(media(3, track="inbound"))
    drained = stream.drain_held()
    assert sorted((m.track, m.chunk) for m in drained) == [("inbound", 3), ("outbound", 2)]
    # Nothing was delivered before: the gap before the first frame is not "lost".
    assert stream.frames_lost == 0
    for track in ("a", "b"):
        stream.receive(media(1, track=track))
    assert close_code(stream, media(1, track="c")) == 1008


def test_numbering_that_starts_at_zero() -> None:
    stream = started()
    assert chunks(stream.receive(media(0))) == [0]
    assert chunks(stream.receive(media(1))) == [1]
    assert stream.frames_late == 0


def test_frames_without_chunk_pass_straight_through() -> None:
    stream = started()
    frame = json.loads(media(9))
    del frame["media"]["chunk"]
    [event] = stream.receive(json.dumps(frame))
    assert isinstance(event, Media) and event.chunk == 0


def test_window_zero_turns_reordering_off() -> None:
    stream = started(limits=MediaLimits(reorder_window=0))
    out: list[object] = []
    for chunk in (1, 3, 2, 4):
        out += stream.receive(media(chunk))
    assert chunks(out) == [1, 3, 4]
    assert (stream.frames_lost, stream.frames_late) == (1, 1)


@pytest.mark.parametrize(
    ("encoding", "name"), [("G722", "G.722"), ("OPUS", "Opus"), ("AMR-WB", "AMR-WB")]
)
def test_undecodable_codecs_are_refused_by_name(encoding: str, name: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        TelnyxMediaStream().receive(start_with(encoding=encoding, sample_rate=16000))
    assert info.value.close_code == 1003
    assert f"media encoding {name} cannot be decoded here" in str(info.value)
    assert "PCMU, PCMA or L16" in str(info.value)


def _tagging_decoder() -> PayloadDecoder:
    """A stand-in codec with state: each output byte is input + frames decoded so far."""

    def new() -> Callable[[bytes], bytes]:
        count = [0]

        def decode(payload: bytes) -> bytes:
            count[0] += 1
            return bytes((b + count[0]) % 256 for b in payload) * 2

        return decode

    return PayloadDecoder(output=AudioFormat(encoding=Encoding.PCM16LE, sample_rate=16000), new=new)


def test_handed_in_decoder_decodes_in_order_after_reordering() -> None:
    stream = TelnyxMediaStream(bidirectional_codec="PCMU", decoders={"G722": _tagging_decoder()})
    [start] = stream.receive(start_with(encoding="G722", sample_rate=16000))
    assert isinstance(start, Start)
    assert start.media_format == AudioFormat(encoding=Encoding.PCM16LE, sample_rate=16000)
    assert stream.send_format == ULAW_8K  # replies in the bidirectional codec
    out: list[object] = []
    for chunk in (1, 3, 2):  # 3 overtook 2: decoding waits for the order
        out += stream.receive(media(chunk, bytes([chunk * 10]) * 3))
    payloads = [e.payload for e in out if isinstance(e, Media)]
    # Decoded in chunk order, so the decoder's state advances 1, 2, 3.
    assert payloads == [bytes([11]) * 6, bytes([22]) * 6, bytes([33]) * 6]
    # Held frames are decoded too when the stream stops.
    stream.receive(media(5, b"\x32"))
    assert [e.payload for e in stream.receive(STOP) if isinstance(e, Media)] == [b"\x36" * 2]


def test_a_decoder_needs_a_bidirectional_codec_to_answer_in() -> None:
    stream = TelnyxMediaStream(decoders={"g722": _tagging_decoder()})
    assert close_code(stream, start_with(encoding="G722", sample_rate=16000)) == 1003
    other = TelnyxMediaStream(bidirectional_codec="PCMU", decoders={"g722": _tagging_decoder()})
    assert close_code(other, start_with(encoding="OPUS", sample_rate=48000)) == 1003
