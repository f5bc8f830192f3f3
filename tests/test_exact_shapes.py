"""The exact-shape readers of the media hot path (``_json``) give what the
general parser gives, for every message, or step aside.

A Twilio or Telnyx media message, an OpenAI audio delta and an ElevenLabs
audio event in their documented shape are read without a dict
(``TwilioMediaStream._media_shape``, ``TelnyxMediaStream._media_shape``,
``OpenAIRealtimeSession._message_shape``, ``ElevenLabsSession._message_shape``). Hypothesis builds messages of
that shape with every field varied (escapes, control characters, leading
zeros, long counters, bad and oversized base64, another stream's id) and
mangles them (spaces, reordered keys, missing fields); a stream and a
session that read them the quick way must answer exactly as ones that
never do: the same events, or the same error with the same close code.
"""

from __future__ import annotations

import base64
import json
from functools import partial
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core import RemoteProtocolError
from patter_core.media import MediaLimits, TelnyxMediaStream, TwilioMediaStream
from patter_core.providers import (
    ElevenLabsConfig,
    ElevenLabsSession,
    OpenAIRealtimeConfig,
    OpenAIRealtimeSession,
    SocketMessage,
    SocketOpened,
)

from .test_media_telnyx import _tagging_decoder

SID = "MZ00000000000000000000000000000001"


def _general_only(kind: type[Any], reader: str) -> type[Any]:
    """``kind`` with its exact-shape ``reader`` off: every message takes the general path."""
    return type(f"General{kind.__name__}", (kind,), {reader: lambda self, message: None})


_GeneralStream = _general_only(TwilioMediaStream, "_media_shape")
_GeneralTelnyx = _general_only(TelnyxMediaStream, "_media_shape")
_GeneralElevenLabs = _general_only(ElevenLabsSession, "_message_shape")
_GeneralSession = _general_only(OpenAIRealtimeSession, "_message_shape")


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


def _media(
    seq_key: str,
    id_key: str,
    seq: str,
    track: str,
    chunk: str,
    ts: str,
    payload: str,
    sid: str,
    raw: bool,
) -> str:
    """A carrier's media message in its documented key order: ``raw`` writes
    the fields as they are, JSON or not; else ``json.dumps`` escapes them."""
    if raw:
        return (
            '{"event":"media","'
            + seq_key
            + '":"'
            + seq
            + '","media":{"track":"'
            + track
            + '","chunk":"'
            + chunk
            + '","timestamp":"'
            + ts
            + '","payload":"'
            + payload
            + '"},"'
            + id_key
            + '":"'
            + sid
            + '"}'
        )
    media = {"track": track, "chunk": chunk, "timestamp": ts, "payload": payload}
    message = {"event": "media", seq_key: seq, "media": media, id_key: sid}
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


_twilio_media = partial(_media, "sequenceNumber", "streamSid")
_telnyx_media = partial(_media, "sequence_number", "stream_id")


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


# -- Telnyx: the same, over whole streams (reorder windows, held digits) ----------

_TELNYX_START = {
    "event": "start",
    "sequence_number": "1",
    "stream_id": "32DE0DEA-53CB",
    "start": {
        "call_control_id": "v2:abc",
        "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
    },
}
_L16_START = {
    **_TELNYX_START,
    "start": {
        "call_control_id": "v2:abc",
        "media_format": {"encoding": "L16", "sample_rate": 16000, "channels": 1},
    },
}


def _telnyx(kind: type[TelnyxMediaStream], codec: str) -> TelnyxMediaStream:
    """A stream after ``start`` in ``codec`` (PCMU, L16, or G722 through a stand-in decoder)."""
    limits = MediaLimits(
        max_payload_bytes=640, max_message_bytes=4096, reorder_window=3, dtmf_reorder_window=2
    )
    stream = kind(limits=limits, bidirectional_codec="PCMU", decoders={"G722": _tagging_decoder()})
    stream.receive('{"event":"connected","version":"1.0.0"}')
    start = _L16_START if codec == "L16" else _TELNYX_START
    if codec == "G722":
        g722 = {"encoding": "G722", "sample_rate": 16000}
        start = {**start, "start": {**start["start"], "media_format": g722}}
    stream.receive(json.dumps(start))
    return stream


_small = st.integers(1, 12).map(str)
_telnyx_message = st.one_of(
    # Mostly well-formed frames of two tracks, out of order, some repeated:
    # the reorder windows and held digits must end up alike.
    st.builds(
        _telnyx_media,
        _small,
        st.sampled_from(["inbound", "inbound", "outbound", "t3", "t4", "t5"]),
        _small,
        _small,
        st.binary(max_size=320).map(lambda b: base64.b64encode(b).decode()),
        st.sampled_from(["32DE0DEA-53CB", "32de0dea-53cb", "", 'a"b']),
        st.just(True),
    ),
    st.builds(_telnyx_media, _counter, _plain, _counter, _counter, _b64, _plain, st.booleans()),
    st.builds(
        lambda seq, digit: json.dumps(
            {"event": "dtmf", "stream_id": "x", "sequence_number": seq, "dtmf": {"digit": digit}}
        ),
        _small,
        st.sampled_from(["1", "2", "#"]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_telnyx_message, _mangle), min_size=1, max_size=14),
    st.sampled_from(["PCMU", "L16", "G722"]),
)
def test_telnyx_media_read_either_way_alike(messages: list[tuple[str, str]], codec: str) -> None:
    quick, general = _telnyx(TelnyxMediaStream, codec), _telnyx(_GeneralTelnyx, codec)
    for message, mangle in messages:
        data = _mangled(message, mangle, '"sequence_number":')
        assert _outcome(quick.receive, data) == _outcome(general.receive, data)
    stop = '{"event":"stop","sequence_number":"99","stop":{},"stream_id":"x"}'
    assert _outcome(quick.receive, stop) == _outcome(general.receive, stop)


def test_the_documented_telnyx_media_message_is_read_the_quick_way() -> None:
    payload = base64.b64encode(bytes(range(160))).decode()
    message = _telnyx_media("4", "inbound", "1", "5", payload, "32DE0DEA-53CB", raw=True)
    stream = _telnyx(TelnyxMediaStream, "PCMU")
    [media] = stream._media_shape(message) or []
    assert media.payload == bytes(range(160))
    assert (media.track, media.chunk, media.timestamp) == ("inbound", 1, 5)
    # Through the reorder window like any frame: chunk 3 waits for chunk 2.
    later = _telnyx_media("6", "inbound", "3", "45", payload, "x", raw=True)
    assert stream._media_shape(later) == []


# -- ElevenLabs: audio events over a whole conversation (interruptions, turns) ------


def _eleven(kind: type[ElevenLabsSession], output: str) -> ElevenLabsSession:
    session = kind(ElevenLabsConfig(agent_id="agent_1"))
    session.start(0.0)
    session.receive_io(SocketOpened(channel="main"), 0.0)
    metadata = {
        "type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {
            "conversation_id": "conv_1",
            "user_input_audio_format": "ulaw_8000",
            "agent_output_audio_format": output,
        },
    }
    session.receive_io(SocketMessage(channel="main", data=json.dumps(metadata)), 0.0)
    session.io_to_send()
    return session


def _eleven_audio(audio: str, event_id: str, raw: bool) -> str:
    if raw:
        return (
            '{"type":"audio","audio_event":{"audio_base_64":"'
            + audio
            + '","event_id":'
            + event_id
            + "}}"
        )
    event: dict[str, Any] = {"audio_base_64": audio}
    if event_id.lstrip("-").isdigit():
        event["event_id"] = int(event_id)
    return json.dumps({"type": "audio", "audio_event": event}, separators=(",", ":"))


_event_id = st.one_of(
    st.integers(0, 14).map(str),
    st.sampled_from(["01", "-1", "1.0", "true", '"3"', "9" * 18, "9" * 19]),
)
_eleven_message = st.one_of(
    st.builds(_eleven_audio, _b64, _event_id, st.booleans()),
    st.builds(
        lambda event_id: json.dumps(
            {"type": "interruption", "interruption_event": {"event_id": event_id}}
        ),
        st.integers(0, 14),
    ),
    st.builds(
        lambda text: json.dumps(
            {"type": "user_transcript", "user_transcription_event": {"user_transcript": text}}
        ),
        _plain,
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_eleven_message, _mangle), min_size=1, max_size=12),
    st.sampled_from(["ulaw_8000", "pcm_16000"]),
)
def test_elevenlabs_audio_read_either_way_alike(
    messages: list[tuple[str, str]], output: str
) -> None:
    quick, general = _eleven(ElevenLabsSession, output), _eleven(_GeneralElevenLabs, output)
    for message, mangle in messages:
        data = _mangled(message, mangle, '"event_id":')
        result = SocketMessage(channel="main", data=data)
        assert quick.receive_io(result, 1.0) == general.receive_io(result, 1.0)
        assert quick.malformed_messages == general.malformed_messages
        assert quick.stale_audio_dropped == general.stale_audio_dropped
        assert quick.io_to_send() == general.io_to_send()


def test_the_documented_audio_event_is_read_the_quick_way() -> None:
    audio = bytes(range(160))
    message = _eleven_audio(base64.b64encode(audio).decode(), "5", raw=True)
    session = _eleven(ElevenLabsSession, "ulaw_8000")
    events = session._message_shape(message)
    assert events is not None and len(events) == 1
    assert (events[0].audio, events[0].item_id) == (audio, "5")  # type: ignore[union-attr]
    with_alignment = message[:-2] + ',"alignment":{}}}'
    assert session._message_shape(with_alignment) is None  # the general path reads that
