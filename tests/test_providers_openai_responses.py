"""OpenAI Realtime: one response at a time, completed function calls only, failed answers.

Pure: the session runs against the fake server in memory (Loopback). The
fake refuses a second active response as the server does, and emits
function-call events for cancelled responses.
"""

from __future__ import annotations

import json

from patter_core.providers import (
    CloseSocket,
    OpenAIRealtimeConfig,
    OpenAIRealtimeSession,
    ProviderError,
    ResponseDone,
    SendAudio,
    SendMessage,
    SendText,
    SessionLimit,
    SocketClosed,
    ToolCall,
    ToolResult,
    UpdateInstructions,
)
from tests.fakes.fake_openai_realtime import FakeOpenAIRealtime, Loopback


def connected(**kwargs: object) -> tuple[OpenAIRealtimeSession, FakeOpenAIRealtime, Loopback]:
    session = OpenAIRealtimeSession(OpenAIRealtimeConfig(api_key="sk-test", **kwargs))  # type: ignore[arg-type]
    fake = FakeOpenAIRealtime()
    loop = Loopback(session, fake)
    loop.start()
    return session, fake, loop


def creates(fake: FakeOpenAIRealtime) -> int:
    return sum(1 for m in fake.received if m["type"] == "response.create")


def test_tool_output_during_an_active_response_waits_for_its_end() -> None:
    session, fake, loop = connected()
    calls = loop.deliver(fake.function_call("lookup_order", '{"n": 1}', call_id="call_1"))
    assert [e for e in calls if isinstance(e, ToolCall)] == [
        ToolCall(call_id="call_1", name="lookup_order", arguments='{"n": 1}')
    ]
    # The caller speaks; server VAD starts a new answer before the tool returns.
    loop.deliver(fake.begin_response())
    session.send(ToolResult(call_id="call_1", output='{"ok":true}'), 1.0)
    loop.pump()
    outputs = [m for m in fake.received if m["type"] == "conversation.item.create"]
    assert [o["item"]["call_id"] for o in outputs] == ["call_1"]  # the output goes at once
    assert creates(fake) == 0 and fake.refused_creates == 0
    loop.deliver(fake.end_response())
    assert creates(fake) == 1 and fake.refused_creates == 0
    assert fake.received[-1] == {"type": "response.create"}


def test_parallel_calls_get_all_outputs_then_one_response() -> None:
    session, fake, loop = connected()
    events = loop.deliver(fake.function_calls([("a", "{}", "call_a"), ("b", "{}", "call_b")]))
    assert [e.call_id for e in events if isinstance(e, ToolCall)] == ["call_a", "call_b"]
    done = [e for e in events if isinstance(e, ResponseDone)]
    assert done == [ResponseDone(item_id=None, status="completed", tool_calls=2)]
    session.send(ToolResult(call_id="call_a", output="1"), 1.0)
    loop.pump()
    assert creates(fake) == 0
    session.send(ToolResult(call_id="call_b", output="2"), 1.1)
    loop.pump()
    types = [m["type"] for m in fake.received[-3:]]
    assert types == ["conversation.item.create", "conversation.item.create", "response.create"]
    assert creates(fake) == 1


def test_function_call_of_a_cancelled_response_is_not_acted_on() -> None:
    session, fake, loop = connected()
    events = loop.deliver(fake.function_call("end_call", "{}", call_id="c1", status="cancelled"))
    assert not [e for e in events if isinstance(e, ToolCall)]
    assert [e for e in events if isinstance(e, ResponseDone)] == [
        ResponseDone(item_id=None, status="cancelled", tool_calls=0)
    ]
    assert session.dropped_tool_calls == 1
    # Without output_item.done, a completed response.done still releases the call.
    raw = fake.function_call("lookup", "{}", call_id="c2")
    no_item_done = [m for m in raw if json.loads(m)["type"] != "response.output_item.done"]
    events = loop.deliver(no_item_done)
    assert [e.call_id for e in events if isinstance(e, ToolCall)] == ["c2"]


def test_refused_create_is_sent_again_after_the_active_response() -> None:
    session, fake, loop = connected()
    # The server started an answer we have not heard of yet (a race).
    started = fake.begin_response()
    session.send(SendText(text="The caller pressed 5"), 1.0)
    loop.pump()
    assert fake.refused_creates == 1 and session.refused_creates == 1
    assert not [e for e in loop.events if isinstance(e, ProviderError)]
    loop.deliver(started)
    assert creates(fake) == 1
    loop.deliver(fake.end_response())
    assert creates(fake) == 2 and fake.refused_creates == 1


def test_failed_responses_are_reported_counted_and_end_the_session_at_the_limit() -> None:
    session, fake, loop = connected(max_failed_responses=3)
    first = loop.deliver(fake.failed_response())
    assert ResponseDone(item_id=None, status="failed") in first
    errors = [e for e in first if isinstance(e, ProviderError)]
    assert errors == [
        ProviderError(
            message="response failed: failed: rate_limit_exceeded", code="response_failed"
        )
    ]
    # A completed answer resets the run of failures.
    loop.deliver(fake.respond(b"\xff" * 160, "Hi."))
    loop.deliver(fake.failed_response())
    second = loop.deliver(fake.failed_response())
    assert not any(isinstance(e, ProviderError) and e.fatal for e in second)
    third = loop.deliver(fake.failed_response())
    fatal = [e for e in third if isinstance(e, ProviderError) and e.fatal]
    assert len(fatal) == 1 and fatal[0].code == "response_failed"
    assert "3 responses in a row failed" in fatal[0].message
    assert session.failed_responses == 4 and loop.closed == [1000]


def test_session_created_announces_the_session_cap() -> None:
    # Without renewal the bridge is told the cap (it says a closing line).
    config = OpenAIRealtimeConfig(api_key="sk-test", renew_before_expiry=None)
    session = OpenAIRealtimeSession(config)
    fake = FakeOpenAIRealtime()
    fake.session["expires_at"] = 1_800_003_600
    events = Loopback(session, fake).start()
    assert SessionLimit(expires_at=1_800_003_600.0) in events
    assert session.expires_at == 1_800_003_600.0
    # With it (the default), the session plans its own renewal instead.
    renewing = OpenAIRealtimeSession(OpenAIRealtimeConfig(api_key="sk-test"))
    events = Loopback(renewing, fake).start()
    assert not [e for e in events if isinstance(e, SessionLimit)]
    assert renewing.next_deadline() == 1_800_003_600.0 - 120.0
    # Absent or nonsense: no cap, no error.
    for value in (None, "soon", True, -5):
        other = FakeOpenAIRealtime()
        other.session["expires_at"] = value
        fresh = OpenAIRealtimeSession(OpenAIRealtimeConfig(api_key="sk-test"))
        events = Loopback(fresh, other).start()
        assert not [e for e in events if isinstance(e, SessionLimit | ProviderError)]


def test_the_session_cap_is_put_on_the_clock_now_runs_on() -> None:
    # The runtime's now is monotonic; expires_at is Unix time: wall_offset
    # (wall minus monotonic) turns one into the other, for both deadlines.
    offset = 1_800_000_000.0
    config = OpenAIRealtimeConfig(api_key="sk-test", renew_before_expiry=None, wall_offset=offset)
    fake = FakeOpenAIRealtime()
    fake.session["expires_at"] = 1_800_003_600
    capped = OpenAIRealtimeSession(config)
    assert SessionLimit(expires_at=3600.0) in Loopback(capped, fake).start()
    renewing = OpenAIRealtimeSession(OpenAIRealtimeConfig(api_key="sk-test", wall_offset=offset))
    Loopback(renewing, fake).start()
    assert renewing.next_deadline() == 3600.0 - 120.0


# -- renewal before the session expires ------------------------------------------------------


def test_session_is_renewed_before_it_expires_and_the_conversation_carried_over() -> None:
    from openai.types.realtime import ConversationItemCreateEventParam, SessionUpdateEventParam

    from tests.sdk_types import check

    fake = FakeOpenAIRealtime()
    fake.expires_at = [1000.0, 4600.0]
    session = OpenAIRealtimeSession(OpenAIRealtimeConfig(api_key="sk-test", instructions="Hi"))
    loop = Loopback(session, fake)
    loop.start()
    assert session.next_deadline() == 880.0  # 120 s before the end
    loop.deliver(fake.user_transcript("Where is my order?"))
    loop.deliver(fake.respond(b"\xff" * 160, "It has shipped."))
    session.send(UpdateInstructions(instructions="Be brief."), 5.0)
    loop.pump()
    mark = len(fake.received)

    # Not yet: nothing happens before the renewal time.
    assert session.handle_timer(879.0) == []
    assert [o.channel for o in loop.opened] == ["main"]
    # The caller is mid-answer when the new session is ready: the switch waits.
    loop.deliver(fake.begin_response())
    session.handle_timer(880.0)
    loop.pump()
    assert [o.channel for o in loop.opened] == ["main", "main.2"]
    assert session.renewals == 0 and loop.closed == []
    replayed = fake.received[mark:]
    assert replayed[0]["type"] == "session.update"
    check(replayed[0], SessionUpdateEventParam)
    assert replayed[0]["session"]["instructions"] == "Hi"
    assert replayed[1]["session"]["instructions"] == "Be brief."  # the latest instructions
    items = [m for m in replayed if m["type"] == "conversation.item.create"]
    for item in items:
        check(item, ConversationItemCreateEventParam)
    assert [(i["item"]["role"], i["item"]["content"][0]) for i in items] == [
        ("user", {"type": "input_text", "text": "Where is my order?"}),
        ("assistant", {"type": "output_text", "text": "It has shipped."}),
    ]
    # The answer ends: the call moves to the new session, the old socket closes.
    loop.deliver(fake.end_response(), channel="main")
    assert session.renewals == 1 and loop.closed == [1000]
    assert session.expires_at == 4600.0 and session.next_deadline() == 4480.0
    session.send(SendAudio(audio=b"\xff" * 160), 900.0)
    (append,) = session.io_to_send()
    assert isinstance(append, SendMessage) and append.channel == "main.2"
    # The old socket's close is ours, not the provider hanging up.
    assert session.receive_io(SocketClosed(channel="main", code=1000, reason=""), 901.0) == []
    assert session.receive_io(SocketClosed(channel="main.2", code=1001, reason="expired"), 902.0)[
        0
    ].fatal  # type: ignore[union-attr]


def test_a_replacement_that_cannot_be_had_reports_the_cap() -> None:
    session = OpenAIRealtimeSession(OpenAIRealtimeConfig(api_key="sk-test"))
    fake = FakeOpenAIRealtime()
    fake.expires_at = [1000.0]
    fake.refuse_from = 1
    loop = Loopback(session, fake)
    loop.start()
    session.handle_timer(880.0)
    loop.pump()
    errors = [e for e in loop.events if isinstance(e, ProviderError)]
    assert [e.code for e in errors] == ["renewal_failed"] and not errors[0].fatal
    assert SessionLimit(expires_at=1000.0) in loop.events
    assert session.next_deadline() is None  # no second attempt


def test_a_replacement_that_never_gets_ready_times_out() -> None:
    session = OpenAIRealtimeSession(OpenAIRealtimeConfig(api_key="sk-test", setup_timeout=5.0))
    fake = FakeOpenAIRealtime()
    fake.expires_at = [1000.0, 4600.0]
    loop = Loopback(session, fake)
    loop.start()
    session.handle_timer(880.0)
    opened = session.io_to_send()  # the new socket is asked for, never opened
    assert [type(a).__name__ for a in opened] == ["OpenSocket"]
    assert session.next_deadline() == 885.0
    events = session.handle_timer(885.0)
    assert SessionLimit(expires_at=1000.0) in events
    assert CloseSocket(channel="main.2") in session.io_to_send()
