"""A warm start: the provider session of a call, opened at its voice webhook.

A real provider takes 300 to 1,000 ms to get ready (TLS, the WebSocket
handshake, the session's confirmation), and the carrier's media stream
starts a second or more after the webhook is answered. With ``prewarm``
(an agent option, OpenAI Realtime agents) the process that answered a
verified voice webhook opens and configures the call's session at once, in
the background; when the stream starts here and passes its token check, the
bridge adopts it (:class:`patter_core.providers.WarmSession`): the greeting
may be waiting already.

Bounded: at most :data:`MAX_WARM` sessions wait per process, each at most
:data:`WARM_TTL` seconds for its stream; unused, it is closed. Only after a
webhook that passed its signature check (or with checks off, in
development), and only for calls that arrive (routed ones included): a
forged stream can still open nothing, and a refused stream adopts nothing.
A stream that lands on another instance connects cold, as without prewarm.
Not with ``on_call_start``: its overrides shape the session, and come only
with the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc

from patter_core.audio import ULAW_8K
from patter_core.bridge import BridgeConfig, CallInfo, SessionFactory
from patter_core.bridge._overrides import per_call
from patter_core.media import Start
from patter_core.providers import MAIN_CHANNEL as MAIN
from patter_core.providers import (
    CloseSocket,
    OpenSocket,
    ProviderEvent,
    ProviderSession,
    SendMessage,
    SocketClosed,
    SocketMessage,
    SocketOpened,
    WarmSession,
)

from .._agent import Agent
from ..net._guard import SocketGuard
from ..net._httpclient import ClientError
from ..net._websocket import WebSocket, WebSocketClosed
from ..net._wsclient import connect_websocket
from ._call import CallRunner

__all__ = ["MAX_WARM", "WARM_TTL", "Prewarm"]

log = logging.getLogger("patter_anyio.prewarm")

#: Sessions waiting for their stream, per process: each is a provider
#: connection (and, for a greeting, a paid answer); a burst of webhooks
#: whose streams never come must not open more.
MAX_WARM = 50
#: Twilio starts the stream a second or two after the webhook is answered;
#: ten seconds without one means it went elsewhere, or never comes.
WARM_TTL = 10.0


@dataclass(eq=False)
class _Warm:
    call_id: str
    info: CallInfo
    session: ProviderSession
    events: list[ProviderEvent] = field(default_factory=list)
    ws: WebSocket | None = None
    runner: CallRunner | None = None
    # The wait for the stream; cancelled when the call adopts the session,
    # so its task ends then instead of sleeping out the TTL.
    expiry: anyio.CancelScope = field(default_factory=anyio.CancelScope)


class Prewarm:
    """The warm sessions of one process, by call id."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        connect_timeout: float = 10.0,
        ttl: float | None = None,
        max_sessions: int | None = None,
    ) -> None:
        self._clock = clock
        self._connect_timeout = connect_timeout
        self._ttl = WARM_TTL if ttl is None else ttl
        self._max = MAX_WARM if max_sessions is None else max_sessions
        self._warm: dict[str, _Warm] = {}

    def __len__(self) -> int:
        return len(self._warm)

    def begin(
        self,
        tg: anyio.abc.TaskGroup,
        call: dict[str, object],
        agent: Agent,
        make_session: SessionFactory,
        *,
        guard: SocketGuard | None = None,
    ) -> bool:
        """Open ``agent``'s session for ``call`` (``routed_call``'s dict) in
        ``tg``; ``guard`` watches its socket's timeouts (else a task of its own)."""
        call_id = str(call["call_id"])
        if call_id in self._warm or len(self._warm) >= self._max:
            return False
        info = warm_info(call, agent)
        session = make_session(info)
        events = session.start(self._clock())
        io = session.io_to_send()
        if len(io) != 1 or not isinstance(io[0], OpenSocket) or io[0].channel != MAIN:
            session.close(self._clock())  # more than one socket: not warmed
            return False
        warm = _Warm(call_id=call_id, info=info, session=session, events=events)
        self._warm[call_id] = warm
        tg.start_soon(self._run, warm, io[0], guard)
        return True

    def factory(self, make_session: SessionFactory, runner: list[CallRunner]) -> SessionFactory:
        """``make_session``, but adopting this call's warm session when it has one."""

        def factory(info: CallInfo) -> ProviderSession:
            warm = self._warm.get(info.call_id)
            if warm is None or warm.ws is None or not runner or not _same(warm.info, info):
                return make_session(info)
            del self._warm[info.call_id]
            warm.runner = runner[0]
            warm.runner.adopt_socket(MAIN, warm.ws)
            warm.expiry.cancel()
            log.info("call %s: adopted the prewarmed provider session", info.call_id)
            return WarmSession(warm.session, warm.events, frozenset({MAIN}))

        return factory

    async def _run(self, warm: _Warm, opening: OpenSocket, guard: SocketGuard | None) -> None:
        code, reason = 1006, "not connected"
        try:
            async with connect_websocket(
                opening.url, headers=opening.headers, timeout=self._connect_timeout
            ) as ws:
                warm.ws = ws
                opened = SocketOpened(channel=MAIN)
                warm.events += warm.session.receive_io(opened, self._clock())
                await self._send_io(warm, ws)
                if guard is not None:
                    guard.watch(ws)  # the send timeout, adopted or not
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._expire, warm, ws)
                    if guard is None:
                        tg.start_soon(ws.guard)
                    try:
                        await ws.pump(self._deliver(warm, ws))
                    except WebSocketClosed as closed:
                        code, reason = closed.code, closed.reason
                    tg.cancel_scope.cancel()
        except ClientError as exc:
            reason = f"could not connect: {exc}"
            log.warning("prewarm for call %s failed: %s", warm.call_id, exc)
        except Exception:
            # A fault of ours: it runs in the server's task group, so it must
            # cost this warm start (the call opens its session itself), never
            # the server and its other calls.
            reason = "warm start failed"
            log.exception("prewarm for call %s failed", warm.call_id)
        finally:
            if self._warm.get(warm.call_id) is warm:
                del self._warm[warm.call_id]
        if warm.runner is not None:
            closed_result = SocketClosed(channel=MAIN, code=code, reason=reason)
            await warm.runner.provider_result(closed_result)
        else:
            warm.session.close(self._clock())

    def _deliver(
        self, warm: _Warm, ws: WebSocket
    ) -> Callable[[str | bytes], Coroutine[Any, Any, None] | None]:
        """What the warm socket's reader hands each message to: the session
        until a call adopts it, then the call."""

        def deliver(data: str | bytes) -> Coroutine[Any, Any, None] | None:
            message = SocketMessage(channel=MAIN, data=data)
            if warm.runner is not None:  # adopted: the call's now
                return warm.runner.provider_result_now(message)
            warm.events += warm.session.receive_io(message, self._clock())
            return self._send_io(warm, ws)

        return deliver

    async def _expire(self, warm: _Warm, ws: WebSocket) -> None:
        with warm.expiry:
            await anyio.sleep(self._ttl)
        if warm.runner is None:
            log.info(
                "call %s: no stream within %g s, prewarmed session closed", warm.call_id, self._ttl
            )
            if self._warm.get(warm.call_id) is warm:
                del self._warm[warm.call_id]
            await ws.close(1000)

    async def _send_io(self, warm: _Warm, ws: WebSocket) -> None:
        for io in warm.session.io_to_send():
            if isinstance(io, SendMessage) and io.channel == MAIN:
                await ws.send(io.data)
            elif isinstance(io, CloseSocket) and io.channel == MAIN:
                await ws.close(io.code)


def warm_info(call: dict[str, object], agent: Agent) -> CallInfo:
    """The :class:`CallInfo` the stream's ``start`` will give (Twilio passes the
    parties as parameters, Telnyx names them in ``start``)."""
    caller, callee = str(call.get("caller", "")), str(call.get("callee", ""))
    start = Start(
        stream_id="",
        call_id=str(call["call_id"]),
        media_format=ULAW_8K,  # not used by the session
        custom_parameters={"caller": caller, "callee": callee},
        caller=caller,
        callee=callee,
    )
    config = BridgeConfig(
        instructions=agent.system_prompt,
        first_message=agent.first_message,
        tools=tuple(tool.spec for tool in agent.tools),
        end_call_tool=agent.end_call_tool,
        transfer_allowlist=frozenset(agent.transfer_allowlist),
    )
    _, info, _ = per_call(start, str(call.get("carrier", "")), config, None)
    return info


def _same(warm: CallInfo, info: CallInfo) -> bool:
    """The stream's session would be configured exactly as the warm one."""
    return (
        warm.instructions == info.instructions
        and warm.first_message == info.first_message
        and warm.tools == info.tools
        and (warm.voice, warm.model, warm.language) == (info.voice, info.model, info.language)
    )
