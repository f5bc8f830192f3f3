"""Loopback fakes for the pipeline's providers, the carrier side, and audio checks.

* :func:`pipeline_http_server` serves, on one stdlib HTTP server, the OpenAI
  endpoints the pipeline calls (chat completions streamed as SSE,
  ``/audio/speech`` as 24 kHz PCM, ``/audio/transcriptions``) and ElevenLabs'
  streamed text-to-speech (``pcm_16000``). Speech is a tone, so what the
  caller hears can be checked by frequency; it is streamed in odd-sized
  chunks so a chunk boundary falls inside a sample.
* :func:`deepgram_server` serves a live-transcription WebSocket with the
  ``websockets`` package: it records the linear16 audio and answers with a
  final transcript once it has heard enough.
* :class:`TwilioCarrier` is Twilio: it posts webhooks signed with the
  official ``twilio`` package and speaks Media Streams over the
  ``websockets`` package, on a thread of its own, so the code under test
  can run on asyncio or trio in the test's thread.
* :func:`analyse_tone` measures a tone's frequency and SNR.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import anyio
import numpy as np
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from patter_core import RemoteProtocolError
from patter_core.audio._g711 import ulaw_decode, ulaw_encode
from patter_core.media import AgentMedia, Mark, TwilioCarrierSide
from patter_core.webhooks import read_stream_twiml

from .fake_deepgram import results
from .fake_openai_http import chunk, content_chunks
from .servers import RunningWsServer, websocket_server

# -- audio ---------------------------------------------------------------------------


def tone_pcm(freq: float, ms: int, rate: int, amplitude: int = 8000) -> bytes:
    """A sine tone, PCM16 LE, starting at phase 0."""
    n = rate * ms // 1000
    t = np.arange(n) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude).astype("<i2").tobytes()


def ulaw_frames(freq: float, ms: int, amplitude: int = 8000) -> list[bytes]:
    """A tone as Twilio's 20 ms μ-law 8 kHz frames (160 bytes each)."""
    data = ulaw_encode(tone_pcm(freq, ms, 8000, amplitude))
    return [data[i : i + 160] for i in range(0, len(data), 160)]


@dataclass(frozen=True)
class ToneReport:
    peak_hz: float
    snr_db: float
    seconds: float


def analyse_tone(pcm: bytes, rate: int, *, silence: int = 200) -> ToneReport:
    """Frequency of the strongest tone and its SNR, after trimming silence.

    SNR is the power in the peak's bins (the Hann window's main lobe plus a
    margin) against the power in every other bin except DC.
    """
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    loud = np.nonzero(np.abs(x) > silence)[0]
    if len(loud) < rate // 20:
        raise AssertionError(f"less than 50 ms of audio above silence ({len(loud)} samples)")
    x = x[loud[0] : loud[-1] + 1]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    spectrum[0] = 0.0
    peak = int(np.argmax(spectrum))
    width = 6  # bins: the Hann main lobe is +-2
    lo, hi = max(1, peak - width), peak + width + 1
    signal = float(spectrum[lo:hi].sum())
    noise = float(spectrum.sum()) - signal
    snr = 10 * np.log10(signal / max(noise, 1e-12))
    return ToneReport(peak_hz=peak * rate / len(x), snr_db=float(snr), seconds=len(x) / rate)


# -- the pipeline's HTTP providers ----------------------------------------------------


@dataclass
class HttpRecord:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class PipelineHttp:
    """State of :func:`pipeline_http_server`, shared with the test."""

    port: int
    #: Chat completion answers, one per request, each a list of text pieces;
    #: a ``None`` piece means "wait until a TTS request arrives (at most
    #: ``pause_timeout``), then go on".
    chat_answers: list[list[str | None]] = field(default_factory=list)
    tone_hz: float = 500.0
    #: Speech length per character of text.
    ms_per_char: int = 50
    pause_timeout: float = 5.0
    transcription: str = "hello there"
    requests: list[HttpRecord] = field(default_factory=list)
    #: For each chat request: True when a TTS request came in before its SSE ended.
    tts_during_chat: list[bool] = field(default_factory=list)
    chat_done_at: list[float] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    tts_seen: threading.Event = field(default_factory=threading.Event)

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def elevenlabs_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def of(self, suffix: str) -> list[HttpRecord]:
        with self.cond:
            return [r for r in self.requests if r.path.endswith(suffix)]

    def tts_texts(self) -> list[str]:
        with self.cond:
            out = []
            for r in self.requests:
                if r.path.endswith("/audio/speech"):
                    out.append(r.json["input"])
                elif "/text-to-speech/" in r.path:
                    out.append(r.json["text"])
            return out


def _write_chunk(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()


@contextmanager
def pipeline_http_server(
    *, openai_key: str = "sk-test", elevenlabs_key: str = "el-test"
) -> Iterator[PipelineHttp]:
    """OpenAI (chat SSE, speech, transcriptions) and ElevenLabs TTS over loopback HTTP."""
    state: list[PipelineHttp] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _error(self, status: int, message: str) -> None:
            data = json.dumps({"error": {"message": message}}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            fake = state[0]
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path
            rec = HttpRecord(
                method="POST",
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                at=time.monotonic(),
            )
            with fake.cond:
                fake.requests.append(rec)
                fake.cond.notify_all()
            if path.startswith("/v1/text-to-speech/"):
                if rec.headers.get("xi-api-key") != elevenlabs_key:
                    return self._error(401, "invalid_api_key")
                fake.tts_seen.set()
                return self._speech(len(rec.json["text"]), 16000)
            if rec.headers.get("authorization") != f"Bearer {openai_key}":
                return self._error(401, "Incorrect API key provided")
            if path == "/v1/audio/speech":
                fake.tts_seen.set()
                return self._speech(len(rec.json["input"]), 24000)
            if path == "/v1/chat/completions":
                return self._chat(fake)
            if path == "/v1/audio/transcriptions":
                data = json.dumps({"text": fake.transcription}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
            return self._error(404, "not found")

        def _speech(self, chars: int, rate: int) -> None:
            fake = state[0]
            pcm = tone_pcm(fake.tone_hz, fake.ms_per_char * chars, rate)
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            step = 4801  # odd: a chunk boundary inside a sample
            for i in range(0, len(pcm), step):
                _write_chunk(self, pcm[i : i + step])
            _write_chunk(self, b"")

        def _chat(self, fake: PipelineHttp) -> None:
            with fake.cond:
                pieces = fake.chat_answers.pop(0) if fake.chat_answers else ["OK."]
            fake.tts_seen.clear()
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            _write_chunk(self, _sse(chunk({"role": "assistant", "content": ""})))
            for piece in pieces:
                if piece is None:
                    fake.tts_seen.wait(fake.pause_timeout)
                else:
                    _write_chunk(self, _sse(chunk({"content": piece})))
            _write_chunk(self, _sse(content_chunks([])[-1]) + b"data: [DONE]\n\n")
            with fake.cond:
                fake.tts_during_chat.append(fake.tts_seen.is_set())
                fake.chat_done_at.append(time.monotonic())
            _write_chunk(self, b"")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.append(PipelineHttp(port=server.server_address[1]))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\n\n"


# -- Deepgram -----------------------------------------------------------------------------


@dataclass
class DeepgramFake:
    """What :func:`deepgram_server` heard, and what it says."""

    #: Answer with this final transcript once ``after_bytes`` of audio arrived.
    transcript: str | None = "hello there"
    after_bytes: int = 16000  # 0.5 s of linear16 at 16 kHz
    api_key: str = "dg-test"
    #: Seconds before the socket's opening handshake is answered.
    handshake_delay: float = 0.0
    audio: bytearray = field(default_factory=bytearray)
    control: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    server: RunningWsServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return self.server.url


@contextmanager
def deepgram_server(fake: DeepgramFake | None = None) -> Iterator[DeepgramFake]:
    """Deepgram's live ``/v1/listen`` socket, served by the ``websockets`` package."""
    dg = fake or DeepgramFake()

    async def handler(conn: ServerConnection) -> None:
        assert conn.request is not None
        dg.paths.append(conn.request.path)
        dg.auth.append(conn.request.headers.get("authorization"))
        answered = False
        try:
            async for message in conn:
                if isinstance(message, bytes):
                    dg.audio += message
                else:
                    dg.control.append(json.loads(message)["type"])
                if not answered and dg.transcript and len(dg.audio) >= dg.after_bytes:
                    answered = True
                    await conn.send(results(dg.transcript, is_final=True, speech_final=True))
        except ConnectionClosed:
            pass

    with websocket_server(handler, handshake_delay=dg.handshake_delay) as server:
        dg.server = server
        yield dg


# -- the carrier ----------------------------------------------------------------------------

WEBHOOK_HOST = "abc.ngrok.app"
TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "twilio-test-token"


def twilio_signature(url: str, params: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


def _post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    return await anyio.to_thread.run_sync(_get, port, path)


async def post_twilio_form(
    port: int,
    path: str,
    form: dict[str, str],
    *,
    sign: bool = True,
    token: str = TWILIO_TOKEN,
    host: str = WEBHOOK_HOST,
) -> tuple[int, bytes]:
    """POST a form as Twilio does, signed over ``https://{host}{path}``."""
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if sign:
        headers["x-twilio-signature"] = twilio_signature(f"https://{host}{path}", form, token)
    body = urlencode(form).encode()
    return await anyio.to_thread.run_sync(_post, port, path, body, headers)


def stream_parameters(twiml: str) -> dict[str, str]:
    """The ``<Parameter>`` pairs of a ``<Connect><Stream>`` answer."""
    return read_stream_twiml(twiml).parameters


async def incoming_call(
    port: int,
    call_sid: str,
    *,
    caller: str = "+15550001111",
    callee: str = "+15550009999",
    direction: str = "inbound",
) -> dict[str, str]:
    """The voice webhook, as Twilio posts it; returns the stream's parameters."""
    status, body = await post_twilio_form(
        port,
        "/webhooks/twilio/voice",
        {
            "CallSid": call_sid,
            "AccountSid": TWILIO_SID,
            "From": caller,
            "To": callee,
            "Direction": direction,
            "CallStatus": "ringing" if direction == "inbound" else "in-progress",
        },
    )
    assert status == 200, body
    return stream_parameters(body.decode())


@dataclass
class MediaLog:
    """What the carrier received on the media socket, in order."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    #: μ-law audio per item id, split by the marks that follow it.
    audio_by_item: dict[str, bytearray] = field(default_factory=dict)
    unmarked: bytearray = field(default_factory=bytearray)
    close_code: int | None = None
    closed: bool = False
    #: Frames Twilio would not route: no ``streamSid``, or another stream's.
    bad_frames: list[dict[str, Any]] = field(default_factory=list)

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("event") == kind]

    def item_pcm(self, item: str) -> bytes:
        """An item's audio, decoded to PCM16 at 8 kHz."""
        return ulaw_decode(bytes(self.audio_by_item.get(item, b"")))


class TwilioCarrier:
    """One Twilio media stream: the ``websockets`` client on a thread of its own.

    Frames are the core's carrier role (:class:`TwilioCarrierSide`). The
    reader echoes every mark at once (the audio "played" instantly) and
    files the audio by item id. Methods are awaited from the test's event
    loop (asyncio or trio); they hand the work to the carrier's loop.
    """

    def __init__(
        self,
        port: int,
        call_sid: str,
        parameters: dict[str, str],
        *,
        host: str = WEBHOOK_HOST,
        token: str | None = TWILIO_TOKEN,
        stream_sid: str = "MZ" + "2" * 32,
        echo_marks: bool = True,
    ) -> None:
        self.port = port
        self.call_sid = call_sid
        self.parameters = parameters
        self.host = host
        self.token = token
        self.stream_sid = stream_sid
        self.echo_marks = echo_marks
        self.log = MediaLog()
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws: ClientConnection | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.side = TwilioCarrierSide(
            account_sid=TWILIO_SID, call_sid=call_sid, stream_sid=stream_sid
        )

    # -- lifecycle (blocking; run through anyio.to_thread) --------------------------

    def _open(self) -> None:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise AssertionError("carrier did not connect")
        if self._error is not None:
            raise self._error

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        path = f"/ws/stream/{self.call_sid}"
        headers = {}
        if self.token:
            headers["X-Twilio-Signature"] = twilio_signature(
                f"wss://{self.host}{path}", {}, self.token
            )
        try:
            ws = await connect(
                f"ws://127.0.0.1:{self.port}{path}",
                additional_headers=headers,
                compression=None,
                open_timeout=10,
            )
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ws = ws
        self._ready.set()
        reader = asyncio.create_task(self._read(ws))
        await self._stop.wait()
        await ws.close()
        await reader

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                message = json.loads(raw)
                echo: str | None = None
                with self._cond:
                    try:
                        event = self.side.receive(raw)
                    except RemoteProtocolError:  # Twilio would not route it
                        self.log.bad_frames.append(message)
                        continue
                    self.log.messages.append(message)
                    if isinstance(event, AgentMedia):
                        self.log.unmarked += event.payload
                    elif isinstance(event, Mark):
                        item = ":".join(event.name.split(":")[1:-1]) or event.name
                        self.log.audio_by_item.setdefault(item, bytearray()).extend(
                            self.log.unmarked
                        )
                        self.log.unmarked.clear()
                        if self.echo_marks:
                            echo = self.side.mark(event.name)
                    self._cond.notify_all()
                if echo is not None:
                    await self._send(echo)
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                self.log.closed = True
                self.log.close_code = ws.close_code
                self._cond.notify_all()

    def _close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    # -- frames ------------------------------------------------------------------------

    async def _send(self, frame: str) -> None:
        assert self._ws is not None
        with suppress(ConnectionClosed):  # the reader reports the close
            await self._ws.send(frame)

    async def _send_start(self) -> None:
        await self._send(self.side.connected())
        await self._send(self.side.start(self.parameters))

    async def _send_media(self, frames: list[bytes], pace: float) -> None:
        for frame in frames:
            await self._send(self.side.media(frame))
            if pace:
                await asyncio.sleep(pace)

    def _run(self, coro: Any, timeout: float = 30.0) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def start(self) -> None:
        await anyio.to_thread.run_sync(self._run, self._send_start())

    async def media(self, frames: list[bytes], *, pace: float = 0.02) -> None:
        await anyio.to_thread.run_sync(self._run, self._send_media(frames, pace))

    async def dtmf(self, digit: str) -> None:
        await anyio.to_thread.run_sync(self._run, self._send(self.side.dtmf(digit)))

    async def stop(self) -> None:
        await anyio.to_thread.run_sync(self._run, self._send(self.side.stop()))

    async def wait_for(
        self, predicate: Callable[[MediaLog], bool], timeout: float = 10.0, what: str = ""
    ) -> None:
        def wait() -> bool:
            with self._cond:
                return self._cond.wait_for(lambda: predicate(self.log), timeout)

        if not await anyio.to_thread.run_sync(wait):
            kinds = [m.get("event") for m in self.log.messages]
            raise AssertionError(
                f"carrier: timed out waiting for {what or predicate}; got {kinds[-20:]}"
            )

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        await self.wait_for(lambda log: log.closed, timeout, "the server to close the stream")
        return self.log.close_code


@asynccontextmanager
async def twilio_stream(port: int, call_sid: str, parameters: dict[str, str], **kwargs: Any) -> Any:
    """Connect a :class:`TwilioCarrier` (signed upgrade) and close it on exit."""
    carrier = TwilioCarrier(port, call_sid, parameters, **kwargs)
    await anyio.to_thread.run_sync(carrier._open)
    try:
        yield carrier
    finally:
        await anyio.to_thread.run_sync(carrier._close)
    # Twilio routes playback by streamSid: every frame must carry this stream's.
    assert not carrier.log.bad_frames, carrier.log.bad_frames


def form_fields(body: bytes) -> list[tuple[str, str]]:
    """A URL-encoded body as its ordered (name, value) pairs, repeats kept."""
    return parse_qsl(body.decode(), keep_blank_values=True)


class Recorder:
    """Collects callback payloads from any thread; waitable from the test loop."""

    def __init__(self) -> None:
        self.calls: dict[str, list[dict[str, Any]]] = {}
        self._cond = threading.Condition()

    def hook(self, name: str, *, is_async: bool = False) -> Callable[..., Any]:
        def record(payload: dict[str, Any]) -> None:
            with self._cond:
                self.calls.setdefault(name, []).append(payload)
                self._cond.notify_all()

        if is_async:

            async def async_record(payload: dict[str, Any]) -> None:
                await anyio.sleep(0)
                record(payload)

            return async_record
        return record

    def of(self, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return list(self.calls.get(name, []))

    async def wait_for(
        self,
        name: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda p: True,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for payload in self.of(name):
                if predicate(payload):
                    return payload
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching {name}; saw {self.of(name)}")
            await anyio.sleep(0.02)
