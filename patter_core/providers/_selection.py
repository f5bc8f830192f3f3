"""Which provider session a call talks to, configured how: the product's choices.

Theory of operation: the runtime holds an agent (its provider, model, voice,
language, pipeline parts and tuning) and the provider keys; this module
turns them into a decision, pure:

* :func:`pipeline_parts` picks the pipeline's speech-to-text and
  text-to-speech when the agent names none (the one place that choice is
  made: the session, the key check and the start-up notices ask it);
* :func:`selection_problem` says which key an agent lacks, before a call;
* :func:`selected_models` names every model a call will put on the wire;
* :func:`session_config` says how one call's session is configured, with
  the call's own voice, model and language (``on_call_start``) over the
  agent's, and :func:`select_session` builds it;
* :func:`greets_natively` and :func:`can_prewarm` say what a provider's
  session does by itself (the first message) and before its stream.

The defaults of models and voices live in :mod:`._models`; the choices
that are not a model's name are the constants below.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Final, Literal, Protocol, get_args

from .._entropy import Entropy
from ._echo import EchoSession
from ._elevenlabs import ElevenLabsConfig, ElevenLabsSession
from ._models import (
    DEEPGRAM_STT_MODEL,
    ELEVENLABS_TTS_MODEL,
    LLM_MODEL,
    OPENAI_STT_MODEL,
    OPENAI_TTS_MODEL,
    OPENAI_TTS_VOICE,
    REALTIME_MODEL,
    REALTIME_TRANSCRIPTION_MODEL,
    REALTIME_VOICE,
)
from ._openai_realtime import OpenAIRealtimeConfig, OpenAIRealtimeSession, OpenAITurnDetection
from ._session import ProviderSession
from .pipeline import (
    DeepgramConfig,
    ElevenLabsTtsConfig,
    ElevenLabsWsTtsConfig,
    LlmConfig,
    OpenAISttConfig,
    OpenAITtsConfig,
    PipelineConfig,
    PipelineSession,
)

if TYPE_CHECKING:
    from ..bridge import CallInfo

__all__ = [
    "DEEPGRAM_DEFAULT_LANGUAGE",
    "PROVIDER_AUDIO_DEFAULT",
    "REALTIME_AUDIO_FORMATS",
    "STT_NAMES",
    "TTS_NAMES",
    "AgentChoice",
    "ProviderKeys",
    "SessionConfig",
    "SttName",
    "TtsName",
    "can_prewarm",
    "default_provider",
    "greets_natively",
    "pipeline_parts",
    "pipeline_parts_problem",
    "select_session",
    "selected_models",
    "selection_problem",
    "session_config",
]

SttName = Literal["deepgram", "openai"]
TtsName = Literal["elevenlabs", "elevenlabs-ws", "openai"]
#: The pipeline's speech-to-text and text-to-speech an agent may name.
STT_NAMES: tuple[SttName, ...] = get_args(SttName)
TTS_NAMES: tuple[TtsName, ...] = get_args(TtsName)

#: How OpenAI Realtime hears and speaks, by the agent's ``provider_audio``:
#: G.711 μ-law both ways (the default: the phone's own codec, no transcoding
#: at all), or 16-bit PCM at 24 kHz (the bridge transcodes both ways).
REALTIME_AUDIO_FORMATS: Final = {"pcmu": "pcmu", "pcm24k": "pcm24"}
PROVIDER_AUDIO_DEFAULT: Final = "pcmu"
#: Deepgram needs a language for its streaming model; the agent's, else English.
DEEPGRAM_DEFAULT_LANGUAGE = "en"


class AgentChoice(Protocol):
    """What of an agent decides its session (``patter_anyio.Agent`` has it)."""

    @property
    def provider(self) -> str: ...
    @property
    def model(self) -> str | None: ...
    @property
    def voice(self) -> str | None: ...
    @property
    def language(self) -> str | None: ...
    @property
    def agent_id(self) -> str | None: ...
    @property
    def stt(self) -> SttName | None: ...
    @property
    def tts(self) -> TtsName | None: ...
    @property
    def turn_detection(self) -> Literal["server_vad", "semantic_vad"]: ...
    @property
    def noise_reduction(self) -> Literal["near_field", "far_field"] | None: ...
    @property
    def reasoning_effort(self) -> str | None: ...
    @property
    def parallel_tool_calls(self) -> bool | None: ...
    @property
    def barge_in_min_ms(self) -> int: ...
    @property
    def provider_audio(self) -> str: ...


class ProviderKeys(Protocol):
    """The provider keys and endpoints (``patter_anyio``'s provider settings)."""

    @property
    def openai_key(self) -> str | None: ...
    @property
    def elevenlabs_key(self) -> str | None: ...
    @property
    def elevenlabs_agent_id(self) -> str | None: ...
    @property
    def deepgram_key(self) -> str | None: ...
    @property
    def openai_base_url(self) -> str: ...
    @property
    def elevenlabs_base_url(self) -> str: ...
    @property
    def deepgram_base_url(self) -> str: ...


def greets_natively(provider: str) -> bool:
    """Does this provider's session say the first message itself? The
    realtime sessions and the pipeline do; the echo agent is handed a
    ``Say`` by the bridge."""
    return provider != "echo"


def default_provider(
    *, openai_key: bool, elevenlabs_agent: bool
) -> Literal["openai", "elevenlabs", "echo"]:
    """The provider an agent gets when it names none, for the command line
    and the library alike: OpenAI Realtime with an OpenAI key, else the
    ElevenLabs agent when one is configured, else the echo agent (which
    needs no key, so a first call works before any is set)."""
    if openai_key:
        return "openai"
    if elevenlabs_agent:
        return "elevenlabs"
    return "echo"


def can_prewarm(provider: str) -> bool:
    """Can this provider's session be opened at the voice webhook, before
    the call's stream? OpenAI Realtime's can (its setup takes 300 to
    1,000 ms); the others open with the stream."""
    return provider == "openai"


def pipeline_parts_problem(stt: object, tts: object) -> str | None:
    """Why ``stt``/``tts`` are not pipeline parts (None, or a name each), or None."""
    for role, value, names in (("stt", stt, STT_NAMES), ("tts", tts, TTS_NAMES)):
        if value is not None and value not in names:
            quoted = [repr(name) for name in names]
            return f"{role} must be {', '.join(quoted[:-1])} or {quoted[-1]}, not {value!r}"
    return None


def pipeline_parts(agent: AgentChoice, keys: ProviderKeys) -> tuple[SttName, TtsName]:
    """The pipeline's speech-to-text and text-to-speech.

    What the agent names; otherwise Deepgram when its key is given (a
    streaming recogniser with its own end-of-speech), else OpenAI; and
    ElevenLabs when its key is given (the lower first-audio latency), else
    OpenAI.
    """
    stt: SttName = agent.stt or ("deepgram" if keys.deepgram_key else "openai")
    tts: TtsName = agent.tts or ("elevenlabs" if keys.elevenlabs_key else "openai")
    return stt, tts


def selection_problem(agent: AgentChoice, keys: ProviderKeys, *, handler: bool) -> str | None:
    """Why ``agent`` cannot run with these keys, or None when it can.

    ``handler``: the application answers each turn (``on_message``), so the
    pipeline needs no LLM.
    """
    if agent.provider == "openai" and not keys.openai_key:
        return "provider openai needs an OpenAI key: openai_key= or OPENAI_API_KEY"
    if agent.provider == "elevenlabs" and not (agent.agent_id or keys.elevenlabs_agent_id):
        return (
            "provider elevenlabs needs an agent id: agent_id= (or elevenlabs_agent_id=) "
            "or ELEVENLABS_AGENT_ID"
        )
    if agent.provider == "pipeline":
        stt, tts = pipeline_parts(agent, keys)
        if stt == "deepgram" and not keys.deepgram_key:
            return "pipeline speech-to-text with Deepgram needs deepgram_key= or DEEPGRAM_API_KEY"
        if tts in ("elevenlabs", "elevenlabs-ws") and not keys.elevenlabs_key:
            return (
                "pipeline text-to-speech with ElevenLabs needs elevenlabs_key= "
                "or ELEVENLABS_API_KEY"
            )
        needs_openai = stt == "openai" or tts == "openai" or not handler
        if needs_openai and not keys.openai_key:
            return (
                "pipeline needs openai_key= or OPENAI_API_KEY "
                "(speech or the LLM; give on_message to skip the LLM)"
            )
    return None


def selected_models(
    agent: AgentChoice, keys: ProviderKeys, *, handler: bool
) -> list[tuple[str, str]]:
    """``(role, model)`` for every model a call of ``agent`` will name on the wire."""
    if agent.provider == "openai":
        return [
            ("openai realtime", agent.model or REALTIME_MODEL),
            ("openai realtime transcription", REALTIME_TRANSCRIPTION_MODEL),
        ]
    if agent.provider != "pipeline":
        return []  # ElevenLabs: the agent's models are set in its dashboard
    stt, tts = pipeline_parts(agent, keys)
    models = [
        ("pipeline speech-to-text", DEEPGRAM_STT_MODEL if stt == "deepgram" else OPENAI_STT_MODEL),
        ("pipeline text-to-speech", OPENAI_TTS_MODEL if tts == "openai" else ELEVENLABS_TTS_MODEL),
    ]
    if not handler:
        models.append(("pipeline llm", agent.model or LLM_MODEL))
    return models


#: What :func:`session_config` answers: the session's settings (None: the echo agent).
SessionConfig = OpenAIRealtimeConfig | ElevenLabsConfig | PipelineConfig | None


def select_session(
    agent: AgentChoice,
    keys: ProviderKeys,
    info: CallInfo,
    *,
    use_handler: bool,
    entropy: Entropy,
    wall_offset: float = 0.0,
) -> ProviderSession:
    """The session one call of ``agent`` talks to (:func:`session_config`)."""
    config = session_config(agent, keys, info, use_handler=use_handler, wall_offset=wall_offset)
    if isinstance(config, OpenAIRealtimeConfig):
        return OpenAIRealtimeSession(config)
    if isinstance(config, ElevenLabsConfig):
        return ElevenLabsSession(config)
    if isinstance(config, PipelineConfig):
        return PipelineSession(config, entropy=entropy)
    return EchoSession()


def session_config(
    agent: AgentChoice,
    keys: ProviderKeys,
    info: CallInfo,
    *,
    use_handler: bool,
    wall_offset: float = 0.0,
) -> SessionConfig:
    """The settings of one call's session.

    ``use_handler``: the application answers each pipeline turn
    (``on_message``), so no LLM is configured. ``wall_offset`` turns the
    provider's Unix times (OpenAI's ``session.expires_at``) into the clock
    ``now`` runs on (wall minus monotonic, read by the runtime). The keys were checked with
    :func:`selection_problem` before the server started; a key missing here
    is our bug (AssertionError).
    """
    model = info.model or agent.model
    voice = info.voice or agent.voice
    language = info.language or agent.language
    tools = [
        {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
        for t in info.tools
    ]
    if agent.provider == "openai":
        assert keys.openai_key
        return OpenAIRealtimeConfig(
            api_key=keys.openai_key,
            model=model or REALTIME_MODEL,
            voice=voice or REALTIME_VOICE,
            instructions=info.instructions,
            first_message=info.first_message or None,
            tools=tools,
            audio_format=REALTIME_AUDIO_FORMATS[agent.provider_audio],  # type: ignore[arg-type]
            base_url=keys.openai_base_url,
            # With barge_in_min_ms the bridge decides when speech
            # interrupts: the server must not cancel on its own.
            turn_detection=OpenAITurnDetection(
                type=agent.turn_detection, interrupt_response=not agent.barge_in_min_ms
            ),
            noise_reduction=agent.noise_reduction,
            reasoning_effort=agent.reasoning_effort,  # type: ignore[arg-type]
            parallel_tool_calls=agent.parallel_tool_calls,
            wall_offset=wall_offset,
        )
    if agent.provider == "elevenlabs":
        agent_id = agent.agent_id or keys.elevenlabs_agent_id
        assert agent_id
        return ElevenLabsConfig(
            agent_id=agent_id,
            api_key=keys.elevenlabs_key,
            base_url=keys.elevenlabs_base_url,
            prompt=info.instructions or None,
            first_message=info.first_message or None,
            language=language,
            voice_id=voice,
            dynamic_variables={"caller": info.caller, "callee": info.callee},
        )
    if agent.provider != "pipeline":
        return None
    stt_name, tts_name = pipeline_parts(agent, keys)
    llm = None
    if not use_handler:
        assert keys.openai_key
        llm = LlmConfig(
            api_key=keys.openai_key,
            model=model or LLM_MODEL,
            base_url=keys.openai_base_url,
            tools=tuple(tools),
            reasoning_effort=agent.reasoning_effort,
            parallel_tool_calls=agent.parallel_tool_calls,
        )
    return PipelineConfig(
        stt=_stt(stt_name, keys, language),
        tts=_tts(tts_name, keys, voice),
        llm=llm,
        use_handler=use_handler,
        system_prompt=info.instructions,
        first_message=info.first_message,
    )


def _stt(
    name: SttName, keys: ProviderKeys, language: str | None
) -> DeepgramConfig | OpenAISttConfig:
    if name == "deepgram":
        assert keys.deepgram_key
        return DeepgramConfig(
            api_key=keys.deepgram_key,
            base_url=keys.deepgram_base_url,
            language=language or DEEPGRAM_DEFAULT_LANGUAGE,
        )
    assert keys.openai_key
    return OpenAISttConfig(
        api_key=keys.openai_key, base_url=keys.openai_base_url, language=language
    )


def _tts(
    name: TtsName, keys: ProviderKeys, voice: str | None
) -> ElevenLabsTtsConfig | ElevenLabsWsTtsConfig | OpenAITtsConfig:
    # A voice the agent does not name is each config's own default.
    if name == "elevenlabs-ws":
        assert keys.elevenlabs_key
        ws = ElevenLabsWsTtsConfig(api_key=keys.elevenlabs_key, base_url=keys.elevenlabs_base_url)
        return dataclasses.replace(ws, voice_id=voice) if voice else ws
    if name == "elevenlabs":
        assert keys.elevenlabs_key
        http = ElevenLabsTtsConfig(api_key=keys.elevenlabs_key, base_url=keys.elevenlabs_base_url)
        return dataclasses.replace(http, voice_id=voice) if voice else http
    assert keys.openai_key
    return OpenAITtsConfig(
        api_key=keys.openai_key, base_url=keys.openai_base_url, voice=voice or OPENAI_TTS_VOICE
    )
