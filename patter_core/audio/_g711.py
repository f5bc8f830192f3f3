"""G.711 mu-law and A-law codecs as numpy lookup tables.

ITU-T G.711 maps each 16-bit linear sample to one 8-bit code on a
piecewise-logarithmic curve (8 segments of 16 steps). We reproduce the
classic reference arithmetic (the Sun/CCITT routines that CPython's
``audioop`` also uses) once, vectorised, at import time:

* decoding is a 256-entry table indexed by the code;
* encoding is a 65,536-entry table indexed by the ``uint16`` view of the
  ``int16`` sample, so a whole frame is one fancy-index call.

mu-law quantises the sample's top 14 bits (``sample >> 2``) and A-law its top
13 bits (``sample >> 3``), exactly as ``audioop.lin2ulaw`` / ``lin2alaw`` do
for 2-byte samples; the tests compare all 65,536 inputs and all 256 codes
with ``audioop`` bit for bit.

The float32 copies of the decode tables let the transcoder decode straight
into a resampler's input buffer without an extra int16 -> float pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .._errors import LocalProtocolError

__all__ = [
    "alaw_decode",
    "alaw_decode_array",
    "alaw_encode",
    "alaw_encode_array",
    "ulaw_decode",
    "ulaw_decode_array",
    "ulaw_encode",
    "ulaw_encode_array",
]

_I16LE = np.dtype("<i2")
#: What the codecs accept: anything exposing bytes without a copy.
Buffer = bytes | bytearray | memoryview


def _build_ulaw_decode() -> npt.NDArray[np.int16]:
    # G.711 mu-law: invert all bits, then value = ((mantissa << 3) + 0x84) << segment,
    # minus the bias 0x84; bit 7 (after inversion) is the sign.
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _build_alaw_decode() -> npt.NDArray[np.int16]:
    # G.711 A-law: even bits inverted (xor 0x55); segment 0 has no implicit
    # leading one, so it is offset by half a step (8) instead of 0x108.
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


# Segment end points of the reference encoders (14-bit mu-law, 13-bit A-law magnitudes).
_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)

# Every int16 value, in the order of its uint16 bit pattern (0..65535).
_ALL_SAMPLES = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    pcm = _ALL_SAMPLES >> 2  # 14-bit two's complement
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), 8159) + (0x84 >> 2)  # clip, then add the bias (33)
    seg = np.searchsorted(_SEG_UEND, mag, side="left")
    mant = (mag >> (np.minimum(seg, 7) + 1)) & 0x0F
    code = np.where(seg >= 8, 0x7F, (seg << 4) | mant)
    return (code ^ mask).astype(np.uint8)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    pcm = _ALL_SAMPLES >> 3  # 13-bit two's complement
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_SEG_AEND, mag, side="left")
    shift = np.where(seg < 2, 1, np.minimum(seg, 7))
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> shift) & 0x0F))
    return (code ^ mask).astype(np.uint8)


ULAW_DECODE: npt.NDArray[np.int16] = _build_ulaw_decode()
ALAW_DECODE: npt.NDArray[np.int16] = _build_alaw_decode()
ULAW_ENCODE: npt.NDArray[np.uint8] = _build_ulaw_encode()
ALAW_ENCODE: npt.NDArray[np.uint8] = _build_alaw_encode()
ULAW_DECODE_F32: npt.NDArray[np.float32] = ULAW_DECODE.astype(np.float32)
ALAW_DECODE_F32: npt.NDArray[np.float32] = ALAW_DECODE.astype(np.float32)
# Direct code-to-code tables (what decoding with one law and encoding with the other gives).
ULAW_TO_ALAW: npt.NDArray[np.uint8] = ALAW_ENCODE[ULAW_DECODE.view(np.uint16)]
ALAW_TO_ULAW: npt.NDArray[np.uint8] = ULAW_ENCODE[ALAW_DECODE.view(np.uint16)]
for _table in (ULAW_DECODE, ALAW_DECODE, ULAW_ENCODE, ALAW_ENCODE, ULAW_TO_ALAW, ALAW_TO_ULAW):
    _table.setflags(write=False)
for _table32 in (ULAW_DECODE_F32, ALAW_DECODE_F32):
    _table32.setflags(write=False)


def require_bytes(data: Any, what: str = "audio") -> None:
    """Raise :class:`LocalProtocolError` unless ``data`` is a bytes-like buffer."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise LocalProtocolError(f"{what} must be bytes, not {type(data).__name__}")


def pcm16_view(data: Any, dtype: np.dtype[Any] = _I16LE) -> npt.NDArray[np.int16]:
    """View 16-bit PCM bytes as a read-only int16 array (no copy)."""
    require_bytes(data, "PCM16 audio")
    if len(data) % 2:
        # A 16-bit sample cannot be split; an odd count means a caller cut a
        # frame in the middle of a sample, which would shift every later sample.
        raise LocalProtocolError(f"PCM16 audio needs an even byte count, got {len(data)}")
    return np.frombuffer(data, dtype=dtype)


def _codes(data: Any) -> npt.NDArray[np.uint8]:
    require_bytes(data, "G.711 audio")
    return np.frombuffer(data, dtype=np.uint8)


def ulaw_encode_array(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    """Encode int16 samples to mu-law codes."""
    return ULAW_ENCODE[_as_int16(samples).view(np.uint16)]


def ulaw_decode_array(codes: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    """Decode mu-law codes to int16 samples."""
    return ULAW_DECODE[_as_uint8(codes)]


def alaw_encode_array(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    """Encode int16 samples to A-law codes."""
    return ALAW_ENCODE[_as_int16(samples).view(np.uint16)]


def alaw_decode_array(codes: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    """Decode A-law codes to int16 samples."""
    return ALAW_DECODE[_as_uint8(codes)]


def ulaw_encode(pcm: Buffer) -> bytes:
    """PCM16 little-endian -> mu-law, one byte per sample."""
    return ULAW_ENCODE[_native(pcm16_view(pcm)).view(np.uint16)].tobytes()


def ulaw_decode(data: Buffer) -> bytes:
    """mu-law -> PCM16 little-endian."""
    return ULAW_DECODE[_codes(data)].astype(_I16LE, copy=False).tobytes()


def alaw_encode(pcm: Buffer) -> bytes:
    """PCM16 little-endian -> A-law, one byte per sample."""
    return ALAW_ENCODE[_native(pcm16_view(pcm)).view(np.uint16)].tobytes()


def alaw_decode(data: Buffer) -> bytes:
    """A-law -> PCM16 little-endian."""
    return ALAW_DECODE[_codes(data)].astype(_I16LE, copy=False).tobytes()


def _as_int16(samples: Any) -> npt.NDArray[np.int16]:
    if not isinstance(samples, np.ndarray) or samples.dtype.kind != "i" or samples.itemsize != 2:
        raise LocalProtocolError("samples must be a numpy int16 array")
    native: npt.NDArray[np.int16] = samples.astype(np.int16, copy=False)  # no copy if native
    return native


def _as_uint8(codes: Any) -> npt.NDArray[np.uint8]:
    if not isinstance(codes, np.ndarray) or codes.dtype != np.uint8:
        raise LocalProtocolError("codes must be a numpy uint8 array")
    return codes


def _native(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    # A no-op on little-endian hosts; keeps the uint16 view meaningful elsewhere.
    return samples.astype(np.int16, copy=False)
