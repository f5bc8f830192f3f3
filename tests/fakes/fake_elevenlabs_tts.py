"""A pure stand-in for ElevenLabs' streamed text-to-speech over HTTP.

``POST /v1/text-to-speech/{voice_id}/stream?output_format=pcm_16000`` with
``xi-api-key``; the body streams raw 16 kHz PCM16 LE.
"""

from __future__ import annotations

import json

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
