"""Which provider session each call of an agent talks to, and what to say about it.

:func:`missing_settings` says why an agent cannot run with the keys given;
:func:`start_notices` is what the server says at start about the models and
tools in use.
"""

from __future__ import annotations

import datetime
import logging

from patter_core.bridge import BridgeConfig
from patter_core.bridge._tools import offered_tools
from patter_core.providers._models import (
    DEEPGRAM_STT_MODEL,
    ELEVENLABS_TTS_MODEL,
    LLM_MODEL,
    OPENAI_STT_MODEL,
    OPENAI_TTS_MODEL,
    REALTIME_MODEL,
    REALTIME_TRANSCRIPTION_MODEL,
    model_warnings,
)

from ._agent import Agent
from ._settings import ProviderSettings

__all__ = [
    "configured_models",
    "elevenlabs_tools_notice",
    "missing_settings",
    "start_notices",
]


def missing_settings(agent: Agent, providers: ProviderSettings, *, handler: bool) -> str | None:
    """Why ``agent`` cannot run with these keys, or None when it can."""
    if agent.provider == "openai" and not providers.openai_key:
        return "provider openai needs an OpenAI key: openai_key= or OPENAI_API_KEY"
    if agent.provider == "elevenlabs" and not (agent.agent_id or providers.elevenlabs_agent_id):
        return (
            "provider elevenlabs needs an agent id: agent_id= (or elevenlabs_agent_id=) "
            "or ELEVENLABS_AGENT_ID"
        )
    if agent.provider == "pipeline":
        stt = agent.stt or ("deepgram" if providers.deepgram_key else "openai")
        tts = agent.tts or ("elevenlabs" if providers.elevenlabs_key else "openai")
        if stt == "deepgram" and not providers.deepgram_key:
            return "pipeline speech-to-text with Deepgram needs deepgram_key= or DEEPGRAM_API_KEY"
        if tts in ("elevenlabs", "elevenlabs-ws") and not providers.elevenlabs_key:
            return (
                "pipeline text-to-speech with ElevenLabs needs elevenlabs_key= "
                "or ELEVENLABS_API_KEY"
            )
        needs_openai = stt == "openai" or tts == "openai" or not handler
        if needs_openai and not providers.openai_key:
            return (
                "pipeline needs openai_key= or OPENAI_API_KEY "
                "(speech or the LLM; give on_message to skip the LLM)"
            )
    return None


def configured_models(
    agent: Agent, providers: ProviderSettings, *, handler: bool
) -> list[tuple[str, str]]:
    """``(role, model)`` for every model a call of ``agent`` will name on the wire."""
    if agent.provider == "openai":
        return [
            ("openai realtime", agent.model or REALTIME_MODEL),
            ("openai realtime transcription", REALTIME_TRANSCRIPTION_MODEL),
        ]
    if agent.provider != "pipeline":
        return []  # ElevenLabs: the agent's models are set in its dashboard
    stt = agent.stt or ("deepgram" if providers.deepgram_key else "openai")
    tts = agent.tts or ("elevenlabs" if providers.elevenlabs_key else "openai")
    models = [
        ("pipeline speech-to-text", DEEPGRAM_STT_MODEL if stt == "deepgram" else OPENAI_STT_MODEL),
        ("pipeline text-to-speech", OPENAI_TTS_MODEL if tts == "openai" else ELEVENLABS_TTS_MODEL),
    ]
    if not handler:
        models.append(("pipeline llm", agent.model or LLM_MODEL))
    return models


def elevenlabs_tools_notice(agent: Agent) -> str | None:
    """What an ElevenLabs agent must declare for our tools to reach us (None: nothing)."""
    if agent.provider != "elevenlabs":
        return None
    config = BridgeConfig(
        tools=tuple(tool.spec for tool in agent.tools),
        end_call_tool=agent.end_call_tool,
        transfer_allowlist=frozenset(agent.transfer_allowlist),
    )
    names = [tool.name for tool in offered_tools(config)]
    if not names:
        return None
    # The conversation socket does not say which tools the agent defines, so
    # this is said once at start rather than checked.
    return (
        "ElevenLabs agent: tools reach this server only if the agent defines client tools "
        f"named {', '.join(names)} and its client events include client_tool_call"
    )


def start_notices(
    agent: Agent, providers: ProviderSettings, *, handler: bool, today: datetime.date
) -> list[tuple[int, str]]:
    """``(log level, line)`` to log when a server for ``agent`` starts."""
    used = configured_models(agent, providers, handler=handler)
    out = [(logging.WARNING, line) for line in model_warnings(used, today)]
    notice = elevenlabs_tools_notice(agent)
    if notice is not None:
        out.append((logging.INFO, notice))
    return out
