"""ElevenLabs text-to-speech over the stream-input WebSocket: wire, turns, barge-in, failures."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patter_core import CountingEntropy, RemoteProtocolError
from patter_core.audio import PCM16_16K
from patter_core.providers import (
    AnswerStage,
    AudioOut,
    CallHandler,
    Cancel,
    CloseSocket,
    HandlerReplied,
    HttpData,
    HttpDone,
    HttpStarted,
    OpenSocket,
    ProviderError,
    ProviderEvent,
    ResponseDone,
    SendMessage,
    SendText,
    SessionReady,
    SocketClosed,
    SocketMessage,
    SocketOpened,
    StartHttp,
    Transcript,
    Truncate,
)
from patter_core.providers.pipeline import (
    DeepgramConfig,
    ElevenLabsWsTtsConfig,
    LlmConfig,
    PipelineConfig,
    PipelineSession,
)
from patter_core.providers.pipeline._tts_ws import (
    TtsWsAudio,
    TtsWsError,
    TtsWsFinal,
    elevenlabs_ws_init_message,
    elevenlabs_ws_text_message,
    elevenlabs_ws_url,
    parse_tts_ws_message,
)

from .fakes import fake_deepgram
from .fakes.fake_elevenlabs_tts import FakeElevenLabsTtsSocket, audio_message
from .fakes.fake_openai_http import content_chunks, sse, tone

# -- golden wire ---------------------------------------------------------------


def test_url_headers_and_messages_golden() -> None:
    config = ElevenLabsWsTtsConfig(api_key="el-key", voice_id="voice/1")
    assert elevenlabs_ws_url(config) == (
        "wss://api.elevenlabs.io/v1/text-to-speech/voice%2F1/stream-input"
        "?model_id=eleven_flash_v2_5&output_format=pcm_16000"
    )
    assert elevenlabs_ws_init_message(config) == '{"text":" "}'
    assert elevenlabs_ws_text_message("Hello there.", flush=True) == (
        '{"text":"Hello there. ","flush":true}'
    )
    assert elevenlabs_ws_text_message(" Hi  ", flush=False) == (
        '{"text":"Hi ","try_trigger_generation":true}'
    )
    tuned = ElevenLabsWsTtsConfig(
        api_key="k",
        base_url="http://127.0.0.1:9000/",
        voice_settings={"stability": 0.5, "similarity_boost": 0.8},
        chunk_length_schedule=(50, 120),
        auto_mode=True,
        inactivity_timeout_s=60,
        extra_query=(("language_code", "de"),),
    )
    assert elevenlabs_ws_url(tuned) == (
        "ws://127.0.0.1:9000/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/stream-input"
        "?model_id=eleven_flash_v2_5&output_format=pcm_16000&auto_mode=true"
        "&inactivity_timeout=60&language_code=de"
    )
    assert elevenlabs_ws_init_message(tuned) == (
        '{"text":" ","voice_settings":{"stability":0.5,"similarity_boost":0.8},'
        '"generation_config":{"chunk_length_schedule":[50,120]}}'
    )
    assert tuned.output_format == PCM16_16K


def test_parse_server_messages() -> None:
    pcm = tone(20, 16000)
    [audio] = parse_tts_ws_message(audio_message(pcm, "Hi, you."))
    assert audio == TtsWsAudio(audio=pcm, chars=7)  # spaces not counted
    assert parse_tts_ws_message(audio_message(pcm, "42", normalized_only=True)) == [
        TtsWsAudio(audio=pcm, chars=2)
    ]
    assert parse_tts_ws_message('{"isFinal": true}') == [TtsWsFinal()]
    assert parse_tts_ws_message('{"audio": null, "isFinal": true}') == [TtsWsFinal()]
    assert parse_tts_ws_message(b'{"audio": "", "isFinal": false}') == []
    assert parse_tts_ws_message('{"something": "new"}') == []
    error = (
        '{"message": "Have not received a new text input within the timeout of 20.0 seconds.",'
        ' "error": "input_timeout_exceeded", "code": 1008}'
    )
    assert parse_tts_ws_message(error) == [
        TtsWsError(
            message="Have not received a new text input within the timeout of 20.0 seconds.",
            code="input_timeout_exceeded",
        )
    ]
    for bad, code in [
        ("not json", 1007),
        ("[1]", 1007),
        ('{"audio": 5}', 1007),
        ('{"audio": "!!!"}', 1007),
        ('{"audio": "é"}', 1007),
        ('{"audio": "' + "A" * (4 << 20) + '"}', 1009),
    ]:
        with pytest.raises(RemoteProtocolError) as info:
            parse_tts_ws_message(bad)
        assert info.value.close_code == code


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
server_messages = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=60),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {},
        optional={
            "audio": st.one_of(st.none(), st.text(max_size=12), st.just("AAAA"), json_values),
            "isFinal": json_values,
            "alignment": json_values,
            "normalizedAlignment": st.fixed_dictionaries(
                {}, optional={"chars": st.lists(json_values, max_size=5)}
            ),
            "error": json_values,
            "message": json_values,
        },
    ).map(json.dumps),
)


@settings(max_examples=300, deadline=None)
@given(server_messages)
def test_parser_raises_only_remote_protocol_error(message: str | bytes) -> None:
    try:
        events = parse_tts_ws_message(message)
    except RemoteProtocolError:
        return
    for event in events:
        assert isinstance(event, TtsWsAudio | TtsWsFinal | TtsWsError)


# -- the session -----------------------------------------------------------------


def make(*, handler: bool = False, **tts: Any) -> PipelineSession:
    config = PipelineConfig(
        stt=DeepgramConfig(api_key="dg"),
        tts=ElevenLabsWsTtsConfig(api_key="el-key", **tts),
        llm=None if handler else LlmConfig(api_key="sk"),
        use_handler=handler,
        system_prompt="You are a phone agent.",
    )
    session = PipelineSession(config, entropy=CountingEntropy())
    session.start(0.0)
    [stt] = session.io_to_send()
    assert isinstance(stt, OpenSocket) and stt.channel == "stt"
    assert session.receive_io(SocketOpened(channel="stt"), 0.1) == [SessionReady()]
    return session


class Peer:
    """Plays the ElevenLabs side of every ``ttsws-*`` socket the session opens."""

    def __init__(self, session: PipelineSession) -> None:
        self.session = session
        self.sockets: dict[str, FakeElevenLabsTtsSocket] = {}
        self.held: list[Any] = []  # io of other channels (llm, stt, handler)
        self.closed: list[str] = []

    def run(self, now: float = 1.0, *, connect: bool = True) -> list[ProviderEvent]:
        """Carry out the session's socket I/O until it asks for nothing more."""
        events: list[ProviderEvent] = []
        while io := self.session.io_to_send():
            for action in io:
                channel = getattr(action, "channel", "")
                if not channel.startswith("ttsws-"):
                    self.held.append(action)
                elif isinstance(action, OpenSocket):
                    assert channel not in self.sockets
                    fake = self.sockets[channel] = FakeElevenLabsTtsSocket()
                    assert fake.accept(action.url, action.headers)
                    if connect:
                        events += self.session.receive_io(SocketOpened(channel=channel), now)
                elif isinstance(action, SendMessage):
                    assert channel not in self.closed
                    for reply in self.sockets[channel].receive(action.data):
                        events += self.session.receive_io(
                            SocketMessage(channel=channel, data=reply), now
                        )
                elif isinstance(action, CloseSocket):
                    self.closed.append(channel)
        return events + self.session.handle_timer(now)

    def sent_texts(self, channel: str) -> list[str]:
        return [m["text"] for m in self.sockets[channel].received]


def audio_of(events: list[ProviderEvent]) -> bytes:
    return b"".join(e.audio for e in events if isinstance(e, AudioOut))


def speech(text: str) -> bytes:
    return tone(50 * len(text), 16000)


def user_says(session: PipelineSession, text: str, now: float = 1.0) -> list[ProviderEvent]:
    return session.receive_io(
        SocketMessage(
            channel="stt", data=fake_deepgram.results(text, is_final=True, speech_final=True)
        ),
        now,
    )


def take_llm(peer: Peer) -> StartHttp:
    [llm] = [a for a in peer.held if isinstance(a, StartHttp)]
    peer.held.remove(llm)
    return llm


def test_scripted_turn_sentences_stream_as_they_complete() -> None:
    session = make()
    peer = Peer(session)
    user_says(session, "What is the weather in Paris?")
    assert peer.run() == []  # the socket opens at once, before any text
    [channel] = peer.sockets
    assert peer.sent_texts(channel) == [" "]
    llm = take_llm(peer)

    stream = sse(content_chunks(["Sure", ". It is", " sunny", " in Paris."]))
    cut = stream.rindex(b"data:", 0, stream.index(b"sunny"))
    session.receive_io(HttpStarted(channel=llm.channel, status=200, headers=()), 1.0)
    events = session.receive_io(HttpData(channel=llm.channel, data=stream[:cut]), 1.0)
    events += peer.run()
    # the first sentence went out and its audio came back: the LLM is still writing
    assert peer.sent_texts(channel) == [" ", "Sure. "]
    assert audio_of(events) == speech("Sure.")
    item = next(e.item_id for e in events if isinstance(e, AudioOut))
    assert not any(isinstance(e, ResponseDone) for e in events)
    # The turn's steps, for its timings: the LLM's first token, then the
    # first text handed to the speech socket, each once.
    stages = [e.stage for e in events if isinstance(e, AnswerStage)]
    assert stages == ["llm_first_token", "tts_request"]

    session.receive_io(HttpData(channel=llm.channel, data=stream[cut:]), 1.2)
    session.receive_io(HttpDone(channel=llm.channel), 1.2)
    events = peer.run(1.2)
    assert peer.sockets[channel].received[1:] == [
        {"text": "Sure. ", "flush": True},
        {"text": "It is sunny in Paris. ", "flush": True},
        {"text": ""},
    ]
    assert audio_of(events) == speech("It is sunny in Paris.")
    assert events[-2:] == [
        Transcript(role="assistant", text="Sure. It is sunny in Paris.", item_id=item),
        ResponseDone(item_id=item, status="completed", usage=(("tts_characters", 26),)),
    ]
    assert peer.closed == [channel]  # closed by us after isFinal
    assert session.history[-1] == {"role": "assistant", "content": "Sure. It is sunny in Paris."}
    # a late close of that socket means nothing
    assert session.receive_io(SocketClosed(channel=channel, code=1000, reason=""), 1.3) == []


def test_response_done_waits_for_is_final() -> None:
    session = make(handler=True)
    session.send(SendText(text="hi"), 0.5)
    [call] = session.io_to_send()
    assert isinstance(call, CallHandler)
    session.receive_io(HandlerReplied(request_id=call.request_id, text="One. Two."), 1.0)
    [opener] = session.io_to_send()
    assert isinstance(opener, OpenSocket)
    session.receive_io(SocketOpened(channel=opener.channel), 1.0)
    sent = [a.data for a in session.io_to_send() if isinstance(a, SendMessage)]
    assert sent == [
        '{"text":" "}',
        '{"text":"One. ","flush":true}',
        '{"text":"Two. ","flush":true}',
        '{"text":""}',
    ]
    one, two = speech("One."), speech("Two.")
    events = session.receive_io(
        SocketMessage(channel=opener.channel, data=audio_message(one, "One.")), 1.1
    )
    events += session.receive_io(
        SocketMessage(channel=opener.channel, data=audio_message(two, "Two.")), 1.1
    )
    assert audio_of(events) == one + two
    assert not any(isinstance(e, ResponseDone) for e in events)
    events = session.receive_io(
        SocketMessage(channel=opener.channel, data='{"isFinal": true}'), 1.2
    )
    assert [type(e) for e in events] == [Transcript, ResponseDone]
    assert session.io_to_send() == [CloseSocket(channel=opener.channel)]


def test_try_trigger_mode_and_voice_settings() -> None:
    session = make(handler=True, flush_each_sentence=False, voice_settings={"speed": 1.1})
    peer = Peer(session)
    session.send(SendText(text="hi"), 0.5)
    peer.run()
    [call] = [a for a in peer.held if isinstance(a, CallHandler)]
    session.receive_io(HandlerReplied(request_id=call.request_id, text="Hello."), 1.0)
    events = peer.run()
    [channel] = peer.sockets
    assert peer.sockets[channel].received == [
        {"text": " ", "voice_settings": {"speed": 1.1}},
        {"text": "Hello. ", "try_trigger_generation": True},
        {"text": ""},
    ]
    assert isinstance(events[-1], ResponseDone)


def test_barge_in_drops_late_audio_and_truncates_history() -> None:
    session = make(handler=True)
    peer = Peer(session)
    user_says(session, "Tell me.")
    peer.run()
    [call] = [a for a in peer.held if isinstance(a, CallHandler)]
    session.receive_io(
        HandlerReplied(request_id=call.request_id, text="Sure. It is sunny in Paris today."), 1.0
    )
    [opener] = session.io_to_send()
    assert isinstance(opener, OpenSocket)
    session.receive_io(SocketOpened(channel=opener.channel), 1.0)
    session.io_to_send()
    channel = opener.channel
    second = "It is sunny in Paris today."
    events = session.receive_io(
        SocketMessage(channel=channel, data=audio_message(speech("Sure."), "Sure.")), 1.1
    )
    # the second sentence's audio comes in two chunks; only the first arrives
    half = speech(second)[: len(speech(second)) // 2]
    events += session.receive_io(
        SocketMessage(channel=channel, data=audio_message(half, second[:13])), 1.1
    )
    item = next(e.item_id for e in events if isinstance(e, AudioOut))
    assert item is not None

    session.receive_io(SocketMessage(channel="stt", data=fake_deepgram.speech_started()), 2.0)
    assert session.send(Cancel(), 2.0) == [
        Transcript(role="assistant", text="Sure. " + second, item_id=item),
        ResponseDone(
            item_id=item, status="cancelled", usage=(("tts_characters", len("Sure." + second)),)
        ),
    ]
    assert session.io_to_send() == [CloseSocket(channel=channel)]
    # late audio and the close of the abandoned socket are dropped
    late = audio_message(speech(second), second)
    assert session.receive_io(SocketMessage(channel=channel, data=late), 2.1) == []
    assert session.receive_io(SocketMessage(channel=channel, data='{"isFinal": true}'), 2.1) == []
    assert session.receive_io(SocketClosed(channel=channel, code=1000, reason=""), 2.1) == []
    assert session.io_to_send() == []
    # heard: all of "Sure." (250 ms) and 400 of the 675 ms that came of the second
    session.send(Truncate(item_id=item, played_ms=250 + 400), 2.2)
    assert session.history[-1] == {"role": "assistant", "content": "Sure. It is sunny"}
    session.send(Truncate(item_id=item, played_ms=100), 2.3)
    assert session.history == [{"role": "user", "content": "Tell me."}]

    # the next answer gets a socket of its own
    user_says(session, "And tomorrow?", 3.0)
    peer.run(3.0)
    [call] = [a for a in peer.held if isinstance(a, CallHandler) and a.text == "And tomorrow?"]
    session.receive_io(HandlerReplied(request_id=call.request_id, text="Rain."), 3.1)
    events = peer.run(3.1)
    assert [c for c in peer.sockets if c != channel] and audio_of(events) == speech("Rain.")
    assert isinstance(events[-1], ResponseDone) and events[-1].item_id != item


def test_unexpected_close_reopens_once_and_resends_unvoiced_text() -> None:
    session = make(handler=True)
    session.send(SendText(text="hi"), 0.5)
    [call] = session.io_to_send()
    assert isinstance(call, CallHandler)
    session.receive_io(HandlerReplied(request_id=call.request_id, text="One. Two. Three."), 1.0)
    [first] = session.io_to_send()
    assert isinstance(first, OpenSocket)
    session.receive_io(SocketOpened(channel=first.channel), 1.0)
    session.io_to_send()
    events = session.receive_io(
        SocketMessage(channel=first.channel, data=audio_message(speech("One."), "One.")), 1.1
    )
    events += session.receive_io(
        SocketMessage(
            channel=first.channel,
            data='{"message": "boom", "error": "internal_error", "code": 1011}',
        ),
        1.1,
    )
    assert events[-1] == ProviderError(message="TTS: boom", code="internal_error")
    assert session.receive_io(SocketClosed(channel=first.channel, code=1011, reason=""), 1.2) == []
    [second] = session.io_to_send()
    assert isinstance(second, OpenSocket) and second.channel != first.channel
    assert second.url == first.url and second.headers == first.headers
    session.receive_io(SocketOpened(channel=second.channel), 1.3)
    assert [a.data for a in session.io_to_send() if isinstance(a, SendMessage)] == [
        '{"text":" "}',
        '{"text":"Two. ","flush":true}',
        '{"text":"Three. ","flush":true}',
        '{"text":""}',
    ]
    events = session.receive_io(
        SocketMessage(channel=second.channel, data=audio_message(speech("Two."), "Two.")), 1.4
    )
    # audio resets the count: one more close may be survived
    assert (
        session.receive_io(SocketClosed(channel=second.channel, code=1006, reason="reset"), 1.5)
        == []
    )
    [third] = session.io_to_send()
    assert isinstance(third, OpenSocket)
    session.receive_io(SocketOpened(channel=third.channel), 1.6)
    assert [a.data for a in session.io_to_send() if isinstance(a, SendMessage)][1:] == [
        '{"text":"Three. ","flush":true}',
        '{"text":""}',
    ]
    events += session.receive_io(
        SocketMessage(channel=third.channel, data=audio_message(speech("Three."), "Three.")), 1.7
    )
    events += session.receive_io(
        SocketMessage(channel=third.channel, data='{"isFinal": true}'), 1.7
    )
    assert audio_of(events) == speech("Two.") + speech("Three.")
    done = events[-1]
    assert isinstance(done, ResponseDone) and done.status == "completed"


def test_second_close_in_a_row_fails_the_answer() -> None:
    session = make()
    user_says(session, "Hello?")
    io = session.io_to_send()
    [first] = [a for a in io if isinstance(a, OpenSocket)]
    [llm] = [a for a in io if isinstance(a, StartHttp)]
    # the handshake fails (bad key, network): closed without ever opening
    assert (
        session.receive_io(
            SocketClosed(channel=first.channel, code=1006, reason="connect failed"), 1.0
        )
        == []
    )
    assert session.io_to_send() == []  # no text yet: reopen when some comes
    session.receive_io(HttpStarted(channel=llm.channel, status=200, headers=()), 1.1)
    session.receive_io(
        HttpData(channel=llm.channel, data=sse(content_chunks(["Hi there. How"]), done=False)), 1.1
    )
    [second] = [a for a in session.io_to_send() if isinstance(a, OpenSocket)]
    events = session.receive_io(
        SocketClosed(channel=second.channel, code=1008, reason="invalid key"), 1.2
    )
    assert events[0] == ProviderError(message="TTS: stream closed (1008: invalid key)", code="tts")
    assert isinstance(events[-1], ResponseDone) and events[-1].status == "failed"
    assert CloseSocket(channel=llm.channel) in session.io_to_send()  # the LLM is stopped too
    assert session.history == [{"role": "user", "content": "Hello?"}]


def test_llm_without_text_finishes_without_speech() -> None:
    session = make()
    peer = Peer(session)
    user_says(session, "Hello?")
    peer.run(connect=False)  # the socket is still connecting
    llm = take_llm(peer)
    session.receive_io(HttpStarted(channel=llm.channel, status=200, headers=()), 1.0)
    events = session.receive_io(HttpData(channel=llm.channel, data=sse(content_chunks([]))), 1.0)
    events += session.receive_io(HttpDone(channel=llm.channel), 1.0)
    assert [type(e) for e in events] == [ResponseDone]
    [channel] = peer.sockets
    assert session.io_to_send() == [
        CloseSocket(channel=llm.channel),  # read to its end
        CloseSocket(channel=channel),  # nothing to say: the socket is not needed
    ]
    assert session.receive_io(SocketOpened(channel=channel), 1.1) == []
    assert session.io_to_send() == []


def test_audio_without_alignment_is_counted_by_duration() -> None:
    session = make(handler=True)
    session.send(SendText(text="hi"), 0.5)
    [call] = session.io_to_send()
    assert isinstance(call, CallHandler)
    session.receive_io(HandlerReplied(request_id=call.request_id, text="Hello. Bye."), 1.0)
    [opener] = session.io_to_send()
    assert isinstance(opener, OpenSocket)
    session.receive_io(SocketOpened(channel=opener.channel), 1.0)
    session.io_to_send()
    pcm = tone(1000, 16000)  # 1 s is about 15 characters: more than both sentences
    message = json.dumps({"audio": base64.b64encode(pcm).decode(), "isFinal": False})
    events = session.receive_io(SocketMessage(channel=opener.channel, data=message), 1.1)
    events += session.receive_io(
        SocketMessage(channel=opener.channel, data='{"isFinal": true}'), 1.1
    )
    assert audio_of(events) == pcm
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert events[-2] == Transcript(role="assistant", text="Hello. Bye.", item_id=done.item_id)


def test_odd_audio_bytes_are_carried_and_garbage_is_reported() -> None:
    session = make(handler=True)
    session.send(SendText(text="hi"), 0.5)
    [call] = session.io_to_send()
    assert isinstance(call, CallHandler)
    session.receive_io(HandlerReplied(request_id=call.request_id, text="Hello."), 1.0)
    [opener] = session.io_to_send()
    assert isinstance(opener, OpenSocket)
    session.receive_io(SocketOpened(channel=opener.channel), 1.0)
    session.io_to_send()
    pcm = speech("Hello.")
    events = session.receive_io(
        SocketMessage(channel=opener.channel, data=audio_message(pcm[:101], "Hel")), 1.1
    )
    events += session.receive_io(
        SocketMessage(channel=opener.channel, data=audio_message(pcm[101:], "lo.")), 1.1
    )
    assert all(len(e.audio) % 2 == 0 for e in events if isinstance(e, AudioOut))
    assert audio_of(events) == pcm
    [error] = session.receive_io(SocketMessage(channel=opener.channel, data="not json"), 1.2)
    assert isinstance(error, ProviderError) and error.code == "tts_protocol"


def test_close_closes_the_speech_socket() -> None:
    session = make()
    user_says(session, "Hello?")
    [opener] = [a for a in session.io_to_send() if isinstance(a, OpenSocket)]
    session.close(2.0)
    assert CloseSocket(channel=opener.channel) in session.io_to_send()
    assert session.receive_io(SocketOpened(channel=opener.channel), 2.1) == []
    assert session.receive_io(SocketClosed(channel=opener.channel, code=1000, reason=""), 2.1) == []


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(server_messages, max_size=6),
    st.lists(st.sampled_from(["message", "close", "cancel", "open"]), max_size=6),
)
def test_session_survives_any_server_messages(
    messages: list[str | bytes], script: list[str]
) -> None:
    session = make(handler=True)
    session.send(SendText(text="hi"), 0.5)
    [call] = session.io_to_send()
    assert isinstance(call, CallHandler)
    session.receive_io(HandlerReplied(request_id=call.request_id, text="One. Two."), 1.0)
    channels = [a.channel for a in session.io_to_send() if isinstance(a, OpenSocket)]
    now = 1.0
    for step in script:
        now += 0.1
        channel = channels[-1]
        if step == "message" and messages:
            session.receive_io(SocketMessage(channel=channel, data=messages.pop(0)), now)
        elif step == "close":
            session.receive_io(SocketClosed(channel=channel, code=1006, reason=""), now)
        elif step == "cancel":
            session.send(Cancel(), now)
        else:
            session.receive_io(SocketOpened(channel=channel), now)
        channels += [a.channel for a in session.io_to_send() if isinstance(a, OpenSocket)]
        session.handle_timer(now)
    for message in messages:
        session.receive_io(SocketMessage(channel=channels[-1], data=message), now)
    session.close(now)
