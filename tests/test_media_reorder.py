"""Property tests of the Telnyx reorder window, through the public stream."""

from __future__ import annotations

import base64
import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core.media import Media, MediaLimits, Stop, TelnyxMediaStream

START = json.dumps(
    {
        "event": "start",
        "stream_id": "S1",
        "start": {
            "call_control_id": "v3:x",
            "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
        },
    }
)


def frame(chunk: int) -> str:
    payload = chunk.to_bytes(2, "big") * 80  # 160 bytes that say which chunk they are
    return json.dumps(
        {
            "event": "media",
            "stream_id": "S1",
            "media": {
                "track": "inbound",
                "chunk": str(chunk),
                "timestamp": str(20 * chunk),
                "payload": base64.b64encode(payload).decode(),
            },
        }
    )


def run(window: int, arrivals: list[int]) -> tuple[TelnyxMediaStream, list[Media]]:
    stream = TelnyxMediaStream(limits=MediaLimits(reorder_window=window))
    stream.receive(START)
    out: list[Media] = []
    for chunk in arrivals:
        out += [e for e in stream.receive(frame(chunk)) if isinstance(e, Media)]
    events = stream.receive('{"event":"stop"}')
    assert events[-1] == Stop()
    out += [e for e in events if isinstance(e, Media)]
    return stream, out


@st.composite
def shuffled_within_window(draw: st.DrawFn) -> tuple[int, int, list[int], int]:
    """Frames 1..n permuted inside blocks of window+1, with some duplicates mixed in."""
    window = draw(st.integers(0, 6))
    n = draw(st.integers(0, 50))
    arrivals: list[int] = []
    for lo in range(1, n + 1, window + 1):
        block = list(range(lo, min(lo + window + 1, n + 1)))
        arrivals += draw(st.permutations(block))
    duplicates = draw(st.lists(st.integers(0, max(len(arrivals) - 1, 0)), max_size=8))
    if not arrivals:
        duplicates = []
    # A copy of a frame re-sent a little after the original (never before it).
    for index in sorted(duplicates, reverse=True):
        later = draw(st.integers(index + 1, min(index + 1 + 2 * window, len(arrivals))))
        arrivals.insert(later, arrivals[index])
    return window, n, arrivals, len(duplicates)


@settings(max_examples=300, deadline=None)
@given(shuffled_within_window())
def test_reordering_within_the_window_restores_the_audio(
    case: tuple[int, int, list[int], int],
) -> None:
    window, n, arrivals, duplicates = case
    stream, out = run(window, arrivals)
    assert [m.chunk for m in out] == list(range(1, n + 1))
    assert b"".join(m.payload for m in out) == b"".join(
        c.to_bytes(2, "big") * 80 for c in range(1, n + 1)
    )
    assert (stream.frames_late, stream.frames_lost) == (0, 0)
    assert stream.frames_duplicate == duplicates


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 6), st.lists(st.integers(0, 80), max_size=60))
def test_any_arrival_order_is_accounted_for(window: int, arrivals: list[int]) -> None:
    stream, out = run(window, arrivals)
    delivered = [m.chunk for m in out]
    # Strictly increasing: never a duplicate, never spliced back in time.
    assert all(a < b for a, b in itertools.pairwise(delivered))
    assert set(delivered) <= set(arrivals)
    # Every arrival is delivered, or counted as a duplicate or as late.
    assert len(delivered) + stream.frames_duplicate + stream.frames_late == len(arrivals)
    if delivered:
        # Every slot between the first and last delivered is delivered or lost.
        assert len(delivered) + stream.frames_lost == delivered[-1] - delivered[0] + 1
