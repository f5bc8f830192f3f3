"""Transcoder: decode -> resample -> encode, one object per direction of a call.

Every leg of a call speaks one :class:`AudioFormat` (Twilio mu-law 8 kHz,
Telnyx L16 16 kHz or PCMU/PCMA 8 kHz, OpenAI PCM16 24 kHz, ElevenLabs
``ulaw_8000`` / ``pcm_16000`` / ``pcm_24000``, a TTS engine at 22.05 or
44.1 kHz). A transcoder is built once per stream, choosing its whole path at
construction; ``convert`` then does a handful of numpy calls per frame:

* equal formats: ``passthrough`` is True and ``convert`` returns the very
  object it was given (no copy);
* equal rates: one table lookup or byte swap in the int16 domain, exact;
* different rates: G.711 codes are decoded by a float32 table straight into
  the resampler's buffer, one ``np.dot`` filters the frame, and the result is
  rounded, saturated and encoded.

Odd byte counts. A 16-bit PCM chunk with an odd length is a caller bug (it
would shift every later sample by one byte) and raises
:class:`LocalProtocolError`. A producer that legitimately cuts its stream at
arbitrary byte offsets can opt in to ``carry_odd_byte=True``: the trailing
byte is then held and prefixed to the next chunk, and a half sample still
held at ``flush`` is dropped (it is not audio).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from .._errors import LocalProtocolError
from . import _g711 as g711
from ._format import AudioFormat, Encoding
from ._resample import StreamingResampler, to_int16

__all__ = ["Transcoder"]

_LE = np.dtype("<i2")
_BE = np.dtype(">i2")
_PCM_DTYPE = {Encoding.PCM16LE: _LE, Encoding.PCM16BE: _BE}
_DECODE_I16 = {Encoding.ULAW: g711.ULAW_DECODE, Encoding.ALAW: g711.ALAW_DECODE}
_DECODE_F32 = {Encoding.ULAW: g711.ULAW_DECODE_F32, Encoding.ALAW: g711.ALAW_DECODE_F32}
_ENCODE = {Encoding.ULAW: g711.ULAW_ENCODE, Encoding.ALAW: g711.ALAW_ENCODE}
_CROSS = {
    (Encoding.ULAW, Encoding.ALAW): g711.ULAW_TO_ALAW,
    (Encoding.ALAW, Encoding.ULAW): g711.ALAW_TO_ULAW,
}

_Samples = npt.NDArray[np.int16]
_Encoder = Callable[[_Samples], bytes]


def _encoder(encoding: Encoding) -> _Encoder:
    """int16 samples (native order) -> bytes in ``encoding``."""
    if encoding is Encoding.PCM16LE:
        return lambda s: s.astype(_LE, copy=False).tobytes()
    if encoding is Encoding.PCM16BE:
        return lambda s: s.astype(_BE).tobytes()
    table = _ENCODE[encoding]
    # mode="wrap" maps a negative int16 index to its uint16 bit pattern (-1 -> 65535).
    return lambda s: table.take(s, mode="wrap").tobytes()


# Resampling paths to G.711 run on samples offset by _BIAS (the resampler's
# ``bias``): a filtered sample y then leaves as the integer part of
# y + _BIAS, which is y rounded, plus 32768, and one lookup in "clip" mode
# saturates and encodes it. Three numpy calls per frame instead of six
# (round, two clamps, cast, encode, bytes). A PCM destination keeps the
# arithmetic: its table would be 128 KB, read at random, which on a busy
# server costs more in cache misses than the calls it saves.
_BIAS = 32768.5
_BIASED_DECODE_F32 = {enc: table + np.float32(_BIAS) for enc, table in _DECODE_F32.items()}
# Index v is the sample v - 32768; the G.711 tables are indexed by its
# 16-bit pattern, so their halves swap.
_BIASED_ENCODE = {enc: np.roll(table, 32768) for enc, table in _ENCODE.items()}
for _table in (*_BIASED_DECODE_F32.values(), *_BIASED_ENCODE.values()):
    _table.setflags(write=False)


def _float_encoder(encoding: Encoding, biased: bool) -> Callable[[npt.NDArray[np.float32]], bytes]:
    """Filtered float samples (carrying _BIAS when ``biased``: G.711 only,
    see above) -> rounded, saturated -> bytes in ``encoding``."""
    if biased:
        table = _BIASED_ENCODE[encoding]
        return lambda y: table.take(y.astype(np.int32), mode="clip").tobytes()
    if encoding is Encoding.PCM16LE and np.dtype(np.int16) == _LE:
        return lambda y: to_int16(y).tobytes()  # native order already: one call fewer
    encode = _encoder(encoding)
    return lambda y: encode(to_int16(y))


class Transcoder:
    """Convert a stream of audio from ``src`` to ``dst`` format, frame by frame."""

    __slots__ = (
        "_biased",
        "_carry",
        "_carry_odd",
        "_encode_float",
        "_impl",
        "_resampler",
        "dst",
        "passthrough",
        "src",
    )

    def __init__(self, src: AudioFormat, dst: AudioFormat, *, carry_odd_byte: bool = False) -> None:
        if not isinstance(src, AudioFormat) or not isinstance(dst, AudioFormat):
            raise LocalProtocolError("src and dst must be AudioFormat instances")
        self.src = src
        self.dst = dst
        self.passthrough = src == dst
        self._carry_odd = bool(carry_odd_byte) and src.encoding.bytes_per_sample == 2
        self._carry = b""
        self._resampler: StreamingResampler | None = None
        self._biased = dst.encoding in _BIASED_ENCODE  # the resampling path's, see above
        if src.sample_rate != dst.sample_rate:
            bias = _BIAS if self._biased else 0.0
            self._resampler = StreamingResampler(src.sample_rate, dst.sample_rate, bias=bias)
        self._encode_float: Callable[[npt.NDArray[np.float32]], bytes] = _float_encoder(
            dst.encoding, self._biased
        )
        self._impl = self._build()

    @property
    def delay_seconds(self) -> float:
        """Algorithmic delay the resampling adds (0 when the rates match)."""
        return 0.0 if self._resampler is None else self._resampler.delay_seconds

    def convert(self, data: bytes) -> bytes:
        """Convert one chunk; returns the audio ready so far in ``dst`` format."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise LocalProtocolError(f"audio must be bytes, not {type(data).__name__}")
        if self._carry_odd:
            data = self._take_carry(data)
        elif len(data) & 1 and self.src.encoding.bytes_per_sample == 2:
            raise LocalProtocolError(f"PCM16 audio needs an even byte count, got {len(data)}")
        return self._impl(data)

    def flush(self) -> bytes:
        """End of stream: return what the resampler still holds and reset."""
        self._carry = b""
        if self._resampler is None:
            return b""
        return self._encode_float(self._resampler.flush_float())

    # -- construction ---------------------------------------------------------

    def _build(self) -> Callable[[Any], bytes]:
        src, dst = self.src.encoding, self.dst.encoding
        if self.passthrough:
            return lambda data: data
        encode = _encoder(dst)
        resampler = self._resampler
        if resampler is None:
            if (src, dst) in _CROSS:
                cross = _CROSS[src, dst]
                return lambda data: cross.take(np.frombuffer(data, np.uint8)).tobytes()
            if src in _PCM_DTYPE:
                dtype = _PCM_DTYPE[src]
                return lambda data: encode(np.frombuffer(data, dtype).astype(np.int16, copy=False))
            dec = _DECODE_I16[src]
            return lambda data: encode(dec.take(np.frombuffer(data, np.uint8)))
        enc_float = self._encode_float
        process = resampler.process_float
        if src in _PCM_DTYPE:
            dtype = _PCM_DTYPE[src]
            return lambda data: enc_float(process(np.frombuffer(data, dtype)))
        table = (_BIASED_DECODE_F32 if self._biased else _DECODE_F32)[src]
        return lambda data: enc_float(process(np.frombuffer(data, np.uint8), table))

    def _take_carry(self, data: Any) -> Any:
        if self._carry:
            data = self._carry + bytes(data)
            self._carry = b""
        if len(data) & 1:
            self._carry = bytes(data[-1:])
            data = data[:-1]
        return data
