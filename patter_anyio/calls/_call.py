"""Runs one call: moves bytes between the carrier socket, the provider and the bridge.

Theory of operation
-------------------

Everything a call decides lives in :class:`patter_core.bridge.CallBridge`.
:class:`CallRunner` only does I/O for it:

* a *reader* task per socket (the carrier's media WebSocket, every provider
  WebSocket the session opens) and per provider HTTP request turns what
  arrives into a bridge input; the timer task calls ``handle_timer`` when
  ``next_deadline()`` is due;
* every bridge input returns actions, which the task that fed the input
  runs at once, under one lock held from the bridge call to the last
  action: batches run whole and in the order the bridge produced them, so
  frames for a socket are written in that order (a ``clear`` never
  overtakes the media before it). No queue and no executor task sit in
  between: a hop through a task costs more than the message itself on a
  call's ~300 messages a second (DESIGN.md, "The hot path"); a reader
  whose write waits on a slow peer waits in turn, which is the back
  pressure a bounded queue used to give. On asyncio a reader's messages
  are even fed to the bridge in the socket's own callback while the
  reader waits (:meth:`WebSocket.pump`), and its task wakes only for
  what has to wait;
* actions that wait on the outside world (user callbacks, tools, the
  ``on_message`` handler, carrier REST calls, opening a socket) run in tasks
  of their own, so a slow callback never stalls the audio.

When the bridge has ended, the runner finishes the work the ending asked for
(``on_call_end``, the REST hangup), bounded by ``finish_timeout``, closes
every provider connection and returns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
import math
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.abc

from patter_core.bridge import (
    Action,
    CallbackPayload,
    CallBridge,
    CallEnded,
    CallStarted,
    CloseCarrier,
    EndReason,
    FireCallback,
    HttpCall,
    LogProblem,
    Notify,
    ProviderIo,
    RunTool,
    SendToCarrier,
    SetTimer,
)
from patter_core.bridge._tools import error_output, tool_output
from patter_core.http import HttpRequest
from patter_core.providers import (
    CallHandler,
    ChannelId,
    CloseSocket,
    HandlerReplied,
    HttpData,
    HttpDone,
    HttpFailed,
    HttpStarted,
    IoResult,
    OpenSocket,
    SendMessage,
    SocketClosed,
    SocketMessage,
    SocketOpened,
    StartHttp,
)
from patter_core.providers._refusal import describe_refusal
from patter_core.webhooks import RetryPolicy

from .._agent import InvalidOption, as_tools
from .._clock import SYSTEM_CLOCK, Clock
from ..net._guard import SocketGuard
from ..net._httpclient import (
    ClientError,
    ClientProtocolError,
    HttpPool,
    stream_request,
)
from ..net._lock import FastLock
from ..net._rest import send_rest
from ..net._websocket import WebSocket, WebSocketClosed
from ..net._wsclient import connect_websocket
from ._recording import RecordingWriter
from ._remote import ToolFailed

__all__ = ["TRANSCRIPT_LOGGER", "CallHooks", "CallRunner", "maybe_await"]

log = logging.getLogger("patter_anyio.call")
#: What the caller and the agent say, one INFO line per final segment; a
#: logger of its own so it can be silenced (``--quiet-transcripts``).
TRANSCRIPT_LOGGER = "patter_anyio.transcript"
transcript_log = logging.getLogger(TRANSCRIPT_LOGGER)

# A user callback: sync or async, one dict argument.
Callback = Callable[[dict[str, Any]], Any]
# A user tool: sync or async, (arguments, call) -> anything JSON-able or text.
ToolHandler = Callable[[dict[str, Any], dict[str, Any]], Any]
# on_message: sync or async, (message dict) -> reply text.
MessageHandler = Callable[[dict[str, Any]], Any]

# Provider responses (LLM streams, TTS audio) are bounded: 64 MiB is minutes
# of 24 kHz audio, far beyond a sentence.
_MAX_PROVIDER_HTTP_BYTES = 64 * 1024 * 1024


_T = TypeVar("_T")


def _now_only(feed: Callable[[float], list[Action]], now: float) -> list[Action]:
    """For an input that is only a moment (a timer, a close): ``feed(now)``."""
    return feed(now)


def _log_call_event(p: CallbackPayload) -> None:
    """One log line per call event; the transcript on a logger of its own."""
    if isinstance(p, CallStarted):
        log.info("call started call=%s caller=%s callee=%s", p.call_id, p.caller, p.callee)
    elif isinstance(p, CallEnded):
        log.info(
            "call ended call=%s reason=%s segments=%d%s",
            p.call_id,
            p.reason.value,
            len(p.transcript),
            (
                f" provider_close={p.provider_close[0]} {p.provider_close[1]!r}"
                if p.provider_close is not None
                else ""
            ),
        )
        if p.reason is EndReason.PROVIDER_ERROR:
            log.warning(
                "call %s ended: the AI provider failed: %s "
                "(check the provider's key, model and base URL)",
                p.call_id,
                p.detail or "no detail",
            )
        if p.reason is EndReason.CARRIER_PROTOCOL_ERROR:
            # e.g. a Telnyx leg streaming a codec we cannot decode: say which.
            log.warning("call %s: carrier stream refused: %s", p.call_id, p.detail)
        if p.carrier_errors:
            log.warning(
                "call %s: the carrier reported %s stream errors (the call went on)",
                p.call_id,
                p.carrier_errors,
            )
    else:
        # Whitespace folded: the caller's words stay on one log line.
        text = " ".join(p.text.split())
        transcript_log.info("call=%s %s: %s", p.call_id, p.role, text)


async def maybe_await(value: Any) -> Any:
    """The value, awaited if the user's function turned out to be async."""
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class CallHooks:
    """The application's side of a call: callbacks, tools and timeouts."""

    on_call_start: Callback | None = None
    on_call_end: Callback | None = None
    on_transcript: Callback | None = None
    on_message: MessageHandler | None = None
    tools: Mapping[str, ToolHandler] = field(default_factory=dict)
    #: Provider/carrier HTTP requests: connect + head within this many seconds.
    http_timeout: float = 15.0
    #: Provider WebSocket connect + handshake.
    connect_timeout: float = 10.0
    #: After the call ended: longest wait for on_call_end and the REST hangup.
    finish_timeout: float = 10.0
    #: A user tool that runs longer than this answers the model with an error.
    tool_timeout: float = 30.0


class CallRunner:
    """Drive one :class:`CallBridge` over a carrier WebSocket until the call ends."""

    def __init__(
        self,
        bridge: CallBridge,
        carrier: WebSocket,
        hooks: CallHooks,
        *,
        clock: Clock = SYSTEM_CLOCK,
        http_pool: HttpPool | None = None,
        carrier_retry: RetryPolicy | None = None,
        observer: Callable[[str, Mapping[str, object], float], None] | None = None,
        recording: RecordingWriter | None = None,
        guard: SocketGuard | None = None,
    ) -> None:
        self._bridge = bridge
        # Watches the provider sockets' timeouts (the server's, shared by
        # every call); without one each socket gets a guard task.
        self._socket_guard = guard
        # Sees every call event as it fires (the dashboard); never awaits.
        self._observer = observer
        # The local stereo recording, finished before on_call_end fires.
        self._recording = recording
        # Carrier commands that are safe to repeat (Telnyx's carry a command_id).
        self._retry = carrier_retry or RetryPolicy(max_attempts=1)
        # Keep-alive connections for the provider and carrier HTTP requests:
        # a pipeline call sends one per sentence and per LLM round to the
        # same hosts. One pool per call unless the owner shares one: it
        # lives and dies with the call's tasks, and an idle socket never
        # outlives the call that opened it.
        self._own_pool = http_pool is None
        self._http_pool = http_pool if http_pool is not None else HttpPool()
        self._carrier = carrier
        self._hooks = hooks
        self._clock = clock
        self._sockets: dict[ChannelId, WebSocket] = {}
        self._scopes: dict[ChannelId, anyio.CancelScope] = {}
        # Held from feeding an input to the bridge until its last action ran.
        self._lock = FastLock()
        self._timer_changed = anyio.Event()
        self._finishing: set[object] = set()
        self._finished = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None
        self._done = False

    # -- the call ----------------------------------------------------------------

    async def run(self) -> None:
        """Run until the bridge has ended and its last actions are done."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._timers)
                tg.start_soon(self._read_carrier)
                if self._recording is not None:
                    tg.start_soon(self._recording.run)
                await self._finished.wait()
                with anyio.move_on_after(self._hooks.finish_timeout):
                    while self._finishing:
                        await anyio.sleep(0.01)
                tg.cancel_scope.cancel()
        finally:
            self._done = True
            with anyio.CancelScope(shield=True):
                if self._recording is not None:
                    with anyio.move_on_after(self._hooks.finish_timeout):
                        await self._recording.finish()
                for ws in list(self._sockets.values()):
                    with anyio.move_on_after(1.0):
                        await ws.close(1000)
                if self._own_pool:
                    await self._http_pool.aclose()

    async def _input(self, feed: Callable[[_T, float], list[Action]], arg: _T) -> None:
        """Feed ``arg`` to the bridge (``feed(arg, now)``) and run what it asks
        for, in order. Two arguments, not a closure: no object per message.
        A free lock is taken without a checkpoint (``FastLock``)."""
        await self._lock.acquire()
        rest = self._input_locked(feed, arg)
        if rest is not None:
            await rest

    def _input_now(
        self, feed: Callable[[_T, float], list[Action]], arg: _T
    ) -> Coroutine[Any, Any, None] | None:
        """:meth:`_input` without a coroutine when it can: with the lock free
        and every action one of :meth:`_do_now`'s, all is done on return
        (None). Otherwise the work left, to be awaited at once: the whole
        input when the lock is taken, else the actions from the first that
        must wait (the lock stays held until they ran)."""
        if not self._lock.acquire_nowait():  # uncontended: no checkpoint
            return self._input(feed, arg)
        return self._input_locked(feed, arg)

    def _input_locked(
        self, feed: Callable[[_T, float], list[Action]], arg: _T
    ) -> Coroutine[Any, Any, None] | None:
        """:meth:`_input_now` with the lock taken."""
        lock = self._lock
        try:
            actions = feed(arg, self._clock.monotonic())
            # Read before running the batch: an action may yield, and the
            # call's end is declared only once the ending's own actions ran.
            ended = self._bridge.ended
            for i, action in enumerate(actions):
                if not self._do_now(action):
                    return self._run_locked(actions, i, ended)
        except BaseException:
            lock.release()
            raise
        lock.release()
        if ended:
            self._finished.set()
        return None

    async def _run_locked(self, actions: list[Action], start: int, ended: bool) -> None:
        """Run ``actions[start:]`` in order, then release the lock the caller took."""
        try:
            for action in actions[start:]:
                if not self._do_now(action):
                    await self._do(action)
        finally:
            self._lock.release()
        if ended:
            self._finished.set()

    @property
    def started(self) -> bool:
        """True once the stream passed its token check (the call is live)."""
        return self._bridge.accepted and not self._bridge.ended

    async def amd_result(self, answered_by: str) -> None:
        """Answering-machine detection for this call (from a webhook)."""
        await self._input(self._bridge.amd_result, answered_by)

    async def tell_agent(self, text: str) -> None:
        """A note for the agent from the application (a warm transfer's end)."""
        await self._input(self._bridge.tell_agent, text)

    async def hangup(self, reason: str) -> None:
        """End the call from the application's side."""
        await self._input(self._bridge.hangup, reason)

    async def shutdown(self) -> None:
        """The server is going away: end the call as ``server_shutdown``."""
        await self._input(_now_only, self._bridge.shutdown)

    # -- a provider socket opened before the call (prewarm, ``_prewarm``) ----------

    def adopt_socket(self, channel: ChannelId, ws: WebSocket) -> None:
        """``ws`` is this call's ``channel`` from now on; its reader is the
        prewarm's, which hands each result to :meth:`provider_result`."""
        self._sockets[channel] = ws
        opened = SocketOpened(channel=channel)
        self._spawn(self._input(self._bridge.provider_result, opened), must_finish=False)

    async def provider_result(self, result: IoResult) -> None:
        rest = self.provider_result_now(result)
        if rest is not None:
            await rest

    def provider_result_now(self, result: IoResult) -> Coroutine[Any, Any, None] | None:
        """:meth:`provider_result` as :meth:`_input_now`: None when all is
        done, else the work left, to be awaited at once."""
        if isinstance(result, SocketClosed):
            self._sockets.pop(result.channel, None)
        return self._input_now(self._bridge.provider_result, result)

    # -- readers -------------------------------------------------------------------

    def _socket_message(
        self, channel: ChannelId
    ) -> Callable[[str | bytes], Coroutine[Any, Any, None] | None]:
        """What a provider socket's reader hands each message to."""
        result = self._bridge.provider_result

        def deliver(data: str | bytes) -> Coroutine[Any, Any, None] | None:
            return self._input_now(result, SocketMessage(channel=channel, data=data))

        return deliver

    async def _read_carrier(self) -> None:
        bridge = self._bridge
        try:
            deliver = functools.partial(self._input_now, bridge.carrier_message)
            await self._carrier.pump(deliver, until=lambda: bridge.ended)
        except WebSocketClosed:
            await self._input(_now_only, bridge.carrier_closed)

    async def _timers(self) -> None:
        while True:
            deadline = self._bridge.next_deadline()
            delay = math.inf if deadline is None else deadline - self._clock.monotonic()
            if delay <= 0:
                await self._input(_now_only, self._bridge.handle_timer)
                await anyio.sleep(0)  # let the other tasks run
                continue
            changed = self._timer_changed
            with anyio.move_on_after(delay):
                await changed.wait()
            if changed.is_set():
                self._timer_changed = anyio.Event()

    async def _provider_socket(self, action: OpenSocket) -> None:
        result = self._bridge.provider_result
        channel = action.channel
        guard: anyio.CancelScope | None = None
        try:
            async with connect_websocket(
                action.url, headers=action.headers, timeout=self._hooks.connect_timeout
            ) as ws:
                self._sockets[channel] = ws
                # The send timeout, enforced from one task instead of a
                # timeout scope around every write.
                if self._socket_guard is not None:
                    self._socket_guard.watch(ws)
                else:
                    guard = anyio.CancelScope()
                    self._spawn(self._guard(ws, guard), must_finish=False)
                await self._input(result, SocketOpened(channel=channel))
                try:
                    await ws.pump(self._socket_message(channel))
                except WebSocketClosed as closed:
                    code, reason = closed.code, closed.reason
        except ClientProtocolError as exc:
            # The provider's own words (e.g. OpenAI's "Incorrect API key").
            code, reason = 1006, describe_refusal(exc.status, exc.body)
            # INFO: the call's end says it once, as a warning, with this detail.
            log.info("provider connection %s refused: %s", channel, reason)
        except ClientError as exc:
            code, reason = 1006, f"could not connect: {exc}"
            log.info("provider connection %s failed: %s", channel, exc)
        finally:
            self._sockets.pop(channel, None)
            if guard is not None:
                guard.cancel()
        await self._input(result, SocketClosed(channel=channel, code=code, reason=reason))

    @staticmethod
    async def _guard(ws: WebSocket, scope: anyio.CancelScope) -> None:
        with scope:
            await ws.guard()

    async def _provider_http(self, action: StartHttp) -> None:
        result = self._bridge.provider_result
        channel = action.channel
        with anyio.CancelScope() as scope:
            self._scopes[channel] = scope
            try:
                async with stream_request(
                    action.request,
                    timeout=self._hooks.http_timeout,
                    max_response_bytes=_MAX_PROVIDER_HTTP_BYTES,
                    pool=self._http_pool,
                ) as response:
                    started = HttpStarted(
                        channel=channel, status=response.status, headers=response.headers
                    )
                    await self._input(result, started)
                    async for chunk in response:
                        await self._input(result, HttpData(channel=channel, data=chunk))
                await self._input(result, HttpDone(channel=channel))
            except ClientError as exc:
                await self._input(result, HttpFailed(channel=channel, message=str(exc)))
            finally:
                self._scopes.pop(channel, None)

    # -- actions ------------------------------------------------------------------------

    def _do_now(self, action: Action) -> bool:
        """The hot path: a frame for the carrier or a message for the
        provider, written at once when its socket can take it without
        waiting (no coroutine, no await). False: :meth:`_do` does it."""
        try:
            if isinstance(action, SendToCarrier):
                return self._carrier.send_many_nowait(action.messages)
            if isinstance(action, ProviderIo):
                io = action.action
                if isinstance(io, SendMessage):
                    ws = self._sockets.get(io.channel)
                    return ws is not None and ws.send_nowait(io.data)
        except WebSocketClosed:
            return True  # a lost socket is its reader's to report
        return False

    async def _do(self, action: Action) -> None:
        if isinstance(action, SendToCarrier):
            # A lost socket is the reader's to report to the bridge.
            with contextlib.suppress(WebSocketClosed):
                await self._carrier.send_many(action.messages)
        elif isinstance(action, ProviderIo):
            await self._do_io(action.action)
        elif isinstance(action, SetTimer):
            self._timer_changed.set()
        elif isinstance(action, FireCallback):
            _log_call_event(action.payload)
            # The documented dict, built here and only here (wall-clock times).
            payload = action.payload.as_dict(self._clock.to_wall)
            if self._recording is not None and action.name == "on_call_end":
                # The file is finished (off this task) before anyone hears of it.
                self._spawn(self._end_with_recording(action, payload), must_finish=True)
                return
            self._observe(action.name, payload)
            self._spawn(self._callback(action, payload), must_finish=True)
        elif isinstance(action, Notify):
            self._observe(action.name, action.payload)
        elif isinstance(action, RunTool):
            self._spawn(self._tool(action), must_finish=False)
        elif isinstance(action, HttpCall):
            self._spawn(self._rest(action.request, action.purpose), must_finish=True)
        elif isinstance(action, CloseCarrier):
            with contextlib.suppress(WebSocketClosed):
                await self._carrier.close(action.code, action.reason)
        elif isinstance(action, LogProblem):
            info = self._bridge.call_info
            log.warning("call=%s %s", info.call_id if info else "", action.message)

    async def _do_io(self, io: object) -> None:
        if isinstance(io, SendMessage):
            ws = self._sockets.get(io.channel)
            if ws is None:
                log.debug("dropping a message for closed channel %s", io.channel)
                return
            with contextlib.suppress(WebSocketClosed):
                await ws.send(io.data)  # a close is its reader's to report
        elif isinstance(io, OpenSocket):
            self._spawn(self._provider_socket(io), must_finish=False)
        elif isinstance(io, CloseSocket):
            ws = self._sockets.get(io.channel)
            if ws is not None:
                self._spawn(ws.close(io.code), must_finish=False)
            scope = self._scopes.get(io.channel)
            if scope is not None:
                scope.cancel()
        elif isinstance(io, StartHttp):
            self._spawn(self._provider_http(io), must_finish=False)
        elif isinstance(io, CallHandler):
            self._spawn(self._handler(io), must_finish=False)

    def _spawn(self, work: Coroutine[Any, Any, None], *, must_finish: bool) -> None:
        if self._tg is None or self._done:
            # An input from outside (a webhook) after the call finished.
            log.debug("dropping work for a finished call")
            work.close()
            return
        token = object()

        async def run() -> None:
            try:
                await work
            finally:
                self._finishing.discard(token)

        if must_finish:
            self._finishing.add(token)
        self._tg.start_soon(run)

    # -- work that waits on the outside world -------------------------------------------

    def _observe(self, name: str, payload: Mapping[str, object]) -> None:
        if self._observer is not None:
            try:
                self._observer(name, payload, self._clock.wall())
            except Exception:
                log.exception("call event observer failed")

    async def _end_with_recording(self, action: FireCallback, payload: dict[str, object]) -> None:
        assert self._recording is not None
        payload["recording_path"] = await self._recording.finish()
        self._observe(action.name, payload)
        await self._callback(action, payload)

    async def _callback(self, action: FireCallback, payload: dict[str, object]) -> None:
        callback = getattr(self._hooks, action.name, None)
        result = None
        if callback is not None:
            try:
                result = await maybe_await(callback(dict(payload)))
            except Exception:
                log.exception("%s callback failed", action.name)
        if action.awaits_answer:  # on_call_start's overrides for this call
            await self._input(self._bridge.call_start_result, self._overrides(result))

    def _overrides(self, result: Any) -> Any:
        """The core takes tool specs; the handlers of a per-call tool list stay here."""
        if not isinstance(result, Mapping) or result.get("tools") is None:
            return result
        overrides = dict(result)
        try:
            tools = as_tools(overrides["tools"])
        except InvalidOption as exc:
            log.warning("on_call_start: override tools ignored: %s", exc)
            del overrides["tools"]
            return overrides
        overrides["tools"] = tuple(tool.spec for tool in tools)
        handlers = {**self._hooks.tools, **{tool.name: tool.handler for tool in tools}}
        self._hooks = dataclasses.replace(self._hooks, tools=handlers)
        return overrides

    async def _tool(self, action: RunTool) -> None:
        handler = self._hooks.tools.get(action.name)
        info = self._bridge.call_info
        call = (
            {"call_id": info.call_id, "caller": info.caller, "callee": info.callee} if info else {}
        )
        failed = True
        if handler is None:
            output = error_output(f"no handler for tool {action.name!r}")
        else:
            try:
                with anyio.fail_after(self._hooks.tool_timeout):
                    result = await maybe_await(handler(dict(action.arguments), call))
                output = tool_output(result)
                failed = False
            except TimeoutError:
                output = error_output(f"tool {action.name} timed out")
            except ToolFailed as exc:
                # A remote tool's failure: expected, one line, no traceback.
                log.warning("tool %s failed: %s", action.name, exc)
                output = error_output(str(exc))
            except Exception as exc:
                log.exception("tool %s failed", action.name)
                output = error_output(f"tool {action.name} failed: {exc}")
        bridge = self._bridge
        await self._input(
            lambda _, now: bridge.tool_result(action.call_id, output, now, is_error=failed), None
        )

    async def _handler(self, io: CallHandler) -> None:
        handler = self._hooks.on_message
        info = self._bridge.call_info
        text = ""
        if handler is not None:
            message = {
                "text": io.text,
                "call_id": info.call_id if info else "",
                "caller": info.caller if info else "",
                "callee": info.callee if info else "",
            }
            try:
                reply = await maybe_await(handler(message))
                text = "" if reply is None else str(reply)
            except ToolFailed as exc:
                log.warning("on_message failed: %s", exc)
            except Exception:
                log.exception("on_message handler failed")
        replied = HandlerReplied(request_id=io.request_id, text=text)
        await self._input(self._bridge.provider_result, replied)

    async def _rest(self, req: HttpRequest, purpose: str) -> None:
        await send_rest(
            req, purpose, retry=self._retry, timeout=self._hooks.http_timeout, pool=self._http_pool
        )
