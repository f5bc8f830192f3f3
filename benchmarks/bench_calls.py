"""Whole calls under load: the server's CPU per call-second, against a naive relay.

    python -m benchmarks.bench_calls [--calls 1,10,50,100] [--seconds 4] [--runs 3]
                                     [--provider echo|openai] [--no-baseline]
    python -m benchmarks.bench_calls --profile [--calls 50] [--provider openai] [--profile-out F]

What runs (all on 127.0.0.1, each in a process of its own):

* the server, ``python -m patter_anyio serve`` with no carrier or provider
  keys: the echo agent, or with ``--provider openai`` an OpenAI Realtime
  session pointed (``OPENAI_BASE_URL``) at
* the fake OpenAI Realtime server of :mod:`benchmarks._load_helpers`,
  which answers with real-time audio whose every 20 ms frame carries the
  time it was sent;
* the baseline, the naive relay of DESIGN.md ("The hot path"), a
  ``websockets`` server relaying each Twilio frame to the same fake and back
  with ``json.loads``/``json.dumps``;
* this process, the load generator: N simulated Twilio calls at once. Each
  posts the voice webhook (the baseline has none), opens the media stream
  the TwiML names with the ``<Parameter>``s as ``customParameters``, sends
  ``connected``, ``start`` and a 20 ms mu-law frame every 20 ms for
  ``--seconds`` (0.6 s of 440 Hz tone, 1.4 s of silence, repeated: talk and
  pause, so the echo agent answers), echoes each mark when its audio would
  have finished playing (as Twilio does; ``clear`` returns the pending marks
  at once), waits ``--drain`` seconds for the last answer, sends ``stop``.

What it prints, per N, median of ``--runs`` runs (runs of the server and
of the baseline alternate, so a busy machine hurts both alike):

* CPU ms per call-second: the server process's user+system CPU over the
  run (from before the first webhook to after the last socket closed; read
  from /proc, see :func:`benchmarks._load_helpers.cpu_seconds`) divided by
  N x ``--seconds``; and the ratio server / baseline;
* frames received by the callers against frames expected: the fake's
  ``--seconds - 0.8`` s of answer per call, or, from the echo agent, each
  completed talk spurt once more (30 frames; the resampler's filter tail
  makes it 31 on the way back, counted as expected);
* caller frames the fake provider received against those the callers sent
  ("up rx/sent"), counted at the fake from each ``input_audio_buffer.append``
  (OpenAI provider and the relay; the echo agent has no provider hop): every
  frame, the ones sent before the provider was ready included;
* lateness of the frames the callers receive, p50 and p99 over every frame:
  with the fake provider, arrival minus the send time stamped in the frame;
  with the echo agent, arrival minus the moment the echo was due (the
  caller sent the frame completing the echo's 600 ms of silence);
* the load generator's own CPU: near 100 % of a core means it, not the
  server, set the pace.

``--profile`` runs the server under cProfile instead (no baseline; the CPU
figures are then inflated by the profiler) and prints the 25 functions with
the most cumulative time and the 15 with the most own time.

Every child process is stopped on any exit of this one, and asked by the
kernel to stop if this one is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import os
import pstats
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlencode, urlsplit

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from patter_core.audio._g711 import ulaw_encode
from patter_core.media import AgentMedia, CarrierPlayback, Clear, Mark, TwilioCarrierSide
from patter_core.webhooks import read_stream_twiml

from ._load_helpers import (
    FRAME_BYTES,
    Child,
    Children,
    clean_env,
    cpu_seconds,
    fetch_stats,
    free_port,
    read_port_line,
    read_stamp,
    wait_http,
)

FRAME_S = 0.02
# Talk spurt and pause of the simulated caller. The pause must outlast the
# echo agent's 600 ms end-of-turn silence plus the echo's own playback
# (600 ms), or the next spurt would barge in on it.
TONE_FRAMES = 30
CYCLE_FRAMES = 100
ECHO_SILENCE_S = 0.6  # EchoConfig.silence_ms
# The upsampler's filter delays the spurt's end by a few ms, so the first
# silent frame is still voiced: the echo is one frame longer and due one later.
ECHO_TAIL_FRAMES = 1
# The fake speaks for the call's length minus this: its lead-in before the
# first answer, and slack for the stream to open under load.
FAKE_SHORTFALL_S = 0.8
# The server's limit of live media streams per client address
# (ServerLimits.max_ws_per_ip); callers spread over 127.0.0.2, .3, ...
PER_SOURCE_IP = 10
# Calls start spread over this long, as calls arrive, not all in one instant.
MAX_RAMP_S = 1.0
TICK_S = 0.005

Target = Literal["patter", "relay"]


# -- the simulated callers ----------------------------------------------------------------


def _tone_frames() -> list[str]:
    t = np.arange(TONE_FRAMES * FRAME_BYTES) / 8000.0
    pcm = (8000 * np.sin(2 * np.pi * 440.0 * t)).astype("<i2").tobytes()
    codes = ulaw_encode(pcm)
    return [
        base64.b64encode(codes[i : i + FRAME_BYTES]).decode("ascii")
        for i in range(0, len(codes), FRAME_BYTES)
    ]


TONE = _tone_frames()
SILENCE = base64.b64encode(b"\xff" * FRAME_BYTES).decode("ascii")


@dataclass
class Plan:
    target: Target
    port: int
    seconds: float
    drain: float
    stamped: bool  # frames carry the fake's send time (else: echo agent)

    @property
    def frames(self) -> int:
        return round(self.seconds / FRAME_S)

    def expected_frames(self) -> int:
        if self.stamped:
            return round(max(0.0, self.seconds - FAKE_SHORTFALL_S) * 50)
        # Each spurt whose end-of-turn silence was fully sent comes back.
        due = TONE_FRAMES + ECHO_TAIL_FRAMES + round(ECHO_SILENCE_S / FRAME_S)
        spurts = sum(
            1 for start in range(0, self.frames, CYCLE_FRAMES) if start + due <= self.frames
        )
        return spurts * (TONE_FRAMES + ECHO_TAIL_FRAMES)


@dataclass
class CallResult:
    frames: int = 0
    sent: int = 0  # caller frames sent
    lateness: list[float] = field(default_factory=list)
    unstamped: int = 0
    error: str | None = None


class SimCall:
    """One Twilio call: the webhook, then the media stream.

    Twilio's frames and the reading of the server's are the core's carrier
    role (:class:`TwilioCarrierSide`, media from prebuilt base64); playback
    is the core's :class:`CarrierPlayback` on this call's clock (seconds
    since ``start``), without recording what it heard.
    """

    def __init__(self, index: int, plan: Plan, start_at: float) -> None:
        self.plan = plan
        self.stamped = plan.stamped  # read per frame
        self.index = index
        self.source = f"127.0.0.{2 + index // PER_SOURCE_IP}"
        call_sid = f"CA{index:08d}{os.getpid():08x}{time.monotonic_ns() & 0xFFFFFFFFFFFF:016x}"
        self.side = TwilioCarrierSide(
            account_sid="AC" + "0" * 32, call_sid=call_sid, stream_sid="MZ" + call_sid[2:]
        )
        self.start_at = start_at
        self.ws: ClientConnection | None = None
        self.result = CallResult()
        self.sent = 0  # media frames sent
        self.next_frame = math.inf
        self.drain_until = math.inf
        self.finished = asyncio.Event()
        self.echo_due = math.inf
        self.t0 = 0.0  # when start went out: the playback clock's zero
        self.playback = CarrierPlayback(jitter_buffer=0.0, record=False)
        self.echoes: list[str] = []  # marks to echo at the next tick
        self.rx = bytearray()

    async def _webhook(self) -> tuple[str, dict[str, str]]:
        form = {
            "AccountSid": self.side.account_sid,
            "CallSid": self.side.call_sid,
            "From": "+14155550100",
            "To": "+18005550199",
            "Direction": "inbound",
            "CallStatus": "ringing",
        }
        body = urlencode(form).encode()
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.plan.port, local_addr=(self.source, 0)
        )
        head = (
            f"POST /webhooks/twilio/voice HTTP/1.1\r\nHost: 127.0.0.1:{self.plan.port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        answer = await reader.read()
        writer.close()
        status, _, twiml = answer.partition(b"\r\n\r\n")
        if not status.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"webhook answered {status[:40]!r}")
        stream = read_stream_twiml(twiml)  # as Twilio reads it
        return urlsplit(stream.url).path, stream.parameters

    async def run(self) -> None:
        try:
            await asyncio.sleep(max(0.0, self.start_at - time.monotonic()))
            if self.plan.target == "patter":
                path, params = await self._webhook()
            else:
                path, params = f"/ws/stream/{self.side.call_sid}", {}
            self.ws = await connect(
                f"ws://127.0.0.1:{self.plan.port}{path}",
                compression=None,
                proxy=None,
                open_timeout=30,
                max_size=1 << 20,
                local_addr=(self.source, 0),
            )
            await self.ws.send(self.side.connected())
            await self.ws.send(self.side.start(params))
            self.t0 = time.monotonic()
            reader = asyncio.create_task(self._read(self.ws))
            self.next_frame = self.t0  # the ticker takes over
            await self.finished.wait()
            await self.ws.send(self.side.stop())
            await self.ws.close()
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(reader, 10)
        except Exception as exc:  # reported per call; the run goes on
            self.result.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.result.sent = self.sent
            self.next_frame = self.drain_until = math.inf
            self.finished.set()
            if self.ws is not None:
                await self.ws.close()

    async def _read(self, ws: ClientConnection) -> None:
        with suppress(ConnectionClosed):
            async for raw in ws:
                self.on_message(raw, time.monotonic())

    def on_message(self, raw: str | bytes, now: float) -> None:
        """One frame from the server, read by the carrier role."""
        event = self.side.receive(raw)
        if type(event) is AgentMedia:
            data = event.payload
            self.playback.add_audio(data, now - self.t0)
            if self.rx or len(data) != FRAME_BYTES:
                self._reframe(data, now)
            elif self.stamped:  # the server sends whole 20 ms frames: the common case
                self._stamped(data, now)
            else:
                self.result.frames += 1
                self.result.lateness.append(now - self.echo_due)
        elif type(event) is Mark:
            self.echoes += self.playback.add_mark(event.name, now - self.t0)
        elif type(event) is Clear:
            # Twilio empties its buffer and returns every pending mark.
            self.echoes += self.playback.clear(now - self.t0)

    def _stamped(self, frame: bytes, now: float) -> None:
        result = self.result
        result.frames += 1
        stamp = read_stamp(frame)
        if stamp is None:
            result.unstamped += 1
        else:
            result.lateness.append(now - stamp[1])

    def _reframe(self, data: bytes, now: float) -> None:
        """Audio not in whole frames: count the frames it completes."""
        self.rx += data
        whole = len(self.rx) - len(self.rx) % FRAME_BYTES
        for offset in range(0, whole, FRAME_BYTES):
            if self.stamped:
                self._stamped(bytes(self.rx[offset : offset + FRAME_BYTES]), now)
            else:
                self.result.frames += 1
                self.result.lateness.append(now - self.echo_due)
        del self.rx[:whole]

    async def tick(self, now: float) -> None:
        """Send what is due: media frames in real time, then echoed marks."""
        ws = self.ws
        if ws is None:
            return
        while self.next_frame <= now and self.sent < self.plan.frames:
            k = self.sent % CYCLE_FRAMES
            payload = TONE[k] if k < TONE_FRAMES else SILENCE
            if k == TONE_FRAMES + ECHO_TAIL_FRAMES + round(ECHO_SILENCE_S / FRAME_S) - 1:
                self.echo_due = now  # this frame completes the end-of-turn silence
            self.sent += 1
            await ws.send(self.side.media_b64(payload))
            self.next_frame += FRAME_S
            if self.sent == self.plan.frames:
                self.drain_until = self.next_frame + self.plan.drain
        names, self.echoes = self.echoes, []
        names += self.playback.due_marks(now - self.t0)
        for name in names:
            await ws.send(self.side.mark(name))
        if now >= self.drain_until:
            self.drain_until = math.inf
            self.finished.set()


async def _ticker(calls: list[SimCall]) -> None:
    """One timer for every call: each call's frames keep their own phase."""
    next_tick = time.monotonic()
    while not all(c.finished.is_set() for c in calls):
        now = time.monotonic()
        for call in calls:
            if not call.finished.is_set():
                try:
                    await call.tick(now)
                except ConnectionClosed:
                    call.finished.set()
        next_tick = max(next_tick + TICK_S, time.monotonic())
        await asyncio.sleep(next_tick - time.monotonic())


async def run_calls(plan: Plan, n: int) -> list[CallResult]:
    ramp = min(MAX_RAMP_S, 0.01 * n)
    t0 = time.monotonic() + 0.05
    calls = [SimCall(i, plan, t0 + ramp * i / n) for i in range(n)]
    ticker = asyncio.create_task(_ticker(calls))
    await asyncio.gather(*(c.run() for c in calls))
    ticker.cancel()
    with suppress(asyncio.CancelledError):
        await ticker
    return [c.result for c in calls]


# -- one measured run, and the table ---------------------------------------------------------


@dataclass
class RunFigures:
    cpu_ms_per_call_s: float
    frames: int
    expected: int
    unstamped: int
    lateness: list[float]
    errors: list[str]
    loadgen_cpu: float  # fraction of one core
    #: Caller frames the fake provider received, and the callers sent (None:
    #: the caller's audio does not go through the fake, as with the echo agent).
    up_frames: int | None = None
    up_sent: int = 0


def measure(plan: Plan, n: int, server_pid: int, fake_port: int | None = None) -> RunFigures:
    up0 = fetch_stats(fake_port)["audio_bytes_in"] if fake_port else 0
    cpu0, own0, wall0 = cpu_seconds(server_pid), time.process_time(), time.monotonic()
    results = asyncio.run(run_calls(plan, n))
    time.sleep(0.2)  # let the server finish closing the last calls
    cpu1, own1, wall1 = cpu_seconds(server_pid), time.process_time(), time.monotonic()
    up1 = fetch_stats(fake_port)["audio_bytes_in"] if fake_port else 0
    return RunFigures(
        up_frames=(up1 - up0) // FRAME_BYTES if fake_port else None,
        up_sent=sum(r.sent for r in results),
        cpu_ms_per_call_s=1000 * (cpu1 - cpu0) / (n * plan.seconds),
        frames=sum(r.frames for r in results),
        expected=n * plan.expected_frames(),
        unstamped=sum(r.unstamped for r in results),
        lateness=[x for r in results for x in r.lateness],
        errors=[r.error for r in results if r.error],
        loadgen_cpu=(own1 - own0) / (wall1 - wall0),
    )


def _pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Row:
    cpu: float
    frames: str
    up: str
    p50: float
    p99: float
    loadgen: float
    errors: list[str]


def summarise(runs: list[RunFigures]) -> Row:
    late = [x for r in runs for x in r.lateness]
    frames = sum(r.frames for r in runs)
    expected = sum(r.expected for r in runs)
    unstamped = sum(r.unstamped for r in runs)
    text = f"{frames}/{expected}" + (f" ({unstamped} unstamped)" if unstamped else "")
    counted = [r for r in runs if r.up_frames is not None]
    up = (
        f"{sum(r.up_frames or 0 for r in counted)}/{sum(r.up_sent for r in counted)}"
        if counted
        else "-"
    )
    return Row(
        up=up,
        cpu=statistics.median(r.cpu_ms_per_call_s for r in runs),
        frames=text,
        p50=1000 * _pct(late, 0.50),
        p99=1000 * _pct(late, 0.99),
        loadgen=max(r.loadgen_cpu for r in runs),
        errors=[e for r in runs for e in r.errors],
    )


# -- orchestration ---------------------------------------------------------------------------


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM becomes SystemExit, so the ``finally`` that stops children runs."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _start_fake(children: Children, seconds: float) -> Child:
    fake = children.start(
        "fake",
        [
            "-m",
            "benchmarks._load_helpers",
            "fake",
            "--audio-seconds",
            str(max(0.0, seconds - FAKE_SHORTFALL_S)),
        ],
        clean_env(),
    )
    fake.port = read_port_line(fake)
    return fake


def _start_server(
    children: Children, provider: str, fake: Child | None, profile_path: str | None
) -> Child:
    env = clean_env()
    port = free_port()
    argv = ["-m", "patter_anyio", "serve", "--port", str(port), "--log-level", "WARNING"]
    if provider == "openai":
        assert fake is not None
        env["OPENAI_API_KEY"] = "sk-bench"
        env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{fake.port}/v1"
        argv += ["--provider", "openai"]
    if profile_path:
        argv = ["-m", "cProfile", "-o", profile_path, *argv]
    server = children.start("server", argv, env)
    server.port = port
    wait_http(server, "/health")
    return server


def _parse_calls(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--calls takes numbers like 1,10,50: {text!r}") from None
    # Source addresses 127.0.0.2 up to .254 at 10 calls each.
    if not values or any(not 1 <= v <= 2500 for v in values):
        raise argparse.ArgumentTypeError("each --calls value must be 1-2500")
    return values


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _print_profile(path: str) -> None:
    stats = pstats.Stats(path)
    stats.strip_dirs()
    print("\nserver profile, top 25 by cumulative time:")
    stats.sort_stats("cumulative").print_stats(25)
    print("server profile, top 15 by own time:")
    stats.sort_stats("tottime").print_stats(15)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_calls", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--calls",
        type=_parse_calls,
        default=[1, 10, 50, 100],
        help="concurrent calls, comma-separated (default 1,10,50,100)",
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="media per call (default 4)")
    parser.add_argument("--runs", type=int, default=3, help="runs per N and target (default 3)")
    parser.add_argument("--drain", type=float, default=0.8, help="wait after the last frame")
    parser.add_argument(
        "--provider",
        choices=("echo", "openai"),
        default="echo",
        help="the server's agent: echo, or openai against the fake",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive relay")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the server under cProfile (no baseline) and print the top",
    )
    parser.add_argument("--profile-out", metavar="PATH", help="also keep the profile (pstats) here")
    args = parser.parse_args(argv)
    if not 1.0 <= args.seconds <= 600 or not 1 <= args.runs <= 20 or not 0 <= args.drain <= 10:
        parser.error("--seconds 1-600, --runs 1-20, --drain 0-10")
    baseline = not (args.no_baseline or args.profile)

    with tempfile.TemporaryDirectory(prefix="bench_calls.") as workdir, _stop_on_signals():
        children = Children(workdir)
        try:
            fake = _start_fake(children, args.seconds)
            profile_path = os.path.join(workdir, "server.prof") if args.profile else None
            server = _start_server(children, args.provider, fake, profile_path)
            relay = None
            if baseline:
                relay = children.start(
                    "relay",
                    [
                        "-m",
                        "benchmarks._load_helpers",
                        "relay",
                        "--provider-url",
                        f"ws://127.0.0.1:{fake.port}/v1/realtime?model=gpt-realtime",
                    ],
                    clean_env(),
                )
                relay.port = read_port_line(relay)
            print(
                f"server: patter_anyio, agent {args.provider}{' (cProfile)' if args.profile else ''};"
                f" baseline: {'naive websockets relay to the fake provider' if relay else 'none'};"
                f" {args.seconds:g} s of media per call, {args.runs} run(s) per N; "
                f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
                flush=True,
            )
            lateness = (
                "lateness = arrival - stamped send time"
                if args.provider == "openai"
                else "lateness = arrival - echo due (end of the 600 ms silence)"
            )
            print(f"patter {lateness}; baseline lateness = arrival - stamped send time\n")
            header = (
                f"{'N':>4} | {'patter ms/call-s':>16} {'frames rx/exp':>16} {'up rx/sent':>14}"
                f" {'late p50/p99 ms':>16}"
                f" | {'relay ms/call-s':>15} {'frames rx/exp':>16} {'up rx/sent':>14}"
                f" {'late p50/p99 ms':>16}"
                f" | {'ratio':>5} | {'loadgen':>7}"
            )
            print(header)
            print("-" * len(header))
            # One unmeasured call each first: a long-running server has
            # imported, compiled and cached what a first call touches.
            warm = [Plan("patter", server.port, 1.0, 0.2, args.provider == "openai")]
            if relay is not None:
                warm.append(Plan("relay", relay.port, 1.0, 0.2, True))
            for plan in warm:
                asyncio.run(run_calls(plan, 1))
            problems: list[str] = []
            for n in args.calls:
                mine: list[RunFigures] = []
                theirs: list[RunFigures] = []
                for _ in range(args.runs):
                    plan = Plan(
                        "patter", server.port, args.seconds, args.drain, args.provider == "openai"
                    )
                    through_fake = fake.port if args.provider == "openai" else None
                    mine.append(measure(plan, n, server.proc.pid, through_fake))
                    if relay is not None:
                        plan = Plan("relay", relay.port, args.seconds, args.drain, True)
                        theirs.append(measure(plan, n, relay.proc.pid, fake.port))
                a = summarise(mine)
                b = summarise(theirs) if theirs else None
                ratio = f"{a.cpu / b.cpu:5.2f}" if b and b.cpu > 0 else "    -"
                relay_cols = (
                    f"{b.cpu:15.2f} {b.frames:>16} {b.up:>14} {_fmt(b.p50) + '/' + _fmt(b.p99):>16}"
                    if b
                    else f"{'-':>15} {'-':>16} {'-':>14} {'-':>16}"
                )
                loadgen = max(a.loadgen, b.loadgen if b else 0.0)
                print(
                    f"{n:>4} | {a.cpu:16.2f} {a.frames:>16} {a.up:>14}"
                    f" {_fmt(a.p50) + '/' + _fmt(a.p99):>16}"
                    f" | {relay_cols} | {ratio} | {100 * loadgen:6.0f}%",
                    flush=True,
                )
                for name, row in (("patter", a), ("relay", b)):
                    if row and row.errors:
                        problems.append(
                            f"N={n} {name}: {len(row.errors)} call(s) failed, e.g. {row.errors[0]}"
                        )
            print("ratio: patter's CPU per call-second over the naive relay's (lower is better)")
            for line in problems:
                print(line)
            code = children.stop(server)
            if code not in (0, None):
                print(f"server exited with {code}:\n{server.log_tail()}")
            if profile_path:
                if os.path.exists(profile_path):
                    _print_profile(profile_path)
                    if args.profile_out:
                        shutil.copyfile(profile_path, args.profile_out)
                else:
                    print(f"no profile written:\n{server.log_tail()}")
            return 1 if problems else 0
        finally:
            children.stop_all()


if __name__ == "__main__":
    sys.exit(main())
