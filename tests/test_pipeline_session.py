"""PipelineSession: whole turns against the pure fakes, barge-in, tools, failures."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core import CountingEntropy
from patter_core.audio import PCM16_16K, PCM16_24K
from patter_core.providers import (
    AnswerStage,
    AudioOut,
    CallHandler,
    Cancel,
    CloseSocket,
    HandlerReplied,
    HttpData,
    HttpDone,
    HttpFailed,
    HttpStarted,
    OpenSocket,
    ProviderError,
    ProviderEvent,
    ProviderSession,
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
from patter_core.providers.pipeline import (
    DeepgramConfig,
    ElevenLabsTtsConfig,
    LlmConfig,
    OpenAISttConfig,
    OpenAITtsConfig,
    PipelineConfig,
    PipelineSession,
)

from .fakes import fake_deepgram
from .fakes.fake_elevenlabs_tts import FakeElevenLabsTts
from .fakes.fake_openai_http import (
    FakeOpenAI,
    content_chunks,
    speech_pcm,
    sse,
    tone,
    tool_call_chunks,
)

TOOLS = ({"name": "get_weather", "parameters": {"type": "object"}},)


def make(
    *, handler: bool = False, stt: str = "deepgram", tts: str = "openai", **kwargs: Any
) -> PipelineSession:
    config = PipelineConfig(
        stt=DeepgramConfig(api_key="dg") if stt == "deepgram" else OpenAISttConfig(api_key="sk"),
        tts=OpenAITtsConfig(api_key="sk")
        if tts == "openai"
        else ElevenLabsTtsConfig(api_key="el-key"),
        llm=None if handler else LlmConfig(api_key="sk", tools=TOOLS),
        use_handler=handler,
        system_prompt="You are a phone agent.",
        **kwargs,
    )
    session = PipelineSession(config, entropy=CountingEntropy())
    _: ProviderSession = session  # it satisfies the protocol
    return session


def opened(session: PipelineSession) -> PipelineSession:
    session.start(0.0)
    [action] = session.io_to_send()
    assert isinstance(action, OpenSocket)
    assert session.receive_io(SocketOpened(channel="stt"), 0.1) == [SessionReady()]
    return session


def https(io: list[Any], kind: str) -> list[StartHttp]:
    return [a for a in io if isinstance(a, StartHttp) and a.channel.startswith(kind + "-")]


def respond(
    session: PipelineSession, action: StartHttp, status: int, body: bytes, step: int = 333
) -> list[ProviderEvent]:
    events = session.receive_io(HttpStarted(channel=action.channel, status=status, headers=()), 1.0)
    for n in range(0, len(body), step):
        events += session.receive_io(HttpData(channel=action.channel, data=body[n : n + step]), 1.0)
    return events + session.receive_io(HttpDone(channel=action.channel), 1.0)


def audio_of(events: list[ProviderEvent]) -> bytes:
    return b"".join(e.audio for e in events if isinstance(e, AudioOut))


def user_says(session: PipelineSession, text: str) -> list[ProviderEvent]:
    return session.receive_io(
        SocketMessage(
            channel="stt", data=fake_deepgram.results(text, is_final=True, speech_final=True)
        ),
        1.0,
    )


def test_formats() -> None:
    assert make().input_format == PCM16_16K
    assert make().output_format == PCM16_24K
    assert make(tts="elevenlabs").output_format == PCM16_16K


def test_scripted_turn_first_audio_before_llm_finishes() -> None:
    session = opened(make())
    session.send(SendAudio(audio=b"\x00\x00" * 320), 0.2)
    assert session.io_to_send() == [SendMessage(channel="stt", data=b"\x00\x00" * 320)]

    events = user_says(session, "What is the weather in Paris?")
    assert events == [
        UserSpeechStarted(),
        UserSpeechStopped(),
        Transcript(role="user", text="What is the weather in Paris?", final=True),
        AnswerStage(stage="stt_final"),  # when the turn's timings start
    ]
    [llm] = https(session.io_to_send(), "llm")
    body = json.loads(llm.request.body)
    assert body["messages"] == [
        {"role": "system", "content": "You are a phone agent."},
        {"role": "user", "content": "What is the weather in Paris?"},
    ]
    assert body["stream"] is True and body["tools"][0]["function"]["name"] == "get_weather"

    stream = sse(content_chunks(["Sure", ". It is", " sunny", " in Paris."]))
    cut = stream.index(b"sunny")
    cut = stream.rindex(b"data:", 0, cut)
    first, rest = stream[:cut], stream[cut:]
    session.receive_io(
        HttpStarted(
            channel=llm.channel, status=200, headers=(("content-type", "text/event-stream"),)
        ),
        1.0,
    )
    assert session.receive_io(HttpData(channel=llm.channel, data=first), 1.0) == [
        AnswerStage(stage="llm_first_token"),
        AnswerStage(stage="tts_request"),
    ]
    [tts1] = https(session.io_to_send(), "tts")  # first sentence on its way, LLM still writing
    assert json.loads(tts1.request.body)["input"] == "Sure."

    fake = FakeOpenAI()
    status, pcm1 = fake.respond(tts1.request)
    events = respond(session, tts1, status, pcm1, step=101)  # odd chunks: samples kept whole
    assert all(len(e.audio) % 2 == 0 for e in events if isinstance(e, AudioOut))
    assert audio_of(events) == speech_pcm("Sure.")
    item = next(e.item_id for e in events if isinstance(e, AudioOut))

    assert session.receive_io(HttpData(channel=llm.channel, data=rest), 1.0) == []
    assert session.receive_io(HttpDone(channel=llm.channel), 1.0) == []
    [tts2] = https(session.io_to_send(), "tts")
    assert json.loads(tts2.request.body)["input"] == "It is sunny in Paris."
    events = respond(session, tts2, *fake.respond(tts2.request))
    assert audio_of(events) == speech_pcm("It is sunny in Paris.")
    assert events[-2:] == [
        Transcript(role="assistant", text="Sure. It is sunny in Paris.", item_id=item),
        ResponseDone(item_id=item, status="completed", usage=(("tts_characters", 26),)),
    ]
    assert session.history[-1] == {"role": "assistant", "content": "Sure. It is sunny in Paris."}


def test_parallel_tts_audio_stays_in_sentence_order() -> None:
    session = make(handler=True, tts="elevenlabs")
    session.start(0.0)
    session.io_to_send()
    session.send(SendText(text="1"), 0.5)
    [call] = [a for a in session.io_to_send() if isinstance(a, CallHandler)]
    session.receive_io(HandlerReplied(request_id=call.request_id, text="One. Two. Three."), 1.0)
    tts = https(session.io_to_send(), "tts")
    assert len(tts) == 2  # max_parallel_tts
    fake = FakeElevenLabsTts()
    _, one = fake.respond(tts[0].request)
    _, two = fake.respond(tts[1].request)
    events = respond(session, tts[1], 200, two)  # the second answers first: held back
    assert audio_of(events) == b""
    events = respond(session, tts[0], 200, one)
    assert audio_of(events) == one + two
    [tts3] = https(session.io_to_send(), "tts")
    events = respond(session, tts3, *fake.respond(tts3.request))
    assert fake.texts == ["One.", "Two.", "Three."]
    assert isinstance(events[-1], ResponseDone)


def test_handler_mode() -> None:
    session = opened(make(handler=True))
    user_says(session, "Hello?")
    [call] = session.io_to_send()
    assert isinstance(call, CallHandler) and call.text == "Hello?"
    assert (
        session.receive_io(HandlerReplied(request_id=call.request_id + 99, text="stale"), 1.0) == []
    )
    session.receive_io(HandlerReplied(request_id=call.request_id, text="Hi! How can I help?"), 1.0)
    tts = https(session.io_to_send(), "tts")
    assert [json.loads(t.request.body)["input"] for t in tts] == ["Hi!", "How can I help?"]
    fake = FakeOpenAI()
    events = respond(session, tts[0], *fake.respond(tts[0].request))
    events += respond(session, tts[1], *fake.respond(tts[1].request))
    assert isinstance(events[-1], ResponseDone) and events[-1].status == "completed"


def test_first_message_is_spoken_at_start() -> None:
    session = make(first_message="Hello, this is Acme.")
    session.start(0.0)
    io = session.io_to_send()
    assert isinstance(io[0], OpenSocket)
    [tts] = https(io, "tts")
    assert json.loads(tts.request.body)["input"] == "Hello, this is Acme."


def test_barge_in_truncates_history_to_what_was_heard() -> None:
    session = opened(make(handler=True))
    user_says(session, "Tell me.")
    [call] = session.io_to_send()
    assert isinstance(call, CallHandler)
    session.receive_io(
        HandlerReplied(request_id=call.request_id, text="Sure. It is sunny in Paris today."), 1.0
    )
    tts = https(session.io_to_send(), "tts")
    fake = FakeOpenAI()
    events = respond(session, tts[0], *fake.respond(tts[0].request))  # 250 ms
    session.receive_io(HttpStarted(channel=tts[1].channel, status=200, headers=()), 1.0)
    events += session.receive_io(
        HttpData(channel=tts[1].channel, data=speech_pcm("It is sunny in Paris today.")), 1.0
    )
    item = next(e.item_id for e in events if isinstance(e, AudioOut))
    assert item is not None

    assert session.receive_io(
        SocketMessage(channel="stt", data=fake_deepgram.speech_started()), 2.0
    ) == [UserSpeechStarted()]
    # The cancelled answer's end comes back from the Cancel itself.
    assert session.send(Cancel(), 2.0) == [
        Transcript(role="assistant", text="Sure. It is sunny in Paris today.", item_id=item),
        # Both sentences had gone to text-to-speech: 5 + 27 characters.
        ResponseDone(item_id=item, status="cancelled", usage=(("tts_characters", 32),)),
    ]
    assert session.io_to_send() == [CloseSocket(channel=tts[1].channel)]
    assert session.handle_timer(2.0) == []  # nothing was held back for a timer
    # late bytes of the aborted request are ignored
    assert session.receive_io(HttpData(channel=tts[1].channel, data=b"\x01\x02"), 2.0) == []
    # heard: all of "Sure." (250 ms) and half of the 1350 ms second sentence
    session.send(Truncate(item_id=item, played_ms=250 + 675), 2.1)
    assert session.history[-1] == {"role": "assistant", "content": "Sure. It is sunny"}
    session.send(Truncate(item_id=item, played_ms=0), 2.2)
    assert session.history == [{"role": "user", "content": "Tell me."}]


def test_cancel_aborts_llm_stream() -> None:
    session = opened(make())
    user_says(session, "Hi")
    [llm] = https(session.io_to_send(), "llm")
    session.receive_io(HttpStarted(channel=llm.channel, status=200, headers=()), 1.0)
    session.receive_io(
        HttpData(
            channel=llm.channel, data=sse(content_chunks(["Hello there, I"]), done=False)[:150]
        ),
        1.0,
    )
    events = session.send(Cancel(), 1.1)
    assert CloseSocket(channel=llm.channel) in session.io_to_send()
    assert [type(e) for e in events] == [ResponseDone]
    assert session.receive_io(HttpData(channel=llm.channel, data=b"data: [DONE]\n\n"), 1.2) == []
    assert session.history == [{"role": "user", "content": "Hi"}]


def test_tool_call_round_trip() -> None:
    session = opened(make())
    user_says(session, "Weather in Paris?")
    [llm] = https(session.io_to_send(), "llm")
    stream = sse(tool_call_chunks("call_abc", "get_weather", ['{"city"', ':"Paris"}']))
    events = respond(session, llm, 200, stream, step=17)
    assert events == [
        ToolCall(call_id="call_abc", name="get_weather", arguments='{"city":"Paris"}')
    ]
    session.send(ToolResult(call_id="call_abc", output='{"temp_c":21}'), 2.0)
    [llm2] = https(session.io_to_send(), "llm")
    messages = json.loads(llm2.request.body)["messages"]
    assert messages[2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": '{"temp_c":21}'},
    ]
    respond(session, llm2, 200, sse(content_chunks(["It is 21 degrees."])))
    [tts] = https(session.io_to_send(), "tts")
    events = respond(session, tts, *FakeOpenAI().respond(tts.request))
    assert isinstance(events[-1], ResponseDone) and events[-1].status == "completed"
    assert session.history[-1] == {"role": "assistant", "content": "It is 21 degrees."}
    [error] = session.send(ToolResult(call_id="call_zzz", output="?"), 3.0)
    assert isinstance(error, ProviderError) and error.code == "unknown_call"


def test_interim_results_and_utterance_end() -> None:
    session = opened(make(handler=True))
    events = session.receive_io(
        SocketMessage(channel="stt", data=fake_deepgram.results("what", is_final=False)), 1.0
    )
    assert events == [UserSpeechStarted(), Transcript(role="user", text="what", final=False)]
    session.receive_io(
        SocketMessage(channel="stt", data=fake_deepgram.results("What time", is_final=True)), 1.1
    )
    session.receive_io(
        SocketMessage(channel="stt", data=fake_deepgram.results("is it?", is_final=True)), 1.2
    )
    events = session.receive_io(
        SocketMessage(channel="stt", data=fake_deepgram.utterance_end()), 1.3
    )
    assert events == [
        UserSpeechStopped(),
        Transcript(role="user", text="What time is it?"),
        AnswerStage(stage="stt_final"),
    ]
    assert session.io_to_send() == [CallHandler(request_id=1, text="What time is it?")]
    assert (
        session.receive_io(SocketMessage(channel="stt", data=fake_deepgram.metadata()), 1.4) == []
    )


def test_keepalive_closestream_and_unexpected_close() -> None:
    session = opened(make())
    assert session.next_deadline() == 0.1 + 4.0
    session.handle_timer(4.1)
    assert session.io_to_send() == [SendMessage(channel="stt", data='{"type":"KeepAlive"}')]
    session.send(SendAudio(audio=b"\0\0"), 5.0)
    session.io_to_send()
    assert session.next_deadline() == 9.0
    [error] = session.receive_io(SocketClosed(channel="stt", code=1011, reason="NET-0001"), 6.0)
    assert isinstance(error, ProviderError) and error.fatal
    session = opened(make())
    session.close(1.0)
    assert session.io_to_send() == [
        SendMessage(channel="stt", data='{"type":"CloseStream"}'),
        CloseSocket(channel="stt"),
    ]
    assert session.receive_io(SocketClosed(channel="stt", code=1000, reason=""), 1.1) == []


def test_early_audio_is_sent_when_the_socket_opens() -> None:
    session = make()
    session.start(0.0)
    session.io_to_send()
    session.send(SendAudio(audio=b"\1\0" * 10), 0.01)
    session.receive_io(SocketOpened(channel="stt"), 0.2)
    assert session.io_to_send() == [SendMessage(channel="stt", data=b"\1\0" * 10)]


def test_http_failures_become_provider_errors() -> None:
    session = opened(make(tts="elevenlabs"))
    user_says(session, "Hi")
    [llm] = https(session.io_to_send(), "llm")
    events = respond(session, llm, 500, b'{"error":{"message":"boom"}}')
    assert isinstance(events[0], ProviderError) and "boom" in events[0].message
    assert isinstance(events[-1], ResponseDone) and events[-1].status == "failed"

    assert session.send(Say(text="Hello."), 2.0) == [AnswerStage(stage="tts_request")]
    [tts] = https(session.io_to_send(), "tts")
    bad = FakeElevenLabsTts(api_key="other")
    events = respond(session, tts, *bad.respond(tts.request))
    assert isinstance(events[0], ProviderError) and "invalid_api_key" in events[0].message
    assert isinstance(events[-1], ResponseDone)
    assert session.send(Say(text="Again."), 3.0) == [AnswerStage(stage="tts_request")]
    [tts] = https(session.io_to_send(), "tts")
    failed = HttpFailed(channel=tts.channel, message="connection reset")
    [error, done] = session.receive_io(failed, 3.1)
    assert isinstance(error, ProviderError) and isinstance(done, ResponseDone)


def test_update_instructions_and_send_text() -> None:
    session = opened(make())
    session.send(UpdateInstructions(instructions="Speak French."), 1.0)
    session.send(SendText(text="1 2 3"), 1.0)
    [llm] = https(session.io_to_send(), "llm")
    assert json.loads(llm.request.body)["messages"] == [
        {"role": "system", "content": "Speak French."},
        {"role": "user", "content": "1 2 3"},
    ]


def test_says_queue_behind_the_answer_in_progress() -> None:
    session = opened(make(handler=True))
    session.send(Say(text="First."), 1.0)
    session.send(Say(text="Second."), 1.0)
    [tts] = https(session.io_to_send(), "tts")
    respond(session, tts, *FakeOpenAI().respond(tts.request))
    [tts2] = https(session.io_to_send(), "tts")
    assert json.loads(tts2.request.body)["input"] == "Second."


def test_openai_stt_with_vad() -> None:
    session = make(stt="openai")
    assert session.start(0.0) == [SessionReady()]  # nothing to connect first
    assert session.io_to_send() == []
    assert session.next_deadline() is None
    silence = np.zeros(16000, dtype="<i2").tobytes()
    events: list[ProviderEvent] = []
    for n, chunk in enumerate([silence, tone(600, 16000), silence]):
        events += session.send(SendAudio(audio=chunk), float(n))
    assert events == [UserSpeechStarted(), UserSpeechStopped()]
    [stt] = https(session.io_to_send(), "stt")
    fake = FakeOpenAI()
    events = respond(session, stt, *fake.respond(stt.request))
    assert events == [Transcript(role="user", text="What is the weather in Paris?")]
    assert https(session.io_to_send(), "llm")


_channels = st.sampled_from(["stt", "llm-1", "llm-2", "tts-2", "tts-3", "tts-4", "stt-5", "x"])
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("msg"), st.one_of(st.text(max_size=40), st.binary(max_size=40))),
        st.tuples(
            st.just("dg"),
            st.sampled_from(
                [
                    fake_deepgram.results("Hi there.", is_final=True, speech_final=True),
                    fake_deepgram.results("Hi", is_final=False),
                    fake_deepgram.speech_started(),
                    fake_deepgram.utterance_end(),
                    '{"type":"Results","channel":{"alternatives":[{}]}}',
                    '{"type":"Error","description":"bad"}',
                ]
            ),
        ),
        st.tuples(st.just("start"), _channels, st.integers(100, 599)),
        st.tuples(st.just("data"), _channels, st.binary(max_size=60)),
        st.tuples(
            st.just("sse"),
            _channels,
            st.sampled_from(
                [
                    sse(content_chunks(["A. B"])),
                    sse(tool_call_chunks("c1", "f", ["{}"])),
                    b"data: {bad\n\n",
                    b'data: {"choices":[{"delta":{"tool_calls":[{"index":"x"}]}}]}\n\n',
                    b'data: {"error":"x"}\n\n',
                ]
            ),
        ),
        st.tuples(st.just("done"), _channels),
        st.tuples(st.just("failed"), _channels),
        st.tuples(st.just("closed"), _channels),
        st.tuples(
            st.just("cmd"),
            st.sampled_from(
                [
                    Cancel(),
                    Say(text="Hello. World."),
                    SendText(text="hi"),
                    Truncate(item_id="answer-2", played_ms=100),
                    ToolResult(call_id="c1", output="{}"),
                    SendAudio(audio=b"\x01"),
                ]
            ),
        ),
        st.tuples(st.just("handler"), st.integers(0, 5), st.text(max_size=20)),
        st.tuples(
            st.just("timer"),
        ),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(ops=_ops, handler=st.booleans(), stt=st.sampled_from(["deepgram", "openai"]))
def test_session_never_raises_on_arbitrary_provider_input(
    ops: list[tuple[Any, ...]], handler: bool, stt: str
) -> None:
    session = make(handler=handler, stt=stt)
    session.start(0.0)
    session.receive_io(SocketOpened(channel="stt"), 0.0)
    now = 0.0
    for op in ops:
        now += 0.1
        kind = op[0]
        if kind == "msg" or kind == "dg":
            session.receive_io(SocketMessage(channel="stt", data=op[1]), now)
        elif kind == "start":
            session.receive_io(HttpStarted(channel=op[1], status=op[2], headers=()), now)
        elif kind in ("data", "sse"):
            session.receive_io(HttpData(channel=op[1], data=op[2]), now)
        elif kind == "done":
            session.receive_io(HttpDone(channel=op[1]), now)
        elif kind == "failed":
            session.receive_io(HttpFailed(channel=op[1], message="boom"), now)
        elif kind == "closed":
            session.receive_io(SocketClosed(channel=op[1], code=1006, reason=""), now)
        elif kind == "cmd":
            session.send(op[1], now)
        elif kind == "handler":
            session.receive_io(HandlerReplied(request_id=op[1], text=op[2]), now)
        else:
            session.handle_timer(now)
        session.io_to_send()
        deadline = session.next_deadline()
        assert deadline is None or deadline <= now + 4.0
    session.close(now)
