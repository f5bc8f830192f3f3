"""Shared pieces of the call bridge tests: Twilio frames, a scripted provider
session, a carrier control, and an independent G.711 mu-law oracle."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from patter_core import SignatureError
from patter_core.audio import PCM16_16K, AudioFormat, Encoding
from patter_core.bridge import (
    Action,
    BridgeConfig,
    CallBridge,
    CallInfo,
    FireCallback,
    HttpCall,
    ProviderIo,
    SendToCarrier,
)
from patter_core.bridge._tools import error_output, tool_output
from patter_core.http import HttpRequest
from patter_core.media import TwilioMediaStream
from patter_core.providers import (
    CloseSocket,
    IoAction,
    IoResult,
    OpenSocket,
    ProviderCommand,
    ProviderEvent,
    SendMessage,
    SocketMessage,
    SocketOpened,
)

STREAM_SID = "MZ00000000000000000000000000000001"
CALL_SID = "CA00000000000000000000000000000001"

# -- Twilio frames --------------------------------------------------------------


def connected() -> str:
    return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def start(token: str | None = "good", caller: str = "+14155550100") -> str:
    params = {"caller": caller, "callee": "+18005550199"}
    if token is not None:
        params["stream_token"] = token
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "accountSid": "AC1",
                "streamSid": STREAM_SID,
                "callSid": CALL_SID,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": params,
            },
            "streamSid": STREAM_SID,
        }
    )


def media(payload: bytes) -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": "3",
            "media": {
                "track": "inbound",
                "chunk": "1",
                "timestamp": "0",
                "payload": base64.b64encode(payload).decode(),
            },
            "streamSid": STREAM_SID,
        }
    )


def mark(name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": STREAM_SID, "mark": {"name": name}})


def dtmf(digit: str) -> str:
    return json.dumps(
        {
            "event": "dtmf",
            "streamSid": STREAM_SID,
            "dtmf": {"track": "inbound_track", "digit": digit},
        }
    )


def stop() -> str:
    return json.dumps({"event": "stop", "streamSid": STREAM_SID, "stop": {"callSid": CALL_SID}})


# -- audio ----------------------------------------------------------------------


def ulaw_decode(data: bytes) -> bytes:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    magnitude = ((((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype("<i2").tobytes()


def ulaw_encode(pcm: bytes) -> bytes:
    s = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
    sign = np.where(s < 0, 0x80, 0)
    s = np.minimum(np.abs(s), 32635) + 0x84
    exponent = np.floor(np.log2(s)).astype(np.int32) - 7
    mantissa = (s >> (exponent + 3)) & 0x0F
    return bytes((~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes())


def tone(hz: float, ms: int, rate: int = 16000, amplitude: float = 8000.0) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return np.round(amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


def peak_hz(pcm: bytes, rate: int) -> float:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


# -- fakes ----------------------------------------------------------------------


class FakeSession:
    """A scripted provider session: events come from ``inbox``."""

    #: Every command, caller audio included, goes through send() (``commands``).
    audio_now = False

    def __init__(self, fmt: AudioFormat = PCM16_16K) -> None:
        self.fmt = fmt
        self.commands: list[ProviderCommand] = []
        self.inbox: list[ProviderEvent] = []
        self.io: list[IoAction] = []
        self.results: list[IoResult] = []  # every I/O result given, in order
        self.started = False
        self.closed = False

    @property
    def input_format(self) -> AudioFormat:
        return self.fmt

    @property
    def output_format(self) -> AudioFormat:
        return self.fmt

    def start(self, now: float) -> list[ProviderEvent]:
        self.started = True
        self.io.append(OpenSocket(channel="main", url="wss://provider.invalid/"))
        return []

    def send(self, command: ProviderCommand, now: float) -> list[ProviderEvent]:
        self.commands.append(command)
        self.io.append(SendMessage(channel="main", data=type(command).__name__))
        return []

    def close(self, now: float) -> None:
        if not self.closed:
            self.closed = True
            self.io.append(CloseSocket(channel="main"))

    def io_to_send(self) -> list[IoAction]:
        io, self.io = self.io, []
        return io

    def receive_io(self, result: IoResult, now: float) -> list[ProviderEvent]:
        self.results.append(result)
        events, self.inbox = self.inbox, []
        return events

    def next_deadline(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> list[ProviderEvent]:
        return []


class FakeControl:
    """Carrier REST builder recording what it was asked for."""

    def hangup(self, call_id: str) -> HttpRequest | None:
        return HttpRequest(method="POST", url=f"https://carrier.invalid/{call_id}/hangup")

    def transfer(self, call_id: str, target: str) -> HttpRequest | None:
        return HttpRequest(
            method="POST", url=f"https://carrier.invalid/{call_id}/transfer", body=target.encode()
        )

    def start_recording(self, call_id: str) -> HttpRequest | None:
        return HttpRequest(method="POST", url=f"https://carrier.invalid/{call_id}/record")

    def leave_message(self, call_id: str, text: str) -> HttpRequest | None:
        return HttpRequest(
            method="POST", url=f"https://carrier.invalid/{call_id}/say", body=text.encode()
        )


def verify(token: str, call_id: str, now: float) -> None:
    if token != "good" or call_id != CALL_SID:
        raise SignatureError("bad stream token")


class Rig:
    """A bridge on a Twilio stream with a fake session, plus what it produced."""

    def __init__(
        self, config: BridgeConfig | None = None, session: Any = None, *, timeouts: bool = False
    ) -> None:
        config = config if config is not None else BridgeConfig()
        if not timeouts:
            # Scripts run on a float clock with long gaps; the watchdogs
            # (no start, no media, provider set-up) have tests of their own.
            config = dataclasses.replace(
                config,
                start_timeout_seconds=None,
                media_timeout_seconds=None,
                provider_timeout_seconds=None,
            )
        self.session = session if session is not None else FakeSession()
        self.infos: list[CallInfo] = []
        self.stream = TwilioMediaStream()
        self.bridge = CallBridge(
            stream=self.stream,
            carrier="twilio",
            session_factory=self._factory,
            verify_token=verify,
            config=config,
            control=FakeControl(),
        )
        self.actions: list[Action] = []

    def _factory(self, info: CallInfo) -> Any:
        self.infos.append(info)
        return self.session

    def carrier(self, message: str, now: float) -> list[Action]:
        out = self.bridge.carrier_message(message, now)
        self.actions += out
        return out

    def provider(self, events: list[ProviderEvent], now: float) -> list[Action]:
        self.session.inbox = list(events)
        out = self.bridge.provider_result(SocketMessage(channel="main", data="scripted"), now)
        self.actions += out
        return out

    def connect(self, now: float = 0.0, ready: bool = True) -> list[Action]:
        from patter_core.providers import SessionReady

        out = self.carrier(connected(), now) + self.carrier(start(), now)
        self.session.inbox = []
        out += self.bridge.provider_result(SocketOpened(channel="main"), now)
        if ready:
            out += self.provider([SessionReady()], now)
        return out


def carrier_frames(actions: list[Action]) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    for action in actions:
        if isinstance(action, SendToCarrier):
            frames += [json.loads(m) for m in action.messages]
    return frames


def callbacks(actions: list[Action], name: str) -> list[Mapping[str, object]]:
    """The payloads of the callbacks ``name`` fired, as the user's dicts."""
    return [a.payload.as_dict() for a in actions if isinstance(a, FireCallback) and a.name == name]


def provider_io(actions: list[Action]) -> list[IoAction]:
    return [a.action for a in actions if isinstance(a, ProviderIo)]


def http_calls(actions: list[Action]) -> list[HttpCall]:
    return [a for a in actions if isinstance(a, HttpCall)]


def test_ulaw_oracle_round_trip() -> None:
    pcm = tone(300, 100, rate=8000)
    back = np.frombuffer(ulaw_decode(ulaw_encode(pcm)), dtype="<i2").astype(float)
    original = np.frombuffer(pcm, dtype="<i2").astype(float)
    assert np.max(np.abs(back - original)) < 300  # mu-law step at 8000 amplitude
    assert ulaw_decode(b"\xff") == b"\x00\x00"
    assert PCM16_16K.encoding is Encoding.PCM16LE


def test_tool_results_as_the_model_reads_them() -> None:
    """Text goes as it is; anything else as JSON, with what JSON cannot carry as text."""
    assert tool_output("Order 42 ships today.") == "Order 42 ships today."
    assert tool_output({"status": "shipped", "eta": datetime.date(2026, 1, 2)}) == (
        '{"status": "shipped", "eta": "2026-01-02"}'
    )
    assert tool_output(None) == "null"
    assert error_output('no handler for tool "x"') == '{"error": "no handler for tool \\"x\\""}'
