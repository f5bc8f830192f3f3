"""The dashboard, its call API, its event stream and ``/metrics``: I/O only.

:class:`Monitor` owns a :class:`patter_core.monitor.CallBoard` and the
queues of the pages watching it. Call runners hand it every call event
through :meth:`Monitor.observe`, a plain synchronous call that updates
memory and offers the resulting server-sent event to each subscriber
without waiting: a subscriber whose queue is full misses that event (the
board counts it), so a stalled browser never slows a call. The server asks
:meth:`Monitor.respond` for the whole-body answers and streams
:meth:`Monitor.subscribe` for ``GET /api/calls/events``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from importlib import resources

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from patter_core.http import Endpoint, HttpResponse, Route
from patter_core.monitor import CallBoard
from patter_core.monitor._board import sse_comment

from .._errors import STREAM_LOST

__all__ = ["Monitor", "Subscription"]

#: Events queued per watching page before it starts missing them.
_QUEUE_SIZE = 256
#: Pages watching at once; more is a misuse (or an attack) on a call server.
_MAX_SUBSCRIBERS = 32
#: A comment line this often keeps an idle stream open through proxies.
_KEEPALIVE_SECONDS = 15.0

_NO_STORE = ("cache-control", "no-store")
#: Recordings are answered whole: 256 MiB is over two hours of 8 kHz stereo.
_MAX_RECORDING_BYTES = 256 * 1024 * 1024


def _page() -> bytes:
    return resources.files("patter_anyio").joinpath("static/dashboard.html").read_bytes()


class Subscription:
    """One page's event stream: the snapshot first, then events as they come."""

    def __init__(
        self,
        monitor: Monitor,
        send: MemoryObjectSendStream[bytes],
        receive: MemoryObjectReceiveStream[bytes],
        first: bytes,
    ) -> None:
        self._monitor = monitor
        self._send = send
        self._receive = receive
        self.first = first

    async def next(self, keepalive: float = _KEEPALIVE_SECONDS) -> bytes:
        """The next event, or a keep-alive comment after ``keepalive`` seconds."""
        with anyio.move_on_after(keepalive):
            return await self._receive.receive()
        return sse_comment("keep-alive")

    def close(self) -> None:
        self._monitor._subscribers.discard(self._send)
        self._send.close()
        self._receive.close()


class Monitor:
    def __init__(
        self, board: CallBoard | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.board = board if board is not None else CallBoard()
        self._clock = clock
        self._subscribers: set[MemoryObjectSendStream[bytes]] = set()

    def observe(self, name: str, payload: Mapping[str, object], now: float) -> None:
        """A call event (never awaits: runs inside a call's input lock)."""
        event = self.board.observe(name, payload, now)
        if event is None or not self._subscribers:
            return
        data = event.encode()
        for send in list(self._subscribers):
            try:
                send.send_nowait(data)
            except anyio.WouldBlock:
                self.board.event_dropped()
            except STREAM_LOST:
                self._subscribers.discard(send)

    def refused(self, reason: str) -> None:
        self.board.refused(reason)

    def subscribe(self) -> Subscription | None:
        """A new event stream, or None when too many pages watch already."""
        if len(self._subscribers) >= _MAX_SUBSCRIBERS:
            return None
        send, receive = anyio.create_memory_object_stream[bytes](_QUEUE_SIZE)
        self._subscribers.add(send)
        return Subscription(self, send, receive, self.board.snapshot_event(self._clock()))

    async def respond(self, route: Route) -> HttpResponse:
        """A whole-body answer for every monitor endpoint but the event stream."""
        now = self._clock()
        if route.endpoint is Endpoint.METRICS:
            content_type, body = self.board.prometheus()
            return HttpResponse(
                status=200, headers=(("content-type", content_type), _NO_STORE), body=body
            )
        if route.endpoint is Endpoint.DASHBOARD:
            return HttpResponse(
                status=200,
                headers=(
                    ("content-type", "text/html; charset=utf-8"),
                    _NO_STORE,
                    # Everything the page needs is in the page: no other origin.
                    (
                        "content-security-policy",
                        "default-src 'self'; script-src 'unsafe-inline'; "
                        "style-src 'unsafe-inline'; img-src 'self' data:",
                    ),
                    ("x-content-type-options", "nosniff"),
                ),
                body=_page(),
            )
        if route.endpoint is Endpoint.API_CALLS:
            return _json(self.board.calls_json(now))
        if route.endpoint is Endpoint.API_RECORDING and route.call_id is not None:
            path = self.board.recording_path(route.call_id)
            if path is not None:
                data = await anyio.to_thread.run_sync(_read_recording, path)
                if data is not None:
                    return HttpResponse(
                        status=200,
                        headers=(("content-type", "audio/wav"), _NO_STORE),
                        body=data,
                    )
        if route.endpoint is Endpoint.API_CALL and route.call_id is not None:
            one = self.board.call_json(route.call_id, now)
            if one is not None:
                return _json(one)
        return HttpResponse(
            status=404,
            headers=(("content-type", "text/plain; charset=utf-8"),),
            body=b"not found\n",
        )


def _read_recording(path: str) -> bytes | None:
    """The file, if it is still there and small enough to answer whole."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_RECORDING_BYTES + 1)
    except OSError:
        return None
    return data if len(data) <= _MAX_RECORDING_BYTES else None


def _json(body: bytes) -> HttpResponse:
    return HttpResponse(
        status=200, headers=(("content-type", "application/json"), _NO_STORE), body=body
    )
