"""Per-call behaviour in the bridge, on a float clock: silence reprompts and
hang-up, the call's maximum duration, a greeting that must play in full, and
the shortest speech that counts as a barge-in."""

from __future__ import annotations

from patter_core.bridge import Action, BridgeConfig, FireCallback, HttpCall, LogProblem
from patter_core.providers import (
    AudioOut,
    Cancel,
    HoldBargeIn,
    ResponseDone,
    ResumeBargeIn,
    Say,
    SessionReady,
    SocketOpened,
    Transcript,
    Truncate,
    UserSpeechStarted,
    UserSpeechStopped,
)

from .test_bridge_call import marks_sent, play_agent
from .test_bridge_support import (
    Rig,
    callbacks,
    carrier_frames,
    connected,
    http_calls,
    mark,
    media,
    start,
)


def _answer(rig: Rig, item: str, now: float, *, played_at: float) -> None:
    """The agent says 200 ms (item ``item``), ends the answer, the carrier plays it all."""
    names = play_agent(rig, item, 2, now)
    names += marks_sent(carrier_frames(rig.provider([ResponseDone(item_id=item)], now)))
    for name in names:
        rig.carrier(mark(name), played_at)
    assert rig.stream.played_ms == rig.stream.sent_ms


def _says(rig: Rig) -> list[str]:
    return [c.text for c in rig.session.commands if isinstance(c, Say)]


def _hangups(rig: Rig) -> list[HttpCall]:
    return [c for c in http_calls(rig.actions) if c.purpose == "hangup"]


def test_silence_reprompts_once_then_says_goodbye_and_hangs_up() -> None:
    rig = Rig(BridgeConfig(silence_timeout_seconds=5.0))
    rig.connect(0.0)
    assert rig.bridge.next_deadline() == 5.0  # the quiet clock starts at readiness
    for i in range(1, 5):  # a quiet line still sends media: the clock does not move
        rig.carrier(media(b"\xff" * 160), float(i))
    assert rig.bridge.next_deadline() == 5.0
    rig.bridge.handle_timer(4.9)
    assert _says(rig) == []
    rig.actions += rig.bridge.handle_timer(5.0)
    assert _says(rig) == ["Are you still there?"]
    # The reprompt plays from 5.1 to 5.6: the clock waits, then restarts.
    play_agent(rig, "r", 2, 5.1)
    assert rig.bridge.next_deadline() is None
    _answer(rig, "r", 5.2, played_at=5.6)
    assert rig.bridge.next_deadline() == 10.6
    rig.actions += rig.bridge.handle_timer(10.6)
    assert _says(rig) == ["Are you still there?", "It seems nobody is there. Goodbye."]
    assert _hangups(rig) == []  # the goodbye must be heard first
    _answer(rig, "g", 10.7, played_at=11.0)
    [end] = callbacks(rig.actions, "on_call_end")
    assert end["reason"] == "silence"
    [hangup] = _hangups(rig)
    assert hangup.request.url.endswith("/hangup")


def test_caller_speech_resets_the_quiet_clock_and_the_reprompts() -> None:
    rig = Rig(BridgeConfig(silence_timeout_seconds=5.0, silence_reprompts=1))
    rig.connect(0.0)
    rig.actions += rig.bridge.handle_timer(5.0)  # reprompt 1 of 1
    rig.provider([UserSpeechStarted()], 6.0)
    assert rig.bridge.next_deadline() is None  # the caller is talking
    rig.provider([UserSpeechStopped()], 9.0)
    assert rig.bridge.next_deadline() == 14.0
    rig.actions += rig.bridge.handle_timer(14.0)
    # The count started again: a reprompt, not the goodbye.
    assert _says(rig) == ["Are you still there?", "Are you still there?"]
    # A final transcript of the caller also ends their turn.
    rig.provider([UserSpeechStarted()], 15.0)
    rig.provider([Transcript(role="user", text="yes")], 16.0)
    assert rig.bridge.next_deadline() == 21.0
    assert callbacks(rig.actions, "on_call_end") == []


def test_silence_off_by_default_and_no_reprompts_means_goodbye_at_once() -> None:
    rig = Rig()
    rig.connect(0.0)
    assert rig.bridge.next_deadline() is None
    rig = Rig(BridgeConfig(silence_timeout_seconds=2.0, silence_reprompts=0, silence_goodbye=""))
    rig.connect(0.0)
    rig.actions += rig.bridge.handle_timer(2.0)
    assert _says(rig) == []
    assert [e["reason"] for e in callbacks(rig.actions, "on_call_end")] == ["silence"]
    assert len(_hangups(rig)) == 1


def test_max_duration_says_the_closing_line_then_hangs_up() -> None:
    rig = Rig(BridgeConfig(max_duration_seconds=30.0))
    rig.connect(0.0)
    assert rig.bridge.next_deadline() == 30.0
    names = play_agent(rig, "a", 5, 29.5)  # mid-answer when the cap comes
    rig.actions += rig.bridge.handle_timer(30.0)
    assert _says(rig) == ["We have reached the time limit for this call. Goodbye."]
    # The answer in progress is cut (clear, cancel) so the line plays now.
    assert "clear" in [f["event"] for f in carrier_frames(rig.actions)]
    assert Cancel() in rig.session.commands
    assert names and _hangups(rig) == []
    rig.provider([ResponseDone(item_id="a")], 30.1)  # the cancelled answer's end
    assert callbacks(rig.actions, "on_call_end") == []  # the line is yet to be heard
    names = play_agent(rig, "bye", 2, 30.2)
    rig.provider([ResponseDone(item_id="a")], 30.25)  # a stray end of the old one
    names += marks_sent(carrier_frames(rig.provider([ResponseDone(item_id="bye")], 30.3)))
    assert callbacks(rig.actions, "on_call_end") == []  # done, but not played yet
    for name in names:
        rig.carrier(mark(name), 33.0)
    [end] = callbacks(rig.actions, "on_call_end")
    assert end["reason"] == "max_duration"
    assert len(_hangups(rig)) == 1


def test_an_end_call_in_progress_is_not_overtaken_by_silence() -> None:
    rig = Rig(BridgeConfig(silence_timeout_seconds=1.0, max_duration_seconds=2.0))
    rig.connect(0.0)
    rig.bridge.hangup("done", 0.5)
    assert rig.bridge.next_deadline() is None


def test_greeting_not_interruptible_plays_whole_and_barge_in_returns_after() -> None:
    config = BridgeConfig(first_message="Welcome.", first_message_interruptible=False)
    rig = Rig(config)
    rig.connect(0.0)
    # The provider's own barge-in is held before the greeting is asked for.
    assert rig.session.commands == [HoldBargeIn(), Say(text="Welcome.")]
    names = play_agent(rig, "greet", 10, 0.1)
    rig.session.commands.clear()
    before = len(rig.actions)
    rig.provider([UserSpeechStarted()], 0.5)
    rig.carrier(media(b"\x00" * 160), 0.55)  # loud caller audio
    rig.provider([UserSpeechStopped()], 0.6)
    assert [f["event"] for f in carrier_frames(rig.actions[before:])] == []
    assert not any(isinstance(c, Cancel | Truncate) for c in rig.session.commands)
    names += marks_sent(carrier_frames(rig.provider([ResponseDone(item_id="greet")], 0.7)))
    assert ResumeBargeIn() in rig.session.commands  # given back at the greeting's end
    rig.provider([UserSpeechStarted()], 0.8)  # still playing from the carrier's buffer
    assert not any(isinstance(c, Cancel) for c in rig.session.commands)
    for name in names:
        rig.carrier(mark(name), 1.1)
    # Heard whole; the next answer may be interrupted as usual.
    play_agent(rig, "next", 5, 2.0)
    out = rig.provider([UserSpeechStarted()], 2.1)
    assert [f["event"] for f in carrier_frames(out)] == ["clear"]
    assert Cancel() in rig.session.commands


def test_greeting_interruptible_by_default() -> None:
    rig = Rig(BridgeConfig(first_message="Welcome."))
    rig.connect(0.0)
    assert rig.session.commands == [Say(text="Welcome.")]
    play_agent(rig, "greet", 10, 0.1)
    out = rig.provider([UserSpeechStarted()], 0.5)
    assert [f["event"] for f in carrier_frames(out)] == ["clear"]


def test_no_hold_without_a_greeting() -> None:
    rig = Rig(BridgeConfig(first_message_interruptible=False))
    rig.connect(0.0)
    assert rig.session.commands == []
    play_agent(rig, "a", 5, 0.1)
    out = rig.provider([UserSpeechStarted()], 0.2)
    assert [f["event"] for f in carrier_frames(out)] == ["clear"]


def test_speech_shorter_than_barge_in_min_ms_does_not_interrupt() -> None:
    rig = Rig(BridgeConfig(barge_in_min_ms=300))
    rig.connect(0.0)
    play_agent(rig, "a", 30, 1.0)  # 3 s of agent audio queued
    rig.session.commands.clear()
    out = rig.provider([UserSpeechStarted()], 1.0)
    assert carrier_frames(out) == [] and rig.session.commands == []
    assert rig.bridge.next_deadline() == 1.3
    rig.provider([UserSpeechStopped()], 1.2)  # a cough: 200 ms
    assert rig.bridge.next_deadline() is None
    assert carrier_frames(rig.bridge.handle_timer(1.3)) == []
    # Speech that lasts: the barge-in happens 300 ms after it started.
    rig.provider([UserSpeechStarted()], 2.0)
    out = rig.bridge.handle_timer(2.3)
    assert [f["event"] for f in carrier_frames(out)] == ["clear"]
    assert rig.session.commands[0] == Cancel()


def test_new_options_are_checked() -> None:
    import pytest

    from patter_core import LocalProtocolError

    for bad in (
        {"silence_timeout_seconds": 0.0},
        {"max_duration_seconds": -1.0},
        {"silence_reprompts": -1},
        {"barge_in_min_ms": -5},
    ):
        with pytest.raises(LocalProtocolError):
            BridgeConfig(**bad)  # type: ignore[arg-type]


# -- on_call_start's overrides and the prompt variables -----------------------------


def _start_with(params: dict[str, str]) -> str:
    import json

    frame = json.loads(start())
    frame["start"]["customParameters"].update(params)
    return json.dumps(frame)


def _problems(actions: list[Action]) -> list[str]:
    return [a.message for a in actions if isinstance(a, LogProblem)]


WAITING = BridgeConfig(
    instructions="Help {name} with order {order}.",
    first_message="Hello {name}!",
    call_start_wait_seconds=2.0,
)


def test_overrides_reach_the_session_and_no_caller_audio_is_lost() -> None:
    rig = Rig(WAITING)
    rig.carrier(connected(), 0.0)
    rig.carrier(_start_with({"var_order": "A-7", "var_name": "caller"}), 0.0)
    [fired] = [a for a in rig.actions if isinstance(a, FireCallback)]
    assert fired.name == "on_call_start" and fired.awaits_answer
    assert rig.infos == [] and not rig.session.started  # waiting for the answer
    rig.carrier(media(b"\x11" * 160), 0.1)  # the caller's first words, held
    assert rig.bridge.next_deadline() == 2.0
    out = rig.bridge.call_start_result(
        {
            "system_prompt": "You are {name}'s agent for {order} ({callee}).",
            "first_message": "Hi {name}",
            "voice": "cedar",
            "variables": {"name": "Ada"},
        },
        0.5,
    )
    [info] = rig.infos
    # Overrides first, then the outbound call's var_ parameters, then the parties.
    assert info.instructions == "You are Ada's agent for A-7 (+18005550199)."
    assert info.first_message == "Hi Ada" and info.voice == "cedar" and info.model is None
    assert "var_order" in info.custom_parameters  # the application sees them too
    assert rig.session.started and _problems(out) == []
    rig.bridge.provider_result(SocketOpened(channel="main"), 0.6)
    rig.provider([SessionReady()], 0.7)
    assert [type(c).__name__ for c in rig.session.commands][:2] == ["SendAudio", "Say"]
    # A second answer changes nothing.
    assert rig.bridge.call_start_result({"system_prompt": "x"}, 0.8) == []


def test_unknown_override_keys_are_logged_and_the_call_goes_on() -> None:
    rig = Rig(WAITING)
    rig.carrier(connected(), 0.0)
    rig.carrier(start(), 0.0)
    out = rig.bridge.call_start_result({"prompt": "typo", "voice": 3, "variables": {"name": 1}}, 0.1)
    problems = _problems(out)
    assert any("unknown override keys prompt" in p for p in problems)
    assert any("voice must be text" in p for p in problems)
    [info] = rig.infos
    # The agent's prompt; {order} has no value: left as written, logged once.
    assert info.instructions == "Help 1 with order {order}."
    assert [p for p in problems if "{order}" in p] == [
        "no value for {order} in the prompt or first message; left as written"
    ]


def test_not_a_dict_and_no_answer_in_time_fall_back_to_the_agent() -> None:
    rig = Rig(WAITING)
    rig.carrier(connected(), 0.0)
    rig.carrier(start(), 0.0)
    out = rig.bridge.call_start_result("nope", 0.1)
    assert any("not a dict" in p for p in _problems(out))
    assert rig.infos[0].first_message == "Hello {name}!"
    rig = Rig(WAITING)
    rig.carrier(connected(), 0.0)
    rig.carrier(start(), 0.0)
    rig.bridge.handle_timer(1.9)
    assert rig.infos == []  # still waiting
    out = rig.bridge.handle_timer(2.0)
    assert "on_call_start did not answer in time" in _problems(out)
    assert len(rig.infos) == 1 and rig.session.started
    assert rig.bridge.call_start_result({"system_prompt": "late"}, 2.5) == []


def test_without_waiting_the_session_opens_at_start() -> None:
    rig = Rig(BridgeConfig(instructions="For {callee}, {missing}"))
    rig.carrier(connected(), 0.0)
    out = rig.carrier(start(), 0.0)
    [fired] = [a for a in out if isinstance(a, FireCallback)]
    assert not fired.awaits_answer
    assert rig.infos[0].instructions == "For +18005550199, {missing}"
    assert _problems(out) == [
        "no value for {missing} in the prompt or first message; left as written"
    ]


def test_a_warm_session_is_adopted_with_what_it_produced() -> None:
    from patter_core.providers import WarmSession

    from .test_bridge_support import FakeSession

    inner = FakeSession()
    inner.started = True  # at the webhook
    ready_and_greeting = [SessionReady(), AudioOut(audio=b"\x01\x00" * 320, item_id="hi")]
    rig = Rig(BridgeConfig(first_message="Hi"), session=None)
    rig.session = WarmSession(inner, ready_and_greeting, frozenset({"main"}))  # type: ignore[assignment]
    rig.carrier(connected(), 0.0)
    rig.carrier(start(), 0.0)
    # Started once (at the webhook), ready at once, the greeting already playing.
    assert inner.io == [] and rig.bridge.session is rig.session
    frames = [f["event"] for f in carrier_frames(rig.actions)]
    assert frames[:1] == ["media"] and "mark" in frames
    assert inner.commands == [Say(text="Hi")]  # not native here: the bridge asks for it
    # The socket it adopted is open already: the runner's report of it does
    # not reach the session a second time.
    inner.inbox = [SessionReady()]
    rig.bridge.provider_result(SocketOpened(channel="main"), 0.1)
    assert inner.inbox == [SessionReady()] and inner.results == []
    # A later opening (a reconnect) is the session's own.
    again = SocketOpened(channel="main")
    rig.bridge.provider_result(again, 0.2)
    assert inner.results == [again] and inner.inbox == []


def test_a_voicemail_drop_during_a_held_greeting_keeps_the_provider_held() -> None:
    config = BridgeConfig(
        first_message="This call is recorded.",
        first_message_interruptible=False,
        voicemail_message="Please call back.",
    )
    rig = Rig(config)
    rig.connect(0.0)
    play_agent(rig, "greet", 10, 0.1)
    rig.actions += rig.bridge.amd_result("machine_end_beep", 0.5)
    assert rig.session.commands[-2:] == [HoldBargeIn(), Say(text="Please call back.")]
    rig.provider([ResponseDone(item_id="greet", status="cancelled")], 0.6)
    # The greeting's end must not give the machine's noise its barge-in back.
    assert ResumeBargeIn() not in rig.session.commands
