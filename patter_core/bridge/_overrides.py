"""One call's own settings: ``on_call_start``'s overrides and the prompt variables.

``on_call_start`` may answer with a mapping of overrides for its call, applied
before the provider session is made:

==================  ==========================================================
``system_prompt``   text: the prompt (its ``{name}`` placeholders filled)
``first_message``   text: the greeting ("" for none), filled the same way
``voice``           text: the provider's voice for this call
``model``           text: the provider's model for this call
``language``        text: the call's language
``tools``           a sequence of :class:`ToolSpec` (the runtime turns the
                    user's tools into these and keeps their handlers)
``variables``       a mapping of name to text for the placeholders
==================  ==========================================================

A placeholder's value comes from, first source wins, these ``variables``,
then the outbound call's (custom parameters named ``var_<name>``:
:data:`~._config.VARIABLE_PARAMETER_PREFIX`), then ``caller`` and
``callee``. One with no value stays as written, and is reported once.

The overrides are the application's; a mistake in them (an unknown key, a
value of the wrong type, an answer that is neither a mapping nor ``None``)
is reported as a problem line and that key is ignored: the call goes
on with the agent's setting, never fails for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from .._errors import LocalProtocolError
from ..media._events import Start
from ._config import (
    BridgeConfig,
    CallInfo,
    ToolSpec,
    call_info,
    call_variables,
    unfilled_variables,
)
from ._tools import offered_tools

__all__ = ["OVERRIDE_KEYS", "per_call"]

_TEXT_KEYS = ("system_prompt", "first_message", "voice", "model", "language")
OVERRIDE_KEYS = frozenset({*_TEXT_KEYS, "tools", "variables"})


def per_call(
    start: Start, carrier: str, config: BridgeConfig, overrides: object
) -> tuple[BridgeConfig, CallInfo, list[str]]:
    """This call's config and :class:`CallInfo`, and the problems to log."""
    problems: list[str] = []
    values: Mapping[str, object] = {}
    if isinstance(overrides, Mapping):
        values = overrides
    elif overrides is not None:
        problems.append(
            f"on_call_start returned {type(overrides).__name__}, not a dict of overrides "
            "or None: the agent's settings apply"
        )
    unknown = sorted(str(key) for key in values if key not in OVERRIDE_KEYS)
    if unknown:
        problems.append(
            f"on_call_start: unknown override keys {', '.join(unknown)} "
            f"(known: {', '.join(sorted(OVERRIDE_KEYS))}); ignored"
        )
    text: dict[str, str] = {}
    for key in _TEXT_KEYS:
        value = values.get(key)
        if isinstance(value, str):
            text[key] = value
        elif value is not None:
            problems.append(f"on_call_start: override {key} must be text; ignored")
    variables = _variables(values.get("variables"), problems)
    changes: dict[str, object] = {}
    if "system_prompt" in text:
        changes["instructions"] = text["system_prompt"]
    if "first_message" in text:
        changes["first_message"] = text["first_message"]
    tools = values.get("tools")
    if tools is not None:
        if isinstance(tools, Sequence) and all(isinstance(t, ToolSpec) for t in tools):
            changes["tools"] = tuple(tools)
        else:
            problems.append("on_call_start: override tools must be a list of tools; ignored")
    if changes:
        try:
            config = dataclasses.replace(config, **changes)  # type: ignore[arg-type]
        except LocalProtocolError as exc:  # e.g. two tools of one name
            problems.append(f"on_call_start: overrides refused ({exc}); ignored")
    info = call_info(
        start, carrier, config, offered_tools(config), variables=variables, settings=text
    )
    params = start.custom_parameters
    known = call_variables(params, variables, caller=info.caller, callee=info.callee)
    missing = unfilled_variables(config.instructions + "\n" + config.first_message, known)
    if missing:
        names = ", ".join("{" + name + "}" for name in missing)
        problems.append(f"no value for {names} in the prompt or first message; left as written")
    return config, info, problems


def _variables(value: object, problems: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append("on_call_start: override variables must be a dict; ignored")
        return {}
    out = {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}
    return out
