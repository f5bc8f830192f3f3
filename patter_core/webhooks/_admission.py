"""Stream admission: a valid token, one live stream per call, never replayed.

A stream token (:mod:`._tokens`) proves that a webhook answer for this call
id was ours and is recent; on its own it admits as many streams as its
holder likes for its whole life. :class:`StreamAdmission` adds the state a
process can keep:

* one live stream per call id: a second stream for a call that already has
  one is refused (1008) before any provider connection, so a captured token
  cannot buy parallel provider sessions;
* a token is spent when its call's stream ends: replayed later, within its
  life, it is refused.

What holds across processes and instances is only the token itself: its call
id and its short life (``DEFAULT_STREAM_TOKEN_TTL_S``). Each process refuses
a second live stream and a replay it has seen; a replay sent to another
instance within the token's life is not seen there (instances share nothing
but the secret, so that any instance can serve any stream).

Memory is bounded: spent tokens are forgotten once expired (they would be
refused as expired anyway), and at most ``max_spent`` are kept.
"""

from __future__ import annotations

from collections import OrderedDict

from .._errors import SignatureError
from ._tokens import StreamTokens

__all__ = ["StreamAdmission"]

#: A busy process ends a few calls a second; 100,000 spent tokens cover the
#: five-minute token life at over 300 calls a second, in a few MB.
DEFAULT_MAX_SPENT = 100_000


def _expiry(token: str) -> float:
    # Only called on tokens that verified, so the format is known good.
    return float(token.split(".")[1])


class StreamAdmission:
    """Admits media streams for one process. ``now`` is wall-clock seconds."""

    def __init__(self, tokens: StreamTokens, *, max_spent: int = DEFAULT_MAX_SPENT) -> None:
        self._tokens = tokens
        self._max_spent = max_spent
        self._live: dict[str, str] = {}  # call id -> its stream's token
        self._spent: OrderedDict[str, float] = OrderedDict()  # token -> expiry

    @property
    def live_calls(self) -> int:
        return len(self._live)

    def admit(self, token: str, call_id: str, now: float) -> None:
        """Admit a stream, or raise :class:`SignatureError` (close 1008)."""
        self._tokens.verify(token, call_id, now)
        self._forget_expired(now)
        if call_id in self._live:
            raise SignatureError("this call already has a live stream")
        if token in self._spent:
            raise SignatureError("stream token already used by a call that ended")
        self._live[call_id] = token

    def release(self, call_id: str, now: float) -> None:
        """The admitted stream of ``call_id`` ended: its token is spent."""
        token = self._live.pop(call_id, None)
        if token is None:
            return
        self._spent[token] = _expiry(token)
        self._spent.move_to_end(token)
        while len(self._spent) > self._max_spent:
            self._spent.popitem(last=False)
        self._forget_expired(now)

    def _forget_expired(self, now: float) -> None:
        # Tokens share one life, so insertion order is expiry order (near
        # enough: a shorter custom ttl is forgotten a little late).
        spent = self._spent
        while spent:
            token, expiry = next(iter(spent.items()))
            if expiry >= now:
                return
            del spent[token]
