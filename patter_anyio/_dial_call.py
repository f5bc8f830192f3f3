"""A carrier in a box: place a Twilio call against a running server.

:func:`dial` does what Twilio does when a caller rings a number whose voice
webhook points at the server under test:

1. POST the incoming-call webhook (form fields as Twilio sends them, signed
   with ``X-Twilio-Signature`` over ``https://{public host}{path}`` when an
   Auth Token is given -- PROTOCOLS.md §1.2, §2.1);
2. read the TwiML answer and follow its ``<Connect><Stream url>``: open the
   WebSocket at the server's own address with the Stream URL's path, signed
   over the ``wss://`` URL exactly as the TwiML gave it, no params (§1.2
   step 8);
3. send ``connected`` and ``start`` (the ``<Parameter>``s as
   ``customParameters``), then 20 ms μ-law frames in real time -- a WAV
   file or a test tone, then silence -- with DTMF and a barge-in burst at
   the requested moments, until the call's duration has passed; ``stop``;
4. meanwhile play the agent's audio into a :class:`PlaybackModel` (marks are
   echoed when the audio before them has played, a ``clear`` flushes and
   echoes them at once) and measure what a caller would notice.

Everything is measured on the event loop's monotonic clock, in seconds
since ``start`` was sent.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import anyio
import anyio.abc

from patter_core import Entropy, LocalProtocolError, PatterError, RemoteProtocolError
from patter_core.http import HttpRequest
from patter_core.webhooks import TwilioSignatureValidator, public_url

from ._dial_audio import DEFAULT_JITTER_BUFFER_S, PlaybackModel, percentiles, tone_ulaw
from ._dial_frames import (
    AgentClear,
    AgentMark,
    AgentMedia,
    TwilioCarrierFrames,
    parse_agent_message,
)
from ._httpclient import (
    ClientConnectionError,
    ClientError,
    ClientProtocolError,
    ClientTimeout,
    RedirectRefused,
    request,
)
from ._websocket import WebSocket, WebSocketClosed
from ._wsclient import connect_websocket

__all__ = ["DialError", "DialOptions", "DialProgress", "DialReport", "dial"]

FRAME_SECONDS = 0.02  # Twilio sends 20 ms frames (§3)
FRAME_BYTES = 160  # 20 ms of μ-law at 8 kHz
SILENCE = b"\xff"  # μ-law silence (§3)
# The TwiML answer is a few hundred bytes; 64 KiB is generous and keeps a
# misbehaving server from making the tool read without end.
MAX_WEBHOOK_ANSWER_BYTES = 64 * 1024
# How much of a failed answer's body an error line shows.
_SNIPPET_CHARS = 200
# After our own close, how long to wait for the agent's side to finish.
_CLOSE_GRACE_S = 2.0
_API_VERSION = "2010-04-01"
# Twilio's geographic fields are sent even when empty, and empty fields are
# still signed (§2.1): sending them exercises that part of the check.
_GEO_FIELDS = ("City", "State", "Zip", "Country")


class DialError(PatterError):
    """The call could not be made or failed; ``exit_code`` is 1, or 2 for bad options."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True, kw_only=True)
class DialProgress:
    """A snapshot, about once a second, for a progress line."""

    elapsed_s: float
    duration_s: float
    frames_sent: int
    frames_received: int
    buffered_s: float
    marks_echoed: int
    clears_received: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DialOptions:
    """One call. Times are seconds after the ``start`` frame."""

    server: str = "http://127.0.0.1:8000"
    # The public host the server is configured with (its --webhook-url);
    # default: the host:port of ``server``.
    webhook_host: str | None = None
    webhook_path: str = "/webhooks/twilio/voice"
    auth_token: str | None = None  # None: send the webhook unsigned
    from_number: str = "+15005550006"
    to_number: str = "+15005550001"
    account_sid: str | None = None  # generated when None
    call_sid: str | None = None  # generated when None: CA + 32 hex
    caller_audio: bytes | None = None  # μ-law 8 kHz; None: the test tone
    tone_hz: float = 440.0
    tone_seconds: float = 3.0
    tone_burst_s: float | None = 0.6  # None: one continuous tone
    tone_pause_s: float = 0.4
    tone_amplitude: float = 0.3
    duration: float | None = None  # default: the caller audio plus 2 s
    dtmf: tuple[tuple[str, float], ...] = ()  # (digit, at seconds)
    barge_in_at: float | None = None
    barge_in_hz: float = 1000.0
    barge_in_seconds: float = 1.0
    barge_in_amplitude: float = 0.8
    jitter_buffer_s: float = DEFAULT_JITTER_BUFFER_S
    timeout: float = 10.0  # connecting, the webhook answer, the upgrade
    progress: Callable[[DialProgress], None] | None = None
    entropy: Entropy = field(default=secrets, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DialReport:
    """What one call measured. ``audio`` is what the caller heard: PCM16
    8 kHz mono on the playback timeline, silence where nothing played."""

    call_sid: str
    stream_sid: str
    stream_url: str
    custom_parameters: dict[str, str]
    signed: bool
    duration_s: float
    ended_by: str  # "carrier" (we sent stop) or "agent" (it closed first)
    close_code: int | None
    frames_sent: int
    frames_received: int
    audio_received_s: float
    first_audio_s: float | None  # from start to the first agent media
    gap_ms: tuple[float, float, float]  # p50/p95/p99 between agent media messages
    late_ms: tuple[float, float, float]  # p50/p95/p99 of lateness against the playback slot
    marks_received: int
    marks_echoed: tuple[str, ...]
    marks_pending: int
    clears_received: int
    barge_in_at_s: float | None
    barge_in_reaction_s: float | None  # from the burst to the agent's clear
    dtmf_sent: tuple[tuple[str, float], ...]  # (digit, when it was actually sent)
    ignored_events: tuple[str, ...]
    audio: bytes = field(repr=False)
    transcript: tuple[str, ...] = ()  # the carrier sees audio only


# --------------------------------------------------------------------- webhook


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:_SNIPPET_CHARS] + ("..." if len(text) > _SNIPPET_CHARS else "")


def _twiml_stream(body: bytes) -> tuple[str, dict[str, str]]:
    """``<Response><Connect><Stream url>`` -> (url, parameters)."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise DialError(f"the webhook answer is not TwiML ({exc}): {_snippet(body)}") from None
    if root.tag != "Response":
        raise DialError(f"the webhook answer is not TwiML (root <{root.tag}>): {_snippet(body)}")
    stream = root.find("./Connect/Stream")
    if stream is None:
        forked = root.find("./Start/Stream") is not None
        why = "only <Start><Stream>, which cannot carry audio back" if forked else "no <Stream>"
        raise DialError(f"the TwiML has {why}: {_snippet(body)}")
    url = stream.get("url", "")
    if not url.startswith("wss://"):
        raise DialError(f"<Stream url={url!r}>: Twilio only connects to wss:// URLs")
    params: dict[str, str] = {}
    for param in stream.findall("Parameter"):
        name = param.get("name")
        if name is not None:
            params[name] = param.get("value", "")
    return url, params


def _incoming_call_form(
    options: DialOptions, account_sid: str, call_sid: str
) -> list[tuple[str, str]]:
    form = [
        ("AccountSid", account_sid),
        ("ApiVersion", _API_VERSION),
        ("CallSid", call_sid),
        ("CallStatus", "ringing"),
        ("Called", options.to_number),
        ("Caller", options.from_number),
        ("Direction", "inbound"),
        ("From", options.from_number),
        ("To", options.to_number),
    ]
    for who in ("From", "To", "Called", "Caller"):
        form.extend((who + geo, "") for geo in _GEO_FIELDS)
    return form


async def _answer_webhook(
    options: DialOptions, server: str, webhook_host: str, account_sid: str, call_sid: str
) -> tuple[str, dict[str, str]]:
    form = _incoming_call_form(options, account_sid, call_sid)
    headers = [("content-type", "application/x-www-form-urlencoded")]
    if options.auth_token:
        signer = TwilioSignatureValidator(options.auth_token)
        url = public_url(webhook_host, options.webhook_path)
        params: dict[str, list[str]] = {}
        for name, value in form:
            params.setdefault(name, []).append(value)
        headers.append(("x-twilio-signature", signer.compute_signature(url, params)))
    req = HttpRequest(
        method="POST",
        url=server + options.webhook_path,
        headers=tuple(headers),
        body=urlencode(form).encode("ascii"),
    )
    try:
        response = await request(
            req, timeout=options.timeout, max_response_bytes=MAX_WEBHOOK_ANSWER_BYTES
        )
    except ClientConnectionError as exc:
        raise DialError(f"cannot reach the server at {server}: {exc}") from None
    except ClientTimeout:
        raise DialError(
            f"the server at {server} did not answer within {options.timeout:g} s"
        ) from None
    except RedirectRefused as exc:
        raise DialError(
            f"the webhook answered {exc.status} (redirect to {exc.location}); Twilio would not follow it"
        ) from None
    except ClientError as exc:
        raise DialError(f"the webhook request failed: {exc}") from None
    if response.status != 200:
        raise DialError(f"the webhook answered {response.status}: {_snippet(response.body)}")
    return _twiml_stream(response.body)


# ----------------------------------------------------------------------- call


class _Call:
    """One media stream: a real-time sender and a receiver sharing a clock."""

    def __init__(self, options: DialOptions, ws: WebSocket, frames: TwilioCarrierFrames) -> None:
        self.options = options
        self.ws = ws
        self.frames = frames
        self.playback = PlaybackModel(jitter_buffer=options.jitter_buffer_s)
        self.send_lock = anyio.Lock()
        self.t0 = 0.0
        self.frames_sent = 0
        self.marks_received = 0
        self.marks_echoed: list[str] = []
        self.clears = 0
        self.barge_reaction: float | None = None
        self.dtmf_sent: list[tuple[str, float]] = []
        self.ignored: list[str] = []
        self.stop_sent = False
        self.ended_by = "carrier"
        self.close_code: int | None = None
        self.failure: str | None = None
        self.receiver_done = anyio.Event()

    def now(self) -> float:
        return anyio.current_time() - self.t0

    def echo(self, names: list[str]) -> list[str]:
        self.marks_echoed.extend(names)
        return [self.frames.mark(name) for name in names]

    async def send_echoes(self, names: list[str]) -> None:
        if names:
            async with self.send_lock:
                await self.ws.send_many(self.echo(names))

    # ------------------------------------------------------------------ send
    async def run_sender(
        self, caller: bytes, duration: float, barge: bytes, tg: anyio.abc.TaskGroup
    ) -> None:
        try:
            await self._stream_frames(caller, duration, barge)
        except WebSocketClosed as closed:
            if not self.stop_sent:
                self.ended_by = "agent"
                self.close_code = closed.code
            tg.cancel_scope.cancel()
            return
        with anyio.move_on_after(_CLOSE_GRACE_S):
            await self.receiver_done.wait()
        tg.cancel_scope.cancel()

    async def _stream_frames(self, caller: bytes, duration: float, barge: bytes) -> None:
        opts = self.options
        total_frames = round(duration / FRAME_SECONDS)
        barge_first = None if opts.barge_in_at is None else round(opts.barge_in_at / FRAME_SECONDS)
        dtmf = sorted(opts.dtmf, key=lambda item: item[1])
        next_progress = 1.0
        for index in range(total_frames):
            await anyio.sleep_until(self.t0 + index * FRAME_SECONDS)
            now = self.now()
            offset = index * FRAME_BYTES
            payload = caller[offset : offset + FRAME_BYTES]
            if barge_first is not None and index >= barge_first:
                at = (index - barge_first) * FRAME_BYTES
                if at < len(barge):
                    payload = barge[at : at + FRAME_BYTES]
            payload = payload.ljust(FRAME_BYTES, SILENCE)
            # Frames are numbered and written under one lock, so sequence
            # numbers reach the agent in order.
            async with self.send_lock:
                out: list[str] = []
                while dtmf and dtmf[0][1] <= index * FRAME_SECONDS + 1e-9:
                    digit, _ = dtmf.pop(0)
                    self.dtmf_sent.append((digit, now))
                    out.append(self.frames.dtmf(digit))
                out.append(self.frames.media(payload, round(index * FRAME_SECONDS * 1000)))
                out.extend(self.echo(self.playback.due_marks(now)))
                await self.ws.send_many(out)
            self.frames_sent += 1
            if opts.progress is not None and now >= next_progress:
                next_progress += 1.0
                opts.progress(self.snapshot(now, duration))
        await anyio.sleep_until(self.t0 + total_frames * FRAME_SECONDS)
        now = self.now()
        async with self.send_lock:
            messages = [*self.echo(self.playback.due_marks(now)), self.frames.stop()]
            self.stop_sent = True
            await self.ws.send_many(messages)
        await self.ws.close(1000)

    def snapshot(self, now: float, duration: float) -> DialProgress:
        return DialProgress(
            elapsed_s=now,
            duration_s=duration,
            frames_sent=self.frames_sent,
            frames_received=self.playback.frames_received,
            buffered_s=self.playback.buffered_seconds(now),
            marks_echoed=len(self.marks_echoed),
            clears_received=self.clears,
        )

    # --------------------------------------------------------------- receive
    async def run_receiver(self, tg: anyio.abc.TaskGroup) -> None:
        try:
            while True:
                message = await self.ws.receive()
                now = self.now()
                try:
                    event = parse_agent_message(message)
                except RemoteProtocolError as exc:
                    self.failure = f"the agent sent a bad frame: {exc}"
                    await self.ws.close(exc.close_code or 1007)
                    tg.cancel_scope.cancel()
                    return
                if isinstance(event, AgentMedia):
                    self.playback.add_audio(event.payload, now)
                elif isinstance(event, AgentMark):
                    self.marks_received += 1
                    await self.send_echoes(self.playback.add_mark(event.name, now))
                elif isinstance(event, AgentClear):
                    self.clears += 1
                    barge_at = self.options.barge_in_at
                    if barge_at is not None and now >= barge_at and self.barge_reaction is None:
                        self.barge_reaction = now - barge_at
                    await self.send_echoes(self.playback.clear(now))
                else:
                    self.ignored.append(event.event)
        except WebSocketClosed as closed:
            if not self.stop_sent:
                self.ended_by = "agent"
                self.close_code = closed.code
                tg.cancel_scope.cancel()
            else:
                self.close_code = self.close_code or closed.code
        finally:
            self.receiver_done.set()


def _check_options(options: DialOptions) -> None:
    def bad(message: str) -> DialError:
        return DialError(message, exit_code=2)

    if options.duration is not None and not 0 < options.duration <= 3600:
        raise bad(f"duration must be in (0, 3600] seconds, not {options.duration}")
    if not 0 < options.tone_hz < 4000:
        raise bad(f"tone frequency must be below 4000 Hz (8 kHz audio), not {options.tone_hz}")
    if not 0 < options.barge_in_hz < 4000:
        raise bad(f"barge-in frequency must be below 4000 Hz, not {options.barge_in_hz}")
    if not 0 <= options.tone_seconds <= 3600:
        raise bad(f"tone seconds must be in [0, 3600], not {options.tone_seconds}")
    for digit, at in options.dtmf:
        if len(digit) != 1 or digit not in "0123456789*#ABCD":
            raise bad(f"DTMF digit must be one of 0-9 * # A-D, not {digit!r}")
        if at < 0:
            raise bad(f"DTMF time must not be negative, not {at}")
    if options.barge_in_at is not None and options.barge_in_at < 0:
        raise bad(f"barge-in time must not be negative, not {options.barge_in_at}")
    if not options.webhook_path.startswith("/"):
        raise bad(f"webhook path must start with '/', not {options.webhook_path!r}")


def _server_base(server: str) -> tuple[str, str, str]:
    """``http://host:port`` -> (base URL, netloc, WebSocket scheme)."""
    parts = urlsplit(server.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DialError(f"--server must be an http:// or https:// URL, not {server!r}", exit_code=2)
    base = f"{parts.scheme}://{parts.netloc}"
    return base, parts.netloc, "wss" if parts.scheme == "https" else "ws"


async def dial(options: DialOptions) -> DialReport:
    """Place one call; return what it measured, or raise :class:`DialError`."""
    _check_options(options)
    base, netloc, ws_scheme = _server_base(options.server)
    webhook_host = options.webhook_host or netloc
    entropy = options.entropy
    account_sid = options.account_sid or "AC" + entropy.token_bytes(16).hex()
    call_sid = options.call_sid or "CA" + entropy.token_bytes(16).hex()
    stream_sid = "MZ" + entropy.token_bytes(16).hex()
    if options.caller_audio is not None:
        caller = options.caller_audio
    else:
        caller = tone_ulaw(
            options.tone_hz,
            options.tone_seconds,
            amplitude=options.tone_amplitude,
            burst=options.tone_burst_s,
            pause=options.tone_pause_s,
        )
    duration = options.duration if options.duration is not None else len(caller) / 8000 + 2.0
    barge = b""
    if options.barge_in_at is not None:
        barge = tone_ulaw(
            options.barge_in_hz,
            options.barge_in_seconds,
            amplitude=options.barge_in_amplitude,
            burst=None,
        )
    try:
        public_url(webhook_host, options.webhook_path)
    except LocalProtocolError as exc:
        raise DialError(f"--webhook-url: {exc}", exit_code=2) from None

    stream_url, params = await _answer_webhook(options, base, webhook_host, account_sid, call_sid)
    path = urlsplit(stream_url).path or "/"
    headers: list[tuple[str, str]] = []
    if options.auth_token:
        # §1.2 step 8: the wss:// URL exactly as in <Stream url>, no params.
        signer = TwilioSignatureValidator(options.auth_token)
        headers.append(("x-twilio-signature", signer.compute_signature(stream_url, {})))
    frames = TwilioCarrierFrames(account_sid=account_sid, call_sid=call_sid, stream_sid=stream_sid)
    try:
        async with connect_websocket(
            f"{ws_scheme}://{netloc}{path}", headers=headers, timeout=options.timeout
        ) as ws:
            call = _Call(options, ws, frames)
            await ws.send(frames.connected())
            call.t0 = anyio.current_time()
            await ws.send(frames.start(params))
            async with anyio.create_task_group() as tg:
                tg.start_soon(call.run_receiver, tg)
                tg.start_soon(call.run_sender, caller, duration, barge, tg)
    except ClientProtocolError as exc:
        if exc.status is not None:
            raise DialError(
                f"the WebSocket upgrade to {path} was refused: {exc.status} {_snippet(exc.body)}".rstrip()
            ) from None
        raise DialError(f"the WebSocket upgrade to {path} failed: {exc}") from None
    except ClientTimeout:
        raise DialError(f"the WebSocket upgrade to {path} timed out") from None
    except ClientError as exc:
        raise DialError(f"cannot open the media stream at {path}: {exc}") from None
    except WebSocketClosed as exc:
        raise DialError(
            f"the agent closed the media stream at once: {exc.code} {exc.reason}"
        ) from None
    if call.failure is not None:
        raise DialError(call.failure)
    elapsed = min(call.now(), duration) if call.ended_by == "agent" else duration
    pb = call.playback
    return DialReport(
        call_sid=call_sid,
        stream_sid=stream_sid,
        stream_url=stream_url,
        custom_parameters=params,
        signed=bool(options.auth_token),
        duration_s=elapsed,
        ended_by=call.ended_by,
        close_code=call.close_code,
        frames_sent=call.frames_sent,
        frames_received=pb.frames_received,
        audio_received_s=pb.bytes_received / 8000,
        first_audio_s=pb.first_audio_at,
        gap_ms=_p3(pb.gaps_ms),
        late_ms=_p3(pb.late_ms),
        marks_received=call.marks_received,
        marks_echoed=tuple(call.marks_echoed),
        marks_pending=pb.pending_marks,
        clears_received=call.clears,
        barge_in_at_s=options.barge_in_at,
        barge_in_reaction_s=call.barge_reaction,
        dtmf_sent=tuple(call.dtmf_sent),
        ignored_events=tuple(call.ignored),
        audio=pb.heard(elapsed),
    )


def _p3(values: list[float]) -> tuple[float, float, float]:
    p50, p95, p99 = percentiles(values)
    return p50, p95, p99
