"""The call's transcript as ``on_call_end`` reports it: what was said *and heard*.

Two corrections keep it true to the call:

* after a barge-in the agent's segment is cut to the share of its audio the
  caller heard (the truncate position over the audio sent for that item),
  at a word boundary -- the model had written more than the caller heard;
* a provider's correction of its last answer (ElevenLabs'
  ``agent_response_correction``, sent after an interruption) replaces that
  segment rather than adding a second one.

Pure and bounded: at most ``max_entries`` segments, and the cut positions of
the last ``MAX_CUTS`` interrupted items.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

from ..providers._events import Transcript
from ._payloads import TranscriptLine

__all__ = ["TranscriptLog", "cut_text"]

#: Interrupted items remembered until their final transcript arrives; one
#: barge-in cuts one or two items, so a few dozen is plenty.
MAX_CUTS = 64


def cut_text(text: str, fraction: float) -> str:
    """The first ``fraction`` of ``text``, ending at a word boundary."""
    if fraction >= 1.0:
        return text
    keep = int(len(text) * max(fraction, 0.0))
    if keep >= len(text):
        return text
    if keep > 0 and not text[keep].isspace():
        space = text.rfind(" ", 0, keep)
        keep = space if space > 0 else 0
    return text[:keep].rstrip()


class TranscriptLog:
    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        #: The segments, in order (a cut or a correction replaces one in place).
        self.entries: list[TranscriptLine] = []
        #: An assistant item's segment: its index in ``entries``.
        self._by_item: dict[str, int] = {}
        self._cuts: OrderedDict[str, float] = OrderedDict()

    def heard(self, item_id: str, fraction: float) -> None:
        """Only ``fraction`` of item ``item_id``'s audio was heard (a barge-in)."""
        index = self._by_item.get(item_id)
        if index is not None:
            line = self.entries[index]
            self.entries[index] = dataclasses.replace(line, text=cut_text(line.text, fraction))
            return
        self._cuts[item_id] = fraction
        while len(self._cuts) > MAX_CUTS:
            self._cuts.popitem(last=False)

    def add(self, role: str, text: str, now: float, item_id: str | None = None) -> TranscriptLine:
        """Record a final segment (cut if its item was interrupted); returns it."""
        if item_id is not None and item_id in self._cuts:
            text = cut_text(text, self._cuts.pop(item_id))
        line = TranscriptLine(role=role, text=text, time=now)
        if len(self.entries) < self._max:
            if item_id is not None and role == "assistant":
                self._by_item[item_id] = len(self.entries)
            self.entries.append(line)
        return line

    def record(self, t: Transcript, now: float) -> TranscriptLine:
        """A provider's final :class:`Transcript` (a correction replaces)."""
        if t.correction:
            return self.correct(t.text, now)
        return self.add(t.role, t.text, now, t.item_id)

    def correct(self, text: str, now: float) -> TranscriptLine:
        """The agent's last answer, corrected: it replaces that segment."""
        for index in range(len(self.entries) - 1, -1, -1):
            line = self.entries[index]
            if line.role == "assistant":
                self.entries[index] = line = dataclasses.replace(line, text=text)
                return line
        return self.add("assistant", text, now)
