"""The SSE parser: spec examples, awkward chunking, limits, split invariance."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core import RemoteProtocolError
from patter_core.providers.pipeline._sse import SSEEvent, SSEParser


def parse_whole(data: bytes) -> list[SSEEvent]:
    return SSEParser().feed(data)


def parse_split(data: bytes, cuts: list[int]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    last = 0
    for cut in sorted(set(cuts)):
        events += parser.feed(data[last:cut])
        last = cut
    return events + parser.feed(data[last:])


def test_spec_example_multiline_data() -> None:
    # WHATWG HTML 9.2.6: "data: YHOO\ndata: +2\ndata: 10\n\n" is one event "YHOO\n+2\n10".
    assert parse_whole(b"data: YHOO\ndata: +2\ndata: 10\n\n") == [SSEEvent(data="YHOO\n+2\n10")]


def test_spec_example_fields_and_comments() -> None:
    stream = (
        b": test stream\n\ndata: first event\nid: 1\n\n"
        b"data:second event\nid\n\ndata:  third event\n\n"
    )
    assert parse_whole(stream) == [
        SSEEvent(data="first event", id="1"),
        SSEEvent(data="second event", id=""),
        SSEEvent(data=" third event", id=""),
    ]


def test_event_type_retry_and_empty_data() -> None:
    stream = b"event: ping\nretry: 3000\ndata\n\nevent: x\n\ndata:\ndata:\n\n"
    assert parse_whole(stream) == [
        SSEEvent(data="", event="ping", retry=3000),
        SSEEvent(data="\n"),
    ]


def test_line_endings_cr_crlf_lf() -> None:
    expected = [SSEEvent(data="a"), SSEEvent(data="b"), SSEEvent(data="c")]
    assert parse_whole(b"data: a\r\rdata: b\r\n\r\ndata: c\n\n") == expected


def test_cr_then_lf_in_next_chunk_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n\r\n") == [SSEEvent(data="a\nb")]


def test_utf8_split_inside_a_character() -> None:
    data = "data: héllo €\n\n".encode()
    cut = data.index(b"\xe2") + 1
    assert parse_split(data, [cut, cut + 1]) == [SSEEvent(data="héllo €")]


def test_bom_dropped_once_even_when_split() -> None:
    assert parse_split(b"\xef\xbb\xbfdata: x\n\n", [1, 2]) == [SSEEvent(data="x")]


def test_incomplete_event_at_end_is_not_dispatched() -> None:
    assert parse_whole(b"data: half") == []


def test_done_sentinel_is_plain_data() -> None:
    assert parse_whole(b"data: [DONE]\n\n") == [SSEEvent(data="[DONE]")]


def test_line_limit() -> None:
    parser = SSEParser(max_line_bytes=16)
    with pytest.raises(RemoteProtocolError):
        parser.feed(b"data: " + b"x" * 32)
    with pytest.raises(RemoteProtocolError):
        SSEParser(max_line_bytes=16).feed(b"data: " + b"x" * 32 + b"\n")


def test_event_limit() -> None:
    parser = SSEParser(max_event_bytes=20)
    with pytest.raises(RemoteProtocolError):
        parser.feed(b"data: 1234567890\n" * 3)


_lines = st.lists(
    st.one_of(
        st.sampled_from(["data: [DONE]", ": keep-alive", "event: delta", "id: 7", "retry: 10", ""]),
        st.text(alphabet="dat:evn é€\U0001f600x", max_size=12).map(lambda s: "data:" + s),
        st.text(max_size=8),
    ),
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(
    lines=_lines,
    ending=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_any_split_gives_the_same_events(lines: list[str], ending: bytes, cuts: list[int]) -> None:
    data = ending.join(line.replace("\r", "").replace("\n", "").encode() for line in lines)
    data += ending + ending
    assert parse_split(data, cuts) == parse_whole(data)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=8))
def test_arbitrary_bytes_never_crash_and_split_is_invariant(data: bytes, cuts: list[int]) -> None:
    assert parse_split(data, cuts) == parse_whole(data)
