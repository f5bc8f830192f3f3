"""What a user configures: the agent and its tools, validated before anything binds."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from patter_core.bridge import ToolSpec
from patter_core.bridge._config import e164_number
from patter_core.providers._openai_realtime import REASONING_EFFORTS
from patter_core.providers._selection import (
    PROVIDER_AUDIO_DEFAULT,
    REALTIME_AUDIO_FORMATS,
    SttName,
    TtsName,
)
from patter_core.webhooks._outgoing import DEFAULT_WEBHOOK_TIMEOUT, webhook_url_problem

from ._errors import InvalidOption
from .calls._remote import RemoteTool

__all__ = ["PROVIDER_NAMES", "Agent", "InvalidOption", "Tool", "check_seconds"]

ProviderName = Literal["openai", "elevenlabs", "pipeline", "echo"]
PROVIDER_NAMES: tuple[ProviderName, ...] = ("openai", "elevenlabs", "pipeline", "echo")


def check_seconds(name: str, value: object) -> float:
    """A positive, finite number of seconds, or :class:`InvalidOption`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidOption(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


def _no_handler(arguments: dict[str, Any], call: dict[str, Any]) -> Any:
    raise AssertionError("a Tool without handler or webhook_url")  # refused in __post_init__


@dataclass(frozen=True, slots=True, kw_only=True)
class Tool:
    """A function the model may call: ``handler`` here, or ``webhook_url`` elsewhere.

    ``handler(arguments, call)`` may be sync or async; ``arguments`` is the
    dict the model produced (checked against nothing but JSON syntax: the
    handler must validate what it relies on), ``call`` holds ``call_id``,
    ``caller`` and ``callee``. What it returns goes back to the model (a
    string as is, anything else as JSON).

    ``webhook_url``: the call is POSTed there as JSON (``tool``,
    ``arguments``, ``call_id``, ``caller``, ``callee``, ``attempt``) within
    ``webhook_timeout`` seconds, sent again after a failed connection or a
    5xx (twice at most, never after a 4xx); the answer's body (at most
    1 MiB) is the result. ``webhook_secret`` (or ``Patter(webhook_secret=)``)
    adds ``X-Patter-Signature: sha256=<hex HMAC-SHA256 of the body>``.
    Loopback, private and link-local addresses are refused unless
    ``allow_private_webhooks`` (a literal one here, a name when called).
    A failure reaches the model as a tool error.
    """

    name: str
    handler: Callable[[dict[str, Any], dict[str, Any]], Any] = _no_handler
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    allow_private_webhooks: bool = False
    webhook_timeout: float = DEFAULT_WEBHOOK_TIMEOUT

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise InvalidOption(f"tool name must be letters, digits, _ or -: {self.name!r}")
        if self.webhook_url is not None:
            self._as_webhook()
        elif self.handler is _no_handler:
            raise InvalidOption(f"tool {self.name!r} needs a handler or a webhook_url")
        if not callable(self.handler):
            raise InvalidOption(f"tool {self.name!r}: handler must be callable")
        if not isinstance(self.parameters, Mapping):
            raise InvalidOption(f"tool {self.name!r}: parameters must be a JSON schema object")

    def _as_webhook(self) -> None:
        if self.handler is not _no_handler:
            raise InvalidOption(f"tool {self.name!r}: give a handler or a webhook_url, not both")
        problem = webhook_url_problem(self.webhook_url, allow_private=self.allow_private_webhooks)
        if problem:
            raise InvalidOption(f"tool {self.name!r}: {problem}")
        if self.webhook_secret is not None and (
            not isinstance(self.webhook_secret, str) or not self.webhook_secret
        ):
            raise InvalidOption(f"tool {self.name!r}: webhook_secret must be non-empty text")
        assert self.webhook_url is not None
        remote = RemoteTool(
            name=self.name,
            url=self.webhook_url,
            secret=self.webhook_secret.encode() if self.webhook_secret else None,
            allow_private=self.allow_private_webhooks,
            timeout=check_seconds("webhook_timeout", self.webhook_timeout),
        )
        object.__setattr__(self, "handler", remote)

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(
            name=self.name, description=self.description, parameters=dict(self.parameters)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    """Who answers the phone.

    ``system_prompt`` and ``first_message`` may use ``{caller}`` and
    ``{callee}``, filled per call.
    """

    provider: ProviderName = "echo"
    system_prompt: str = ""
    first_message: str = ""
    voice: str | None = None
    model: str | None = None
    language: str | None = None
    tools: tuple[Tool, ...] = ()
    #: Numbers the built-in ``transfer_call`` may dial; empty = transfers off.
    transfer_allowlist: tuple[str, ...] = ()
    #: Offer the built-in ``end_call`` tool to the model.
    end_call_tool: bool = True
    #: ElevenLabs Conversational AI agent id (provider "elevenlabs").
    agent_id: str | None = None
    #: Pipeline: "deepgram" or "openai" speech-to-text; None picks by key.
    stt: SttName | None = None
    #: Pipeline text-to-speech: "elevenlabs" (HTTP streaming, a request per
    #: sentence), "elevenlabs-ws" (one stream-input WebSocket per answer: the
    #: lowest latency) or "openai"; None picks by key.
    tts: TtsName | None = None
    #: The provider must be connected and its session confirmed within this
    #: many seconds of the stream's start, or the call ends as provider_error.
    provider_timeout: float = 5.0
    #: Said by the carrier before the hang-up when the provider fails ("" for
    #: silence).
    error_message: str = ""
    #: OpenAI Realtime turn detection: "server_vad" (volume; robust on phone
    #: lines) or "semantic_vad" (waits for the caller to finish the thought).
    turn_detection: Literal["server_vad", "semantic_vad"] = "server_vad"
    #: OpenAI Realtime's audio: "pcmu" (G.711 μ-law both ways, no transcoding)
    #: or "pcm24k" (16-bit PCM at 24 kHz, transcoded here both ways).
    provider_audio: Literal["pcmu", "pcm24k"] = "pcmu"
    #: OpenAI Realtime input noise reduction; "near_field" suits a handset.
    noise_reduction: Literal["near_field", "far_field"] | None = "near_field"
    #: Reasoning models (gpt-realtime-2 and later, gpt-5 family): "minimal" ..
    #: "xhigh"; None keeps the provider's default.
    reasoning_effort: str | None = None
    #: Reasoning models: may the model call several tools at once (None: default).
    parallel_tool_calls: bool | None = None
    #: The provider's session cap in seconds (an ElevenLabs agent's maximum
    #: conversation duration); a closing line plays before it. OpenAI's own
    #: cap is announced by the server and needs no setting.
    provider_max_duration: float | None = None
    #: Seconds of a quiet line (nobody speaking) before the agent says
    #: ``silence_message``; after ``silence_reprompts`` of them, another quiet
    #: ``silence_timeout`` ends the call (reason ``silence``). None: off.
    silence_timeout: float | None = None
    silence_message: str = "Are you still there?"
    silence_reprompts: int = 1
    #: The call's own cap in seconds: a closing line, then the end (reason
    #: ``max_duration``). None: no cap of ours.
    max_duration: float | None = 3600.0
    #: False: caller speech during the greeting neither cuts nor cancels it.
    first_message_interruptible: bool = True
    #: Caller speech shorter than this many milliseconds does not interrupt.
    barge_in_min_ms: int = 0
    #: OpenAI Realtime: open and configure the session at the voice webhook,
    #: so it is ready when the stream starts (``_prewarm``).
    prewarm: bool = True

    def __post_init__(self) -> None:
        check_seconds("provider_timeout", self.provider_timeout)
        _check_per_call(self)
        if not isinstance(self.error_message, str):
            raise InvalidOption("error_message must be text")
        if self.provider not in PROVIDER_NAMES:
            raise InvalidOption(
                f"provider must be one of {', '.join(PROVIDER_NAMES)}, not {self.provider!r}"
            )
        if self.turn_detection not in ("server_vad", "semantic_vad"):
            raise InvalidOption("turn_detection must be 'server_vad' or 'semantic_vad'")
        if self.provider_audio not in REALTIME_AUDIO_FORMATS:
            raise InvalidOption("provider_audio must be 'pcmu' or 'pcm24k'")
        if self.provider_audio != PROVIDER_AUDIO_DEFAULT and self.provider != "openai":
            raise InvalidOption("provider_audio applies to provider='openai' only")
        if self.noise_reduction not in (None, "near_field", "far_field"):
            raise InvalidOption("noise_reduction must be 'near_field', 'far_field' or None")
        if self.reasoning_effort not in (None, *REASONING_EFFORTS):
            raise InvalidOption(f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}")
        if self.provider_max_duration is not None and not (
            isinstance(self.provider_max_duration, int | float) and self.provider_max_duration > 0
        ):
            raise InvalidOption("provider_max_duration must be a positive number of seconds")
        if self.parallel_tool_calls not in (None, True, False):
            raise InvalidOption("parallel_tool_calls must be True, False or None")
        names = [tool.name for tool in self.tools]
        if len(set(names)) != len(names):
            raise InvalidOption("tool names must be unique")
        for name in names:
            if name in ("end_call", "transfer_call"):
                raise InvalidOption(f"tool name {name!r} is built in")
        for number in self.transfer_allowlist:
            if e164_number(number) is None:
                raise InvalidOption(
                    "transfer_allowlist: each number must be E.164 such as +15550009999, "
                    f"not {number!r}"
                )


def _check_per_call(agent: Agent) -> None:
    """The per-call options: watchdogs and barge-in controls."""
    for name in ("silence_timeout", "max_duration"):
        value = getattr(agent, name)
        if value is not None:
            check_seconds(name, value)
    if not isinstance(agent.silence_message, str) or not agent.silence_message.strip():
        raise InvalidOption("silence_message must be some text to say")
    # A handful of reprompts is already a lot for a silent line; two seconds
    # of speech is a sentence, not something to ignore.
    for name, value, most in (
        ("silence_reprompts", agent.silence_reprompts, 10),
        ("barge_in_min_ms", agent.barge_in_min_ms, 2000),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
            raise InvalidOption(f"{name} must be a whole number from 0 to {most}, not {value!r}")
    if agent.prewarm not in (True, False):
        raise InvalidOption("prewarm must be True or False")
    if agent.first_message_interruptible not in (True, False):
        raise InvalidOption("first_message_interruptible must be True or False")
    if agent.provider in ("elevenlabs", "pipeline") and (
        not agent.first_message_interruptible or agent.barge_in_min_ms
    ):
        # ElevenLabs: turn taking is the agent's own, server side, and no client
        # message holds it. The pipeline answers every finished utterance,
        # cancelling the answer in progress, whatever the bridge holds back.
        raise InvalidOption(
            "first_message_interruptible and barge_in_min_ms are available for "
            f"provider='openai' (and 'echo'), not {agent.provider!r}"
        )


#: How long a call's provider session waits for on_call_start's overrides: a
#: lookup in the application's own data takes well under a second; past this
#: the agent's settings apply and a line is logged.
CALL_START_WAIT = 2.0


def per_call_options(agent: Agent, *, awaits_overrides: bool) -> dict[str, Any]:
    """The bridge's per-call settings of ``agent`` (``BridgeConfig`` keywords)."""
    return {
        "silence_timeout_seconds": agent.silence_timeout,
        "silence_message": agent.silence_message,
        "silence_reprompts": agent.silence_reprompts,
        "max_duration_seconds": agent.max_duration,
        "first_message_interruptible": agent.first_message_interruptible,
        "barge_in_min_ms": agent.barge_in_min_ms,
        # on_call_start may answer with this call's overrides: the session
        # waits for them, bounded (the caller's audio is held meanwhile).
        "call_start_wait_seconds": CALL_START_WAIT if awaits_overrides else None,
    }


def as_tools(tools: Sequence[Tool | Mapping[str, Any]] | None) -> tuple[Tool, ...]:
    """Accept :class:`Tool` values or ``{"name", "description", "parameters", "handler"}`` dicts."""
    out = []
    for tool in tools or ():
        if isinstance(tool, Tool):
            out.append(tool)
        elif isinstance(tool, Mapping):
            unknown = set(tool) - {
                "name",
                "description",
                "parameters",
                "handler",
                "webhook_url",
                "webhook_secret",
                "allow_private_webhooks",
            }
            if unknown:
                raise InvalidOption(f"unknown tool keys: {', '.join(sorted(unknown))}")
            if "name" not in tool or not ("handler" in tool or "webhook_url" in tool):
                raise InvalidOption("a tool needs a 'name' and a 'handler' (or a 'webhook_url')")
            out.append(Tool(**dict(tool)))
        else:
            raise InvalidOption(f"a tool must be a Tool or a dict, not {type(tool).__name__}")
    return tuple(out)
