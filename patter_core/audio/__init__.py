"""Audio: G.711 codecs, streaming resamplers, transcoders and framing (pure numpy)."""

from ._format import ALAW_8K, PCM16_16K, PCM16_24K, ULAW_8K, AudioFormat, Encoding

__all__ = ["ALAW_8K", "PCM16_16K", "PCM16_24K", "ULAW_8K", "AudioFormat", "Encoding"]
