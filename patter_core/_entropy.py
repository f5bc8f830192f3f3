"""Randomness and time, injected.

``patter_core`` never reads a clock and never draws random bytes itself: it is
handed a ``now`` (seconds, a float, on whatever monotonic or wall clock the
caller chooses -- each API says which) and, where it needs randomness (ids,
tokens, WebSocket masks), an object with a ``token_bytes`` method. The runtime
passes ``secrets``; tests pass a seeded fake so output is reproducible.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["CountingEntropy", "Entropy"]


class Entropy(Protocol):
    """Anything with ``token_bytes(n)``; the :mod:`secrets` module qualifies."""

    def token_bytes(self, nbytes: int) -> bytes: ...


class CountingEntropy:
    """A deterministic stand-in for tests and examples: never use for secrets.

    Returns successive bytes of a counter, so two runs give the same ids.
    """

    def __init__(self, seed: int = 0) -> None:
        self._counter = seed

    def token_bytes(self, nbytes: int) -> bytes:
        out = bytearray()
        while len(out) < nbytes:
            self._counter += 1
            out += self._counter.to_bytes(8, "big")
        return bytes(out[:nbytes])
