"""Loopback servers for end-to-end tests, each on its own thread.

The fakes run in a background thread with their own asyncio loop (WebSocket
fakes use the independent ``websockets`` package; REST fakes use the stdlib
``http.server``), so the code under test can run on either anyio backend
(asyncio or trio) in the test's own thread.

Everything binds 127.0.0.1 on an ephemeral port and stops when the context
manager exits.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from websockets.asyncio.server import ServerConnection, serve

WsHandler = Callable[[ServerConnection], Awaitable[None]]


@dataclass
class RunningWsServer:
    port: int
    loop: asyncio.AbstractEventLoop
    connections: list[ServerConnection] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@contextmanager
def websocket_server(
    handler: WsHandler, *, handshake_delay: float = 0.0
) -> Iterator[RunningWsServer]:
    """Serve ``handler`` with the ``websockets`` package on a thread.

    ``handshake_delay``: seconds before the opening handshake is answered (a
    provider slow to accept the socket)."""
    ready = threading.Event()
    stop: list[asyncio.Event] = []
    box: dict[str, Any] = {}

    async def main() -> None:
        stop.append(asyncio.Event())

        async def wrapped(conn: ServerConnection) -> None:
            box["server"].connections.append(conn)
            await handler(conn)

        async def slow_handshake(conn: ServerConnection, request: Any) -> None:
            await asyncio.sleep(handshake_delay)

        async with serve(
            wrapped,
            "127.0.0.1",
            0,
            compression=None,
            max_size=2**22,
            process_request=slow_handshake if handshake_delay else None,
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            box["server"] = RunningWsServer(port=port, loop=asyncio.get_running_loop())
            ready.set()
            await stop[0].wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("fake WebSocket server did not start")
    running: RunningWsServer = box["server"]
    try:
        yield running
    finally:
        running.loop.call_soon_threadsafe(stop[0].set)
        thread.join(10)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RunningRestServer:
    port: int
    requests: list[RecordedRequest]
    event: threading.Condition

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(
        self, predicate: Callable[[RecordedRequest], bool], timeout: float = 5.0
    ) -> RecordedRequest:
        with self.event:
            ok = self.event.wait_for(lambda: any(predicate(r) for r in self.requests), timeout)
            if not ok:
                raise AssertionError(
                    f"no matching request; saw {[(r.method, r.path) for r in self.requests]}"
                )
            return next(r for r in self.requests if predicate(r))


Responder = Callable[[RecordedRequest], tuple[int, dict[str, Any]]]


@contextmanager
def rest_server(responder: Responder) -> Iterator[RunningRestServer]:
    """A JSON REST fake: records every request, answers with ``responder``."""
    requests: list[RecordedRequest] = []
    cond = threading.Condition()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            rec = RecordedRequest(
                method=self.command,
                path=parts.path,
                query=dict(parse_qsl(parts.query)),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            # Recorded before answering: a client that has the reply must
            # find its request in ``requests``.
            with cond:
                requests.append(rec)
                cond.notify_all()
            status, payload = responder(rec)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield RunningRestServer(port=server.server_address[1], requests=requests, event=cond)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def twilio_responder(rec: RecordedRequest) -> tuple[int, dict[str, Any]]:
    """Answers like Twilio's 2010-04-01 API for the calls we make."""
    if rec.path.endswith("/Calls.json"):
        return 201, {"sid": "CA" + "0" * 32, "status": "queued"}
    if rec.path.endswith("/Recordings.json"):
        return 201, {"sid": "RE" + "0" * 32, "status": "in-progress"}
    if "/Calls/" in rec.path:
        return 200, {
            "sid": rec.path.rsplit("/", 1)[-1].removesuffix(".json"),
            "status": "completed",
        }
    return 404, {"code": 20404, "message": "not found"}


def telnyx_responder(rec: RecordedRequest) -> tuple[int, dict[str, Any]]:
    """Answers like Telnyx's v2 Call Control API."""
    if rec.path.endswith("/calls"):
        return 200, {"data": {"call_control_id": "v3:fake-outbound", "record_type": "call"}}
    return 200, {"data": {"result": "ok"}}


class TwilioCallsFake:
    """Twilio's Calls API, and then what Twilio sends for each call it placed.

    Answers ``POST Calls.json`` like Twilio (201, a fresh ``CA...`` sid,
    ``queued``) and then, on a thread, plays the call: the signed
    ``StatusCallback`` posts for the events the request asked for
    (``initiated``, ``ringing``, ``answered`` as ``in-progress``, and the
    final ``completed``, ``busy``, ``no-answer`` or ``failed``, which Twilio
    sends under the ``completed`` event), each with a ``SequenceNumber``; on
    an answer, the voice webhook (``Url``), then the async AMD result when
    detection was asked for; the final status once the call is hung up
    (through the REST API, or by the callee: :meth:`hang_up`).

    ``outcomes`` maps a number to what it does: ``answered`` (a person),
    ``voicemail`` (a machine: ``machine_end_beep``), ``busy``,
    ``no-answer``, ``failed``.
    """

    def __init__(self, token: str, outcomes: dict[str, str], *, host: str) -> None:
        self.token = token
        self.outcomes = outcomes
        self.host = host
        #: The port our server listens on (set once it runs).
        self.server_port: int | None = None
        #: (path, form, HTTP status of our answer) of every webhook sent.
        self.webhooks: list[tuple[str, dict[str, str], int]] = []
        #: The voice webhook's TwiML, by call sid, once answered.
        self.twiml: dict[str, str] = {}
        self._hung_up: dict[str, threading.Event] = {}
        self._cond = threading.Condition()
        self._count = 0

    # -- the REST API ------------------------------------------------------------------

    def responder(self, rec: RecordedRequest) -> tuple[int, dict[str, Any]]:
        if rec.path.endswith("/Calls.json"):
            self._count += 1
            sid = f"CA{self._count:032d}"
            fields = parse_qsl(rec.body.decode(), keep_blank_values=True)
            fields.append(("AccountSid", rec.path.split("/")[3]))
            self._hung_up[sid] = threading.Event()
            threading.Thread(target=self._play, args=(sid, fields), daemon=True).start()
            return 201, {"sid": sid, "status": "queued"}
        if "/Calls/" in rec.path and not rec.path.endswith("/Recordings.json"):
            sid = rec.path.rsplit("/", 1)[-1].removesuffix(".json")
            form = rec.form
            if form.get("Status") == "completed" or "<Hangup" in form.get("Twiml", ""):
                self.hang_up(sid)
            return 200, {"sid": sid, "status": "in-progress"}
        return twilio_responder(rec)

    def hang_up(self, sid: str) -> None:
        """The call ends (the callee hung up, or the TwiML said so)."""
        if sid in self._hung_up:
            self._hung_up[sid].set()

    def wait_answered(self, sid: str, timeout: float = 10.0) -> str:
        with self._cond:
            if not self._cond.wait_for(lambda: sid in self.twiml, timeout):
                raise AssertionError(f"call {sid} was not answered")
            return self.twiml[sid]

    # -- what Twilio sends --------------------------------------------------------------

    def _post(self, url: str, form: dict[str, str]) -> tuple[int, bytes]:
        import http.client

        from twilio.request_validator import RequestValidator

        parts = urlsplit(url)
        assert parts.hostname == self.host, url
        assert self.server_port is not None, "set server_port first"
        signature = RequestValidator(self.token).compute_signature(url, form)
        conn = http.client.HTTPConnection("127.0.0.1", self.server_port, timeout=10)
        status, body = 0, b""  # 0: the server was gone (Twilio logs error 11200)
        try:
            conn.request(
                "POST",
                parts.path,
                body=urlencode(form).encode(),
                headers={
                    "content-type": "application/x-www-form-urlencoded",
                    "x-twilio-signature": signature,
                },
            )
            response = conn.getresponse()
            status, body = response.status, response.read()
        except OSError:
            pass
        finally:
            conn.close()
        with self._cond:
            self.webhooks.append((parts.path, form, status))
            self._cond.notify_all()
        return status, body

    def _play(self, sid: str, fields: list[tuple[str, str]]) -> None:
        request = dict(fields)
        events = {value for name, value in fields if name == "StatusCallbackEvent"}
        outcome = self.outcomes.get(request["To"], "answered")
        base = {
            "CallSid": sid,
            "AccountSid": request.get("AccountSid", ""),
            "From": request["From"],
            "To": request["To"],
            "Direction": "outbound-api",
        }
        sequence = iter(range(1000))

        def status(call_status: str, event: str, **extra: str) -> None:
            callback = request.get("StatusCallback")
            if callback and (event in events or event == "completed"):
                form = {
                    **base,
                    "CallStatus": call_status,
                    "CallbackSource": "call-progress-events",
                    "SequenceNumber": str(next(sequence)),
                    **extra,
                }
                self._post(callback, form)

        if outcome == "failed":
            status("failed", "completed", SipResponseCode="404")
            return
        status("initiated", "initiated")
        status("ringing", "ringing")
        if outcome == "busy":
            status("busy", "completed", SipResponseCode="486")
            return
        if outcome == "no-answer":
            status("no-answer", "completed", SipResponseCode="487")
            return
        answered_at = time.monotonic()
        status("in-progress", "answered")
        _code, body = self._post(request["Url"], {**base, "CallStatus": "in-progress"})
        with self._cond:
            self.twiml[sid] = body.decode()
            self._cond.notify_all()
        amd = request.get("AsyncAmdStatusCallback")
        if amd and request.get("MachineDetection"):
            time.sleep(0.3)  # listening to the greeting
            answered_by = "machine_end_beep" if outcome == "voicemail" else "human"
            self._post(
                amd, {**base, "AnsweredBy": answered_by, "MachineDetectionDuration": "2400"}
            )
        self._hung_up[sid].wait(30)
        duration = max(1, round(time.monotonic() - answered_at))
        status("completed", "completed", CallDuration=str(duration))
