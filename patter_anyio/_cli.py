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
from types import FrameType

import anyio

from ._agent import Agent
from ._app import WebhookApp, WebhookHooks
from ._call import CallHooks
from ._config import ConfigError, ServerConfig, build_parser, config_from_args
from ._runtime import (
    CarrierSettings,
    LocalRuntime,
    ProviderSettings,
    StreamTimeouts,
    start_notices,
)
from ._server import Server, StreamHandler

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
        webhook_host=config.webhook_host,
        twilio_auth_token=config.twilio_auth_token,
        twilio_signing_keys=dict(config.twilio_signing_keys),
        telnyx_public_key=config.telnyx_public_key,
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

    Without a ``stream_handler`` and ``hooks`` the configured agent answers
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
    for warning in config.warnings():
        log.warning("%s", warning)
    if runtime is not None:
        today = datetime.datetime.now(datetime.UTC).date()
        for level, line in start_notices(
            runtime.agent, runtime.providers, handler=False, today=today
        ):
            log.log(level, "%s", line)
    async with anyio.create_task_group() as tg:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    if server.stopping:
                        log.warning("second signal: ending live calls now")
                        server.stop(immediate=True)
                        return
                    log.info("signal %d: finishing live calls, then stopping", signum)
                    server.stop()

        tg.start_soon(watch_signals)
        if runtime is not None:
            runtime.background = tg
            server.end_calls = runtime.end_all
        await server.serve()
        tg.cancel_scope.cancel()


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
        carriers=CarrierSettings(
            webhook_host=config.webhook_host,
            phone_number=config.phone_number,
            twilio_sid=config.twilio_account_sid,
            twilio_token=config.twilio_auth_token,
            telnyx_key=config.telnyx_api_key,
            telnyx_public_key=config.telnyx_public_key,
            twilio_api_base_url=config.twilio_api_base_url,
            telnyx_api_base_url=config.telnyx_api_base_url,
        ),
        providers=ProviderSettings(
            openai_key=config.openai_api_key,
            elevenlabs_key=config.elevenlabs_api_key,
            elevenlabs_agent_id=config.elevenlabs_agent_id,
            deepgram_key=config.deepgram_api_key,
            openai_base_url=config.openai_base_url,
            elevenlabs_base_url=config.elevenlabs_base_url,
            deepgram_base_url=config.deepgram_base_url,
        ),
        hooks=CallHooks(),
        stream_secret=config.stream_secret.encode("utf-8"),
        recording=config.recording,
        voicemail_message=config.voicemail_message,
        timeouts=StreamTimeouts(start=config.start_timeout, media=config.media_timeout),
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


def _bind_error(exc: BaseException) -> OSError | None:
    """The OSError inside ``exc`` when it is the only error there, else None."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, OSError) else None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
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
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )
    if command != "serve":  # pragma: no cover - argparse only knows serve for now
        print(f"patter-local: error: unknown command {command!r}", file=sys.stderr)
        return 2
    if config.workers > 1:
        if config.stream_secret_generated:
            log.info("workers share this process's generated stream secret")
        return _run_workers(config, args)
    try:
        anyio.run(run_server, config, backend=config.backend)
    except (OSError, BaseExceptionGroup) as exc:
        # Port in use, address not available: one line, not a traceback. The
        # bind fails inside a task group, which wraps it in an exception group.
        error = _bind_error(exc)
        if error is None:
            raise
        print(
            f"patter-local: error: cannot listen on {config.host}:{config.port}: {error}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
