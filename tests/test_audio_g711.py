"""G.711 codecs: bit-exact with the reference (CPython's audioop), table round trips."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core import LocalProtocolError
from patter_core.audio._g711 import (
    alaw_decode,
    alaw_decode_array,
    alaw_encode,
    alaw_encode_array,
    ulaw_decode,
    ulaw_decode_array,
    ulaw_encode,
    ulaw_encode_array,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop")

ALL_CODES = bytes(range(256))
# Every int16 value once, as little-endian bytes.
ALL_PCM = np.arange(-32768, 32768, dtype=np.int32).astype("<i2").tobytes()

LAWS = {
    "ulaw": (ulaw_encode, ulaw_decode, audioop.lin2ulaw, audioop.ulaw2lin),
    "alaw": (alaw_encode, alaw_decode, audioop.lin2alaw, audioop.alaw2lin),
}


@pytest.mark.parametrize("law", LAWS)
def test_decode_all_256_codes_match_audioop(law: str) -> None:
    _, decode, _, ref_decode = LAWS[law]
    assert decode(ALL_CODES) == ref_decode(ALL_CODES, 2)


@pytest.mark.parametrize("law", LAWS)
def test_encode_all_65536_samples_match_audioop(law: str) -> None:
    encode, _, ref_encode, _ = LAWS[law]
    assert encode(ALL_PCM) == ref_encode(ALL_PCM, 2)


@pytest.mark.parametrize("law", LAWS)
@settings(max_examples=200, deadline=None)
@given(pcm=st.lists(st.integers(-32768, 32767), max_size=400))
def test_round_trip_is_g711_quantisation(law: str, pcm: list[int]) -> None:
    encode, decode, ref_encode, ref_decode = LAWS[law]
    data = np.array(pcm, dtype="<i2").tobytes()
    assert decode(encode(data)) == ref_decode(ref_encode(data, 2), 2)


def test_ulaw_code_round_trip_except_negative_zero() -> None:
    # 0x7F ("negative zero") and 0xFF both decode to 0, which encodes as 0xFF.
    codes = np.frombuffer(ulaw_encode(ulaw_decode(ALL_CODES)), np.uint8)
    differ = np.flatnonzero(codes != np.arange(256))
    assert differ.tolist() == [0x7F]
    assert codes[0x7F] == 0xFF
    assert ulaw_decode(b"\x7f\xff") == b"\x00\x00\x00\x00"


def test_alaw_code_round_trip_is_exact_for_all_codes() -> None:
    # A-law has no zero code: 0xD5 / 0x55 decode to +8 / -8, so every code survives.
    assert alaw_encode(alaw_decode(ALL_CODES)) == ALL_CODES
    assert alaw_decode(b"\xd5\x55") == np.array([8, -8], "<i2").tobytes()


def test_array_variants_match_bytes_variants() -> None:
    samples = np.frombuffer(ALL_PCM, "<i2").astype(np.int16)
    codes = np.arange(256, dtype=np.uint8)
    assert ulaw_encode_array(samples).tobytes() == ulaw_encode(ALL_PCM)
    assert alaw_encode_array(samples).tobytes() == alaw_encode(ALL_PCM)
    assert ulaw_decode_array(codes).astype("<i2").tobytes() == ulaw_decode(ALL_CODES)
    assert alaw_decode_array(codes).astype("<i2").tobytes() == alaw_decode(ALL_CODES)
    assert ulaw_decode_array(codes).dtype == np.int16
    assert ulaw_encode_array(samples).dtype == np.uint8


def test_silence_codes() -> None:
    assert ulaw_encode(b"\x00\x00" * 4) == b"\xff" * 4  # PROTOCOLS.md: 0xFF is mu-law silence
    assert alaw_encode(b"\x00\x00") == b"\xd5"


def test_accepts_bytearray_and_memoryview() -> None:
    assert ulaw_decode(bytearray(b"\x00\x80")) == ulaw_decode(b"\x00\x80")
    assert ulaw_encode(memoryview(b"\x01\x02")) == ulaw_encode(b"\x01\x02")


@pytest.mark.parametrize("func", [ulaw_encode, alaw_encode])
def test_odd_pcm_byte_count_is_our_error(func: object) -> None:
    with pytest.raises(LocalProtocolError):
        func(b"\x00\x00\x00")  # type: ignore[operator]


@pytest.mark.parametrize("func", [ulaw_encode, alaw_encode, ulaw_decode, alaw_decode])
@pytest.mark.parametrize("bad", ["abcd", 1234, None, [0, 0]])
def test_wrong_type_is_our_error(func: object, bad: object) -> None:
    with pytest.raises(LocalProtocolError):
        func(bad)  # type: ignore[operator]


@pytest.mark.parametrize("func", [ulaw_encode_array, alaw_encode_array])
def test_array_encode_rejects_wrong_dtype(func: object) -> None:
    with pytest.raises(LocalProtocolError):
        func(np.zeros(4, np.float32))  # type: ignore[operator]
    with pytest.raises(LocalProtocolError):
        func(b"\x00\x00")  # type: ignore[operator]


@pytest.mark.parametrize("func", [ulaw_decode_array, alaw_decode_array])
def test_array_decode_rejects_wrong_dtype(func: object) -> None:
    with pytest.raises(LocalProtocolError):
        func(np.zeros(4, np.int16))  # type: ignore[operator]
