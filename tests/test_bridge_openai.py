"""The bridge with the real OpenAI Realtime session (audio/pcmu passthrough):
the barge-in ends up on the wire as response.cancel + conversation.item.truncate."""

from __future__ import annotations

import base64
import json
from typing import Any

from patter_core.bridge import BridgeConfig, CallBridge, CallInfo, ProviderIo, ToolSpec
from patter_core.media import TwilioMediaStream
from patter_core.providers import (
    OpenAIRealtimeConfig,
    OpenAIRealtimeSession,
    OpenSocket,
    SendMessage,
    SocketMessage,
    SocketOpened,
)

from .test_bridge_support import callbacks, carrier_frames, connected, mark, start, verify


def _factory(info: CallInfo, audio_format: Any = "pcmu") -> OpenAIRealtimeSession:
    return OpenAIRealtimeSession(
        OpenAIRealtimeConfig(
            api_key="sk-test",
            instructions=info.instructions,
            first_message=info.first_message or None,
            audio_format=audio_format,
            tools=[
                {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
                for t in info.tools
            ],
        )
    )


def _sent(actions: list[Any]) -> list[dict[str, Any]]:
    out = []
    for action in actions:
        if isinstance(action, ProviderIo) and isinstance(action.action, SendMessage):
            data = action.action.data
            out.append(json.loads(data))
    return out


def _server(bridge: CallBridge, event: dict[str, Any], now: float) -> list[Any]:
    return bridge.provider_result(SocketMessage(channel="main", data=json.dumps(event)), now)


def test_openai_call_barge_in_on_the_wire() -> None:
    stream = TwilioMediaStream()
    bridge = CallBridge(
        stream=stream,
        carrier="twilio",
        session_factory=_factory,
        verify_token=verify,
        config=BridgeConfig(
            instructions="You serve {caller}.",
            first_message="Hello!",
            first_message_native=True,
            tools=(ToolSpec(name="lookup"),),
        ),
    )
    out = bridge.carrier_message(connected(), 0.0) + bridge.carrier_message(start(), 0.0)
    (opened,) = [a.action for a in out if isinstance(a, ProviderIo)]
    assert isinstance(opened, OpenSocket) and opened.channel == "main"
    out = bridge.provider_result(SocketOpened(channel="main"), 0.2)
    update = _sent(out)[0]
    assert update["type"] == "session.update"
    assert update["session"]["instructions"] == "You serve +14155550100."
    assert {t["name"] for t in update["session"]["tools"]} == {"lookup", "end_call"}
    _server(bridge, {"type": "session.created", "session": {}}, 0.3)
    _server(bridge, {"type": "session.updated", "session": {}}, 0.3)

    audio = bytes(range(256)) * 31 + bytes(range(64))  # 8000 mu-law bytes = 1 s
    names = []
    for i in range(10):
        delta = {
            "type": "response.output_audio.delta",
            "response_id": "r1",
            "item_id": "item_A",
            "output_index": 0,
            "content_index": 0,
            "delta": base64.b64encode(audio[i * 800 : (i + 1) * 800]).decode(),
        }
        frames = carrier_frames(_server(bridge, delta, 1.0))
        names += [f["mark"]["name"] for f in frames if f["event"] == "mark"]
        payloads = [
            base64.b64decode(f["media"]["payload"]) for f in frames if f["event"] == "media"
        ]
        assert b"".join(payloads) == audio[i * 800 : (i + 1) * 800]  # passthrough, exact
    for name in names[:4]:
        bridge.carrier_message(mark(name), 1.5)
    out = _server(
        bridge,
        {"type": "input_audio_buffer.speech_started", "audio_start_ms": 900, "item_id": "u1"},
        1.6,
    )
    assert [f["event"] for f in carrier_frames(out)] == ["clear"]
    wire = _sent(out)
    assert {"type": "response.cancel"} in [{"type": m["type"]} for m in wire]
    (truncate,) = [m for m in wire if m["type"] == "conversation.item.truncate"]
    assert truncate["item_id"] == "item_A" and truncate["audio_end_ms"] == 400
    ended = bridge.hangup("test over", 2.0)
    assert len(callbacks(ended, "on_call_end")) == 1
