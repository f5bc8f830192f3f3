"""OpenAI-compatible chat completions, streamed: the request and an incremental reader.

API reference "Create chat completion": ``POST {base}/chat/completions`` with
``{"model", "messages", "stream": true, "tools": [...]}``. A streamed answer is
Server-Sent Events whose data are ``chat.completion.chunk`` objects::

    {"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}
    {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1",
        "type":"function","function":{"name":"get_weather","arguments":""}}]}}]}
    {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,
        "function":{"arguments":"{\\"city\\":"}}]}}]}
    {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

and the stream ends with ``data: [DONE]``. A tool call arrives in pieces
keyed by ``index``: the first piece carries ``id`` and ``function.name``,
later ones append to ``function.arguments``. An error in mid-stream comes as
``{"error": {"message": ..., "type": ..., "code": ...}}``.

:class:`ChatStreamReader` turns the bytes into :class:`TextDelta`,
:class:`ToolCallRequest` and :class:`ChatFinished` values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..._base_urls import DEFAULT_OPENAI_BASE_URL
from ..._errors import RemoteProtocolError
from ..._json import load_message
from ...http._types import HttpRequest
from .._models import LLM_MODEL
from ._sse import DEFAULT_MAX_EVENT_BYTES, SSEParser

__all__ = [
    "ChatFinished",
    "ChatStreamReader",
    "LlmConfig",
    "TextDelta",
    "ToolCallRequest",
    "build_chat_request",
    "tool_spec",
]

# A model calling more than 16 tools at once is broken or hostile; each call
# costs the bridge a round trip.
MAX_TOOL_CALLS = 16
# Tool arguments are small JSON objects; 256 KiB bounds a runaway stream.
MAX_ARGUMENT_CHARS = 256 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class LlmConfig:
    api_key: str
    model: str = LLM_MODEL
    base_url: str = DEFAULT_OPENAI_BASE_URL
    # Each tool: {"name", "description", "parameters"} or already
    # {"type": "function", "function": {...}}.
    tools: tuple[Mapping[str, Any], ...] = ()
    temperature: float | None = None
    # Reasoning chat models only (gpt-5 family and later); None sends nothing.
    reasoning_effort: str | None = None
    parallel_tool_calls: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallRequest:
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatFinished:
    finish_reason: str | None


ChatItem = TextDelta | ToolCallRequest | ChatFinished


def tool_spec(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A tool in the chat-completions ``{"type": "function", "function": ...}`` shape."""
    if tool.get("type") == "function" and isinstance(tool.get("function"), Mapping):
        return {"type": "function", "function": dict(tool["function"])}
    function: dict[str, Any] = {"name": tool["name"]}
    if "description" in tool:
        function["description"] = tool["description"]
    function["parameters"] = tool.get("parameters") or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def build_chat_request(config: LlmConfig, messages: Sequence[Mapping[str, Any]]) -> HttpRequest:
    body: dict[str, Any] = {"model": config.model, "messages": list(messages), "stream": True}
    if config.tools:
        body["tools"] = [tool_spec(tool) for tool in config.tools]
    if config.temperature is not None:
        body["temperature"] = config.temperature
    if config.reasoning_effort is not None:
        body["reasoning_effort"] = config.reasoning_effort
    if config.parallel_tool_calls is not None and config.tools:
        body["parallel_tool_calls"] = config.parallel_tool_calls
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return HttpRequest(
        method="POST",
        url=config.base_url.rstrip("/") + "/chat/completions",
        headers=(
            ("authorization", f"Bearer {config.api_key}"),
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
            ("content-length", str(len(payload))),
        ),
        body=payload,
    )


class _PartialCall:
    __slots__ = ("arguments", "call_id", "name", "size")

    def __init__(self) -> None:
        self.call_id = ""
        self.name = ""
        self.arguments: list[str] = []
        self.size = 0


class ChatStreamReader:
    """Feed the bytes of one streamed answer; raises only RemoteProtocolError."""

    def __init__(self) -> None:
        self._sse = SSEParser()
        self._calls: dict[int, _PartialCall] = {}
        self._finished = False
        self._finish_reason: str | None = None

    @property
    def finished(self) -> bool:
        return self._finished

    def feed(self, data: bytes) -> list[ChatItem]:
        out: list[ChatItem] = []
        for event in self._sse.feed(data):
            if self._finished:
                break
            if event.data.strip() == "[DONE]":
                out += self._finish()
                break
            self._chunk(event.data, out)
        return out

    def end_of_body(self) -> list[ChatItem]:
        """The response body ended (with or without ``[DONE]``)."""
        return [] if self._finished else self._finish()

    def _finish(self) -> list[ChatItem]:
        self._finished = True
        out: list[ChatItem] = []
        for index in sorted(self._calls):
            call = self._calls[index]
            if not call.call_id or not call.name:
                raise RemoteProtocolError("tool call without id or name", http_status=502)
            out.append(
                ToolCallRequest(
                    call_id=call.call_id, name=call.name, arguments="".join(call.arguments)
                )
            )
        self._calls.clear()
        out.append(ChatFinished(finish_reason=self._finish_reason))
        return out

    def _chunk(self, data: str, out: list[ChatItem]) -> None:
        # The SSE parser bounds an event already; the reader checks it again.
        value = load_message(data, DEFAULT_MAX_EVENT_BYTES)
        error = value.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else error
            raise RemoteProtocolError(f"LLM error: {message}", http_status=502)
        choices = value.get("choices")
        if not isinstance(choices, list):
            return  # e.g. the usage-only chunk of stream_options.include_usage
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # we ask for one choice (n = 1)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = delta.get("content")
                if isinstance(content, str) and content:
                    out.append(TextDelta(text=content))
                tool_calls = delta.get("tool_calls")
                if isinstance(tool_calls, list):
                    for piece in tool_calls:
                        self._tool_piece(piece)
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self._finish_reason = reason

    def _tool_piece(self, piece: Any) -> None:
        if not isinstance(piece, dict):
            raise RemoteProtocolError("tool call delta is not an object", http_status=502)
        index = piece.get("index", 0)
        if isinstance(index, bool) or not isinstance(index, int):
            raise RemoteProtocolError("tool call delta without an integer index", http_status=502)
        call = self._calls.get(index)
        if call is None:
            if len(self._calls) >= MAX_TOOL_CALLS:
                raise RemoteProtocolError("too many tool calls in one answer", http_status=502)
            call = self._calls[index] = _PartialCall()
        call_id = piece.get("id")
        if isinstance(call_id, str) and call_id:
            call.call_id = call_id
        function = piece.get("function")
        if isinstance(function, dict):
            name = function.get("name")
            if isinstance(name, str) and name:
                call.name = name
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                call.size += len(arguments)
                if call.size > MAX_ARGUMENT_CHARS:
                    raise RemoteProtocolError("tool call arguments too long", http_status=502)
                call.arguments.append(arguments)
