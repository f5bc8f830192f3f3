"""A RIFF/WAVE header for 16-bit PCM, so a finished utterance can be uploaded as a file.

Canonical layout (Microsoft RIFF, WAVE_FORMAT_PCM = 1): a 12-byte RIFF header,
a 16-byte ``fmt `` chunk and the ``data`` chunk; 44 bytes before the samples.
"""

from __future__ import annotations

import struct

from ..._errors import LocalProtocolError

__all__ = ["wav_bytes", "wav_header"]

_WAVE_FORMAT_PCM = 1
# The RIFF size fields are unsigned 32-bit: nothing larger fits in the header.
_MAX_DATA_BYTES = 0xFFFFFFFF - 36


def wav_header(data_bytes: int, *, sample_rate: int = 16000, channels: int = 1) -> bytes:
    """The 44-byte header of a 16-bit little-endian PCM file holding ``data_bytes``."""
    if not 0 <= data_bytes <= _MAX_DATA_BYTES or data_bytes % (2 * channels):
        raise LocalProtocolError(f"bad PCM16 data size {data_bytes} for {channels} channel(s)")
    block_align = 2 * channels
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,  # the size of everything after this field
        b"WAVE",
        b"fmt ",
        16,  # fmt chunk size for plain PCM
        _WAVE_FORMAT_PCM,
        channels,
        sample_rate,
        sample_rate * block_align,  # byte rate
        block_align,
        16,  # bits per sample
        b"data",
        data_bytes,
    )


def wav_bytes(pcm: bytes, *, sample_rate: int = 16000) -> bytes:
    """A complete mono WAV file around ``pcm`` (16-bit little-endian samples)."""
    return wav_header(len(pcm), sample_rate=sample_rate) + pcm
