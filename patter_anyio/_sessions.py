"""The provider session of each call: which session class, configured how.

One function per agent (:func:`make_session_factory`), called by the bridge
once the stream's token passed (and by the warm start at the webhook): the
agent's provider, model, voice and language, this call's overrides
(:func:`~._agent.with_call_settings`), and the keys of
:class:`~._settings.ProviderSettings`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from patter_core import Entropy
from patter_core.bridge import CallInfo
from patter_core.providers import (
    DeepgramConfig,
    EchoSession,
    ElevenLabsConfig,
    ElevenLabsSession,
    ElevenLabsTtsConfig,
    ElevenLabsWsTtsConfig,
    LlmConfig,
    OpenAIRealtimeConfig,
    OpenAIRealtimeSession,
    OpenAISttConfig,
    OpenAITtsConfig,
    OpenAITurnDetection,
    PipelineConfig,
    PipelineSession,
    ProviderSession,
)
from patter_core.providers._models import (
    LLM_MODEL,
    OPENAI_TTS_VOICE,
    REALTIME_MODEL,
    REALTIME_VOICE,
)

from ._agent import Agent, with_call_settings
from ._clock import SYSTEM_CLOCK

if TYPE_CHECKING:
    from ._settings import ProviderSettings

__all__ = ["make_session_factory"]


def make_session_factory(
    agent: Agent,
    providers: ProviderSettings,
    *,
    use_handler: bool,
    entropy: Entropy,
) -> Callable[[CallInfo], ProviderSession]:
    """The session each call of ``agent`` talks to."""

    def tools(info: CallInfo) -> list[dict[str, Any]]:
        return [
            {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
            for t in info.tools
        ]

    def factory(info: CallInfo) -> ProviderSession:
        return build(with_call_settings(agent, info), info)

    def build(agent: Agent, info: CallInfo) -> ProviderSession:
        if agent.provider == "openai":
            assert providers.openai_key
            return OpenAIRealtimeSession(
                OpenAIRealtimeConfig(
                    api_key=providers.openai_key,
                    model=agent.model or REALTIME_MODEL,
                    voice=agent.voice or REALTIME_VOICE,
                    instructions=info.instructions,
                    first_message=info.first_message or None,
                    tools=tools(info),
                    audio_format="pcmu",  # G.711 passthrough: no transcoding at all
                    base_url=providers.openai_base_url,
                    # With barge_in_min_ms the bridge decides when speech
                    # interrupts: the server must not cancel on its own.
                    turn_detection=OpenAITurnDetection(
                        type=agent.turn_detection, interrupt_response=not agent.barge_in_min_ms
                    ),
                    noise_reduction=agent.noise_reduction,
                    reasoning_effort=agent.reasoning_effort,  # type: ignore[arg-type]
                    parallel_tool_calls=agent.parallel_tool_calls,
                    # session.expires_at (Unix time) onto the call's monotonic clock.
                    wall_offset=SYSTEM_CLOCK.wall_offset(),
                )
            )
        if agent.provider == "elevenlabs":
            agent_id = agent.agent_id or providers.elevenlabs_agent_id
            assert agent_id
            return ElevenLabsSession(
                ElevenLabsConfig(
                    agent_id=agent_id,
                    api_key=providers.elevenlabs_key,
                    base_url=providers.elevenlabs_base_url,
                    prompt=info.instructions or None,
                    first_message=info.first_message or None,
                    language=agent.language,
                    voice_id=agent.voice,
                    dynamic_variables={"caller": info.caller, "callee": info.callee},
                )
            )
        if agent.provider == "pipeline":
            stt_name = agent.stt or ("deepgram" if providers.deepgram_key else "openai")
            tts_name = agent.tts or ("elevenlabs" if providers.elevenlabs_key else "openai")
            stt: DeepgramConfig | OpenAISttConfig
            if stt_name == "deepgram":
                assert providers.deepgram_key
                stt = DeepgramConfig(
                    api_key=providers.deepgram_key,
                    base_url=providers.deepgram_base_url,
                    language=agent.language or "en",
                )
            else:
                assert providers.openai_key
                stt = OpenAISttConfig(
                    api_key=providers.openai_key,
                    base_url=providers.openai_base_url,
                    language=agent.language,
                )
            tts: ElevenLabsTtsConfig | ElevenLabsWsTtsConfig | OpenAITtsConfig
            if tts_name == "elevenlabs-ws":
                assert providers.elevenlabs_key
                tts = ElevenLabsWsTtsConfig(
                    api_key=providers.elevenlabs_key, base_url=providers.elevenlabs_base_url
                )
                if agent.voice:
                    tts = dataclasses.replace(tts, voice_id=agent.voice)
            elif tts_name == "elevenlabs":
                assert providers.elevenlabs_key
                if agent.voice:
                    tts = ElevenLabsTtsConfig(
                        api_key=providers.elevenlabs_key,
                        voice_id=agent.voice,
                        base_url=providers.elevenlabs_base_url,
                    )
                else:
                    tts = ElevenLabsTtsConfig(
                        api_key=providers.elevenlabs_key, base_url=providers.elevenlabs_base_url
                    )
            else:
                assert providers.openai_key
                tts = OpenAITtsConfig(
                    api_key=providers.openai_key,
                    base_url=providers.openai_base_url,
                    voice=agent.voice or OPENAI_TTS_VOICE,
                )
            llm = None
            if not use_handler:
                assert providers.openai_key
                llm = LlmConfig(
                    api_key=providers.openai_key,
                    model=agent.model or LLM_MODEL,
                    base_url=providers.openai_base_url,
                    tools=tuple(tools(info)),
                    reasoning_effort=agent.reasoning_effort,
                    parallel_tool_calls=agent.parallel_tool_calls,
                )
            return PipelineSession(
                PipelineConfig(
                    stt=stt,
                    tts=tts,
                    llm=llm,
                    use_handler=use_handler,
                    system_prompt=info.instructions,
                    first_message=info.first_message,
                ),
                entropy=entropy,
            )
        return EchoSession()

    return factory
