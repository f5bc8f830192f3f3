"""The carrier's end of a call, for end-to-end tests: media stream, webhooks, tones.

* :class:`CarrierStream` is Twilio's or Telnyx's end of a media stream, a
  ``websockets`` client on an asyncio loop (run it in a worker thread with
  :func:`run_in_asyncio_thread`, as a real carrier is off our machine and the
  test's own loop may be trio), built on the core's carrier role. It sends
  ``connected``/``start``/``media``/``stop`` in each carrier's wire shape
  (PROTOCOLS.md sections 3 and 4.4) and plays what comes back in real time:
  a mark is echoed once the audio before it has played; a ``clear`` drops
  the unplayed audio and echoes every pending mark at once, as both
  carriers document. Twilio routes what the agent sends by its
  ``streamSid``: a frame without this stream's id is not played, it is kept
  in ``bad_frames`` and fails the test when the stream closes.
* Webhooks as the carriers send them: :func:`twilio_voice_webhook` signed
  with the official ``twilio`` package, :func:`telnyx_webhook` signed with a
  PyNaCl Ed25519 key; the stdlib HTTP client runs in a worker thread.
* :func:`ulaw_tone` and :func:`tone_report`: a test tone, and the frequency
  and signal-to-noise ratio of what came back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlencode, urlsplit

import anyio
import numpy as np
from nacl.signing import SigningKey
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from patter_core import RemoteProtocolError
from patter_core.audio._g711 import ulaw_decode_array, ulaw_encode_array
from patter_core.media import (
    AgentMedia,
    CarrierPlayback,
    Clear,
    Mark,
    TelnyxCarrierSide,
    TwilioCarrierSide,
)
from patter_core.webhooks import read_stream_twiml

__all__ = [
    "CarrierStream",
    "EchoedMark",
    "HttpAnswer",
    "ToneReport",
    "carrier_stream",
    "http_post",
    "local_ws_url",
    "parse_stream_twiml",
    "run_in_asyncio_thread",
    "stream_signature",
    "telnyx_webhook",
    "tone_report",
    "twilio_voice_webhook",
    "ulaw_silence",
    "ulaw_tone",
]

# mu-law at 8 kHz: one byte per sample, so 8 bytes a millisecond.
ULAW_BYTES_PER_MS = 8
FRAME_BYTES = 160  # 20 ms, what both carriers send


async def run_in_asyncio_thread(fn: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Run the coroutine function ``fn`` on a fresh asyncio loop in a worker thread.

    The carrier's ``websockets`` client is asyncio-only; this keeps it off the
    test's own loop (which may be trio), as a real carrier is off our machine.
    """

    def main() -> Any:
        return asyncio.run(asyncio.wait_for(fn(), timeout))

    return await anyio.to_thread.run_sync(main)


@dataclass(frozen=True)
class EchoedMark:
    name: str
    position: int  # bytes of audio received before the mark
    cleared: bool  # echoed because a clear flushed it, not because it played


class CarrierStream:
    """Twilio's or Telnyx's end of one media stream (PCMU 8 kHz), on an asyncio loop.

    The frames and the reading of the agent's are the core's carrier role
    (:class:`TwilioCarrierSide`, :class:`TelnyxCarrierSide`); playback is the
    core's :class:`CarrierPlayback` on this stream's own clock, which runs at
    ``play_speed`` times real time (1.0 is real time) and stops while frozen.
    ``audio`` holds the agent's audio as received, less what a ``clear``
    dropped before it played, so positions in it are the bridge's "sent"
    positions; ``heard`` is what was played out.
    """

    def __init__(
        self, ws: ClientConnection, *, carrier: str = "twilio", play_speed: float = 1.0
    ) -> None:
        self.ws = ws
        self.carrier = carrier
        self.play_speed = play_speed
        self.stream_id = "MZ" + "5" * 32 if carrier == "twilio" else "stream-e2e-1"
        self.received: list[dict[str, Any]] = []
        self.audio = bytearray()
        self.heard = bytearray()
        self.marks: list[EchoedMark] = []
        self.clears: list[int] = []  # audio position of each clear
        self.media_messages = 0
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        #: Agent frames the carrier would not play (Twilio: no or another ``streamSid``).
        self.bad_frames: list[dict[str, Any]] = []
        #: Bytes of agent audio played when the server closed the stream.
        self.played_at_close: int | None = None
        self.call_id = ""
        self.side: TwilioCarrierSide | TelnyxCarrierSide = self._side("")
        self.playback = CarrierPlayback(jitter_buffer=0.0, record=False)
        self._positions: dict[str, deque[int]] = {}  # audio position of each pending mark
        self._clock = 0.0  # the playback clock, seconds
        self._played = 0
        self._frozen = False

    def _side(
        self,
        call_id: str,
        *,
        caller: str = "",
        callee: str = "",
        token: str | None = None,
        nested_token: bool = False,
        client_state: str | None = None,
    ) -> TwilioCarrierSide | TelnyxCarrierSide:
        if self.carrier == "twilio":
            return TwilioCarrierSide(
                account_sid="AC" + "0" * 32, call_sid=call_id, stream_sid=self.stream_id
            )
        return TelnyxCarrierSide(
            call_control_id=call_id,
            stream_id=self.stream_id,
            call_session_id="session-e2e",
            user_id="user-e2e",
            from_number=caller,
            to_number=callee,
            auth_token=token,
            nested_token=nested_token,
            client_state=client_state,
        )

    # -- what we send ----------------------------------------------------------

    async def _send(self, frame: str | None) -> None:
        if frame is None:
            return
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(frame)

    async def start(
        self,
        *,
        call_id: str,
        caller: str = "",
        callee: str = "",
        custom_parameters: dict[str, str] | None = None,
        connected_token: str | None = None,
        nested_token: bool = False,
        client_state: str | None = None,
    ) -> None:
        """``connected`` then ``start``, as the carrier sends them.

        Telnyx: ``connected_token`` goes at the top level of ``connected``, or
        with ``nested_token`` under ``connected`` as two implementations send it.
        """
        self.call_id = call_id
        self.side = self._side(
            call_id,
            caller=caller,
            callee=callee,
            token=connected_token,
            nested_token=nested_token,
            client_state=client_state,
        )
        await self._send(self.side.connected())
        await self._send(self.side.start(custom_parameters))

    async def send_audio(self, ulaw: bytes, *, speed: float = 1.0) -> None:
        """Caller audio as 20 ms media frames, paced at ``speed`` times real time."""
        loop = asyncio.get_running_loop()
        begin = loop.time()
        for index, offset in enumerate(range(0, len(ulaw), FRAME_BYTES)):
            await self._send(self.side.media(ulaw[offset : offset + FRAME_BYTES]))
            due = begin + (index + 1) * 0.020 / speed
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    def take_sequence(self) -> int:
        """Reserve the next ``sequence_number`` (to send frames out of order)."""
        return self.side.take_sequence()

    async def telnyx_dtmf(self, digit: str, sequence: int) -> None:
        """A Telnyx ``dtmf`` frame as the guide shows it, numbered ``sequence``."""
        assert isinstance(self.side, TelnyxCarrierSide)
        await self._send(self.side.dtmf(digit, time.time(), sequence=sequence))

    async def telnyx_error(self) -> None:
        """The guide's error frame: the body under ``payload``, an integer code."""
        await self._send(self.side.error())

    async def stop(self) -> None:
        await self._send(self.side.stop())

    async def _echo(self, names: list[str], *, cleared: bool) -> None:
        for name in names:
            position = self._positions[name].popleft()
            self.marks.append(EchoedMark(name, position, cleared=cleared))
            await self._send(self.side.mark(name))

    # -- playback ------------------------------------------------------------------

    def freeze(self) -> None:
        """Stop the playback clock: no audio plays and no mark is echoed until ``resume``."""
        self._frozen = True

    def resume(self) -> None:
        self._frozen = False

    @property
    def played_ms(self) -> float:
        return self._played / ULAW_BYTES_PER_MS

    @property
    def audio_ms(self) -> float:
        return len(self.audio) / ULAW_BYTES_PER_MS

    @property
    def pending_marks(self) -> int:
        return self.playback.pending_marks

    def played_marks(self) -> list[EchoedMark]:
        return [m for m in self.marks if not m.cleared]

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                self.received.append(json.loads(data))
                try:
                    event = self.side.receive(data)
                except RemoteProtocolError:
                    self.bad_frames.append(self.received[-1])
                    continue
                await self._advance()
                if isinstance(event, AgentMedia):
                    self.media_messages += 1
                    self.audio += event.payload
                    self.playback.add_audio(event.payload, self._clock)
                elif isinstance(event, Mark):
                    self._positions.setdefault(event.name, deque()).append(len(self.audio))
                    await self._echo(self.playback.add_mark(event.name, self._clock), cleared=False)
                elif isinstance(event, Clear):
                    self.clears.append(self._played)
                    del self.audio[self._played :]
                    await self._echo(self.playback.clear(self._clock), cleared=True)
        except ConnectionClosed:
            pass
        finally:
            rcvd = self.ws.protocol.close_rcvd
            self.close_code = rcvd.code if rcvd is not None else None
            self.played_at_close = self._played
            self.closed.set()

    async def _advance(self) -> None:
        """Play what the clock says has played by now; echo the marks that fell due."""
        new = self.playback.played(self._clock)
        if new > self._played:
            self.heard += self.audio[self._played : new]
            self._played = new
        await self._echo(self.playback.due_marks(self._clock), cleared=False)

    async def _play(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.005)
            now = loop.time()
            elapsed, last = now - last, now
            if self._frozen:
                continue
            self._clock += elapsed * self.play_speed
            await self._advance()


    # -- waiting -------------------------------------------------------------------

    async def wait(
        self, predicate: Callable[[], bool], timeout: float = 5.0, what: str = ""
    ) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await asyncio.sleep(0.005)
        except TimeoutError:
            raise AssertionError(f"carrier: timed out waiting for {what or predicate}") from None

    async def wait_played_out(self, min_audio_ms: float, timeout: float = 5.0) -> None:
        """Until at least ``min_audio_ms`` arrived, all of it played and every mark was echoed."""
        await self.wait(
            lambda: (
                self.audio_ms >= min_audio_ms
                and self._played >= len(self.audio)
                and not self.pending_marks
            ),
            timeout,
            f"{min_audio_ms} ms of agent audio played out",
        )


@asynccontextmanager
async def carrier_stream(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    carrier: str = "twilio",
    play_speed: float = 1.0,
) -> AsyncIterator[CarrierStream]:
    """Connect as the carrier (``websockets`` client) and play what comes back."""
    async with connect(
        url, additional_headers=headers or {}, compression=None, open_timeout=5
    ) as ws:
        stream = CarrierStream(ws, carrier=carrier, play_speed=play_speed)
        reader = asyncio.create_task(stream._read())
        player = asyncio.create_task(stream._play())
        try:
            yield stream
        finally:
            player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await player
            await ws.close()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        assert not stream.bad_frames, f"frames without this stream's streamSid: {stream.bad_frames}"


# -- HTTP, as the carrier's webhook client ----------------------------------------------


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def _post(port: int, path: str, body: bytes, headers: dict[str, str]) -> HttpAnswer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        return HttpAnswer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


async def http_post(port: int, path: str, body: bytes, headers: dict[str, str]) -> HttpAnswer:
    """POST with the stdlib client in a worker thread (the server runs on this loop)."""
    return await anyio.to_thread.run_sync(partial(_post, port, path, body, headers))


async def twilio_voice_webhook(
    port: int,
    *,
    host: str,
    auth_token: str,
    form: dict[str, str],
    signature: str | None = "",
    tamper: dict[str, str] | None = None,
) -> HttpAnswer:
    """``POST /webhooks/twilio/voice`` signed like Twilio: over ``https://{host}{path}``.

    ``signature=None`` sends none; ``""`` computes the right one with the
    official validator; ``tamper`` changes fields after signing.
    """
    if signature == "":
        signature = RequestValidator(auth_token).compute_signature(
            f"https://{host}/webhooks/twilio/voice", form
        )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    body = dict(form, **(tamper or {}))
    return await http_post(port, "/webhooks/twilio/voice", urlencode(body).encode(), headers)


def parse_stream_twiml(body: bytes) -> tuple[str, dict[str, str]]:
    """``<Connect><Stream url>`` and its ``<Parameter>`` pairs, read as Twilio reads them."""
    stream = read_stream_twiml(body)
    return stream.url, stream.parameters


def stream_signature(stream_url: str, auth_token: str) -> str:
    """Twilio signs the media-stream upgrade over the ``wss://`` URL, with no parameters."""
    return str(RequestValidator(auth_token).compute_signature(stream_url, {}))


def local_ws_url(port: int, public_url: str) -> str:
    """The public ``wss://`` URL the carrier was given, reached on the loopback server."""
    return f"ws://127.0.0.1:{port}{urlsplit(public_url).path}"


async def telnyx_webhook(
    port: int,
    key: SigningKey,
    event_type: str,
    payload: dict[str, Any],
    *,
    timestamp: int | None = None,
    event_id: str | None = None,
) -> HttpAnswer:
    """``POST /webhooks/telnyx/voice``: Ed25519 over ``"{timestamp}|{raw body}"``.

    ``data.id`` is unique per call and event type unless given: Telnyx drops
    nothing, but the server drops an id it has already handled.
    """
    body = json.dumps(
        {
            "data": {
                "event_type": event_type,
                "id": event_id or f"evt-{event_type}-{payload.get('call_control_id')}",
                "occurred_at": "2024-01-01T00:00:00.000000Z",
                "payload": payload,
                "record_type": "event",
            },
            "meta": {"attempt": 1, "delivered_to": "https://example.test/webhooks/telnyx/voice"},
        }
    ).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode() + b"|" + body).signature
    headers = {
        "Content-Type": "application/json",
        "telnyx-timestamp": stamp,
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
    }
    return await http_post(port, "/webhooks/telnyx/voice", body, headers)


# -- audio ------------------------------------------------------------------------------------


def ulaw_tone(hz: float, ms: int, amplitude: int = 8000) -> bytes:
    """A sine tone as mu-law 8 kHz."""
    n = 8 * ms
    pcm = (amplitude * np.sin(2 * np.pi * hz * np.arange(n) / 8000)).astype(np.int16)
    return bytes(ulaw_encode_array(pcm).tobytes())


def ulaw_silence(ms: int) -> bytes:
    return b"\xff" * (8 * ms)


@dataclass(frozen=True)
class ToneReport:
    peak_hz: float
    snr_db: float
    duration_ms: float


def tone_report(
    ulaw: bytes, rate: int = 8000, threshold: float = 0.05, *, pcm16: bool = False
) -> ToneReport:
    """Frequency and SNR of the tone in ``ulaw``, leading and trailing silence trimmed.

    SNR is the power in the peak's main lobe (+-4 bins of a Hann-windowed
    FFT) over the power everywhere else, DC excluded. ``pcm16``: the bytes
    are 16-bit little-endian PCM instead.
    """
    if pcm16:
        x = np.frombuffer(ulaw, dtype="<i2").astype(np.float64)
    else:
        x = ulaw_decode_array(np.frombuffer(ulaw, dtype=np.uint8)).astype(np.float64)
    if not len(x) or not np.any(x):
        return ToneReport(0.0, float("-inf"), 0.0)
    loud = np.flatnonzero(np.abs(x) > threshold * np.max(np.abs(x)))
    x = x[loud[0] : loud[-1] + 1]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    spectrum[:3] = 0.0  # DC and the window's leakage of it
    peak = int(np.argmax(spectrum))
    lo, hi = max(peak - 4, 0), peak + 5
    signal = float(np.sum(spectrum[lo:hi]))
    noise = float(np.sum(spectrum)) - signal
    snr = float("inf") if noise <= 0 else 10 * np.log10(signal / noise)
    return ToneReport(peak * rate / len(x), snr, 1000 * len(x) / rate)
