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
import os
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal, overload

import anyio
import anyio.abc

from patter_core._base_urls import (
    DEFAULT_DEEPGRAM_BASE_URL,
    DEFAULT_ELEVENLABS_BASE_URL,
    DEFAULT_OPENAI_BASE_URL,
    DEFAULT_TELNYX_API,
    DEFAULT_TWILIO_API,
)
from patter_core.http import ServerLimits
from patter_core.monitor._access import token_problem
from patter_core.providers._selection import default_provider, pipeline_parts_problem
from patter_core.webhooks import StreamTokens
from patter_core.webhooks._outgoing import webhook_url_problem
from patter_core.webhooks._twilio_flow import (
    DEFAULT_MACHINE_DETECTION_TIMEOUT,
    machine_detection_timeout_problem,
    ring_timeout_problem,
    variables_problem,
    voicemail_problem,
)

from ._agent import PROVIDER_NAMES, Agent, InvalidOption, Tool, as_tools, check_seconds
from ._checks import (
    article,
    check_agent_text,
    check_callback,
    check_port,
    check_signing_keys,
    local_recording_dir,
)
from ._config import host_problem
from ._console import (
    BindError,
    StartupInfo,
    bind_problem,
    default_logging,
    describe_agent,
    log_startup,
    watch_signals,
)
from ._settings import KEY_VARIABLES, build_settings, given
from .calls._app import WebhookApp
from .calls._call import CallHooks
from .calls._outbound import CallResult, place_call
from .calls._remote import RemoteMessageHandler, tool_handlers
from .calls._routing import ROUTE_TIMEOUT, Router
from .calls._runtime import (
    LocalRuntime,
    StreamTimeouts,
    missing_settings,
    start_notices,
)
from .net._monitor import Monitor
from .net._server import Server

__all__ = ["Patter"]

log = logging.getLogger("patter_anyio")


class Patter:
    """One phone line (or several), served locally.

    Credentials not given as arguments are read from the environment
    (``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``, ``TELNYX_API_KEY``,
    ``TELNYX_PUBLIC_KEY``, ``OPENAI_API_KEY``, ``ELEVENLABS_API_KEY``,
    ``ELEVENLABS_AGENT_ID``, ``DEEPGRAM_API_KEY``); ``env`` replaces
    ``os.environ`` for that (tests, embedding).
    """

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
        openai_base_url: str = DEFAULT_OPENAI_BASE_URL,
        elevenlabs_base_url: str = DEFAULT_ELEVENLABS_BASE_URL,
        deepgram_base_url: str = DEFAULT_DEEPGRAM_BASE_URL,
        twilio_api_base_url: str = DEFAULT_TWILIO_API,
        telnyx_api_base_url: str = DEFAULT_TELNYX_API,
        stream_secret: str | None = None,
        telnyx_codec: str = "PCMU",
        twilio_signing_keys: Mapping[str, str] | None = None,
        webhook_secret: str | None = None,
        allow_private_webhooks: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if mode != "local":
            raise InvalidOption(f"only mode='local' is available here, not {mode!r}")
        # As the official SDKs do: an argument not given is read from the
        # environment; an explicit argument always wins.
        environ = os.environ if env is None else env
        keys = {
            "twilio_sid": twilio_sid,
            "twilio_token": twilio_token,
            "telnyx_key": telnyx_key,
            "telnyx_public_key": telnyx_public_key,
            "openai_key": openai_key,
            "elevenlabs_key": elevenlabs_key,
            "elevenlabs_agent_id": elevenlabs_agent_id,
            "deepgram_key": deepgram_key,
        }
        settings = {
            key: given(keys[key], key, environ, variable) for key, variable in KEY_VARIABLES.items()
        }
        twilio_sid, twilio_token = settings["twilio_sid"].value, settings["twilio_token"].value
        if bool(twilio_sid) != bool(twilio_token):
            present, missing = (
                ("twilio_sid", "twilio_token (or TWILIO_AUTH_TOKEN)")
                if twilio_sid
                else ("twilio_token", "twilio_sid (or TWILIO_ACCOUNT_SID)")
            )
            raise InvalidOption(
                f"twilio_sid and twilio_token go together: {present} is set, {missing} is not"
            )
        if telnyx_codec not in ("PCMU", "L16"):
            raise InvalidOption(f"telnyx_codec must be 'PCMU' or 'L16', not {telnyx_codec!r}")
        # The same model and checks as the command line's; errors name the argument.
        self.carriers, self.providers = build_settings(
            {
                **settings,
                "webhook_host": given(webhook_url or None, "webhook_url"),
                "phone_number": given(phone_number, "phone_number"),
                "openai_base_url": given(openai_base_url, "openai_base_url"),
                "elevenlabs_base_url": given(elevenlabs_base_url, "elevenlabs_base_url"),
                "deepgram_base_url": given(deepgram_base_url, "deepgram_base_url"),
                "twilio_api_base_url": given(twilio_api_base_url, "twilio_api_base_url"),
                "telnyx_api_base_url": given(telnyx_api_base_url, "telnyx_api_base_url"),
            },
            fail=InvalidOption,
            telnyx_connection_id=telnyx_connection_id,
            telnyx_codec=telnyx_codec,
        )
        host = self.carriers.webhook_host
        self._twilio_signing_keys = check_signing_keys(twilio_signing_keys, host)
        if stream_secret is not None and (
            not isinstance(stream_secret, str)
            or any(len(part) < 16 for part in stream_secret.split(","))
        ):
            raise InvalidOption(
                "stream_secret must be at least 16 characters "
                "(several: comma-separated, newest first)"
            )
        if webhook_secret is not None and (not isinstance(webhook_secret, str) or not webhook_secret):
            raise InvalidOption("webhook_secret must be non-empty text")
        #: Signs webhook tools and an on_message URL (X-Patter-Signature).
        self._webhook_secret = webhook_secret.encode("utf-8") if webhook_secret else None
        #: An on_message URL may be on this network (tools say so themselves).
        self._allow_private_webhooks = bool(allow_private_webhooks)
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
        provider_audio: str = "pcmu",
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
        """Describe the agent; ``provider`` defaults to openai with an OpenAI
        key, else elevenlabs with an ElevenLabs agent id, else echo."""
        if provider is None:
            provider = default_provider(
                openai_key=bool(self.providers.openai_key),
                elevenlabs_agent=bool(agent_id or self.providers.elevenlabs_agent_id),
            )
        if provider not in PROVIDER_NAMES:
            raise InvalidOption(
                f"provider must be one of {', '.join(PROVIDER_NAMES)}, not {provider!r}"
            )
        if problem := pipeline_parts_problem(stt, tts):
            raise InvalidOption(problem)
        check_agent_text(
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
            provider_audio=provider_audio,  # type: ignore[arg-type]
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
        on_message: Callable[..., Any] | str | None,
        recording: bool,
        voicemail_message: str | None,
        timeouts: StreamTimeouts | None = None,
        on_call_status: Callable[..., Any] | None = None,
        on_machine_detection: Callable[..., Any] | None = None,
        local_recording: Path | None = None,
    ) -> LocalRuntime:
        if not isinstance(agent, Agent):
            raise InvalidOption("agent must come from phone.agent(...)")
        if isinstance(on_message, str):
            problem = webhook_url_problem(on_message, allow_private=self._allow_private_webhooks)
            if problem:
                raise InvalidOption(f"on_message: {problem}")
            on_message = RemoteMessageHandler(
                url=on_message,
                secret=self._webhook_secret,
                allow_private=self._allow_private_webhooks,
            )
        for name, value in (
            ("on_call_start", on_call_start),
            ("on_call_end", on_call_end),
            ("on_transcript", on_transcript),
            ("on_message", on_message),
            ("on_call_status", on_call_status),
            ("on_machine_detection", on_machine_detection),
        ):
            check_callback(name, value)
        if on_message is not None and agent.provider != "pipeline":
            raise InvalidOption(
                "on_message is for provider='pipeline' (speech-to-text, your handler, "
                f"text-to-speech); {article(agent.provider)} {agent.provider} agent "
                "answers by itself"
            )
        problem = missing_settings(agent, self.providers, handler=on_message is not None)
        if problem:
            raise InvalidOption(problem)
        if not isinstance(recording, bool):
            raise InvalidOption(f"recording must be True or False, not {recording!r}")
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
            tools=tool_handlers(
                {tool.name: tool.handler for tool in agent.tools}, self._webhook_secret
            ),
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
            on_call_status=on_call_status,
            on_machine_detection=on_machine_detection,
            webhook_secret=self._webhook_secret,
            local_recording=local_recording,
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
        on_message: Callable[..., Any] | str | None = None,
        on_call_status: Callable[..., Any] | None = None,
        on_machine_detection: Callable[..., Any] | None = None,
        recording: bool = False,
        voicemail_message: str | None = None,
        start_timeout: float = 10.0,
        media_timeout: float = 15.0,
        shutdown_grace: float = 30.0,
        handle_signals: bool = True,
        dashboard_token: str | None = None,
        local_recording: bool | str | os.PathLike[str] = False,
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
        ``on_call_status({"call_id", "status", "carrier"})``: each status
        of an outbound call placed by this process (initiated, ringing,
        answered, then completed, busy, no_answer, failed or canceled), once;
        ``on_machine_detection({"call_id", "result", "raw", "carrier"})``:
        its answering-machine result (human, machine, fax, unknown), once.
        ``dashboard_token`` (else ``PATTER_DASHBOARD_TOKEN``): what
        ``/dashboard``, ``/api/calls`` and ``/metrics`` ask for when ``host``
        is not a loopback address (without one they are off there).
        ``local_recording``: ``True`` (into ``./recordings``) or a directory:
        one stereo WAV per call, caller left, agent right, its path in
        ``on_call_end`` as ``recording_path``.
        ``route(call)`` picks the agent of each incoming call before it is
        answered (an :class:`Agent`, or None to refuse it), within
        ``route_timeout`` seconds; sync or async.
        """
        check_port(port)
        check_callback("route", route)
        route_timeout = check_seconds("route_timeout", route_timeout)
        problem = host_problem(host, "host")
        if problem:
            raise InvalidOption(problem)
        timeouts = StreamTimeouts(
            start=check_seconds("start_timeout", start_timeout),
            media=check_seconds("media_timeout", media_timeout),
        )
        grace = check_seconds("shutdown_grace", shutdown_grace)
        if dashboard_token is None:
            dashboard_token = os.environ.get("PATTER_DASHBOARD_TOKEN", "").strip() or None
        if dashboard_token is not None:
            if not isinstance(dashboard_token, str):
                raise InvalidOption("dashboard_token must be text")
            problem = token_problem(dashboard_token)
            if problem:
                raise InvalidOption(problem)
        recording_to = local_recording_dir(local_recording)
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
            on_call_status=on_call_status,
            on_machine_detection=on_machine_detection,
            local_recording=recording_to,
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
        default_logging()
        monitor = Monitor()
        runtime.monitor = monitor
        runtime.guard = server.guard  # one task for every call's socket timeouts
        dashboard_off = server.attach_monitor(monitor, token=dashboard_token)
        if dashboard_off:
            log.warning("%s", dashboard_off)
        today = datetime.datetime.now(datetime.UTC).date()
        for level, line in start_notices(agent, self.providers, handler=handler, today=today):
            log.log(level, "%s", line)
        self._runtime = runtime
        self._server = server
        # A failed bind (port in use, bad host) is one sentence, as BindError.
        bind_error: OSError | None = None
        try:
            signals = handle_signals and threading.current_thread() is threading.main_thread()
            async with anyio.create_task_group() as tg:
                runtime.background = tg
                if signals:
                    tg.start_soon(watch_signals, server)

                async def serve_then_stop(*, task_status: anyio.abc.TaskStatus[int]) -> None:
                    # The task group ends with the server's own serve(), once
                    # it has drained and said so.
                    await server.serve(task_status=task_status)
                    tg.cancel_scope.cancel()

                try:
                    await tg.start(serve_then_stop)
                except OSError as exc:
                    bind_error = exc
                    tg.cancel_scope.cancel()
                else:
                    log_startup(
                        StartupInfo(
                            host=server.host,
                            port=server.port,
                            agent=describe_agent(
                                agent, elevenlabs_agent_id=self.providers.elevenlabs_agent_id
                            ),
                            webhook_host=app.webhook_host,
                            twilio_checked=app.twilio is not None,
                            telnyx_checked=app.telnyx is not None,
                            twilio_configured=bool(
                                self.carriers.twilio_sid or self.carriers.twilio_token
                            ),
                            telnyx_configured=bool(self.carriers.telnyx_key),
                            stream_secret_generated=self._secret_generated,
                            webhook_setting="webhook_url=",
                            stop_hint="Ctrl-C to stop (twice to end live calls at once)"
                            if signals
                            else "phone.stop() to stop",
                        )
                    )
                    task_status.started(server.port)
            if bind_error is not None:
                raise BindError(
                    bind_problem(host, server.port, bind_error, port_setting="port=")
                ) from None
        finally:
            runtime.outcomes.abandon()
            self._runtime = None
            self._server = None

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

    @overload
    async def call(
        self,
        to: str,
        agent: Agent | None = None,
        *,
        machine_detection: bool = False,
        voicemail_message: str | None = None,
        from_: str | None = None,
        machine_detection_timeout: int = DEFAULT_MACHINE_DETECTION_TIMEOUT,
        wait: Literal[False] = False,
        ring_timeout: int | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> str: ...

    @overload
    async def call(
        self,
        to: str,
        agent: Agent | None = None,
        *,
        machine_detection: bool = False,
        voicemail_message: str | None = None,
        from_: str | None = None,
        machine_detection_timeout: int = DEFAULT_MACHINE_DETECTION_TIMEOUT,
        wait: Literal[True],
        ring_timeout: int | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> CallResult: ...

    async def call(
        self,
        to: str,
        agent: Agent | None = None,
        *,
        machine_detection: bool = False,
        voicemail_message: str | None = None,
        from_: str | None = None,
        machine_detection_timeout: int = DEFAULT_MACHINE_DETECTION_TIMEOUT,
        wait: bool = False,
        ring_timeout: int | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> str | CallResult:
        """Place an outbound call; returns the carrier's call id, or with
        ``wait=True`` the :class:`CallResult` once the call is over.

        The call's audio reaches the running ``serve()`` (Twilio fetches our
        TwiML; Telnyx streams once answered). With ``machine_detection``, an
        answering machine gets ``voicemail_message`` after its beep, then the
        call hangs up. ``machine_detection_timeout`` (seconds, 3-59, default
        45) is how long Twilio may listen to a greeting; a longer one comes
        back ``unknown`` and is then treated as over. ``ring_timeout``
        (seconds, 5-600): how long it may ring before it ends as
        ``no_answer``. ``variables`` travel with the call's stream as
        ``<Parameter>`` values (Telnyx: ``custom_parameters``), never in a
        URL, and fill ``{name}`` in the agent's prompt and first message. ``wait`` and the status callbacks
        need this ``Patter``'s ``serve()`` running: the carrier reports to it.
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
        if ring_timeout is not None and (problem := ring_timeout_problem(ring_timeout)):
            raise InvalidOption(problem)
        if variables is not None and (problem := variables_problem(variables)):
            raise InvalidOption(problem)
        runtime = self._runtime
        if wait and runtime is None:
            raise InvalidOption(
                "wait=True needs this Patter's serve() running: the carrier reports the "
                "call's progress to its webhooks"
            )

        call_id, carrier = await place_call(
            self.carriers,
            StreamTokens.from_list(self._secret),
            to=to,
            from_=number,
            machine_detection=machine_detection,
            machine_detection_timeout=machine_detection_timeout,
            ring_timeout=ring_timeout,
        )
        log.info("outbound call %s to %s placed", call_id, to)
        if runtime is None:
            return call_id
        # No await between the carrier's answer and these: its first status
        # webhook finds the call known.
        runtime.expect_outbound(call_id, agent, voicemail_message, variables)
        tracked = runtime.outcomes.placed(call_id, carrier)
        await runtime.outcomes.catch_up(tracked)
        if not wait:
            return call_id
        return await runtime.outcomes.wait(tracked)
