"""``python -m patter_anyio dial``: a carrier in a box, on the command line.

The call itself is :func:`dial` (in ``_dial_call``, re-exported here with
its options and report); this module is its command line.

:func:`register_dial` adds the sub-command to the program's argparse
sub-parsers and sets ``handler`` on the parsed namespace; the handler runs
the call and returns the exit code: 0 for a call that ran, 1 for a call
that failed (server unreachable, webhook refused, no ``<Stream>``,
WebSocket refused), 2 for bad flags or an unreadable WAV -- always one
line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn, TextIO

import anyio

from ._config import ConfigError
from ._dial_call import DialError, DialOptions, DialProgress, DialReport, dial
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
]

_PROG = "patter-local"
_DTMF_DIGITS = "0123456789*#ABCD"


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, not {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, not {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, not {text!r}")
    return value


def _hertz(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a frequency in Hz, not {text!r}") from None
    # 8 kHz audio carries frequencies below 4 kHz only (Nyquist).
    if not math.isfinite(value) or not 0 < value < 4000:
        raise argparse.ArgumentTypeError(f"frequency must be between 0 and 4000 Hz, not {text!r}")
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
        help="play Twilio against a running server: place a test call",
        description="Play Twilio against a running server: post a signed incoming-call "
        "webhook, follow the TwiML to the media stream, send audio in real time, echo "
        "marks, and report what a caller would notice.",
        epilog="environment:\n  TWILIO_AUTH_TOKEN      signs the webhook and the stream upgrade\n"
        "  PATTER_WEBHOOK_URL     default for --webhook-url",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--server", default="http://127.0.0.1:8000", help="server to call (default %(default)s)"
    )
    p.add_argument(
        "--webhook-url",
        help="public host the server is configured with (default: the --server host:port)",
    )
    p.add_argument("--webhook-path", default="/webhooks/twilio/voice", help=argparse.SUPPRESS)
    p.add_argument("--auth-token", help="Twilio Auth Token to sign with (env TWILIO_AUTH_TOKEN)")
    p.add_argument("--from", dest="from_number", default="+15005550006", help="caller number")
    p.add_argument("--to", dest="to_number", default="+15005550001", help="called number")
    p.add_argument("--carrier", choices=("twilio",), default="twilio", help="carrier to play")
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
    ended = "we sent stop" if report.ended_by == "carrier" else "the agent closed the stream"
    if report.ended_by == "agent" and report.close_code is not None:
        ended += f" ({report.close_code})"
    lines = [
        f"call {report.call_sid}  stream {report.stream_sid}  ({signed})",
        f"  stream url          {report.stream_url}",
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
    if report.ignored_events:
        lines.append(f"  ignored events      {', '.join(sorted(set(report.ignored_events)))}")
    if record_path:
        lines.append(f"  recording           {record_path} ({len(report.audio) / 16000:.2f} s)")
    if report.transcript:
        lines.append("  transcript")
        lines.extend(f"    {line}" for line in report.transcript)
    else:
        lines.append("  transcript          none: a carrier hears audio only (external server)")
    return "\n".join(lines)


def _error(message: str) -> None:
    print(f"{_PROG}: error: {message}", file=sys.stderr)


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
    progress = None if args.quiet else _ProgressLine(sys.stderr)
    options = DialOptions(
        server=args.server,
        webhook_host=args.webhook_url or env.get("PATTER_WEBHOOK_URL") or None,
        webhook_path=args.webhook_path,
        auth_token=args.auth_token or env.get("TWILIO_AUTH_TOKEN") or None,
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
    )
    try:
        report = anyio.run(dial, options, backend=args.backend)
    except DialError as exc:
        if progress is not None:
            progress.finish()
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    if progress is not None:
        progress.finish()
    if args.record:
        try:
            write_wav_pcm16(args.record, report.audio)
        except OSError as exc:
            _error(f"cannot write {args.record}: {exc.strerror or exc}")
            return 1
    print(format_summary(report, record_path=args.record))
    if report.ended_by == "agent" and report.close_code not in (None, 1000):
        return 1
    return 0


def dial_main(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """``dial`` on its own: parse ``argv`` (the flags after ``dial``) and run."""
    try:
        args = build_dial_parser().parse_args(["dial", *argv])
    except ConfigError as exc:
        _error(str(exc))
        return 2
    code: int = args.handler(args, env)
    return code
