"""A planned ending: the call will end once what must be heard has played.

``end_call``, the voicemail drop, a provider closing normally with our audio
still queued, and the closing line before a provider's session cap all end
the call *later*: when the answer they wait for is complete
(``ResponseDone``), its audio has played (mark echoes), and, for
``end_call``, the model's goodbye that follows the tool's output has come
too. ``deadline`` bounds the wait. The first plan wins: a second one (an
``end_call`` during the voicemail message) changes nothing.

A closing line of our own (silence, ``max_duration``) waits for *its* answer
(``own_answer``): the first audio played after the plan names its item, and
only the end of that item counts. The end of an answer cut to make room for
it (OpenAI reports the cancelled response) says nothing about the line.
"""

from __future__ import annotations

from ._payloads import EndReason

__all__ = ["PlannedEnding"]


class PlannedEnding:
    """Why and by when the call ends, and what it still waits for."""

    __slots__ = ("_await_goodbye", "_item", "_needs_done", "_own", "deadline", "reason")

    def __init__(self) -> None:
        #: The end reason once planned (None: no ending planned).
        self.reason: EndReason | None = None
        #: Past this, the call ends whatever is still playing.
        self.deadline: float | None = None
        self._needs_done = False
        self._await_goodbye = False
        self._own = False  # waiting for the item named by the first audio
        self._item: str | None = None

    def plan(
        self,
        reason: EndReason,
        deadline: float,
        *,
        needs_done: bool = False,
        goodbye: bool = False,
        own_answer: bool = False,
    ) -> bool:
        """Plan the ending; False when one is planned already."""
        if self.reason is not None:
            return False
        self.reason, self.deadline = reason, deadline
        self._needs_done, self._await_goodbye = needs_done or goodbye, goodbye
        self._own = own_answer and self._needs_done
        return True

    def audio(self, item: str | None) -> None:
        """Agent audio accepted for playback; after an ``own_answer`` plan the
        first names the line's item."""
        if self._own:
            self._own, self._item = False, item if item is not None else ""

    def answer_done(self, tool_calls: int, item: str | None = None) -> None:
        """An answer is complete; with ``tool_calls`` it was end_call's own,
        and the goodbye it asked for is yet to come."""
        if self._own or (self._item is not None and (item or "") != self._item):
            return  # not the closing line's answer (see the module doc)
        if self._await_goodbye and tool_calls:
            self._await_goodbye = False
        else:
            self._needs_done = False

    def overdue(self, now: float) -> bool:
        return self.reason is not None and self.deadline is not None and now >= self.deadline

    def ready(self, *, unplayed: bool) -> bool:
        """Everything waited for has come and played."""
        return self.reason is not None and not self._needs_done and not unplayed
