"""``python -m patter_anyio dial``: a carrier in a box, on the command line.

The call itself is :func:`dial` (in ``_call``, re-exported here with
its options and report); this module is its command line, and
:func:`spawned_server`: with ``--spawn-server`` the tool starts ``python -m
patter_anyio serve`` itself on a free port, configured to trust it (a
generated Twilio Auth Token, or a Telnyx API key, the fake Call Control
API's URL and a generated Ed25519 key pair whose public half the server
checks), places the call and stops the server -- one command for a whole
call.

:func:`register_dial` adds the sub-command to the program's argparse
sub-parsers and sets ``handler`` on the parsed namespace; the handler runs
the call and returns the exit code: 0 for a call that ran, 1 for a call
that failed (server unreachable, webhook refused, no ``<Stream>``,
WebSocket refused), 2 for bad flags or an unreadable WAV -- always one
line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import math
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from types import FrameType
from typing import IO, NoReturn, TextIO

import anyio

from patter_core.http import HttpRequest, Paths

from .._agent import PROVIDER_NAMES as PROVIDERS
from .._errors import ConfigError
from ..net._httpclient import ClientError, request
from ._audio import HangUp
from ._call import DialError, DialOptions, DialProgress, DialReport, dial
from ._telnyx import DEFAULT_TELNYX_API_PORT, load_signing_key, public_key_b64
from ._wavfile import WavError, read_wav_as_ulaw, write_wav_pcm16

__all__ = [
    "DialError",
    "DialOptions",
    "DialProgress",
    "DialReport",
    "build_dial_parser",
    "dial",
    "dial_main",
    "format_summary",
    "register_dial",
    "run_dial_args",
    "spawned_server",
    "transcript_lines",
]

_PROG = "patter-local"
_DTMF_DIGITS = "0123456789*#ABCD"
# A spawned server imports numpy and soxr before it listens; on a busy
# machine that takes seconds, and more than this means it will not start.
_SPAWN_START_S = 30.0
# After SIGTERM the server finishes live calls (none are left) and exits.
_SPAWN_STOP_S = 5.0
# How much of a failed server's log an error line shows.
_LOG_TAIL_CHARS = 300
# Carrier settings a spawned server must not take from our environment: it
# trusts only what dial sets, and never calls a real carrier account.
_SPAWN_DROP_ENV = (
    "PATTER_WEBHOOK_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_API_BASE_URL",
    "TELNYX_API_KEY",
    "TELNYX_PUBLIC_KEY",
    "TELNYX_API_BASE_URL",
)


def _float(text: str, expected: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, not {text!r}") from None


def _positive(text: str) -> float:
    value = _float(text, "seconds")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}")
    return value


def _non_negative(text: str) -> float:
    value = _float(text, "seconds")
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, not {text!r}")
    return value


def _hertz(text: str) -> float:
    value = _float(text, "a frequency in Hz")
    # 8 kHz audio carries frequencies below 4 kHz only (Nyquist).
    if not math.isfinite(value) or not 0 < value < 4000:
        raise argparse.ArgumentTypeError(f"frequency must be between 0 and 4000 Hz, not {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, not {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, not {text!r}")
    return value


def _dtmf(text: str) -> tuple[str, float]:
    digit, sep, at = text.partition("@")
    if not sep or len(digit) != 1 or digit.upper() not in _DTMF_DIGITS:
        raise argparse.ArgumentTypeError(
            f"expected DIGIT@SECONDS such as 5@2.0 (digits 0-9 * # A-D), not {text!r}"
        )
    return digit.upper(), _non_negative(at)


def register_dial(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``dial`` and its flags; the parsed namespace gets ``handler``."""
    p = subparsers.add_parser(
        "dial",
        help="play Twilio or Telnyx against a server: place a test call",
        description="Play Twilio or Telnyx against a server: post a signed incoming-call "
        "webhook, follow the TwiML (Twilio) or the Call Control commands (Telnyx, through "
        "a fake API on 127.0.0.1) to the media stream, send audio in real time, echo "
        "marks, and report what a caller would notice. With --spawn-server the tool starts "
        "the server itself.",
        epilog="environment:\n  TWILIO_AUTH_TOKEN      signs the webhook and the stream upgrade\n"
        "  PATTER_WEBHOOK_URL     default for --webhook-url\n\n"
        "Telnyx against a running server: start it with\n"
        f"  TELNYX_API_KEY=test TELNYX_API_BASE_URL=http://127.0.0.1:{DEFAULT_TELNYX_API_PORT}\n"
        "(and TELNYX_PUBLIC_KEY=<the public half of --telnyx-signing-key>), or use "
        "--spawn-server.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--server", default="http://127.0.0.1:8000", help="server to call (default %(default)s)"
    )
    p.add_argument(
        "--webhook-url",
        help="public host the server is configured with (default: the --server host:port)",
    )
    p.add_argument("--webhook-path", help=argparse.SUPPRESS)
    p.add_argument("--auth-token", help="Twilio Auth Token to sign with (env TWILIO_AUTH_TOKEN)")
    p.add_argument("--from", dest="from_number", default="+15005550006", help="caller number")
    p.add_argument("--to", dest="to_number", default="+15005550001", help="called number")
    p.add_argument(
        "--carrier", choices=("twilio", "telnyx"), default="twilio", help="carrier to play"
    )
    p.add_argument(
        "--spawn-server",
        action="store_true",
        help="start `serve` on a free port for this call, configured to trust dial, and stop it",
    )
    p.add_argument("--provider", choices=PROVIDERS, help="--spawn-server: the server's AI provider")
    p.add_argument(
        "--telnyx-api-port", type=_port, metavar="PORT",
        help="port of the fake Telnyx Call Control API on 127.0.0.1 "
        f"(default {DEFAULT_TELNYX_API_PORT}; with --spawn-server a free one)",
    )  # fmt: skip
    p.add_argument(
        "--telnyx-api-key", metavar="KEY",
        help="Bearer key the server must send to the fake API (default: any)",
    )  # fmt: skip
    p.add_argument(
        "--telnyx-signing-key", metavar="B64",
        help="base64 Ed25519 seed to sign Telnyx webhooks with (default: unsigned)",
    )  # fmt: skip
    p.add_argument(
        "--telnyx-l16-byte-order", choices=("big", "little"), default="big",
        help="byte order of L16 audio, as the server is configured (default big)",
    )  # fmt: skip
    p.add_argument(
        "--telnyx-error-at", type=_non_negative, metavar="SECONDS",
        help="Telnyx: send an error frame (the guide's shape) at SECONDS; the call must go on",
    )  # fmt: skip
    p.add_argument(
        "--telnyx-duplicate-webhooks", action="store_true",
        help="Telnyx: deliver every webhook twice, as Telnyx may",
    )  # fmt: skip
    p.add_argument(
        "--telnyx-fallback-codec", choices=("PCMU", "L16", "G722"), metavar="CODEC",
        help="Telnyx: stream in CODEC (PCMU, L16, or G722 with the g722 extra) whatever "
        "streaming_start asked, "
        "as when Telnyx cannot transcode the call",
    )  # fmt: skip
    source = p.add_mutually_exclusive_group()
    source.add_argument("--audio", metavar="WAV", help="16-bit PCM WAV to speak (any rate)")
    source.add_argument(
        "--tone", type=_hertz, metavar="HZ", help="test tone frequency (default 440 Hz bursts)"
    )
    p.add_argument(
        "--tone-seconds", type=_non_negative, default=3.0, help="test tone length (default 3)"
    )
    p.add_argument(
        "--duration", type=_positive, help="call length in seconds (default: audio + 2 s)"
    )
    p.add_argument(
        "--dtmf", type=_dtmf, action="append", default=[], metavar="D@S",
        help="press digit D at S seconds (repeatable), e.g. 5@2.0",
    )  # fmt: skip
    p.add_argument(
        "--barge-in-at", type=_non_negative, metavar="S",
        help="start a loud tone burst at S seconds and time the agent's clear",
    )  # fmt: skip
    p.add_argument(
        "--barge-in-hz", type=_hertz, default=1000.0, help="barge-in tone (default 1000 Hz)"
    )
    p.add_argument("--record", metavar="WAV", help="write what the caller heard (PCM16 8 kHz)")
    p.add_argument("--timeout", type=_positive, default=10.0, help="connect/answer timeout (s)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio", help="event loop")
    p.set_defaults(handler=run_dial_args)


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(message)


def build_dial_parser() -> argparse.ArgumentParser:
    """A stand-alone parser with just ``dial`` (for ``dial_main`` and tests)."""
    parser = _RaisingParser(prog="python -m patter_anyio")
    commands = parser.add_subparsers(dest="command", parser_class=_RaisingParser)
    commands.required = True
    register_dial(commands)
    return parser


class _ProgressLine:
    """One updating line on a terminal; a line per update (once a second) otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._width = 0

    def __call__(self, p: DialProgress) -> None:
        line = (
            f"{p.elapsed_s:5.1f}/{p.duration_s:.1f} s  sent {p.frames_sent}  "
            f"received {p.frames_received}  queued {p.buffered_s * 1000:.0f} ms  "
            f"marks {p.marks_echoed}  clears {p.clears_received}"
        )
        if self._tty:
            self._stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def finish(self) -> None:
        if self._tty and self._width:
            self._stream.write("\n")
            self._stream.flush()


def _ms(seconds: float | None) -> str:
    return "none" if seconds is None else f"{seconds * 1000:.0f} ms"


def _pct(values: tuple[float, float, float]) -> str:
    if any(math.isnan(v) for v in values):
        return "n/a"
    return "p50 {:.1f}  p95 {:.1f}  p99 {:.1f}".format(*values)


def format_summary(report: DialReport, *, record_path: str | None = None) -> str:
    """The human summary printed after a call."""
    signed = "signed" if report.signed else "unsigned"
    via = "" if report.carrier == "twilio" else f"{report.carrier}, "
    ended = "we sent stop" if report.ended_by == "carrier" else "the agent closed the stream"
    if report.ended_by == "agent" and report.close_code is not None:
        ended += f" ({report.close_code})"
    if report.hung_up_early:
        ended = "we hung up early (Ctrl-C)"
    lines = [
        f"call {report.call_sid}  stream {report.stream_sid}  ({via}{signed})",
        f"  stream url          {report.stream_url}",
    ]
    if report.agent is not None:
        lines.append(f"  agent               {report.agent}")
    lines += [
        f"  duration            {report.duration_s:.2f} s, ended because {ended}",
        f"  frames sent         {report.frames_sent}",
        f"  frames received     {report.frames_received} "
        f"({report.audio_received_s:.2f} s of audio)",
        f"  first agent audio   {_ms(report.first_audio_s)} after start",
        f"  arrival gap (ms)    {_pct(report.gap_ms)}",
        f"  lateness (ms)       {_pct(report.late_ms)}",
        f"  marks               {report.marks_received} received, "
        f"{len(report.marks_echoed)} echoed, {report.marks_pending} still playing",
        f"  clears received     {report.clears_received}",
    ]
    if report.barge_in_at_s is not None:
        reaction = report.barge_in_reaction_s
        lines.append(
            f"  barge-in            at {report.barge_in_at_s:.2f} s, "
            + ("no clear came back" if reaction is None else f"clear after {_ms(reaction)}")
        )
    if report.dtmf_sent:
        pressed = ", ".join(f"{d} at {t:.2f} s" for d, t in report.dtmf_sent)
        lines.append(f"  dtmf                {pressed}")
    if report.errors_sent:
        lines.append(f"  error frames sent   {report.errors_sent} (the call went on)")
    if report.carrier_commands:
        commands = ", ".join(
            c.action + ("" if c.accepted else " (refused: no valid Bearer key)")
            for c in report.carrier_commands
        )
        lines.append(f"  api commands        {commands}")
    if report.ignored_events:
        lines.append(f"  ignored events      {', '.join(sorted(set(report.ignored_events)))}")
    if record_path:
        lines.append(f"  recording           {record_path} ({len(report.audio) / 16000:.2f} s)")
    if report.transcript:
        lines.append("  transcript")
        lines.extend(f"    {line}" for line in report.transcript)
    elif report.agent is not None:
        # The spawned server's log was read: nothing was said in words.
        lines.append("  transcript          none")
    else:
        lines.append(
            "  transcript          none (a carrier hears audio only: with --spawn-server "
            "dial reads it from the server's log)"
        )
    if report.agent_failure:
        lines.append(f"  agent failed        {report.agent_failure}")
    return "\n".join(lines)


def _error(message: str) -> None:
    print(f"{_PROG}: error: {message}", file=sys.stderr)


def _free_port() -> int:
    # The port is free now; the child binds it a moment later. Another
    # process taking it in between makes the child fail, which is reported.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    lines = log.read().decode("utf-8", "replace").strip().splitlines()
    text = lines[-1].strip() if lines else "no output"
    # The server's own one-line error already says what is wrong.
    text = text.removeprefix(f"{_PROG}: error: ")
    return text[-_LOG_TAIL_CHARS:]


async def _healthy(base: str) -> bool:
    probe = HttpRequest(method="GET", url=base + Paths.HEALTH)
    try:
        response = await request(probe, timeout=1.0, max_response_bytes=4096)
    except ClientError:
        return False
    return response.status == 200


@asynccontextmanager
async def spawned_server(
    options: DialOptions,
    *,
    provider: str | None = None,
    env: Mapping[str, str] | None = None,
    start_timeout: float = _SPAWN_START_S,
    transcript: list[str] | None = None,
    failures: list[str] | None = None,
) -> AsyncIterator[DialOptions]:
    """Run ``python -m patter_anyio serve`` for one call; yields the options to dial it with.

    The server listens on a free port of 127.0.0.1, which is also its public
    host. Twilio: it checks signatures with ``options.auth_token`` (or a
    generated one). Telnyx: it answers through the fake API
    (``TELNYX_API_BASE_URL``, with ``options.telnyx_api_key`` or ``test``),
    and checks Ed25519 signatures against the public half of
    ``options.telnyx_signing_key`` (or of a generated seed). Raises
    :class:`DialError` when it does not come up; stops it on the way out.
    With ``transcript`` given, the server logs at INFO and, once it has
    stopped, the call's transcript lines from its log are appended there;
    ``failures`` gets the provider failures its log reports. Without
    ``provider`` the server runs the echo agent, whatever keys are set.
    """
    port = _free_port()
    host = f"127.0.0.1:{port}"
    base = f"http://{host}"
    source = os.environ if env is None else env
    child_env = {k: v for k, v in source.items() if k not in _SPAWN_DROP_ENV}
    child_env["PATTER_WEBHOOK_URL"] = host
    updates: dict[str, object] = {"server": base, "webhook_host": host}
    if options.carrier == "telnyx":
        api_port = options.telnyx_api_port or _free_port()
        seed = options.telnyx_signing_key or base64.b64encode(
            options.entropy.token_bytes(32)
        ).decode("ascii")
        public_key = public_key_b64(load_signing_key(seed))
        child_env["TELNYX_API_KEY"] = options.telnyx_api_key or "test"
        child_env["TELNYX_API_BASE_URL"] = f"http://127.0.0.1:{api_port}"
        child_env["TELNYX_PUBLIC_KEY"] = public_key
        updates.update(telnyx_api_port=api_port, telnyx_signing_key=seed)
    else:
        token = options.auth_token or secrets.token_hex(16)
        child_env["TWILIO_AUTH_TOKEN"] = token
        updates["auth_token"] = token
    command = [
        *(sys.executable, "-m", "patter_anyio", "serve"),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--log-level", "WARNING" if transcript is None else "INFO"),
        # A key in the shell must not turn a test call into a paid one.
        *("--provider", provider or "echo"),
    ]
    with tempfile.TemporaryFile() as log:
        try:
            # A session of its own: a terminal's Ctrl-C reaches dial only,
            # which hangs up and then stops the server itself.
            process = await anyio.open_process(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                env=child_env, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise DialError(f"cannot start the server: {exc.strerror or exc}") from None
        try:
            with anyio.move_on_after(start_timeout) as waited:
                while not await _healthy(base):
                    if process.returncode is not None:
                        raise DialError(
                            f"the spawned server exited with {process.returncode}: {_tail(log)}"
                        )
                    await anyio.sleep(0.1)
            if waited.cancelled_caught:
                raise DialError(
                    f"the spawned server did not answer on {base} within {start_timeout:g} s: "
                    f"{_tail(log)}"
                )
            yield dataclasses.replace(options, **updates)  # type: ignore[arg-type]
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    process.terminate()
                    with anyio.move_on_after(_SPAWN_STOP_S):
                        await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
                await process.aclose()
                if transcript is not None:
                    transcript.extend(transcript_lines(log))
                if failures is not None:
                    failures.extend(provider_failures(log))


# The runner's INFO line for each final transcript segment (``_call.py``).
_TRANSCRIPT_LINE = re.compile(r"patter_anyio\.transcript: call=\S+ (user|assistant): (.*)$")


def transcript_lines(log: IO[bytes]) -> list[str]:
    """``role: text`` for every transcript segment in a server log."""
    log.seek(0)
    out = []
    for raw in log.read().decode("utf-8", "replace").splitlines():
        match = _TRANSCRIPT_LINE.search(raw)
        if match:
            out.append(f"{match.group(1)}: {match.group(2)}")
    return out


# The runner's warning when a provider failure ended a call (``_call.py``).
_PROVIDER_FAILURE = re.compile(r"ended: the AI provider failed: (.*) \(check the provider")


def provider_failures(log: IO[bytes]) -> list[str]:
    """The provider's own words for every call a server log says it failed."""
    log.seek(0)
    text = log.read().decode("utf-8", "replace")
    return [match.group(1) for match in _PROVIDER_FAILURE.finditer(text)]


async def _dial_spawned(
    options: DialOptions, provider: str | None, env: Mapping[str, str]
) -> DialReport:
    transcript: list[str] = []
    failures: list[str] = []
    async with spawned_server(
        options, provider=provider, env=env, transcript=transcript, failures=failures
    ) as spawned:
        report = await dial(spawned)
    failure = report.agent_failure
    if failures:
        failure = f"the provider failed: {failures[0]}"
    return dataclasses.replace(
        report,
        transcript=tuple(transcript),
        agent=describe_spawned_agent(provider),
        agent_failure=failure,
    )


def describe_spawned_agent(provider: str | None) -> str:
    if provider in (None, "echo"):
        return "the echo agent (spawned server; --provider chooses another)"
    return f"{provider} (spawned server)"


def record_problem(path: str) -> str | None:
    """Why ``path`` cannot take the recording, found before dialling; None when it can."""
    target = os.path.abspath(path)
    parent = os.path.dirname(target)
    if os.path.isdir(target):
        return f"cannot write {path}: it is a directory"
    if not os.path.isdir(parent):
        return f"cannot write {path}: no such directory {parent}"
    if os.path.exists(target):
        writable = os.access(target, os.W_OK)
    else:
        writable = os.access(parent, os.W_OK | os.X_OK)
    if not writable:
        return f"cannot write {path}: permission denied"
    return None


def run_dial_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """Run a parsed ``dial`` command; returns the exit code."""
    env = os.environ if env is None else env
    caller_audio = None
    if args.audio:
        try:
            caller_audio = read_wav_as_ulaw(args.audio)
        except WavError as exc:
            _error(str(exc))
            return 2
    if args.provider and not args.spawn_server:
        _error("--provider chooses the spawned server's agent: it needs --spawn-server")
        return 2
    if args.record:
        problem = record_problem(args.record)
        if problem:
            _error(problem)
            return 2
    progress = None if args.quiet else _ProgressLine(sys.stderr)
    hang_up = HangUp()
    options = DialOptions(
        server=args.server,
        carrier=args.carrier,
        webhook_host=args.webhook_url or env.get("PATTER_WEBHOOK_URL") or None,
        webhook_path=args.webhook_path,
        auth_token=args.auth_token or env.get("TWILIO_AUTH_TOKEN") or None,
        telnyx_api_port=(
            args.telnyx_api_port
            if args.telnyx_api_port is not None
            else 0
            if args.spawn_server
            else DEFAULT_TELNYX_API_PORT
        ),
        telnyx_api_key=args.telnyx_api_key,
        telnyx_signing_key=args.telnyx_signing_key,
        telnyx_l16_byte_order=args.telnyx_l16_byte_order,
        telnyx_error_at=args.telnyx_error_at,
        telnyx_duplicate_webhooks=args.telnyx_duplicate_webhooks,
        telnyx_fallback_codec=args.telnyx_fallback_codec,
        from_number=args.from_number,
        to_number=args.to_number,
        caller_audio=caller_audio,
        tone_hz=args.tone if args.tone is not None else 440.0,
        tone_seconds=args.tone_seconds,
        duration=args.duration,
        dtmf=tuple(args.dtmf),
        barge_in_at=args.barge_in_at,
        barge_in_hz=args.barge_in_hz,
        timeout=args.timeout,
        progress=progress,
        hang_up=hang_up,
    )
    if options.carrier == "telnyx" and not args.spawn_server and not args.quiet:
        try:
            _print_telnyx_setup(options)
        except DialError as exc:
            _error(str(exc))
            return exc.exit_code

    # The first Ctrl-C hangs up (the summary and the recording follow); a
    # second one stops at once.
    def first_interrupt(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        hang_up.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = (
        signal.signal(signal.SIGINT, first_interrupt)
        if threading.current_thread() is threading.main_thread()
        else None
    )
    try:
        if args.spawn_server:
            report = anyio.run(_dial_spawned, options, args.provider, env, backend=args.backend)
        else:
            report = anyio.run(dial, options, backend=args.backend)
    except DialError as exc:
        if progress is not None:
            progress.finish()
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if progress is not None:
        progress.finish()
    if args.record:
        try:
            write_wav_pcm16(args.record, report.audio)
        except OSError as exc:
            _error(f"cannot write {args.record}: {exc.strerror or exc}")
            return 1
    print(format_summary(report, record_path=args.record))
    if report.agent_failure:
        return 1
    if report.ended_by == "agent" and report.close_code not in (None, 1000):
        return 1
    return 130 if report.hung_up_early else 0


def _print_telnyx_setup(options: DialOptions) -> None:
    """Tell the user what the running server needs to reach the fake API."""
    line = (
        f"fake Telnyx API on 127.0.0.1:{options.telnyx_api_port}; the server needs "
        f"TELNYX_API_KEY={options.telnyx_api_key or '<any>'} "
        f"TELNYX_API_BASE_URL=http://127.0.0.1:{options.telnyx_api_port}"
    )
    if options.telnyx_signing_key:
        line += f" TELNYX_PUBLIC_KEY={public_key_b64(load_signing_key(options.telnyx_signing_key))}"
    print(line, file=sys.stderr)


def dial_main(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """``dial`` on its own: parse ``argv`` (the flags after ``dial``) and run."""
    try:
        args = build_dial_parser().parse_args(["dial", *argv])
    except ConfigError as exc:
        _error(str(exc))
        return 2
    code: int = args.handler(args, env)
    return code
