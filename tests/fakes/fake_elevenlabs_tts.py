"""Pure stand-ins for ElevenLabs' text-to-speech: streamed HTTP and the stream-input socket.

``POST /v1/text-to-speech/{voice_id}/stream?output_format=pcm_16000`` with
``xi-api-key``; the body streams raw 16 kHz PCM16 LE. The WebSocket
``/v1/text-to-speech/{voice_id}/stream-input`` takes JSON text messages and
answers with base64 audio and its alignment.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from patter_core.http import HttpRequest

from .fake_openai_http import tone


class FakeElevenLabsTts:
    def __init__(self, api_key: str = "el-key") -> None:
        self.api_key = api_key
        self.texts: list[str] = []

    def respond(self, request: HttpRequest) -> tuple[int, bytes]:
        headers = dict(request.headers)
        if headers.get("xi-api-key") != self.api_key:
            return 401, b'{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}'
        assert request.method == "POST"
        assert "/v1/text-to-speech/" in request.url
        assert request.url.endswith("/stream?output_format=pcm_16000")
        body = json.loads(request.body)
        self.texts.append(body["text"])
        return 200, tone(50 * len(body["text"]), 16000)


class FakeElevenLabsTtsSocket:
    """A pure stand-in for one ``/v1/text-to-speech/{voice}/stream-input`` socket.

    ``accept`` checks the handshake; ``receive`` takes one client message and
    returns the server's answers: audio for flushed (or triggered) text, 50 ms
    of 16 kHz tone per character with its alignment, and ``{"isFinal": true}``
    after ``{"text": ""}``. ``chunk_chars`` cuts long text into several audio
    messages, as the server does.
    """

    def __init__(self, api_key: str = "el-key", *, chunk_chars: int = 1000) -> None:
        self.api_key = api_key
        self.chunk_chars = chunk_chars
        self.received: list[dict[str, Any]] = []
        self.buffer = ""
        self.spoken: list[str] = []  # texts turned into audio, in order
        self.finished = False

    def accept(self, url: str, headers: tuple[tuple[str, str], ...]) -> bool:
        assert "/v1/text-to-speech/" in url and "/stream-input?" in url
        assert "output_format=pcm_16000" in url
        return dict(headers).get("xi-api-key") == self.api_key

    def receive(self, data: str | bytes) -> list[str]:
        assert isinstance(data, str), "the protocol is JSON text frames"
        message = json.loads(data)
        assert not self.finished, "text after the end of input"
        if not self.received:
            assert message["text"] == " ", "the first message must be a blank space"
            self.received.append(message)
            return []
        self.received.append(message)
        text = message["text"]
        if text == "":
            self.finished = True
            return [*self._generate(), json.dumps({"isFinal": True})]
        assert text.endswith(" ") and not text.endswith("  "), "text ends with one space"
        self.buffer += text
        if message.get("flush") or message.get("try_trigger_generation"):
            return self._generate()
        return []

    def _generate(self) -> list[str]:
        text, self.buffer = self.buffer.strip(), ""
        if not text:
            return []
        self.spoken.append(text)
        out = []
        for n in range(0, len(text), self.chunk_chars):
            part = text[n : n + self.chunk_chars]
            out.append(audio_message(tone(50 * len(part), 16000), part))
        return out


def audio_message(pcm: bytes, chars: str, *, normalized_only: bool = False) -> str:
    alignment = {
        "chars": list(chars),
        "charStartTimesMs": [50 * i for i in range(len(chars))],
        "charDurationsMs": [50] * len(chars),
    }
    message: dict[str, Any] = {
        "audio": base64.b64encode(pcm).decode("ascii"),
        "isFinal": False,
        "normalizedAlignment": alignment,
    }
    if not normalized_only:
        message["alignment"] = alignment
    return json.dumps(message)
