"""The same bridge on a Telnyx stream: token from ``connected``, L16 at 16 kHz,
caller and callee from ``start``."""

from __future__ import annotations

import base64
import json

import numpy as np

from patter_core.bridge import CallBridge, CloseCarrier, FireCallback, SendToCarrier
from patter_core.media import TelnyxMediaStream
from patter_core.providers import EchoSession

from .test_bridge_support import peak_hz, tone

CONTROL_ID = "v3:call-control-id"


def _verify(token: str, call_id: str, now: float) -> None:
    from patter_core import SignatureError

    if token != "telnyx-secret" or call_id != CONTROL_ID:
        raise SignatureError("bad token")


def _start() -> str:
    return json.dumps(
        {
            "event": "start",
            "sequence_number": "1",
            "stream_id": "S1",
            "start": {
                "call_control_id": CONTROL_ID,
                "from": "+13122010094",
                "to": "+13122123456",
                "media_format": {"encoding": "L16", "sample_rate": 16000, "channels": 1},
            },
        }
    )


def _media(payload: bytes, seq: int) -> str:
    return json.dumps(
        {
            "event": "media",
            "sequence_number": str(seq),
            "stream_id": "S1",
            "media": {
                "track": "inbound",
                "chunk": str(seq),
                "timestamp": str(seq * 20),
                "payload": base64.b64encode(payload).decode(),
            },
        }
    )


def _bridge() -> CallBridge:
    return CallBridge(
        stream=TelnyxMediaStream(),
        carrier="telnyx",
        session_factory=lambda info: EchoSession(),
        verify_token=_verify,
    )


def test_telnyx_echo_call_with_token_in_connected() -> None:
    bridge = _bridge()
    out = bridge.carrier_message(
        json.dumps(
            {
                "event": "connected",
                "version": "1.0.0",
                "x-telnyx-streaming-auth-token": "telnyx-secret",
            }
        ),
        0.0,
    )
    out += bridge.carrier_message(_start(), 0.0)
    (started,) = [
        a.payload.as_dict() for a in out if isinstance(a, FireCallback) and a.name == "on_call_start"
    ]
    assert started["caller"] == "+13122010094" and started["callee"] == "+13122123456"
    pcm_le = tone(300, 600) + bytes(32 * 800)
    big_endian = np.frombuffer(pcm_le, "<i2").astype(">i2").tobytes()
    sent: list[str] = []
    for seq, i in enumerate(range(0, len(big_endian), 640), start=2):
        for action in bridge.carrier_message(_media(big_endian[i : i + 640], seq), 1.0):
            if isinstance(action, SendToCarrier):
                sent += action.messages
    frames = [json.loads(m) for m in sent]
    payload = b"".join(
        base64.b64decode(f["media"]["payload"]) for f in frames if f["event"] == "media"
    )
    assert "stream_id" not in frames[0]  # Telnyx outbound frames carry none
    back = np.frombuffer(payload, ">i2").astype("<i2").tobytes()
    assert abs(len(back) - len(tone(300, 600))) <= 640
    assert abs(peak_hz(back, 16000) - 300) < 10


def test_telnyx_without_token_is_closed_1008() -> None:
    bridge = _bridge()
    out = bridge.carrier_message(_start(), 0.0)
    assert CloseCarrier(code=1008, reason="token_rejected") in out
