"""The conversation of a pipeline call, for :class:`~._session.PipelineSession`.

It holds the history (chat-completions messages, without the system
prompt) and the answer being spoken, and decides what a turn starts:

* a caller's turn (a final transcript, or ``SendText``) cancels the answer
  in progress, goes into the history, and asks either the user's handler
  (``CallHandler``; its reply is spoken) or the LLM (one streamed
  chat-completions POST per round, on a fresh ``llm-<n>`` channel);
* the LLM's text goes through the answer's sentence splitter to speech-out
  as it streams; a round that ends in tool calls emits ``ToolCall`` events
  and waits for every ``ToolResult`` before the next round;
* ``Say`` speaks a fixed text (queued, up to :data:`MAX_QUEUED_SAYS`, behind
  an answer in progress);
* when the answer is done (played out, cancelled or failed):
  ``Transcript(assistant)`` of what the caller could hear, then
  ``ResponseDone``.

Barge-in: ``Cancel`` aborts the LLM and the speech, keeps what was voiced as
the round's message, answers every pending tool call ("cancelled"), and
``Truncate(item_id, played_ms)`` rewrites the answer's assistant messages to
the words the caller heard (:func:`~._answer.heard_text`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from ..._errors import RemoteProtocolError
from .._events import (
    AnswerStage,
    ProviderError,
    ResponseDone,
    ToolCall,
    Transcript,
)
from .._io import ChannelId
from .._session import CallHandler
from ._answer import Answer, heard_text
from ._config import PipelineConfig
from ._llm import ChatFinished, ChatStreamReader, TextDelta, build_chat_request
from ._outbox import PipelineOutbox
from ._speech_out import SpeechOut

__all__ = ["MAX_QUEUED_SAYS", "Conversation"]

# Recent answers kept for a late Truncate.
RECENT_ANSWERS = 8
# Tool calls of cancelled answers, remembered so their late results are
# dropped quietly rather than reported as unknown.
RECENT_CALL_IDS = 64
# Says queued behind an answer in progress (first message, voicemail drop).
MAX_QUEUED_SAYS = 8


class Conversation:
    """History, turns, LLM rounds, tools and truncation (module doc)."""

    def __init__(self, config: PipelineConfig, out: PipelineOutbox) -> None:
        self._config = config
        self._out = out
        self._bytes_per_ms = config.tts.output_format.bytes_per_second / 1000.0
        self.instructions = config.system_prompt
        #: Set when the session closes: nothing new starts.
        self.closed = False
        self.history: list[dict[str, Any]] = []
        self._answer: Answer | None = None
        self._recent: deque[Answer] = deque(maxlen=RECENT_ANSWERS)
        self._says: deque[str] = deque()
        self._handler_request: int | None = None
        self._tool_owner: dict[str, Answer] = {}
        self._dropped_calls: deque[str] = deque(maxlen=RECENT_CALL_IDS)
        self.speech = SpeechOut(config, out, finish=self._finish, cancel=self._cancel)

    # -- turns ----------------------------------------------------------------

    def user_turn(self, text: str, *, spoken: bool) -> None:
        self._says.clear()  # first, or finishing the old answer would start one
        if self._answer is not None:
            self._cancel(self._answer)  # the caller moved on; the old answer is moot
        self._append_history({"role": "user", "content": text})
        if self._config.use_handler:
            request_id = self._handler_request = self._out.next_id()
            self._out.io.append(CallHandler(request_id=request_id, text=text))
            return
        answer = self._new_answer(source_open=True)
        self._request_llm(answer)

    def handler_replied(self, request_id: int, text: str) -> None:
        if request_id == self._handler_request and not self.closed:
            self._handler_request = None
            self.say(text)

    def say(self, text: str) -> None:
        if self._answer is not None:
            if len(self._says) < MAX_QUEUED_SAYS:
                self._says.append(text)
            return
        answer = self._new_answer(source_open=False)
        answer.add_sentences(answer.splitter.feed(text) + answer.splitter.flush())
        if text.strip():
            message = {"role": "assistant", "content": text.strip()}
            answer.round_messages[0] = message
            self._append_history(message)
        self.speech.pump(answer)

    def cancel(self) -> None:
        """``Cancel``: the answer in progress, the handler's reply, queued says."""
        self._says.clear()
        self._handler_request = None
        if self._answer is not None:
            self._cancel(self._answer)

    def _new_answer(self, *, source_open: bool) -> Answer:
        answer = Answer(f"answer-{self._out.next_id()}", source_open=source_open)
        self._answer = answer
        self.speech.begin(answer)
        return answer

    def _append_history(self, message: dict[str, Any]) -> None:
        self.history.append(message)
        excess = len(self.history) - self._config.max_history_messages
        if excess > 0:
            del self.history[:excess]
            # never start on a tool result whose call was dropped
            while self.history and self.history[0].get("role") == "tool":
                del self.history[0]

    # -- LLM ------------------------------------------------------------------

    def _request_llm(self, answer: Answer) -> None:
        llm = self._config.llm
        assert llm is not None
        messages: list[Mapping[str, Any]] = []
        if self.instructions:
            messages.append({"role": "system", "content": self.instructions})
        messages += self.history
        answer.reader = ChatStreamReader()
        answer.round_text = []
        answer.llm_channel = self._out.start_http("llm", build_chat_request(llm, messages), answer)

    def llm_data(self, answer: Answer, channel: ChannelId, data: bytes) -> None:
        assert answer.reader is not None
        try:
            items = answer.reader.feed(data)
        except RemoteProtocolError as exc:
            self._out.abort(channel)
            self.llm_failed(answer, str(exc))
            return
        self._llm_items(answer, items)

    def llm_done(self, answer: Answer, channel: ChannelId) -> None:
        assert answer.reader is not None
        self._out.forget(channel)
        try:
            items = answer.reader.end_of_body()
        except RemoteProtocolError as exc:
            self.llm_failed(answer, str(exc))
            return
        self._llm_items(answer, items)

    def _llm_items(self, answer: Answer, items: list[Any]) -> None:
        calls: list[ToolCall] = []
        for item in items:
            if isinstance(item, TextDelta):
                if not answer.round and not answer.round_text:
                    self._out.events.append(AnswerStage(stage="llm_first_token"))
                answer.round_text.append(item.text)
                answer.add_sentences(answer.splitter.feed(item.text))
            elif isinstance(item, ChatFinished):
                if answer.llm_channel is not None:
                    self._out.abort(answer.llm_channel)  # nothing more to read
                answer.llm_channel = None
                answer.add_sentences(answer.splitter.flush())
                self._end_round(answer, calls)
            else:
                calls.append(
                    ToolCall(call_id=item.call_id, name=item.name, arguments=item.arguments)
                )
        self.speech.pump(answer)

    def _end_round(self, answer: Answer, calls: list[ToolCall]) -> None:
        text = "".join(answer.round_text).strip()
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in calls
            ]
        if text or calls:
            answer.round_messages[answer.round] = message
            self._append_history(message)
        answer.round += 1
        if calls:
            answer.pending_calls = {call.call_id for call in calls}
            for call in calls:
                self._tool_owner[call.call_id] = answer
            self._out.events += calls
        else:
            answer.source_open = False

    def tool_result(self, call_id: str, output: str) -> None:
        answer = self._tool_owner.pop(call_id, None)
        if answer is None or call_id not in answer.pending_calls:
            if call_id in self._dropped_calls:
                return  # its answer was cancelled; the history already holds a result
            self._out.events.append(
                ProviderError(message=f"no tool call {call_id!r} is waiting", code="unknown_call")
            )
            return
        answer.pending_calls.discard(call_id)
        self._append_history({"role": "tool", "tool_call_id": call_id, "content": output})
        if not answer.pending_calls and not answer.finished:
            self._request_llm(answer)

    def llm_failed(self, answer: Answer, message: str) -> None:
        self._out.events.append(ProviderError(message=f"LLM: {message}", code="llm"))
        answer.llm_channel = None
        answer.status = "failed"
        answer.add_sentences(answer.splitter.flush())
        self._end_round(answer, [])
        self.speech.pump(answer)

    # -- the end of an answer -------------------------------------------------

    def _finish(self, answer: Answer, status: str) -> None:
        answer.finished = True
        self.speech.finished(answer)
        if self._answer is answer:
            self._answer = None
        self._recent.append(answer)
        spoken = answer.spoken_text()  # what the caller could hear
        if spoken:
            self._out.events.append(
                Transcript(role="assistant", text=spoken, item_id=answer.item_id)
            )
        sent = sum(len(s.text) for s in answer.sentences if s.channel or s.audio_bytes)
        usage = (("tts_characters", sent),)
        self._out.events.append(ResponseDone(item_id=answer.item_id, status=status, usage=usage))
        if self._says and self._answer is None and not self.closed:
            self.say(self._says.popleft())

    def _cancel(self, answer: Answer, status: str = "cancelled") -> None:
        if answer.finished:
            return
        if answer.llm_channel is not None:
            self._out.abort(answer.llm_channel)
            answer.llm_channel = None
            # the round in progress: keep what was voiced, as its own message
            spoken = " ".join(
                s.text for s in answer.sentences if s.round == answer.round and s.audio_bytes
            )
            if spoken:
                message = {"role": "assistant", "content": spoken}
                answer.round_messages[answer.round] = message
                self._append_history(message)
        for call_id in sorted(answer.pending_calls):
            # the history must answer every tool call before the next request
            self._tool_owner.pop(call_id, None)
            self._dropped_calls.append(call_id)
            self._append_history({"role": "tool", "tool_call_id": call_id, "content": "cancelled"})
        answer.pending_calls = set()
        self.speech.stop(answer)
        answer.source_open = False
        self._truncate_messages(answer, None)
        self._finish(answer, status)

    def truncate(self, item_id: str, played_ms: int) -> None:
        if self._answer is not None and self._answer.item_id == item_id:
            self._cancel(self._answer)
        for answer in self._recent:
            if answer.item_id == item_id:
                self._truncate_messages(answer, max(0, played_ms))
                return

    def _truncate_messages(self, answer: Answer, played_ms: int | None) -> None:
        """Cut the answer's assistant messages to the heard (or, if None, voiced) words."""
        if played_ms is None:
            heard = [s.text if s.audio_bytes else "" for s in answer.sentences]
        else:
            heard = heard_text(answer.sentences, played_ms, self._bytes_per_ms)
        for message in answer.cut_messages(heard):
            if message in self.history:
                self.history.remove(message)
