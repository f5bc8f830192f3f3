"""WAV files in and out for the dial tool, with the stdlib ``wave`` module.

Input: 16-bit PCM, mono or stereo, any rate ``patter_core.audio`` can
resample (1 kHz to 192 kHz); stereo is mixed down to mono and everything is
resampled to 8 kHz and encoded to G.711 μ-law, the format Twilio carries.
Output: 16-bit mono PCM at 8 kHz (what a phone line plays).
"""

from __future__ import annotations

import wave

import numpy as np

from patter_core import PatterError
from patter_core.audio._g711 import ulaw_encode
from patter_core.audio._resample import resample_buffer

__all__ = ["WavError", "read_wav_as_ulaw", "write_wav_pcm16"]

# A call plays a few minutes at most; ten minutes of 48 kHz stereo is about
# 110 MiB of samples, so bigger files are refused before they are read.
MAX_WAV_SECONDS = 600.0
TELEPHONE_RATE = 8000


class WavError(PatterError):
    """The file is not a WAV we can play (one line, for the command line)."""


def read_wav_as_ulaw(path: str) -> bytes:
    """The file's audio as μ-law 8 kHz mono bytes (8000 bytes a second)."""
    try:
        with wave.open(path, "rb") as wav:
            channels = wav.getnchannels()
            width = wav.getsampwidth()
            rate = wav.getframerate()
            frames = wav.getnframes()
            if width != 2:
                raise WavError(f"{path}: {8 * width}-bit samples; only 16-bit PCM is supported")
            if channels not in (1, 2):
                raise WavError(f"{path}: {channels} channels; only mono or stereo is supported")
            if not 1000 <= rate <= 192000:
                raise WavError(f"{path}: sample rate {rate} Hz is outside 1000..192000")
            if frames == 0:
                raise WavError(f"{path}: the file holds no audio (0 samples)")
            if frames > MAX_WAV_SECONDS * rate:
                raise WavError(f"{path}: longer than {MAX_WAV_SECONDS:.0f} s")
            raw = wav.readframes(frames)
    except WavError:
        raise
    except FileNotFoundError:
        raise WavError(f"{path}: no such file") from None
    except (wave.Error, EOFError) as exc:
        # wave raises wave.Error for a non-RIFF file or a compressed format
        # and EOFError for a truncated header.
        raise WavError(f"{path}: not a PCM WAV file ({exc or 'truncated'})") from None
    except OSError as exc:
        raise WavError(f"{path}: cannot read ({exc.strerror or exc})") from None
    usable = len(raw) - len(raw) % (2 * channels)  # a truncated last frame is dropped
    # wave hands frames over in native byte order (it swaps on big-endian
    # machines); the codecs take little-endian.
    samples = np.frombuffer(raw[:usable], dtype=np.int16)
    if channels == 2:
        # Mix to mono in 32 bits so two loud channels do not wrap around.
        mixed = samples.reshape(-1, 2).astype(np.int32).sum(axis=1) // 2
        samples = mixed.astype("<i2")
    pcm = samples.astype("<i2").tobytes()
    if rate != TELEPHONE_RATE:
        pcm = resample_buffer(pcm, rate, TELEPHONE_RATE)
    return ulaw_encode(pcm)


def write_wav_pcm16(path: str, pcm: bytes, *, sample_rate: int = TELEPHONE_RATE) -> None:
    """Write mono 16-bit little-endian ``pcm`` as a WAV file."""
    with wave.open(path, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(np.frombuffer(pcm, dtype="<i2").astype(np.int16).tobytes())
