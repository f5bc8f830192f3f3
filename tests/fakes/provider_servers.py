"""Loopback servers for the realtime provider fakes, scriptable from a test.

:func:`provider_server` serves a pure fake provider peer
(:class:`~tests.fakes.fake_openai_realtime.FakeOpenAIRealtime`,
:class:`~tests.fakes.fake_elevenlabs.FakeElevenLabs`) over a real WebSocket
with the ``websockets`` package, on a thread with its own asyncio loop, so
the server under test may run on asyncio or trio. The same port answers
plain HTTP ``GET`` requests with the peer's ``http_request`` (the ElevenLabs
signed-URL endpoint), and a refused handshake is a real HTTP refusal.

Tests script it two ways, and every call into the peer happens on the
server's own thread:

* rules, set before the call: ``when(predicate, respond)`` -- "when the first
  ``input_audio_buffer.append`` arrives, close the socket";
* pushes, at any time from any thread: ``push(lambda: fake.speech_started())``.

The carrier's end of a call is in :mod:`tests.fakes.carrier`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from patter_core.http import HttpRequest

__all__ = ["Close", "Pause", "ProviderServer", "provider_server"]


class Peer(Protocol):
    received: list[dict[str, Any]]

    def check_handshake(self, path: str, headers: Sequence[tuple[str, str]]) -> int | None: ...

    def on_connect(self) -> list[str]: ...

    def on_message(self, data: str | bytes) -> list[str]: ...


@dataclass(frozen=True)
class Close:
    """Scripted: close the provider socket with this code."""

    code: int = 1011
    reason: str = "fake provider closing"


@dataclass(frozen=True)
class Pause:
    """Scripted: wait before sending what follows (pacing a stream of audio)."""

    seconds: float


Outgoing = str | Close | Pause
Responder = Callable[[dict[str, Any]], Sequence[Outgoing]]


@dataclass
class _Rule:
    predicate: Callable[[dict[str, Any]], bool]
    respond: Responder
    times: int  # < 0: every time


@dataclass
class ProviderServer:
    """A fake provider on 127.0.0.1; read its peer and counters from any thread."""

    peer: Peer
    port: int = 0
    loop: asyncio.AbstractEventLoop | None = None
    #: Every upgrade attempted (path), refused ones included.
    handshakes: list[str] = field(default_factory=list)
    #: The headers of each of those upgrades, names lower-cased.
    handshake_headers: list[dict[str, str]] = field(default_factory=list)
    #: WebSocket connections accepted.
    connections: int = 0
    #: Plain HTTP requests served (the signed-URL endpoint).
    http_requests: list[HttpRequest] = field(default_factory=list)
    #: Close code the client sent, per finished connection (None: no close frame).
    client_close_codes: list[int | None] = field(default_factory=list)
    _rules: list[_Rule] = field(default_factory=list)
    _queues: list[asyncio.Queue[Outgoing]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def when(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        respond: Responder,
        *,
        times: int = 1,
    ) -> None:
        """After the peer has handled a client message matching ``predicate``, send ``respond(msg)``.

        Both run on the server's thread, so ``respond`` may call the peer's
        scripting methods. Set rules before the client connects.
        """
        self._rules.append(_Rule(predicate, respond, times))

    def push(self, messages: Sequence[Outgoing] | Callable[[], Sequence[Outgoing]]) -> None:
        """Send to the newest connection now; a callable is called on the server's thread."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._push, messages)

    def close(self, code: int = 1011, reason: str = "fake provider closing") -> None:
        self.push([Close(code, reason)])

    def received_matching(
        self, predicate: Callable[[dict[str, Any]], bool]
    ) -> list[dict[str, Any]]:
        return [m for m in list(self.peer.received) if predicate(m)]

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        """The first client message matching ``predicate`` (any anyio or asyncio loop)."""
        with anyio.fail_after(timeout):
            while True:
                found = self.received_matching(predicate)
                if found:
                    return found[0]
                await anyio.sleep(0.01)

    # -- server thread ------------------------------------------------------------

    def _push(self, messages: Sequence[Outgoing] | Callable[[], Sequence[Outgoing]]) -> None:
        items = messages() if callable(messages) else messages
        if self._queues:
            for item in items:
                self._queues[-1].put_nowait(item)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        headers = list(request.headers.raw_items())
        if "upgrade" not in request.headers:
            http_request = getattr(self.peer, "http_request", None)
            if http_request is None:
                return connection.respond(404, "not found\n")
            req = HttpRequest(
                method="GET",
                url=self.base_url + request.path,
                headers=tuple((k.lower(), v) for k, v in headers),
            )
            self.http_requests.append(req)
            status, body = http_request(req)
            out = Headers()
            out["Content-Type"] = "application/json"
            out["Content-Length"] = str(len(body))
            out["Connection"] = "close"
            return Response(status, "OK" if status == 200 else "Error", out, body)
        self.handshakes.append(request.path)
        self.handshake_headers.append({k.lower(): v for k, v in headers})
        status = self.peer.check_handshake(request.path, headers)
        if status is not None:
            body = getattr(self.peer, "refusal_body", None) or "refused by the fake provider\n"
            return connection.respond(status, body)
        return None

    async def _handler(self, conn: ServerConnection) -> None:
        self.connections += 1
        queue: asyncio.Queue[Outgoing] = asyncio.Queue()
        self._queues.append(queue)
        sender = asyncio.create_task(self._sender(conn, queue))
        for message in self.peer.on_connect():
            queue.put_nowait(message)
        try:
            async for data in conn:
                for reply in self.peer.on_message(data):
                    queue.put_nowait(reply)
                try:
                    msg = json.loads(data)
                except ValueError:
                    continue
                if isinstance(msg, dict):
                    self._apply_rules(msg, queue)
        except ConnectionClosed:
            pass
        finally:
            rcvd = conn.protocol.close_rcvd
            self.client_close_codes.append(rcvd.code if rcvd is not None else None)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    def _apply_rules(self, msg: dict[str, Any], queue: asyncio.Queue[Outgoing]) -> None:
        for rule in list(self._rules):
            if rule.times == 0 or not rule.predicate(msg):
                continue
            if rule.times > 0:
                rule.times -= 1
            for item in rule.respond(msg):
                queue.put_nowait(item)

    @staticmethod
    async def _sender(conn: ServerConnection, queue: asyncio.Queue[Outgoing]) -> None:
        try:
            while True:
                item = await queue.get()
                if isinstance(item, Close):
                    await conn.close(item.code, item.reason)
                    return
                if isinstance(item, Pause):
                    await asyncio.sleep(item.seconds)
                    continue
                await conn.send(item)
        except ConnectionClosed:
            return


@contextmanager
def provider_server(peer: Peer) -> Iterator[ProviderServer]:
    """Serve ``peer`` on 127.0.0.1 (ephemeral port) until the block exits.

    A peer with a ``ws_base`` attribute (the ElevenLabs fake) has it pointed
    at this server, so the signed URL it hands out leads back here.
    """
    server = ProviderServer(peer=peer)
    ready = threading.Event()
    stop: list[asyncio.Event] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        async with serve(
            server._handler,
            "127.0.0.1",
            0,
            process_request=server._process_request,
            compression=None,
            max_size=2**22,
        ) as ws_server:
            server.port = next(iter(ws_server.sockets)).getsockname()[1]
            server.loop = asyncio.get_running_loop()
            if hasattr(peer, "ws_base"):
                peer.ws_base = server.ws_url
            ready.set()
            await stop[0].wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("fake provider server did not start")
    try:
        yield server
    finally:
        assert server.loop is not None
        server.loop.call_soon_threadsafe(stop[0].set)
        thread.join(10)
