"""What a user configures: the agent and its tools, validated before anything binds."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from patter_core import PatterError
from patter_core.bridge import ToolSpec, e164_number

__all__ = ["PROVIDER_NAMES", "Agent", "InvalidOption", "Tool", "check_seconds"]

ProviderName = Literal["openai", "elevenlabs", "pipeline", "echo"]
PROVIDER_NAMES: tuple[ProviderName, ...] = ("openai", "elevenlabs", "pipeline", "echo")


class InvalidOption(PatterError, ValueError):
    """An option of the Python API is wrong; raised before anything binds.

    A :class:`ValueError`, so ``except ValueError`` catches it, and a
    :class:`~patter_core.PatterError` like every error we raise on purpose.
    """


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Tool:
    """A function the model may call.

    ``handler(arguments, call)`` may be sync or async; ``arguments`` is the
    dict the model produced (checked against nothing but JSON syntax: the
    handler must validate what it relies on), ``call`` holds ``call_id``,
    ``caller`` and ``callee``. What it returns goes back to the model (a
    string as is, anything else as JSON).
    """

    name: str
    handler: Callable[[dict[str, Any], dict[str, Any]], Any]
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise InvalidOption(f"tool name must be letters, digits, _ or -: {self.name!r}")
        if not callable(self.handler):
            raise InvalidOption(f"tool {self.name!r}: handler must be callable")
        if not isinstance(self.parameters, Mapping):
            raise InvalidOption(f"tool {self.name!r}: parameters must be a JSON schema object")

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
    stt: Literal["deepgram", "openai"] | None = None
    #: Pipeline text-to-speech: "elevenlabs" (HTTP streaming, a request per
    #: sentence), "elevenlabs-ws" (one stream-input WebSocket per answer: the
    #: lowest latency) or "openai"; None picks by key.
    tts: Literal["elevenlabs", "elevenlabs-ws", "openai"] | None = None
    #: The provider must be connected and its session confirmed within this
    #: many seconds of the stream's start, or the call ends as provider_error.
    provider_timeout: float = 5.0
    #: Said by the carrier before the hang-up when the provider fails ("" for
    #: silence).
    error_message: str = ""

    def __post_init__(self) -> None:
        check_seconds("provider_timeout", self.provider_timeout)
        if not isinstance(self.error_message, str):
            raise InvalidOption("error_message must be text")
        if self.provider not in PROVIDER_NAMES:
            raise InvalidOption(
                f"provider must be one of {', '.join(PROVIDER_NAMES)}, not {self.provider!r}"
            )
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


def as_tools(tools: Sequence[Tool | Mapping[str, Any]] | None) -> tuple[Tool, ...]:
    """Accept :class:`Tool` values or ``{"name", "description", "parameters", "handler"}`` dicts."""
    out = []
    for tool in tools or ():
        if isinstance(tool, Tool):
            out.append(tool)
        elif isinstance(tool, Mapping):
            unknown = set(tool) - {"name", "description", "parameters", "handler"}
            if unknown:
                raise InvalidOption(f"unknown tool keys: {', '.join(sorted(unknown))}")
            if "name" not in tool or "handler" not in tool:
                raise InvalidOption("a tool needs a 'name' and a 'handler'")
            out.append(
                Tool(
                    name=tool["name"],
                    handler=tool["handler"],
                    description=tool.get("description", ""),
                    parameters=tool.get("parameters", {"type": "object", "properties": {}}),
                )
            )
        else:
            raise InvalidOption(f"a tool must be a Tool or a dict, not {type(tool).__name__}")
    return tuple(out)
