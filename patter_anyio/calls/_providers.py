"""What to say about an agent's providers before its calls.

:func:`missing_settings` says why an agent cannot run with the keys given
and :func:`configured_models` which models it uses (both decided by
:mod:`patter_core.providers`' selection); :func:`start_notices` is what the
server says at start about the models and tools in use.
"""

from __future__ import annotations

import datetime
import logging

from patter_core.bridge import BridgeConfig
from patter_core.bridge._tools import offered_tools
from patter_core.providers._models import model_warnings
from patter_core.providers._selection import selected_models, selection_problem

from .._agent import Agent
from .._settings import ProviderSettings

__all__ = [
    "configured_models",
    "elevenlabs_tools_notice",
    "missing_settings",
    "start_notices",
]


def missing_settings(agent: Agent, providers: ProviderSettings, *, handler: bool) -> str | None:
    """Why ``agent`` cannot run with these keys, or None when it can."""
    return selection_problem(agent, providers, handler=handler)


def configured_models(
    agent: Agent, providers: ProviderSettings, *, handler: bool
) -> list[tuple[str, str]]:
    """``(role, model)`` for every model a call of ``agent`` will name on the wire."""
    return selected_models(agent, providers, handler=handler)


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
