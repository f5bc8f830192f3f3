"""The dial tool's audio: test signals and the call loop.

:class:`CallStream` is the real-time loop that sends the caller's audio and
plays the agent's, for either carrier: the frames are the core's carrier
role (through a ``_frames`` builder), and what a carrier does with the
agent's audio -- queue it, play it out, echo a ``mark`` when the audio
before it has played, flush on ``clear`` -- is the core's
:class:`patter_core.media.CarrierPlayback`, driven from the event loop's
clock in seconds since ``start`` went out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
import anyio.abc
import numpy as np

from patter_core import RemoteProtocolError
from patter_core.audio._g711 import ulaw_encode
from patter_core.media import AgentMedia, CarrierPlayback, Clear, Mark

from ..net._websocket import WebSocket, WebSocketClosed
from ._frames import CarrierFrames

__all__ = [
    "CallStream",
    "DialProgress",
    "StreamSettings",
    "percentiles",
    "tone_ulaw",
]

RATE = 8000
FRAME_SECONDS = 0.02  # both carriers send 20 ms frames (PROTOCOLS.md §3, §4.4)
FRAME_BYTES = 160  # 20 ms of μ-law at 8 kHz
SILENCE = b"\xff"  # μ-law silence (§3)
# After our own close, how long to wait for the agent's side to finish.
_CLOSE_GRACE_S = 2.0
# Fade tone bursts in and out over 10 ms: a hard edge is a click that
# spreads energy over the whole band.
_FADE_S = 0.01


def tone_ulaw(
    hz: float,
    seconds: float,
    *,
    amplitude: float = 0.3,
    burst: float | None = 0.6,
    pause: float = 0.4,
    rate: int = RATE,
) -> bytes:
    """μ-law 8 kHz: ``seconds`` of a ``hz`` tone, in bursts with pauses.

    ``burst=None`` (or ``pause=0``) gives one continuous tone. Each burst is
    faded in and out. ``amplitude`` is a fraction of full scale.
    """
    total = max(0, round(seconds * rate))
    t = np.arange(total, dtype=np.float64) / rate
    signal = amplitude * 32767.0 * np.sin(2.0 * math.pi * hz * t)
    envelope = np.ones(total, dtype=np.float64)
    if burst is not None and pause > 0:
        period = burst + pause
        envelope = ((t % period) < burst).astype(np.float64)
    fade = max(1, round(_FADE_S * rate))
    # Raised-cosine ramps at every on/off edge (and at the very ends).
    padded = np.concatenate(([0.0], envelope, [0.0]))
    edges: list[int] = np.flatnonzero(np.diff(padded)).tolist()
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, fade))
    for i, edge in enumerate(edges):
        if i % 2 == 0:  # rising edge at sample `edge`
            n = min(fade, total - edge)
            envelope[edge : edge + n] *= ramp[:n]
        else:  # falling edge: the burst ends before sample `edge`
            n = min(fade, edge)
            envelope[edge - n : edge] *= ramp[::-1][fade - n :]
    pcm = np.round(signal * envelope).astype("<i2").tobytes()
    return ulaw_encode(pcm)


def percentiles(values: list[float], qs: tuple[float, ...] = (50, 95, 99)) -> tuple[float, ...]:
    """The ``qs`` percentiles of ``values`` (linear interpolation); NaNs if empty."""
    if not values:
        return tuple(math.nan for _ in qs)
    arr = np.asarray(values, dtype=np.float64)
    return tuple(float(np.percentile(arr, q)) for q in qs)


# ------------------------------------------------------------------ the call


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


class StreamSettings(Protocol):
    """What :class:`CallStream` reads of a call's options (``DialOptions`` has it)."""

    @property
    def jitter_buffer_s(self) -> float: ...
    @property
    def barge_in_at(self) -> float | None: ...
    @property
    def dtmf(self) -> tuple[tuple[str, float], ...]: ...
    @property
    def telnyx_error_at(self) -> float | None: ...
    @property
    def progress(self) -> Callable[[DialProgress], None] | None: ...
    @property
    def hang_up(self) -> HangUp | None: ...


class HangUp:
    """Set from outside the call (a Ctrl-C handler) to end it early, as a
    caller hanging up: the next 20 ms frame is ``stop`` instead."""

    def __init__(self) -> None:
        self.requested = False


class CallStream:
    """One media stream: a real-time sender and a receiver sharing a clock.

    ``run_sender`` writes the caller's frames on the 20 ms grid of the
    event loop's clock (``t0`` is when ``start`` went out); ``run_receiver``
    plays the agent's audio into a :class:`~patter_core.media.CarrierPlayback`, echoes marks when
    their audio has played and answers ``clear``. Either ending cancels the
    other through the task group they share.
    """

    def __init__(self, options: StreamSettings, ws: WebSocket, frames: CarrierFrames) -> None:
        self.options = options
        self.ws = ws
        self.frames = frames
        self.playback = CarrierPlayback(jitter_buffer=options.jitter_buffer_s)
        self.send_lock = anyio.Lock()
        self.t0 = 0.0
        self.frames_sent = 0
        self.marks_received = 0
        self.marks_echoed: list[str] = []
        self.clears = 0
        self.barge_reaction: float | None = None
        self.dtmf_sent: list[tuple[str, float]] = []
        self.errors_sent = 0
        self.ignored: list[str] = []
        self.stop_sent = False
        self.ended_by = "carrier"
        self.close_code: int | None = None
        self.failure: str | None = None
        self.receiver_done = anyio.Event()
        #: When the caller hung up early (``HangUp``), else None.
        self.hung_up_at: float | None = None

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
        error_at = opts.telnyx_error_at
        next_progress = 1.0
        hang_up = opts.hang_up
        for index in range(total_frames):
            await anyio.sleep_until(self.t0 + index * FRAME_SECONDS)
            if hang_up is not None and hang_up.requested:
                self.hung_up_at = index * FRAME_SECONDS
                total_frames = index
                break
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
                if error_at is not None and error_at <= index * FRAME_SECONDS + 1e-9:
                    error_at = None
                    error = self.frames.error()
                    if error is not None:
                        out.append(error)
                        self.errors_sent += 1
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
                    event = self.frames.receive(message)
                except RemoteProtocolError as exc:
                    self.failure = f"the agent sent a bad frame: {exc}"
                    await self.ws.close(exc.close_code or 1007)
                    tg.cancel_scope.cancel()
                    return
                if isinstance(event, AgentMedia):
                    self.playback.add_audio(self.frames.agent_audio(event.payload), now)
                elif isinstance(event, Mark):
                    self.marks_received += 1
                    await self.send_echoes(self.playback.add_mark(event.name, now))
                elif isinstance(event, Clear):
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
