"""A lock for the tasks of one event loop that costs nothing when free.

anyio's ``Lock`` looks up the current task on every acquire and release
(to name its owner and refuse re-entry); a call takes two locks per
message, so that bookkeeping was a few per cent of the server's time
(DESIGN.md, "The hot path"). :class:`FastLock` keeps a flag and a queue of
waiters: a free lock is taken with one attribute test, and a release hands
the lock straight to the next waiter, first come first served. It is not
re-entrant and does not check its owner: it guards a few lines of our own
code, never the application's.
"""

from __future__ import annotations

from collections import deque

import anyio

__all__ = ["FastLock"]


class FastLock:
    """A non-reentrant FIFO lock (see the module's notes)."""

    __slots__ = ("_held", "_waiters")

    def __init__(self) -> None:
        self._held = False
        self._waiters: deque[anyio.Event] = deque()

    def locked(self) -> bool:
        return self._held

    def acquire_nowait(self) -> bool:
        """Take the lock if it is free (no checkpoint); False if it is not."""
        if self._held:
            return False
        self._held = True
        return True

    async def acquire(self) -> None:
        if not self._held:
            self._held = True
            return
        handed = anyio.Event()
        self._waiters.append(handed)
        try:
            await handed.wait()
        except BaseException:
            if handed.is_set():
                # The lock was handed to us as we were cancelled: pass it on.
                self.release()
            else:
                self._waiters.remove(handed)
            raise

    def release(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()  # the next waiter holds it now
        else:
            self._held = False

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()
