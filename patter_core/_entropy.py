"""Randomness and time, injected.

``patter_core`` never reads a clock and never draws random bytes itself: it is
handed a ``now`` (seconds, a float, on whatever monotonic or wall clock the
caller chooses -- each API says which) and, where it needs randomness (ids,
tokens, WebSocket masks), an object with a ``token_bytes`` method. The runtime
passes ``secrets``; tests pass a seeded fake so output is reproducible.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["CountingEntropy", "Entropy", "MaskKeys"]


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


class MaskKeys:
    """Masking keys for one WebSocket client connection (RFC 6455 section
    5.3: four bytes per frame, unpredictable to the peer), drawn from
    ``entropy`` a block at a time. A provider socket sends 50 frames a
    second; drawing each key alone costs a system call per frame (about a
    twentieth of the server's time per call, profiled under load). The
    keys are the entropy's own bytes, in order, each used once, and none is
    seen by the peer before its frame."""

    __slots__ = ("_at", "_block", "_block_bytes", "_entropy")

    def __init__(self, entropy: Entropy, *, block_bytes: int = 512) -> None:
        if block_bytes < 4 or block_bytes % 4:
            raise ValueError("block_bytes must be a positive multiple of 4")
        self._entropy = entropy
        self._block_bytes = block_bytes
        self._block = b""
        self._at = 0

    def next(self) -> bytes:
        """The next four-byte key."""
        at = self._at
        if at >= len(self._block):
            self._block = self._entropy.token_bytes(self._block_bytes)
            at = 0
        self._at = at + 4
        return self._block[at : at + 4]
