"""``python -m patter_anyio``: the command line.

``serve`` runs the server in this process, or, with ``--workers N``, starts
N copies of itself that share the port through SO_REUSEPORT and nothing
else: the parent passes its stream secret down in the environment (so a
token issued by one worker is accepted by another), forwards SIGINT and
SIGTERM, and exits when they have. Sub-commands are argparse subparsers, so
more (``dial``) slot in beside ``serve``.
"""

from __future__ import annotations

import datetime
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import anyio
import anyio.abc

from ._agent import Agent
from ._config import ConfigError, ServerConfig, build_parser, config_from_args
from ._console import BindError, bind_problem, describe_agent, log_startup, watch_signals
from .calls._app import WebhookApp, WebhookHooks
from .calls._call import TRANSCRIPT_LOGGER, CallHooks
from .calls._recording import recording_dir_problem
from .calls._runtime import LocalRuntime, StreamTimeouts, start_notices
from .net._monitor import Monitor
from .net._server import Server, StreamHandler

__all__ = ["build_app", "main", "run_server"]

log = logging.getLogger("patter_anyio")


def build_app(
    config: ServerConfig,
    *,
    stream_handler: StreamHandler | None = None,
    hooks: WebhookHooks | None = None,
) -> WebhookApp:
    return WebhookApp(
        stream_secret=config.stream_secret.encode("utf-8"),
        webhook_host=config.carriers.webhook_host,
        twilio_auth_token=config.carriers.twilio_token,
        twilio_signing_keys=dict(config.twilio_signing_keys),
        telnyx_public_key=config.carriers.telnyx_public_key,
        hooks=hooks,
        stream_handler=stream_handler,
    )


async def run_server(
    config: ServerConfig,
    *,
    stream_handler: StreamHandler | None = None,
    hooks: WebhookHooks | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; a second signal skips the grace period.

    Logs the start-up block once the port is bound; a failed bind raises
    :class:`BindError` with one sentence. Without a ``stream_handler`` and ``hooks`` the configured agent answers
    every call (:func:`runtime_from_config`).
    """
    runtime = None
    if stream_handler is None and hooks is None:
        runtime = runtime_from_config(config)
        stream_handler = runtime.handle_stream
        hooks = runtime.webhook_hooks()
    server = Server(
        build_app(config, stream_handler=stream_handler, hooks=hooks),
        host=config.host,
        port=config.port,
        limits=config.limits,
        trusted_proxies=config.trusted_proxies,
        reuse_port=config.reuse_port,
    )
    monitor = Monitor()
    dashboard_off = server.attach_monitor(monitor, token=config.dashboard_token)
    if runtime is not None:
        runtime.monitor = monitor
        runtime.guard = server.guard  # one task for every call's socket timeouts
    agent = describe_agent(
        runtime.agent if runtime is not None else None,
        elevenlabs_agent_id=config.providers.elevenlabs_agent_id,
    )
    bind_error: OSError | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_signals, server)
        if runtime is not None:
            runtime.background = tg
            server.end_calls = runtime.end_all

        async def serve(*, task_status: anyio.abc.TaskStatus[int]) -> None:
            await server.serve(task_status=task_status)
            tg.cancel_scope.cancel()

        try:
            await tg.start(serve)
        except OSError as exc:
            # Raised as itself, not inside the task group's exception group.
            bind_error = exc
            tg.cancel_scope.cancel()
        else:
            log_startup(config.startup_info(port=server.port, agent=agent))
            if runtime is not None:
                today = datetime.datetime.now(datetime.UTC).date()
                for level, line in start_notices(
                    runtime.agent, runtime.providers, handler=False, today=today
                ):
                    log.log(level, "%s", line)
            if dashboard_off:
                log.warning("%s", dashboard_off)
    if bind_error is not None:
        raise BindError(bind_problem(config.host, config.port, bind_error)) from None


def runtime_from_config(config: ServerConfig) -> LocalRuntime:
    """The call runtime for ``serve``: one agent, as the flags describe it."""
    agent = Agent(
        provider=config.provider,
        system_prompt=config.system_prompt or "",
        first_message=config.first_message or "",
        voice=config.voice,
        model=config.model,
        provider_timeout=config.provider_timeout,
        error_message=config.error_message or "",
        turn_detection=config.turn_detection,
        noise_reduction=None if config.noise_reduction == "off" else config.noise_reduction,
        provider_audio=config.provider_audio,
        reasoning_effort=config.reasoning_effort,
        provider_max_duration=config.provider_max_duration,
        silence_timeout=config.silence_timeout,
        max_duration=config.max_duration,
        # Workers share one port: a call's stream may reach another worker
        # than its webhook, which would waste the warm session.
        prewarm=config.workers == 1,
    )
    return LocalRuntime(
        agent=agent,
        carriers=config.carriers,
        providers=config.providers,
        hooks=CallHooks(),
        stream_secret=config.stream_secret.encode("utf-8"),
        recording=config.recording,
        voicemail_message=config.voicemail_message,
        timeouts=StreamTimeouts(start=config.start_timeout, media=config.media_timeout),
        local_recording=Path(config.local_recording) if config.local_recording else None,
    )


def _run_workers(config: ServerConfig, argv: Sequence[str]) -> int:
    env = dict(os.environ)
    env["PATTER_STREAM_SECRET"] = config.stream_secret
    # argparse keeps the last value, so these override the parent's flags.
    command = [sys.executable, "-m", "patter_anyio", *argv, "--workers", "1", "--reuse-port"]
    children = [
        # A session of its own: a terminal's Ctrl-C reaches only the parent,
        # which forwards it once, so the children drain instead of seeing two.
        subprocess.Popen(command, env=env, start_new_session=True)
        for _ in range(config.workers)
    ]
    log.info("started %d workers on %s:%d", len(children), config.host, config.port)
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        del frame
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while any(child.poll() is None for child in children):
            failed = [c for c in children if c.returncode not in (None, 0)]
            if failed and not stopping:
                log.error("a worker exited with %d: stopping the others", failed[0].returncode)
                forward(signal.SIGTERM, None)
            time.sleep(0.1)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    # A worker our forwarded signal caught before it had set up its own
    # handler (still starting) died of that signal: a clean stop too.
    forwarded = (-signal.SIGINT, -signal.SIGTERM) if stopping else ()
    codes = [child.returncode for child in children if child.returncode not in forwarded]
    return max((abs(code) for code in codes if code), default=0)


def configure_logging(config: ServerConfig) -> None:
    """Log lines on stderr at ``--log-level``; transcripts unless ``--quiet-transcripts``."""
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )
    logging.getLogger(TRANSCRIPT_LOGGER).setLevel(
        logging.WARNING if config.quiet_transcripts else logging.NOTSET
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(
            "patter-local: error: give a command: serve (run the server) or dial "
            "(place a test call); patter-local --help lists them",
            file=sys.stderr,
        )
        return 2
    if args[:1] == ["dial"]:
        try:
            namespace = build_parser().parse_args(args)
        except ConfigError as exc:
            print(f"patter-local: error: {exc}", file=sys.stderr)
            return 2
        return int(namespace.handler(namespace))
    try:
        command, config = config_from_args(args, os.environ)
    except ConfigError as exc:
        print(f"patter-local: error: {exc}", file=sys.stderr)
        return 2
    if config.local_recording:
        problem = recording_dir_problem(Path(config.local_recording))
        if problem:
            print(f"patter-local: error: --local-recording: {problem}", file=sys.stderr)
            return 2
    configure_logging(config)
    if command != "serve":  # pragma: no cover - argparse only knows serve for now
        print(f"patter-local: error: unknown command {command!r}", file=sys.stderr)
        return 2
    if config.workers > 1:
        if config.stream_secret_generated:
            log.info("workers share this process's generated stream secret")
        return _run_workers(config, args)
    try:
        anyio.run(
            run_server,
            config,
            backend=config.backend,
            backend_options={"use_uvloop": True} if config.loop == "uvloop" else {},
        )
    except BindError as exc:
        # Port in use, an address not of this machine: one line, exit 2.
        print(f"patter-local: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
