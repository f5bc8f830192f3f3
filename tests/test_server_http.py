"""HTTP endpoints on the real server, over raw sockets.

Twilio requests are signed with the official ``twilio`` package's
validator; Telnyx requests with a fresh Ed25519 key pair (PyNaCl).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import anyio
import pytest
from nacl.signing import SigningKey
from twilio.request_validator import RequestValidator

from patter_anyio.calls._app import WebhookApp, WebhookHooks
from patter_anyio.net._server import Server
from patter_core.http import ServerLimits
from patter_core.webhooks import StreamTokens

pytestmark = pytest.mark.anyio

HOST = "abc.ngrok.app"
TOKEN = "12345"
SECRET = b"k" * 32
NOW = 1_700_000_000.0
SIGNING_KEY = SigningKey(b"\x07" * 32)
PUBLIC_KEY = base64.b64encode(bytes(SIGNING_KEY.verify_key)).decode()
LIMITS = ServerLimits(
    header_timeout=0.5,
    body_timeout=0.5,
    keepalive_timeout=0.5,
    send_timeout=2.0,
    shutdown_grace=1.0,
    max_body_bytes=2048,
    max_head_bytes=1024,
)
VOICE_FORM = {
    "AccountSid": "AC" + "1" * 32,
    "CallSid": "CA" + "2" * 32,
    "From": "+14155550100",
    "To": "+18005550199",
    "Direction": "inbound",
    "CallStatus": "ringing",
}


class Events:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def record(self, event: Any) -> None:
        self.seen.append(event)

    def hooks(self) -> WebhookHooks:
        return WebhookHooks(
            on_incoming_call=self.record,
            on_call_status=self.record,
            on_recording_status=self.record,
            on_amd_result=self.record,
            on_telnyx_event=self.record,
        )


@asynccontextmanager
async def running(
    *, signed: bool = True, events: Events | None = None, trusted: tuple[str, ...] = ()
) -> AsyncIterator[int]:
    app = WebhookApp(
        stream_secret=SECRET,
        webhook_host=HOST if signed else None,
        twilio_auth_token=TOKEN if signed else None,
        telnyx_public_key=PUBLIC_KEY if signed else None,
        hooks=(events or Events()).hooks(),
        clock=lambda: NOW,
    )
    server = Server(app, host="127.0.0.1", port=0, limits=LIMITS, trusted_proxies=trusted)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        try:
            yield port
        finally:
            server.stop()


async def exchange(port: int, data: bytes) -> bytes:
    async with await anyio.connect_tcp("127.0.0.1", port) as s:
        await s.send(data)
        out = b""
        with anyio.fail_after(5):
            while True:
                try:
                    out += await s.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return out


def post(path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: internal:8000", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def split(reply: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def twilio_request(path: str, form: dict[str, str], *, sign_url: str | None = None) -> bytes:
    signature = RequestValidator(TOKEN).compute_signature(sign_url or f"https://{HOST}{path}", form)
    return post(
        path,
        urlencode(form).encode(),
        {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )


async def test_health() -> None:
    async with running() as port:
        status, headers, body = split(
            await exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        )
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"status": "ok", "mode": "local", "calls": 0, "version": "0.1.0"}
    async with running() as port:
        status, _, body = split(
            await exchange(port, b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        )
    assert status == 200 and json.loads(body)["status"] == "ok"


async def test_voice_webhook_answers_connect_stream_with_token() -> None:
    events = Events()
    async with running(events=events) as port:
        status, headers, body = split(
            await exchange(port, twilio_request("/webhooks/twilio/voice", VOICE_FORM))
        )
    assert status == 200
    assert headers["content-type"].startswith("text/xml")
    call_sid = VOICE_FORM["CallSid"]
    text = body.decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Connect>')
    # Stream events come back to a signed endpoint of ours (attributes sorted).
    assert (
        f'<Stream statusCallback="https://{HOST}/webhooks/twilio/stream-status" '
        f'statusCallbackMethod="POST" url="wss://{HOST}/ws/stream/{call_sid}">'
    ) in text
    assert '<Parameter name="caller" value="+14155550100" />' in text
    assert '<Parameter name="callee" value="+18005550199" />' in text
    token = text.split('name="stream_token" value="')[1].split('"')[0]
    StreamTokens(SECRET).verify(token, call_sid, NOW + 1)
    assert [type(e).__name__ for e in events.seen] == ["IncomingCall"]
    assert events.seen[0].call_sid == call_sid


STREAM_ERROR = {
    "AccountSid": "AC" + "1" * 32,
    "CallSid": "CA" + "2" * 32,
    "StreamSid": "MZ" + "4" * 32,
    "StreamEvent": "stream-error",
    "StreamError": "31920 Stream - WebSocket - Handshake Error",
    "Timestamp": "2026-12-06T03:00:00Z",
}


async def test_stream_status_callback_is_signed_and_errors_logged_with_their_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = "/webhooks/twilio/stream-status"
    with caplog.at_level(logging.INFO, logger="patter_anyio.app"):
        async with running() as port:
            ok = split(await exchange(port, twilio_request(path, STREAM_ERROR)))
            started = dict(STREAM_ERROR, StreamEvent="stream-started", StreamError="")
            also_ok = split(await exchange(port, twilio_request(path, started)))
            forged = split(
                await exchange(port, twilio_request(path, STREAM_ERROR, sign_url="https://x/y"))
            )
    assert ok[0] == also_ok[0] == 200
    assert forged[0] == 403
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        f"stream-error call=CA{'2' * 32} stream=MZ{'4' * 32} code=31920: "
        "31920 Stream - WebSocket - Handshake Error"
    ) in warnings
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert f"stream-started call=CA{'2' * 32} stream=MZ{'4' * 32}" in infos


CALLBACKS = [
    (
        "/webhooks/twilio/status",
        {"CallStatus": "completed", "CallDuration": "7"},
        "CallStatusCallback",
    ),
    (
        "/webhooks/twilio/recording",
        {
            "RecordingSid": "RE" + "3" * 32,
            "RecordingStatus": "completed",
            "RecordingUrl": "https://x/r",
        },
        "RecordingStatusCallback",
    ),
    ("/webhooks/twilio/amd", {"AnsweredBy": "machine_end_beep"}, "AmdCallback"),
    ("/webhooks/twilio/voice", {}, "IncomingCall"),
]


@pytest.mark.parametrize(("path", "extra", "kind"), CALLBACKS)
async def test_twilio_webhooks_signed_unsigned_tampered(
    path: str, extra: dict[str, str], kind: str
) -> None:
    form = {**VOICE_FORM, **extra}
    events = Events()
    async with running(events=events) as port:
        good = split(await exchange(port, twilio_request(path, form)))
        unsigned = split(
            await exchange(
                port,
                post(
                    path,
                    urlencode(form).encode(),
                    {"Content-Type": "application/x-www-form-urlencoded"},
                ),
            )
        )
        tampered_body = twilio_request(path, form).replace(b"%2B14155550100", b"%2B19995550100")
        tampered = split(await exchange(port, tampered_body))
        # Signed over the URL the Host header names: refused, we rebuild from config.
        host_url = split(
            await exchange(
                port, twilio_request(path, form, sign_url=f"https://internal:8000{path}")
            )
        )
    assert (good[0], unsigned[0], tampered[0], host_url[0]) == (200, 403, 403, 403)
    if kind != "IncomingCall":
        assert good[2] == b'<?xml version="1.0" encoding="UTF-8"?><Response />'
    assert [type(e).__name__ for e in events.seen] == [kind]


async def test_twilio_unsigned_accepted_when_validation_off() -> None:
    async with running(signed=False) as port:
        status, _, body = split(
            await exchange(
                port,
                post(
                    "/webhooks/twilio/voice",
                    urlencode(VOICE_FORM).encode(),
                    {"Content-Type": "application/x-www-form-urlencoded"},
                ),
            )
        )
    assert status == 200
    # No configured host: the stream URL follows the Host header.
    assert b'url="wss://internal:8000/ws/stream/CA' in body


def telnyx_body() -> bytes:
    return json.dumps(
        {
            "data": {
                "event_type": "call.initiated",
                "id": "e1",
                "payload": {
                    "call_control_id": "v3:abc",
                    "direction": "incoming",
                    "from": "+1",
                    "to": "+2",
                },
                "record_type": "event",
            }
        }
    ).encode()


def telnyx_request(
    body: bytes, *, timestamp: int = int(NOW), signed_body: bytes | None = None
) -> bytes:
    message = str(timestamp).encode() + b"|" + (signed_body if signed_body is not None else body)
    signature = base64.b64encode(SIGNING_KEY.sign(message).signature).decode()
    return post(
        "/webhooks/telnyx/voice",
        body,
        {
            "Content-Type": "application/json",
            "telnyx-signature-ed25519": signature,
            "telnyx-timestamp": str(timestamp),
        },
    )


async def test_telnyx_webhook_signed_unsigned_tampered_stale() -> None:
    events = Events()
    body = telnyx_body()
    async with running(events=events) as port:
        good = split(await exchange(port, telnyx_request(body)))
        unsigned = split(
            await exchange(
                port, post("/webhooks/telnyx/voice", body, {"Content-Type": "application/json"})
            )
        )
        tampered = split(
            await exchange(
                port, telnyx_request(body.replace(b"v3:abc", b"v3:xyz"), signed_body=body)
            )
        )
        stale = split(await exchange(port, telnyx_request(body, timestamp=int(NOW) - 301)))
        malformed = split(await exchange(port, post("/webhooks/telnyx/voice", b"{}")))
    assert (good[0], unsigned[0], tampered[0], stale[0]) == (200, 403, 403, 403)
    assert good[2] == b""
    assert malformed[0] == 403  # unsigned garbage never reaches the parser
    assert len(events.seen) == 1 and events.seen[0].call_control_id == "v3:abc"


async def test_telnyx_unsigned_parsed_when_validation_off() -> None:
    events = Events()
    async with running(signed=False, events=events) as port:
        good = split(await exchange(port, post("/webhooks/telnyx/voice", telnyx_body())))
        bad = split(await exchange(port, post("/webhooks/telnyx/voice", b"not json")))
    assert (good[0], bad[0]) == (200, 400)
    assert events.seen[0].event_type == "call.initiated"


async def test_not_found_method_not_allowed_too_large() -> None:
    async with running() as port:
        missing = split(await exchange(port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"))
        wrong = split(
            await exchange(port, b"GET /webhooks/twilio/voice HTTP/1.1\r\nHost: x\r\n\r\n")
        )
        health_post = split(await exchange(port, post("/health", b"")))
        big = split(await exchange(port, post("/webhooks/twilio/voice", b"x" * 2049)))
        chunked = split(
            await exchange(
                port,
                b"POST /webhooks/twilio/status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"400\r\n"
                + b"x" * 1024
                + b"\r\n"
                + b"401\r\n"
                + b"x" * 1025
                + b"\r\n0\r\n\r\n",
            )
        )
        long_head = split(
            await exchange(
                port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 2000 + b"\r\n\r\n"
            )
        )
        garbage = split(await exchange(port, b"NOT HTTP AT ALL\r\n\r\n"))
    assert missing[0] == 404
    assert wrong[0] == 405 and wrong[1]["allow"] == "POST"
    assert health_post[0] == 405 and health_post[1]["allow"] == "GET, HEAD"
    assert big[0] == 413
    assert chunked[0] == 413
    assert long_head[0] == 431
    assert garbage[0] == 400


async def test_keep_alive_and_pipelining_refused() -> None:
    one = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    async with running() as port, await anyio.connect_tcp("127.0.0.1", port) as s:
        # Keep-alive: two requests, one after the other, on one connection.
        for _ in range(2):
            await s.send(one)
            data = b""
            with anyio.fail_after(5):
                while not data.endswith(b"}"):
                    data += await s.receive()
            status, headers, _ = split(data)
            assert status == 200 and "connection" not in headers
        # Pipelined: the first is answered with Connection: close, the second dropped.
        await s.send(one + one)
        out = b""
        with anyio.fail_after(5):
            while True:
                try:
                    out += await s.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
    assert out.count(b"HTTP/1.1 200") == 1
    assert split(out)[1]["connection"] == "close"


async def test_slow_client_cut_off_while_others_are_served() -> None:
    async with running() as port, await anyio.connect_tcp("127.0.0.1", port) as slow:
        start = anyio.current_time()
        await slow.send(b"GET /health HTTP/1.1\r\nHo")
        # Others are served meanwhile.
        for _ in range(3):
            status, _, _ = split(
                await exchange(
                    port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
            )
            assert status == 200
        out = b""
        with anyio.fail_after(5):
            while True:
                await anyio.sleep(0.05)
                try:
                    await slow.send(b"s")  # trickle
                    out += await slow.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    break
        elapsed = anyio.current_time() - start
    assert out.startswith(b"HTTP/1.1 408 ")
    assert 0.4 < elapsed < 3.0


async def test_idle_connection_closed_silently() -> None:
    async with running() as port, await anyio.connect_tcp("127.0.0.1", port) as idle:
        with anyio.fail_after(3):
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await idle.receive()


async def test_head_request() -> None:
    async with running() as port:
        reply = await exchange(
            port, b"HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    status, headers, body = split(reply)
    assert status == 200 and body == b""
    full = b'{"status": "ok", "mode": "local", "calls": 0, "version": "0.1.0"}'
    assert headers["content-length"] == str(len(full))


async def test_a_refused_twilio_webhook_logs_the_url_checked_and_the_fix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="patter_anyio")
    async with running() as port:
        # Signed over the host the request came in on, not the configured one.
        wrong = split(
            await exchange(
                port,
                twilio_request(
                    "/webhooks/twilio/voice",
                    VOICE_FORM,
                    sign_url="https://internal:8000/webhooks/twilio/voice",
                ),
            )
        )
    assert wrong[0] == 403 and wrong[2] == b"forbidden\n"
    lines = [r.getMessage() for r in caplog.records if "refused (403)" in r.getMessage()]
    assert lines == [
        "Twilio webhook /webhooks/twilio/voice refused (403): X-Twilio-Signature does not "
        "match; the signature was checked against https://abc.ngrok.app/webhooks/twilio/voice, "
        "but the request came for host internal:8000: if Twilio posts there, start the server "
        "with --webhook-url internal:8000"
    ]


async def test_a_refused_telnyx_webhook_says_what_to_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="patter_anyio")
    body = telnyx_body()
    async with running() as port:
        stale = split(await exchange(port, telnyx_request(body, timestamp=int(NOW) - 400)))
    assert stale[0] == 403
    lines = [r.getMessage() for r in caplog.records if "refused (403)" in r.getMessage()]
    assert lines == [
        "Telnyx webhook /webhooks/telnyx/voice refused (403): webhook timestamp outside the "
        "window (400s); check that TELNYX_PUBLIC_KEY is the public key from the Telnyx portal "
        "and that this machine's clock is right"
    ]
