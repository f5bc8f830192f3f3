"""One task for the idle and send timeouts of every WebSocket of a server.

A guard task per socket costs a call two tasks (the carrier's socket and
the provider's), each with its task-group handle, events and cancel scope:
~4.4 KB apiece on asyncio, for a task that wakes once per timeout period.
:class:`SocketGuard` keeps the sockets in a heap by when each must be
looked at next (:meth:`WebSocket.guard_check` decides by the core's
``next_look``, as for a socket's own :meth:`WebSocket.guard`), sleeps until the first, and starts the close
that is due in a task of its own, so a slow close never delays another
socket's deadline. The heap holds weak references: a socket that is
dropped leaves at its next look, without being told.
"""

from __future__ import annotations

import heapq
import math
import weakref
from collections.abc import Awaitable, Callable
from time import monotonic

import anyio

from ._websocket import WebSocket

__all__ = ["SocketGuard"]


class SocketGuard:
    """Watch any number of WebSockets from the task that runs :meth:`run`."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, weakref.ref[WebSocket]]] = []
        self._count = 0  # ties in the heap: first watched, first looked at
        self._due = math.inf  # when run() looks next
        self._changed = anyio.Event()

    def __len__(self) -> int:
        """Sockets in the heap (closed ones leave at their next look)."""
        return len(self._heap)

    def watch(self, ws: WebSocket) -> None:
        """Enforce ``ws``'s timeouts until it closes (once per socket)."""
        ws.start_guard()
        self._schedule(ws, monotonic())  # nothing is due at the start

    def _schedule(self, ws: WebSocket, now: float) -> Callable[[], Awaitable[None]] | None:
        """Put ``ws`` back in the heap for its next look; or return the
        close that is due (None too once it is closed: it leaves)."""
        check = ws.guard_check(now)
        if isinstance(check, float):
            self._count += 1
            heapq.heappush(self._heap, (check, self._count, weakref.ref(ws)))
            if check < self._due:
                self._changed.set()
            return None
        if check is None:
            ws.end_guard()
        return check

    async def run(self) -> None:
        """Look at each socket when due, for as long as the task runs."""
        heap = self._heap
        async with anyio.create_task_group() as closing:
            while True:
                now = monotonic()
                # Taken out first, then looked at: a socket put back for
                # this very instant waits for the next pass, never loops here.
                due = []
                while heap and heap[0][0] <= now:
                    due.append(heapq.heappop(heap)[2])
                for ref in due:
                    ws = ref()
                    if ws is not None and (close := self._schedule(ws, now)) is not None:
                        closing.start_soon(_close, ws, close)
                self._due = heap[0][0] if heap else math.inf
                changed = self._changed = anyio.Event()
                with anyio.move_on_after(self._due - now):
                    await changed.wait()


async def _close(ws: WebSocket, close: Callable[[], Awaitable[None]]) -> None:
    try:
        await close()
    finally:
        ws.end_guard()
