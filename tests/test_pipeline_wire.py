"""Golden tests of the exact bytes the pipeline sends, and of the readers."""

from __future__ import annotations

import contextlib
import json
import struct
import wave
from io import BytesIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core import CountingEntropy, RemoteProtocolError
from patter_core.providers.pipeline import (
    DeepgramConfig,
    ElevenLabsTtsConfig,
    LlmConfig,
    OpenAITtsConfig,
)
from patter_core.providers.pipeline._deepgram import (
    DeepgramMetadata,
    DeepgramResult,
    DeepgramSpeechStarted,
    DeepgramUtteranceEnd,
    deepgram_base_url_from_env,
    deepgram_url,
    parse_deepgram_message,
)
from patter_core.providers.pipeline._llm import (
    ChatFinished,
    ChatStreamReader,
    TextDelta,
    ToolCallRequest,
    build_chat_request,
)
from patter_core.providers.pipeline._openai_stt import (
    build_transcription_request,
    multipart_body,
    parse_transcription,
)
from patter_core.providers.pipeline._tts import (
    build_elevenlabs_request,
    build_openai_speech_request,
)
from patter_core.providers.pipeline._wav import wav_bytes, wav_header

from .fakes import fake_deepgram
from .fakes.fake_openai_http import content_chunks, sse, tone, tool_call_chunks

# -- Deepgram -------------------------------------------------------------------


def test_deepgram_url_golden() -> None:
    assert deepgram_url(DeepgramConfig(api_key="k")) == (
        "wss://api.deepgram.com/v1/listen?model=nova-3&language=en&encoding=linear16"
        "&sample_rate=16000&channels=1&interim_results=true&endpointing=300"
        "&utterance_end_ms=1000&vad_events=true&smart_format=true&punctuate=true"
    )
    custom = DeepgramConfig(
        api_key="k", base_url="http://127.0.0.1:9/", model="nova-2", language=None
    )
    assert deepgram_url(custom).startswith("ws://127.0.0.1:9/v1/listen?model=nova-2&encoding=")
    assert deepgram_base_url_from_env({}) == "https://api.deepgram.com"
    env = {"DEEPGRAM_BASE_URL": "https://dg.local"}
    assert deepgram_base_url_from_env(env) == "https://dg.local"


def test_deepgram_messages() -> None:
    assert parse_deepgram_message(
        fake_deepgram.results("Hello there.", is_final=True, speech_final=True)
    ) == DeepgramResult(transcript="Hello there.", is_final=True, speech_final=True)
    assert parse_deepgram_message(fake_deepgram.speech_started(9.54)) == DeepgramSpeechStarted(
        timestamp=9.54
    )
    assert parse_deepgram_message(fake_deepgram.utterance_end()) == DeepgramUtteranceEnd(
        last_word_end=2.395
    )
    assert isinstance(parse_deepgram_message(fake_deepgram.metadata()), DeepgramMetadata)
    assert parse_deepgram_message('{"type":"SomethingNew"}') is None


@pytest.mark.parametrize("bad", ["", "not json", "[1]", '"x"', "{" * 5000])
def test_deepgram_bad_messages_raise_our_error(bad: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_deepgram_message(bad)


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["type", "channel", "alternatives", "transcript", "is_final", "x"]),
                inner,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_deepgram_parser_never_raises_other_errors(value: object) -> None:
    if isinstance(value, dict) and "type" not in value:
        value["type"] = "Results"
    with contextlib.suppress(RemoteProtocolError):
        parse_deepgram_message(json.dumps(value))


# -- WAV and multipart ----------------------------------------------------------


def test_wav_header_golden() -> None:
    assert wav_header(32000) == (
        b"RIFF" + struct.pack("<I", 32036) + b"WAVEfmt "
        b"\x10\x00\x00\x00\x01\x00\x01\x00\x80\x3e\x00\x00\x00\x7d\x00\x00\x02\x00\x10\x00"
        b"data" + struct.pack("<I", 32000)
    )


def test_wav_read_back_by_stdlib() -> None:
    pcm = tone(100, 16000)
    with wave.open(BytesIO(wav_bytes(pcm))) as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (
            1,
            2,
            16000,
        )
        assert reader.readframes(10_000) == pcm


def test_multipart_golden() -> None:
    body = multipart_body({"model": "whisper-1"}, {"file": ("a.wav", "audio/wav", b"RIFF")}, "B")
    assert body == (
        b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\nRIFF\r\n--B--\r\n"
    )


def test_transcription_request_golden() -> None:
    pcm = b"\x01\x00" * 4
    request = build_transcription_request(pcm, api_key="sk", entropy=CountingEntropy())
    boundary = "patter-" + CountingEntropy().token_bytes(16).hex()
    assert boundary == "patter-00000000000000010000000000000002"
    assert request.url == "https://api.openai.com/v1/audio/transcriptions"
    assert request.headers == (
        ("authorization", "Bearer sk"),
        ("content-type", f"multipart/form-data; boundary={boundary}"),
        ("content-length", str(len(request.body))),
    )
    assert request.body == multipart_body(
        {"model": "gpt-transcribe"},
        {"file": ("utterance.wav", "audio/wav", wav_header(8) + pcm)},
        boundary,
    )
    assert parse_transcription(b'{"text":"Hi there"}') == "Hi there"
    for bad in (b"", b"[]", b'{"text":1}', b"\xff"):
        with pytest.raises(RemoteProtocolError):
            parse_transcription(bad)


# -- TTS ------------------------------------------------------------------------


def test_openai_speech_request_golden() -> None:
    request = build_openai_speech_request(OpenAITtsConfig(api_key="sk"), "Hello.")
    assert request.method == "POST"
    assert request.url == "https://api.openai.com/v1/audio/speech"
    assert request.body == (
        b'{"model":"gpt-4o-mini-tts","voice":"alloy","input":"Hello.","response_format":"pcm"}'
    )
    assert ("authorization", "Bearer sk") in request.headers


def test_elevenlabs_request_golden() -> None:
    config = ElevenLabsTtsConfig(api_key="xi", voice_id="JBFqnCBsd6RMkjVDRZzb")
    request = build_elevenlabs_request(config, "Héllo.")
    assert request.url == (
        "https://api.elevenlabs.io/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb/stream"
        "?output_format=pcm_16000"
    )
    assert request.body == '{"text":"Héllo.","model_id":"eleven_flash_v2_5"}'.encode()
    assert request.headers[0] == ("xi-api-key", "xi")


# -- chat completions -----------------------------------------------------------


def test_chat_request_golden() -> None:
    config = LlmConfig(
        api_key="sk",
        tools=(
            {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        ),
    )
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    request = build_chat_request(config, messages)
    assert request.url == "https://api.openai.com/v1/chat/completions"
    assert request.body == (
        b'{"model":"gpt-5.4-mini","messages":[{"role":"system","content":"Be brief."},'
        b'{"role":"user","content":"Hi"}],"stream":true,"tools":[{"type":"function",'
        b'"function":{"name":"get_weather","description":"Weather for a city","parameters":'
        b'{"type":"object","properties":{"city":{"type":"string"}}}}}]}'
    )
    assert dict(request.headers)["accept"] == "text/event-stream"


def test_chat_reader_content_and_tool_calls() -> None:
    reader = ChatStreamReader()
    items = reader.feed(sse(content_chunks(["Hel", "lo!"]), done=False))
    assert items == [TextDelta(text="Hel"), TextDelta(text="lo!")]
    assert reader.feed(b"data: [DONE]\n\n") == [ChatFinished(finish_reason="stop")]
    reader = ChatStreamReader()
    stream = sse(tool_call_chunks("call_1", "get_weather", ['{"ci', 'ty":"Paris"}']))
    items = [i for n in range(0, len(stream), 7) for i in reader.feed(stream[n : n + 7])]
    assert items == [
        ToolCallRequest(call_id="call_1", name="get_weather", arguments='{"city":"Paris"}'),
        ChatFinished(finish_reason="tool_calls"),
    ]


def test_chat_reader_without_done_and_errors() -> None:
    reader = ChatStreamReader()
    reader.feed(sse(content_chunks(["x"]), done=False))
    assert reader.end_of_body() == [ChatFinished(finish_reason="stop")]
    with pytest.raises(RemoteProtocolError, match="rate"):
        ChatStreamReader().feed(b'data: {"error":{"message":"rate limited"}}\n\n')
    with pytest.raises(RemoteProtocolError):
        ChatStreamReader().feed(b"data: {oops\n\n")
    reader = ChatStreamReader()
    reader.feed(b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}\n\n')
    with pytest.raises(RemoteProtocolError):
        reader.end_of_body()
