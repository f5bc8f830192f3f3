"""Limits of a carrier media stream.

Every number is finite so that a misbehaving carrier (or something pretending
to be one) cannot make a stream object hold unbounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import LocalProtocolError

__all__ = ["MediaLimits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaLimits:
    """Bounds applied by :class:`TwilioMediaStream` and :class:`TelnyxMediaStream`."""

    #: Largest WebSocket message accepted, in UTF-8 bytes. A carrier media frame
    #: is about 250 bytes of JSON (20 ms of G.711) and a ``start`` frame with
    #: custom parameters a few kilobytes; 1 MiB leaves room for anything a
    #: carrier documents while refusing memory-exhaustion attempts (close 1009).
    max_message_bytes: int = 1 << 20

    #: Largest decoded audio payload of one incoming ``media`` frame. Carriers
    #: send 20 ms frames (160 bytes of G.711, 1920 bytes of L16 at 48 kHz); one
    #: second of the largest format we accept (L16 at 48 kHz = 96 000 bytes) is
    #: far beyond any real frame and still small (close 1009 above it).
    max_payload_bytes: int = 96_000

    #: Marks sent and not yet echoed. The bridge sends one mark per chunk of
    #: provider audio, and the carrier echoes it once that audio has played; even
    #: at one mark per 20 ms frame, 4096 marks cover over 80 s of queued speech.
    #: Past the limit the oldest mark is forgotten (its echo then moves nothing),
    #: which loses a little playback precision rather than failing the call.
    max_pending_marks: int = 4096

    #: Telnyx frames held to restore their order ("Media frame order is not
    #: guaranteed", PROTOCOLS.md section 4.4). A missing frame is waited for
    #: while at most this many later frames arrive: 4 frames is at most 80 ms of
    #: extra latency, paid only when a frame is actually out of order, and covers
    #: the small reorderings seen on one network path. A larger window recovers
    #: more reordering at the cost of more delay when a frame is really lost;
    #: 0 turns reordering off (out-of-order frames are then dropped as late).
    reorder_window: int = 4

    #: Telnyx DTMF frames "may arrive out of order" (PROTOCOLS.md section 4.4)
    #: and carry the stream's ``sequence_number``. A digit is held until this
    #: many later messages have been numbered past it (media flows at 50
    #: messages a second, so 10 is about 200 ms: nothing for a key press, and
    #: wide enough for the reordering of one network path). 0 delivers digits
    #: as they come.
    dtmf_reorder_window: int = 10

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_payload_bytes", "max_pending_marks"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LocalProtocolError(f"{name} must be a positive int, not {value!r}")
        window = self.reorder_window
        # 64 is the depth of the duplicate-detection memory (see _reorder.py).
        if not isinstance(window, int) or isinstance(window, bool) or not 0 <= window <= 64:
            raise LocalProtocolError(f"reorder_window must be an int in 0..64, not {window!r}")
        window = self.dtmf_reorder_window
        if not isinstance(window, int) or isinstance(window, bool) or not 0 <= window <= 1000:
            raise LocalProtocolError(
                f"dtmf_reorder_window must be an int in 0..1000, not {window!r}"
            )
