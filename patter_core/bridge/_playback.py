"""Where the agent's audio sits on the carrier's timeline, for barge-in.

The media stream counts milliseconds for the whole call (``sent_ms``, and
``played_ms`` from echoed marks); this records, per provider item, the
position where its audio started and where its last chunk ended, so an
interruption can say how much of *that item* the caller heard
(PROTOCOLS.md section 3: ``conversation.item.truncate`` takes the played
milliseconds of one item).

Item ``None`` stands for providers that do not name their audio; such audio
is tracked but never truncated (there is nothing to name), and after an
interruption it is dropped until the interrupted response is done.
"""

from __future__ import annotations

from collections import deque

__all__ = ["Playback"]

#: Cancelled item ids remembered to drop their late audio; a response has a
#: handful of items, so a few dozen covers any realistic backlog.
MAX_CANCELLED = 64


class Playback:
    """Per-item positions (ms on the stream's timeline) and the barge-in rule."""

    __slots__ = ("_cancelled", "_drop_unnamed", "_items", "_mark_seq", "current", "sent_of")

    def __init__(self) -> None:
        # item -> [start, end] of its audio since the last interruption.
        self._items: dict[str | None, list[int]] = {}
        self._cancelled: deque[str] = deque(maxlen=MAX_CANCELLED)
        self._drop_unnamed = False
        self._mark_seq = 0
        #: The item whose audio went out last (``None`` also when unnamed).
        self.current: str | None = None
        #: Per item cut by the last interruption: ms of its audio sent.
        self.sent_of: dict[str, int] = {}

    def accepts(self, item: str | None) -> bool:
        """Whether audio of ``item`` should play (not from an interrupted answer)."""
        if item is None:
            return not self._drop_unnamed
        if item in self._cancelled:
            return False
        self._drop_unnamed = False  # a new item: the interrupted answer is over
        return True

    def has_current_audio(self) -> bool:
        return self.current in self._items

    def chunk_sent(self, item: str | None, start_ms: int, end_ms: int) -> None:
        """Record a chunk of ``item`` from ``start_ms`` to ``end_ms``."""
        record = self._items.get(item)
        if record is None:
            self._items[item] = [start_ms, end_ms]
        else:
            record[1] = end_ms
        self.current = item

    def mark_name(self, item: str | None, end_ms: int) -> str:
        """The next mark's name, ``"<seq>:<item>:<end ms>"``: unique (the
        sequence number) and readable in a packet capture (whose audio, up to
        where)."""
        self._mark_seq += 1
        return f"{self._mark_seq}:{item or '-'}:{end_ms}"

    def response_done(self) -> None:
        self._drop_unnamed = False

    def interrupt(self, played_ms: int) -> list[tuple[str, int]]:
        """The caller barged in at ``played_ms``: ``(item, heard ms)`` to truncate.

        Every item with audio not yet heard is truncated at ``played_ms``
        minus its start, clamped to ``[0, ms of it sent]``; all items seen
        since the last interruption are cancelled, so their late audio drops.
        """
        cuts: list[tuple[str, int]] = []
        self.sent_of = {}
        for item, (start, end) in self._items.items():
            if item is None:
                continue
            length = end - start
            heard = min(max(played_ms - start, 0), length)
            if heard < length:
                cuts.append((item, heard))
                self.sent_of[item] = length
            self._cancelled.append(item)
        self._drop_unnamed = None in self._items
        self._items = {}
        self.current = None
        return cuts
