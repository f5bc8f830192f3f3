"""Fuzz the realtime provider sessions with whatever a provider might send.

Arbitrary text, bytes, arbitrary JSON and *plausible* provider messages (a
known ``type`` with fields of the wrong shape) go into ``socket_message`` of
:class:`OpenAIRealtimeSession` and :class:`ElevenLabsSession`; arbitrary HTTP
answers go into the ElevenLabs signed-URL exchange. The only acceptable
outcomes are common provider events and queued I/O actions, or a
:class:`RemoteProtocolError`; anything else escaping is a bug.

    python -m fuzz.fuzz_providers --examples 5000
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patter_core._errors import RemoteProtocolError
from patter_core.providers import (
    AudioOut,
    CloseSocket,
    HttpData,
    HttpDone,
    HttpStarted,
    OpenSocket,
    ProviderError,
    ResponseDone,
    SendMessage,
    SessionReady,
    SocketMessage,
    SocketOpened,
    StartHttp,
    ToolCall,
    Transcript,
    UserSpeechStarted,
    UserSpeechStopped,
)
from patter_core.providers._elevenlabs import ElevenLabsConfig, ElevenLabsSession
from patter_core.providers._openai_realtime import OpenAIRealtimeConfig, OpenAIRealtimeSession

__all__ = [
    "HARNESSES",
    "check_elevenlabs",
    "check_openai",
    "check_signed_url",
    "main",
    "property_for",
    "run",
]

EVENTS = (
    SessionReady,
    AudioOut,
    UserSpeechStarted,
    UserSpeechStopped,
    Transcript,
    ToolCall,
    ResponseDone,
    ProviderError,
)
ACTIONS = (OpenSocket, SendMessage, CloseSocket, StartHttp)

OPENAI_TYPES = [
    "session.created",
    "session.updated",
    "response.output_audio.delta",
    "response.audio.delta",
    "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done",
    "response.audio_transcript.done",
    "response.output_text.delta",
    "response.text.done",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
    "response.function_call_arguments.done",
    "response.done",
    "error",
]
ELEVENLABS_TYPES = [
    "conversation_initiation_metadata",
    "audio",
    "interruption",
    "ping",
    "agent_response",
    "agent_response_correction",
    "user_transcript",
    "tentative_user_transcript",
    "client_tool_call",
    "vad_score",
    "error",
]
FIELD_NAMES = [
    # OpenAI
    "delta", "item_id", "transcript", "text", "call_id", "name", "arguments", "response",
    "status", "output", "id", "type", "error", "code", "message", "session",
    # ElevenLabs
    "conversation_initiation_metadata_event", "agent_output_audio_format",
    "user_input_audio_format", "conversation_id", "audio_event", "audio_base_64", "event_id",
    "interruption_event", "ping_event", "agent_response_event", "agent_response",
    "agent_response_correction_event", "corrected_agent_response", "user_transcription_event",
    "tentative_user_transcription_event", "user_transcript", "client_tool_call", "tool_name",
    "tool_call_id", "parameters", "error_event", "error_type",
]  # fmt: skip

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.sampled_from(["AAAA", "/w==", "ulaw_8000", "pcm_24000", "pcm_7", "message", "completed"])
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=24,
)


def _plausible(types: list[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda kind, fields: json.dumps({**fields, "type": kind}),
        st.sampled_from(types),
        st.dictionaries(st.sampled_from(FIELD_NAMES), _json, max_size=4),
    )


def _messages(types: list[str]) -> st.SearchStrategy[list[str | bytes]]:
    one: st.SearchStrategy[str | bytes] = st.one_of(
        st.text(max_size=40),
        st.binary(max_size=40),
        _json.map(json.dumps),
        _plausible(types),
        st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),  # nesting depth
    )
    return st.lists(one, max_size=8)


def _feed(session: OpenAIRealtimeSession | ElevenLabsSession, messages: list[str | bytes]) -> None:
    for message in messages:
        try:
            events = session.receive_io(SocketMessage(channel="main", data=message), 1.0)
        except RemoteProtocolError:
            continue
        for event in events:
            assert isinstance(event, EVENTS), event
        for action in session.io_to_send():
            assert isinstance(action, ACTIONS), action
            if isinstance(action, SendMessage):
                assert isinstance(action.data, str)
                json.loads(action.data)  # whatever we answer is valid JSON


def check_openai(messages: list[str | bytes]) -> None:
    for audio_format in ("pcmu", "pcm24"):
        session = OpenAIRealtimeSession(
            OpenAIRealtimeConfig(api_key="k", audio_format=audio_format, first_message="hi")
        )
        session.start(0.0)
        session.receive_io(SocketOpened(channel="main"), 0.1)
        session.io_to_send()
        _feed(session, messages)


def check_elevenlabs(messages: list[str | bytes]) -> None:
    session = ElevenLabsSession(ElevenLabsConfig(agent_id="a", expected_output_format="pcm_16000"))
    session.start(0.0)
    session.receive_io(SocketOpened(channel="main"), 0.1)
    session.io_to_send()
    _feed(session, messages)


def check_signed_url(answer: tuple[int, list[bytes]]) -> None:
    status, chunks = answer
    session = ElevenLabsSession(ElevenLabsConfig(agent_id="a", api_key="k"))
    session.start(0.0)
    session.io_to_send()
    events: list[Any] = session.receive_io(
        HttpStarted(channel="signed_url", status=status, headers=()), 0.1
    )
    for chunk in chunks:
        events += session.receive_io(HttpData(channel="signed_url", data=chunk), 0.1)
    events += session.receive_io(HttpDone(channel="signed_url"), 0.2)
    for event in events:
        assert isinstance(event, ProviderError) and event.fatal, event
    actions = session.io_to_send()
    assert (not events) == any(isinstance(a, OpenSocket) for a in actions), (events, actions)


_signed_url_bodies = st.one_of(
    st.binary(max_size=64),
    _json.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(["wss://x/y", "ws://127.0.0.1:1/p", "https://x", ""]).map(
        lambda u: json.dumps({"signed_url": u}).encode()
    ),
)
_signed_url_answers = st.tuples(
    st.sampled_from([200, 201, 204, 301, 401, 404, 500]),
    st.lists(_signed_url_bodies, max_size=3),
)

HARNESSES: list[tuple[str, Callable[[Any], None], st.SearchStrategy[Any]]] = [
    ("openai", check_openai, _messages(OPENAI_TYPES)),
    ("elevenlabs", check_elevenlabs, _messages(ELEVENLABS_TYPES)),
    ("signed_url", check_signed_url, _signed_url_answers),
]


def property_for(
    check: Callable[[Any], None], strategy: st.SearchStrategy[Any], examples: int
) -> Callable[[], None]:
    """``check`` as a Hypothesis property over ``strategy``."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def prop(value: Any) -> None:
        check(value)

    return prop


def run(examples: int) -> int:
    """Run every harness; print what ran and return a process exit status."""
    for name, check, strategy in HARNESSES:
        try:
            property_for(check, strategy, examples)()
        except Exception:
            print(f"fuzz_providers[{name}]: FAILED; falsifying input and traceback follow")
            traceback.print_exc(file=sys.stdout)
            return 1
        print(f"fuzz_providers[{name}]: {examples} examples, no undeclared error")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--examples", type=int, default=3000, help="examples per harness")
    args = parser.parse_args(argv)
    return run(args.examples)


if __name__ == "__main__":
    sys.exit(main())
