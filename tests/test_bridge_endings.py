"""Every way a call ends runs one clean-up path; on_call_end fires exactly once;
a stream with a bad token never reaches the provider."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core.bridge import Action, BridgeConfig, CallBridge, CloseCarrier
from patter_core.bridge._config import fill_prompt_variables, normalize_number
from patter_core.media import TwilioMediaStream
from patter_core.providers import (
    AudioOut,
    CloseSocket,
    ProviderError,
    ResponseDone,
    SessionReady,
    SocketClosed,
    SocketMessage,
    ToolCall,
    Transcript,
    UserSpeechStarted,
)

from .test_bridge_support import (
    FakeSession,
    Rig,
    callbacks,
    connected,
    dtmf,
    http_calls,
    mark,
    media,
    provider_io,
    start,
    stop,
)


def _quiet(rig: Rig, events: list[Any]) -> list[Action]:
    """Provider events whose actions the caller inspects (not kept in rig.actions)."""
    rig.session.inbox = events
    return rig.bridge.provider_result(SocketMessage(channel="main", data="scripted"), 5.0)


def _end_call(rig: Rig) -> list[Action]:
    rig.provider([ToolCall(call_id="e", name="end_call", arguments="{}")], 5.0)
    return _quiet(rig, [ResponseDone()])


def _provider_closed(rig: Rig) -> list[Action]:
    rig.session.inbox = [ProviderError(message="closed", fatal=True, code="1011")]
    return rig.bridge.provider_result(SocketClosed(channel="main", code=1011, reason="bye"), 5.0)


def _provider_closed_silently(rig: Rig) -> list[Action]:
    return rig.bridge.provider_result(SocketClosed(channel="main", code=1000, reason=""), 5.0)


def _voicemail(rig: Rig) -> list[Action]:
    rig.actions += rig.bridge.amd_result("machine_end_other", 5.0)
    rig.actions += _quiet(rig, [AudioOut(audio=b"\0" * 640, item_id="vm")])
    rig.actions += _quiet(rig, [ResponseDone(item_id="vm")])
    out: list[Action] = []
    for name in rig.stream.pending_marks:
        out += rig.bridge.carrier_message(mark(name), 5.0)
    return out


ENDINGS: dict[str, tuple[str, Callable[[Rig], list[Action]], bool]] = {
    # id: (reason, how, REST hangup expected)
    "stop": ("carrier_stop", lambda r: r.bridge.carrier_message(stop(), 5.0), False),
    "lost": ("carrier_disconnected", lambda r: r.bridge.carrier_closed(5.0), False),
    "garbage": ("carrier_protocol_error", lambda r: r.bridge.carrier_message("{nope", 5.0), False),
    "fatal": (
        "provider_error",
        lambda r: _quiet(r, [ProviderError(message="x", fatal=True)]),
        True,
    ),
    "closed": ("provider_closed", _provider_closed, True),
    "closed_silently": ("provider_closed", _provider_closed_silently, True),
    "end_call": ("end_call", _end_call, True),
    "hangup": ("hangup", lambda r: r.bridge.hangup("app", 5.0), True),
    "voicemail": ("voicemail", _voicemail, True),
    "fax": ("fax", lambda r: r.bridge.amd_result("fax", 5.0), True),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_every_ending_runs_one_clean_up(ending: str) -> None:
    reason, how, rest = ENDINGS[ending]
    rig = Rig(BridgeConfig(voicemail_message="Call back"))
    rig.connect(now=1.0)
    rig.provider([Transcript(role="user", text="hi")], 2.0)
    out = how(rig)
    everything = rig.actions + out
    (ended,) = callbacks(everything, "on_call_end")
    assert ended["reason"] == reason
    assert ended["started_at"] == 1.0 and ended["ended_at"] == 5.0
    assert ended["transcript"] == [{"role": "user", "text": "hi", "time": 2.0}]
    assert rig.session.closed and CloseSocket(channel="main") in provider_io(everything)
    closes = [a for a in everything if isinstance(a, CloseCarrier)]
    if reason == "carrier_disconnected":
        assert closes == []  # the socket is already gone
    else:
        assert len(closes) == 1 and closes[0].reason == reason
    assert [h.purpose for h in http_calls(out)] == (["hangup"] if rest else [])
    assert rig.bridge.ended and rig.bridge.next_deadline() is None
    # After the end every input is ignored.
    assert rig.carrier(media(b"\xff" * 160), 6.0) == []
    assert rig.provider([AudioOut(audio=b"\0" * 640)], 6.0) == []
    assert rig.bridge.carrier_closed(6.0) == []
    assert rig.bridge.hangup("again", 6.0) == []
    assert rig.bridge.tool_result("e", "{}", 6.0) == []
    assert rig.bridge.handle_timer(99.0) == []
    assert rig.bridge.amd_result("machine_end_beep", 6.0) == []
    assert len(callbacks(everything, "on_call_end")) == 1


@pytest.mark.parametrize("token", ["bad", None, ""])
def test_token_rejected_means_no_provider_io(token: str | None) -> None:
    rig = Rig()
    out = rig.carrier(connected(), 0.0) + rig.carrier(start(token=token), 0.1)
    assert rig.infos == [] and not rig.session.started
    assert provider_io(out) == []
    assert [a for a in out if isinstance(a, CloseCarrier)] == [
        CloseCarrier(code=1008, reason="token_rejected")
    ]
    assert callbacks(out, "on_call_start") == []
    (ended,) = callbacks(out, "on_call_end")
    assert ended["reason"] == "token_rejected" and ended["started_at"] is None
    assert http_calls(out) == []
    assert rig.carrier(media(b"\xff" * 160), 0.2) == []


def test_telnyx_style_token_from_the_upgrade_header() -> None:
    seen: list[tuple[str, str]] = []

    def verify(token: str, call_id: str, now: float) -> None:
        seen.append((token, call_id))

    bridge = CallBridge(
        stream=TwilioMediaStream(),
        carrier="telnyx",
        session_factory=lambda info: FakeSession(),
        verify_token=verify,
        stream_token="from-header",
    )
    bridge.carrier_message(start(token=None), 0.0)
    assert seen == [("from-header", "CA00000000000000000000000000000001")]
    assert not bridge.ended


def test_no_verifier_accepts_any_stream() -> None:
    bridge = CallBridge(
        stream=TwilioMediaStream(),
        carrier="twilio",
        session_factory=lambda info: FakeSession(),
        verify_token=None,
    )
    out = bridge.carrier_message(start(token=None), 0.0)
    assert len(callbacks(out, "on_call_start")) == 1


def test_lost_before_start_still_reports_once() -> None:
    rig = Rig()
    rig.carrier(connected(), 0.0)
    out = rig.bridge.carrier_closed(0.5)
    (ended,) = callbacks(out, "on_call_end")
    assert ended["call_id"] == "" and ended["reason"] == "carrier_disconnected"
    assert provider_io(out) == []


def test_non_fatal_provider_error_keeps_the_call() -> None:
    rig = Rig()
    rig.connect()
    assert callbacks(rig.provider([ProviderError(message="x")], 1.0), "on_call_end") == []
    assert not rig.bridge.ended
    # A pipeline channel closing is the session's business.
    assert (
        callbacks(
            rig.bridge.provider_result(SocketClosed(channel="tts", code=1000, reason=""), 1.0),
            "on_call_end",
        )
        == []
    )


# -- robustness ---------------------------------------------------------------------

_carrier_inputs = st.one_of(
    st.sampled_from([connected(), start(), start(token="bad"), stop(), dtmf("1"), dtmf("x")]),
    st.builds(lambda n: media(b"\x7f" * n), st.integers(0, 400)),
    st.builds(mark, st.sampled_from(["1:a:100", "2:a:200", "nope"])),
    st.text(max_size=30),
)
_provider_inputs = st.lists(
    st.one_of(
        st.just(SessionReady()),
        st.builds(
            lambda n, i: AudioOut(audio=b"\x01\x00" * n, item_id=i),
            st.integers(0, 900),
            st.sampled_from(["a", "b", None]),
        ),
        st.just(UserSpeechStarted()),
        st.just(ResponseDone()),
        st.builds(
            lambda name, args: ToolCall(call_id="c", name=name, arguments=args),
            st.sampled_from(["end_call", "transfer_call", "x"]),
            st.text(max_size=20),
        ),
        st.builds(lambda f: ProviderError(message="e", fatal=f), st.booleans()),
    ),
    max_size=4,
)
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("carrier"), _carrier_inputs),
        st.tuples(st.just("provider"), _provider_inputs),
        st.tuples(st.just("timer"), st.floats(0, 100)),
        st.tuples(st.just("amd"), st.sampled_from(["human", "machine_end_beep"])),
        st.tuples(st.just("closed"), st.none()),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(_steps)
def test_any_sequence_of_inputs_ends_at_most_once(steps: list[tuple[str, Any]]) -> None:
    rig = Rig(BridgeConfig(voicemail_message="vm", transfer_allowlist=frozenset({"+15550001"})))
    for now, (kind, value) in enumerate(steps):
        if kind == "carrier":
            rig.carrier(value, float(now))
        elif kind == "provider":
            rig.provider(value, float(now))
        elif kind == "timer":
            rig.actions += rig.bridge.handle_timer(value)
        elif kind == "amd":
            rig.actions += rig.bridge.amd_result(value, float(now))
        else:
            rig.actions += rig.bridge.carrier_closed(float(now))
    assert len(callbacks(rig.actions, "on_call_end")) == (1 if rig.bridge.ended else 0)
    assert rig.stream.played_ms <= rig.stream.sent_ms


def test_fill_prompt_variables() -> None:
    variables = {"caller": "+1415{callee}", "callee": "+1800"}
    assert (
        fill_prompt_variables("From {caller} to {callee}", variables)
        == "From +1415{callee} to +1800"
    )
    assert fill_prompt_variables('{"json": {x}} {missing}', variables) == '{"json": {x}} {missing}'
    assert fill_prompt_variables("", variables) == ""


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=60),
    st.dictionaries(st.sampled_from(["caller", "callee", "x"]), st.text(max_size=10)),
)
def test_fill_prompt_variables_never_raises(template: str, variables: dict[str, str]) -> None:
    out = fill_prompt_variables(template, variables)
    if "{" not in template:
        assert out == template


def test_normalize_number() -> None:
    assert normalize_number("+1 (415) 555-0123") == "+14155550123"
    assert normalize_number("<Dial>") is None
    assert normalize_number("+1234567890123456") is None  # over 15 digits


def test_accepted_only_after_a_valid_token() -> None:
    """``accepted`` tells the runtime which of two streams for one call is real."""
    from patter_core.bridge import CallBridge
    from patter_core.media import TwilioMediaStream
    from patter_core.providers import EchoSession
    from patter_core.webhooks import StreamTokens

    tokens = StreamTokens(b"0123456789abcdef0123456789abcdef")

    def start(token: str) -> str:
        return json.dumps(
            {
                "event": "start",
                "start": {
                    "streamSid": "MZ1",
                    "callSid": "CA1",
                    "accountSid": "AC1",
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": {"stream_token": token},
                },
                "streamSid": "MZ1",
            }
        )

    forged = CallBridge(
        stream=TwilioMediaStream(),
        carrier="twilio",
        session_factory=lambda info: EchoSession(),
        verify_token=tokens.verify,
    )
    forged.carrier_message(start("v1.9999999999.forged"), 100.0)
    assert forged.ended and not forged.accepted and forged.call_info is not None

    real = CallBridge(
        stream=TwilioMediaStream(),
        carrier="twilio",
        session_factory=lambda info: EchoSession(),
        verify_token=tokens.verify,
    )
    assert not real.accepted
    real.carrier_message(start(tokens.issue("CA1", 100.0)), 100.0)
    assert real.accepted and not real.ended
    real.carrier_closed(101.0)
    assert real.accepted and real.ended
