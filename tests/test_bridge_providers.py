"""The bridge and provider behaviour: end_call's goodbye, normal provider closes
with audio still queued, the provider's close code at the end, error reports."""

from __future__ import annotations

from patter_core.bridge import BridgeConfig, LogProblem, SetTimer
from patter_core.bridge._problems import ProblemLog
from patter_core.bridge._transcript import cut_text
from patter_core.providers import (
    ProviderError,
    ResponseDone,
    Say,
    SessionLimit,
    SocketClosed,
    ToolCall,
    Transcript,
    Truncate,
    UserSpeechStarted,
)

from .test_bridge_call import play_agent
from .test_bridge_support import FakeSession, Rig, callbacks, http_calls, mark


def test_end_call_waits_for_the_answer_its_output_starts() -> None:
    rig = Rig()
    rig.connect()
    rig.provider([ToolCall(call_id="e1", name="end_call", arguments="{}")], 1.0)
    # The answer that called end_call is done; its output makes the model answer again.
    out = rig.provider([ResponseDone(item_id=None, tool_calls=1)], 1.1)
    assert callbacks(out, "on_call_end") == [] and not rig.bridge.ended
    names = play_agent(rig, "goodbye", 2, 1.2)
    assert callbacks(rig.provider([ResponseDone(item_id="goodbye")], 1.3), "on_call_end") == []
    for name in names:
        rig.carrier(mark(name), 1.5)
    (tail,) = rig.stream.pending_marks
    (ended,) = callbacks(rig.carrier(mark(tail), 1.6), "on_call_end")
    assert ended["reason"] == "end_call" and ended["ended_at"] == 1.6


def test_a_second_end_call_in_the_goodbye_does_not_wait_again() -> None:
    rig = Rig()
    rig.connect()
    rig.provider([ToolCall(call_id="e1", name="end_call", arguments="{}")], 1.0)
    rig.provider([ResponseDone(tool_calls=1)], 1.1)
    rig.provider([ToolCall(call_id="e2", name="end_call", arguments="{}")], 1.2)
    (ended,) = callbacks(rig.provider([ResponseDone(tool_calls=1)], 1.3), "on_call_end")
    assert ended["reason"] == "end_call"


def provider_close(rig: Rig, code: int, reason: str, now: float) -> list[object]:
    rig.session.inbox = [ProviderError(message="closed", fatal=True, code=str(code))]
    out = rig.bridge.provider_result(SocketClosed(channel="main", code=code, reason=reason), now)
    rig.actions += out
    return list(out)


def test_normal_provider_close_lets_the_queued_goodbye_play() -> None:
    rig = Rig()
    rig.connect()
    names = play_agent(rig, "bye", 3, 1.0)
    out = provider_close(rig, 1000, "conversation ended", 1.1)
    assert callbacks(out, "on_call_end") == [] and not rig.bridge.ended  # type: ignore[arg-type]
    for name in names:
        assert callbacks(rig.carrier(mark(name), 1.3), "on_call_end") == []
    (tail,) = rig.stream.pending_marks  # the last partial frame, flushed at the close
    out2 = rig.carrier(mark(tail), 1.5)
    (ended,) = callbacks(out2, "on_call_end")
    assert ended["reason"] == "provider_closed" and ended["ended_at"] == 1.5
    assert ended["provider_close_code"] == 1000
    assert ended["provider_close_reason"] == "conversation ended"
    assert [h.purpose for h in http_calls(out2)] == ["hangup"]


def test_normal_close_with_nothing_queued_and_an_error_close_end_at_once() -> None:
    for code, queued in ((1000, False), (1011, True)):
        rig = Rig()
        rig.connect()
        if queued:
            play_agent(rig, "a", 2, 1.0)
        (ended,) = callbacks(provider_close(rig, code, "bye", 2.0), "on_call_end")  # type: ignore[arg-type]
        assert ended["reason"] == "provider_closed"
        assert (ended["provider_close_code"], ended["provider_close_reason"]) == (code, "bye")


def test_the_play_out_is_bounded_by_the_grace_time() -> None:
    rig = Rig(BridgeConfig(end_call_grace_seconds=3.0))
    rig.connect()
    play_agent(rig, "bye", 3, 1.0)
    provider_close(rig, 1000, "", 1.1)
    assert rig.bridge.next_deadline() == 4.1
    (ended,) = callbacks(rig.bridge.handle_timer(4.1), "on_call_end")
    assert ended["reason"] == "provider_closed"


def test_non_fatal_provider_errors_are_logged_rate_limited() -> None:
    rig = Rig()
    rig.connect()
    logged: list[str] = []
    for i in range(10):
        out = rig.provider([ProviderError(message=f"oops {i}", code="rate_limit")], 1.0 + i)
        logged += [a.message for a in out if isinstance(a, LogProblem)]
    assert logged == [f"provider error (rate_limit): oops {i}" for i in range(3)]
    out = rig.provider([ProviderError(message="again", code="rate_limit")], 62.0)
    assert [a.message for a in out if isinstance(a, LogProblem)] == [
        "provider error (rate_limit): again (7 more like it not logged)"
    ]
    assert not rig.bridge.ended
    assert isinstance(rig.session, FakeSession)


def test_problem_log_bounds_its_codes() -> None:
    log = ProblemLog(burst=1, window=10.0)
    lines = [log.admit(f"code{i}", "m", 0.0) for i in range(100)]
    assert sum(line is not None for line in lines) == 65  # 64 codes, then one "other"
    assert log.total == 100


# -- the provider's session cap ----------------------------------------------------------------


def test_near_the_announced_cap_a_closing_line_plays_then_provider_limit() -> None:
    rig = Rig()
    rig.connect(now=0.0)
    out = rig.provider([SessionLimit(expires_at=3600.0)], 1.0)
    assert SetTimer(deadline=3580.0) in out  # 20 s before the cap
    rig.bridge.handle_timer(3579.0)
    assert not any(isinstance(c, Say) for c in rig.session.commands)
    out = rig.bridge.handle_timer(3580.0)
    message = BridgeConfig().provider_limit_message
    assert rig.session.commands[-1] == Say(text=message)
    assert SetTimer(deadline=3600.0) in out  # at the latest, at the cap itself
    names = play_agent(rig, "limit", 2, 3581.0)
    rig.provider([ResponseDone(item_id="limit")], 3584.0)
    for name in names:
        rig.carrier(mark(name), 3585.0)
    (tail,) = rig.stream.pending_marks
    out = rig.carrier(mark(tail), 3586.0)
    (ended,) = callbacks(out, "on_call_end")
    assert ended["reason"] == "provider_limit"
    assert [h.purpose for h in http_calls(out)] == ["hangup"]


def test_the_cap_closing_line_is_not_ended_by_the_answer_before_it() -> None:
    rig = Rig()
    rig.connect(now=0.0)
    rig.provider([SessionLimit(expires_at=3600.0)], 1.0)
    early = play_agent(rig, "earlier", 2, 3579.5)  # an answer playing when the line is due
    rig.bridge.handle_timer(3580.0)
    rig.provider([ResponseDone(item_id="earlier")], 3580.1)
    for name in early:
        rig.carrier(mark(name), 3580.5)
    for tail in list(rig.stream.pending_marks):
        rig.carrier(mark(tail), 3580.6)
    # The earlier answer is over and heard: the closing line is not yet.
    assert callbacks(rig.actions, "on_call_end") == []
    names = play_agent(rig, "limit", 2, 3581.0)
    rig.provider([ResponseDone(item_id="limit")], 3582.0)
    for name in names + list(rig.stream.pending_marks):
        rig.carrier(mark(name), 3584.0)
    (ended,) = callbacks(rig.actions, "on_call_end")
    assert ended["reason"] == "provider_limit"


def test_configured_max_duration_and_the_earliest_cap_wins() -> None:
    rig = Rig(BridgeConfig(provider_max_duration=600.0, provider_limit_margin_seconds=15.0))
    rig.connect(now=10.0)
    assert rig.bridge.next_deadline() == 595.0
    rig.provider([SessionLimit(expires_at=9999.0)], 11.0)
    assert rig.bridge.next_deadline() == 595.0
    rig.provider([SessionLimit(expires_at=300.0)], 12.0)
    assert rig.bridge.next_deadline() == 285.0


def test_a_provider_closing_at_its_cap_ends_as_provider_limit() -> None:
    rig = Rig(BridgeConfig(provider_max_duration=600.0))
    rig.connect()
    (ended,) = callbacks(  # type: ignore[arg-type]
        provider_close(rig, 1000, "max_duration_exceeded", 50.0), "on_call_end"
    )
    assert ended["reason"] == "provider_limit"
    assert ended["provider_close_reason"] == "max_duration_exceeded"


def test_the_cap_closing_line_is_not_said_when_the_call_is_already_ending() -> None:
    rig = Rig(BridgeConfig(provider_max_duration=30.0))
    rig.connect()
    play_agent(rig, "bye", 2, 1.0)
    rig.provider([ToolCall(call_id="e1", name="end_call", arguments="{}")], 2.0)
    assert rig.bridge.next_deadline() == 12.0  # the end_call grace, not the cap
    rig.bridge.handle_timer(10.0)
    assert not any(isinstance(c, Say) for c in rig.session.commands)


# -- transcripts say what was heard ------------------------------------------------------------


def ended_transcript(rig: Rig, now: float) -> list[tuple[object, object]]:
    (ended,) = callbacks(rig.bridge.hangup("done", now), "on_call_end")
    return [(e["role"], e["text"]) for e in ended["transcript"]]  # type: ignore[union-attr]


def barge_in_after(rig: Rig, item: str, heard_chunks: int) -> None:
    names = play_agent(rig, item, 10, 1.0)  # 10 x 100 ms
    for name in names[:heard_chunks]:
        rig.carrier(mark(name), 1.5)
    rig.provider([UserSpeechStarted()], 2.0)


def test_interrupted_answer_is_cut_to_what_the_caller_heard() -> None:
    rig = Rig()
    rig.connect()
    barge_in_after(rig, "a1", 4)
    assert Truncate(item_id="a1", played_ms=400) in rig.session.commands
    text = "One two three four five six seven eight nine ten eleven twelve."
    out = rig.provider([Transcript(role="assistant", text=text, item_id="a1")], 2.1)
    (said,) = callbacks(out, "on_transcript")
    assert said["text"] == "One two three four five"  # 40 % of 63 chars, whole words
    assert ended_transcript(rig, 3.0) == [("assistant", "One two three four five")]


def test_segment_already_recorded_is_cut_at_the_barge_in() -> None:
    rig = Rig()
    rig.connect()
    text = "Your order left the warehouse on Monday morning."
    rig.provider([Transcript(role="assistant", text=text, item_id="a2")], 0.5)
    barge_in_after(rig, "a2", 5)
    assert ended_transcript(rig, 3.0) == [("assistant", cut_text(text, 0.5))]
    assert cut_text(text, 0.5) == "Your order left the"


def test_a_correction_replaces_the_segment_it_corrects() -> None:
    rig = Rig()
    rig.connect()
    rig.provider([Transcript(role="assistant", text="Your order shipped yesterday.")], 1.0)
    rig.provider([Transcript(role="user", text="Wait")], 1.5)
    out = rig.provider([Transcript(role="assistant", text="Your order", correction=True)], 1.6)
    assert [c["text"] for c in callbacks(out, "on_transcript")] == ["Your order"]
    assert ended_transcript(rig, 3.0) == [("assistant", "Your order"), ("user", "Wait")]


def test_cut_text() -> None:
    assert cut_text("hello world", 1.0) == "hello world"
    assert cut_text("hello world", 0.0) == ""
    assert cut_text("hello world", 0.6) == "hello"
    assert cut_text("hello world", 0.3) == ""  # no whole word heard
    assert cut_text("hello world", 0.99) == "hello"
