"""OpenAI Realtime session: exact wire JSON, a scripted call, bad input, limits."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz import fuzz_providers
from patter_core._errors import LocalProtocolError
from patter_core.audio import ALAW_8K, PCM16_24K, ULAW_8K
from patter_core.providers import (
    AnswerStage,
    AudioOut,
    Cancel,
    CloseSocket,
    OpenSocket,
    ProviderError,
    ResponseDone,
    Say,
    SendAudio,
    SendMessage,
    SendText,
    SessionReady,
    SocketClosed,
    SocketMessage,
    SocketOpened,
    ToolCall,
    ToolResult,
    Transcript,
    Truncate,
    UpdateInstructions,
    UserSpeechStarted,
    UserSpeechStopped,
)
from patter_core.providers._openai_realtime import (
    SAY_EXACTLY_PREFIX,
    OpenAIRealtimeConfig,
    OpenAIRealtimeSession,
    OpenAITurnDetection,
)
from patter_core.providers._urls import openai_base_url_from_env, openai_realtime_url
from tests.fakes.fake_openai_realtime import FakeOpenAIRealtime, Loopback, tone

LOOKUP_ORDER = {
    "name": "lookup_order",
    "description": "Look up an order by number",
    "parameters": {
        "type": "object",
        "properties": {"order_number": {"type": "string"}},
        "required": ["order_number"],
    },
}


def make(**kwargs: object) -> OpenAIRealtimeSession:
    kwargs.setdefault("api_key", "sk-test")
    return OpenAIRealtimeSession(OpenAIRealtimeConfig(**kwargs))  # type: ignore[arg-type]


def opened(**kwargs: object) -> OpenAIRealtimeSession:
    session = make(**kwargs)
    session.start(0.0)
    session.receive_io(SocketOpened(channel="main"), 0.1)
    session.io_to_send()
    return session


def sent_json(session: OpenAIRealtimeSession) -> list[object]:
    out = []
    for action in session.io_to_send():
        assert isinstance(action, SendMessage) and action.channel == "main"
        assert isinstance(action.data, str)
        out.append(json.loads(action.data))
    return out


# -- connecting ---------------------------------------------------------------


def test_start_opens_the_ga_endpoint_with_bearer_auth() -> None:
    session = make()
    session.start(0.0)
    assert session.io_to_send() == [
        OpenSocket(
            channel="main",
            url="wss://api.openai.com/v1/realtime?model=gpt-realtime-2.1",
            headers=(("authorization", "Bearer sk-test"),),
        )
    ]


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("https://api.openai.com/v1", "wss://api.openai.com/v1/realtime?model=m%2F1"),
        ("http://127.0.0.1:8123/v1/", "ws://127.0.0.1:8123/v1/realtime?model=m%2F1"),
        ("wss://proxy.example/openai", "wss://proxy.example/openai/realtime?model=m%2F1"),
    ],
)
def test_base_url_convention(base: str, url: str) -> None:
    assert openai_realtime_url(base, "m/1") == url


@pytest.mark.parametrize("base", ["api.openai.com/v1", "ftp://x/v1", "https://x/v1?a=1", ""])
def test_bad_base_url_is_our_error(base: str) -> None:
    with pytest.raises(LocalProtocolError):
        make(base_url=base)


def test_base_url_from_env() -> None:
    assert openai_base_url_from_env({}) == "https://api.openai.com/v1"
    assert openai_base_url_from_env({"OPENAI_BASE_URL": ""}) == "https://api.openai.com/v1"
    assert openai_base_url_from_env({"OPENAI_BASE_URL": "http://h/v1"}) == "http://h/v1"


# -- golden JSON ----------------------------------------------------------------


def test_session_update_is_the_ga_shape_of_protocols_5_2() -> None:
    session = make(
        instructions="You are a friendly phone receptionist. Keep answers short.",
        tools=[LOOKUP_ORDER],
    )
    session.start(0.0)
    session.io_to_send()
    assert session.receive_io(SocketOpened(channel="main"), 0.1) == []
    assert sent_json(session) == [
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "model": "gpt-realtime-2.1",
                "output_modalities": ["audio"],
                "instructions": "You are a friendly phone receptionist. Keep answers short.",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcmu"},
                        "turn_detection": {
                            "type": "server_vad",
                            "threshold": 0.5,
                            "prefix_padding_ms": 300,
                            "silence_duration_ms": 500,
                            "create_response": True,
                            "interrupt_response": True,
                        },
                        "transcription": {"model": "gpt-transcribe"},
                        "noise_reduction": {"type": "near_field"},
                    },
                    "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
                },
                "tools": [{"type": "function", **LOOKUP_ORDER}],
                "tool_choice": "auto",
            },
        }
    ]


@pytest.mark.parametrize(
    ("name", "wire", "fmt"),
    [
        ("pcmu", {"type": "audio/pcmu"}, ULAW_8K),
        ("pcma", {"type": "audio/pcma"}, ALAW_8K),
        ("pcm24", {"type": "audio/pcm", "rate": 24000}, PCM16_24K),
    ],
)
def test_audio_format_choice(name: str, wire: dict[str, object], fmt: object) -> None:
    session = make(audio_format=name)
    assert session.input_format == fmt and session.output_format == fmt
    session.start(0.0)
    session.io_to_send()
    session.receive_io(SocketOpened(channel="main"), 0.1)
    [update] = sent_json(session)
    audio = update["session"]["audio"]  # type: ignore[index]
    assert audio["input"]["format"] == wire and audio["output"]["format"] == wire


def test_manual_turns_semantic_vad_and_no_transcription() -> None:
    session = opened()  # default first, then variants
    manual = make(turn_detection=None, input_transcription_model=None, noise_reduction="near_field")
    manual.start(0.0)
    manual.io_to_send()
    manual.receive_io(SocketOpened(channel="main"), 0.1)
    [update] = sent_json(manual)
    audio_in = update["session"]["audio"]["input"]  # type: ignore[index]
    assert audio_in == {
        "format": {"type": "audio/pcmu"},
        "turn_detection": None,
        "noise_reduction": {"type": "near_field"},
    }
    semantic = OpenAITurnDetection(type="semantic_vad", eagerness="low").to_json()
    assert semantic == {
        "type": "semantic_vad",
        "eagerness": "low",
        "create_response": True,
        "interrupt_response": True,
    }
    assert "tools" not in update["session"]  # type: ignore[index]
    assert session.state.value == "open"


def test_append_is_byte_exact() -> None:
    session = opened()
    session.send(SendAudio(audio=b"\x00\x01\xfe\xff"), 1.0)
    assert session.io_to_send() == [
        SendMessage(channel="main", data='{"type":"input_audio_buffer.append","audio":"AAH+/w=="}')
    ]
    session.send(SendAudio(audio=b""), 1.0)  # nothing to say, nothing sent
    assert session.io_to_send() == []


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_append_template_equals_json_dumps(audio: bytes) -> None:
    session = opened()
    session.send(SendAudio(audio=audio), 1.0)
    actions = session.io_to_send()
    if not audio:
        assert actions == []
        return
    [action] = actions
    expected = {"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}
    assert action == SendMessage(channel="main", data=json.dumps(expected, separators=(",", ":")))


def test_commands_golden_json() -> None:
    session = opened()
    session.send(Cancel(), 1.0)
    session.send(Truncate(item_id="item_abc", played_ms=1280), 1.0)
    session.send(ToolResult(call_id="call_abc123", output='{"status":"shipped"}'), 1.0)
    session.send(Say(text="Hello there."), 1.0)
    session.send(SendText(text="The caller pressed 5"), 1.0)
    session.send(UpdateInstructions(instructions="Be brief."), 1.0)
    assert sent_json(session) == [
        {"type": "response.cancel"},
        {
            "type": "conversation.item.truncate",
            "item_id": "item_abc",
            "content_index": 0,
            "audio_end_ms": 1280,
        },
        {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": "call_abc123",
                "output": '{"status":"shipped"}',
            },
        },
        {"type": "response.create"},
        # One response at a time: the Say and the DTMF answer wait their turn.
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "The caller pressed 5"}],
            },
        },
        {"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}},
    ]
    done = json.dumps({"type": "response.done", "response": {"status": "completed", "output": []}})
    session.receive_io(SocketMessage(channel="main", data=done), 2.0)
    assert sent_json(session) == [
        {
            "type": "response.create",
            "response": {"instructions": SAY_EXACTLY_PREFIX + "Hello there."},
        }
    ]
    session.receive_io(SocketMessage(channel="main", data=done), 3.0)
    assert sent_json(session) == [{"type": "response.create"}]
    session.receive_io(SocketMessage(channel="main", data=done), 4.0)
    assert sent_json(session) == []


def test_command_misuse_is_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        make().send(SendAudio(audio=b"x"), 0.0)  # before start
    session = opened()
    with pytest.raises(LocalProtocolError):
        session.send(Truncate(item_id="i", played_ms=-1), 1.0)
    with pytest.raises(LocalProtocolError):
        session.send("audio", 1.0)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        session.receive_io(SocketMessage(channel="stt", data="{}"), 1.0)
    with pytest.raises(LocalProtocolError):
        session.start(1.0)
    with pytest.raises(LocalProtocolError):
        make(tools=[{"description": "no name"}])
    with pytest.raises(LocalProtocolError):
        make(tools=[{"name": "t", "parameters": {"x": object()}}])
    with pytest.raises(LocalProtocolError):
        make(api_key="")


# -- a whole call through the fake server -------------------------------------


def test_scripted_call_through_the_fake() -> None:
    fake = FakeOpenAIRealtime()
    session = make(first_message="Thanks for calling Acme, how can I help?", tools=[LOOKUP_ORDER])
    loop = Loopback(session, fake)

    # Greeting: session.updated -> SessionReady, then the exact-text response.create.
    # The greeting's response.created marks the start of an answer's timings.
    assert loop.start() == [SessionReady(), AnswerStage(stage="response_created")]
    assert session.session_id == "sess_fake"
    assert session.next_deadline() is None
    assert [m["type"] for m in fake.received] == ["session.update", "response.create"]
    assert fake.received[1]["response"]["instructions"].endswith(
        "Thanks for calling Acme, how can I help?"
    )
    greeting = tone("pcmu", 400)
    events = loop.deliver(fake.respond(greeting, "Thanks for calling Acme, how can I help?"))
    audio = [e for e in events if isinstance(e, AudioOut)]
    assert b"".join(a.audio for a in audio) == greeting and len(audio) == 4
    item_id = audio[0].item_id
    assert item_id is not None and all(a.item_id == item_id for a in audio)
    finals = [e for e in events if isinstance(e, Transcript) and e.final]
    assert finals == [
        Transcript(
            role="assistant", text="Thanks for calling Acme, how can I help?", item_id=item_id
        )
    ]
    assert "".join(e.text for e in events if isinstance(e, Transcript) and not e.final) == (
        "Thanks for calling Acme, how can I help?"
    )
    assert events[-1] == ResponseDone(item_id=item_id, status="completed")

    # Caller audio reaches the server untouched.
    caller = tone("pcmu", 60, hz=300)
    for i in range(0, len(caller), 160):
        loop.session.send(SendAudio(audio=caller[i : i + 160]), 1.0)
    loop.pump()
    assert bytes(fake.audio_in) == caller

    # Barge-in mid-answer: the server reports speech and cancels its answer;
    # the bridge then sends Cancel + Truncate and the "nothing active" error is swallowed.
    events = loop.deliver(fake.begin_response() + fake.audio(tone("pcmu", 200)))
    answer_item = next(e.item_id for e in events if isinstance(e, AudioOut))
    events = loop.deliver(fake.speech_started(audio_start_ms=1500))
    assert events == [
        UserSpeechStarted(item_id="item_user"),
        ResponseDone(item_id=answer_item, status="cancelled"),
    ]
    assert answer_item is not None
    session.send(Cancel(), 2.0)
    session.send(Truncate(item_id=answer_item, played_ms=120), 2.0)
    mark = len(loop.sent)
    assert loop.pump() == []
    assert [json.loads(m) for m in loop.sent[mark:]] == [
        {"type": "response.cancel"},
        {
            "type": "conversation.item.truncate",
            "item_id": answer_item,
            "content_index": 0,
            "audio_end_ms": 120,
        },
    ]
    assert session.expected_errors == 1
    assert loop.deliver(fake.speech_stopped(audio_end_ms=2300)) == [
        UserSpeechStopped(item_id="item_user")
    ]
    assert loop.deliver(fake.user_transcript("Where is order 42?")) == [
        Transcript(role="user", text="Where is order 42?", item_id="item_user")
    ]

    # Tool call round trip.
    events = loop.deliver(fake.function_call("lookup_order", '{"order_number":"42"}', "call_9"))
    assert events[:2] == [
        AnswerStage(stage="response_created"),
        ToolCall(call_id="call_9", name="lookup_order", arguments='{"order_number":"42"}'),
    ]
    session.send(ToolResult(call_id="call_9", output='{"status":"shipped"}'), 3.0)
    loop.pump()
    assert fake.received[-2:] == [
        {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": "call_9",
                "output": '{"status":"shipped"}',
            },
        },
        {"type": "response.create"},
    ]

    # Instructions update: the second session.updated is not a second SessionReady.
    session.send(UpdateInstructions(instructions="Now speak French."), 4.0)
    assert loop.pump() == []
    assert fake.session["instructions"] == "Now speak French."

    # A real server error is reported, not fatal.
    assert loop.deliver(fake.error("invalid_value", "Invalid value: 'x'")) == [
        ProviderError(message="Invalid value: 'x'", code="invalid_value")
    ]

    # Hang up: we close, and the close we asked for is not an error.
    session.close(5.0)
    loop.pump()
    assert loop.closed == [1000]
    assert session.receive_io(SocketClosed(channel="main", code=1000, reason=""), 5.1) == []
    session.send(SendAudio(audio=b"late"), 5.2)  # ignored after close
    assert session.io_to_send() == []


def test_pcm24_call_and_beta_event_names() -> None:
    session = opened(audio_format="pcm24")
    pcm = tone("pcm24", 20)
    b64 = base64.b64encode(pcm).decode()
    beta = [
        {"type": "session.updated", "session": {}},
        {"type": "response.audio.delta", "item_id": "i1", "delta": b64},
        {"type": "response.audio_transcript.delta", "item_id": "i1", "delta": "Hel"},
        {"type": "response.audio_transcript.done", "item_id": "i1", "transcript": "Hello"},
        {"type": "response.text.done", "item_id": "i1", "text": "Hi"},
        {"type": "conversation.item.created", "item": {"id": "i1"}},
        {"type": "rate_limits.updated", "rate_limits": []},
        {"type": "brand.new.event", "x": 1},
    ]
    events = [
        e
        for m in beta
        for e in session.receive_io(SocketMessage(channel="main", data=json.dumps(m)), 1.0)
    ]
    assert events == [
        SessionReady(),
        AudioOut(audio=pcm, item_id="i1"),
        Transcript(role="assistant", text="Hel", final=False, item_id="i1"),
        Transcript(role="assistant", text="Hello", item_id="i1"),
        Transcript(role="assistant", text="Hi", item_id="i1"),
    ]


def test_commands_before_the_socket_opens_follow_the_session_update() -> None:
    session = make()
    session.start(0.0)
    session.io_to_send()
    session.send(SendAudio(audio=b"\x7f" * 160), 0.01)
    session.send(SendText(text="hi"), 0.02)
    assert session.io_to_send() == []
    session.receive_io(SocketOpened(channel="main"), 0.1)
    kinds = [m["type"] for m in sent_json(session)]  # type: ignore[index]
    assert kinds == [
        "session.update",
        "input_audio_buffer.append",
        "conversation.item.create",
        "response.create",
    ]


def test_pending_queue_is_bounded() -> None:
    session = make(max_pending_bytes=1000)
    session.start(0.0)
    session.io_to_send()
    for _ in range(10):
        session.send(SendAudio(audio=b"\x00" * 300), 0.0)  # 446 bytes of JSON each
    assert session.dropped_messages == 8
    session.receive_io(SocketOpened(channel="main"), 0.1)
    assert len(session.io_to_send()) == 3


# -- failures -------------------------------------------------------------------


def test_refused_handshake_is_fatal() -> None:
    fake = FakeOpenAIRealtime(api_key="sk-right")
    loop = Loopback(make(api_key="sk-wrong"), fake)
    [error] = loop.start()
    assert isinstance(error, ProviderError) and error.fatal and error.code == "1006"


def test_server_close_is_fatal() -> None:
    session = opened()
    [error] = session.receive_io(
        SocketClosed(channel="main", code=4000, reason="beta_api_shape_disabled"), 1.0
    )
    assert error == ProviderError(
        message="OpenAI Realtime closed the connection (4000 beta_api_shape_disabled)",
        fatal=True,
        code="4000",
    )
    assert (
        session.receive_io(SocketMessage(channel="main", data="{}"), 1.1) == []
    )  # late frames are ignored


def test_setup_timeout() -> None:
    session = make(setup_timeout=10.0)
    session.start(100.0)
    session.io_to_send()
    assert session.next_deadline() == 110.0
    assert session.handle_timer(109.9) == []
    session.receive_io(SocketOpened(channel="main"), 101.0)
    session.io_to_send()
    [error] = session.handle_timer(110.0)
    assert isinstance(error, ProviderError) and error.fatal and error.code == "setup_timeout"
    assert session.io_to_send() == [CloseSocket(channel="main", code=1000)]
    assert session.next_deadline() is None


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        b"\xff\xfe",
        "[1, 2]",
        '{"type": 5}',
        "[" * 5000 + "]" * 5000,
        '{"type":"response.output_audio.delta","delta":7}',
        '{"type":"response.output_audio.delta","delta":"@@@"}',
        '{"type":"response.output_audio.delta","delta":"AAA="}',  # fine for mu-law...
        '{"type":"response.function_call_arguments.done","call_id":"c","name":"n"}',
        '{"type":"response.done","response":"done"}',
        '{"type":"error","error":null}',
        '{"type":"input_audio_buffer.speech_started","item_id":["x"]}',
    ],
)
def test_malformed_messages_become_non_fatal_errors(message: str | bytes) -> None:
    session = opened(audio_format="pcm24")  # ...but "AAA=" is 2 bytes: fine here too
    events = session.receive_io(SocketMessage(channel="main", data=message), 1.0)
    if message == '{"type":"response.output_audio.delta","delta":"AAA="}':
        assert events == [AudioOut(audio=b"\x00\x00")]
        return
    assert len(events) == 1 and isinstance(events[0], ProviderError)
    assert not events[0].fatal and events[0].code == "malformed_message"
    assert session.malformed_messages == 1


def test_odd_pcm16_delta_is_malformed() -> None:
    session = opened(audio_format="pcm24")
    message = json.dumps({"type": "response.output_audio.delta", "delta": "AAAA"})  # 3 bytes
    [error] = session.receive_io(SocketMessage(channel="main", data=message), 1.0)
    assert isinstance(error, ProviderError) and error.code == "malformed_message"


def test_too_many_malformed_messages_close_the_session() -> None:
    session = opened(max_malformed_messages=3)
    for _ in range(3):
        [error] = session.receive_io(SocketMessage(channel="main", data="garbage"), 1.0)
        assert isinstance(error, ProviderError) and not error.fatal
    [error] = session.receive_io(SocketMessage(channel="main", data="garbage"), 1.0)
    assert isinstance(error, ProviderError) and error.fatal
    assert error.code == "too_many_malformed_messages"
    assert session.io_to_send() == [CloseSocket(channel="main", code=1002)]


def test_oversized_message_is_refused_before_parsing() -> None:
    session = opened(max_message_bytes=100)
    [error] = session.receive_io(
        SocketMessage(channel="main", data='{"type":"x","pad":"' + "a" * 200 + '"}'), 1.0
    )
    assert isinstance(error, ProviderError) and error.code == "malformed_message"


def test_fuzz_harness_runs_briefly() -> None:
    for name, check, strategy in fuzz_providers.HARNESSES:
        if name == "openai":
            fuzz_providers.property_for(check, strategy, 150)()


def test_tool_error_flag_leaves_the_wire_unchanged() -> None:
    # Realtime has no error field on function_call_output: the text says it.
    plain, flagged = opened(), opened()
    plain.send(ToolResult(call_id="call_1", output='{"error":"x"}'), 1.0)
    flagged.send(ToolResult(call_id="call_1", output='{"error":"x"}', is_error=True), 1.0)
    sent = sent_json(plain)
    assert sent and sent == sent_json(flagged)
