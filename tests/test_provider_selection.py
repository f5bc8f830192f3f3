"""Which provider session a call talks to, pure: agent options and keys in, settings out."""

from __future__ import annotations

import secrets

import pytest

from patter_anyio import Agent
from patter_anyio._settings import ProviderSettings
from patter_core._base_urls import DEFAULT_DEEPGRAM_BASE_URL
from patter_core.bridge import CallInfo, ToolSpec
from patter_core.providers import (
    DeepgramConfig,
    EchoSession,
    ElevenLabsConfig,
    ElevenLabsTtsConfig,
    ElevenLabsWsTtsConfig,
    OpenAIRealtimeConfig,
    OpenAIRealtimeSession,
    OpenAISttConfig,
    OpenAITtsConfig,
    PipelineConfig,
    PipelineSession,
)
from patter_core.providers._models import (
    LLM_MODEL,
    OPENAI_TTS_VOICE,
    REALTIME_MODEL,
    REALTIME_VOICE,
)
from patter_core.providers._selection import (
    can_prewarm,
    greets_natively,
    pipeline_parts,
    pipeline_parts_problem,
    select_session,
    selected_models,
    selection_problem,
    session_config,
)

ALL_KEYS = ProviderSettings(openai_key="sk-o", elevenlabs_key="el", deepgram_key="dg")
OPENAI_ONLY = ProviderSettings(openai_key="sk-o")
TOOL = ToolSpec(name="lookup_order", parameters={"type": "object", "properties": {}})


def info(**overrides: str | None) -> CallInfo:
    return CallInfo(
        call_id="CA1",
        stream_id="MZ1",
        carrier="twilio",
        caller="+14155550100",
        callee="+18005550199",
        custom_parameters={},
        instructions="Be brief.",
        first_message="Hello!",
        tools=(TOOL,),
        voice=overrides.get("voice"),
        model=overrides.get("model"),
        language=overrides.get("language"),
    )


@pytest.mark.parametrize(
    ("keys", "agent", "parts"),
    [
        (ALL_KEYS, Agent(provider="pipeline"), ("deepgram", "elevenlabs")),
        (OPENAI_ONLY, Agent(provider="pipeline"), ("openai", "openai")),
        (ProviderSettings(deepgram_key="dg"), Agent(provider="pipeline"), ("deepgram", "openai")),
        (ALL_KEYS, Agent(provider="pipeline", stt="openai", tts="openai"), ("openai", "openai")),
        (OPENAI_ONLY, Agent(provider="pipeline", tts="elevenlabs-ws"), ("openai", "elevenlabs-ws")),
    ],
)
def test_pipeline_parts_follow_the_agent_then_the_keys(
    keys: ProviderSettings, agent: Agent, parts: tuple[str, str]
) -> None:
    assert pipeline_parts(agent, keys) == parts


def test_pipeline_settings_with_the_chosen_parts() -> None:
    config = session_config(Agent(provider="pipeline"), ALL_KEYS, info(), use_handler=False)
    assert isinstance(config, PipelineConfig)
    assert config.stt == DeepgramConfig(
        api_key="dg", base_url=DEFAULT_DEEPGRAM_BASE_URL, language="en"
    )
    assert config.tts == ElevenLabsTtsConfig(api_key="el", base_url="https://api.elevenlabs.io")
    assert config.llm is not None and config.llm.model == LLM_MODEL
    assert config.llm.tools == (
        {"name": "lookup_order", "description": "", "parameters": dict(TOOL.parameters)},
    )
    assert (config.system_prompt, config.first_message) == ("Be brief.", "Hello!")
    # A handler answers each turn: no LLM, so no OpenAI key is needed for it.
    handled = session_config(Agent(provider="pipeline"), ALL_KEYS, info(), use_handler=True)
    assert isinstance(handled, PipelineConfig) and handled.llm is None and handled.use_handler


def test_pipeline_voice_and_language_come_from_the_call_over_the_agent() -> None:
    agent = Agent(provider="pipeline", voice="agent-voice", language="de")
    config = session_config(agent, ALL_KEYS, info(voice="call-voice"), use_handler=True)
    assert isinstance(config, PipelineConfig)
    assert isinstance(config.tts, ElevenLabsTtsConfig) and config.tts.voice_id == "call-voice"
    assert isinstance(config.stt, DeepgramConfig) and config.stt.language == "de"
    ws = session_config(
        Agent(provider="pipeline", tts="elevenlabs-ws", voice="v1"),
        ALL_KEYS,
        info(),
        use_handler=True,
    )
    assert isinstance(ws, PipelineConfig)
    assert ws.tts == ElevenLabsWsTtsConfig(
        api_key="el", base_url="https://api.elevenlabs.io", voice_id="v1"
    )
    plain = session_config(Agent(provider="pipeline"), OPENAI_ONLY, info(), use_handler=True)
    assert isinstance(plain, PipelineConfig)
    assert plain.stt == OpenAISttConfig(api_key="sk-o", base_url="https://api.openai.com/v1")
    assert plain.tts == OpenAITtsConfig(
        api_key="sk-o", base_url="https://api.openai.com/v1", voice=OPENAI_TTS_VOICE
    )


def test_realtime_settings_defaults_and_call_overrides() -> None:
    config = session_config(Agent(provider="openai"), OPENAI_ONLY, info(), use_handler=False)
    assert isinstance(config, OpenAIRealtimeConfig)
    assert (config.model, config.voice, config.audio_format) == (
        REALTIME_MODEL,
        REALTIME_VOICE,
        "pcmu",
    )
    assert config.turn_detection.interrupt_response is True
    assert (config.instructions, config.first_message) == ("Be brief.", "Hello!")
    agent = Agent(provider="openai", model="m-agent", voice="v-agent", barge_in_min_ms=300)
    over = session_config(agent, OPENAI_ONLY, info(model="m-call"), use_handler=False)
    assert isinstance(over, OpenAIRealtimeConfig)
    assert (over.model, over.voice) == ("m-call", "v-agent")
    # The bridge decides barge-in itself: the server must not cancel on its own.
    assert over.turn_detection.interrupt_response is False
    session = select_session(agent, OPENAI_ONLY, info(), use_handler=False, entropy=secrets)
    assert isinstance(session, OpenAIRealtimeSession)


def test_elevenlabs_and_echo() -> None:
    keys = ProviderSettings(elevenlabs_key="el", elevenlabs_agent_id="agent-env")
    config = session_config(
        Agent(provider="elevenlabs", language="fr"), keys, info(voice="v"), use_handler=False
    )
    assert config == ElevenLabsConfig(
        agent_id="agent-env",
        api_key="el",
        base_url="https://api.elevenlabs.io",
        prompt="Be brief.",
        first_message="Hello!",
        language="fr",
        voice_id="v",
        dynamic_variables={"caller": "+14155550100", "callee": "+18005550199"},
    )
    assert session_config(Agent(), ALL_KEYS, info(), use_handler=False) is None
    echo = select_session(Agent(), ALL_KEYS, info(), use_handler=False, entropy=secrets)
    assert isinstance(echo, EchoSession)
    pipeline = select_session(
        Agent(provider="pipeline"), ALL_KEYS, info(), use_handler=False, entropy=secrets
    )
    assert isinstance(pipeline, PipelineSession)


def test_selection_problems_name_the_missing_key() -> None:
    pipeline = Agent(provider="pipeline")
    assert selection_problem(pipeline, ALL_KEYS, handler=False) is None
    assert selection_problem(Agent(), ProviderSettings(), handler=False) is None
    dg = selection_problem(Agent(provider="pipeline", stt="deepgram"), OPENAI_ONLY, handler=False)
    assert dg == "pipeline speech-to-text with Deepgram needs deepgram_key= or DEEPGRAM_API_KEY"
    el = selection_problem(
        Agent(provider="pipeline", tts="elevenlabs-ws"), OPENAI_ONLY, handler=True
    )
    assert el is not None and "ELEVENLABS_API_KEY" in el
    # Deepgram and ElevenLabs chosen by their keys: with a handler, OpenAI is not needed.
    no_openai = ProviderSettings(elevenlabs_key="el", deepgram_key="dg")
    assert selection_problem(pipeline, no_openai, handler=True) is None
    llm = selection_problem(pipeline, no_openai, handler=False)
    assert llm is not None and llm.startswith("pipeline needs openai_key=")
    openai = selection_problem(Agent(provider="openai"), ProviderSettings(), handler=False)
    assert openai == "provider openai needs an OpenAI key: openai_key= or OPENAI_API_KEY"


def test_selected_models_follow_the_same_choice() -> None:
    assert selected_models(Agent(provider="pipeline"), ALL_KEYS, handler=True) == [
        ("pipeline speech-to-text", "nova-3"),
        ("pipeline text-to-speech", "eleven_flash_v2_5"),
    ]
    assert selected_models(Agent(provider="pipeline"), OPENAI_ONLY, handler=False) == [
        ("pipeline speech-to-text", "gpt-transcribe"),
        ("pipeline text-to-speech", "gpt-4o-mini-tts"),
        ("pipeline llm", LLM_MODEL),
    ]
    assert selected_models(Agent(provider="elevenlabs"), ALL_KEYS, handler=False) == []


def test_what_each_provider_does_by_itself() -> None:
    providers = ("openai", "elevenlabs", "pipeline", "echo")
    assert [greets_natively(p) for p in providers] == [True, True, True, False]
    assert [can_prewarm(p) for p in providers] == [True, False, False, False]


def test_pipeline_part_names() -> None:
    assert pipeline_parts_problem(None, None) is None
    assert pipeline_parts_problem("deepgram", "elevenlabs-ws") is None
    assert pipeline_parts_problem("whisper", "openai") == (
        "stt must be 'deepgram' or 'openai', not 'whisper'"
    )
    assert pipeline_parts_problem(None, 7) == (
        "tts must be 'elevenlabs', 'elevenlabs-ws' or 'openai', not 7"
    )
