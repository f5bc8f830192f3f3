"""The dial tool's pure parts: carrier frames, test tones, WAV files (its playback model
and the agent frames it reads are the core's: tests/test_media_carrier.py)."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from patter_anyio.dial._audio import percentiles, tone_ulaw
from patter_anyio.dial._frames import TwilioCarrierFrames
from patter_anyio.dial._wavfile import WavError, read_wav_as_ulaw, write_wav_pcm16
from patter_core.audio._g711 import ulaw_decode
from patter_core.media import Media, Start, TwilioMediaStream


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
