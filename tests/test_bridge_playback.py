"""The barge-in arithmetic: how much of each item the caller heard."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core.bridge._playback import Playback


def test_truncate_position_is_played_minus_item_start() -> None:
    playback = Playback()
    playback.chunk_sent("a", 0, 300)
    assert playback.mark_name("a", 300) == "1:a:300"
    playback.chunk_sent("b", 300, 500)
    playback.chunk_sent("b", 500, 900)
    assert playback.mark_name("b", 900) == "2:b:900"
    assert playback.interrupt(650) == [("b", 350)]  # "a" was heard whole
    assert not playback.accepts("a") and not playback.accepts("b")
    assert playback.accepts(None)  # named items only were cut
    assert playback.accepts("c")


def test_unnamed_audio_is_dropped_until_done_or_a_new_item() -> None:
    playback = Playback()
    playback.chunk_sent(None, 0, 100)
    assert playback.interrupt(40) == []  # nothing to name
    assert not playback.accepts(None)
    playback.response_done()
    assert playback.accepts(None)
    playback.chunk_sent(None, 0, 100)
    playback.interrupt(10)
    assert playback.accepts("new") and playback.accepts(None)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 500)), max_size=8),
    st.integers(-100, 5000),
)
def test_cuts_stay_within_what_was_sent(chunks: list[tuple[str, int]], played: int) -> None:
    playback = Playback()
    position = 0
    spans: dict[str, list[int]] = {}
    for item, length in chunks:
        playback.chunk_sent(item, position, position + length)
        spans.setdefault(item, [position, position])[1] = position + length
        position += length
    for item, heard in playback.interrupt(played):
        start, end = spans[item]
        assert 0 <= heard < end - start
        assert heard == min(max(played - start, 0), end - start)
