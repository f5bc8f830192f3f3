"""Local call recordings: the stereo timeline and the WAV header (pure)."""

from ._stereo import StereoRecorder

__all__ = ["StereoRecorder"]
