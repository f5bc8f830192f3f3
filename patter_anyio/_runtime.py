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

import datetime
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import anyio.abc

from patter_core import Entropy
from patter_core.bridge import BridgeConfig, CallBridge, CallInfo, offered_tools
from patter_core.http import HttpRequest
from patter_core.media import TelnyxMediaStream, TwilioMediaStream
from patter_core.providers import (
    ProviderSession,
)
from patter_core.providers._models import (
    DEEPGRAM_STT_MODEL,
    ELEVENLABS_TTS_MODEL,
    LLM_MODEL,
    OPENAI_STT_MODEL,
    OPENAI_TTS_MODEL,
    REALTIME_MODEL,
    REALTIME_TRANSCRIPTION_MODEL,
    model_warnings,
)
from patter_core.webhooks import (
    AmdCallback,
    CallStatusCallback,
    IncomingCall,
    RecordingStatusCallback,
    RetryPolicy,
    StreamAdmission,
    StreamTokens,
    TelnyxCallFlow,
    TelnyxEvent,
    TelnyxRest,
    TwilioCallFlow,
    TwilioRest,
    dial_twiml,
    is_machine_end,
    routed_call,
)

from ._agent import Agent, per_call_options
from ._app import WebhookHooks
from ._call import CallHooks, CallRunner
from ._codecs import optional_decoders
from ._httpclient import ClientError, request_with_retry
from ._prewarm import Prewarm
from ._routing import Router
from ._server import StreamRequest
from ._sessions import make_session_factory
from ._websocket import WebSocket

__all__ = [
    "CarrierSettings",
    "LocalRuntime",
    "ProviderSettings",
    "StreamTimeouts",
    "configured_models",
    "elevenlabs_tools_notice",
    "start_notices",
]

log = logging.getLogger("patter_anyio.runtime")

# Carrier REST answers are small JSON documents.
_MAX_REST_BYTES = 1024 * 1024
# Outbound-call overrides waiting for their stream; a dialler that never gets
# its calls answered must not grow this without bound.
_MAX_PENDING_OUTBOUND = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class CarrierSettings:
    """Carrier accounts and the public host they reach us on."""

    webhook_host: str | None = None
    phone_number: str | None = None
    twilio_sid: str | None = None
    twilio_token: str | None = field(default=None, repr=False)
    telnyx_key: str | None = field(default=None, repr=False)
    telnyx_public_key: str | None = None
    telnyx_connection_id: str | None = None
    #: "PCMU" (default: G.711 both ways, certain on every leg) or "L16" (16 kHz).
    telnyx_codec: str = "PCMU"
    #: [R] PROTOCOLS.md §4.4: L16 byte order unverified; big-endian per RFC 3551.
    telnyx_l16_byte_order: str = "big"
    twilio_api_base_url: str = "https://api.twilio.com"
    telnyx_api_base_url: str = "https://api.telnyx.com/v2"
    #: Telnyx commands carry a command_id, so a 5xx or a lost connection is retried.
    telnyx_retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamTimeouts:
    """How long a media stream may go without ``start``, and a call without media."""

    #: Seconds from the upgrade to a valid ``start`` (pings do not count).
    start: float = 10.0
    #: Seconds a started call may go without media (carriers send it
    #: continuously, silence included).
    media: float = 15.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSettings:
    """AI provider keys and endpoints."""

    openai_key: str | None = field(default=None, repr=False)
    elevenlabs_key: str | None = field(default=None, repr=False)
    elevenlabs_agent_id: str | None = None
    deepgram_key: str | None = field(default=None, repr=False)
    openai_base_url: str = "https://api.openai.com/v1"
    elevenlabs_base_url: str = "https://api.elevenlabs.io"
    deepgram_base_url: str = "wss://api.deepgram.com"


def missing_settings(agent: Agent, providers: ProviderSettings, *, handler: bool) -> str | None:
    """Why ``agent`` cannot run with these keys, or None when it can."""
    if agent.provider == "openai" and not providers.openai_key:
        return "provider openai needs an OpenAI key (OPENAI_API_KEY)"
    if agent.provider == "elevenlabs" and not (agent.agent_id or providers.elevenlabs_agent_id):
        return "provider elevenlabs needs an agent id (ELEVENLABS_AGENT_ID)"
    if agent.provider == "pipeline":
        stt = agent.stt or ("deepgram" if providers.deepgram_key else "openai")
        tts = agent.tts or ("elevenlabs" if providers.elevenlabs_key else "openai")
        if stt == "deepgram" and not providers.deepgram_key:
            return "pipeline speech-to-text with Deepgram needs DEEPGRAM_API_KEY"
        if tts in ("elevenlabs", "elevenlabs-ws") and not providers.elevenlabs_key:
            return "pipeline text-to-speech with ElevenLabs needs ELEVENLABS_API_KEY"
        needs_openai = stt == "openai" or tts == "openai" or not handler
        if needs_openai and not providers.openai_key:
            return (
                "pipeline needs OPENAI_API_KEY (speech or the LLM; give on_message to skip the LLM)"
            )
    return None


def configured_models(
    agent: Agent, providers: ProviderSettings, *, handler: bool
) -> list[tuple[str, str]]:
    """``(role, model)`` for every model a call of ``agent`` will name on the wire."""
    if agent.provider == "openai":
        return [
            ("openai realtime", agent.model or REALTIME_MODEL),
            ("openai realtime transcription", REALTIME_TRANSCRIPTION_MODEL),
        ]
    if agent.provider != "pipeline":
        return []  # ElevenLabs: the agent's models are set in its dashboard
    stt = agent.stt or ("deepgram" if providers.deepgram_key else "openai")
    tts = agent.tts or ("elevenlabs" if providers.elevenlabs_key else "openai")
    models = [
        ("pipeline speech-to-text", DEEPGRAM_STT_MODEL if stt == "deepgram" else OPENAI_STT_MODEL),
        ("pipeline text-to-speech", OPENAI_TTS_MODEL if tts == "openai" else ELEVENLABS_TTS_MODEL),
    ]
    if not handler:
        models.append(("pipeline llm", agent.model or LLM_MODEL))
    return models


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


class TwilioControl:
    """:class:`~patter_core.bridge.CarrierControl` over Twilio's REST API."""

    def __init__(self, rest: TwilioRest, webhook_host: str | None, flow: TwilioCallFlow) -> None:
        self._rest = rest
        self._host = webhook_host
        self._flow = flow

    def leave_message(self, call_id: str, text: str) -> HttpRequest | None:
        return self._flow.leave_message(call_id, text)

    def hangup(self, call_id: str) -> HttpRequest | None:
        return self._rest.hang_up(call_id)

    def transfer(self, call_id: str, target: str) -> HttpRequest | None:
        return self._rest.update_call_twiml(call_id, dial_twiml(target))

    def start_recording(self, call_id: str) -> HttpRequest | None:
        callback = f"https://{self._host}/webhooks/twilio/recording" if self._host else None
        return self._rest.start_recording(call_id, recording_status_callback=callback)


class TelnyxControl:
    """:class:`~patter_core.bridge.CarrierControl` over Telnyx Call Control."""

    def __init__(self, rest: TelnyxRest, flow: TelnyxCallFlow) -> None:
        self._rest = rest
        self._flow = flow

    def hangup(self, call_id: str) -> HttpRequest | None:
        return self._rest.hangup(call_id)

    def transfer(self, call_id: str, target: str) -> HttpRequest | None:
        return self._rest.transfer(call_id, to=target)

    def start_recording(self, call_id: str) -> HttpRequest | None:
        return self._rest.record_start(call_id)

    def leave_message(self, call_id: str, text: str) -> HttpRequest | None:
        # speak, marked so that its call.speak.ended hangs up (the flow).
        (_, request), = self._flow.voicemail_drop(call_id, text).requests
        return request


@dataclass(slots=True)
class _Outbound:
    agent: Agent | None
    voicemail_message: str | None


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
        clock: Callable[[], float] = time.time,
        router: Router | None = None,
    ) -> None:
        self.agent = agent
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
        self.twilio = (
            TwilioRest(
                carriers.twilio_sid, carriers.twilio_token, base_url=carriers.twilio_api_base_url
            )
            if carriers.twilio_sid and carriers.twilio_token
            else None
        )
        self.twilio_flow = TwilioCallFlow(
            self.tokens, webhook_host=carriers.webhook_host, rest=self.twilio
        )
        self.telnyx = (
            TelnyxRest(carriers.telnyx_key, base_url=carriers.telnyx_api_base_url)
            if carriers.telnyx_key
            else None
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
        #: Where webhook follow-up work runs (set by the server's owner);
        #: without one it runs before the webhook is answered.
        self.background: anyio.abc.TaskGroup | None = None
        #: Live streams of this process, by carrier call id. A list: a second
        #: connection for the same id (a retry, or someone guessing ids) must
        #: not displace the call that passed its token check.
        self.live: dict[str, list[CallRunner]] = {}
        self._outbound: dict[str, _Outbound] = {}
        #: Provider sessions opened at the webhook, until their stream starts.
        self.prewarm = Prewarm(clock=clock)
        # Codecs beyond G.711/L16 a Telnyx fallback may stream (optional packages).
        self._decoders = optional_decoders()

    # -- the pieces the server takes ---------------------------------------------

    def webhook_hooks(self) -> WebhookHooks:
        return WebhookHooks(
            on_call_status=self._on_call_status,
            on_recording_status=self._on_recording_status,
            on_amd_result=self._on_amd_result,
            on_telnyx_event=self._on_telnyx_event,
            route_call=self._admit,
        )

    async def _admit(self, event: IncomingCall | TelnyxEvent) -> bool:
        """Before answering: ``route`` (False refuses the call), then a warm start."""
        if self.router is not None and not await self.router.admit(event):
            return False
        call, hooks = routed_call(event), self.hooks
        agent = self.router.agent_for(str(call["call_id"])) if call and self.router else self.agent
        if call and agent.prewarm and agent.provider == "openai" and not hooks.on_call_start:
            factory = self._factory(agent)
            if self.background is not None:
                self.prewarm.begin(self.background, call, agent, factory)
        return True

    def _factory(self, agent: Agent) -> Callable[[CallInfo], ProviderSession]:
        handler = self.hooks.on_message is not None
        return make_session_factory(agent, self.providers, use_handler=handler, entropy=self._entropy)

    def expect_outbound(
        self, call_id: str, agent: Agent | None, voicemail_message: str | None
    ) -> None:
        """Remember per-call settings of an outbound call until its stream starts."""
        if len(self._outbound) >= _MAX_PENDING_OUTBOUND:
            self._outbound.pop(next(iter(self._outbound)))
        self._outbound[call_id] = _Outbound(agent=agent, voicemail_message=voicemail_message)

    async def handle_stream(self, ws: WebSocket, req: StreamRequest) -> None:
        """One media stream, start to end."""
        # Looked up, not taken: a stream that fails its token check must not
        # use up the settings of the real call.
        outbound = self._outbound.get(req.call_id)
        agent = outbound.agent if outbound else None
        if agent is None:  # the calls we place are not routed
            agent = self.router.agent_for(req.call_id) if self.router and not outbound else None
        agent = agent or self.agent
        voicemail = (
            outbound.voicemail_message
            if outbound and outbound.voicemail_message is not None
            else self.voicemail_message
        )
        stream: TwilioMediaStream | TelnyxMediaStream
        control: TwilioControl | TelnyxControl | None
        if req.carrier == "twilio":
            stream = TwilioMediaStream()
            control = (
                TwilioControl(self.twilio, self.carriers.webhook_host, self.twilio_flow)
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
                TelnyxControl(self.telnyx, self.telnyx_flow)
                if self.telnyx is not None and self.telnyx_flow is not None
                else None
            )
        config = BridgeConfig(
            instructions=agent.system_prompt,
            first_message=agent.first_message,
            # Realtime sessions and the pipeline greet by themselves; the echo
            # agent is handed a Say by the bridge.
            first_message_native=agent.provider != "echo",
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
        runner_of_call: list[CallRunner] = []
        bridge = CallBridge(
            stream=stream,
            carrier=req.carrier,
            session_factory=self.prewarm.factory(self._factory(agent), runner_of_call),
            verify_token=self.admission.admit,
            config=config,
            control=control,
            stream_token=req.header("x-telnyx-streaming-auth-token"),
            expected_call_id=req.call_id,
            opened_at=self._clock(),
        )
        call_hooks = self.hooks
        if agent.tools:
            merged = dict(self.hooks.tools)
            merged.update({tool.name: tool.handler for tool in agent.tools})
            call_hooks = _replace_tools(self.hooks, merged)
        runner = CallRunner(
            bridge,
            ws,
            call_hooks,
            clock=self._clock,
            carrier_retry=self.carriers.telnyx_retry if req.carrier == "telnyx" else None,
        )
        runner_of_call.append(runner)  # a warm session's socket goes to it
        self.live.setdefault(req.call_id, []).append(runner)
        try:
            await runner.run()
        finally:
            runners = self.live.get(req.call_id, [])
            if runner in runners:
                runners.remove(runner)
            if not runners:
                self.live.pop(req.call_id, None)
            if bridge.accepted:
                self._outbound.pop(req.call_id, None)
                if self.router is not None:
                    self.router.forget(req.call_id)
                self.admission.release(req.call_id, self._clock())

    async def end_all(self) -> None:
        """End every live call of this process (server shutdown), each once."""
        runners = [runner for runners in self.live.values() for runner in runners]
        async with anyio.create_task_group() as tg:
            for runner in runners:
                tg.start_soon(runner.shutdown)

    # -- webhook hooks ----------------------------------------------------------------

    async def _on_call_status(self, status: CallStatusCallback) -> None:
        log.info("call %s is %s", status.call_sid, status.call_status)

    async def _on_recording_status(self, recording: RecordingStatusCallback) -> None:
        log.info(
            "recording %s of call %s is %s",
            recording.recording_sid,
            recording.call_sid,
            recording.recording_status,
        )

    async def _on_amd_result(self, amd: AmdCallback) -> None:
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
        # needs no state, so say it with TwiML through the REST API. An
        # outbound call placed here with its own message still waits in
        # _outbound: that message wins over the default.
        pending = self._outbound.get(call_id)
        message = self.voicemail_message
        if pending is not None and pending.voicemail_message is not None:
            message = pending.voicemail_message
        if carrier == "twilio":
            follow_up = self.twilio_flow.amd_without_stream(call_id, answered_by, message)
            if follow_up is not None:
                await self.send_rest(follow_up[1], follow_up[0])
        elif message and is_machine_end(answered_by) and self.telnyx_flow is not None:
            # speak, then hang up on its call.speak.ended (the flow decides).
            for purpose, req in self.telnyx_flow.voicemail_drop(call_id, message).requests:
                await self.send_rest(req, purpose, retry=self.carriers.telnyx_retry)

    async def _on_telnyx_event(self, event: TelnyxEvent) -> None:
        # Answer the webhook at once and send the REST commands it calls for
        # in the background: a slow Call Control API must not make Telnyx
        # time the webhook out and deliver it again.
        if self.background is not None:
            self.background.start_soon(self._telnyx_event, event)
        else:
            await self._telnyx_event(event)

    async def _telnyx_event(self, event: TelnyxEvent) -> None:
        if self.telnyx_flow is None:
            log.warning("Telnyx %s received but TELNYX_API_KEY is not set", event.event_type)
            return
        call_id = event.call_control_id
        if call_id and not await self._admit(event):
            follow_up = self.telnyx_flow.reject(call_id)  # route chose no agent
        else:
            follow_up = self.telnyx_flow.on_event(event, self._clock())
        if follow_up.problem:
            log.error("%s", follow_up.problem)
        if follow_up.ignored:
            log.info("Telnyx webhook ignored: %s", follow_up.ignored)
        for purpose, req in follow_up.requests:
            await self.send_rest(req, purpose, retry=self.carriers.telnyx_retry)
        if follow_up.answered_by and event.call_control_id:
            await self._machine_answered(
                event.call_control_id, follow_up.answered_by, carrier="telnyx"
            )

    async def send_rest(
        self, req: HttpRequest, purpose: str, *, retry: RetryPolicy | None = None
    ) -> tuple[int, bytes] | None:
        """Send a carrier command; ``retry`` for commands that are safe to repeat."""
        try:
            response = await request_with_retry(
                req,
                retry or RetryPolicy(max_attempts=1),
                timeout=15.0,
                max_response_bytes=_MAX_REST_BYTES,
            )
        except ClientError as exc:
            log.warning("carrier %s request failed: %s", purpose, exc)
            return None
        if response.status >= 300:
            log.warning(
                "carrier %s request answered %d: %s",
                purpose,
                response.status,
                response.body[:200].decode("utf-8", "replace"),
            )
        return response.status, response.body


def _replace_tools(hooks: CallHooks, tools: Mapping[str, Any]) -> CallHooks:
    from dataclasses import replace

    return replace(hooks, tools=tools)
