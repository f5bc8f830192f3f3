"""Bookkeeping of one spoken answer: its sentences, their audio, what was heard.

An answer is the agent's reply to one user turn (or a ``Say``). Its text is
cut into sentences; each sentence is one text-to-speech request whose audio
must reach the caller in order, although up to ``max_parallel_tts`` requests
run at once. The *head* sentence's audio goes straight out; audio of later
sentences waits in their buffer until every sentence before them is done.

Each sentence remembers how many bytes of audio went out, so that when the
caller barges in after ``played_ms`` of the answer, :func:`heard_text` can say
which words the caller actually heard: whole sentences, then the share of the
words of the sentence playing at that moment.
"""

from __future__ import annotations

from typing import Any

from .._io import ChannelId
from ._llm import ChatStreamReader
from ._sentences import SentenceSplitter
from ._tts import PcmAligner

__all__ = ["Answer", "Sentence", "heard_text"]


class Sentence:
    __slots__ = ("aligner", "audio_bytes", "buffered", "channel", "done", "round", "text")

    def __init__(self, text: str, round_index: int) -> None:
        self.text = text
        self.round = round_index  # which LLM round (assistant message) produced it
        self.channel: ChannelId | None = None  # set when its TTS request starts
        self.aligner = PcmAligner()
        self.buffered: list[bytes] = []
        self.audio_bytes = 0  # bytes handed to the bridge
        self.done = False


class Answer:
    """One reply; the session drives it, this only holds its state."""

    def __init__(self, item_id: str, *, source_open: bool) -> None:
        self.item_id = item_id
        self.sentences: list[Sentence] = []
        self.head = 0  # index of the sentence whose audio is playing
        self.splitter = SentenceSplitter()
        self.source_open = source_open  # the LLM (or tool round trip) may add text
        self.round = 0
        self.round_text: list[str] = []  # all text of the current LLM round
        self.round_messages: dict[int, dict[str, Any]] = {}  # round -> history message
        self.llm_channel: ChannelId | None = None
        self.reader: ChatStreamReader | None = None
        self.pending_calls: set[str] = set()
        self.status = "completed"
        self.finished = False

    def add_sentences(self, texts: list[str]) -> None:
        self.sentences += [Sentence(text, self.round) for text in texts]

    def spoken_text(self) -> str:
        """The sentences of which some audio went out."""
        return " ".join(s.text for s in self.sentences if s.audio_bytes)

    def cut_messages(self, heard: list[str]) -> list[dict[str, Any]]:
        """Rewrite each round's assistant message to its heard sentences.

        Returns the messages left with nothing heard and no tool calls, which
        the caller removes from the history.
        """
        empty: list[dict[str, Any]] = []
        for round_index, message in self.round_messages.items():
            parts = [
                text
                for sentence, text in zip(self.sentences, heard, strict=True)
                if sentence.round == round_index and text
            ]
            content = " ".join(parts)
            if "tool_calls" in message:
                message["content"] = content or None
            elif content:
                message["content"] = content
            else:
                empty.append(message)
        return empty

    def all_played_out(self) -> bool:
        return not self.source_open and self.head >= len(self.sentences)


def heard_text(sentences: list[Sentence], played_ms: float, bytes_per_ms: float) -> list[str]:
    """Per sentence, the part heard within ``played_ms`` of the answer's audio."""
    out: list[str] = []
    start = 0.0
    for sentence in sentences:
        duration = sentence.audio_bytes / bytes_per_ms
        end = start + duration
        if duration <= 0 or played_ms <= start:
            out.append("")
        elif played_ms >= end:
            out.append(sentence.text)
        else:
            words = sentence.text.split()
            keep = int(len(words) * (played_ms - start) / duration)
            out.append(" ".join(words[:keep]))
        start = end
    return out
