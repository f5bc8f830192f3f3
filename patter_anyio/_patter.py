"""The Python API: ``Patter(mode="local", ...)``, ``agent()``, ``serve()``, ``call()``.

::

    phone = Patter(mode="local", twilio_sid=..., twilio_token=..., openai_key=...,
                   phone_number="+15550001111", webhook_url="abc.ngrok.app")
    agent = phone.agent(system_prompt="You are a friendly receptionist.",
                        first_message="Hello! How can I help?", provider="openai")
    anyio.run(phone.serve, agent)          # asyncio or trio

Every option is checked when it is given, so a mistake is a clear
:class:`InvalidOption` (a ``ValueError``) before any socket is opened.
"""

from __future__ import annotations

import datetime
import logging
import secrets
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import anyio
import anyio.abc

from patter_core import PatterError
from patter_core.http import ServerLimits
from patter_core.webhooks import (
    AMD_DIAL_MODE,
    DEFAULT_MACHINE_DETECTION_TIMEOUT,
    CarrierApiError,
    StreamTokens,
    TelnyxRest,
    TwilioCallFlow,
    TwilioRest,
    TwilioSignatureValidator,
    leg_client_state,
    machine_detection_timeout_problem,
    parse_telnyx_response,
    parse_twilio_call,
    voicemail_problem,
)

from ._agent import PROVIDER_NAMES, Agent, InvalidOption, Tool, as_tools, check_seconds
from ._app import WebhookApp
from ._call import CallHooks
from ._config import ConfigError, normalise_webhook_host
from ._routing import ROUTE_TIMEOUT, Router
from ._runtime import (
    CarrierSettings,
    LocalRuntime,
    ProviderSettings,
    StreamTimeouts,
    missing_settings,
    start_notices,
)
from ._server import Server

__all__ = ["Patter"]

log = logging.getLogger("patter_anyio")


def _check_port(port: int | None) -> None:
    if port is None:
        return  # an ephemeral port, for tests and embedding
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidOption(f"port must be an integer in 1-65535, not {port!r}")


def _check_agent_text(**fields: object) -> None:
    for name, value in fields.items():
        optional = name not in ("system_prompt", "first_message")
        if not (isinstance(value, str) or (optional and value is None)):
            kind = "text or None" if optional else "text"
            raise InvalidOption(f"{name} must be {kind}, not {type(value).__name__}")


def _check_signing_keys(keys: object, host: str | None) -> dict[str, str]:
    if keys is None:
        return {}
    if not isinstance(keys, Mapping):
        raise InvalidOption("twilio_signing_keys must be a dict of key id to secret")
    if keys and host is None:
        raise InvalidOption("twilio_signing_keys need webhook_url: signatures cover the public URL")
    if keys:
        try:
            TwilioSignatureValidator(None, shared_keys=keys)
        except PatterError as exc:
            raise InvalidOption(f"twilio_signing_keys: {exc}") from None
    return dict(keys)


def _check_callback(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise InvalidOption(f"{name} must be callable, not {type(value).__name__}")


class Patter:
    """One phone line (or several), served locally."""

    def __init__(
        self,
        mode: str = "local",
        *,
        twilio_sid: str | None = None,
        twilio_token: str | None = None,
        telnyx_key: str | None = None,
        telnyx_public_key: str | None = None,
        telnyx_connection_id: str | None = None,
        openai_key: str | None = None,
        elevenlabs_key: str | None = None,
        elevenlabs_agent_id: str | None = None,
        deepgram_key: str | None = None,
        phone_number: str | None = None,
        webhook_url: str | None = None,
        openai_base_url: str = "https://api.openai.com/v1",
        elevenlabs_base_url: str = "https://api.elevenlabs.io",
        deepgram_base_url: str = "wss://api.deepgram.com",
        twilio_api_base_url: str = "https://api.twilio.com",
        telnyx_api_base_url: str = "https://api.telnyx.com/v2",
        stream_secret: str | None = None,
        telnyx_codec: str = "PCMU",
        twilio_signing_keys: Mapping[str, str] | None = None,
    ) -> None:
        if mode != "local":
            raise InvalidOption(f"only mode='local' is available here, not {mode!r}")
        if bool(twilio_sid) != bool(twilio_token):
            raise InvalidOption("twilio_sid and twilio_token go together")
        if telnyx_codec not in ("PCMU", "L16"):
            raise InvalidOption(f"telnyx_codec must be 'PCMU' or 'L16', not {telnyx_codec!r}")
        try:
            host = normalise_webhook_host(webhook_url) if webhook_url else None
        except ConfigError:
            # The CLI's wording names its flag; the API names the argument.
            raise InvalidOption(
                f"webhook_url must be a public host such as abc.ngrok.app, not {webhook_url!r}"
            ) from None
        self._twilio_signing_keys = _check_signing_keys(twilio_signing_keys, host)
        if stream_secret is not None and (
            not isinstance(stream_secret, str)
            or any(len(part) < 16 for part in stream_secret.split(","))
        ):
            raise InvalidOption(
                "stream_secret must be at least 16 characters "
                "(several: comma-separated, newest first)"
            )
        for name, url in (
            ("openai_base_url", openai_base_url),
            ("elevenlabs_base_url", elevenlabs_base_url),
            ("twilio_api_base_url", twilio_api_base_url),
            ("telnyx_api_base_url", telnyx_api_base_url),
        ):
            if not url.startswith(("http://", "https://")):
                raise InvalidOption(f"{name} must start with http:// or https://: {url!r}")
        if not deepgram_base_url.startswith(("http://", "https://", "ws://", "wss://")):
            raise InvalidOption(
                f"deepgram_base_url must be an http(s) or ws(s) URL: {deepgram_base_url!r}"
            )
        self.carriers = CarrierSettings(
            webhook_host=host,
            phone_number=phone_number,
            twilio_sid=twilio_sid,
            twilio_token=twilio_token,
            telnyx_key=telnyx_key,
            telnyx_public_key=telnyx_public_key,
            telnyx_connection_id=telnyx_connection_id,
            telnyx_codec=telnyx_codec,
            twilio_api_base_url=twilio_api_base_url.rstrip("/"),
            telnyx_api_base_url=telnyx_api_base_url.rstrip("/"),
        )
        self.providers = ProviderSettings(
            openai_key=openai_key,
            elevenlabs_key=elevenlabs_key,
            elevenlabs_agent_id=elevenlabs_agent_id,
            deepgram_key=deepgram_key,
            openai_base_url=openai_base_url.rstrip("/"),
            elevenlabs_base_url=elevenlabs_base_url.rstrip("/"),
            deepgram_base_url=deepgram_base_url.rstrip("/"),
        )
        self._secret = (stream_secret or secrets.token_urlsafe(32)).encode("utf-8")
        self._secret_generated = stream_secret is None
        self._runtime: LocalRuntime | None = None
        self._server: Server | None = None

    # -- agents --------------------------------------------------------------------

    def agent(
        self,
        *,
        system_prompt: str = "",
        voice: str | None = None,
        model: str | None = None,
        first_message: str = "",
        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
        provider: str | None = None,
        language: str | None = None,
        transfer_allowlist: Sequence[str] = (),
        end_call_tool: bool = True,
        agent_id: str | None = None,
        stt: str | None = None,
        tts: str | None = None,
        provider_timeout: float = 5.0,
        error_message: str = "",
        turn_detection: str = "server_vad",
        noise_reduction: str | None = "near_field",
        reasoning_effort: str | None = None,
        parallel_tool_calls: bool | None = None,
        provider_max_duration: float | None = None,
        silence_timeout: float | None = None,
        silence_message: str = "Are you still there?",
        silence_reprompts: int = 1,
        max_duration: float | None = 3600.0,
        first_message_interruptible: bool = True,
        barge_in_min_ms: int = 0,
        prewarm: bool = True,
    ) -> Agent:
        """Describe the agent; ``provider`` defaults to openai with an OpenAI key, else echo."""
        if provider is None:
            provider = "openai" if self.providers.openai_key else "echo"
        if provider not in PROVIDER_NAMES:
            raise InvalidOption(
                f"provider must be one of {', '.join(PROVIDER_NAMES)}, not {provider!r}"
            )
        if stt not in (None, "deepgram", "openai"):
            raise InvalidOption(f"stt must be 'deepgram' or 'openai', not {stt!r}")
        if tts not in (None, "elevenlabs", "elevenlabs-ws", "openai"):
            raise InvalidOption(
                f"tts must be 'elevenlabs', 'elevenlabs-ws' or 'openai', not {tts!r}"
            )
        _check_agent_text(
            system_prompt=system_prompt,
            first_message=first_message,
            voice=voice,
            model=model,
            language=language,
            agent_id=agent_id,
        )
        # A lone string or dict would be iterated character by character or
        # key by key, giving a baffling error about one character.
        if isinstance(transfer_allowlist, str | bytes) or not isinstance(
            transfer_allowlist, Sequence
        ):
            raise InvalidOption("transfer_allowlist must be a list of phone numbers")
        if tools is not None and (
            isinstance(tools, str | bytes) or not isinstance(tools, Sequence)
        ):
            raise InvalidOption("tools must be a list of Tool values or dicts")
        agent = Agent(
            provider=provider,
            system_prompt=system_prompt,
            voice=voice,
            model=model,
            first_message=first_message,
            tools=as_tools(tools),
            language=language,
            transfer_allowlist=tuple(transfer_allowlist),
            end_call_tool=end_call_tool,
            agent_id=agent_id,
            stt=stt,  # type: ignore[arg-type]
            tts=tts,  # type: ignore[arg-type]
            provider_timeout=provider_timeout,
            error_message=error_message,
            turn_detection=turn_detection,  # type: ignore[arg-type]
            noise_reduction=noise_reduction,  # type: ignore[arg-type]
            reasoning_effort=reasoning_effort,
            parallel_tool_calls=parallel_tool_calls,
            provider_max_duration=provider_max_duration,
            silence_timeout=silence_timeout,
            silence_message=silence_message,
            silence_reprompts=silence_reprompts,
            max_duration=max_duration,
            first_message_interruptible=first_message_interruptible,
            barge_in_min_ms=barge_in_min_ms,
            prewarm=prewarm,
        )
        return agent

    # -- serving -------------------------------------------------------------------------

    def _runtime_for(
        self,
        agent: Agent,
        *,
        on_call_start: Callable[..., Any] | None,
        on_call_end: Callable[..., Any] | None,
        on_transcript: Callable[..., Any] | None,
        on_message: Callable[..., Any] | None,
        recording: bool,
        voicemail_message: str | None,
        timeouts: StreamTimeouts | None = None,
    ) -> LocalRuntime:
        if not isinstance(agent, Agent):
            raise InvalidOption("agent must come from phone.agent(...)")
        for name, value in (
            ("on_call_start", on_call_start),
            ("on_call_end", on_call_end),
            ("on_transcript", on_transcript),
            ("on_message", on_message),
        ):
            _check_callback(name, value)
        if on_message is not None and agent.provider != "pipeline":
            raise InvalidOption(
                "on_message is for provider='pipeline' (speech-to-text, your handler, "
                f"text-to-speech); a {agent.provider} agent answers by itself"
            )
        problem = missing_settings(agent, self.providers, handler=on_message is not None)
        if problem:
            raise InvalidOption(problem)
        twilio = bool(self.carriers.twilio_sid and self.carriers.twilio_token)
        if recording and not (twilio or self.carriers.telnyx_key):
            raise InvalidOption(
                "recording=True needs twilio_sid and twilio_token, or telnyx_key (a REST API)"
            )
        self._check_voicemail(voicemail_message)
        hooks = CallHooks(
            on_call_start=on_call_start,
            on_call_end=on_call_end,
            on_transcript=on_transcript,
            on_message=on_message,
            tools={tool.name: tool.handler for tool in agent.tools},
        )
        return LocalRuntime(
            agent=agent,
            carriers=self.carriers,
            providers=self.providers,
            hooks=hooks,
            stream_secret=self._secret,
            recording=recording,
            voicemail_message=voicemail_message,
            timeouts=timeouts,
        )

    def _check_voicemail(self, message: object) -> None:
        if message is not None and not isinstance(message, str):
            raise InvalidOption("voicemail_message must be text")
        if message and self.carriers.twilio_sid:
            problem = voicemail_problem(message)
            if problem:
                raise InvalidOption(problem)

    async def serve(
        self,
        agent: Agent | None = None,
        port: int | None = 8000,
        *,
        host: str = "127.0.0.1",
        on_call_start: Callable[..., Any] | None = None,
        on_call_end: Callable[..., Any] | None = None,
        on_transcript: Callable[..., Any] | None = None,
        on_message: Callable[..., Any] | None = None,
        recording: bool = False,
        voicemail_message: str | None = None,
        start_timeout: float = 10.0,
        media_timeout: float = 15.0,
        shutdown_grace: float = 30.0,
        handle_signals: bool = True,
        server: Server | None = None,
        route: Callable[[dict[str, Any]], Any] | None = None,
        route_timeout: float = ROUTE_TIMEOUT,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve calls until SIGINT/SIGTERM (or ``stop()``); reports the port to ``task_status``.

        ``port=None`` binds an ephemeral port (embedding, tests).
        ``start_timeout``: seconds a media stream may take to send its
        ``start``; ``media_timeout``: seconds a started call may go without
        media; ``shutdown_grace``: seconds live calls may go on after
        SIGTERM or ``stop()`` before they end as ``server_shutdown``.
        ``route(call)`` picks the agent of each incoming call before it is
        answered (an :class:`Agent`, or None to refuse it), within
        ``route_timeout`` seconds; sync or async.
        """
        _check_port(port)
        _check_callback("route", route)
        route_timeout = check_seconds("route_timeout", route_timeout)
        timeouts = StreamTimeouts(
            start=check_seconds("start_timeout", start_timeout),
            media=check_seconds("media_timeout", media_timeout),
        )
        grace = check_seconds("shutdown_grace", shutdown_grace)
        if agent is None:
            agent = self.agent()
        runtime = self._runtime_for(
            agent,
            on_call_start=on_call_start,
            on_call_end=on_call_end,
            on_transcript=on_transcript,
            on_message=on_message,
            recording=recording,
            voicemail_message=voicemail_message,
            timeouts=timeouts,
        )
        handler = on_message is not None
        if route is not None:
            runtime.router = Router(
                route,
                default=agent,
                timeout=route_timeout,
                problem=partial(missing_settings, providers=self.providers, handler=handler),
            )
        app = WebhookApp(
            stream_secret=self._secret,
            webhook_host=self.carriers.webhook_host,
            twilio_auth_token=self.carriers.twilio_token,
            twilio_signing_keys=self._twilio_signing_keys,
            telnyx_public_key=self.carriers.telnyx_public_key,
            hooks=runtime.webhook_hooks(),
            stream_handler=runtime.handle_stream,
        )
        if server is None:
            server = Server(
                app, host=host, port=port or 0, limits=ServerLimits(shutdown_grace=grace)
            )
        else:
            server.app = app
        server.end_calls = runtime.end_all
        for warning in app.startup_warnings():
            log.warning("%s", warning)
        today = datetime.datetime.now(datetime.UTC).date()
        for level, line in start_notices(agent, self.providers, handler=handler, today=today):
            log.log(level, "%s", line)
        if self._secret_generated:
            log.info("stream tokens use a per-process secret (set stream_secret to share it)")
        self._runtime = runtime
        self._server = server
        # A failed bind (port in use, bad host) is raised as the OSError
        # itself, not wrapped in the task group's exception group.
        bind_error: OSError | None = None
        try:
            async with anyio.create_task_group() as tg:
                runtime.background = tg
                if handle_signals and threading.current_thread() is threading.main_thread():
                    tg.start_soon(self._watch_signals, server, tg.cancel_scope)
                try:
                    await tg.start(server.serve)
                except OSError as exc:
                    bind_error = exc
                    tg.cancel_scope.cancel()
                else:
                    task_status.started(server.port)
                    await _wait_stopped(server)
                    tg.cancel_scope.cancel()
            if bind_error is not None:
                raise bind_error
        finally:
            self._runtime = None
            self._server = None

    async def _watch_signals(self, server: Server, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if server.stopping:
                    log.warning("second signal: ending live calls now")
                    server.stop(immediate=True)
                    return
                log.info("signal %d: finishing live calls, then stopping", signum)
                server.stop()

    def stop(self, *, immediate: bool = False) -> None:
        """Begin a graceful shutdown of a running ``serve()``: drain (503 to new
        calls, ``/health`` says "draining"), let live calls finish within
        ``shutdown_grace``, then end the rest as ``server_shutdown``.
        ``immediate`` ends the live calls at once (each ``on_call_end`` still
        fires)."""
        if self._server is not None:
            self._server.stop(immediate=immediate)

    shutdown = stop

    # -- outbound calls ---------------------------------------------------------------------

    async def call(
        self,
        to: str,
        agent: Agent | None = None,
        *,
        machine_detection: bool = False,
        voicemail_message: str | None = None,
        from_: str | None = None,
        machine_detection_timeout: int = DEFAULT_MACHINE_DETECTION_TIMEOUT,
    ) -> str:
        """Place an outbound call; returns the carrier's call id.

        The call's audio reaches the running ``serve()`` (Twilio fetches our
        TwiML; Telnyx streams once answered). With ``machine_detection``, an
        answering machine gets ``voicemail_message`` after its beep, then the
        call hangs up. ``machine_detection_timeout`` (seconds, 3-59, default
        45) is how long Twilio may listen to a greeting; a longer one comes
        back ``unknown`` and is then treated as over.
        """
        number = from_ or self.carriers.phone_number
        if not number:
            raise InvalidOption("an outbound call needs phone_number (or from_)")
        if not to:
            raise InvalidOption("an outbound call needs a number to call")
        host = self.carriers.webhook_host
        if not host:
            raise InvalidOption("an outbound call needs webhook_url: the carrier must reach us")
        if agent is not None and not isinstance(agent, Agent):
            raise InvalidOption("agent must come from phone.agent(...)")
        self._check_voicemail(voicemail_message)
        problem = machine_detection_timeout_problem(machine_detection_timeout)
        if problem:
            raise InvalidOption(problem)
        runtime = self._runtime
        if self.carriers.twilio_sid and self.carriers.twilio_token:
            rest = TwilioRest(
                self.carriers.twilio_sid,
                self.carriers.twilio_token,
                base_url=self.carriers.twilio_api_base_url,
            )
            flow = TwilioCallFlow(StreamTokens(self._secret), webhook_host=host, rest=rest)
            req = flow.create_call(
                to=to,
                from_=number,
                machine_detection=machine_detection,
                machine_detection_timeout=machine_detection_timeout,
            )
            response = await _send(req)
            call_id = parse_twilio_call(response).sid
        elif self.carriers.telnyx_key:
            if not self.carriers.telnyx_connection_id:
                raise InvalidOption("Telnyx outbound calls need telnyx_connection_id")
            rest_t = TelnyxRest(
                self.carriers.telnyx_key, base_url=self.carriers.telnyx_api_base_url
            )
            req = rest_t.dial(
                to=to,
                from_=number,
                connection_id=self.carriers.telnyx_connection_id,
                stream_url=None,
                stream_codec=None,
                stream_bidirectional_mode=None,
                stream_bidirectional_codec=None,
                stream_bidirectional_sampling_rate=None,
                answering_machine_detection=AMD_DIAL_MODE if machine_detection else None,
                webhook_url=f"https://{host}/webhooks/telnyx/voice",
                # Marks the leg as ours (only our legs are streamed); the
                # nonce keeps two dials to one number apart (command_id).
                client_state=leg_client_state(secrets.token_hex(8)),
            )
            response = await _send(req)
            telnyx_id = parse_telnyx_response(response).call_control_id
            if not telnyx_id:
                raise CarrierApiError(
                    "Telnyx answered the dial without a call_control_id", api_status=response.status
                )
            call_id = telnyx_id
        else:
            raise InvalidOption(
                "an outbound call needs Twilio (twilio_sid, twilio_token) or Telnyx (telnyx_key)"
            )
        if runtime is not None:
            runtime.expect_outbound(call_id, agent, voicemail_message)
        log.info("outbound call %s to %s placed", call_id, to)
        return call_id


async def _send(req: Any) -> Any:
    from ._httpclient import request

    return await request(req, timeout=15.0, max_response_bytes=1024 * 1024)


async def _wait_stopped(server: Server) -> None:
    """Return once the server's serve() has finished draining."""
    while not server.stopping:
        await anyio.sleep(0.1)
    while server.live_connections:
        await anyio.sleep(0.05)
