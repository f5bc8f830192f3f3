"""The peers of the call benchmark, each run as a process of its own.

    python -m benchmarks._load_helpers fake  [--audio-seconds S] [--turn-seconds T] ...
    python -m benchmarks._load_helpers relay --provider-url ws://127.0.0.1:P/v1/realtime?...

``fake`` is the tests' fake OpenAI Realtime server
(:class:`tests.fakes.fake_openai_realtime.FakeOpenAIRealtime`, PROTOCOLS.md
section 5, GA names) on a ``websockets`` server: ``session.created`` on open, ``session.updated`` for
``session.update``, every ``input_audio_buffer.append`` swallowed unparsed
(the real server sends no ack), and, once the session is updated, spoken
answers of ``--turn-seconds`` each, paced in real time as deltas of
``--delta-ms``, for ``--audio-seconds`` in all, so audio flows both ways as
in a real call. The session is G.711 mu-law (``audio/pcmu``), which the
server under test passes through untouched, so each 20 ms frame the fake
sends can carry its own stamp: :data:`MAGIC`, a sequence number and the
``time.monotonic()`` at which it was sent. ``CLOCK_MONOTONIC`` is one clock
for every process on the machine, so the caller, reading the stamp, knows
how late the frame reached it. ``GET /stats`` answers the totals as JSON.

``relay`` is the naive relay of DESIGN.md ("The hot path") that the
benchmark measures against: a ``websockets`` server that takes a Twilio
media stream and, per message, ``json.loads`` it and ``json.dumps`` the
provider's message (and back, with a mark per provider chunk). No
transcoding, no bridge, no limits: the floor a straightforward Python
implementation reaches.

Both bind 127.0.0.1 on an ephemeral port and print ``PORT <n>`` on stdout
once listening; the benchmark reads that line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from http import HTTPStatus
from typing import IO, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tests.fakes.fake_openai_realtime import FakeOpenAIRealtime

__all__ = [
    "FRAME_BYTES",
    "MAGIC",
    "ROOT",
    "STAMP",
    "Child",
    "Children",
    "clean_env",
    "cpu_seconds",
    "die_with_parent",
    "free_port",
    "main",
    "read_port_line",
    "read_stamp",
    "wait_http",
]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: 20 ms of G.711 at 8 kHz: one Twilio media frame.
FRAME_BYTES = 160
#: Start of every stamped frame the fake sends; four unlikely mu-law codes.
MAGIC = b"\x13PB\x7e"
#: MAGIC, then a little-endian sequence number and send time (monotonic seconds).
STAMP = struct.Struct("<4sId")
# Mu-law 0xFF is digital silence: the rest of a stamped frame is quiet.
_FILLER = b"\xff" * (FRAME_BYTES - STAMP.size)
# Messages larger than this are a bug in the benchmark, not load.
_MAX_MESSAGE = 1 << 20


def read_stamp(frame: bytes) -> tuple[int, float] | None:
    """``(sequence, sent_at)`` of a frame the fake stamped, or None."""
    if len(frame) < STAMP.size or frame[:4] != MAGIC:
        return None
    _, seq, sent_at = STAMP.unpack_from(frame)
    return int(seq), float(sent_at)


def appended_bytes(text: str) -> int:
    """Audio bytes in an ``input_audio_buffer.append``, from its base64 length.

    Counted without decoding or parsing the JSON: the caller-to-provider
    frames of every call are counted at the fake, and its CPU shares the
    machine with the server under test.
    """
    begin = text.find('"audio"')
    if begin < 0:
        return 0
    begin = text.find('"', text.find(":", begin)) + 1
    end = text.find('"', begin)
    encoded = text[begin:end]
    return len(encoded) * 3 // 4 - encoded.count("=", -2)


def fetch_stats(port: int) -> dict[str, int]:
    """The fake's counters (``GET /stats``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    body = data.split(b"\r\n\r\n", 1)[1]
    stats: dict[str, int] = json.loads(body)
    return stats


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid`` so far, without psutil.

    ``/proc/<pid>/stat`` counts every thread, live or exited, but only in
    clock ticks (10 ms): too coarse for one call of a few seconds. The
    per-thread ``schedstat`` files count nanoseconds; their sum is used
    unless it falls short of ``stat`` (a thread exited and took its count
    with it), in which case ``stat`` is the better figure.
    """
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2 :].split()
    # Fields 14 and 15 of proc(5) (utime, stime) sit at 11 and 12 after the name.
    coarse = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    fine = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as f:
                fine += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return coarse
    precise = fine / 1e9
    # stat rounds each thread down to a tick: allow a tick per thread of slack.
    return precise if precise >= coarse - 0.02 else coarse


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (a preexec_fn)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the benchmark's own finally still stops us


# -- the benchmark's child processes ------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    port: int = 0

    def log_tail(self, lines: int = 15) -> str:
        self.log.flush()
        with open(self.log.name, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """Our environment minus every carrier or provider key, and no proxies."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_AUTH_TOKEN", "_PUBLIC_KEY", "_ACCOUNT_SID"))
        and not k.lower().endswith("_proxy")
        and not k.startswith(("PATTER_", "ELEVENLABS_", "OPENAI_", "DEEPGRAM_"))
    }
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Children:
    """Starts the child processes and stops every one of them on exit."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self.children: list[Child] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str]) -> Child:
        log = open(os.path.join(self.workdir, f"{name}.log"), "w+b")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, *argv],
            stdout=subprocess.PIPE if name != "server" else log,
            stderr=log,
            env=env,
            cwd=ROOT,
            start_new_session=True,  # a Ctrl-C here is ours to forward, not theirs
            preexec_fn=die_with_parent,
        )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def stop(self, child: Child, timeout: float = 15.0) -> int | None:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
            try:
                child.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        return child.proc.returncode

    def stop_all(self) -> None:
        for child in reversed(self.children):
            with suppress(OSError):
                self.stop(child, timeout=5.0)
            if child.proc.stdout is not None:
                child.proc.stdout.close()
            child.log.close()


def read_port_line(child: Child, timeout: float = 20.0) -> int:
    assert child.proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = child.proc.stdout.readline().decode("ascii", "replace")
        if line.startswith("PORT "):
            return int(line.split()[1])
        if not line and child.proc.poll() is not None:
            break
    raise RuntimeError(f"{child.name} did not start:\n{child.log_tail()}")


def wait_http(child: Child, path: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", child.port), timeout=1) as s:
                s.sendall(
                    f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
                )
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not come up:\n{child.log_tail()}")


# -- the fake OpenAI Realtime server ------------------------------------------------------


async def _send_all(ws: ServerConnection, messages: list[str]) -> None:
    for message in messages:
        await ws.send(message)


class FakeRealtime:
    """Per-process counters and the per-connection handler.

    What it says is the tests' :class:`FakeOpenAIRealtime` (one per
    connection): ``session.created``, ``session.updated``, and each answer's
    ``response.created`` ... ``response.done``. Only the hot messages are
    handled here without JSON: appends are counted unparsed, and the audio
    deltas are cut from that fake's template around their stamped payload.
    """

    def __init__(self, *, audio_seconds: float, turn_seconds: float, delta_ms: int, lead: float):
        self.audio_seconds = audio_seconds
        self.turn_seconds = turn_seconds
        self.delta_frames = max(1, delta_ms // 20)
        self.lead = lead
        self.stats = {
            "connections": 0,
            "appends": 0,
            "audio_bytes_in": 0,
            "frames_sent": 0,
            "open": 0,
        }

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/stats":
            return connection.respond(HTTPStatus.OK, json.dumps(self.stats) + "\n")
        if not request.path.startswith(("/v1/realtime", "/realtime")):
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None

    async def handle(self, ws: ServerConnection) -> None:
        self.stats["connections"] += 1
        self.stats["open"] += 1
        fake = FakeOpenAIRealtime()
        audio: asyncio.Task[None] | None = None
        try:
            await _send_all(ws, fake.on_connect())
            async for message in ws:
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                # The hot message is not parsed: the fake's CPU shares the cores.
                if "input_audio_buffer.append" in text[:64]:
                    self.stats["appends"] += 1
                    self.stats["audio_bytes_in"] += appended_bytes(text)
                    continue
                if json.loads(text).get("type") == "session.update":
                    await _send_all(ws, fake.on_message(text))
                    if audio is None:
                        audio = asyncio.create_task(self._speak(ws, fake))
        except ConnectionClosed:
            pass
        finally:
            self.stats["open"] -= 1
            if audio is not None:
                audio.cancel()

    async def _speak(self, ws: ServerConnection, fake: FakeOpenAIRealtime) -> None:
        """Answers of ``turn_seconds``, as real-time deltas, ``audio_seconds`` in all."""
        total = round(self.audio_seconds * 50)
        per_turn = max(1, round(self.turn_seconds * 50))
        step = self.delta_frames * 0.02
        due = time.monotonic() + self.lead
        seq = 0
        try:
            while seq < total:
                await _send_all(ws, fake.begin_response())
                head, tail = fake.audio_template()
                turn_end = min(total, seq + per_turn)
                while seq < turn_end:
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    due += step
                    count = min(self.delta_frames, turn_end - seq)
                    now = time.monotonic()
                    chunk = b"".join(
                        STAMP.pack(MAGIC, seq + i, now) + _FILLER for i in range(count)
                    )
                    seq += count
                    await ws.send(head + base64.b64encode(chunk).decode("ascii") + tail)
                    self.stats["frames_sent"] += count
                await _send_all(ws, fake.end_response())
        except ConnectionClosed:
            pass


# -- the naive relay --------------------------------------------------------------------


async def _relay_provider(provider: ClientConnection, caller: ServerConnection, sid: str) -> None:
    marks = 0
    async for raw in provider:
        message = json.loads(raw)
        if message.get("type") == "response.output_audio.delta":
            await caller.send(
                json.dumps(
                    {"event": "media", "streamSid": sid, "media": {"payload": message["delta"]}}
                )
            )
            marks += 1
            await caller.send(
                json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": f"m{marks}"}})
            )


def relay_handler(provider_url: str) -> Callable[[ServerConnection], Any]:
    session_update = json.dumps(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {
                    "input": {"format": {"type": "audio/pcmu"}},
                    "output": {"format": {"type": "audio/pcmu"}},
                },
            },
        }
    )

    async def handle(caller: ServerConnection) -> None:
        provider: ClientConnection | None = None
        pump: asyncio.Task[None] | None = None
        try:
            async for raw in caller:
                message = json.loads(raw)
                event = message.get("event")
                if event == "media" and provider is not None:
                    await provider.send(
                        json.dumps(
                            {
                                "type": "input_audio_buffer.append",
                                "audio": message["media"]["payload"],
                            }
                        )
                    )
                elif event == "start" and provider is None:
                    sid = message["start"]["streamSid"]
                    provider = await connect(
                        provider_url,
                        additional_headers={"Authorization": "Bearer sk-bench"},
                        compression=None,
                        proxy=None,
                        max_size=_MAX_MESSAGE,
                    )
                    await provider.send(session_update)
                    pump = asyncio.create_task(_relay_provider(provider, caller, sid))
                elif event == "stop":
                    break
        except ConnectionClosed:
            pass
        finally:
            if pump is not None:
                pump.cancel()
            if provider is not None:
                await provider.close()

    return handle


# -- command line -------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    if args.role == "fake":
        fake = FakeRealtime(
            audio_seconds=args.audio_seconds,
            turn_seconds=args.turn_seconds,
            delta_ms=args.delta_ms,
            lead=args.lead,
        )
        server = await serve(
            fake.handle,
            "127.0.0.1",
            0,
            process_request=fake.process_request,
            compression=None,
            max_size=_MAX_MESSAGE,
        )
    else:
        server = await serve(
            relay_handler(args.provider_url),
            "127.0.0.1",
            0,
            compression=None,
            max_size=_MAX_MESSAGE,
        )
    port = next(iter(server.sockets)).getsockname()[1]
    print(f"PORT {port}", flush=True)
    await stop
    server.close()
    await server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._load_helpers")
    parser.add_argument("role", choices=("fake", "relay"))
    parser.add_argument("--audio-seconds", type=float, default=3.0, help="fake: audio per call")
    parser.add_argument("--turn-seconds", type=float, default=1.0, help="fake: audio per answer")
    parser.add_argument("--delta-ms", type=int, default=100, help="fake: audio per delta")
    parser.add_argument("--lead", type=float, default=0.1, help="fake: silence before speaking")
    parser.add_argument("--provider-url", default="", help="relay: the provider WebSocket URL")
    args = parser.parse_args(argv)
    if args.role == "relay" and not args.provider_url.startswith("ws://127.0.0.1:"):
        parser.error("relay needs --provider-url ws://127.0.0.1:PORT/...")
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
