"""Codecs from optional packages, handed to the core's media streams.

The core decodes G.711 and L16 by itself. A Telnyx leg streams another
codec only when Telnyx cannot transcode the call (PROTOCOLS.md §4.4, "Codec
fallback"): an HD SIP or WebRTC leg in G.722, Opus or AMR-WB. G.722 is
decoded when the optional ``g722`` package (sippy's libg722 bindings,
``pip install 'patter-local[g722]'``) is installed; Opus and AMR-WB are not
(no decoder installs without a system library), so such a leg is refused
with a log line naming the codecs it must use.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from patter_core.audio import PCM16_16K
from patter_core.media import PayloadDecoder

__all__ = ["g722_encoder", "optional_decoders"]

# G.722 at 64 kbit/s, the mode RTP carries (RFC 3551: 16 kHz audio).
_G722_RATE = 16000
_G722_BITRATE = 64000


def _g722() -> Any | None:
    try:
        import G722  # type: ignore[import-not-found]
    except ImportError:
        return None
    return G722


def _to_le(samples: Any) -> bytes:
    """The library's native-order int16 array as PCM16LE bytes."""
    array = np.frombuffer(samples, dtype=np.int16)
    if sys.byteorder != "little":  # pragma: no cover - x86 and ARM are little-endian
        array = array.byteswap()
    return array.tobytes()


def optional_decoders() -> dict[str, PayloadDecoder]:
    """``{"g722": ...}`` when the ``g722`` package is installed, else ``{}``."""
    module = _g722()
    if module is None:
        return {}

    def new() -> Callable[[bytes], bytes]:
        codec = module.G722(_G722_RATE, _G722_BITRATE)
        return lambda payload: _to_le(codec.decode(payload))

    return {"g722": PayloadDecoder(output=PCM16_16K, new=new)}


def g722_encoder() -> Callable[[bytes], bytes] | None:
    """PCM16LE 16 kHz -> G.722 (for ``dial``'s codec fallback), or None without the package."""
    module = _g722()
    if module is None:
        return None
    codec = module.G722(_G722_RATE, _G722_BITRATE)
    return lambda pcm: bytes(codec.encode(np.frombuffer(pcm, dtype="<i2").astype(np.int16)))
