"""The carrier role of a media stream, paired in memory with the agent role.

As h11 tests its client against its server: the carrier side builds the
frames, the agent role (what the server runs) reads them, the agent's
frames go back through the carrier side into its playback model, and the
mark echoes come out when the audio before them has played.
"""

from __future__ import annotations

import base64
import contextlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core import LocalProtocolError, RemoteProtocolError
from patter_core.audio._g711 import ulaw_decode
from patter_core.media import (
    AgentMedia,
    CarrierPlayback,
    Clear,
    Connected,
    Dtmf,
    Ignored,
    Mark,
    Media,
    Start,
    Stop,
    StreamError,
    TelnyxCarrierSide,
    TelnyxMediaStream,
    TwilioCarrierSide,
    TwilioMediaStream,
    parse_agent_message,
)

SID = "MZ" + "3" * 32


def _twilio() -> tuple[TwilioCarrierSide, TwilioMediaStream]:
    carrier = TwilioCarrierSide(
        account_sid="AC" + "1" * 32, call_sid="CA" + "2" * 32, stream_sid=SID
    )
    return carrier, TwilioMediaStream()


def test_twilio_frames_are_what_the_agent_role_reads() -> None:
    carrier, agent = _twilio()
    events = agent.receive(carrier.connected())
    events += agent.receive(carrier.start({"stream_token": "t"}))
    events += agent.receive(carrier.media(b"\x01" * 160))
    events += agent.receive(carrier.media(b"\x02" * 160))
    events += agent.receive(carrier.dtmf("7"))
    events += agent.receive(carrier.stop())
    assert [type(e) for e in events] == [Connected, Start, Media, Media, Dtmf, Stop]
    start = events[1]
    assert isinstance(start, Start)
    assert start.call_id == "CA" + "2" * 32 and start.stream_id == SID
    assert start.custom_parameters == {"stream_token": "t"}
    first, second = events[2], events[3]
    assert isinstance(first, Media) and isinstance(second, Media)
    assert (first.payload, first.chunk, first.timestamp) == (b"\x01" * 160, 1, 0)
    assert (second.payload, second.chunk, second.timestamp) == (b"\x02" * 160, 2, 20)
    assert events[4] == Dtmf(digit="7")


def test_twilio_media_frame_bytes() -> None:
    carrier, _ = _twilio()
    carrier.start()
    frame = carrier.media(b"\xff\x00", timestamp_ms=40)
    # Field order and spelling as PROTOCOLS.md section 3 shows them, no spaces.
    assert frame == (
        '{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1",'
        '"timestamp":"40","payload":"/wA="},"streamSid":"' + SID + '"}'
    )
    assert frame == json.dumps(json.loads(frame), separators=(",", ":"))
    assert carrier.media_b64("AAAA").startswith('{"event":"media","sequenceNumber":"3"')
    assert carrier.media_frames == 2
    assert json.loads(carrier.mark("m")) == {
        "event": "mark",
        "sequenceNumber": "4",
        "streamSid": SID,
        "mark": {"name": "m"},
    }
    assert carrier.error() is None  # Twilio streams have no error frame
    with pytest.raises(LocalProtocolError):
        TwilioCarrierSide(account_sid="AC", call_sid="CA", stream_sid="")


def test_marks_echo_when_their_audio_has_played_and_clear_flushes() -> None:
    """carrier frames -> agent role -> agent frames -> carrier playback -> echoes -> agent."""
    carrier, agent = _twilio()
    playback = CarrierPlayback(jitter_buffer=0.0)
    agent.receive(carrier.connected())
    agent.receive(carrier.start())

    def deliver(messages: list[str], now: float) -> list[str]:
        """The agent's frames reach the carrier at ``now``; return its echoes."""
        echoes: list[str] = []
        for message in messages:
            event = carrier.receive(message)
            if isinstance(event, AgentMedia):
                playback.add_audio(event.payload, now)
            elif isinstance(event, Mark):
                echoes += playback.add_mark(event.name, now)
            elif isinstance(event, Clear):
                echoes += playback.clear(now)
        return [carrier.mark(name) for name in echoes]

    # 200 ms of audio, a mark, 100 ms more, a second mark: all at t=0.
    out = [*agent.send_media(b"\x10" * 1600), agent.send_mark("a")]
    out += [*agent.send_media(b"\x20" * 800), agent.send_mark("b")]
    assert deliver(out, 0.0) == []
    assert playback.next_deadline() == pytest.approx(0.2)
    assert playback.due_marks(0.199) == [] and playback.played(0.1) == 800
    (echo,) = [carrier.mark(n) for n in playback.due_marks(0.2)]
    assert agent.receive(echo) == [Mark(name="a")]
    assert agent.played_ms == 200 and agent.sent_ms == 300
    # A clear at 0.25: "b" comes back at once though its audio never played.
    echoes = deliver([agent.send_clear()], 0.25)
    assert [json.loads(e)["mark"]["name"] for e in echoes] == ["b"]
    for e in echoes:
        assert agent.receive(e) == [Mark(name="b")]
    assert agent.played_ms == 200  # a cleared mark proves nothing about playback
    assert playback.received == playback.played(0.25) == 2000
    heard = np.frombuffer(playback.heard(0.3), dtype="<i2")
    assert np.array_equal(heard[:1600], np.frombuffer(ulaw_decode(b"\x10" * 1600), "<i2"))
    assert np.all(heard[2000:] == 0) and playback.dropped_samples == 400


def test_telnyx_frames_are_what_the_agent_role_reads() -> None:
    """The frame shapes are in tests/test_dial_telnyx.py; here what only the role adds."""
    carrier = TelnyxCarrierSide(call_control_id="v3:abc", stream_id="S", client_state="c3Q=")
    agent = TelnyxMediaStream()
    (start,) = agent.receive(carrier.start())
    assert isinstance(start, Start) and start.client_state == "c3Q="
    detail = "An unknown error occurred (simulated)"
    assert agent.receive(carrier.error() or "") == [
        StreamError(title="unknown_error", code="100002", detail=detail)
    ]
    dtmf = json.loads(carrier.dtmf("5", now=0.0))
    assert dtmf["occurred_at"] == "1970-01-01T00:00:00.000000Z" and dtmf["sequence_number"] == "2"
    # The agent's Telnyx frames carry no stream id; the carrier reads them as they come.
    out = [*agent.send_media(b"\x07" * 160), agent.send_mark("m"), agent.send_clear()]
    assert [carrier.receive(m) for m in out] == [
        AgentMedia(payload=b"\x07" * 160),
        Mark(name="m"),
        Clear(),
    ]
    top = TelnyxCarrierSide(call_control_id="c", stream_id="s", auth_token="t", nested_token=False)
    assert TelnyxMediaStream().receive(top.connected()) == [
        Connected(version="1.0.0", auth_token="t")
    ]


def test_telnyx_out_of_turn_dtmf_is_put_back_in_order() -> None:
    carrier = TelnyxCarrierSide(call_control_id="v3:x", stream_id="S")
    agent = TelnyxMediaStream()
    agent.receive(carrier.start())
    first, second = carrier.take_sequence(), carrier.take_sequence()
    events = agent.receive(carrier.dtmf("2", sequence=second))
    assert events == []  # held for its predecessor
    events += agent.receive(carrier.dtmf("1", sequence=first))
    events += agent.receive(carrier.media(b"\xff" * 160)) + agent.receive(carrier.stop())
    assert [e for e in events if isinstance(e, Dtmf)] == [Dtmf(digit="1"), Dtmf(digit="2")]


def test_playback_positions_across_talk_spurts() -> None:
    pb = CarrierPlayback(jitter_buffer=0.05, record=False)
    pb.add_audio(b"\x00" * 800, now=1.0)  # plays 1.05 .. 1.15
    assert pb.played(1.0) == 0 and pb.played(1.1) == 400 and pb.played(1.2) == 800
    pb.add_audio(b"\x00" * 160, now=2.0)  # a new spurt: 2.05 .. 2.07
    assert pb.played(2.0) == 800 and pb.played(2.06) == 880 and pb.played(3.0) == 960
    assert pb.heard(1.0) == b"\x00" * 16000  # nothing recorded without ``record``


# ------------------------------------------------------------------ playback alone


def test_mark_with_nothing_queued_comes_back_at_once() -> None:
    pb = CarrierPlayback(jitter_buffer=0.0)
    assert pb.add_mark("a", now=0.5) == ["a"]


def test_marks_come_back_when_their_audio_has_played() -> None:
    pb = CarrierPlayback(jitter_buffer=0.05)
    pb.add_audio(b"\x00" * 800, now=1.0)  # 100 ms, plays 1.05 .. 1.15
    assert pb.add_mark("m1", now=1.0) == []
    pb.add_audio(b"\x00" * 400, now=1.01)  # queued right behind: until 1.20
    assert pb.add_mark("m2", now=1.01) == []
    assert pb.due_marks(1.149) == []
    assert pb.due_marks(1.15) == ["m1"]
    assert pb.due_marks(1.21) == ["m2"] and pb.pending_marks == 0


def test_clear_drops_queued_audio_and_returns_every_mark() -> None:
    pb = CarrierPlayback(jitter_buffer=0.0)
    loud = bytes([0x80]) * 8000  # 1 s of the loudest μ-law code
    pb.add_audio(loud, now=0.0)
    pb.add_mark("x", now=0.0)
    pb.add_mark("y", now=0.1)
    assert pb.clear(now=0.25) == ["x", "y"] and pb.pending_marks == 0
    heard = np.frombuffer(pb.heard(1.0), dtype="<i2")
    assert np.all(heard[:2000] != 0) and np.all(heard[2000:] == 0)
    assert pb.dropped_samples == 6000
    # After a clear, new audio plays at once (a new talk spurt).
    pb.add_audio(loud[:80], now=0.5)
    assert pb.play_end == pytest.approx(0.51)


def test_timeline_is_continuous_and_lateness_is_measured() -> None:
    pb = CarrierPlayback(jitter_buffer=0.04)
    frame = bytes(range(0x10, 0x10 + 160))
    for i in range(10):  # on time: every 20 ms
        pb.add_audio(frame, now=i * 0.02)
    pb.add_audio(frame, now=0.3)  # the queue ran dry at 0.24: 60 ms late
    heard = np.frombuffer(pb.heard(0.6), dtype="<i2")
    one = np.frombuffer(ulaw_decode(frame), dtype="<i2")
    assert np.array_equal(heard[320 : 320 + 1600], np.tile(one, 10))
    assert np.all(heard[:320] == 0)
    assert pb.late_ms[:9] == [0.0] * 9 and pb.late_ms[9] == pytest.approx(60.0)
    assert pb.gaps_ms[0] == pytest.approx(20.0)
    assert pb.first_audio_at == 0.0 and pb.frames_received == 11


def test_timeline_limit() -> None:
    pb = CarrierPlayback(jitter_buffer=0.0, max_seconds=1.0)
    pb.add_audio(b"\x00" * 12000, now=0.0)
    assert pb.dropped_samples == 4000 and len(pb.heard(2.0)) == 32000


# ------------------------------------------------------------ agent frames alone


def test_parse_agent_messages() -> None:
    payload = base64.b64encode(b"\x01\x02").decode()
    assert parse_agent_message(
        json.dumps({"event": "media", "media": {"payload": payload}})
    ) == AgentMedia(payload=b"\x01\x02")
    assert parse_agent_message('{"event":"mark","mark":{"name":"a"}}') == Mark(name="a")
    assert parse_agent_message('{"event":"clear","streamSid":"MZ"}') == Clear()
    assert parse_agent_message('{"event":"whatever"}') == Ignored(event="whatever")
    for bad in (
        b"\x00",
        "nope",
        "[]",
        '{"event":1}',
        '{"event":"media"}',
        '{"event":"media","media":{"payload":"!!"}}',
        '{"event":"mark","mark":{}}',
        "[" * 100_000,  # nested past the decoder's recursion guard
    ):
        with pytest.raises(RemoteProtocolError) as info:
            parse_agent_message(bad)
        assert info.value.close_code == 1007


def test_twilio_agent_frames_must_carry_this_streams_sid() -> None:
    stream = ("streamSid", "MZ1")
    payload = base64.b64encode(b"\x01").decode()
    ok = {"streamSid": "MZ1"}
    media = {"event": "media", "media": {"payload": payload}}
    assert parse_agent_message(json.dumps({**media, **ok}), stream=stream) == AgentMedia(
        payload=b"\x01"
    )
    assert parse_agent_message('{"event":"clear","streamSid":"MZ1"}', stream=stream) == Clear()
    for frame in (
        media,
        {**media, "streamSid": "MZ2"},
        {"event": "mark", "mark": {"name": "a"}},
        {"event": "clear", "streamSid": None},
    ):
        with pytest.raises(RemoteProtocolError, match="streamSid") as info:
            parse_agent_message(json.dumps(frame), stream=stream)
        assert info.value.close_code == 1007
    telnyx = TelnyxCarrierSide(call_control_id="v3:x", stream_id="s")
    assert telnyx.agent_stream is None  # Telnyx documents no id on the agent's frames


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=50),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(["event", "media", "mark", "payload", "name"]),
                    inner,
                    max_size=3,
                )
            ),
            max_leaves=8,
        ).map(json.dumps),
    )
)
def test_parse_agent_message_never_raises_anything_else(message: str | bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        parse_agent_message(message)
