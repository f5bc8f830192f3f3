"""The local runtime: turns the webhook app's events into calls.

:class:`LocalRuntime` is what ``Patter.serve`` and ``python -m patter_anyio
serve`` plug into the server: the media-stream handler (one
:class:`~patter_core.bridge.CallBridge` driven by a :class:`CallRunner` per
stream) and the webhook hooks that need I/O (Telnyx answers through its REST
API, answering-machine results, recording and status logs). Every protocol
decision stays in ``patter_core``; this module only picks the configured
pieces and wires them together.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from patter_core import Entropy
from patter_core.bridge import BridgeConfig, CallBridge, CallInfo
from patter_core.media import TelnyxMediaStream, TwilioMediaStream
from patter_core.providers import ProviderSession
from patter_core.providers._selection import can_prewarm, greets_natively
from patter_core.recording import StereoRecorder
from patter_core.webhooks import (
    AmdCallback,
    CallStatusCallback,
    IncomingCall,
    RecordingStatusCallback,
    StreamAdmission,
    StreamTokens,
    TelnyxCallFlow,
    TelnyxEvent,
    TelnyxWarmTransfer,
    TransferFollowUp,
    TransferStep,
    TwilioCallFlow,
    TwilioWarmTransfer,
)
from patter_core.webhooks._routing import routed_call
from patter_core.webhooks._warm_transfer import warm_leg_caller

from .._agent import Agent, per_call_options
from .._clock import SYSTEM_CLOCK, Clock
from .._settings import CarrierSettings, ProviderSettings, StreamTimeouts
from ..net._guard import SocketGuard
from ..net._monitor import Monitor
from ..net._rest import send_rest
from ..net._server import StreamRequest
from ..net._websocket import WebSocket
from ._app import WebhookHooks
from ._call import CallHooks, CallRunner, maybe_await
from ._codecs import optional_decoders
from ._controls import TelnyxControl, TwilioControl
from ._outbound import OutboundCalls, carrier_rest
from ._prewarm import Prewarm
from ._providers import (
    configured_models,
    elevenlabs_tools_notice,
    missing_settings,
    start_notices,
)
from ._recording import RecordingWriter
from ._remote import tool_handlers
from ._routing import Router
from ._sessions import make_session_factory

__all__ = [
    "CarrierSettings",
    "LocalRuntime",
    "ProviderSettings",
    "StreamTimeouts",
    "configured_models",
    "elevenlabs_tools_notice",
    "make_session_factory",
    "missing_settings",
    "start_notices",
]

log = logging.getLogger("patter_anyio.runtime")

# Outbound-call overrides waiting for their stream; a dialler that never gets
# its calls answered must not grow this without bound.
_MAX_PENDING_OUTBOUND = 10_000


@dataclass(slots=True)
class _Outbound:
    agent: Agent | None
    voicemail_message: str | None
    #: Sent as ``<Parameter>`` with the stream (they fill ``{name}`` in prompts).
    variables: Mapping[str, str] = field(default_factory=dict)


class LocalRuntime:
    """Everything a running server needs to carry calls."""

    def __init__(
        self,
        *,
        agent: Agent,
        carriers: CarrierSettings,
        providers: ProviderSettings,
        hooks: CallHooks,
        stream_secret: bytes,
        recording: bool = False,
        voicemail_message: str | None = None,
        timeouts: StreamTimeouts | None = None,
        entropy: Entropy = secrets,
        clock: Clock = SYSTEM_CLOCK,
        on_call_status: Callable[[dict[str, Any]], Any] | None = None,
        on_machine_detection: Callable[[dict[str, Any]], Any] | None = None,
        webhook_secret: bytes | None = None,
        local_recording: Path | None = None,
        router: Router | None = None,
    ) -> None:
        self.agent = agent
        #: Signs every webhook tool and on_message URL without a secret of its own.
        self.webhook_secret = webhook_secret
        #: Where each call's stereo WAV goes (None: not recorded here).
        self.local_recording = local_recording
        #: ``serve(route=...)``: picks each incoming call's agent (``_routing``).
        self.router = router
        self.carriers = carriers
        self.providers = providers
        self.hooks = hooks
        self.tokens = StreamTokens.from_list(stream_secret)
        #: One live stream per call, no replayed tokens (per process).
        self.admission = StreamAdmission(self.tokens)
        self.timeouts = timeouts if timeouts is not None else StreamTimeouts()
        self.recording = recording
        self.voicemail_message = voicemail_message
        self._entropy = entropy
        self._clock = clock
        self.twilio, self.telnyx = carrier_rest(carriers)
        self.twilio_flow = TwilioCallFlow(
            self.tokens, webhook_host=carriers.webhook_host, rest=self.twilio
        )
        self.telnyx_flow = (
            TelnyxCallFlow(
                self.telnyx,
                self.tokens,
                webhook_host=carriers.webhook_host,
                codec="L16" if carriers.telnyx_codec == "L16" else "PCMU",
            )
            if self.telnyx is not None
            else None
        )
        self.telnyx_warm = (
            TelnyxWarmTransfer(
                self.telnyx,
                connection_id=carriers.telnyx_connection_id,
                webhook_host=carriers.webhook_host,
            )
            if self.telnyx is not None and carriers.telnyx_connection_id and carriers.webhook_host
            else None
        )
        #: Where webhook follow-up work runs (set by the server's owner);
        #: without one it runs before the webhook is answered.
        self.background: anyio.abc.TaskGroup | None = None
        #: Live streams of this process, by carrier call id. A list: a second
        #: connection for the same id (a retry, or someone guessing ids) must
        #: not displace the call that passed its token check.
        self.live: dict[str, list[CallRunner]] = {}
        self._outbound: dict[str, _Outbound] = {}
        #: Status and outcome of the outbound calls placed by this process.
        self.outcomes = OutboundCalls(
            on_call_status=on_call_status,
            on_machine_detection=on_machine_detection,
            clock=clock.wall,  # the times an outbound call's result reports
        )
        #: Sees every call event (the dashboard and /metrics), if set.
        self.monitor: Monitor | None = None
        #: Provider sessions opened at the webhook, until their stream starts.
        self.prewarm = Prewarm(clock=clock.monotonic)  # the same clock as the call's
        #: Watches the provider WebSockets' timeouts (the server's guard, set
        #: by the owner); without one each socket has a guard task.
        self.guard: SocketGuard | None = None
        # Codecs beyond G.711/L16 a Telnyx fallback may stream (optional packages).
        self._decoders = optional_decoders()

    # -- the pieces the server takes ---------------------------------------------

    def webhook_hooks(self) -> WebhookHooks:
        return WebhookHooks(
            on_call_status=self._on_call_status,
            on_recording_status=self._on_recording_status,
            on_amd_result=self._on_amd_result,
            on_telnyx_event=self._on_telnyx_event,
            variables_for=self._variables_for,
            on_transfer_status=self._on_transfer_status,
            route_call=self._admit,
        )

    async def _admit(self, event: IncomingCall | TelnyxEvent) -> bool:
        """Before answering: ``route`` (False refuses the call), then a warm start."""
        if self.router is not None and not await self.router.admit(event):
            return False
        call, hooks = routed_call(event), self.hooks
        agent = self.router.agent_for(str(call["call_id"])) if call and self.router else self.agent
        if call and agent.prewarm and can_prewarm(agent.provider) and not hooks.on_call_start:
            factory = self._factory(agent)
            if self.background is not None:
                self.prewarm.begin(self.background, call, agent, factory, guard=self.guard)
        return True

    def _factory(self, agent: Agent) -> Callable[[CallInfo], ProviderSession]:
        handler = self.hooks.on_message is not None
        return make_session_factory(
            agent, self.providers, use_handler=handler, entropy=self._entropy
        )

    def expect_outbound(
        self,
        call_id: str,
        agent: Agent | None,
        voicemail_message: str | None,
        variables: Mapping[str, str] | None = None,
    ) -> None:
        """Remember per-call settings of an outbound call until its stream starts."""
        if len(self._outbound) >= _MAX_PENDING_OUTBOUND:
            self._outbound.pop(next(iter(self._outbound)))
        self._outbound[call_id] = _Outbound(
            agent=agent, voicemail_message=voicemail_message, variables=dict(variables or {})
        )

    def _variables_for(self, call_id: str) -> Mapping[str, str]:
        pending = self._outbound.get(call_id)
        return pending.variables if pending is not None else {}

    async def handle_stream(self, ws: WebSocket, req: StreamRequest) -> None:
        """One media stream, start to end."""
        # Looked up, not taken: a stream that fails its token check must not
        # use up the settings of the real call.
        outbound = self._outbound.get(req.call_id)
        agent = outbound.agent if outbound else None
        if agent is None:  # the calls we place are not routed
            agent = self.router.agent_for(req.call_id) if self.router and not outbound else None
        agent = agent or self.agent
        voicemail = self._voicemail_for(req.call_id)
        stream: TwilioMediaStream | TelnyxMediaStream
        control: TwilioControl | TelnyxControl | None
        if req.carrier == "twilio":
            stream = TwilioMediaStream()
            control = (
                TwilioControl(
                    self.twilio,
                    self.carriers.webhook_host,
                    self.twilio_flow,
                    self.carriers.phone_number,
                )
                if self.twilio
                else None
            )
        else:
            # Replies go in the codec the stream was started with, whatever
            # Telnyx falls back to for what it sends us.
            flow = self.telnyx_flow
            stream = TelnyxMediaStream(
                l16_byte_order="little"
                if self.carriers.telnyx_l16_byte_order == "little"
                else "big",
                bidirectional_codec=flow.codec if flow else None,
                bidirectional_sampling_rate=flow.sampling_rate if flow else 8000,
                decoders=self._decoders,
            )
            control = (
                TelnyxControl(
                    self.telnyx, self.telnyx_flow, self.telnyx_warm, self.carriers.phone_number
                )
                if self.telnyx is not None and self.telnyx_flow is not None
                else None
            )
        config = BridgeConfig(
            instructions=agent.system_prompt,
            first_message=agent.first_message,
            first_message_native=greets_natively(agent.provider),
            tools=tuple(tool.spec for tool in agent.tools),
            end_call_tool=agent.end_call_tool,
            transfer_allowlist=frozenset(agent.transfer_allowlist),
            record=self.recording and control is not None,
            voicemail_message=voicemail or "",
            start_timeout_seconds=self.timeouts.start,
            media_timeout_seconds=self.timeouts.media,
            provider_timeout_seconds=agent.provider_timeout,
            error_message=agent.error_message,
            provider_max_duration=agent.provider_max_duration,
            **per_call_options(agent, awaits_overrides=self.hooks.on_call_start is not None),
        )
        recorder = StereoRecorder() if self.local_recording is not None else None
        runner_of_call: list[CallRunner] = []
        bridge = CallBridge(
            recorder=recorder,
            stream=stream,
            carrier=req.carrier,
            session_factory=self.prewarm.factory(self._factory(agent), runner_of_call),
            verify_token=self._admit_stream,
            config=config,
            control=control,
            stream_token=req.header("x-telnyx-streaming-auth-token"),
            expected_call_id=req.call_id,
            opened_at=self._clock.monotonic(),
        )
        call_hooks = self.hooks
        if agent.tools:
            merged = dict(self.hooks.tools)
            merged.update(
                tool_handlers(
                    {tool.name: tool.handler for tool in agent.tools}, self.webhook_secret
                )
            )
            call_hooks = _replace_tools(self.hooks, merged)
        # An outbound call placed here: its on_call_end payload (reason,
        # transcript) becomes part of its CallResult.
        call_end: list[Mapping[str, Any]] = []
        if self.outcomes.stream_started(req.call_id):
            call_hooks = dataclasses.replace(
                call_hooks, on_call_end=partial(_record_call_end, call_end, call_hooks.on_call_end)
            )
        runner = CallRunner(
            bridge,
            ws,
            call_hooks,
            clock=self._clock,
            carrier_retry=self.carriers.telnyx_retry if req.carrier == "telnyx" else None,
            observer=self._observer(agent),
            guard=self.guard,
            recording=RecordingWriter(self.local_recording, recorder, name=req.call_id)
            if self.local_recording is not None and recorder is not None
            else None,
        )
        runner_of_call.append(runner)  # a warm session's socket goes to it
        self.live.setdefault(req.call_id, []).append(runner)
        try:
            await runner.run()
        finally:
            self.outcomes.stream_ended(req.call_id, call_end[-1] if call_end else None)
            runners = self.live.get(req.call_id, [])
            if runner in runners:
                runners.remove(runner)
            if not runners:
                self.live.pop(req.call_id, None)
            if bridge.accepted:
                self._outbound.pop(req.call_id, None)
                if self.router is not None:
                    self.router.forget(req.call_id)
                self.admission.release(req.call_id, self._clock.wall())

    def _admit_stream(self, token: str, call_id: str, now: float) -> None:
        """The bridge's token check: ``now`` is its monotonic clock, a token's
        expiry is wall-clock time (it was issued, maybe on another machine,
        at the webhook), so the check reads the wall clock."""
        self.admission.admit(token, call_id, self._clock.wall())

    def _observer(self, agent: Agent) -> Callable[[str, Mapping[str, object], float], None] | None:
        """What the runner hands each call event to: the monitor, told the agent."""
        monitor = self.monitor
        if monitor is None:
            return None

        def observe(name: str, payload: Mapping[str, object], now: float) -> None:
            if name == "on_call_start":
                payload = {**payload, "agent": agent.provider}
            monitor.observe(name, payload, now)

        return observe

    async def end_all(self) -> None:
        """End every live call of this process (server shutdown), each once."""
        runners = [runner for runners in self.live.values() for runner in runners]
        async with anyio.create_task_group() as tg:
            for runner in runners:
                tg.start_soon(runner.shutdown)

    # -- webhook hooks ----------------------------------------------------------------

    async def _on_call_status(self, status: CallStatusCallback) -> None:
        await self.outcomes.twilio_status(status)

    async def _on_transfer_status(self, caller_sid: str, status: CallStatusCallback) -> None:
        if self.twilio is None or not self.carriers.webhook_host:
            return
        warm = TwilioWarmTransfer(self.twilio, webhook_host=self.carriers.webhook_host)
        await self._warm_step(caller_sid, warm.on_person_status(caller_sid, status))

    async def _warm_step(self, caller_id: str, follow_up: TransferFollowUp) -> None:
        """Carry out a warm transfer's next step (the flows decide it)."""
        retry = self.carriers.telnyx_retry if self.telnyx_warm is not None else None
        for purpose, request in follow_up.requests:
            await send_rest(request, purpose, retry=retry)
        if follow_up.step is TransferStep.TELL_AGENT:
            started = [r for r in self.live.get(caller_id, ()) if r.started]
            if started:
                await started[-1].tell_agent(follow_up.note)
            else:
                log.info("warm transfer of %s failed, and its call is not here", caller_id)

    async def _on_recording_status(self, recording: RecordingStatusCallback) -> None:
        log.info(
            "recording %s of call %s is %s",
            recording.recording_sid,
            recording.call_sid,
            recording.recording_status,
        )

    async def _on_amd_result(self, amd: AmdCallback) -> None:
        await self.outcomes.twilio_amd(amd)
        # Answered at once, acted on in the background: Twilio times a
        # webhook out after 15 s (error 11205), and the REST fallback below
        # may take that long by itself.
        work = partial(self._machine_answered, amd.call_sid, amd.answered_by, carrier="twilio")
        if self.background is not None:
            self.background.start_soon(work)
        else:
            await work()

    async def _machine_answered(self, call_id: str, answered_by: str, *, carrier: str) -> None:
        started = [r for r in self.live.get(call_id, ()) if r.started]
        if started:
            await started[-1].amd_result(answered_by)
            return
        # The stream lives in another process (or never started): the drop
        # needs no state, so the carrier says it (the flows decide how).
        message = self._voicemail_for(call_id)
        retry = None
        if carrier == "twilio":
            requests = self.twilio_flow.amd_without_stream(call_id, answered_by, message)
        elif self.telnyx_flow is not None:
            requests = self.telnyx_flow.amd_without_stream(call_id, answered_by, message)
            retry = self.carriers.telnyx_retry
        else:
            return
        for purpose, req in requests:
            await send_rest(req, purpose, retry=retry)

    def _voicemail_for(self, call_id: str) -> str | None:
        """The message for ``call_id``'s answering machine: an outbound call
        placed here with its own message (still in ``_outbound``) over the default."""
        pending = self._outbound.get(call_id)
        if pending is not None and pending.voicemail_message is not None:
            return pending.voicemail_message
        return self.voicemail_message

    async def _on_telnyx_event(self, event: TelnyxEvent) -> None:
        # Answer the webhook at once and send the REST commands it calls for
        # in the background: a slow Call Control API must not make Telnyx
        # time the webhook out and deliver it again.
        await self.outcomes.telnyx_event(event)
        if self.background is not None:
            self.background.start_soon(self._telnyx_event, event)
        else:
            await self._telnyx_event(event)

    async def _telnyx_event(self, event: TelnyxEvent) -> None:
        if self.telnyx_flow is None:
            log.warning("Telnyx %s received but TELNYX_API_KEY is not set", event.event_type)
            return
        caller_id = warm_leg_caller(event.client_state)
        if caller_id is not None and self.telnyx_warm is not None:
            await self._warm_step(caller_id, self.telnyx_warm.on_event(event))
            return
        call_id = event.call_control_id
        if call_id and not await self._admit(event):
            follow_up = self.telnyx_flow.reject(call_id)  # route chose no agent
        else:
            variables = self._variables_for(call_id or "")
            follow_up = self.telnyx_flow.on_event(event, self._clock.wall(), variables=variables)
        if follow_up.problem:
            log.error("%s", follow_up.problem)
        if follow_up.ignored:
            log.info("Telnyx webhook ignored: %s", follow_up.ignored)
        for purpose, req in follow_up.requests:
            await send_rest(req, purpose, retry=self.carriers.telnyx_retry)
        if follow_up.answered_by and event.call_control_id:
            await self._machine_answered(
                event.call_control_id, follow_up.answered_by, carrier="telnyx"
            )


async def _record_call_end(
    out: list[Mapping[str, Any]], callback: Callable[..., Any] | None, payload: dict[str, Any]
) -> None:
    out.append(dict(payload))
    if callback is not None:
        await maybe_await(callback(payload))


def _replace_tools(hooks: CallHooks, tools: Mapping[str, Any]) -> CallHooks:
    from dataclasses import replace

    return replace(hooks, tools=tools)
