"""The peers of the call benchmark, each run as a process of its own.

    python -m benchmarks._load_helpers fake  [--audio-seconds S] [--turn-seconds T] ...
    python -m benchmarks._load_helpers relay --provider-url ws://127.0.0.1:P/v1/realtime?...

``fake`` is a minimal OpenAI Realtime server (PROTOCOLS.md section 5, GA
names): ``session.created`` on open, ``session.updated`` for
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
import struct
import sys
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Request, Response, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

__all__ = [
    "FRAME_BYTES",
    "MAGIC",
    "STAMP",
    "cpu_seconds",
    "die_with_parent",
    "main",
    "read_stamp",
]

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


# -- the fake OpenAI Realtime server ------------------------------------------------------


class FakeRealtime:
    """Per-process counters and the per-connection handler."""

    def __init__(self, *, audio_seconds: float, turn_seconds: float, delta_ms: int, lead: float):
        self.audio_seconds = audio_seconds
        self.turn_seconds = turn_seconds
        self.delta_frames = max(1, delta_ms // 20)
        self.lead = lead
        self.stats = {"connections": 0, "appends": 0, "frames_sent": 0, "open": 0}
        self._ids = 0

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_{self._ids}"

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/stats":
            return connection.respond(HTTPStatus.OK, json.dumps(self.stats) + "\n")
        if not request.path.startswith(("/v1/realtime", "/realtime")):
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None

    async def handle(self, ws: ServerConnection) -> None:
        self.stats["connections"] += 1
        self.stats["open"] += 1
        audio: asyncio.Task[None] | None = None
        try:
            await ws.send(json.dumps({"type": "session.created", "event_id": self._id("event"),
                                      "session": {"id": self._id("sess"), "type": "realtime"}}))  # fmt: skip
            async for message in ws:
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                # The hot message is not parsed: the fake's CPU shares the cores.
                if "input_audio_buffer.append" in text[:64]:
                    self.stats["appends"] += 1
                    continue
                kind = json.loads(text).get("type")
                if kind == "session.update":
                    await ws.send(json.dumps({"type": "session.updated",
                                              "event_id": self._id("event"), "session": {}}))  # fmt: skip
                    if audio is None:
                        audio = asyncio.create_task(self._speak(ws))
        except ConnectionClosed:
            pass
        finally:
            self.stats["open"] -= 1
            if audio is not None:
                audio.cancel()

    async def _speak(self, ws: ServerConnection) -> None:
        """Answers of ``turn_seconds``, as real-time deltas, ``audio_seconds`` in all."""
        total = round(self.audio_seconds * 50)
        per_turn = max(1, round(self.turn_seconds * 50))
        step = self.delta_frames * 0.02
        due = time.monotonic() + self.lead
        seq = 0
        try:
            while seq < total:
                response, item = self._id("resp"), self._id("item")
                head = (f'"response_id":"{response}","item_id":"{item}",'
                        '"output_index":0,"content_index":0')  # fmt: skip
                await ws.send(json.dumps({"type": "response.created", "event_id": self._id("event"),
                                          "response": {"id": response, "status": "in_progress"}}))  # fmt: skip
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
                    delta = base64.b64encode(chunk).decode("ascii")
                    await ws.send(
                        f'{{"type":"response.output_audio.delta","event_id":"{self._id("event")}",'
                        f'{head},"delta":"{delta}"}}'
                    )
                    self.stats["frames_sent"] += count
                await ws.send(f'{{"type":"response.output_audio.done","event_id":"e",{head}}}')
                await ws.send(json.dumps({"type": "response.done", "event_id": self._id("event"),
                                          "response": {"id": response, "status": "completed",
                                                       "status_details": None, "output": []}}))  # fmt: skip
        except ConnectionClosed:
            pass


# -- the naive relay --------------------------------------------------------------------


async def _relay_provider(provider: ClientConnection, caller: ServerConnection, sid: str) -> None:
    marks = 0
    async for raw in provider:
        message = json.loads(raw)
        if message.get("type") == "response.output_audio.delta":
            await caller.send(
                json.dumps({"event": "media", "streamSid": sid,
                            "media": {"payload": message["delta"]}})  # fmt: skip
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
                        json.dumps({"type": "input_audio_buffer.append",
                                    "audio": message["media"]["payload"]})  # fmt: skip
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
