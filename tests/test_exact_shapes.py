"""The exact-shape readers of the media hot path (``_json``) give what the
general parser gives, for every message, or step aside.

A Twilio media message and an OpenAI audio delta in their documented shape
are read without a dict (``TwilioMediaStream._media_shape``,
``OpenAIRealtimeSession._message_shape``). Hypothesis builds messages of
that shape with every field varied (escapes, control characters, leading
zeros, long counters, bad and oversized base64, another stream's id) and
mangles them (spaces, reordered keys, missing fields); a stream and a
session that read them the quick way must answer exactly as ones that
never do: the same events, or the same error with the same close code.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core import RemoteProtocolError
from patter_core.media import MediaLimits, TwilioMediaStream
from patter_core.providers import (
    OpenAIRealtimeConfig,
    OpenAIRealtimeSession,
    SocketMessage,
    SocketOpened,
)

SID = "MZ00000000000000000000000000000001"


class _GeneralStream(TwilioMediaStream):
    def _media_shape(self, message: str) -> None:
        return None


class _GeneralSession(OpenAIRealtimeSession):
    def _message_shape(self, data: str) -> None:
        return None


def _started(kind: type[TwilioMediaStream]) -> TwilioMediaStream:
    stream = kind(limits=MediaLimits(max_payload_bytes=640, max_message_bytes=4096))
    start = {"streamSid": SID, "callSid": "CA1", "mediaFormat": {"encoding": "audio/x-mulaw"}}
    stream.receive(json.dumps({"event": "start", "streamSid": SID, "start": start}))
    return stream


def _outcome(read: Any, message: Any) -> Any:
    try:
        return ("events", read(message))
    except RemoteProtocolError as exc:
        return ("error", type(exc), exc.close_code, str(exc))


_b64 = st.one_of(
    st.binary(max_size=700).map(lambda b: base64.b64encode(b).decode()),
    st.sampled_from(["", "A", "AB==", "A===", "AAAA=", "////", "AA\\/A", "AA\\u0041A", "AA\tA"]),
)
_plain = st.one_of(
    st.sampled_from(["inbound", "outbound", "", "é", 'a"b', "a\\b", 'a\\"b', "\x01"]),
    st.text(max_size=6),
)
_counter = st.one_of(
    st.integers(0, 10**20).map(str),
    st.sampled_from(["007", "", "1.5", "-1", "١٢", "9" * 18, "1" * 19, "0" * 20]),
)


def _twilio_media(
    seq: str, track: str, chunk: str, ts: str, payload: str, sid: str, raw: bool
) -> str:
    if raw:  # the fields written as they are, JSON or not
        return (
            '{"event":"media","sequenceNumber":"'
            + seq
            + '","media":{"track":"'
            + track
            + '","chunk":"'
            + chunk
            + '","timestamp":"'
            + ts
            + '","payload":"'
            + payload
            + '"},"streamSid":"'
            + sid
            + '"}'
        )
    media = {"track": track, "chunk": chunk, "timestamp": ts, "payload": payload}
    message = {"event": "media", "sequenceNumber": seq, "media": media, "streamSid": sid}
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


_mangle = st.sampled_from(["none", "none", "none", "spaces", "reorder", "drop", "bytes"])


def _mangled(message: str, how: str, field: str) -> str | bytes:
    """``message`` as it is, or not quite in the documented shape."""
    if how == "spaces":
        return message.replace(",", ", ", 1)
    if how == "reorder":  # a key before the first one
        return '{"x":1,' + message[1:]
    if how == "drop":
        return message.replace(field, "", 1)
    if how == "bytes":
        return message.encode("utf-8", "surrogatepass")
    return message


@settings(max_examples=400, deadline=None)
@given(
    st.builds(
        _twilio_media,
        _counter,
        _plain,
        _counter,
        _counter,
        _b64,
        st.sampled_from([SID, SID, SID, "MZ2", "", 'MZ"']),
        st.booleans(),
    ),
    _mangle,
)
def test_twilio_media_read_either_way_alike(message: str, mangle: str) -> None:
    data = _mangled(message, mangle, ',"streamSid":"' + SID + '"')
    quick, general = _started(TwilioMediaStream), _started(_GeneralStream)
    assert _outcome(quick.receive, data) == _outcome(general.receive, data)


def test_the_documented_media_message_is_read_the_quick_way() -> None:
    payload = base64.b64encode(bytes(range(160))).decode()
    message = _twilio_media("3", "inbound", "7", "140", payload, SID, raw=True)
    stream = _started(TwilioMediaStream)
    [media] = stream._media_shape(message) or []
    assert media.payload == bytes(range(160))
    assert (media.track, media.chunk, media.timestamp) == ("inbound", 7, 140)
    assert stream.receive(message) == [media]
    # Another stream's message, or one with an escaped payload, is the general path's.
    assert stream._media_shape(message.replace(SID, "MZ2")) is None
    assert stream._media_shape(message.replace(payload[:4], payload[:3] + "\\/", 1)) is None


# -- OpenAI Realtime -----------------------------------------------------------


def _session(kind: type[OpenAIRealtimeSession], fmt: Any) -> OpenAIRealtimeSession:
    session = kind(OpenAIRealtimeConfig(api_key="sk-test", audio_format=fmt))
    session.start(0.0)
    session.receive_io(SocketOpened(channel="main"), 0.0)
    updated = SocketMessage(channel="main", data='{"type":"session.updated","session":{}}')
    session.receive_io(updated, 0.0)
    session.io_to_send()
    return session


def _delta(event: str, item: str, index: str, delta: str, raw: bool) -> str:
    if raw:
        return (
            '{"type":"response.output_audio.delta","event_id":"'
            + event
            + '","response_id":"resp_1","item_id":"'
            + item
            + '","output_index":'
            + index
            + ',"content_index":0,"delta":"'
            + delta
            + '"}'
        )
    message = {
        "type": "response.output_audio.delta",
        "event_id": event,
        "response_id": "resp_1",
        "item_id": item,
        "output_index": int(index) if index.isdigit() else index,
        "content_index": 0,
        "delta": delta,
    }
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


@settings(max_examples=400, deadline=None)
@given(
    st.builds(
        _delta,
        _plain,
        _plain,
        st.sampled_from(["0", "1", "01", "-1", "1.0", "99999999999999999999", "true"]),
        _b64,
        st.booleans(),
    ),
    st.sampled_from(["pcmu", "pcm24"]),
    _mangle,
)
def test_openai_deltas_read_either_way_alike(message: str, fmt: str, mangle: str) -> None:
    data = _mangled(message, mangle, ',"content_index":0')
    quick, general = _session(OpenAIRealtimeSession, fmt), _session(_GeneralSession, fmt)
    result = SocketMessage(channel="main", data=data)
    assert quick.receive_io(result, 1.0) == general.receive_io(result, 1.0)
    assert quick.malformed_messages == general.malformed_messages
    assert quick.io_to_send() == general.io_to_send()


def test_the_documented_delta_is_read_the_quick_way() -> None:
    audio = bytes(range(160))
    message = _delta("event_1", "item_1", "0", base64.b64encode(audio).decode(), raw=True)
    session = _session(OpenAIRealtimeSession, "pcmu")
    events = session._message_shape(message)
    assert events is not None and len(events) == 1
    assert (events[0].audio, events[0].item_id) == (audio, "item_1")  # type: ignore[union-attr]
    assert session._message_shape(message.replace('"delta":"', '"delta":"\\/', 1)) is None
    assert session._message_shape(message[:-1] + " }") is None


_GOOD = base64.b64encode(bytes(range(160))).decode()
_EDGES = [
    # (track, chunk, timestamp, payload, streamSid), each written raw
    ("inbound", "1", "20", _GOOD, SID),  # the documented message
    ("inbound", "9" * 18, "0", _GOOD, SID),  # the longest counter get_counter takes
    ("inbound", "1" * 19, "20", _GOOD, SID),  # one digit more: refused
    ("inbound", "007", "20", _GOOD, SID),
    ("inbound", "1", "20", "", SID),  # empty audio
    ("inbound", "1", "20", _GOOD[:-1], SID),  # bad padding
    ("inbound", "1", "20", "AA\\/A", SID),  # an escape inside the payload
    ("inbound", "1", "20", _GOOD, "MZ2"),  # another stream
    ("in\\u0062ound", "1", "20", _GOOD, SID),  # an escape in a string
    ("in\tbound", "1", "20", _GOOD, SID),  # a control character
    ("é", "1", "20", _GOOD, SID),
    ("inbound", "1", "20", base64.b64encode(bytes(641)).decode(), SID),  # over the payload limit
]


def test_twilio_edges_read_either_way_alike() -> None:
    for track, chunk, ts, payload, sid in _EDGES:
        message = _twilio_media("3", track, chunk, ts, payload, sid, raw=True)
        quick, general = _started(TwilioMediaStream), _started(_GeneralStream)
        assert _outcome(quick.receive, message) == _outcome(general.receive, message), message


def test_openai_edges_read_either_way_alike() -> None:
    odd = base64.b64encode(bytes(3)).decode()
    for index in ("0", "7", "01", "-1", "1e2", "9" * 18, "9" * 19):
        for delta in (_GOOD, "", odd, "AA\\/A", _GOOD[:-1]):
            for fmt in ("pcmu", "pcm24"):
                message = _delta("event_1", "item_1", index, delta, raw=True)
                quick, general = (
                    _session(OpenAIRealtimeSession, fmt),
                    _session(_GeneralSession, fmt),
                )
                result = SocketMessage(channel="main", data=message)
                assert quick.receive_io(result, 1.0) == general.receive_io(result, 1.0), message
                assert quick.malformed_messages == general.malformed_messages
