"""``dial --carrier telnyx`` playing Telnyx as its guide documents it, against
the project's own server on 127.0.0.1: error frames, duplicate webhooks and
the codec fallback (PROTOCOLS.md §4.4, re-checked 2026-12-06)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from patter_anyio.dial._call import DialOptions
from tests.test_dial_telnyx import PUBLIC, SEED, _serve_and_dial, free_port, tone_in

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


def options(**overrides: Any) -> DialOptions:
    base = DialOptions(
        carrier="telnyx",
        telnyx_api_port=free_port(),
        telnyx_signing_key=SEED,
        from_number="+14155550100",
        to_number="+18005550199",
        tone_hz=300,
        tone_seconds=0.6,
        tone_burst_s=None,
        duration=2.4,
        timeout=5,
    )
    return replace(base, **overrides)


async def test_guide_error_frame_mid_call_is_counted_and_the_call_goes_on() -> None:
    report, _, ends = await _serve_and_dial(options(telnyx_error_at=0.3), public_key=PUBLIC)
    assert report is not None and report.errors_sent == 1
    # The call ran to its end: the carrier stopped it, not a protocol error.
    assert report.ended_by == "carrier"
    (end,) = ends
    assert end["reason"] == "carrier_stop" and end["carrier_errors"] == 1
    # And the echo after the error is intact.
    hz, snr = tone_in(report.audio)
    assert abs(hz - 300) < 5 and snr >= 30, (hz, snr)


async def test_duplicated_webhooks_send_one_command_each() -> None:
    report, _, ends = await _serve_and_dial(
        options(telnyx_duplicate_webhooks=True), public_key=PUBLIC
    )
    assert report is not None
    # call.initiated and call.answered came twice each: one answer, one stream.
    assert [c.action for c in report.carrier_commands] == ["answer", "streaming_start"]
    assert all(isinstance(c.body.get("command_id"), str) for c in report.carrier_commands)
    assert len(ends) == 1 and ends[0]["reason"] == "carrier_stop"


async def test_pcmu_fallback_is_answered_in_the_bidirectional_codec() -> None:
    """L16 asked for, PCMU arrives: the agent still sends L16 16 kHz, and it sounds right."""
    report, _, ends = await _serve_and_dial(
        options(telnyx_fallback_codec="PCMU"), public_key=PUBLIC, codec="L16"
    )
    assert report is not None
    start = report.carrier_commands[1].body
    assert (start["stream_codec"], start["stream_bidirectional_codec"]) == ("L16", "L16")
    assert start["stream_bidirectional_sampling_rate"] == 16000
    # dial decodes what comes back as L16 16 kHz big-endian: PCMU bytes (or
    # L16 at another rate) would not be a clean 300 Hz tone.
    hz, snr = tone_in(report.audio)
    assert abs(hz - 300) < 5 and snr >= 30, (hz, snr)
    assert report.frames_received > 0
    assert len(ends) == 1 and ends[0]["reason"] == "carrier_stop"


async def test_g722_fallback_is_decoded_and_answered_in_pcmu() -> None:
    """An HD leg Telnyx cannot transcode streams G.722: decoded (optional g722
    package), answered in the PCMU the stream was started with."""
    pytest.importorskip("G722")
    report, _, ends = await _serve_and_dial(
        options(telnyx_fallback_codec="G722"), public_key=PUBLIC
    )
    assert report is not None
    start = report.carrier_commands[1].body
    assert (start["stream_codec"], start["stream_bidirectional_codec"]) == ("PCMU", "PCMU")
    hz, snr = tone_in(report.audio)
    assert abs(hz - 300) < 5 and snr >= 30, (hz, snr)
    assert len(ends) == 1 and ends[0]["reason"] == "carrier_stop"
