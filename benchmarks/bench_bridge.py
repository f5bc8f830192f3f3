"""CPU cost of one frame pair in the core, with and without the steady state's quick way.

    python -m benchmarks.bench_bridge [--pairs 20000] [--repeats 5]

A pair is what a live call handles every 20 ms: a Twilio media message from
the caller (``CallBridge.carrier_message``) and an OpenAI Realtime audio
delta from the agent (``CallBridge.provider_result``), each turned into the
message for the other side. One bridge with a real Twilio stream and a real
OpenAI session per run, on both audio paths (``pcmu`` passes mu-law
through; ``pcm24`` transcodes both ways); no sockets, no event loop. It
prints the best time per pair over the repeats, for the quick way
(``_hot_media``, ``_hot_audio``) and for the general path alone.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import sys
import time
from typing import Literal

import numpy as np

from patter_core.bridge import BridgeConfig, CallBridge, CallInfo
from patter_core.media import TwilioMediaStream
from patter_core.providers import (
    MAIN_CHANNEL,
    OpenAIRealtimeConfig,
    OpenAIRealtimeSession,
    ProviderSession,
    SocketMessage,
    SocketOpened,
)

_Format = Literal["pcmu", "pcm24"]
_SID = "MZ00000000000000000000000000000001"
_CALL = "CA00000000000000000000000000000001"


class _GeneralOnly(CallBridge):
    """Never steady: every input takes the general path."""

    def _settle(self) -> None:
        super()._settle()
        self._steady_until = -math.inf


def _twilio(event: str, **fields: object) -> str:
    return json.dumps({"event": event, "streamSid": _SID, **fields})


def _bridge(audio_format: _Format, quick: bool) -> CallBridge:
    def factory(info: CallInfo) -> ProviderSession:
        config = OpenAIRealtimeConfig(api_key="sk-bench", audio_format=audio_format)
        return OpenAIRealtimeSession(config)

    kind = CallBridge if quick else _GeneralOnly
    # No media or set-up watchdogs: their deadlines would fall inside a long run.
    config = BridgeConfig(
        start_timeout_seconds=None, media_timeout_seconds=None, provider_timeout_seconds=None
    )
    bridge = kind(
        stream=TwilioMediaStream(),
        carrier="twilio",
        session_factory=factory,
        verify_token=None,
        config=config,
    )
    start = {
        "streamSid": _SID,
        "callSid": _CALL,
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    bridge.carrier_message(_twilio("start", start=start), 0.0)
    bridge.provider_result(SocketOpened(channel=MAIN_CHANNEL), 0.0)
    for event in (
        {"type": "session.updated", "session": {}},
        {"type": "response.created", "response": {"id": "resp_1"}},
    ):
        bridge.provider_result(SocketMessage(channel=MAIN_CHANNEL, data=json.dumps(event)), 0.0)
    return bridge


def measure(audio_format: _Format, quick: bool, pairs: int, repeats: int) -> float:
    """Best microseconds per frame pair over ``repeats`` runs of ``pairs``."""
    bridge = _bridge(audio_format, quick)
    ulaw = ((np.arange(160) * 7) % 256).astype(np.uint8).tobytes()
    agent = ulaw
    if audio_format == "pcm24":
        agent = (np.sin(np.arange(480) * 0.1) * 8000).astype("<i2").tobytes()
    # Both as their senders write them: compact, in the documented key order.
    caller = json.dumps(
        {
            "event": "media",
            "sequenceNumber": "3",
            "media": {
                "track": "inbound",
                "chunk": "1",
                "timestamp": "20",
                "payload": base64.b64encode(ulaw).decode(),
            },
            "streamSid": _SID,
        },
        separators=(",", ":"),
    )
    delta = json.dumps(
        {
            "type": "response.output_audio.delta",
            "event_id": "event_1",
            "response_id": "resp_1",
            "item_id": "item_1",
            "output_index": 0,
            "content_index": 0,
            "delta": base64.b64encode(agent).decode(),
        },
        separators=(",", ":"),
    )
    reply = SocketMessage(channel=MAIN_CHANNEL, data=delta)
    now = 1.0
    best = math.inf
    for _ in range(repeats + 1):  # the first run warms up
        started = time.perf_counter()
        for _ in range(pairs):
            now += 0.02
            bridge.carrier_message(caller, now)
            bridge.provider_result(reply, now)
        best = min(best, time.perf_counter() - started)
    if bridge.ended:
        raise RuntimeError("the call ended during the benchmark")
    return best / pairs * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.repeats < 1:
        parser.error("--pairs and --repeats must be at least 1")
    print(
        f"{'path':8} {'quick way':>10} {'general':>10}   (us per frame pair, best of {args.repeats})"
    )
    formats: tuple[_Format, ...] = ("pcmu", "pcm24")
    for audio_format in formats:
        quick = measure(audio_format, True, args.pairs, args.repeats)
        general = measure(audio_format, False, args.pairs, args.repeats)
        print(f"{audio_format:8} {quick:10.1f} {general:10.1f}   ({general / quick:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
