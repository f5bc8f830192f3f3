"""ElevenLabs agent session: exact wire JSON, signed URLs, a scripted call, bad input."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz import fuzz_providers
from patter_core._errors import LocalProtocolError
from patter_core.audio import ULAW_8K, AudioFormat, Encoding
from patter_core.http._types import HttpRequest
from patter_core.providers import (
    AudioOut,
    Cancel,
    CloseSocket,
    HttpData,
    HttpDone,
    HttpFailed,
    HttpStarted,
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
    StartHttp,
    ToolCall,
    ToolResult,
    Transcript,
    Truncate,
    UpdateInstructions,
    UserSpeechStarted,
    UserSpeechStopped,
)
from patter_core.providers._elevenlabs import (
    ELEVENLABS_SAY_PREFIX,
    ElevenLabsConfig,
    ElevenLabsSession,
    elevenlabs_audio_format,
)
from patter_core.providers._urls import elevenlabs_base_url_from_env
from tests.fakes.fake_elevenlabs import FakeElevenLabs
from tests.fakes.fake_openai_realtime import Loopback, tone

PCM16_16K = AudioFormat(encoding=Encoding.PCM16LE, sample_rate=16000)


def make(**kwargs: object) -> ElevenLabsSession:
    kwargs.setdefault("agent_id", "agent_test")
    return ElevenLabsSession(ElevenLabsConfig(**kwargs))  # type: ignore[arg-type]


def ready(**kwargs: object) -> tuple[ElevenLabsSession, Loopback, FakeElevenLabs]:
    fake = FakeElevenLabs()
    session = make(**kwargs)
    loop = Loopback(session, fake)
    assert SessionReady() in loop.start()
    return session, loop, fake


def sent_json(session: ElevenLabsSession) -> list[object]:
    out = []
    for action in session.io_to_send():
        assert isinstance(action, SendMessage) and isinstance(action.data, str)
        out.append(json.loads(action.data))
    return out


# -- connecting -------------------------------------------------------------------


def test_public_agent_connects_directly() -> None:
    session = make(agent_id="agent 1/x")
    session.start(0.0)
    assert session.io_to_send() == [
        OpenSocket(
            channel="main",
            url="wss://api.elevenlabs.io/v1/convai/conversation?agent_id=agent%201%2Fx",
        )
    ]


def test_base_url_convention() -> None:
    session = make(base_url="http://127.0.0.1:9000/")
    session.start(0.0)
    [action] = session.io_to_send()
    assert isinstance(action, OpenSocket)
    assert action.url == "ws://127.0.0.1:9000/v1/convai/conversation?agent_id=agent_test"
    assert elevenlabs_base_url_from_env({}) == "https://api.elevenlabs.io"
    env = {"ELEVENLABS_BASE_URL": "https://api.eu.residency.elevenlabs.io"}
    assert elevenlabs_base_url_from_env(env) == "https://api.eu.residency.elevenlabs.io"


def test_initiation_message_carries_only_the_overrides_given() -> None:
    session = make(
        prompt="You are Acme's receptionist.",
        first_message="Hi, Acme here!",
        language="en",
        voice_id="voice_9",
        dynamic_variables={"caller": "+14155550100", "callee": "+14155550199", "vip": True},
    )
    session.start(0.0)
    session.io_to_send()
    assert session.receive_io(SocketOpened(channel="main"), 0.1) == []
    assert sent_json(session) == [
        {
            "type": "conversation_initiation_client_data",
            "conversation_config_override": {
                "agent": {
                    "prompt": {"prompt": "You are Acme's receptionist."},
                    "first_message": "Hi, Acme here!",
                    "language": "en",
                },
                "tts": {"voice_id": "voice_9"},
            },
            "dynamic_variables": {"caller": "+14155550100", "callee": "+14155550199", "vip": True},
        }
    ]
    bare = make()
    bare.start(0.0)
    bare.io_to_send()
    bare.receive_io(SocketOpened(channel="main"), 0.1)
    assert sent_json(bare) == [
        {
            "type": "conversation_initiation_client_data",
            "conversation_config_override": {},
            "dynamic_variables": {},
        }
    ]


def test_metadata_sets_formats_then_session_ready() -> None:
    fake = FakeElevenLabs(input_format="pcm_16000", output_format="pcm_24000")
    session = make()
    assert session.input_format == ULAW_8K and session.output_format == ULAW_8K
    loop = Loopback(session, fake)
    assert loop.start() == [SessionReady()]
    assert session.input_format == PCM16_16K
    assert session.output_format == AudioFormat(encoding=Encoding.PCM16LE, sample_rate=24000)
    assert session.conversation_id == "conv_fake_1"


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("ulaw_8000", ULAW_8K),
        ("pcm_8000", AudioFormat(encoding=Encoding.PCM16LE, sample_rate=8000)),
        ("pcm_22050", AudioFormat(encoding=Encoding.PCM16LE, sample_rate=22050)),
        ("pcm_44100", AudioFormat(encoding=Encoding.PCM16LE, sample_rate=44100)),
        ("pcm_48000", AudioFormat(encoding=Encoding.PCM16LE, sample_rate=48000)),
        ("mp3_44100_128", None),
        ("pcm_12345", None),
        ("pcm_", None),
        ("pcm_16000\u00b9", None),  # a digit to str.isdigit(), not to int()
    ],
)
def test_audio_format_names(name: str, fmt: AudioFormat | None) -> None:
    assert elevenlabs_audio_format(name) == fmt


@pytest.mark.parametrize("name", ["mp3_44100_128", "pcm_16000\u00b9"])
def test_unsupported_agent_format_is_fatal(name: str) -> None:
    fake = FakeElevenLabs(output_format=name)
    loop = Loopback(make(), fake)
    [error] = loop.start()
    assert isinstance(error, ProviderError) and error.fatal
    assert error.code == "unsupported_audio_format"
    assert loop.closed == [1000]


def test_signed_url_flow_for_a_private_agent() -> None:
    fake = FakeElevenLabs(api_key="xi-secret")
    session = make(api_key="xi-secret")
    loop = Loopback(session, fake)
    assert loop.start() == [SessionReady()]
    assert loop.http == [
        HttpRequest(
            method="GET",
            url="https://api.elevenlabs.io/v1/convai/conversation/get-signed-url?agent_id=agent_test",
            headers=(("xi-api-key", "xi-secret"), ("accept", "application/json")),
        )
    ]
    [opened] = loop.opened
    assert opened.url == (
        "wss://api.elevenlabs.io/v1/convai/conversation?agent_id=agent_test"
        "&conversation_signature=sig_fake_123"
    )
    assert opened.headers == ()  # the key never goes on the socket


def test_signed_url_refused_is_fatal_and_does_not_echo_the_key() -> None:
    fake = FakeElevenLabs(api_key="xi-right")
    loop = Loopback(make(api_key="xi-wrong"), fake)
    [error] = loop.start()
    assert isinstance(error, ProviderError) and error.fatal and error.code == "http_401"
    assert "invalid_api_key" in error.message and "xi-wrong" not in error.message
    assert loop.opened == []


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"not json"),
        (200, b'{"signed_url": 5}'),
        (200, b'{"signed_url": "https://not-a-socket"}'),
        (200, b"[]"),
        (500, b""),
    ],
)
def test_signed_url_garbage_is_fatal(status: int, body: bytes) -> None:
    session = make(api_key="k")
    session.start(0.0)
    [action] = session.io_to_send()
    assert isinstance(action, StartHttp) and action.channel == "signed_url"
    assert (
        session.receive_io(HttpStarted(channel="signed_url", status=status, headers=()), 0.1) == []
    )
    assert session.receive_io(HttpData(channel="signed_url", data=body), 0.1) == []
    [error] = session.receive_io(HttpDone(channel="signed_url"), 0.2)
    assert isinstance(error, ProviderError) and error.fatal
    assert session.io_to_send() == []  # no socket was ever asked for


def test_signed_url_size_limit_and_transport_failure() -> None:
    session = make(api_key="k", max_signed_url_response_bytes=10)
    session.start(0.0)
    session.io_to_send()
    session.receive_io(HttpStarted(channel="signed_url", status=200, headers=()), 0.1)
    [error] = session.receive_io(HttpData(channel="signed_url", data=b"x" * 11), 0.1)
    assert isinstance(error, ProviderError) and error.fatal
    assert (
        session.receive_io(HttpDone(channel="signed_url"), 0.2) == []
    )  # after the failure: ignored
    other = make(api_key="k")
    other.start(0.0)
    other.io_to_send()
    [error] = other.receive_io(HttpFailed(channel="signed_url", message="connection refused"), 0.1)
    assert error == ProviderError(
        message="signed URL request failed: connection refused",
        fatal=True,
        code="signed_url_failed",
    )
    with pytest.raises(LocalProtocolError):
        other.receive_io(HttpDone(channel="llm"), 0.2)


# -- commands ---------------------------------------------------------------------


def test_user_audio_chunk_is_byte_exact() -> None:
    session, _, _ = ready()
    session.send(SendAudio(audio=b"\x00\x01\xfe\xff"), 1.0)
    assert session.io_to_send() == [
        SendMessage(channel="main", data='{"user_audio_chunk":"AAH+/w=="}')
    ]


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=1000))
def test_user_audio_chunk_equals_json_dumps(audio: bytes) -> None:
    session, _, _ = ready()
    session.send(SendAudio(audio=audio), 1.0)
    [action] = session.io_to_send()
    expected = {"user_audio_chunk": base64.b64encode(audio).decode()}
    assert action == SendMessage(channel="main", data=json.dumps(expected, separators=(",", ":")))


def test_commands_golden_json() -> None:
    session, _, _ = ready()
    session.send(Cancel(), 1.0)  # server side barge-in: nothing to send
    session.send(Truncate(item_id="5", played_ms=300), 1.0)
    session.send(ToolResult(call_id="toolu_01", output='{"ok":true}'), 1.0)
    session.send(ToolResult(call_id="toolu_02", output='{"error":"x"}', is_error=True), 1.0)
    session.send(SendText(text="The caller pressed 5"), 1.0)
    session.send(UpdateInstructions(instructions="The caller is a VIP."), 1.0)
    session.send(Say(text="One moment please."), 1.0)
    assert sent_json(session) == [
        {
            "type": "client_tool_result",
            "tool_call_id": "toolu_01",
            "result": '{"ok":true}',
            "is_error": False,
        },
        {
            "type": "client_tool_result",
            "tool_call_id": "toolu_02",
            "result": '{"error":"x"}',
            "is_error": True,
        },
        {"type": "user_message", "text": "The caller pressed 5"},
        {"type": "contextual_update", "text": "The caller is a VIP."},
        {"type": "user_message", "text": ELEVENLABS_SAY_PREFIX + "One moment please."},
    ]


def test_say_before_the_socket_opens_becomes_the_first_message() -> None:
    fake = FakeElevenLabs()
    session = make()
    session.start(0.0)
    session.send(Say(text="Hello from Acme."), 0.0)
    loop = Loopback(session, fake)
    events = loop.pump()
    assert fake.init is not None
    assert fake.init["conversation_config_override"] == {
        "agent": {"first_message": "Hello from Acme."}
    }
    assert events[0] == SessionReady()
    assert events[1] == Transcript(role="assistant", text="Hello from Acme.")


def test_audio_before_metadata_is_held_and_dropped_if_the_format_differs() -> None:
    for agent_format, kept in (("ulaw_8000", True), ("pcm_16000", False)):
        fake = FakeElevenLabs(input_format=agent_format)
        session = make()
        session.start(0.0)
        session.send(SendAudio(audio=b"\xff" * 160), 0.0)
        session.send(SendText(text="hi"), 0.0)
        Loopback(session, fake).pump()
        assert bytes(fake.audio_in) == (b"\xff" * 160 if kept else b"")
        assert fake.received[-1] == {"type": "user_message", "text": "hi"}
        assert session.dropped_messages == (0 if kept else 1)


# -- a whole call -------------------------------------------------------------------


def test_scripted_call_through_the_fake() -> None:
    greeting = tone("pcmu", 100)
    fake = FakeElevenLabs(greeting_audio=greeting)
    session = make(first_message="Hi, Acme here!", dynamic_variables={"caller": "+1415"})
    loop = Loopback(session, fake)

    # Greeting.
    events = loop.start()
    assert events[:2] == [SessionReady(), Transcript(role="assistant", text="Hi, Acme here!")]
    assert b"".join(e.audio for e in events if isinstance(e, AudioOut)) == greeting
    assert fake.init is not None and fake.init["dynamic_variables"] == {"caller": "+1415"}

    # Caller audio.
    caller = tone("pcmu", 40, hz=300)
    session.send(SendAudio(audio=caller[:160]), 1.0)
    session.send(SendAudio(audio=caller[160:]), 1.0)
    loop.pump()
    assert bytes(fake.audio_in) == caller

    # ping -> pong with the same id, no event.
    ping_id, ping = fake.ping()
    assert loop.deliver(ping) == []
    assert fake.pongs == [ping_id]
    assert json.loads(loop.sent[-1]) == {"type": "pong", "event_id": ping_id}

    # An answer, then barge-in: audio of the interrupted answer is dropped.
    answer = tone("pcmu", 200, hz=600)
    events = loop.deliver(fake.agent_says("Your order shipped yesterday.", answer))
    turn = [e for e in events if isinstance(e, AudioOut)]
    turn_id = turn[0].item_id
    assert b"".join(a.audio for a in turn) == answer
    # No "answer finished" message exists: audio of a new turn ends the greeting.
    assert [e for e in events if isinstance(e, ResponseDone)] == [ResponseDone(item_id="1")]
    assert events.index(ResponseDone(item_id="1")) < events.index(turn[0])
    assert loop.deliver(fake.interruption()) == [
        UserSpeechStarted(),
        ResponseDone(item_id=turn_id, status="cancelled"),
    ]
    session.send(Cancel(), 2.0)  # what the bridge does on barge-in: nothing on the wire
    session.send(Truncate(item_id=str(turn_id), played_ms=80), 2.0)
    before = len(loop.sent)
    loop.pump()
    assert len(loop.sent) == before
    assert loop.deliver(fake.audio(answer[:160], 160, int(str(turn_id)))) == []
    assert session.stale_audio_dropped == 1
    fresh = loop.deliver(fake.agent_says("Sure, go ahead.", answer[:320]))
    fresh_audio = next(e for e in fresh if isinstance(e, AudioOut))
    assert fresh_audio.audio == answer[:320] and fresh_audio.item_id != turn_id

    # Transcripts; the caller's final words also close the agent's answer.
    assert loop.deliver(fake.user_transcript("Where is my", tentative=True)) == [
        Transcript(role="user", text="Where is my", final=False)
    ]
    assert loop.deliver(fake.user_transcript("Where is my order?")) == [
        ResponseDone(item_id=fresh_audio.item_id),
        UserSpeechStopped(),  # the caller's end of speech, for the turn's latency
        Transcript(role="user", text="Where is my order?"),
    ]
    assert loop.deliver(fake.correction("Your order shipped yesterday.", "Your order")) == [
        Transcript(role="assistant", text="Your order", correction=True)
    ]

    # Tool call round trip.
    [call] = loop.deliver(fake.tool_call("lookup_order", {"order_number": "42"}, "toolu_01"))
    assert call == ToolCall(
        call_id="toolu_01", name="lookup_order", arguments='{"order_number":"42"}'
    )
    session.send(ToolResult(call_id=call.call_id, output="shipped"), 3.0)
    loop.pump()
    assert fake.received[-1] == {
        "type": "client_tool_result",
        "tool_call_id": "toolu_01",
        "result": "shipped",
        "is_error": False,
    }

    # Ignored, then an error, then the server hangs up (e.g. the agent ended the call).
    assert loop.deliver(fake.vad_score(0.9)) == []
    assert loop.deliver(fake.error("invalid_message", "bad chunk")) == [
        ProviderError(message="bad chunk", code="invalid_message")
    ]
    [closed] = session.receive_io(SocketClosed(channel="main", code=1000, reason=""), 9.0)
    assert isinstance(closed, ProviderError) and closed.fatal and closed.code == "1000"
    session.close(9.1)
    assert session.io_to_send() == []  # already closed by the peer


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        '"just a string"',
        '{"type":"audio"}',
        '{"type":"audio","audio_event":{"audio_base_64":"!!"}}',
        '{"type":"audio","audio_event":{"audio_base_64":"AAAA","event_id":"5"}}',
        '{"type":"ping","ping_event":{"event_id":true}}',
        '{"type":"interruption","interruption_event":{}}',
        '{"type":"agent_response","agent_response_event":{"agent_response":null}}',
    ],
)
def test_malformed_messages_become_non_fatal_errors(message: str) -> None:
    session, _, _ = ready()
    [error] = session.receive_io(SocketMessage(channel="main", data=message), 1.0)
    assert isinstance(error, ProviderError) and not error.fatal
    assert error.code == "malformed_message" and session.malformed_messages == 1
    assert session.io_to_send() == []


def test_malformed_metadata_is_reported_and_a_good_one_still_counts() -> None:
    session = make()
    session.start(0.0)
    session.receive_io(SocketOpened(channel="main"), 0.1)
    session.io_to_send()
    bad = {
        "type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {"user_input_audio_format": 3},
    }
    [error] = session.receive_io(SocketMessage(channel="main", data=json.dumps(bad)), 0.2)
    assert isinstance(error, ProviderError) and error.code == "malformed_message"
    assert session.receive_io(
        SocketMessage(channel="main", data=FakeElevenLabs().metadata()), 0.3
    ) == [SessionReady()]


def test_odd_pcm_audio_is_malformed_and_tool_call_without_parameters() -> None:
    session, _, _ = ready()
    other = make(expected_output_format="pcm_16000")
    Loopback(other, FakeElevenLabs(output_format="pcm_16000")).start()
    message = json.dumps({"type": "audio", "audio_event": {"audio_base_64": "AAAA", "event_id": 9}})
    [error] = other.receive_io(SocketMessage(channel="main", data=message), 1.0)
    assert isinstance(error, ProviderError) and error.code == "malformed_message"
    bare = '{"type":"client_tool_call","client_tool_call":{"tool_name":"t","tool_call_id":"c"}}'
    assert session.receive_io(SocketMessage(channel="main", data=bare), 1.0) == [
        ToolCall(call_id="c", name="t", arguments="{}")
    ]
    # Not an object: still a tool call, which the bridge answers with an error.
    listed = '{"type":"client_tool_call","client_tool_call":{"tool_name":"t","tool_call_id":"d","parameters":[1]}}'
    assert session.receive_io(SocketMessage(channel="main", data=listed), 1.0) == [
        ToolCall(call_id="d", name="t", arguments="[1]")
    ]


def test_misuse_is_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        make(agent_id="")
    with pytest.raises(LocalProtocolError):
        make(expected_input_format="mp3_44100")
    with pytest.raises(LocalProtocolError):
        make(dynamic_variables={"x": [1]})
    with pytest.raises(LocalProtocolError):
        make().send(SendAudio(audio=b"x"), 0.0)
    session = make()
    session.start(0.0)
    with pytest.raises(LocalProtocolError):
        session.receive_io(
            HttpDone(channel="signed_url"), 0.1
        )  # public agent: no request in flight


def test_setup_timeout_while_fetching_the_signed_url() -> None:
    session = make(api_key="k", setup_timeout=5.0)
    session.start(10.0)
    session.io_to_send()
    assert session.next_deadline() == 15.0
    [error] = session.handle_timer(15.0)
    assert isinstance(error, ProviderError) and error.fatal and error.code == "setup_timeout"
    assert session.io_to_send() == []  # no socket to close yet
    assert (
        session.receive_io(HttpDone(channel="signed_url"), 16.0) == []
    )  # a late answer is ignored


def test_close_before_open_and_late_open() -> None:
    session = make()
    session.start(0.0)
    session.io_to_send()
    session.close(0.5)
    assert session.io_to_send() == [CloseSocket(channel="main", code=1000)]
    assert session.receive_io(SocketOpened(channel="main"), 0.6) == []
    assert session.io_to_send() == []


def test_fuzz_harness_runs_briefly() -> None:
    for name, check, strategy in fuzz_providers.HARNESSES:
        if name in ("elevenlabs", "signed_url"):
            fuzz_providers.property_for(check, strategy, 150)()
