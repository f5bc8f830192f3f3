"""Counting live connections per client, with a hard ceiling.

A media WebSocket holds a provider session that costs money, so one client
address may hold at most ``limit`` of them at once. The limiter is a plain
counter: the runtime calls :meth:`ConnectionLimiter.acquire` before it
accepts an upgrade and :meth:`ConnectionLimiter.release` when the socket
closes (in a ``finally``), so no clock is needed.
"""

from __future__ import annotations

from .._errors import LocalProtocolError

__all__ = ["ConnectionLimiter"]


class ConnectionLimiter:
    """At most ``limit`` concurrent holders per key (a client IP)."""

    __slots__ = ("_counts", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise LocalProtocolError("limit must be at least 1")
        self.limit = limit
        self._counts: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        """Take a slot for ``key``; False when it already holds ``limit``."""
        count = self._counts.get(key, 0)
        if count >= self.limit:
            return False
        self._counts[key] = count + 1
        return True

    def release(self, key: str) -> None:
        count = self._counts.get(key, 0)
        if count <= 0:
            raise LocalProtocolError(f"release without acquire for {key!r}")
        if count == 1:
            # Drop the entry so the table does not grow with every IP ever seen.
            del self._counts[key]
        else:
            self._counts[key] = count - 1

    def count(self, key: str) -> int:
        return self._counts.get(key, 0)

    def __len__(self) -> int:
        """How many keys hold at least one slot."""
        return len(self._counts)
