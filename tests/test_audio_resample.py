"""Streaming resampler: chunking invariance, exact frame lengths, latency, anti-aliasing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core import LocalProtocolError
from patter_core.audio import StreamingResampler
from patter_core.audio._resample import resample_buffer

FIXED_PAIRS = [
    (8000, 16000),
    (16000, 8000),
    (24000, 16000),
    (24000, 8000),
    (16000, 24000),
    (8000, 24000),
]
TTS_PAIRS = [
    (22050, 16000),
    (22050, 8000),
    (22050, 24000),
    (44100, 16000),
    (44100, 8000),
    (44100, 24000),
]
ALL_PAIRS = FIXED_PAIRS + TTS_PAIRS


def tone(freq: float, rate: int, seconds: float = 0.5, amp: float = 10000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x.astype(np.float64)))))


def run(resampler: StreamingResampler, x: np.ndarray, chunk: int) -> list[np.ndarray]:
    return [resampler.process(x[i : i + chunk]) for i in range(0, len(x), chunk)]


def noise(rate: int, seconds: float = 0.1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-20000, 20000, int(rate * seconds)).astype(np.int16)


@pytest.mark.parametrize(("src", "dst"), ALL_PAIRS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_chunking_invariance(src: int, dst: int, data: st.DataObject) -> None:
    x = noise(src, 0.05, seed=src + dst)
    whole = StreamingResampler(src, dst)
    expected = np.concatenate([whole.process(x), whole.flush()]).astype(np.int32)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(x)), max_size=12)))
    r = StreamingResampler(src, dst)
    got = [r.process(x[a:b]) for a, b in zip([0, *cuts], [*cuts, len(x)], strict=True)]
    out = np.concatenate([*got, r.flush()]).astype(np.int32)
    assert len(out) == len(expected)
    assert np.max(np.abs(out - expected), initial=0) <= 1


@pytest.mark.parametrize(("src", "dst"), ALL_PAIRS)
def test_cumulative_output_count_is_ceil_of_ideal(src: int, dst: int) -> None:
    r = StreamingResampler(src, dst)
    rng = np.random.default_rng(7)
    fed = produced = 0
    for size in rng.integers(0, 700, 60):
        produced += len(r.process(np.zeros(int(size), np.int16)))
        fed += int(size)
        assert produced == math.ceil(fed * dst / src)
        assert 0 <= produced - fed * dst / src < 1


@pytest.mark.parametrize(("src", "dst"), ALL_PAIRS)
def test_every_20ms_frame_gives_exactly_20ms(src: int, dst: int) -> None:
    r = StreamingResampler(src, dst)
    frames = run(r, noise(src, 0.5), src // 50)
    assert {len(f) for f in frames} == {dst // 50}


@pytest.mark.parametrize(("src", "dst"), ALL_PAIRS)
def test_impulse_is_at_most_5ms_late(src: int, dst: int) -> None:
    x = np.zeros(src // 5, np.int16)
    at = src // 20  # an impulse 50 ms in
    x[at] = 20000
    r = StreamingResampler(src, dst)
    y = np.concatenate([*run(r, x, src // 50), r.flush()])
    late = np.argmax(np.abs(y.astype(np.int32))) / dst - at / src
    assert 0 <= late <= 0.005
    assert late == pytest.approx(r.delay_seconds, abs=1.5 / dst)


@pytest.mark.parametrize(
    ("src", "dst", "freq"),
    [
        (16000, 8000, 6000),
        (24000, 16000, 10000),
        (24000, 8000, 6000),
        (24000, 8000, 10000),
        (22050, 16000, 10000),
        (44100, 16000, 12000),
        (44100, 8000, 6000),
    ],
)
def test_out_of_band_tone_is_removed(src: int, dst: int, freq: int) -> None:
    x = tone(freq, src)
    r = StreamingResampler(src, dst)
    y = np.concatenate(run(r, x, src // 50))[dst // 50 :]  # skip the filter's start-up
    attenuation = 20 * math.log10(rms(x) / max(rms(y), 1e-3))
    assert attenuation >= 50


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (8000, 24000), (16000, 24000)])
def test_upsampling_images_are_removed(src: int, dst: int) -> None:
    # A 3 kHz tone upsampled must not leave images (src - 3 kHz, src + 3 kHz, ...)
    # anywhere in the output band: everything away from 3 kHz is >= 50 dB down.
    y = np.concatenate(run(StreamingResampler(src, dst), tone(3000, src), src // 50))
    y = y[dst // 50 :]
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / dst)
    peak = spectrum.max()
    assert abs(freqs[np.argmax(spectrum)] - 3000) < 5
    elsewhere = spectrum[np.abs(freqs - 3000) > 100].max()
    assert 20 * math.log10(peak / elsewhere) >= 50


def best_aligned_snr(x: np.ndarray, y: np.ndarray, max_lag: int = 100) -> float:
    ref = x[200:-200].astype(np.float64)
    best = -math.inf
    for lag in range(max_lag):
        seg = y[200 + lag : 200 + lag + len(ref)].astype(np.float64)
        if len(seg) < len(ref):
            break
        err = rms(ref - seg)
        best = max(best, math.inf if err == 0 else 20 * math.log10(rms(ref) / err))
    return best


def tone_snr(y: np.ndarray, freq: float, rate: int) -> float:
    """SNR of ``y`` against the best-fitting sinusoid at ``freq`` (any phase, i.e. any delay)."""
    seg = y[len(y) // 10 : -len(y) // 10].astype(np.float64)
    t = np.arange(len(seg)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, seg, rcond=None)
    fit = basis @ coef
    err = rms(seg - fit)
    return math.inf if err == 0 else 20 * math.log10(rms(fit) / err)


def test_round_trip_8k_16k_8k_keeps_1khz_tone() -> None:
    x = tone(1000, 8000)
    up, down = StreamingResampler(8000, 16000), StreamingResampler(16000, 8000)
    y = np.concatenate([down.process(f) for f in run(up, x, 160)])
    assert best_aligned_snr(x, y) >= 40  # the round trip delay is a whole 27 samples
    assert tone_snr(y, 1000, 8000) >= 40


@pytest.mark.parametrize(("src", "dst"), [(16000, 24000), (8000, 24000), (22050, 16000)])
def test_round_trip_keeps_speech_band_tone(src: int, dst: int) -> None:
    x = tone(700, src)
    there, back = StreamingResampler(src, dst), StreamingResampler(dst, src)
    y = np.concatenate([back.process(f) for f in run(there, x, src // 50)])
    assert tone_snr(y, 700, src) >= 40


def test_dc_passes_unchanged() -> None:
    for src, dst in ALL_PAIRS:
        r = StreamingResampler(src, dst)
        y = r.process(np.full(src // 10, 1000, np.int16))
        assert np.all(y[len(y) // 2 :] == 1000), (src, dst)


def test_full_scale_square_wave_saturates_instead_of_wrapping() -> None:
    x = np.tile(np.array([32767] * 8 + [-32768] * 8, np.int16), 50)
    y = StreamingResampler(8000, 16000).process(x)
    assert y.max() == 32767 and y.min() == -32768
    # No wrap-around: a sample next to a positive run is never hugely negative.
    assert np.all(np.abs(np.diff(y.astype(np.int32))) < 40000)


def test_flush_resets_for_a_new_stream() -> None:
    x = noise(8000, 0.05)
    r = StreamingResampler(8000, 16000)
    first = np.concatenate([r.process(x), r.flush()])
    second = np.concatenate([r.process(x), r.flush()])
    assert np.array_equal(first, second)
    assert len(first) == math.ceil((len(x) + math.ceil(r.delay_seconds * 8000 * 2 / 2)) * 2)


def test_equal_rates_pass_through() -> None:
    x = noise(16000)
    r = StreamingResampler(16000, 16000)
    assert np.array_equal(r.process(x), x)
    assert len(r.flush()) == 0
    assert r.delay_seconds == 0


def test_large_chunk_equals_frames() -> None:
    x = noise(44100, 0.5)  # bigger than one internal step
    a = StreamingResampler(44100, 16000)
    b = StreamingResampler(44100, 16000)
    whole = a.process(x).astype(np.int32)
    framed = np.concatenate(run(b, x, 882)).astype(np.int32)
    assert len(whole) == len(framed) == 8000
    assert np.max(np.abs(whole - framed)) <= 1


def test_bad_arguments_are_our_error() -> None:
    with pytest.raises(LocalProtocolError):
        StreamingResampler(8000, "16000")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        StreamingResampler(0, 16000)
    with pytest.raises(LocalProtocolError):
        StreamingResampler(44101, 16000)  # coprime: would need a gigantic filter bank
    r = StreamingResampler(8000, 16000)
    with pytest.raises(LocalProtocolError):
        r.process(np.zeros(10, np.float32))
    with pytest.raises(LocalProtocolError):
        r.process(b"\x00\x00")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        r.process(np.zeros((2, 2), np.int16))


def test_resample_buffer_whole_conversion() -> None:
    x = tone(440, 22050, 0.5)
    out = np.frombuffer(resample_buffer(x.astype("<i2").tobytes(), 22050, 16000), "<i2")
    assert abs(len(out) - 8000) <= 1
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 16000 / len(out) - 440) < 3
    assert resample_buffer(b"\x01\x00", 16000, 16000) == b"\x01\x00"
    assert resample_buffer(b"", 22050, 16000) == b""
    with pytest.raises(LocalProtocolError):
        resample_buffer(b"\x00", 22050, 16000)
    with pytest.raises(LocalProtocolError):
        resample_buffer("ab", 22050, 16000)  # type: ignore[arg-type]


@pytest.mark.parametrize(("src", "dst"), FIXED_PAIRS)
def test_a_bias_passes_through_the_filter(src: int, dst: int) -> None:
    # The float interface with a bias: silence is the bias, every output
    # carries it (unit DC gain per branch), and the int16 interface of a
    # biased resampler gives the same samples as an unbiased one.
    x = tone(700, src, 0.2)
    plain, biased = StreamingResampler(src, dst), StreamingResampler(src, dst, bias=32768.5)
    frame = src // 50
    for i in range(0, len(x), frame):
        want = plain.process_float(x[i : i + frame]).copy()
        got = biased.process_float(x[i : i + frame])
        assert len(got) == len(want)
        assert np.max(np.abs(got - 32768.5 - want)) < 0.1
    assert np.max(np.abs(biased.flush_float() - 32768.5 - plain.flush_float())) < 0.1
    y = np.concatenate(run(StreamingResampler(src, dst, bias=1000.0), x, frame))
    ref = np.concatenate(run(StreamingResampler(src, dst), x, frame))
    assert len(y) == len(ref)
    assert np.max(np.abs(y.astype(np.int32) - ref)) <= 1


def test_odd_chunking_keeps_a_bounded_number_of_views() -> None:
    # Views of the scratch buffers are kept per frame size; a stream cut in
    # ever-changing sizes must not grow a call's memory.
    r = StreamingResampler(8000, 24000)
    rng = np.random.default_rng(5)
    for size in rng.integers(1, 1000, 200):
        r.process(np.zeros(int(size), np.int16))
    assert 1 <= len(r._views) <= 4


@pytest.mark.parametrize(("src", "dst"), ALL_PAIRS)
def test_a_40ms_frame_is_one_step_at_every_rate(src: int, dst: int) -> None:
    # One step returns a view of the scratch output (no copy, no concatenation);
    # a chunk over the step is cut, and the pieces are the same samples.
    x = noise(src, 0.04)
    r = StreamingResampler(src, dst)
    assert np.shares_memory(r.process_float(x), r._out)
    long = noise(src, 0.1)
    cut, whole = StreamingResampler(src, dst), StreamingResampler(src, dst)
    assert not np.shares_memory(out := whole.process_float(long), whole._out)
    halves = [
        cut.process_float(long[: len(long) // 2]).copy(),
        cut.process_float(long[len(long) // 2 :]),
    ]
    assert np.max(np.abs(out - np.concatenate(halves))) < 0.01


@pytest.mark.parametrize(
    ("src", "dst"), [(8000, 24000), (24000, 8000), (8000, 16000), (16000, 8000)]
)
def test_phone_pairs_keep_little_scratch_memory(src: int, dst: int) -> None:
    # A server keeps two resamplers per transcoded call; their scratch is
    # most of what transcoding adds to a call's memory.
    r = StreamingResampler(src, dst)
    assert r._buf.nbytes + r._out.nbytes <= 8 * 1024
