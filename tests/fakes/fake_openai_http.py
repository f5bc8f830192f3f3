"""A pure stand-in for the OpenAI HTTP endpoints the pipeline uses.

* chat completions, streamed as Server-Sent Events of ``chat.completion.chunk``;
* ``/audio/speech`` with ``response_format: "pcm"`` (24 kHz PCM16 LE);
* ``/audio/transcriptions`` (multipart in, ``{"text": ...}`` out).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from patter_core.http import HttpRequest


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4o-mini",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def sse(chunks: list[dict[str, Any]], *, done: bool = True) -> bytes:
    out = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    return out + (b"data: [DONE]\n\n" if done else b"")


def content_chunks(pieces: list[str]) -> list[dict[str, Any]]:
    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": p}) for p in pieces]
    out.append(chunk({}, "stop"))
    return out


def tool_call_chunks(call_id: str, name: str, argument_pieces: list[str]) -> list[dict[str, Any]]:
    out = [
        chunk(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }
                ],
            }
        )
    ]
    out += [
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in argument_pieces
    ]
    out.append(chunk({}, "tool_calls"))
    return out


def tone(ms: int, sample_rate: int, freq: float = 440.0) -> bytes:
    """Deterministic test audio: a sine tone, PCM16 LE."""
    n = sample_rate * ms // 1000
    t = np.arange(n) / sample_rate
    return (np.sin(2 * np.pi * freq * t) * 8000).astype("<i2").tobytes()


def speech_pcm(text: str) -> bytes:
    """24 kHz audio whose length is 50 ms per character: checkable durations."""
    return tone(50 * len(text), 24000)


def transcription_json(text: str) -> bytes:
    return json.dumps({"text": text}).encode()


class FakeOpenAI:
    """Answers requests built by the pipeline; checks what a real server would."""

    def __init__(self, chat_streams: list[bytes] | None = None) -> None:
        self.chat_streams = list(chat_streams or [])
        self.requests: list[HttpRequest] = []

    def respond(self, request: HttpRequest) -> tuple[int, bytes]:
        self.requests.append(request)
        headers = dict(request.headers)
        assert headers["authorization"].startswith("Bearer ")
        if request.url.endswith("/chat/completions"):
            body = json.loads(request.body)
            assert body["stream"] is True
            return 200, self.chat_streams.pop(0)
        if request.url.endswith("/audio/speech"):
            body = json.loads(request.body)
            assert body["response_format"] == "pcm"
            return 200, speech_pcm(body["input"])
        if request.url.endswith("/audio/transcriptions"):
            assert headers["content-type"].startswith("multipart/form-data; boundary=")
            assert b'name="file"; filename="utterance.wav"' in request.body
            return 200, transcription_json("What is the weather in Paris?")
        return 404, b'{"error":{"message":"not found"}}'
