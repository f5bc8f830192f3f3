"""The dial tool's pure parts: playback model, carrier frames, test tones, WAV files."""

from __future__ import annotations

import base64
import contextlib
import json
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_anyio._wavfile import WavError, read_wav_as_ulaw, write_wav_pcm16
from patter_anyio.dial._audio import PlaybackModel, percentiles, tone_ulaw
from patter_anyio.dial._frames import (
    AgentClear,
    AgentMark,
    AgentMedia,
    AgentOther,
    TelnyxCarrierFrames,
    TwilioCarrierFrames,
    parse_agent_message,
)
from patter_core import RemoteProtocolError
from patter_core.audio import ulaw_decode
from patter_core.media import Media, Start, TwilioMediaStream

# ------------------------------------------------------------------ playback


def test_mark_with_nothing_queued_comes_back_at_once() -> None:
    pb = PlaybackModel(jitter_buffer=0.0)
    assert pb.add_mark("a", now=0.5) == ["a"]


def test_marks_come_back_when_their_audio_has_played() -> None:
    pb = PlaybackModel(jitter_buffer=0.05)
    pb.add_audio(b"\x00" * 800, now=1.0)  # 100 ms, plays 1.05 .. 1.15
    assert pb.add_mark("m1", now=1.0) == []
    pb.add_audio(b"\x00" * 400, now=1.01)  # queued right behind: until 1.20
    assert pb.add_mark("m2", now=1.01) == []
    assert pb.due_marks(1.149) == []
    assert pb.due_marks(1.15) == ["m1"]
    assert pb.due_marks(1.21) == ["m2"] and pb.pending_marks == 0


def test_clear_drops_queued_audio_and_returns_every_mark() -> None:
    pb = PlaybackModel(jitter_buffer=0.0)
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
    pb = PlaybackModel(jitter_buffer=0.04)
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
    pb = PlaybackModel(jitter_buffer=0.0, max_seconds=1.0)
    pb.add_audio(b"\x00" * 12000, now=0.0)
    assert pb.dropped_samples == 4000 and len(pb.heard(2.0)) == 32000


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["audio", "mark", "clear", "tick"]),
            st.integers(0, 2000),
            st.floats(0, 0.2),
        ),
        max_size=40,
    )
)
def test_every_mark_comes_back_exactly_once(ops: list[tuple[str, int, float]]) -> None:
    pb = PlaybackModel(jitter_buffer=0.03)
    now, sent, back = 0.0, [], []
    for i, (op, size, step) in enumerate(ops):
        now += step
        back += pb.due_marks(now)
        if op == "audio":
            pb.add_audio(b"\x7f" * size, now)
        elif op == "mark":
            sent.append(f"m{i}")
            back += pb.add_mark(f"m{i}", now)
        elif op == "clear":
            back += pb.clear(now)
    back += pb.due_marks(now + 1000.0)
    assert back == sent  # in order, each once
    assert len(pb.heard(now)) == 2 * round(now * 8000)


def test_percentiles() -> None:
    assert percentiles([1.0, 2.0, 3.0, 4.0], (50,)) == (2.5,)
    assert all(np.isnan(v) for v in percentiles([]))


# -------------------------------------------------------------------- frames


def test_carrier_frames_are_what_the_agent_side_parser_reads() -> None:
    frames = TwilioCarrierFrames(
        account_sid="AC" + "1" * 32, call_sid="CA" + "2" * 32, stream_sid="MZ" + "3" * 32
    )
    agent = TwilioMediaStream()
    events = agent.receive(frames.connected())
    events += agent.receive(frames.start({"stream_token": "t"}))
    events += agent.receive(frames.media(b"\xff" * 160, 0))
    start = next(e for e in events if isinstance(e, Start))
    assert start.call_id == "CA" + "2" * 32 and start.custom_parameters == {"stream_token": "t"}
    media = next(e for e in events if isinstance(e, Media))
    assert media.payload == b"\xff" * 160
    assert json.loads(frames.dtmf("7")) == {
        "event": "dtmf",
        "streamSid": "MZ" + "3" * 32,
        "sequenceNumber": "3",
        "dtmf": {"track": "inbound_track", "digit": "7"},
    }
    assert json.loads(frames.mark("n"))["mark"] == {"name": "n"}
    stop = json.loads(frames.stop())
    assert stop["sequenceNumber"] == "5" and stop["stop"]["callSid"] == "CA" + "2" * 32


def test_parse_agent_messages() -> None:
    payload = base64.b64encode(b"\x01\x02").decode()
    assert parse_agent_message(
        json.dumps({"event": "media", "media": {"payload": payload}})
    ) == AgentMedia(payload=b"\x01\x02")
    assert parse_agent_message('{"event":"mark","mark":{"name":"a"}}') == AgentMark(name="a")
    assert parse_agent_message('{"event":"clear","streamSid":"MZ"}') == AgentClear()
    assert parse_agent_message('{"event":"whatever"}') == AgentOther(event="whatever")
    for bad in (
        b"\x00",
        "nope",
        "[]",
        '{"event":1}',
        '{"event":"media"}',
        '{"event":"media","media":{"payload":"!!"}}',
        '{"event":"mark","mark":{}}',
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
    assert parse_agent_message('{"event":"clear","streamSid":"MZ1"}', stream=stream) == AgentClear()
    for frame in (
        media,
        {**media, "streamSid": "MZ2"},
        {"event": "mark", "mark": {"name": "a"}},
        {"event": "clear", "streamSid": None},
    ):
        with pytest.raises(RemoteProtocolError, match="streamSid") as info:
            parse_agent_message(json.dumps(frame), stream=stream)
        assert info.value.close_code == 1007
    telnyx = TelnyxCarrierFrames(
        call_control_id="v3:x",
        call_session_id="s",
        user_id="u",
        stream_id="s",
        from_number="+1",
        to_number="+2",
    )
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


# --------------------------------------------------------------- tones, wavs


def test_tone_bursts_are_faded_and_at_the_right_frequency() -> None:
    pcm = np.frombuffer(ulaw_decode(tone_ulaw(1000, 2.0, burst=0.5, pause=0.5)), dtype="<i2")
    assert len(pcm) == 16000
    assert abs(int(pcm[0])) < 100 and np.all(np.abs(pcm[4000:8000]) < 10)  # faded in; a pause
    burst = pcm[400:3600].astype(np.float64)
    peak = np.argmax(np.abs(np.fft.rfft(burst))) * 8000 / len(burst)
    assert abs(peak - 1000) < 5
    continuous = np.frombuffer(ulaw_decode(tone_ulaw(440, 1.0, burst=None)), dtype="<i2")
    assert np.sum(np.abs(continuous[1000:7000]) < 5) < 200  # no pauses


def test_wav_round_trip_and_resampling(tmp_path: Path) -> None:
    pcm = np.round(8000 * np.sin(2 * np.pi * 300 * np.arange(8000) / 8000)).astype("<i2").tobytes()
    path = str(tmp_path / "a.wav")
    write_wav_pcm16(path, pcm)
    ulaw = read_wav_as_ulaw(path)
    back = np.frombuffer(ulaw_decode(ulaw), dtype="<i2").astype(np.float64)
    err = back - np.frombuffer(pcm, dtype="<i2")
    assert len(ulaw) == 8000 and 10 * np.log10(np.sum(back**2) / np.sum(err**2)) > 30
    # 44.1 kHz mono -> 8 kHz, same length in seconds.
    rate = 44100
    hi = np.round(8000 * np.sin(2 * np.pi * 300 * np.arange(rate // 2) / rate)).astype("<i2")
    path2 = str(tmp_path / "b.wav")
    with wave.open(path2, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(hi.tobytes())
    assert abs(len(read_wav_as_ulaw(path2)) - 4000) <= 2


def test_wav_errors(tmp_path: Path) -> None:
    three = tmp_path / "three.wav"
    with wave.open(str(three), "wb") as w:
        w.setnchannels(3)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00" * 60)
    with pytest.raises(WavError, match="3 channels"):
        read_wav_as_ulaw(str(three))
    truncated = tmp_path / "t.wav"
    truncated.write_bytes(three.read_bytes()[:20])
    with pytest.raises(WavError, match="not a PCM WAV"):
        read_wav_as_ulaw(str(truncated))
    with pytest.raises(WavError, match="cannot read"):
        read_wav_as_ulaw(str(tmp_path))  # a directory


def test_transcript_lines_from_a_server_log() -> None:
    import io

    from patter_anyio.dial import transcript_lines

    log = io.BytesIO(
        b"2026-11-25 16:01:57,841 INFO [1] patter_anyio.call: call started call=CA1 caller=+1 callee=+2\n"
        b"2026-11-25 16:01:58,000 INFO [1] patter_anyio.transcript: call=CA1 user: hello there\n"
        b"2026-11-25 16:01:58,500 INFO [1] patter_anyio.transcript: call=CA1 assistant: Hi: how can I help?\n"
        b"2026-11-25 16:01:58,600 INFO [1] other.module: call=CA1 user: not ours\n"
        b"\xff\xfe broken bytes\n"
    )
    assert transcript_lines(log) == ["user: hello there", "assistant: Hi: how can I help?"]
