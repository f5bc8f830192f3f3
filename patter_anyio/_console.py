"""What a person running the server reads: the start-up block and the Ctrl-C lines.

The CLI's ``serve`` and the API's :meth:`Patter.serve` say the same things,
from here: where the server listens, which agent answers, the webhook URLs
to paste into the carriers' consoles, which signatures are checked, and how
to stop it. The block is logged once the port is bound, so a bind error is
the only thing a user sees when the port is taken.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from patter_core import PatterError, __version__
from patter_core.http import Paths
from patter_core.providers._models import REALTIME_MODEL, REALTIME_VOICE

from ._agent import Agent

if TYPE_CHECKING:
    from .net._server import Server

__all__ = [
    "BindError",
    "StartupInfo",
    "bind_problem",
    "default_logging",
    "describe_agent",
    "log_startup",
    "startup_lines",
    "watch_signals",
]

log = logging.getLogger("patter_anyio")

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class BindError(PatterError, OSError):
    """The server could not listen where it was told to; the message is one sentence.

    An :class:`OSError` still, so code that caught the bind's own error keeps working.
    """


def bind_problem(host: str, port: int, exc: OSError, *, port_setting: str = "--port") -> str:
    """One sentence a user can act on for a failed bind (``port_setting``
    names the setting to change: the flag, or the API's argument)."""
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {where}: {host!r} is not an address or a known host name"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: the port is already in use "
            f"(another server running? choose another with {port_setting})"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: {host} is not an address of this machine"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot listen on {where}: permission denied (ports below 1024 need privileges)"
    return f"cannot listen on {where}: {exc.strerror or exc}"


def describe_agent(agent: Agent | None, *, elevenlabs_agent_id: str | None = None) -> str:
    """``OpenAI Realtime (model gpt-realtime, voice marin)``, or the echo agent's line."""
    if agent is None:
        return "the application's own stream handler"
    if agent.provider == "echo":
        return "the echo agent: no provider key set (it repeats what the caller says)"
    if agent.provider == "openai":
        model = agent.model or REALTIME_MODEL
        voice = agent.voice or REALTIME_VOICE
        return f"OpenAI Realtime (model {model}, voice {voice})"
    if agent.provider == "elevenlabs":
        agent_id = agent.agent_id or elevenlabs_agent_id
        voice = f", voice {agent.voice}" if agent.voice else ""
        return f"ElevenLabs Conversational AI (agent {agent_id}{voice})"
    parts = [f"stt {agent.stt or 'by key'}", f"tts {agent.tts or 'by key'}"]
    if agent.model:
        parts.append(f"model {agent.model}")
    if agent.voice:
        parts.append(f"voice {agent.voice}")
    return f"pipeline ({', '.join(parts)})"


@dataclass(frozen=True, slots=True, kw_only=True)
class StartupInfo:
    """What the start-up block is made of (no secrets: only whether they are set)."""

    host: str
    port: int
    agent: str
    webhook_host: str | None
    twilio_checked: bool
    telnyx_checked: bool
    #: Some Twilio credential (account SID or auth token) is configured.
    twilio_configured: bool
    #: A Telnyx API key is configured.
    telnyx_configured: bool
    stream_secret_generated: bool = False
    #: The event loop, when it is worth saying (uvloop).
    event_loop: str = ""
    stop_hint: str = "Ctrl-C to stop (twice to end live calls at once)"
    #: How the user sets the public host: the flag, or the API's argument.
    webhook_setting: str = "--webhook-url (PATTER_WEBHOOK_URL)"


def startup_lines(info: StartupInfo) -> list[tuple[int, str]]:
    """The block, as ``(level, text)`` pairs: INFO unless something needs acting on."""
    shown = f"[{info.host}]" if ":" in info.host else info.host
    lines = [(logging.INFO, f"patter-local {__version__} listening on http://{shown}:{info.port}")]
    if info.event_loop:
        lines.append((logging.INFO, f"event loop: {info.event_loop}"))
    lines.append((logging.INFO, f"agent: {info.agent}"))
    if info.webhook_host:
        base = f"https://{info.webhook_host}"
        lines.append((logging.INFO, f"Twilio voice webhook (POST): {base}{Paths.TWILIO_VOICE}"))
        lines.append((logging.INFO, f"Telnyx voice webhook: {base}{Paths.TELNYX_VOICE}"))
    else:
        lines.append(
            (
                logging.INFO,
                f"webhook URLs: set {info.webhook_setting} to your public host, "
                f"e.g. the one `ngrok http {info.port}` prints; until then stream URLs "
                "follow the Host header",
            )
        )
    checked = [
        name
        for name, on in (("Twilio", info.twilio_checked), ("Telnyx", info.telnyx_checked))
        if on
    ]
    off = [
        name
        for name, on in (("Twilio", info.twilio_checked), ("Telnyx", info.telnyx_checked))
        if not on
    ]
    text = "signatures: " + "; ".join(
        part
        for part in (
            f"{' and '.join(checked)} checked" if checked else "",
            f"{' and '.join(off)} off" if off else "",
        )
        if part
    )
    lines.append((logging.INFO, text))
    # A warning only where credentials say the carrier is in use but its
    # webhooks would be believed unsigned.
    if info.twilio_configured and not info.twilio_checked:
        lines.append(
            (
                logging.WARNING,
                "Twilio credentials are set but TWILIO_AUTH_TOKEN (with --webhook-url) is not: "
                "anyone can post Twilio webhooks here",
            )
        )
    if info.telnyx_configured and not info.telnyx_checked:
        lines.append(
            (
                logging.WARNING,
                "TELNYX_API_KEY is set but TELNYX_PUBLIC_KEY is not: "
                "anyone can post Telnyx webhooks here",
            )
        )
    if info.stream_secret_generated:
        lines.append(
            (
                logging.INFO,
                "stream tokens: a per-process secret (set PATTER_STREAM_SECRET to share it "
                "between instances)",
            )
        )
    if info.host not in _LOOPBACK:
        lines.append((logging.WARNING, f"bound to {info.host}: reachable from other machines"))
    lines.append((logging.INFO, info.stop_hint))
    return lines


def log_startup(info: StartupInfo) -> None:
    for level, text in startup_lines(info):
        log.log(level, "%s", text)


def default_logging() -> None:
    """INFO lines on stderr for the ``patter_anyio`` logger, when nobody configured logging.

    As ``logging.basicConfig`` would, but for our logger only: an
    application that set up the root logger (or ours) keeps its own.
    """
    if logging.getLogger().handlers or log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


async def watch_signals(server: Server) -> None:
    """First Ctrl-C (or SIGTERM): drain, saying what is live; the second ends the calls now."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
            if server.stopping:
                log.warning(
                    "%s again: ending %d live call(s) now (on_call_end runs for each)",
                    name,
                    server.live_calls,
                )
                server.stop(immediate=True)
                return
            calls = server.live_calls
            if calls:
                log.warning(
                    "%s: %d live call(s) may go on for up to %g s; a second Ctrl-C ends them now",
                    name,
                    calls,
                    server.limits.shutdown_grace,
                )
            else:
                log.info("%s: no live calls, stopping", name)
            server.stop()
