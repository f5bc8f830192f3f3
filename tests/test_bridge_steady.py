"""The steady state's quick way (``CallBridge._hot_media`` and ``_hot_audio``)
does exactly what the general path does.

Two bridges, each with a real Twilio stream and a real provider session
(OpenAI Realtime in both of its audio formats, ElevenLabs), get the same
inputs at the same times: carrier media of every size, mark echoes,
keypresses, provider audio, speech, transcripts, tool calls, errors,
malformed messages and the passing of time with its timers. One takes the
quick way whenever its call is steady; the other never does. After every
input both must have asked for exactly the same actions (bytes on both
wires, callbacks, timers, the end), and the quick way must really have run.
"""

from __future__ import annotations

import functools
import json
import math
from base64 import b64encode
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core import LocalProtocolError
from patter_core.bridge import Action, BridgeConfig, CallBridge, CallInfo
from patter_core.media import TwilioMediaStream
from patter_core.providers import (
    EchoSession,
    ElevenLabsConfig,
    ElevenLabsSession,
    ProviderSession,
    SendAudio,
    SocketClosed,
    SocketMessage,
    SocketOpened,
)

from .test_bridge_openai import _factory as openai_session
from .test_bridge_support import connected, dtmf, mark, media, start, stop, verify


class _General(CallBridge):
    """The reference: never steady, so every input takes the general path."""

    def _settle(self) -> None:
        super()._settle()
        self._steady_until = -math.inf


class _Counted(CallBridge):
    """The bridge under test, counting the inputs that took the quick way."""

    quick = 0

    def _hot_media(self, *args: Any) -> list[Action]:
        self.quick += 1
        return super()._hot_media(*args)

    def _hot_audio(self, *args: Any) -> list[Action]:
        self.quick += 1
        return super()._hot_audio(*args)


def _openai(fmt: str) -> Callable[[CallInfo], ProviderSession]:
    return functools.partial(openai_session, audio_format=fmt)


def _elevenlabs(info: CallInfo) -> ProviderSession:
    return ElevenLabsSession(ElevenLabsConfig(agent_id="agent_1"))


_PROVIDERS = {"pcmu": _openai("pcmu"), "pcm24": _openai("pcm24"), "elevenlabs": _elevenlabs}


def _tone(n: int, seed: int) -> bytes:
    """``n`` bytes of audio that is not silence (any codec takes any bytes)."""
    return ((np.arange(n) * (7 + seed) + seed) % 256).astype(np.uint8).tobytes()


def _openai_message(kind: str, arg: int) -> dict[str, Any]:
    item = f"item_{arg % 3}"
    if kind == "ready":
        return {"type": "session.updated", "session": {}}
    if kind == "created":
        return {"type": "response.created", "response": {"id": f"resp_{arg}"}}
    if kind == "audio":  # 0 to 70 ms at 24 kHz PCM16 or 8 kHz mu-law: both even
        size = (arg % 8) * 160
        return {
            "type": "response.output_audio.delta",
            "item_id": item,
            "delta": b64encode(_tone(size, arg)).decode(),
        }
    if kind == "speech":
        return {"type": "input_audio_buffer.speech_started", "item_id": item}
    if kind == "quiet":
        return {"type": "input_audio_buffer.speech_stopped", "item_id": item}
    if kind == "said":
        return {
            "type": "response.output_audio_transcript.done",
            "item_id": item,
            "transcript": f"answer {arg}",
        }
    if kind == "heard":
        return {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item,
            "transcript": f"question {arg}",
        }
    if kind == "done":
        return {
            "type": "response.done",
            "response": {"id": f"resp_{arg}", "status": "completed", "output": []},
        }
    if kind == "tool":
        name = "end_call" if arg % 4 == 0 else "lookup"
        return {
            "type": "response.output_item.done",
            "item": {
                "type": "function_call",
                "id": item,
                "call_id": f"call_{arg}",
                "name": name,
                "arguments": "{}",
                "status": "completed",
            },
        }
    if kind == "error":
        return {
            "type": "error",
            "error": {"type": "invalid_request_error", "code": "bad", "message": "no"},
        }
    return {"type": "rate_limits.updated", "rate_limits": []}


def _elevenlabs_message(kind: str, arg: int) -> dict[str, Any]:
    if kind == "ready":
        return {
            "type": "conversation_initiation_metadata",
            "conversation_initiation_metadata_event": {
                "conversation_id": "conv_1",
                "user_input_audio_format": "ulaw_8000",
                "agent_output_audio_format": "pcm_16000" if arg % 2 else "ulaw_8000",
            },
        }
    if kind == "audio":
        return {
            "type": "audio",
            "audio_event": {
                "audio_base_64": b64encode(_tone((arg % 8) * 160, arg)).decode(),
                "event_id": 10 + arg % 3,
            },
        }
    if kind == "speech":
        return {"type": "interruption", "interruption_event": {"event_id": 10 + arg % 4}}
    if kind == "heard":
        return {
            "type": "user_transcript",
            "user_transcription_event": {"user_transcript": f"question {arg}"},
        }
    if kind == "said":
        return {
            "type": "agent_response",
            "agent_response_event": {"agent_response": f"answer {arg}"},
        }
    if kind == "tool":
        return {
            "type": "client_tool_call",
            "client_tool_call": {
                "tool_name": "end_call" if arg % 4 == 0 else "lookup",
                "tool_call_id": f"call_{arg}",
                "parameters": {},
            },
        }
    if kind == "error":
        return {"type": "error", "error_event": {"code": 1008, "message": "no"}}
    return {"type": "ping", "ping_event": {"event_id": arg}}


_KINDS = [
    "ready",
    "created",
    "audio",
    "audio",
    "audio",
    "audio",
    "speech",
    "quiet",
    "said",
    "heard",
    "done",
    "tool",
    "error",
    "other",
]

_step = st.one_of(
    st.tuples(st.just("media"), st.sampled_from([160, 160, 160, 80, 320, 0, 1])),
    st.tuples(st.just("media"), st.just(160)),
    st.tuples(st.just("provider"), st.tuples(st.sampled_from(_KINDS), st.integers(0, 20))),
    st.tuples(st.just("provider"), st.tuples(st.just("audio"), st.integers(0, 20))),
    st.tuples(st.just("echo"), st.integers(0, 3)),
    st.tuples(st.just("tick"), st.sampled_from([0.02, 0.02, 0.5, 2.0, 7.0])),
    st.tuples(st.just("dtmf"), st.sampled_from("1#")),
    st.tuples(st.just("raw"), st.sampled_from(["{", '{"type": 5}', "[]"])),
    st.tuples(st.just("lost"), st.none()),
    st.tuples(st.just("stop"), st.none()),
)
_configs = st.builds(
    lambda first, silence, barge, held, cap: BridgeConfig(
        first_message="Hello!" if first else "",
        silence_timeout_seconds=silence,
        barge_in_min_ms=barge,
        first_message_interruptible=not held,
        max_duration_seconds=cap,
        provider_max_duration=None if cap is None else cap + 30,
        provider_limit_margin_seconds=20.0,
    ),
    st.booleans(),
    st.sampled_from([None, 3.0]),
    st.sampled_from([0, 300]),
    st.booleans(),
    st.sampled_from([None, 40.0]),
)


class _Pair:
    """The two bridges, fed alike; every input's actions compared."""

    def __init__(self, provider: str, config: BridgeConfig) -> None:
        factory = _PROVIDERS[provider]
        self.eleven = provider == "elevenlabs"
        self.now = 0.0
        self.hot, self.ref = (
            kind(
                stream=TwilioMediaStream(),
                carrier="twilio",
                session_factory=factory,
                verify_token=verify,
                config=config,
            )
            for kind in (_Counted, _General)
        )
        self.inputs = 0
        self.feed(lambda b, now: b.carrier_message(connected(), now))
        self.feed(lambda b, now: b.carrier_message(start(), now))
        self.feed(lambda b, now: b.provider_result(SocketOpened(channel="main"), now))

    def feed(self, give: Callable[[CallBridge, float], list[Action]]) -> list[Action]:
        got, want = give(self.hot, self.now), give(self.ref, self.now)
        self.inputs += 1
        assert got == want, f"input {self.inputs}: quick way {got!r} != general {want!r}"
        assert self.hot.next_deadline() == self.ref.next_deadline()
        return got

    def provider(self, data: str) -> None:
        message = SocketMessage(channel="main", data=data)
        self.feed(lambda b, now: b.provider_result(message, now))

    def step(self, kind: str, arg: Any) -> None:
        if kind == "media":
            frame = media(_tone(arg, self.inputs))
            self.feed(lambda b, now: b.carrier_message(frame, now))
        elif kind == "provider":
            make = _elevenlabs_message if self.eleven else _openai_message
            self.provider(json.dumps(make(*arg)))
        elif kind == "raw":
            self.provider(arg)
        elif kind == "echo":
            pending = self.hot._stream.pending_marks  # the same names on both
            assert pending == self.ref._stream.pending_marks
            if pending:
                echo = mark(pending[min(arg, len(pending) - 1)])
                self.feed(lambda b, now: b.carrier_message(echo, now))
        elif kind == "tick":
            self.now += arg
            deadline = self.hot.next_deadline()
            if deadline is not None and self.now >= deadline:
                self.feed(lambda b, now: b.handle_timer(now))
        elif kind == "dtmf":
            frame = dtmf(arg)
            self.feed(lambda b, now: b.carrier_message(frame, now))
        elif kind == "lost":
            closed = SocketClosed(channel="main", code=1006, reason="lost")
            self.feed(lambda b, now: b.provider_result(closed, now))
        else:
            self.feed(lambda b, now: b.carrier_message(stop(), now))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(_PROVIDERS)),
    _configs,
    st.lists(_step, max_size=60),
)
def test_the_quick_way_acts_as_the_general_path(
    provider: str, config: BridgeConfig, steps: list[tuple[str, Any]]
) -> None:
    pair = _Pair(provider, config)
    for kind, arg in steps:
        pair.step(kind, arg)
    pair.feed(lambda b, now: b.carrier_closed(now))
    assert pair.hot.ended and pair.ref.ended


def _conversation(pair: _Pair) -> None:
    """A steady call: ready, then a caller frame and an agent delta every 20 ms,
    marks echoed as they come, a barge-in, an answer's end."""
    pair.step("provider", ("ready", 0))
    pair.step("provider", ("created", 1))
    for i in range(200):
        pair.step("media", 160)
        # One answer before the barge-in and one after (ids 1, then 2).
        pair.step("provider", ("audio", (1 if i <= 120 else 2) + 3 * (i % 3) if i < 150 else 0))
        if i % 7 == 0:
            pair.step("echo", 0)
        if i == 120:
            pair.step("provider", ("speech", 1))
            pair.step("tick", 0.5)
            pair.step("provider", ("quiet", 1))
        pair.step("tick", 0.02)
    pair.step("provider", ("done", 1))
    pair.feed(lambda b, now: b.carrier_message(stop(), now))


def test_a_steady_call_takes_the_quick_way_and_ends_alike() -> None:
    for provider in _PROVIDERS:
        for config in (
            BridgeConfig(),
            BridgeConfig(silence_timeout_seconds=1.0, first_message="Hi"),
        ):
            pair = _Pair(provider, config)
            _conversation(pair)
            assert pair.hot.ended and pair.ref.ended
            # Most of the 400 audio inputs went the quick way (not the ones
            # before readiness, around the barge-in or at a timer's deadline).
            assert pair.hot.quick >= 300, (provider, pair.hot.quick)


def test_the_quick_message_is_the_one_send_would_send() -> None:
    for make in _PROVIDERS.values():
        pair = _Pair("pcmu", BridgeConfig())  # only for a CallInfo
        session = make(pair.hot.call_info)  # type: ignore[arg-type]
        session.start(0.0)
        assert not session.audio_now  # no socket yet: audio is held in the session
        session.receive_io(SocketOpened(channel="main"), 0.0)
        session.io_to_send()
        ready = (
            _elevenlabs_message("ready", 0) if make is _elevenlabs else _openai_message("ready", 0)
        )
        session.receive_io(SocketMessage(channel="main", data=json.dumps(ready)), 0.0)
        session.io_to_send()
        assert session.audio_now
        quick = session.audio_message(b"\x01\x02\x03\x04")
        assert session.send(SendAudio(audio=b"\x01\x02\x03\x04"), 0.0) == []
        assert session.io_to_send() == [quick]
        session.close(0.0)
        assert not session.audio_now
    echo = EchoSession()
    assert not echo.audio_now  # its VAD makes events from caller audio
    with pytest.raises(LocalProtocolError):
        echo.audio_message(b"\x00\x00")
