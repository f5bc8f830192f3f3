"""Tools and message handlers that live on another server.

The receiver is :func:`tests.fakes.servers.rest_server` on 127.0.0.1 (it
records every request and answers per path); the model is the ElevenLabs
fake, which calls the tools and reads back ``client_tool_result`` with its
``is_error`` flag.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from functools import partial
from typing import Any

import anyio
import pytest

from patter_anyio import InvalidOption, Tool
from patter_anyio.calls._remote import RemoteMessageHandler, ToolFailed
from patter_core.webhooks._outgoing import address_problem, webhook_url_problem
from tests.fakes.carrier import (
    carrier_stream,
    local_ws_url,
    run_in_asyncio_thread,
    stream_signature,
)
from tests.fakes.fake_elevenlabs import FakeElevenLabs
from tests.fakes.http_fakes import (
    Recorder,
    deepgram_server,
    incoming_call,
    pipeline_http_server,
    twilio_stream,
    ulaw_frames,
)
from tests.fakes.provider_servers import provider_server
from tests.fakes.servers import RecordedRequest, rest_server
from tests.test_e2e_echo import AUTH_TOKEN, CALL_SID
from tests.test_e2e_pipeline import _phone
from tests.test_e2e_realtime import (
    Recorded,
    answer_call,
    of_type,
    serving,
    twilio_phone,
    twilio_rest,
)

pytestmark = pytest.mark.anyio

SECRET = "tool-webhook-secret"


class Receiver:
    """Answers per path: ``/ok`` 200, ``/flaky`` 503 then 200, ``/refuse``
    400, ``/slow`` later than the tool's timeout."""

    def __init__(self) -> None:
        self.flaky = 0
        self.lock = threading.Lock()

    def __call__(self, rec: RecordedRequest) -> tuple[int, Any]:
        if rec.path == "/ok":
            return 200, {"order": rec.json["arguments"]["order"], "status": "shipped"}
        if rec.path == "/flaky":
            with self.lock:
                self.flaky += 1
                first = self.flaky == 1
            return (503, {"error": "busy"}) if first else (200, "done")
        if rec.path == "/refuse":
            return 400, {"error": "order must be a number"}
        if rec.path == "/slow":
            time.sleep(1.0)
            return 200, "too late"
        if rec.path == "/reply":
            return 200, {"text": f"You said: {rec.json['text']}"}
        return 404, {"error": "no such path"}


def _signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def test_webhook_tools_over_loopback() -> None:
    fake = FakeElevenLabs(agent_id="agent_remote")
    seen = Recorded()
    with (
        rest_server(Receiver()) as receiver,
        provider_server(fake) as provider,
        twilio_rest() as rest,
    ):
        base = receiver.base_url
        local_name = f"http://localhost:{receiver.port}"
        phone = twilio_phone(rest, elevenlabs_base_url=provider.base_url, webhook_secret=SECRET)
        private = {"allow_private_webhooks": True}
        agent = phone.agent(
            provider="elevenlabs",
            agent_id="agent_remote",
            tools=[
                # Signed with the tool's own secret, which wins over Patter's.
                Tool(name="ok", webhook_url=f"{base}/ok", webhook_secret="own-secret", **private),
                Tool(name="flaky", webhook_url=f"{base}/flaky", **private),
                Tool(name="refuse", webhook_url=f"{base}/refuse", **private),
                Tool(name="slow", webhook_url=f"{base}/slow", webhook_timeout=0.3, **private),
                # A name resolving to loopback, without the opt-in: refused at call time.
                Tool(name="sneaky", webhook_url=f"{local_name}/ok"),
            ],
        )
        calls = [
            ("ok", {"order": "42"}),
            ("flaky", {}),
            ("refuse", {"order": "x"}),
            ("slow", {}),
            ("sneaky", {"order": "42"}),
        ]
        async with serving(phone, agent, seen) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> list[dict[str, Any]]:
                async with carrier_stream(
                    local_ws_url(port, stream_url),
                    headers={"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)},
                ) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("conversation_initiation_client_data"))
                    results = []
                    for name, arguments in calls:
                        provider.push(lambda n=name, a=arguments: fake.tool_call(n, a, f"id-{n}"))
                        results.append(
                            await provider.wait_for(
                                lambda m, n=name: (
                                    m.get("type") == "client_tool_result"
                                    and m.get("tool_call_id") == f"id-{n}"
                                ),
                                timeout=15,
                            )
                        )
                    await call.stop()
                    await call.wait(call.closed.is_set, what="the server closing the stream")
                    return results

            results = await run_in_asyncio_thread(carrier, timeout=40)
            await seen.wait_ended()
        by_path: dict[str, list[RecordedRequest]] = {}
        for request in receiver.requests:
            by_path.setdefault(request.path, []).append(request)

    flags = {r["tool_call_id"].removeprefix("id-"): r["is_error"] for r in results}
    assert flags == {"ok": False, "flaky": False, "refuse": True, "slow": True, "sneaky": True}
    text = {r["tool_call_id"].removeprefix("id-"): r["result"] for r in results}
    assert json.loads(text["ok"]) == {"order": "42", "status": "shipped"}
    assert json.loads(text["flaky"]) == "done"
    assert "webhook answered 400" in text["refuse"]
    assert "order must be a number" in text["refuse"]
    assert "did not answer after 3 attempts" in text["slow"]
    assert "is loopback" in text["sneaky"]

    # The signed request: the exact JSON, and the HMAC of those very bytes.
    (ok,) = by_path["/ok"]
    assert ok.headers["content-type"] == "application/json"
    assert ok.headers["x-patter-signature"] == _signature(ok.body, "own-secret")
    assert ok.json == {
        "tool": "ok",
        "arguments": {"order": "42"},
        "call_id": CALL_SID,
        "caller": seen.starts[0]["caller"],
        "callee": seen.starts[0]["callee"],
        "attempt": 1,
    }
    # A 503 is sent again (attempt 2, signed with Patter's secret); a 400 is not.
    assert [r.json["attempt"] for r in by_path["/flaky"]] == [1, 2]
    assert all(r.headers["x-patter-signature"] == _signature(r.body) for r in by_path["/flaky"])
    assert [r.json["attempt"] for r in by_path["/refuse"]] == [1]
    # Each timed-out attempt was sent; the name resolving to loopback never was.
    assert [r.json["attempt"] for r in by_path["/slow"]] == [1, 2, 3]
    assert len(by_path["/ok"]) == 1


async def test_on_message_url_reply_and_failure() -> None:
    with rest_server(Receiver()) as receiver:
        handler = RemoteMessageHandler(
            url=f"{receiver.base_url}/reply", secret=SECRET.encode(), allow_private=True
        )
        message = {"text": "hello there", "call_id": "CA1", "caller": "+1555", "callee": "+1666"}
        assert await handler(message) == "You said: hello there"
        (sent,) = receiver.requests
        assert sent.json == {**message, "attempt": 1}
        assert sent.headers["x-patter-signature"] == _signature(sent.body)
        gone = RemoteMessageHandler(url=f"{receiver.base_url}/refuse", allow_private=True)
        with pytest.raises(ToolFailed, match="answered 400"):
            await gone(message)
        refused = RemoteMessageHandler(url=f"http://localhost:{receiver.port}/reply")
        with pytest.raises(ToolFailed, match="is loopback"):
            await refused(message)
        assert len(receiver.requests) == 2


def test_literal_private_addresses_are_refused_when_the_tool_is_built() -> None:
    for url in (
        "http://127.0.0.1:8080/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:192.168.0.1]/hook",
    ):
        with pytest.raises(InvalidOption, match="allow_private_webhooks"):
            Tool(name="t", webhook_url=url)
        Tool(name="t", webhook_url=url, allow_private_webhooks=True)  # the opt-in
    for url, words in (
        ("ftp://example.com/x", "http:// or https://"),
        ("https://user:pw@example.com/", "user name or password"),
        ("https://example.com:99999/", "not a URL"),
    ):
        with pytest.raises(InvalidOption, match=words):
            Tool(name="t", webhook_url=url)
    with pytest.raises(InvalidOption, match="a handler or a webhook_url, not both"):
        Tool(name="t", handler=lambda a, c: "", webhook_url="https://example.com/")
    with pytest.raises(InvalidOption, match="needs a handler or a webhook_url"):
        Tool(name="t")
    assert webhook_url_problem("https://tools.example.com/x", allow_private=False) is None
    assert address_problem("93.184.216.34") is None
    assert "link-local" in (address_problem("fe80::1") or "")


async def test_on_message_url_is_checked_by_serve() -> None:
    with twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key="sk-test")
        agent = phone.agent(provider="pipeline", stt="openai", tts="openai")
        with pytest.raises(InvalidOption, match=r"on_message: webhook address 127\.0\.0\.1"):
            await phone.serve(
                agent, None, handle_signals=False, on_message="http://127.0.0.1:9/reply"
            )
        with pytest.raises(InvalidOption, match="webhook_secret must be non-empty text"):
            twilio_phone(rest, webhook_secret="")


async def test_on_message_url_in_a_pipeline_call() -> None:
    """The caller's words reach the URL, signed; its reply is spoken to the caller."""
    rec = Recorder()
    with (
        rest_server(Receiver()) as receiver,
        pipeline_http_server() as http,
        deepgram_server() as dg,
    ):
        phone = _phone(http, dg, webhook_secret=SECRET, allow_private_webhooks=True)
        agent = phone.agent(provider="pipeline", stt="deepgram", tts="openai")
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(
                    phone.serve,
                    agent,
                    None,
                    handle_signals=False,
                    on_message=f"{receiver.base_url}/reply",
                    on_transcript=rec.hook("on_transcript"),
                    on_call_end=rec.hook("on_call_end"),
                )
            )
            call_sid = "CA" + "b" * 32
            params = await incoming_call(port, call_sid)
            async with twilio_stream(port, call_sid, params) as carrier:
                await carrier.start()
                await carrier.media(ulaw_frames(1000, 1000))
                await rec.wait_for(
                    "on_transcript",
                    lambda p: p["role"] == "assistant" and p["text"] == "You said: hello there",
                )
                await carrier.stop()
            await rec.wait_for("on_call_end")
            phone.stop()
    (sent,) = receiver.requests
    assert sent.json == {
        "text": "hello there",
        "call_id": call_sid,
        "caller": "+15550001111",
        "callee": "+15550009999",
        "attempt": 1,
    }
    assert sent.headers["x-patter-signature"] == _signature(sent.body)
    assert http.tts_texts() == ["You said: hello there"]
