"""A pure stand-in for the ElevenLabs Conversational AI server (PROTOCOLS.md §6).

Same shape as :class:`tests.fakes.fake_openai_realtime.FakeOpenAIRealtime`:
``check_handshake`` / ``on_connect`` / ``on_message`` for the WebSocket,
``http_request`` for the signed-URL endpoint, and scripting methods that
return server-initiated JSON texts. No socket anywhere, so a ``websockets``
(and a small HTTP) wrapper can serve it on 127.0.0.1 unchanged; pass
``ws_base`` so the signed URL it hands out points back at that server.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from patter_core.http._types import HttpRequest

__all__ = ["FakeElevenLabs"]


class FakeElevenLabs:
    """The server side of an ElevenLabs agent conversation, message by message."""

    def __init__(
        self,
        *,
        agent_id: str = "agent_test",
        api_key: str | None = None,  # set: a private agent, reachable by signed URL only
        input_format: str = "ulaw_8000",
        output_format: str = "ulaw_8000",
        ws_base: str = "wss://api.elevenlabs.io",
        greeting_audio: bytes = b"\xff" * 160,
    ) -> None:
        self.agent_id = agent_id
        self.api_key = api_key
        self.input_format = input_format
        self.output_format = output_format
        self.ws_base = ws_base
        self.greeting_audio = greeting_audio
        self.signature = "sig_fake_123"
        self.received: list[dict[str, Any]] = []
        self.audio_in = bytearray()
        self.pongs: list[int] = []
        self.init: dict[str, Any] | None = None
        self._event_ids = itertools.count(1)

    # -- transport-facing -----------------------------------------------------

    def http_request(self, request: HttpRequest) -> tuple[int, bytes]:
        """Serve ``GET /v1/convai/conversation/get-signed-url?agent_id=...``."""
        parts = urlsplit(request.url)
        if request.method != "GET" or parts.path != "/v1/convai/conversation/get-signed-url":
            return 404, b'{"detail":"Not Found"}'
        headers = {k.lower(): v for k, v in request.headers}
        if self.api_key is None or headers.get("xi-api-key") != self.api_key:
            return 401, b'{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}'
        if parse_qs(parts.query).get("agent_id") != [self.agent_id]:
            return 404, b'{"detail":{"status":"agent_not_found"}}'
        url = (
            f"{self.ws_base}/v1/convai/conversation?agent_id={self.agent_id}"
            f"&conversation_signature={self.signature}"
        )
        return 200, json.dumps({"signed_url": url}).encode()

    def check_handshake(self, path: str, headers: Sequence[tuple[str, str]]) -> int | None:
        parts = urlsplit(path)
        if parts.path != "/v1/convai/conversation":
            return 404
        query = parse_qs(parts.query)
        if query.get("agent_id") != [self.agent_id]:
            return 404
        if self.api_key is not None and query.get("conversation_signature") != [self.signature]:
            return 403
        return None

    def on_connect(self) -> list[str]:
        return []  # the server waits for conversation_initiation_client_data

    def on_message(self, data: str | bytes) -> list[str]:
        try:
            msg = json.loads(data)
            if not isinstance(msg, dict):
                raise TypeError
        except (ValueError, TypeError):
            return self.error("invalid_message", "could not parse the message")
        self.received.append(msg)
        if "user_audio_chunk" in msg:
            self.audio_in += base64.b64decode(msg["user_audio_chunk"])
            return []
        kind = msg.get("type")
        if kind == "conversation_initiation_client_data":
            self.init = msg
            out = [self.metadata()]
            override = msg.get("conversation_config_override", {})
            first = override.get("agent", {}).get("first_message")
            if first:
                out += self.agent_says(first, self.greeting_audio)
            return out
        if kind == "pong":
            self.pongs.append(msg["event_id"])
        return []  # client_tool_result, user_message, contextual_update: recorded

    # -- scripted server events -------------------------------------------------

    def metadata(self) -> str:
        return self._msg(
            "conversation_initiation_metadata",
            conversation_initiation_metadata_event={
                "conversation_id": "conv_fake_1",
                "agent_output_audio_format": self.output_format,
                "user_input_audio_format": self.input_format,
            },
        )

    def agent_says(
        self, text: str, audio: bytes, chunk_bytes: int = 1600, event_id: int | None = None
    ) -> list[str]:
        """One agent turn: the text, then its audio; every part shares one event id."""
        eid = next(self._event_ids) if event_id is None else event_id
        out = [
            self._msg(
                "agent_response", agent_response_event={"agent_response": text, "event_id": eid}
            )
        ]
        out += self.audio(audio, chunk_bytes, eid)
        return out

    def audio(self, audio: bytes, chunk_bytes: int, event_id: int) -> list[str]:
        return [
            self._msg(
                "audio",
                audio_event={
                    "audio_base_64": base64.b64encode(audio[i : i + chunk_bytes]).decode(),
                    "event_id": event_id,
                },
            )
            for i in range(0, len(audio), chunk_bytes)
        ]

    def interruption(self) -> list[str]:
        eid = next(self._event_ids)
        return [self._msg("interruption", interruption_event={"event_id": eid})]

    def ping(self, ping_ms: int | None = 42) -> tuple[int, list[str]]:
        eid = next(self._event_ids)
        return eid, [self._msg("ping", ping_event={"event_id": eid, "ping_ms": ping_ms})]

    def user_transcript(self, text: str, tentative: bool = False) -> list[str]:
        eid = next(self._event_ids)
        if tentative:
            event = {"user_transcript": text, "event_id": eid}
            return [
                self._msg("tentative_user_transcript", tentative_user_transcription_event=event)
            ]
        event = {"user_transcript": text, "event_id": eid}
        return [self._msg("user_transcript", user_transcription_event=event)]

    def correction(self, original: str, corrected: str) -> list[str]:
        event = {
            "original_agent_response": original,
            "corrected_agent_response": corrected,
            "event_id": next(self._event_ids),
        }
        return [self._msg("agent_response_correction", agent_response_correction_event=event)]

    def tool_call(self, name: str, parameters: Any, call_id: str) -> list[str]:
        event = {
            "tool_name": name,
            "tool_call_id": call_id,
            "parameters": parameters,
            "event_id": next(self._event_ids),
        }
        return [self._msg("client_tool_call", client_tool_call=event)]

    def vad_score(self, score: float) -> list[str]:
        return [self._msg("vad_score", vad_score_event={"vad_score": score})]

    def error(self, error_type: str, message: str, code: int = 1008) -> list[str]:
        event = {"code": code, "message": message, "error_type": error_type}
        return [self._msg("error", error_event=event)]

    @staticmethod
    def _msg(kind: str, **fields: Any) -> str:
        return json.dumps({"type": kind, **fields})
