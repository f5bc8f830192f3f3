"""Local call recordings: the stereo timeline and the WAV header (pure)."""

from ._stereo import StereoRecorder
from ._wav import WAV_HEADER_BYTES, wav_header, wav_sizes

__all__ = ["WAV_HEADER_BYTES", "StereoRecorder", "wav_header", "wav_sizes"]
