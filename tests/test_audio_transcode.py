"""Transcoder paths (carrier <-> bus <-> provider) and the Framer."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core import LocalProtocolError
from patter_core.audio import (
    ALAW_8K,
    PCM16_16K,
    PCM16_24K,
    ULAW_8K,
    AudioFormat,
    Encoding,
    Framer,
    StreamingResampler,
    Transcoder,
)
from patter_core.audio._g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

L16_16K_BE = AudioFormat(encoding=Encoding.PCM16BE, sample_rate=16000)  # Telnyx L16 default
G711 = (Encoding.ULAW, Encoding.ALAW)


def encode(samples: np.ndarray, encoding: Encoding) -> bytes:
    le = samples.astype("<i2").tobytes()
    if encoding is Encoding.PCM16LE:
        return le
    if encoding is Encoding.PCM16BE:
        return samples.astype(">i2").tobytes()
    return ulaw_encode(le) if encoding is Encoding.ULAW else alaw_encode(le)


def decode(data: bytes, encoding: Encoding) -> np.ndarray:
    if encoding is Encoding.PCM16LE:
        return np.frombuffer(data, "<i2").astype(np.int16)
    if encoding is Encoding.PCM16BE:
        return np.frombuffer(data, ">i2").astype(np.int16)
    pcm = ulaw_decode(data) if encoding is Encoding.ULAW else alaw_decode(data)
    return np.frombuffer(pcm, "<i2").astype(np.int16)


def tone(freq: float, rate: int, seconds: float = 0.5, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def tone_snr(y: np.ndarray, freq: float, rate: int) -> float:
    seg = y[len(y) // 10 : -len(y) // 10].astype(np.float64)
    t = np.arange(len(seg)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, seg, rcond=None)
    fit = basis @ coef
    err = float(np.sqrt(np.mean((seg - fit) ** 2)))
    return math.inf if err == 0 else 20 * math.log10(float(np.sqrt(np.mean(fit**2))) / err)


def through(tc: Transcoder, data: bytes, frame: int) -> bytes:
    return (
        b"".join(tc.convert(data[i : i + frame]) for i in range(0, len(data), frame)) + tc.flush()
    )


SRC_RATES = (8000, 16000, 24000, 22050, 44100)
DST_RATES = (8000, 16000, 24000)
COMBOS = [
    (AudioFormat(encoding=se, sample_rate=sr), AudioFormat(encoding=de, sample_rate=dr))
    for se, sr, de, dr in itertools.product(Encoding, SRC_RATES, Encoding, DST_RATES)
]


@pytest.mark.parametrize(
    ("src", "dst"), COMBOS, ids=lambda f: f"{f.encoding.value}@{f.sample_rate}"
)
def test_440hz_survives_every_combination(src: AudioFormat, dst: AudioFormat) -> None:
    data = encode(tone(440, src.sample_rate), src.encoding)
    tc = Transcoder(src, dst)
    out = through(tc, data, src.bytes_for_ms(20))
    y = decode(out, dst.encoding)
    n_in = len(data) // src.encoding.bytes_per_sample
    tail = math.ceil(tc.delay_seconds * dst.sample_rate) + 2
    assert math.ceil(n_in * dst.sample_rate / src.sample_rate) <= len(y)
    assert len(y) <= math.ceil(n_in * dst.sample_rate / src.sample_rate) + tail
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    peak_hz = np.argmax(spectrum) * dst.sample_rate / len(y)
    assert abs(peak_hz - 440) <= 2
    lossy = src.encoding in G711 or dst.encoding in G711
    assert tone_snr(y, 440, dst.sample_rate) >= (30 if lossy else 55)


CALL_PATHS = [
    (ULAW_8K, PCM16_16K),  # Twilio -> bus
    (PCM16_16K, ULAW_8K),  # bus -> Twilio
    (L16_16K_BE, PCM16_16K),  # Telnyx L16 -> bus
    (PCM16_16K, L16_16K_BE),
    (ALAW_8K, PCM16_16K),  # Telnyx PCMA
    (PCM16_16K, PCM16_24K),  # bus -> OpenAI
    (PCM16_24K, PCM16_16K),  # OpenAI -> bus
    (PCM16_24K, ULAW_8K),  # OpenAI -> Twilio directly
]


@pytest.mark.parametrize(("src", "dst"), CALL_PATHS)
def test_call_paths_give_exact_20ms_frames(src: AudioFormat, dst: AudioFormat) -> None:
    tc = Transcoder(src, dst)
    data = encode(tone(440, src.sample_rate), src.encoding)
    step = src.bytes_for_ms(20)
    sizes = {len(tc.convert(data[i : i + step])) for i in range(0, len(data), step)}
    assert sizes == {dst.bytes_for_ms(20)}


@pytest.mark.parametrize("fmt", [ULAW_8K, ALAW_8K, PCM16_16K, PCM16_24K, L16_16K_BE])
def test_passthrough_returns_the_same_object(fmt: AudioFormat) -> None:
    tc = Transcoder(fmt, fmt)
    assert tc.passthrough
    data = bytes(range(160))
    assert tc.convert(data) is data
    assert tc.flush() == b""
    assert not Transcoder(ULAW_8K, PCM16_16K).passthrough


def test_same_rate_paths_are_exact() -> None:
    pcm = np.arange(-32768, 32768, 7, dtype=np.int32).astype(np.int16)
    le = pcm.astype("<i2").tobytes()
    assert Transcoder(PCM16_16K, L16_16K_BE).convert(le) == pcm.astype(">i2").tobytes()
    assert Transcoder(L16_16K_BE, PCM16_16K).convert(pcm.astype(">i2").tobytes()) == le
    pcm8 = AudioFormat(encoding=Encoding.PCM16LE, sample_rate=8000)
    assert Transcoder(pcm8, ULAW_8K).convert(le) == ulaw_encode(le)
    assert Transcoder(pcm8, ALAW_8K).convert(le) == alaw_encode(le)
    codes = bytes(range(256))
    assert Transcoder(ULAW_8K, pcm8).convert(codes) == ulaw_decode(codes)
    assert Transcoder(ULAW_8K, ALAW_8K).convert(codes) == alaw_encode(ulaw_decode(codes))
    assert Transcoder(ALAW_8K, ULAW_8K).convert(codes) == ulaw_encode(alaw_decode(codes))


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(0, 800), max_size=10))
def test_transcoder_chunking_invariance(cuts: list[int]) -> None:
    data = encode(tone(440, 8000, 0.1), Encoding.ULAW)
    whole = Transcoder(ULAW_8K, PCM16_16K)
    expected = np.frombuffer(whole.convert(data) + whole.flush(), "<i2").astype(np.int32)
    tc = Transcoder(ULAW_8K, PCM16_16K)
    bounds = sorted(cuts)
    parts = [tc.convert(data[a:b]) for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    got = np.frombuffer(b"".join(parts) + tc.flush(), "<i2").astype(np.int32)
    assert len(got) == len(expected)
    assert np.max(np.abs(got - expected)) <= 1


def test_odd_pcm_byte_count_is_a_clear_error() -> None:
    for src, dst in [(PCM16_24K, ULAW_8K), (PCM16_16K, L16_16K_BE), (PCM16_16K, PCM16_16K)]:
        with pytest.raises(LocalProtocolError, match="even byte count"):
            Transcoder(src, dst).convert(b"\x00\x01\x02")
    # G.711 is one byte per sample: any length is fine.
    assert len(Transcoder(ULAW_8K, PCM16_16K).convert(b"\xff" * 3)) == 12


def test_carry_odd_byte_mode_joins_split_samples() -> None:
    pcm = tone(440, 24000, 0.1).astype("<i2").tobytes()
    plain = Transcoder(PCM16_24K, PCM16_16K)
    expected = plain.convert(pcm) + plain.flush()
    tc = Transcoder(PCM16_24K, PCM16_16K, carry_odd_byte=True)
    got = b"".join(tc.convert(pcm[i : i + 333]) for i in range(0, len(pcm), 333))
    assert got + tc.flush() == expected
    same = Transcoder(PCM16_16K, PCM16_16K, carry_odd_byte=True)
    assert same.convert(b"\x01\x02\x03") + same.convert(b"\x04") == b"\x01\x02\x03\x04"


@pytest.mark.parametrize("bad", ["text", 12, None, [1, 2]])
def test_wrong_types_are_our_error(bad: object) -> None:
    for src, dst in [(ULAW_8K, PCM16_16K), (PCM16_16K, PCM16_16K), (ULAW_8K, ALAW_8K)]:
        with pytest.raises(LocalProtocolError):
            Transcoder(src, dst).convert(bad)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        Transcoder("ulaw", PCM16_16K)  # type: ignore[arg-type]


# -- Framer ------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 400), chunks=st.lists(st.binary(max_size=900), max_size=20))
def test_framer_loses_and_duplicates_nothing(size: int, chunks: list[bytes]) -> None:
    framer = Framer(size)
    frames: list[bytes] = []
    for chunk in chunks:
        frames += framer.push(chunk)
        assert len(framer.remainder) < size
    assert all(len(f) == size for f in frames)
    rest = framer.flush()
    assert b"".join(frames) + rest == b"".join(chunks)
    assert len(frames) == len(b"".join(chunks)) // size
    assert framer.remainder == b"" and framer.flush() == b""


def test_framer_example() -> None:
    framer = Framer(160)
    assert framer.push(b"a" * 100) == []
    assert framer.remainder == b"a" * 100
    assert framer.push(b"b" * 300) == [b"a" * 100 + b"b" * 60, b"b" * 160]
    assert framer.remainder == b"b" * 80
    assert framer.push(bytearray(b"c" * 80)) == [b"b" * 80 + b"c" * 80]
    assert framer.flush() == b""


def test_framer_rejects_bad_input() -> None:
    for bad in (0, -1, "160", 1.5, True, 10**9):
        with pytest.raises(LocalProtocolError):
            Framer(bad)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        Framer(160).push("text")  # type: ignore[arg-type]


RESAMPLING_PATHS = [
    (ULAW_8K, PCM16_24K),
    (PCM16_24K, ULAW_8K),
    (ULAW_8K, PCM16_16K),
    (PCM16_16K, ALAW_8K),
    (L16_16K_BE, PCM16_24K),
    (PCM16_24K, L16_16K_BE),
]


def full_scale_square(rate: int) -> np.ndarray:
    half = rate // 1000  # 500 Hz
    return np.tile(np.array([32767] * half + [-32768] * half, np.int16), 150)


@pytest.mark.parametrize("signal", ["tone", "square"])
@pytest.mark.parametrize(("src", "dst"), RESAMPLING_PATHS)
def test_resampling_paths_round_and_saturate_as_the_resampler_does(
    src: AudioFormat, dst: AudioFormat, signal: str
) -> None:
    # The transcoder rounds and saturates by one table lookup on biased
    # samples, the resampler's int16 interface by rint and clamps: every
    # sample agrees within 1 LSB, a full-scale square wave (which overshoots
    # in the filter) clips at the rails instead of wrapping, and the encoded
    # path is exactly that audio in the destination's encoding.
    rate = src.sample_rate
    x = tone(700, rate, 0.3, amp=20000) if signal == "tone" else full_scale_square(rate)
    x = decode(encode(x, src.encoding), src.encoding)
    data = encode(x, src.encoding)
    frame = src.bytes_for_ms(20)
    chunks = [data[i : i + frame] for i in range(0, len(data), frame)]

    def run(tc: Transcoder) -> bytes:
        return b"".join(tc.convert(c) for c in chunks) + tc.flush()

    rs = StreamingResampler(rate, dst.sample_rate)
    n = frame // src.encoding.bytes_per_sample
    ref = np.concatenate([*(rs.process(x[i : i + n]) for i in range(0, len(x), n)), rs.flush()])
    pcm = AudioFormat(encoding=Encoding.PCM16LE, sample_rate=dst.sample_rate)
    got = np.frombuffer(run(Transcoder(src, pcm)), "<i2").astype(np.int32)
    assert len(got) == len(ref)
    assert np.max(np.abs(got - ref)) <= 1
    assert abs(float(np.mean(got - ref))) < 0.05  # rounded, not truncated
    if signal == "square" and src.encoding is not Encoding.ULAW:
        assert got.max() == 32767 and got.min() == -32768
    assert run(Transcoder(src, dst)) == encode(got, dst.encoding)
