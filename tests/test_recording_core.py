"""The stereo recorder's timeline, without sockets: caller audio is the
clock, agent audio lands where mark echoes say it played, a clear cuts it
where the caller stopped hearing it, and the WAV header is standard."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from patter_core.audio import ULAW_8K, AudioFormat, Encoding
from patter_core.audio._g711 import ulaw_encode
from patter_core.recording import StereoRecorder
from patter_core.recording._wav import wav_header, wav_sizes

PCM8K = AudioFormat(encoding=Encoding.PCM16LE, sample_rate=8000)


def pcm(samples: int, value: int) -> bytes:
    return np.full(samples, value, dtype="<i2").tobytes()


def caller_ms(rec: StereoRecorder, ms: int, value: int = 1) -> None:
    for _ in range(ms // 20):
        rec.caller(pcm(160, value), PCM8K)


def stereo(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").reshape(-1, 2)


def span(channel: np.ndarray, value: int) -> tuple[int, int]:
    where = np.flatnonzero(channel == value)
    return int(where[0]), int(where[-1]) + 1


def test_agent_audio_lands_where_the_mark_echo_says_it_played() -> None:
    rec = StereoRecorder()
    caller_ms(rec, 200)  # now: sample 1600
    rec.agent(pcm(800, 7), PCM8K)  # 100 ms sent at 1600, all at once
    first = rec.take()
    # Nothing after the queued answer's send position is final yet.
    assert len(stereo(first)) == 1600
    caller_ms(rec, 200)  # now: 3200; the carrier played it and echoed its mark
    rec.played(100)
    out = stereo(first + rec.finish())
    assert len(out) == 3200
    assert span(out[:, 1], 7) == (2400, 3200)  # ended at the echo
    assert set(out[:, 0].tolist()) == {1}  # the caller's side is whole


def test_clear_cuts_the_answer_where_the_caller_stopped_hearing_it() -> None:
    rec = StereoRecorder()
    caller_ms(rec, 100)  # 800
    rec.agent(pcm(8000, 9), PCM8K)  # a 1 s answer sent at 800
    caller_ms(rec, 200)  # 2400: 200 ms of it heard, none confirmed yet
    rec.cleared()
    caller_ms(rec, 500)
    rec.played(900)  # an echo of a cleared mark confirms nothing more
    out = stereo(rec.finish())
    assert span(out[:, 1], 9) == (800, 2400)
    assert np.count_nonzero(out[:, 1]) == 1600


def test_echo_after_a_clear_counts_only_new_audio() -> None:
    rec = StereoRecorder()
    caller_ms(rec, 100)
    rec.agent(pcm(1600, 3), PCM8K)  # 200 ms at 800
    caller_ms(rec, 200)  # 2400
    rec.played(200)  # placed 800..2400
    rec.agent(pcm(1600, 4), PCM8K)  # 200 ms at 2400
    caller_ms(rec, 100)  # 3200
    rec.cleared()  # heard 2400..3200
    rec.agent(pcm(800, 5), PCM8K)  # 100 ms at 3200
    caller_ms(rec, 100)  # 4000
    rec.played(300)  # the stream counts 200 played + 100 of the new answer
    out = stereo(rec.finish())
    assert span(out[:, 1], 3) == (800, 2400)
    assert span(out[:, 1], 4) == (2400, 3200)
    assert span(out[:, 1], 5) == (3200, 4000)


def test_unconfirmed_audio_is_placed_at_the_end_and_ulaw_is_decoded() -> None:
    rec = StereoRecorder()
    tone = (8000 * np.sin(np.arange(800) * 2 * np.pi * 440 / 8000)).astype("<i2")
    rec.caller(ulaw_encode(tone.tobytes()), ULAW_8K)
    rec.agent(ulaw_encode(tone.tobytes()), ULAW_8K)
    out = stereo(rec.finish())
    assert len(out) == 1600  # the answer, sent at 800, would have ended at 1600
    assert np.corrcoef(out[:800, 0], tone)[0, 1] > 0.99
    assert np.corrcoef(out[800:, 1], tone)[0, 1] > 0.99
    assert rec.rate == 8000


def test_buffer_is_bounded_and_drops_are_counted() -> None:
    rec = StereoRecorder(max_buffer_ms=100)
    caller_ms(rec, 300)
    assert rec.dropped_samples == 1600
    assert len(stereo(rec.take())) == 800
    rec.stopped = True
    caller_ms(rec, 100)
    assert rec.take() == b""


def test_other_rate_on_one_side_is_not_mixed_in() -> None:
    rec = StereoRecorder()
    caller_ms(rec, 100)
    rec.agent(pcm(1600, 5), AudioFormat(encoding=Encoding.PCM16LE, sample_rate=16000))
    assert not np.any(stereo(rec.finish())[:, 1])


@pytest.mark.parametrize("frames", [0, 1234])
def test_wav_header_read_by_the_wave_module(frames: int) -> None:
    data = np.arange(frames * 2, dtype="<i2").tobytes()
    buf = bytearray(wav_header(sample_rate=8000, channels=2) + data)
    for offset, value in wav_sizes(len(data)):
        buf[offset : offset + len(value)] = value
    with wave.open(io.BytesIO(bytes(buf))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        assert w.getnframes() == frames
        assert w.readframes(frames) == data
