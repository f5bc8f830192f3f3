"""Audio: G.711 codecs, streaming resamplers, transcoders, framing, the energy VAD (numpy).

The canonical bus is 16-bit little-endian mono PCM at 16 kHz
(:data:`PCM16_16K`). Each leg of a call gets a :class:`Transcoder` from its
own format to the bus and back; :class:`Framer` cuts provider audio into
carrier-sized frames; :class:`EnergyVad` finds a caller's utterances.
"""

from ._format import ALAW_8K, PCM16_16K, PCM16_24K, ULAW_8K, AudioFormat, Encoding
from ._framer import Framer
from ._resample import StreamingResampler
from ._transcode import Transcoder
from ._vad import EnergyVad, VadConfig, VadEvent, VadSpeechEnded, VadSpeechStarted

__all__ = [
    "ALAW_8K",
    "PCM16_16K",
    "PCM16_24K",
    "ULAW_8K",
    "AudioFormat",
    "Encoding",
    "EnergyVad",
    "Framer",
    "StreamingResampler",
    "Transcoder",
    "VadConfig",
    "VadEvent",
    "VadSpeechEnded",
    "VadSpeechStarted",
]
