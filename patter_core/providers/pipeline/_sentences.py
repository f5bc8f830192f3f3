"""Cut streamed LLM text into sentences, so speech starts before the answer is written.

Theory of operation
-------------------

Text arrives in arbitrary fragments. A sentence ends:

* at a newline;
* after ``.``, ``!``, ``?`` or ``…`` (and any closing quotes or brackets after
  them) *followed by whitespace* -- so ``3.5`` and ``example.com`` never split;
  except after a known abbreviation (``Dr.``, ``e.g.``) or a single capital
  initial (``J. Smith``).

Every decision is made only once the character after the candidate end has
arrived, and looks only at text of the current sentence, so the sentences are
the same however the text was cut into fragments (a property test checks
this). A sentence that runs past ``max_sentence_chars`` without an end is cut
at its last space, to bound the delay before its audio.
"""

from __future__ import annotations

__all__ = ["SentenceSplitter"]

_ENDERS = ".!?…"
_CLOSERS = "\"')]}»”’"
# Lower-cased words that end with a period without ending a sentence.
_ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "approx",
        "dept",
        "inc",
        "ltd",
        "co",
        "corp",
        "mt",
        "fig",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    }
)
# A spoken sentence of 300 characters is about 20 s of audio; waiting longer
# than that for a full stop would leave the caller in silence.
DEFAULT_MAX_SENTENCE_CHARS = 300


class SentenceSplitter:
    """``feed(text) -> [sentences]``; ``flush() -> [rest]`` at the end of the answer."""

    def __init__(self, *, max_sentence_chars: int = DEFAULT_MAX_SENTENCE_CHARS) -> None:
        self._max = max_sentence_chars
        self._buffer = ""
        self._scanned = 0  # positions before this were checked and are not ends

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        out: list[str] = []
        while True:
            self._buffer_strip()
            cut, pending = self._find_end()
            if cut is None:
                # Cut an over-long sentence only once no end can appear in its
                # first max_sentence_chars, so the cut is the same for any split.
                if pending or len(self._buffer) <= self._max:
                    return out
                cut = self._overflow_cut()
            sentence = self._buffer[:cut].strip()
            self._buffer = self._buffer[cut:]
            self._scanned = 0
            if sentence:
                out.append(sentence)

    def flush(self) -> list[str]:
        rest = self._buffer.strip()
        self._buffer = ""
        self._scanned = 0
        return [rest] if rest else []

    @property
    def pending(self) -> str:
        return self._buffer

    def _buffer_strip(self) -> None:
        if self._scanned == 0:
            self._buffer = self._buffer.lstrip()

    def _find_end(self) -> tuple[int | None, bool]:
        """The end of the first sentence, or None and whether a decision is pending."""
        buf = self._buffer
        i = self._scanned
        n = len(buf)
        limit = min(n, self._max)
        while i < limit:
            ch = buf[i]
            if ch == "\n":
                return i + 1, False
            if ch in _ENDERS:
                j = i + 1
                while j < n and (buf[j] in _ENDERS or buf[j] in _CLOSERS):
                    j += 1
                if j >= n:
                    self._scanned = i  # undecided until the next character comes
                    return None, True
                if buf[j].isspace() and not self._is_abbreviation(i):
                    return j, False
                i = j
                continue
            i += 1
        self._scanned = i
        return None, False

    def _is_abbreviation(self, dot: int) -> bool:
        if self._buffer[dot] != ".":
            return False
        start = dot
        while start > 0 and not self._buffer[start - 1].isspace():
            start -= 1
        word = self._buffer[start:dot].lstrip("\"'([{«“‘")
        if len(word) == 1 and word.isalpha() and word.isupper():
            return True  # an initial: "J. Smith"
        return word.lower() in _ABBREVIATIONS

    def _overflow_cut(self) -> int:
        head = self._buffer[: self._max]
        space = max(head.rfind(" "), head.rfind("\t"))
        return space + 1 if space > 0 else self._max
