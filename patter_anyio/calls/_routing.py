"""``serve(..., route=fn)``: the application picks each incoming call's agent.

Which webhooks are routed and what ``fn`` sees is the core's
(:func:`patter_core.webhooks.routed_call`); this module only runs ``fn``,
bounded: sync functions run in a worker thread (so a slow one cannot stall
the server, and the bound holds), async ones are awaited. ``fn`` answers
an :class:`Agent` (that agent answers), or ``None`` (the call is refused).
A timeout, an exception, an answer of another type, or an agent this
server cannot run (a provider key missing) gives the default agent and one
log line: a broken rule must not turn callers away.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import anyio.to_thread

from patter_core.webhooks import IncomingCall, TelnyxEvent
from patter_core.webhooks._routing import routed_call

from .._agent import Agent

__all__ = ["ROUTE_TIMEOUT", "Router", "choose_agent"]

log = logging.getLogger("patter_anyio.routing")

#: Default bound on ``route``: the carrier waits on the webhook (Twilio gives
#: up after 15 s), and a lookup in the application's own data takes far less.
ROUTE_TIMEOUT = 3.0
#: Routed calls whose stream has not started yet; a flood of webhooks whose
#: streams never come must not grow this without bound.
MAX_PENDING_ROUTED = 10_000


class Router:
    """``route`` and the agents it chose, kept until each call's stream starts.

    The choice lives in the process that answered the webhook: a stream that
    lands on another instance (no sticky sessions) gets that instance's
    default agent.
    """

    def __init__(
        self,
        route: Callable[[dict[str, Any]], Any],
        *,
        default: Agent,
        timeout: float = ROUTE_TIMEOUT,
        problem: Callable[[Agent], str | None] = lambda agent: None,
    ) -> None:
        self.route = route
        self.default = default
        self.timeout = timeout
        self._problem = problem
        self._chosen: dict[str, Agent] = {}

    async def admit(self, event: IncomingCall | TelnyxEvent) -> bool:
        """Ask ``route`` for this webhook's call; False: refuse the call."""
        call = routed_call(event)
        if call is None:
            return True
        agent = await choose_agent(
            self.route, call, default=self.default, timeout=self.timeout, problem=self._problem
        )
        if agent is None:
            return False
        if len(self._chosen) >= MAX_PENDING_ROUTED:
            self._chosen.pop(next(iter(self._chosen)))
        self._chosen[str(call["call_id"])] = agent
        return True

    def agent_for(self, call_id: str) -> Agent:
        """The chosen agent (looked up, not taken: a refused stream must not use
        it up); the default, with a log line, when this process chose none."""
        agent = self._chosen.get(call_id)
        if agent is None:
            log.info("call %s: routed by another instance (or not at all): default agent", call_id)
            return self.default
        return agent

    def forget(self, call_id: str) -> None:
        self._chosen.pop(call_id, None)


async def choose_agent(
    route: Callable[[dict[str, Any]], Any],
    call: dict[str, Any],
    *,
    default: Agent,
    timeout: float,
    problem: Callable[[Agent], str | None],
) -> Agent | None:
    """The agent for ``call`` (None: refuse it); ``problem`` says why an agent cannot run."""
    call_id = call.get("call_id", "")
    try:
        with anyio.fail_after(timeout):
            if inspect.iscoroutinefunction(route):
                result = await route(dict(call))
            else:
                result = await anyio.to_thread.run_sync(
                    partial(route, dict(call)), abandon_on_cancel=True
                )
            if inspect.isawaitable(result):
                result = await result
    except TimeoutError:
        log.warning("route gave no answer within %g s for call %s: default agent", timeout, call_id)
        return default
    except Exception:
        log.exception("route failed for call %s: default agent", call_id)
        return default
    if result is None:
        log.info("route refused call %s", call_id)
        return None
    if not isinstance(result, Agent):
        log.error(
            "route returned %s for call %s, not an Agent or None: default agent",
            type(result).__name__,
            call_id,
        )
        return default
    reason = problem(result)
    if reason:
        log.error("route's agent for call %s cannot run (%s): default agent", call_id, reason)
        return default
    return result
