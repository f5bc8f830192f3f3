"""The server freezes its start-up heap so full collections stay short (net/_gc.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from patter_anyio.calls._app import WebhookApp
from patter_anyio.net._server import Server

from .test_server_http import SECRET, Events, exchange

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serving() -> AsyncIterator[int]:
    server = Server(WebhookApp(stream_secret=SECRET, hooks=Events().hooks()), port=0)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        try:
            yield port
        finally:
            server.stop()


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def tracked(obj: object) -> bool:
    """True when the collector still visits ``obj`` (frozen objects are left out)."""
    return any(o is obj for o in gc.get_objects())


async def test_the_heap_before_start_is_frozen_while_serving_and_thawed_after() -> None:
    assert gc.get_freeze_count() == 0
    before = [object()]
    async with serving() as port:
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
    async with serving():
        async with serving():
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
