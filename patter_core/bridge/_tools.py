"""Tool calls: the built-in tools and the checks on what the model asked for.

The model's arguments are untrusted text. Whatever it sends -- malformed
JSON, a list instead of an object, an unknown tool, a number not on the
transfer allowlist -- becomes a ``ToolResult`` carrying an error the model
can read and recover from, never an exception.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from ..http._types import HttpRequest
from ..providers._events import ToolCall, ToolResult
from ._actions import Action, HttpCall, RunTool
from ._config import BridgeConfig, CarrierControl, ToolSpec, normalize_number

__all__ = [
    "DTMF_DIGITS",
    "END_CALL",
    "END_CALL_OUTPUT",
    "TRANSFER_CALL",
    "ToolAnswer",
    "ToolDecision",
    "TransferStart",
    "answer_tool_call",
    "decide",
    "error_output",
    "offered_tools",
    "parse_arguments",
    "start_transfer",
    "tool_output",
]

END_CALL = ToolSpec(
    name="end_call",
    description=(
        "Hang up the phone call. Say goodbye first; the call ends once your goodbye has played."
    ),
    parameters={
        "type": "object",
        "properties": {"reason": {"type": "string", "description": "Why the call ends."}},
    },
)

TRANSFER_CALL = ToolSpec(
    name="transfer_call",
    description=(
        "Transfer the caller to another phone number (E.164, e.g. +14155550100). "
        "mode 'cold' (the default) hands the call over at once; 'warm' first calls "
        "the person, reads them your summary, and connects the caller once they "
        "answer: stay with the caller until then."
    ),
    parameters={
        "type": "object",
        "properties": {
            "number": {"type": "string", "description": "The number to dial."},
            "mode": {"type": "string", "enum": ["cold", "warm"]},
            "summary": {
                "type": "string",
                "description": "Warm: what the person should know before the caller joins.",
            },
        },
        "required": ["number"],
    },
)

#: Longest warm-transfer summary: it is spoken (inline TwiML is capped at
#: 4,000 characters in all), and a minute of speech is about 900 characters.
MAX_SUMMARY_CHARS = 1_500

#: What the model hears back from end_call: a chance to say goodbye.
END_CALL_OUTPUT = '{"status": "ending the call; say goodbye briefly if you have not"}'
#: Digits a keypad can send (RFC 4733 events 0-15); DTMF text lands in the
#: model's context, so only these pass.
DTMF_DIGITS = frozenset("0123456789*#ABCD")

#: Longest argument text we parse: a tool call's arguments are a few hundred
#: bytes; this bounds the work a misbehaving model can cause.
MAX_ARGUMENT_CHARS = 65_536


def offered_tools(config: BridgeConfig) -> tuple[ToolSpec, ...]:
    """The user's tools plus the built-ins this configuration offers."""
    tools = list(config.tools)
    if config.end_call_tool:
        tools.append(END_CALL)
    if config.transfer_allowlist:
        tools.append(TRANSFER_CALL)
    return tuple(tools)


def error_output(message: str) -> str:
    """A tool result telling the model what went wrong (JSON, as tools return)."""
    return json.dumps({"error": message})


def tool_output(result: object) -> str:
    """What a user tool returned, as the text the model gets: text as it is,
    anything else as JSON (values JSON cannot carry, such as a date, as text)."""
    return result if isinstance(result, str) else json.dumps(result, default=str)


def parse_arguments(text: str) -> Mapping[str, object] | str:
    """The arguments as an object, or an error message for the model."""
    if len(text) > MAX_ARGUMENT_CHARS:
        return "arguments too long"
    if text.strip() == "":
        return {}  # some models send "" for a tool without parameters
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return "arguments are not valid JSON"
    if not isinstance(value, dict):
        return "arguments must be a JSON object"
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolDecision:
    """What to do with one tool call.

    ``kind``: "user" (run it), "end_call", "transfer" (to ``target``, in
    ``mode`` "cold" or "warm" with ``summary``), or "error" (answer
    ``output`` straight away).
    """

    kind: str
    arguments: Mapping[str, object]
    target: str = ""
    output: str = ""
    mode: str = "cold"
    summary: str = ""


def decide(config: BridgeConfig, name: str, arguments_text: str) -> ToolDecision:
    """Check one tool call against the configuration."""
    parsed = parse_arguments(arguments_text)
    if isinstance(parsed, str):
        return ToolDecision(kind="error", arguments={}, output=error_output(parsed))
    if name == "end_call" and config.end_call_tool:
        return ToolDecision(kind="end_call", arguments=parsed)
    if name == "transfer_call":
        return _decide_transfer(config, parsed)
    if any(tool.name == name for tool in config.tools):
        return ToolDecision(kind="user", arguments=parsed)
    return ToolDecision(
        kind="error", arguments=parsed, output=error_output(f"unknown tool {name!r}")
    )


def _decide_transfer(config: BridgeConfig, arguments: Mapping[str, object]) -> ToolDecision:
    if not config.transfer_allowlist:
        return ToolDecision(
            kind="error", arguments=arguments, output=error_output("transfers are disabled")
        )
    number = arguments.get("number")
    target = normalize_number(number) if isinstance(number, str) else None
    allowed = {normalize_number(n) for n in config.transfer_allowlist}
    if target is None or target not in allowed:
        return ToolDecision(
            kind="error",
            arguments=arguments,
            output=error_output("that number is not one the call may be transferred to"),
        )
    mode = arguments.get("mode", "cold")
    summary = arguments.get("summary", "")
    if mode not in ("cold", "warm"):
        return ToolDecision(
            kind="error", arguments=arguments, output=error_output("mode must be cold or warm")
        )
    if not isinstance(summary, str) or len(summary) > MAX_SUMMARY_CHARS:
        return ToolDecision(
            kind="error",
            arguments=arguments,
            output=error_output(f"summary must be text of at most {MAX_SUMMARY_CHARS} characters"),
        )
    return ToolDecision(
        kind="transfer", arguments=arguments, target=target, mode=str(mode), summary=summary
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferStart:
    """What a ``transfer_call`` the model asked for does: the carrier request
    (None: this carrier cannot), its purpose, and the tool output."""

    request: HttpRequest | None
    purpose: str
    output: str


def start_transfer(
    control: CarrierControl | None, call_id: str | None, decision: ToolDecision
) -> TransferStart:
    """Cold: the carrier moves the call at once. Warm: the person is called
    first and the caller stays with the agent until they answer; the runtime
    then moves the caller (ending the stream) or tells the agent it did not
    work."""
    if decision.mode == "warm":
        warm = getattr(control, "warm_transfer", None)
        request = warm(call_id, decision.target, decision.summary) if warm and call_id else None
        if request is None:
            output = error_output("warm transfers are not available here; use mode cold")
        else:
            output = json.dumps({"status": "calling", "number": decision.target})
        return TransferStart(request=request, purpose="warm_transfer", output=output)
    request = control.transfer(call_id, decision.target) if control and call_id else None
    output = (
        '{"status": "transferring"}'
        if request is not None
        else error_output("this carrier cannot transfer calls")
    )
    return TransferStart(request=request, purpose="transfer", output=output)


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolAnswer:
    """What one tool call of the model's does: actions for the runtime, the
    output the model gets at once (None: the user's tool answers later), the
    number a transfer is asked for, and whether it is ``end_call`` (whose
    output goes only if the ending it plans is the call's first)."""

    actions: tuple[Action, ...] = ()
    result: ToolResult | None = None
    transferred_to: str | None = None
    end_call: bool = False


def answer_tool_call(
    config: BridgeConfig, control: CarrierControl | None, call_id: str | None, call: ToolCall
) -> ToolAnswer:
    """Decide ``call`` (:func:`decide`) and say what it does, on this carrier."""
    decision = decide(config, call.name, call.arguments)
    if decision.kind == "user":
        run = RunTool(call_id=call.call_id, name=call.name, arguments=decision.arguments)
        return ToolAnswer(actions=(run,))
    if decision.kind == "end_call":
        # The output lets the model say goodbye if it has not yet.
        output = ToolResult(call_id=call.call_id, output=END_CALL_OUTPUT)
        return ToolAnswer(result=output, end_call=True)
    if decision.kind == "transfer":
        start = start_transfer(control, call_id, decision)
        output = ToolResult(
            call_id=call.call_id, output=start.output, is_error=start.request is None
        )
        if start.request is None:
            return ToolAnswer(result=output)
        moved = decision.target if start.purpose == "transfer" else None
        request = HttpCall(request=start.request, purpose=start.purpose)
        return ToolAnswer(actions=(request,), result=output, transferred_to=moved)
    return ToolAnswer(
        result=ToolResult(call_id=call.call_id, output=decision.output, is_error=True)
    )
