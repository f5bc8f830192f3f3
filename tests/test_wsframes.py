"""The core's WebSocket frame reader and builder, against wsproto as the
oracle: whatever wsproto writes, the reader reads as the same messages, in
any split of the byte stream; whatever the builder writes, wsproto reads
back; each framing violation gets the close code RFC 6455 section 7.4.1
gives it."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage

from patter_core.http._wsframes import (
    _NUMPY_MASK_FROM,
    ControlFrame,
    FrameError,
    FrameReader,
    _unmask,
    frame,
)

MASK = b"\x37\xfa\x21\x3d"


def read_all(reader: FrameReader, chunks: list[bytes]) -> list[object]:
    out: list[object] = []
    for chunk in chunks:
        reader.receive_data(chunk)
        while (event := reader.next_event()) is not None:
            out.append(event)
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return [p for p in pieces if p]


# A message: text or bytes, sent whole or in fragments, maybe with a ping
# in between.
messages = st.lists(
    st.tuples(
        st.one_of(st.text(max_size=300), st.binary(max_size=300)),
        st.lists(st.integers(0, 300), max_size=3),  # fragment boundaries
        st.booleans(),  # a ping after the first fragment
    ),
    max_size=6,
)


def wsproto_frames(sender: Connection, items: list[tuple[str | bytes, list[int], bool]]) -> bytes:
    wire = b""
    for data, cuts, ping in items:
        bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
        parts = [data[a:b] for a, b in itertools.pairwise(bounds)] or [data[:0]]
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            event: Message = (  # type: ignore[type-arg]
                TextMessage(data=part, message_finished=last)
                if isinstance(part, str)
                else BytesMessage(data=part, message_finished=last)
            )
            wire += sender.send(event)
            if ping and i == 0:
                wire += sender.send(Ping(payload=b"hi"))
    return wire


@settings(max_examples=300, deadline=None)
@given(items=messages, cuts=st.lists(st.integers(0, 5000), max_size=8))
def test_a_server_reads_what_a_wsproto_client_writes(
    items: list[tuple[str | bytes, list[int], bool]], cuts: list[int]
) -> None:
    wire = wsproto_frames(Connection(ConnectionType.CLIENT), items)
    got = read_all(FrameReader(client=False, max_message_bytes=1 << 20), split(wire, cuts))
    data_events = [e for e in got if not isinstance(e, ControlFrame)]
    assert data_events == [data for data, _, _ in items]
    pings = [e for e in got if isinstance(e, ControlFrame)]
    assert len(pings) == sum(1 for _, _, ping in items if ping)
    for ping in pings:
        # The control frame is handed on byte for byte: wsproto reads it.
        server = Connection(ConnectionType.SERVER)
        server.receive_data(ping.raw)
        assert [type(e) for e in server.events()] == [Ping]


@settings(max_examples=200, deadline=None)
@given(items=messages, cuts=st.lists(st.integers(0, 5000), max_size=8))
def test_a_client_reads_what_a_wsproto_server_writes(
    items: list[tuple[str | bytes, list[int], bool]], cuts: list[int]
) -> None:
    wire = wsproto_frames(Connection(ConnectionType.SERVER), items)
    got = read_all(FrameReader(client=True, max_message_bytes=1 << 20), split(wire, cuts))
    assert [e for e in got if not isinstance(e, ControlFrame)] == [d for d, _, _ in items]


@settings(max_examples=200, deadline=None)
@given(data=st.one_of(st.text(max_size=70000), st.binary(max_size=70000)), masked=st.booleans())
def test_wsproto_reads_what_the_builder_writes(data: str | bytes, masked: bool) -> None:
    reader = Connection(ConnectionType.SERVER if masked else ConnectionType.CLIENT)
    reader.receive_data(frame(data, MASK if masked else None))
    events = list(reader.events())
    assert all(isinstance(e, Message) for e in events)
    got = ("" if isinstance(data, str) else b"").join(e.data for e in events)  # type: ignore[attr-defined]
    assert got == data
    assert events[-1].message_finished  # type: ignore[attr-defined]


def test_builder_bytes_are_exact() -> None:
    assert frame("hi") == b"\x81\x02hi"
    assert frame(b"\x00\x01") == b"\x82\x02\x00\x01"
    assert frame("hi", MASK) == b"\x81\x82" + MASK + bytes([ord("h") ^ MASK[0], ord("i") ^ MASK[1]])
    assert frame(b"x" * 126)[:4] == b"\x82\x7e\x00\x7e"
    assert frame(b"x" * 65536)[:10] == b"\x82\x7f" + struct.pack("!Q", 65536)


def _raw(
    first: int, payload: bytes, *, mask: bytes | None = MASK, length: int | None = None
) -> bytes:
    size = len(payload) if length is None else length
    flag = 0x80 if mask is not None else 0
    if size < 126:
        head = bytes([first, flag | size])
    elif size < 65536:
        head = bytes([first, flag | 126]) + struct.pack("!H", size)
    else:
        head = bytes([first, flag | 127]) + struct.pack("!Q", size)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (_raw(0x81, b"hi", mask=None), 1002),  # a client must mask
        (_raw(0xC1, b"hi"), 1002),  # RSV1 without an extension
        (_raw(0x83, b"hi"), 1002),  # reserved data opcode
        (_raw(0x8B, b""), 1002),  # reserved control opcode
        (_raw(0x80, b"hi"), 1002),  # a continuation with no message
        (_raw(0x01, b"h") + _raw(0x81, b"i"), 1002),  # a new message inside one
        (_raw(0x09, b"p"), 1002),  # a fragmented ping
        (_raw(0x89, b"p" * 126), 1002),  # a ping over 125 bytes
        (_raw(0x81, b"\xff\xfe"), 1007),  # not UTF-8
        (_raw(0x01, b"\xe2\x82") + _raw(0x80, b"\x28"), 1007),  # broken across fragments
        (_raw(0x82, b"", length=1001), 1009),  # refused from the header alone
        (_raw(0x02, b"x" * 600) + _raw(0x80, b"x" * 401), 1009),  # too big once joined
        (bytes([0x82, 0xFF]) + b"\x80" + b"\x00" * 7 + MASK, 1002),  # 64-bit length, top bit
    ],
)
def test_violations_close_with_their_code(wire: bytes, code: int) -> None:
    reader = FrameReader(client=False, max_message_bytes=1000)
    got = read_all(reader, [wire])
    assert len(got) == 1 and isinstance(got[0], FrameError)
    assert got[0].code == code
    # Nothing after a violation.
    reader.receive_data(_raw(0x81, b"ok"))
    assert reader.next_event() is None


def test_a_server_frame_may_not_be_masked() -> None:
    got = read_all(FrameReader(client=True, max_message_bytes=1000), [_raw(0x81, b"hi")])
    assert got == [FrameError(1002, "masked frame from a server")]


def test_a_message_of_exactly_the_limit_passes() -> None:
    got = read_all(FrameReader(client=False, max_message_bytes=1000), [_raw(0x82, b"x" * 1000)])
    assert got == [b"x" * 1000]


def test_a_close_frame_is_handed_on_whole() -> None:
    close = Connection(ConnectionType.CLIENT).send(CloseConnection(code=1000, reason="bye"))
    reader = FrameReader(client=False, max_message_bytes=1000)
    assert read_all(reader, [_raw(0x81, b"a") + close[:3], close[3:]]) == ["a", ControlFrame(close)]
    assert reader.buffered == 0


def test_unmasking_agrees_with_wsproto_on_every_length() -> None:
    # The reader's unmasking agrees with wsproto's on every payload length
    # around the 4-byte mask period, on both ways of masking (Python's
    # integers for short payloads, numpy's words from _NUMPY_MASK_FROM on).
    edge = _NUMPY_MASK_FROM
    for size in [*range(0, 20), *range(edge - 9, edge + 9), 1333, 4099, 70001]:
        payload = bytes(i * 7 % 256 for i in range(size))
        sender = Connection(ConnectionType.CLIENT)
        wire = sender.send(BytesMessage(data=payload))
        got = read_all(FrameReader(client=False, max_message_bytes=1 << 17), [wire])
        assert got == [payload]


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=3000), key=st.binary(min_size=4, max_size=4))
def test_masking_is_the_bytewise_xor_with_the_key(payload: bytes, key: bytes) -> None:
    # RFC 6455 section 5.3: octet i XOR octet i mod 4 of the key.
    want = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    assert _unmask(payload, key) == want
    if payload:  # the masked frame carries the same bytes
        assert frame(payload, key)[-len(payload) :] == want
