"""A small agent server for the dial tool's tests: webhook and media stream on one port.

It answers ``POST /webhooks/twilio/voice`` with TwiML built by the official
``twilio`` package and serves ``/ws/stream/{CallSid}`` with the independent
``websockets`` package, checking both signatures with twilio's own
``RequestValidator``. ``websockets`` only speaks GET, so a tiny front door
on the public port reads each request head: a POST is answered there, a GET
is piped byte for byte to the WebSocket server on a second, private port.

The agent plays a greeting (a tone, sent ahead of real time like TTS, with
one mark after it), echoes the caller's audio back in chunks of
``chunk_frames`` frames with a mark per chunk, and sends ``clear`` when a
loud frame (a barge-in) arrives. Everything it sees is recorded, with times
in seconds since it received ``start``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Stream, VoiceResponse
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from patter_core.audio._g711 import ulaw_decode, ulaw_encode

WEBHOOK_PATH = "/webhooks/twilio/voice"


@dataclass
class FakeAgent:
    auth_token: str | None = None
    public_host: str | None = None  # default: 127.0.0.1:{port}
    greeting_hz: float | None = None
    greeting_seconds: float = 1.0
    chunk_frames: int = 5
    barge_rms: float = 9000.0
    twiml: str | None = None  # answer with this instead
    refuse_ws_status: int | None = None
    stream_token: str = "tok-123"
    close_after_start: int | None = None  # close code to hang up with at once
    garbage_after_start: bool = False  # send a frame that is not JSON
    # Filled in while running:
    port: int = 0
    webhook_forms: list[dict[str, str]] = field(default_factory=list)
    webhook_signature_ok: list[bool] = field(default_factory=list)
    ws_signature_ok: list[bool] = field(default_factory=list)
    ws_paths: list[str] = field(default_factory=list)
    frames: list[dict[str, Any]] = field(default_factory=list)
    start: dict[str, Any] | None = None
    dtmf: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    marks_sent: list[str] = field(default_factory=list)
    mark_echoes: list[tuple[float, str]] = field(default_factory=list)
    clears_sent: list[float] = field(default_factory=list)
    stopped: bool = False
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return self.public_host or f"127.0.0.1:{self.port}"

    # ---------------------------------------------------------------- webhook
    def answer_webhook(self, target: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        self.webhook_forms.append(form)
        if self.auth_token:
            ok = RequestValidator(self.auth_token).validate(
                f"https://{self.host}{target}", form, headers.get("x-twilio-signature", "")
            )
            self.webhook_signature_ok.append(ok)
            if not ok:
                return 403, "invalid signature"
        else:
            self.webhook_signature_ok.append("x-twilio-signature" not in headers)
        if self.twiml is not None:
            return 200, self.twiml
        response = VoiceResponse()
        connect = Connect()
        stream = Stream(url=f"wss://{self.host}/ws/stream/{form['CallSid']}")
        stream.parameter(name="caller", value=form.get("From", ""))
        stream.parameter(name="callee", value=form.get("To", ""))
        stream.parameter(name="stream_token", value=self.stream_token)
        connect.append(stream)
        response.append(connect)
        return 200, str(response)

    # ----------------------------------------------------------------- stream
    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        self.ws_paths.append(request.path)
        signature = request.headers.get("X-Twilio-Signature")
        if self.auth_token:
            ok = RequestValidator(self.auth_token).validate(
                f"wss://{self.host}{request.path}", {}, signature or ""
            )
        else:
            ok = signature is None
        self.ws_signature_ok.append(ok)
        if self.refuse_ws_status is not None:
            return conn.respond(self.refuse_ws_status, "no stream here\n")
        if not ok:
            return conn.respond(403, "bad signature\n")
        return None

    async def handle_stream(self, conn: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        pending: list[bytes] = []
        in_barge = False
        chunk_no = 0

        async def send_audio(audio: bytes, mark: str) -> None:
            sid = self.start["streamSid"] if self.start else ""
            payload = base64.b64encode(audio).decode()
            await conn.send(
                json.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}})
            )
            self.marks_sent.append(mark)
            await conn.send(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": mark}}))

        try:
            async for message in conn:
                now = loop.time() - t0
                frame = json.loads(message)
                self.frames.append(frame)
                event = frame["event"]
                if event == "start":
                    t0 = loop.time()
                    self.start = frame
                    if self.garbage_after_start:
                        await conn.send("this is not json")
                    if self.close_after_start is not None:
                        await conn.close(self.close_after_start, "bye")
                        return
                    if self.greeting_hz:
                        tone = _tone(self.greeting_hz, self.greeting_seconds, 0.3)
                        # Ahead of real time, as TTS arrives: 100 ms messages.
                        for i in range(0, len(tone), 800):
                            payload = base64.b64encode(tone[i : i + 800]).decode()
                            await conn.send(
                                json.dumps(
                                    {
                                        "event": "media",
                                        "streamSid": frame["streamSid"],
                                        "media": {"payload": payload},
                                    }
                                )
                            )
                        self.marks_sent.append("greeting")
                        await conn.send(
                            json.dumps(
                                {
                                    "event": "mark",
                                    "streamSid": frame["streamSid"],
                                    "mark": {"name": "greeting"},
                                }
                            )
                        )
                elif event == "media":
                    audio = base64.b64decode(frame["media"]["payload"])
                    pcm = np.frombuffer(ulaw_decode(audio), dtype="<i2").astype(np.float64)
                    rms = math.sqrt(float(np.mean(pcm * pcm))) if len(pcm) else 0.0
                    if rms > self.barge_rms:
                        if not in_barge:
                            in_barge = True
                            pending.clear()
                            self.clears_sent.append(now)
                            await conn.send(
                                json.dumps({"event": "clear", "streamSid": frame["streamSid"]})
                            )
                        continue
                    in_barge = False
                    if audio.count(0xFF) == len(audio):
                        continue  # silence: nothing to echo
                    pending.append(audio)
                    if len(pending) == self.chunk_frames:
                        chunk_no += 1
                        await send_audio(b"".join(pending), f"echo-{chunk_no}")
                        pending.clear()
                elif event == "dtmf":
                    self.dtmf.append((now, frame))
                elif event == "mark":
                    self.mark_echoes.append((now, frame["mark"]["name"]))
                elif event == "stop":
                    self.stopped = True
        finally:
            self.done.set()


def _tone(hz: float, seconds: float, amplitude: float) -> bytes:
    t = np.arange(round(seconds * 8000)) / 8000.0
    pcm = np.round(amplitude * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    return ulaw_encode(pcm.tobytes())


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with suppress(Exception):
            writer.close()


@contextmanager
def fake_agent(**config: Any) -> Iterator[FakeAgent]:
    """Run a :class:`FakeAgent` on 127.0.0.1 in a thread; yields it with ``port`` set."""
    agent = FakeAgent(**config)
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"] = stop
        box["loop"] = asyncio.get_running_loop()
        async with serve(
            agent.handle_stream,
            "127.0.0.1",
            0,
            process_request=agent.process_request,
            compression=None,
        ) as ws_server:
            ws_port = next(iter(ws_server.sockets)).getsockname()[1]

            async def front(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    writer.close()
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                if method == "POST":
                    body = await reader.readexactly(int(headers.get("content-length", "0")))
                    status, text = agent.answer_webhook(target, headers, body)
                    data = text.encode()
                    ctype = "text/xml" if status == 200 else "text/plain"
                    writer.write(
                        f"HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\n"
                        f"content-length: {len(data)}\r\nconnection: close\r\n\r\n".encode()
                        + data
                    )
                    await writer.drain()
                    writer.close()
                    return
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", ws_port)
                up_writer.write(head)
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

            front_server = await asyncio.start_server(front, "127.0.0.1", 0)
            agent.port = front_server.sockets[0].getsockname()[1]
            ready.set()
            async with front_server:
                await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("fake agent did not start")
    try:
        yield agent
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)
