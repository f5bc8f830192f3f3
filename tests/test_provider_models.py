"""Default models: current, in one table, checked against the installed openai SDK.

The SDK marks retired models in its generated type docs ("Deprecated values:
... Announced shutdown date: YYYY-MM-DD"); these tests read them from the
installed package, so a new SDK release that retires one of our defaults
fails here rather than on a live call.
"""

from __future__ import annotations

import datetime
import json
import logging
from functools import partial

import anyio
import pytest
from openai.types.audio_model import AudioModel
from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming
from openai.types.realtime import SessionUpdateEventParam
from openai.types.realtime.audio_transcription import AudioTranscription
from openai.types.realtime.realtime_session_create_request import RealtimeSessionCreateRequest
from openai.types.shared.chat_model import ChatModel

from patter_anyio import Patter
from patter_anyio._agent import InvalidOption
from patter_core._errors import LocalProtocolError
from patter_core.providers import LlmConfig, OpenAIRealtimeConfig, OpenAITurnDetection
from patter_core.providers._models import (
    DEFAULT_MODELS,
    KNOWN_SHUTDOWNS,
    LLM_MODEL,
    OPENAI_STT_MODEL,
    OPENAI_TTS_MODEL,
    REALTIME_MODEL,
    REALTIME_TRANSCRIPTION_MODEL,
    model_warnings,
)
from patter_core.providers._openai_realtime import session_update
from patter_core.providers.pipeline._llm import build_chat_request
from tests.sdk_types import check, deprecations, literal_values

REALTIME = (
    "openai.types.realtime.realtime_session_create_request",
    "RealtimeSessionCreateRequest.model",
)
TRANSCRIPTION = ("openai.types.realtime.audio_transcription", "AudioTranscription.model")
STT = ("openai.types.audio_model", "AudioModel")
TTS = ("openai.types.audio.speech_model", "SpeechModel")
CHAT = ("openai.types.shared.chat_model", "ChatModel")


def sdk_shutdowns() -> dict[str, datetime.date]:
    out: dict[str, datetime.date] = {}
    for where in (REALTIME, TRANSCRIPTION, STT, TTS, CHAT):
        out.update(deprecations(*where))
    return out


def test_the_sdk_notes_are_read() -> None:
    # The parser finds the shutdown dates the SDK announces; if it changes its wording
    # this fails instead of every other test passing on an empty list.
    assert deprecations(*REALTIME)["gpt-realtime"] == datetime.date(2027, 1, 20)
    assert deprecations(*TRANSCRIPTION)["gpt-4o-mini-transcribe"] == datetime.date(2027, 2, 26)
    assert deprecations(*CHAT)["gpt-4o-mini"] == datetime.date(2027, 1, 14)


@pytest.mark.parametrize(
    ("model", "where", "literal"),
    [
        (REALTIME_MODEL, REALTIME, RealtimeSessionCreateRequest.model_fields["model"].annotation),
        (
            REALTIME_TRANSCRIPTION_MODEL,
            TRANSCRIPTION,
            AudioTranscription.model_fields["model"].annotation,
        ),
        (OPENAI_STT_MODEL, STT, AudioModel),
        (LLM_MODEL, CHAT, ChatModel),
    ],
)
def test_default_is_a_current_sdk_model(
    model: str, where: tuple[str, str], literal: object
) -> None:
    assert model in literal_values(literal), f"{model} is not a model the SDK knows"
    assert model not in deprecations(*where), f"{model} is deprecated in the installed SDK"


def test_openai_tts_default_is_the_best_the_sdk_offers() -> None:
    # Every OpenAI speech model has an announced shutdown (2027-01-06). The
    # day the SDK lists a current one, this fails and the default moves.
    from openai.types.audio.speech_model import SpeechModel

    current = literal_values(SpeechModel) - set(deprecations(*TTS))
    if current:
        assert OPENAI_TTS_MODEL in current
    else:
        assert KNOWN_SHUTDOWNS[OPENAI_TTS_MODEL] == deprecations(*TTS)[OPENAI_TTS_MODEL]


def test_known_shutdowns_agree_with_the_sdk() -> None:
    sdk = sdk_shutdowns()
    wrong = {m: (d, sdk.get(m)) for m, d in KNOWN_SHUTDOWNS.items() if sdk.get(m) != d}
    assert not wrong
    # Every realtime, transcription and speech model the SDK retires is known.
    for where in (REALTIME, TRANSCRIPTION, STT, TTS):
        assert set(deprecations(*where)) <= set(KNOWN_SHUTDOWNS)


def test_defaults_table_carries_the_shutdown_dates() -> None:
    rows = {row.role: row for row in DEFAULT_MODELS}
    assert rows["openai realtime"].model == REALTIME_MODEL
    assert rows["openai realtime"].shutdown is None
    assert rows["pipeline openai text-to-speech"].shutdown == datetime.date(2027, 1, 6)
    # The configs take their defaults from the table.
    assert OpenAIRealtimeConfig(api_key="k").model == REALTIME_MODEL
    assert OpenAIRealtimeConfig(api_key="k").input_transcription_model == (
        REALTIME_TRANSCRIPTION_MODEL
    )
    assert LlmConfig(api_key="k").model == LLM_MODEL


def test_model_warnings_past_and_within_30_days() -> None:
    used = [("openai realtime", "gpt-realtime"), ("pipeline llm", LLM_MODEL)]
    assert model_warnings(used, datetime.date(2026, 12, 20)) == []  # 31 days left
    assert model_warnings(used, datetime.date(2026, 12, 21)) == [
        "openai realtime model 'gpt-realtime' shuts down on 2027-01-20 (in 30 days); "
        "configure a current model"
    ]
    assert model_warnings(used, datetime.date(2027, 1, 21)) == [
        "openai realtime model 'gpt-realtime' was shut down on 2027-01-20: "
        "calls using it fail; configure a current model"
    ]
    assert model_warnings([("x", "my-own-model")], datetime.date(2030, 1, 1)) == []


@pytest.mark.anyio
async def test_server_start_warns_of_a_retired_model(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="patter_anyio")
    phone = Patter(openai_key="sk-test")
    for model, expect in (("gpt-3.5-turbo", True), (None, False)):
        caplog.clear()
        agent = phone.agent(provider="openai", model=model)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                await tg.start(partial(phone.serve, agent, None, handle_signals=False))
                phone.stop()
        warned = [
            r for r in caplog.records if r.levelno == logging.WARNING and "shut down" in r.message
        ]
        if expect:
            assert len(warned) == 1
            assert "'gpt-3.5-turbo' was shut down on 2026-10-23" in warned[0].message
        else:
            assert warned == []


# -- options the newer models take, checked against the SDK's request types ----------------


def test_session_update_matches_the_sdk_types() -> None:
    tool = {"name": "lookup", "description": "d", "parameters": {"type": "object"}}
    plain = session_update(OpenAIRealtimeConfig(api_key="k", tools=[tool]))
    check(plain, SessionUpdateEventParam)
    assert "reasoning" not in plain["session"]  # type: ignore[operator]
    assert "parallel_tool_calls" not in plain["session"]  # type: ignore[operator]
    tuned = session_update(
        OpenAIRealtimeConfig(
            api_key="k",
            tools=[tool],
            reasoning_effort="low",
            parallel_tool_calls=False,
            turn_detection=OpenAITurnDetection(type="semantic_vad", eagerness="low"),
            noise_reduction="far_field",
        )
    )
    check(tuned, SessionUpdateEventParam)
    session = tuned["session"]
    assert isinstance(session, dict)
    assert session["reasoning"] == {"effort": "low"}
    assert session["parallel_tool_calls"] is False
    audio_in = session["audio"]["input"]
    assert audio_in["noise_reduction"] == {"type": "far_field"}
    assert audio_in["turn_detection"]["type"] == "semantic_vad"
    assert audio_in["transcription"] == {"model": REALTIME_TRANSCRIPTION_MODEL}


def test_phone_defaults_in_the_session_update() -> None:
    session = session_update(OpenAIRealtimeConfig(api_key="k"))["session"]
    assert isinstance(session, dict)
    assert session["model"] == REALTIME_MODEL
    assert session["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"


def test_chat_request_matches_the_sdk_types() -> None:
    config = LlmConfig(
        api_key="k",
        tools=({"name": "lookup", "parameters": {"type": "object"}},),
        reasoning_effort="minimal",
        parallel_tool_calls=False,
    )
    request = build_chat_request(config, [{"role": "user", "content": "hi"}])
    body = json.loads(request.body)
    check(body, CompletionCreateParamsStreaming)
    assert body["model"] == LLM_MODEL
    assert body["reasoning_effort"] == "minimal" and body["parallel_tool_calls"] is False
    bare = json.loads(build_chat_request(LlmConfig(api_key="k"), []).body)
    assert "reasoning_effort" not in bare and "parallel_tool_calls" not in bare


def test_bad_options_are_our_errors() -> None:
    with pytest.raises(LocalProtocolError, match="reasoning_effort"):
        OpenAIRealtimeConfig(api_key="k", reasoning_effort="ultra")  # type: ignore[arg-type]
    phone = Patter(openai_key="sk-test")
    for kwargs, needle in (
        ({"reasoning_effort": "ultra"}, "reasoning_effort"),
        ({"turn_detection": "loud"}, "turn_detection"),
        ({"noise_reduction": "far"}, "noise_reduction"),
    ):
        with pytest.raises(InvalidOption, match=needle):
            phone.agent(provider="openai", **kwargs)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_server_start_names_the_client_tools_an_elevenlabs_agent_needs(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="patter_anyio")
    phone = Patter()
    tool = {"name": "check_order", "handler": lambda args, call: {}}
    agent = phone.agent(
        provider="elevenlabs",
        agent_id="agent_x",
        tools=[tool],
        transfer_allowlist=["+15550009999"],
    )
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(partial(phone.serve, agent, None, handle_signals=False))
            phone.stop()
    notices = [r.getMessage() for r in caplog.records if "client tools" in r.getMessage()]
    assert notices == [
        "ElevenLabs agent: tools reach this server only if the agent defines client tools "
        "named check_order, end_call, transfer_call and its client events include "
        "client_tool_call"
    ]


def test_cli_flags_reach_the_agent() -> None:
    from patter_anyio._cli import runtime_from_config
    from patter_anyio._config import config_from_args
    from patter_core import CountingEntropy

    argv = [
        "serve",
        "--provider",
        "openai",
        "--turn-detection",
        "semantic_vad",
        "--noise-reduction",
        "off",
        "--reasoning-effort",
        "low",
        "--provider-max-duration",
        "600",
        "--silence-timeout",
        "8",
        "--max-duration",
        "900",
    ]
    _, config = config_from_args(argv, {"OPENAI_API_KEY": "sk-x"}, entropy=CountingEntropy())
    agent = runtime_from_config(config).agent
    assert (agent.turn_detection, agent.noise_reduction) == ("semantic_vad", None)
    assert (agent.reasoning_effort, agent.provider_max_duration) == ("low", 600.0)
    assert (agent.silence_timeout, agent.max_duration) == (8.0, 900.0)
    _, plain = config_from_args(["serve"], {}, entropy=CountingEntropy())
    agent = runtime_from_config(plain).agent
    assert (agent.turn_detection, agent.noise_reduction) == ("server_vad", "near_field")
    assert (agent.silence_timeout, agent.max_duration) == (None, 3600.0)
    assert agent.prewarm
    _, workers = config_from_args(["serve", "--workers", "2"], {}, entropy=CountingEntropy())
    assert not runtime_from_config(workers).agent.prewarm  # streams may reach another worker


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--reasoning-effort", "ultra"),
        ("--turn-detection", "loud"),
        ("--noise-reduction", "far"),
        ("--provider-max-duration", "-3"),
        ("--provider-max-duration", "soon"),
        ("--silence-timeout", "0"),
        ("--max-duration", "-1"),
    ],
)
def test_bad_cli_flags_are_one_line_errors(flag: str, value: str) -> None:
    from patter_anyio import ConfigError
    from patter_anyio._config import config_from_args
    from patter_core import CountingEntropy

    with pytest.raises(ConfigError) as info:
        config_from_args(["serve", flag, value], {}, entropy=CountingEntropy())
    assert flag in str(info.value) and "\n" not in str(info.value)
