"""Fuzz the pipeline provider's parsers and its session.

* the SSE parser: arbitrary bytes cut at arbitrary points give the same
  events as the whole stream, and nothing but RemoteProtocolError escapes;
* the chat-completions stream reader, the Deepgram message parser and the
  transcription reader: documented messages with fields deleted or replaced
  by arbitrary JSON, plus raw text and bytes -- results or RemoteProtocolError;
* PipelineSession: the same messages delivered on its live channels must
  never raise at all (bad provider input becomes a ProviderError event);
* the ElevenLabs stream-input reader and a session speaking through it:
  audio/alignment/isFinal/error messages mutated, results or
  RemoteProtocolError from the reader, nothing at all from the session.

    python -m fuzz.fuzz_pipeline --examples 5000
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import sys
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patter_core import CountingEntropy, RemoteProtocolError
from patter_core.providers import (
    CallHandler,
    HandlerReplied,
    HttpData,
    HttpDone,
    HttpStarted,
    OpenSocket,
    SendText,
    SocketClosed,
    SocketMessage,
    SocketOpened,
    StartHttp,
)
from patter_core.providers.pipeline import (
    DeepgramConfig,
    ElevenLabsWsTtsConfig,
    LlmConfig,
    OpenAITtsConfig,
    PipelineConfig,
    PipelineSession,
)
from patter_core.providers.pipeline._deepgram import parse_deepgram_message
from patter_core.providers.pipeline._llm import ChatStreamReader
from patter_core.providers.pipeline._openai_stt import parse_transcription
from patter_core.providers.pipeline._sse import SSEParser
from patter_core.providers.pipeline._tts_ws import parse_tts_ws_message

DEEPGRAM: list[dict[str, Any]] = [
    {
        "type": "Results",
        "is_final": True,
        "speech_final": True,
        "channel": {"alternatives": [{"transcript": "Hello there.", "confidence": 0.9}]},
    },
    {"type": "SpeechStarted", "channel": [0, 1], "timestamp": 9.54},
    {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 2.395},
    {"type": "Metadata", "request_id": "r1", "duration": 1.0},
    {"type": "Error", "description": "bad", "variant": "DATA-0000"},
]
CHAT: list[dict[str, Any]] = [
    {"choices": [{"index": 0, "delta": {"content": "Hi. There"}, "finish_reason": None}]},
    {
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{"}}
                    ]
                },
            }
        ]
    },
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"error": {"message": "x"}},
]

TTS_WS: list[dict[str, Any]] = [
    {
        "audio": "AAABAAIA",
        "isFinal": False,
        "normalizedAlignment": {"chars": ["H", "i"], "charStartTimesMs": [0, 50]},
        "alignment": {"chars": ["H", "i"], "charDurationsMs": [50, 50]},
    },
    {"isFinal": True},
    {"message": "idle", "error": "input_timeout_exceeded", "code": 1008},
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn, templates: list[dict[str, Any]]) -> str:
    message = copy.deepcopy(draw(st.sampled_from(templates)))
    for _ in range(draw(st.integers(0, 3))):
        target: Any = message
        while True:
            children = [
                k
                for k, v in (target.items() if isinstance(target, dict) else enumerate(target))
                if isinstance(v, dict | list) and v
            ]
            if not children or draw(st.booleans()):
                break
            target = target[draw(st.sampled_from(children))]
        keys = sorted(target) if isinstance(target, dict) else list(range(len(target)))
        if not keys:
            continue
        key = draw(st.sampled_from(keys))
        if isinstance(target, dict) and draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(json_values)
    return json.dumps(message)


def messages(templates: list[dict[str, Any]]) -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=100), json_values.map(json.dumps), mutated(templates))


def check_sse(data: bytes, cuts: list[int]) -> None:
    try:
        whole = SSEParser().feed(data)
    except RemoteProtocolError:
        return
    parser = SSEParser()
    parts = []
    last = 0
    for cut in sorted(set(cuts)):
        parts += parser.feed(data[last:cut])
        last = cut
    parts += parser.feed(data[last:])
    assert parts == whole, (parts, whole)


def check_readers(deepgram: list[str], chat: list[str], transcription: bytes) -> None:
    for message in deepgram:
        with contextlib.suppress(RemoteProtocolError):
            parse_deepgram_message(message)
    reader = ChatStreamReader()
    try:
        for message in chat:
            reader.feed(b"data: " + message.encode() + b"\n\n")
        reader.end_of_body()
    except RemoteProtocolError:
        pass
    with contextlib.suppress(RemoteProtocolError):
        parse_transcription(transcription)


def check_session(deepgram: list[str], chat: list[str], tts: bytes) -> None:
    config = PipelineConfig(
        stt=DeepgramConfig(api_key="k"),
        tts=OpenAITtsConfig(api_key="k"),
        llm=LlmConfig(api_key="k"),
        first_message="Hello.",
    )
    session = PipelineSession(config, entropy=CountingEntropy())
    session.start(0.0)
    session.receive_io(SocketOpened(channel="stt"), 0.0)
    now = 0.0
    pending = [a for a in session.io_to_send() if isinstance(a, StartHttp)]
    for message in [*deepgram, json.dumps(DEEPGRAM[0])]:
        now += 0.1
        session.receive_io(SocketMessage(channel="stt", data=message), now)
        pending += [a for a in session.io_to_send() if isinstance(a, StartHttp)]
    for action in pending:
        session.receive_io(HttpStarted(channel=action.channel, status=200, headers=()), now)
        if action.channel.startswith("llm"):
            for message in chat:
                session.receive_io(
                    HttpData(channel=action.channel, data=b"data: " + message.encode() + b"\n\n"),
                    now,
                )
        else:
            session.receive_io(HttpData(channel=action.channel, data=tts), now)
        session.receive_io(HttpDone(channel=action.channel), now)
        session.io_to_send()
        session.handle_timer(now)
    session.close(now)


def check_tts_ws(messages: list[str], closes: list[bool]) -> None:
    for message in messages:
        with contextlib.suppress(RemoteProtocolError):
            parse_tts_ws_message(message)
    config = PipelineConfig(
        stt=DeepgramConfig(api_key="k"), tts=ElevenLabsWsTtsConfig(api_key="k"), use_handler=True
    )
    session = PipelineSession(config, entropy=CountingEntropy())
    session.start(0.0)
    session.send(SendText(text="hi"), 0.0)
    [call] = [a for a in session.io_to_send() if isinstance(a, CallHandler)]
    session.receive_io(HandlerReplied(request_id=call.request_id, text="One. Two."), 0.0)
    channels = [a.channel for a in session.io_to_send() if isinstance(a, OpenSocket)]
    for now, (message, close) in enumerate(zip(messages, closes, strict=False)):
        session.receive_io(SocketOpened(channel=channels[-1]), now)
        session.receive_io(SocketMessage(channel=channels[-1], data=message), now)
        if close:
            session.receive_io(SocketClosed(channel=channels[-1], code=1006, reason=""), now)
        channels += [a.channel for a in session.io_to_send() if isinstance(a, OpenSocket)]
    session.close(0.0)


def check(examples: int) -> None:
    """Run ``examples`` cases of each target; raises on a failure."""
    options = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )

    @options
    @given(
        st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode)),
        st.lists(st.integers(0, 300), max_size=10),
    )
    def fuzz_sse(data: bytes, cuts: list[int]) -> None:
        check_sse(data, cuts)

    @options
    @given(
        st.lists(messages(DEEPGRAM), max_size=4),
        st.lists(messages(CHAT), max_size=4),
        st.one_of(st.binary(max_size=50), json_values.map(lambda v: json.dumps(v).encode())),
    )
    def fuzz_readers(deepgram: list[str], chat: list[str], transcription: bytes) -> None:
        check_readers(deepgram, chat, transcription)

    @settings(options, max_examples=max(1, examples // 4))
    @given(
        st.lists(messages(DEEPGRAM), max_size=3),
        st.lists(messages(CHAT), max_size=3),
        st.binary(max_size=41),
    )
    def fuzz_session(deepgram: list[str], chat: list[str], tts: bytes) -> None:
        check_session(deepgram, chat, tts)

    @settings(options, max_examples=max(1, examples // 4))
    @given(st.lists(messages(TTS_WS), max_size=5), st.lists(st.booleans(), max_size=5))
    def fuzz_tts_ws(tts: list[str], closes: list[bool]) -> None:
        check_tts_ws(tts, closes)

    fuzz_sse()
    fuzz_readers()
    fuzz_session()
    fuzz_tts_ws()


def run(examples: int) -> int:
    try:
        check(examples)
    except Exception as exc:
        print(f"fuzz_pipeline: FAILED: {type(exc).__name__}: {exc}")
        return 1
    print(
        f"fuzz_pipeline: {examples} examples each over the SSE parser and the chat, Deepgram"
        f" and transcription readers, {max(1, examples // 4)} session runs and as many"
        " text-to-speech socket runs; no failure"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000, help="number of fuzz cases")
    return run(parser.parse_args(argv).examples)


if __name__ == "__main__":
    sys.exit(main())
