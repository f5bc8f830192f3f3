"""A carrier in a box: place a Twilio or Telnyx call against a running server.

:func:`dial` does what Twilio does when a caller rings a number whose voice
webhook points at the server under test (Telnyx: see ``_telnyx``, the
webhooks and the fake Call Control API replace steps 1 and 2):

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
4. meanwhile play the agent's audio into a ``CarrierPlayback`` (marks are
   echoed when the audio before them has played, a ``clear`` flushes and
   echoes them at once) and measure what a caller would notice.

Everything is measured on the event loop's monotonic clock, in seconds
since ``start`` was sent.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlencode, urlsplit

import anyio
import anyio.abc

from patter_core import Entropy, LocalProtocolError, RemoteProtocolError
from patter_core.http import HttpRequest, Paths
from patter_core.media._playback import DEFAULT_JITTER_BUFFER_S
from patter_core.webhooks import TwilioSignatureValidator, read_stream_twiml
from patter_core.webhooks._twilio_signature import public_url

from ..calls._codecs import g722_encoder
from ..net._httpclient import (
    ClientError,
    ClientProtocolError,
    ClientTimeout,
)
from ..net._websocket import WebSocketClosed
from ..net._wsclient import connect_websocket
from ._audio import (
    CallStream,
    DialProgress,
    HangUp,
    percentiles,
    tone_ulaw,
)
from ._errors import DialError, post_webhook
from ._frames import CarrierFrames, TelnyxCarrierFrames, TwilioCarrierFrames
from ._telnyx import (
    DEFAULT_TELNYX_API_PORT,
    TELNYX_WEBHOOK_PATH,
    TelnyxCommand,
    TelnyxWebhooks,
    load_signing_key,
    post_hangup,
    post_streaming,
    run_fake_telnyx_api,
    set_up_telnyx_call,
)

__all__ = ["DialError", "DialOptions", "DialProgress", "DialReport", "dial"]

# The TwiML answer is a few hundred bytes; 64 KiB is generous and keeps a
# misbehaving server from making the tool read without end.
MAX_WEBHOOK_ANSWER_BYTES = 64 * 1024
# How much of a failed answer's body an error line shows.
_SNIPPET_CHARS = 200
_API_VERSION = "2010-04-01"
TWILIO_WEBHOOK_PATH = Paths.TWILIO_VOICE
# Twilio's geographic fields are sent even when empty, and empty fields are
# still signed (§2.1): sending them exercises that part of the check.
_GEO_FIELDS = ("City", "State", "Zip", "Country")


@dataclass(frozen=True, slots=True, kw_only=True)
class DialOptions:
    """One call. Times are seconds after the ``start`` frame."""

    server: str = "http://127.0.0.1:8000"
    carrier: Literal["twilio", "telnyx"] = "twilio"
    # The public host the server is configured with (its --webhook-url);
    # default: the host:port of ``server``.
    webhook_host: str | None = None
    webhook_path: str | None = None  # None: the carrier's webhook path on our server
    auth_token: str | None = None  # Twilio; None: send the webhook unsigned
    # Telnyx: the fake Call Control API listens on 127.0.0.1 at this port
    # (0: any free port); the server needs TELNYX_API_BASE_URL pointing there.
    telnyx_api_port: int = DEFAULT_TELNYX_API_PORT
    telnyx_api_key: str | None = None  # required Bearer key; None: any Bearer key
    telnyx_signing_key: str | None = field(default=None, repr=False)  # base64 Ed25519 seed
    telnyx_l16_byte_order: Literal["big", "little"] = "big"
    telnyx_error_at: float | None = None  # send the guide's error frame at this time
    telnyx_duplicate_webhooks: bool = False  # post every webhook twice
    # Stream in this codec whatever streaming_start asked (Telnyx's fallback).
    telnyx_fallback_codec: Literal["PCMU", "L16", "G722"] | None = None
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
    #: Set ``requested`` to hang up before ``duration`` (Ctrl-C).
    hang_up: HangUp | None = field(default=None, compare=False)
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
    carrier: str = "twilio"
    # Telnyx: what the server asked of the fake Call Control API, in order.
    carrier_commands: tuple[TelnyxCommand, ...] = ()
    errors_sent: int = 0  # Telnyx error frames sent (--telnyx-error-at)
    hung_up_early: bool = False  # the caller hung up before the duration (Ctrl-C)
    #: Who answered, when dial knows (the spawned server's agent).
    agent: str | None = None
    #: Why the agent failed the call, when it did (shown, exit code 1).
    agent_failure: str | None = None


# --------------------------------------------------------------------- webhook


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:_SNIPPET_CHARS] + ("..." if len(text) > _SNIPPET_CHARS else "")


def _twiml_stream(body: bytes) -> tuple[str, dict[str, str]]:
    """``<Response><Connect><Stream url>`` -> (url, parameters)."""
    try:
        stream = read_stream_twiml(body)
    except RemoteProtocolError as exc:
        raise DialError(f"{exc}: {_snippet(body)}") from None
    return stream.url, stream.parameters


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
    webhook_path = options.webhook_path or TWILIO_WEBHOOK_PATH
    if options.auth_token:
        signer = TwilioSignatureValidator(options.auth_token)
        url = public_url(webhook_host, webhook_path)
        params: dict[str, list[str]] = {}
        for name, value in form:
            params.setdefault(name, []).append(value)
        headers.append(("x-twilio-signature", signer.compute_signature(url, params)))
    req = HttpRequest(
        method="POST",
        url=server + webhook_path,
        headers=tuple(headers),
        body=urlencode(form).encode("ascii"),
    )
    response = await post_webhook(
        req,
        server=server,
        name="webhook",
        carrier="Twilio",
        timeout=options.timeout,
        max_bytes=MAX_WEBHOOK_ANSWER_BYTES,
    )
    if response.status != 200:
        hint = ""
        if response.status == 403:
            hint = (
                " (the server checks the signature over its own --webhook-url: give dial "
                "the same --webhook-url, and --auth-token its TWILIO_AUTH_TOKEN)"
            )
        raise DialError(f"the webhook answered {response.status}: {_snippet(response.body)}{hint}")
    return _twiml_stream(response.body)


def _check_options(options: DialOptions) -> None:
    def bad(message: str) -> DialError:
        return DialError(message, exit_code=2)

    if options.carrier not in ("twilio", "telnyx"):
        raise bad(f"carrier must be 'twilio' or 'telnyx', not {options.carrier!r}")
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
    if options.webhook_path is not None and not options.webhook_path.startswith("/"):
        raise bad(f"webhook path must start with '/', not {options.webhook_path!r}")
    if options.telnyx_error_at is not None and options.telnyx_error_at < 0:
        raise bad(f"the error frame time must not be negative, not {options.telnyx_error_at}")
    if options.telnyx_fallback_codec not in (None, "PCMU", "L16", "G722"):
        raise bad(
            f"the fallback codec must be PCMU, L16 or G722, not {options.telnyx_fallback_codec!r}"
        )
    if options.telnyx_fallback_codec == "G722" and g722_encoder() is None:
        raise bad("--telnyx-fallback-codec G722 needs the optional g722 package")
    if not 0 <= options.telnyx_api_port <= 65535:
        raise bad(f"the Telnyx API port must be 0-65535, not {options.telnyx_api_port}")
    if options.telnyx_l16_byte_order not in ("big", "little"):
        raise bad(
            f"L16 byte order must be 'big' or 'little', not {options.telnyx_l16_byte_order!r}"
        )


def _check_schedule(options: DialOptions, duration: float) -> None:
    """Nothing may be scheduled at or after the end of the call: it would never happen."""
    late = [f"--dtmf {digit}@{at:g}" for digit, at in options.dtmf if at >= duration]
    if options.barge_in_at is not None and options.barge_in_at >= duration:
        late.append(f"--barge-in-at {options.barge_in_at:g}")
    if options.telnyx_error_at is not None and options.telnyx_error_at >= duration:
        late.append(f"--telnyx-error-at {options.telnyx_error_at:g}")
    if late:
        raise DialError(
            f"{', '.join(late)}: after the call ends at {duration:g} s (give a longer --duration)",
            exit_code=2,
        )


def _server_base(server: str) -> tuple[str, str, str]:
    """``http://host:port`` -> (base URL, netloc, WebSocket scheme)."""
    parts = urlsplit(server.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DialError(f"--server must be an http:// or https:// URL, not {server!r}", exit_code=2)
    base = f"{parts.scheme}://{parts.netloc}"
    return base, parts.netloc, "wss" if parts.scheme == "https" else "ws"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Audio:
    caller: bytes  # μ-law 8 kHz
    duration: float
    barge: bytes


def _audio(options: DialOptions) -> _Audio:
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
    return _Audio(caller=caller, duration=duration, barge=barge)


async def _run_stream(
    options: DialOptions,
    url: str,
    headers: Sequence[tuple[str, str]],
    frames: CarrierFrames,
    params: dict[str, str],
    audio: _Audio,
) -> CallStream:
    """Open the media stream at ``url``, play the call on it, return its record."""
    path = urlsplit(url).path or "/"
    try:
        async with connect_websocket(url, headers=list(headers), timeout=options.timeout) as ws:
            call = CallStream(options, ws, frames)
            await ws.send(frames.connected())
            call.t0 = anyio.current_time()
            await ws.send(frames.start(params))
            async with anyio.create_task_group() as tg:
                tg.start_soon(call.run_receiver, tg)
                tg.start_soon(call.run_sender, audio.caller, audio.duration, audio.barge, tg)
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
    return call


async def _dial_twilio(
    options: DialOptions, base: str, netloc: str, ws_scheme: str, audio: _Audio
) -> DialReport:
    webhook_host = options.webhook_host or netloc
    entropy = options.entropy
    account_sid = options.account_sid or "AC" + entropy.token_bytes(16).hex()
    call_sid = options.call_sid or "CA" + entropy.token_bytes(16).hex()
    stream_sid = "MZ" + entropy.token_bytes(16).hex()
    try:
        public_url(webhook_host, options.webhook_path or TWILIO_WEBHOOK_PATH)
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
    call = await _run_stream(
        options, f"{ws_scheme}://{netloc}{path}", headers, frames, params, audio
    )
    return _report(
        options,
        call,
        audio,
        call_sid=call_sid,
        stream_sid=stream_sid,
        stream_url=stream_url,
        params=params,
        signed=bool(options.auth_token),
    )


async def _dial_telnyx(
    options: DialOptions, base: str, netloc: str, ws_scheme: str, audio: _Audio
) -> DialReport:
    webhook_host = options.webhook_host or netloc
    path = options.webhook_path or TELNYX_WEBHOOK_PATH
    key = load_signing_key(options.telnyx_signing_key) if options.telnyx_signing_key else None
    async with run_fake_telnyx_api(
        port=options.telnyx_api_port, api_key=options.telnyx_api_key
    ) as api:
        webhooks = TelnyxWebhooks(
            server=base,
            path=path,
            delivered_to=f"https://{webhook_host}{path}",
            key=key,
            from_number=options.from_number,
            to_number=options.to_number,
            timeout=options.timeout,
            entropy=options.entropy,
            duplicates=options.telnyx_duplicate_webhooks,
        )
        plan = await set_up_telnyx_call(webhooks, api, fallback=options.telnyx_fallback_codec)
        target = urlsplit(plan.stream_url)
        # Telnyx connects to the stream_url as given; we reach the same
        # path at the server's real address.
        query = f"?{target.query}" if target.query else ""
        headers: list[tuple[str, str]] = []
        if plan.auth_token is not None:
            headers.append(("x-telnyx-streaming-auth-token", plan.auth_token))
        frames = TelnyxCarrierFrames(
            call_control_id=plan.call_control_id,
            call_session_id=plan.call_session_id,
            user_id=plan.user_id,
            stream_id=plan.stream_id,
            from_number=options.from_number,
            to_number=options.to_number,
            auth_token=plan.auth_token,
            codec=plan.codec,
            sample_rate=plan.sample_rate,
            l16_byte_order=options.telnyx_l16_byte_order,
            back_codec=plan.back_codec,
            back_rate=plan.back_rate,
            client_state=plan.client_state,
        )
        await post_streaming(webhooks, plan, "streaming.started")
        try:
            call = await _run_stream(
                options,
                f"{ws_scheme}://{netloc}{target.path or '/'}{query}",
                headers,
                frames,
                plan.custom_parameters,
                audio,
            )
        finally:
            await post_streaming(webhooks, plan, "streaming.stopped")
            await post_hangup(webhooks)
        commands = tuple(api.commands)
    return _report(
        options,
        call,
        audio,
        call_sid=plan.call_control_id,
        stream_sid=plan.stream_id,
        stream_url=plan.stream_url,
        params=plan.custom_parameters,
        signed=key is not None,
        carrier="telnyx",
        commands=commands,
    )


async def dial(options: DialOptions) -> DialReport:
    """Place one call; return what it measured, or raise :class:`DialError`."""
    _check_options(options)
    base, netloc, ws_scheme = _server_base(options.server)
    audio = _audio(options)
    _check_schedule(options, audio.duration)
    if options.carrier == "telnyx":
        return await _dial_telnyx(options, base, netloc, ws_scheme, audio)
    return await _dial_twilio(options, base, netloc, ws_scheme, audio)


def _report(
    options: DialOptions,
    call: CallStream,
    audio: _Audio,
    *,
    call_sid: str,
    stream_sid: str,
    stream_url: str,
    params: dict[str, str],
    signed: bool,
    carrier: str = "twilio",
    commands: tuple[TelnyxCommand, ...] = (),
) -> DialReport:
    duration = audio.duration
    if call.hung_up_at is not None:
        duration = call.hung_up_at
    elapsed = min(call.now(), duration) if call.ended_by == "agent" else duration
    pb = call.playback
    return DialReport(
        call_sid=call_sid,
        stream_sid=stream_sid,
        stream_url=stream_url,
        custom_parameters=params,
        signed=signed,
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
        errors_sent=call.errors_sent,
        ignored_events=tuple(call.ignored),
        audio=pb.heard(elapsed),
        carrier=carrier,
        carrier_commands=commands,
        hung_up_early=call.hung_up_at is not None,
        agent_failure=(
            f"the agent closed the stream ({call.close_code}) before sending any audio"
            if call.ended_by == "agent" and pb.frames_received == 0
            else None
        ),
    )


def _p3(values: list[float]) -> tuple[float, float, float]:
    p50, p95, p99 = percentiles(values)
    return p50, p95, p99
