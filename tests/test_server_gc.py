"""The server freezes its start-up heap so full collections stay short (net/_gc.py)."""

from __future__ import annotations

import gc
import weakref

import pytest

from .test_server_http import exchange, running

pytestmark = pytest.mark.anyio


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def tracked(obj: object) -> bool:
    """True when the collector still visits ``obj`` (frozen objects are left out)."""
    return any(o is obj for o in gc.get_objects())


async def test_the_heap_before_start_is_frozen_while_serving_and_thawed_after() -> None:
    assert gc.get_freeze_count() == 0
    before = [object()]
    async with running() as port:
        assert gc.get_freeze_count() > 0
        assert not tracked(before)
        # What the server makes while it runs (a call's state) is collected as usual.
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
        reply = await exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 200 ")
    assert gc.get_freeze_count() == 0
    assert tracked(before)


async def test_the_heap_stays_frozen_until_the_last_of_two_servers_stops() -> None:
    async with running():
        async with running():
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
