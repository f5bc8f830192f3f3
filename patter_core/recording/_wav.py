"""The RIFF/WAVE header of a 16-bit PCM file (the canonical 44-byte form).

A recording is written as it happens, before its length is known: the
header goes first with the sizes of an empty file, and :func:`wav_sizes`
gives the two size fields (and their offsets) to patch in at the end.
"""

from __future__ import annotations

import struct

__all__ = ["WAV_HEADER_BYTES", "wav_header", "wav_sizes"]

WAV_HEADER_BYTES = 44
#: RIFF sizes are 32-bit: a file stops growing here (about 3.7 hours of 8 kHz stereo).
MAX_DATA_BYTES = 0xFFFFFFFF - 36


def wav_header(*, sample_rate: int, channels: int, data_bytes: int = 0) -> bytes:
    block = channels * 2
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        # PCM (format 1), channels, rate, byte rate, block align, bits per sample.
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def wav_sizes(data_bytes: int) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
    """``(offset, bytes)`` of the RIFF size and the data size for a final length."""
    return ((4, struct.pack("<I", 36 + data_bytes)), (40, struct.pack("<I", data_bytes)))
