"""The echo agent: energy VAD turn taking, echo of the caller's audio, beeps
for Say, and a whole echo call through the bridge and a Twilio stream."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core import LocalProtocolError
from patter_core.audio import PCM16_16K
from patter_core.bridge import BridgeConfig, CallBridge, SendToCarrier
from patter_core.media import TwilioMediaStream
from patter_core.providers import (
    AudioOut,
    Cancel,
    EchoConfig,
    EchoSession,
    ProviderEvent,
    ProviderSession,
    ResponseDone,
    Say,
    SendAudio,
    SendText,
    SessionReady,
    UserSpeechStarted,
    UserSpeechStopped,
)

from .test_bridge_support import (
    connected,
    mark,
    media,
    peak_hz,
    start,
    tone,
    ulaw_decode,
    ulaw_encode,
    verify,
)

SILENCE_20MS = bytes(640)


def feed(session: EchoSession, audio: bytes, now: float, step: int = 640) -> list[ProviderEvent]:
    events: list[ProviderEvent] = []
    for i in range(0, len(audio), step):
        events += session.send(SendAudio(audio=audio[i : i + step]), now)
    assert session.next_deadline() is None  # nothing is held for a timer
    return events


def test_start_is_ready_at_once() -> None:
    session: ProviderSession = EchoSession()
    assert session.input_format == PCM16_16K and session.output_format == PCM16_16K
    assert session.start(3.0) == [SessionReady()]
    assert session.io_to_send() == []
    assert session.next_deadline() is None and session.handle_timer(3.0) == []


def test_a_turn_is_echoed_after_the_pause() -> None:
    session = EchoSession()
    speech = tone(300, 500)
    events = feed(session, speech, 1.0)
    assert events == [UserSpeechStarted(item_id="echo-1")]  # after 200 ms of speech
    assert feed(session, SILENCE_20MS * 29, 1.0) == []  # 580 ms: not yet a pause
    events = feed(session, SILENCE_20MS, 1.0)
    assert events[0] == UserSpeechStopped(item_id="echo-1")
    assert events[-1] == ResponseDone(item_id="echo-1")
    chunks = events[1:-1]
    assert all(isinstance(c, AudioOut) and c.item_id == "echo-1" for c in chunks)
    assert len(chunks) == 3  # 500 ms in 200 ms chunks
    echoed = b"".join(c.audio for c in chunks if isinstance(c, AudioOut))
    assert echoed == speech  # the speech exactly, trailing silence dropped
    # The next turn gets the next item id.
    events = feed(session, tone(300, 300) + SILENCE_20MS * 30, 2.0)
    assert UserSpeechStopped(item_id="echo-2") in events


def test_a_click_is_not_a_turn() -> None:
    session = EchoSession()
    assert feed(session, tone(300, 100) + SILENCE_20MS * 40, 1.0) == []
    assert feed(session, tone(300, 240), 1.0) == [UserSpeechStarted(item_id="echo-1")]


def test_quiet_noise_is_not_speech() -> None:
    session = EchoSession()
    noise = tone(300, 1000, amplitude=400.0)  # RMS about 283 < 500
    assert feed(session, noise + SILENCE_20MS * 40, 1.0) == []


def test_cancel_forgets_the_utterance_and_others_are_ignored() -> None:
    session = EchoSession()
    feed(session, tone(300, 300), 1.0)
    assert session.send(Cancel(), 1.0) == []
    assert session.send(SendText(text="The caller pressed 1"), 1.0) == []
    assert feed(session, SILENCE_20MS * 40, 1.0) == []


def test_long_utterances_are_cut() -> None:
    session = EchoSession(EchoConfig(max_utterance_ms=1000))
    events = feed(session, tone(300, 1200), 1.0, step=6400)
    assert UserSpeechStopped(item_id="echo-1") in events
    audio = b"".join(e.audio for e in events if isinstance(e, AudioOut))
    assert len(audio) == 32000  # 1 s at 16 kHz


def test_say_plays_two_beeps_at_440_hz() -> None:
    session = EchoSession()
    events = session.send(Say(text="Hello"), 0.0)
    assert isinstance(events[0], AudioOut) and events[0].item_id == "echo-say-1"
    assert events[1] == ResponseDone(item_id="echo-say-1")
    audio = events[0].audio
    assert len(audio) == (150 + 100 + 150) * 32
    assert abs(peak_hz(audio[: 150 * 32], 16000) - 440) < 10
    assert audio[150 * 32 : 250 * 32] == bytes(100 * 32)


def test_close_silences_it() -> None:
    session = EchoSession()
    session.start(0.0)
    session.close(0.0)
    assert session.send(Say(text="x"), 0.0) == []
    assert session.start(1.0) == [] and session.next_deadline() is None


def test_bad_config() -> None:
    with pytest.raises(LocalProtocolError):
        EchoConfig(silence_ms=30)
    with pytest.raises(LocalProtocolError):
        EchoConfig(speech_rms=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=1500), max_size=12))
def test_any_audio_split_gives_well_formed_turns(chunks: list[bytes]) -> None:
    session = EchoSession()
    events: list[ProviderEvent] = []
    for chunk in chunks:
        events += session.send(SendAudio(audio=chunk[: len(chunk) // 2 * 2]), 0.0)
    for event in events:
        assert isinstance(event, UserSpeechStarted | UserSpeechStopped | AudioOut | ResponseDone)


def test_echo_call_end_to_end_on_twilio() -> None:
    """A 300 Hz burst from the caller comes back as mu-law at 300 Hz."""
    stream = TwilioMediaStream()
    bridge = CallBridge(
        stream=stream,
        carrier="twilio",
        session_factory=lambda info: EchoSession(),
        verify_token=verify,
        config=BridgeConfig(first_message="Hello"),
    )
    actions = bridge.carrier_message(connected(), 0.0) + bridge.carrier_message(start(), 0.0)
    # The greeting: two beeps went out at once, 400 ms = 20 frames.
    sent = [m for a in actions if isinstance(a, SendToCarrier) for m in a.messages]
    greeting = [
        base64.b64decode(m_["media"]["payload"])
        for m_ in map(_load, sent)
        if m_["event"] == "media"
    ]
    assert 20 <= len(greeting) <= 21  # 400 ms, plus the resampler's tail at the end
    assert abs(peak_hz(ulaw_decode(b"".join(greeting)[:1200]), 8000) - 440) < 10
    for name in [m_["mark"]["name"] for m_ in map(_load, sent) if m_["event"] == "mark"]:
        bridge.carrier_message(mark(name), 0.5)
    assert stream.played_ms == stream.sent_ms and 400 <= stream.sent_ms <= 420

    caller = ulaw_encode(tone(300, 600, rate=8000)) + b"\xff" * 8 * 800
    out = []
    now = 1.0
    for i in range(0, len(caller), 160):
        out += bridge.carrier_message(media(caller[i : i + 160]), now)
        now += 0.02
    frames = [_load(m) for a in out if isinstance(a, SendToCarrier) for m in a.messages]
    payload = b"".join(
        base64.b64decode(f["media"]["payload"]) for f in frames if f["event"] == "media"
    )
    assert 0.55 * 8000 <= len(payload) <= 0.65 * 8000  # the 600 ms burst, not the silence
    assert abs(peak_hz(ulaw_decode(payload), 8000) - 300) < 10
    assert sum(f["event"] == "mark" for f in frames) >= 3
    assert not bridge.ended


def _load(message: str) -> dict[str, Any]:
    import json

    value = json.loads(message)
    assert isinstance(value, dict)
    return value


def test_rms_threshold_is_documented_level() -> None:
    # 500 of 32767 is about -36 dBFS, as the module says.
    assert round(20 * np.log10(500 / 32767)) == -36


def test_barge_in_against_the_echo() -> None:
    stream = TwilioMediaStream()
    bridge = CallBridge(
        stream=stream,
        carrier="twilio",
        session_factory=lambda info: EchoSession(),
        verify_token=verify,
    )
    bridge.carrier_message(start(), 0.0)
    turn = ulaw_encode(tone(300, 1000, rate=8000)) + b"\xff" * 8 * 700
    for i in range(0, len(turn), 160):
        bridge.carrier_message(media(turn[i : i + 160]), 1.0)
    assert 1000 <= stream.sent_ms <= 1025 and stream.played_ms == 0  # the echo is queued
    out = []
    for i in range(0, 8 * 300, 160):  # the caller talks over it
        out += bridge.carrier_message(media(turn[i : i + 160]), 3.0)
    events = [_load(m)["event"] for a in out if isinstance(a, SendToCarrier) for m in a.messages]
    assert events == ["clear"]
    assert stream.sent_ms == 0
