"""Audio format descriptors used on every leg of a call."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .._errors import LocalProtocolError

__all__ = ["ALAW_8K", "PCM16_16K", "PCM16_24K", "ULAW_8K", "AudioFormat", "Encoding"]


class Encoding(enum.Enum):
    """Sample encodings that cross our sockets."""

    PCM16LE = "pcm16le"  # 16-bit signed little-endian (OpenAI, ElevenLabs pcm_*, our bus)
    PCM16BE = "pcm16be"  # 16-bit signed big-endian (RTP L16 per RFC 3551)
    ULAW = "ulaw"  # G.711 mu-law, one byte per sample
    ALAW = "alaw"  # G.711 A-law, one byte per sample

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self in (Encoding.PCM16LE, Encoding.PCM16BE) else 1


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioFormat:
    """An encoding and a sample rate; always mono."""

    encoding: Encoding
    sample_rate: int

    def __post_init__(self) -> None:
        if not isinstance(self.encoding, Encoding):
            raise LocalProtocolError(f"encoding must be an Encoding, not {self.encoding!r}")
        if not isinstance(self.sample_rate, int) or not 1000 <= self.sample_rate <= 192000:
            raise LocalProtocolError(
                f"sample_rate must be an int in 1000..192000, not {self.sample_rate!r}"
            )

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * self.encoding.bytes_per_sample

    def bytes_for_ms(self, ms: int) -> int:
        """Bytes holding ``ms`` milliseconds (exact for 8/16/24/48 kHz at 20 ms)."""
        return self.sample_rate * ms // 1000 * self.encoding.bytes_per_sample

    def ms_for_bytes(self, nbytes: int) -> float:
        return nbytes * 1000.0 / self.bytes_per_second


PCM16_16K = AudioFormat(encoding=Encoding.PCM16LE, sample_rate=16000)  # the canonical bus
PCM16_24K = AudioFormat(encoding=Encoding.PCM16LE, sample_rate=24000)  # OpenAI Realtime audio/pcm
ULAW_8K = AudioFormat(encoding=Encoding.ULAW, sample_rate=8000)  # Twilio, PCMU
ALAW_8K = AudioFormat(encoding=Encoding.ALAW, sample_rate=8000)  # PCMA
