"""The dashboard's API, its event stream, /metrics and per-call metrics, on
the real server: a Twilio call through the fake OpenAI Realtime provider
with a scripted answer delay, a barge-in and reported usage; then the
access rule on a non-loopback bind."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import subprocess
import sys
from typing import Any

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from patter_anyio import InvalidOption, Patter
from tests.fakes.carrier import (
    CarrierStream,
    carrier_stream,
    local_ws_url,
    run_in_asyncio_thread,
    stream_signature,
    ulaw_silence,
    ulaw_tone,
)
from tests.fakes.fake_openai_realtime import FakeOpenAIRealtime
from tests.fakes.provider_servers import provider_server
from tests.test_e2e_echo import AUTH_TOKEN, CALL_SID, CALLER
from tests.test_e2e_realtime import (
    OPENAI_KEY,
    PROMPT,
    Recorded,
    answer_call,
    end_call_with_goodbye,
    interrupt,
    of_type,
    serving,
    twilio_phone,
    twilio_rest,
)

pytestmark = pytest.mark.anyio

TOKEN = "dashboard-token-0123456789"
#: The provider's scripted think time, between the caller's end of speech
#: and the first audio of the answer.
DELAY = 0.3
#: Of which: until the provider's response.created, then to its first audio.
CREATED = 0.2


def get(
    port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


async def aget(port: int, path: str, headers: dict[str, str] | None = None) -> Any:
    return await anyio.to_thread.run_sync(lambda: get(port, path, headers))


def families(body: bytes) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    return {
        f.name: [(s.name, dict(s.labels), s.value) for s in f.samples]
        for f in text_string_to_metric_families(body.decode("utf-8"))
    }


class EventReader:
    """A raw client of GET /api/calls/events: the bytes as they arrive."""

    def __init__(self) -> None:
        self.data = b""
        self.head = b""

    async def run(self, port: int, until: bytes) -> None:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(b"GET /api/calls/events HTTP/1.1\r\nHost: t\r\n\r\n")
            while until not in self.data:
                self.data += await stream.receive()
        self.head, _, _ = self.data.partition(b"\r\n\r\n")


async def test_call_metrics_dashboard_api_and_prometheus(anyio_backend: str) -> None:
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    fake.usage = {"total_tokens": 120, "input_tokens": 100, "output_tokens": 20}
    seen = Recorded()
    events = EventReader()
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(provider="openai", system_prompt=PROMPT)
        async with serving(phone, agent, seen) as port, anyio.create_task_group() as tg:
            tg.start_soon(events.run, port, b"event: call_end")
            stream_url, params = await answer_call(port)

            async def carrier() -> CarrierStream:
                async with carrier_stream(
                    local_ws_url(port, stream_url),
                    headers={"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)},
                ) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("session.update"))
                    await anyio.sleep(0.2)
                    await call.send_audio(ulaw_silence(100) + ulaw_tone(300, 400), speed=4)
                    provider.push(
                        lambda: fake.speech_stopped(500) + fake.user_transcript("Where is it?")
                    )
                    await anyio.sleep(CREATED)
                    provider.push(fake.begin_response)
                    await anyio.sleep(DELAY - CREATED)
                    provider.push(
                        lambda: fake.audio(ulaw_tone(1000, 400))
                        + fake.transcript("It has shipped.")
                        + fake.end_response()
                    )
                    await call.wait_played_out(400)
                    await interrupt(call, provider, fake)
                    await end_call_with_goodbye(provider, fake)
                    await call.wait(call.closed.is_set, what="the server closing the stream")
                    return call

            await run_in_asyncio_thread(carrier)
            end = await seen.wait_ended()
            with anyio.fail_after(5):
                while b"event: call_end" not in events.data:
                    await anyio.sleep(0.02)

            status, headers, body = await aget(port, "/metrics")
            assert status == 200
            assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
            metrics_page = families(body)
            calls_status, _, calls_body = await aget(port, "/api/calls")
            one_status, _, one_body = await aget(port, f"/api/calls/{CALL_SID}")
            missing, _, _ = await aget(port, "/api/calls/CA-no-such-call")
            page_status, page_headers, page = await aget(port, "/dashboard")
            tg.cancel_scope.cancel()

    # on_call_end metrics: the turn's latency is the scripted delay.
    metrics = end["metrics"]
    (turn,) = metrics["turns"]
    assert DELAY * 1000 - 5 <= turn["latency_ms"] <= DELAY * 1000 + 80, turn
    assert metrics["latency_ms"]["p50"] == metrics["latency_ms"]["max"] == turn["latency_ms"]
    # The provider's own steps: response.created, then its time to first byte.
    created_ms = turn["provider_ms"]["response_created"]
    assert CREATED * 1000 - 5 <= created_ms <= CREATED * 1000 + 60, turn
    assert (DELAY - CREATED) * 1000 - 5 <= turn["provider_ttfb_ms"] <= (DELAY - CREATED) * 1000 + 60
    assert turn["provider_ttfb_ms"] == pytest.approx(turn["latency_ms"] - created_ms, abs=0.2)
    # Seconds of caller audio the model heard: the 500 ms spoken, at least.
    assert metrics["usage"]["input_audio_ms"] >= 500
    assert metrics["barge_ins"] == 1
    # Two answers (the scripted one and the interrupted one), each reporting usage.
    assert metrics["usage"]["total_tokens"] in (240, 360)  # the cancelled answer may report
    assert metrics["frames_in"] == end["frames_in"] > 0
    assert metrics["frames_out"] >= 20  # 400 ms of answer at least, in 20 ms frames
    assert metrics["duration_s"] == pytest.approx(end["ended_at"] - end["started_at"], abs=0.01)

    # The event stream: chunked text/event-stream, the call from start to end.
    head = events.head.decode("latin-1").lower()
    assert head.startswith("http/1.1 200")
    assert "content-type: text/event-stream" in head and "transfer-encoding: chunked" in head
    text = events.data.decode("utf-8", "replace")
    order = [
        text.index(marker)
        for marker in (
            "event: snapshot",
            "event: call_start",
            '"text":"Where is it?"',
            "event: barge_in",
            "event: call_end",
        )
    ]
    assert order == sorted(order)

    # The JSON API.
    assert calls_status == 200
    listing = json.loads(calls_body)
    assert listing["live"] == []
    (finished,) = listing["finished"]
    assert (finished["call_id"], finished["caller"], finished["reason"]) == (
        CALL_SID,
        CALLER,
        "end_call",
    )
    assert finished["agent"] == "openai" and finished["metrics"]["barge_ins"] == 1
    assert one_status == 200
    lines = [(line["role"], line["text"]) for line in json.loads(one_body)["transcript"]]
    assert ("user", "Where is it?") in lines and ("assistant", "It has shipped.") in lines
    assert missing == 404
    assert page_status == 200 and page_headers["content-type"].startswith("text/html")
    assert b"EventSource" in page and b"http://" not in page.replace(b"http://www.w3.org", b"")

    # /metrics.
    assert metrics_page["patter_live_calls"] == [("patter_live_calls", {}, 0.0)]
    assert ("patter_calls_ended_total", {"reason": "end_call"}, 1.0) in metrics_page[
        "patter_calls_ended"
    ]
    latency = {s[0]: s for s in metrics_page["patter_response_latency_seconds"]}
    assert latency["patter_response_latency_seconds_count"][2] == 1.0
    assert latency["patter_response_latency_seconds_sum"][2] == pytest.approx(
        turn["latency_ms"] / 1000, abs=0.002
    )
    assert metrics_page["patter_frames_dropped"][0][2] == 0.0


async def test_refused_upgrades_are_counted(anyio_backend: str) -> None:
    seen = Recorded()
    phone = Patter(twilio_sid="AC" + "a" * 32, twilio_token=AUTH_TOKEN, webhook_url="h.example")
    async with serving(phone, phone.agent(provider="echo"), seen) as port:
        # No upgrade headers: 426; a bad signature on a real upgrade: 403.
        plain, _, _ = await aget(port, "/ws/stream/CA1")
        forged, _, _ = await aget(
            port,
            "/ws/stream/CA1",
            {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "X-Twilio-Signature": "forged",
            },
        )
        _, _, body = await aget(port, "/metrics")
    assert (plain, forged) == (426, 403)
    refused = {s[1]["reason"]: s[2] for s in families(body)["patter_upgrades_refused"]}
    assert refused["this endpoint takes a WebSocket upgrade"] == 1.0
    assert [r for r in refused if r.startswith("forbidden")] and sum(refused.values()) == 2.0


async def test_non_loopback_bind_needs_the_token(anyio_backend: str) -> None:
    seen = Recorded()
    phone = Patter()
    async with serving(
        phone, phone.agent(provider="echo"), seen, host="0.0.0.0", dashboard_token=TOKEN
    ) as port:
        for path in ("/metrics", "/dashboard", "/api/calls", "/api/calls/events"):
            status, headers, _ = await aget(port, path)
            assert status == 401, path
            assert headers["www-authenticate"] == "Bearer"
        wrong, _, _ = await aget(port, "/metrics", {"Authorization": "Bearer not-the-token-123456"})
        bearer, _, body = await aget(port, "/metrics", {"Authorization": f"Bearer {TOKEN}"})
        status, headers, _ = await aget(port, f"/dashboard?token={TOKEN}")
        cookie = headers["set-cookie"]
        by_cookie, _, _ = await aget(port, "/api/calls", {"Cookie": cookie.split(";")[0]})
        health, _, _ = await aget(port, "/health")
    assert wrong == 401 and bearer == 200 and b"patter_live_calls 0" in body
    assert status == 200
    assert cookie == f"patter_dashboard={TOKEN}; HttpOnly; SameSite=Strict; Path=/"
    assert by_cookie == 200 and health == 200


async def test_non_loopback_bind_without_token_is_off_and_says_so(
    anyio_backend: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PATTER_DASHBOARD_TOKEN", raising=False)
    seen = Recorded()
    phone = Patter()
    with caplog.at_level(logging.WARNING):
        async with serving(phone, phone.agent(provider="echo"), seen, host="0.0.0.0") as port:
            status, _, _ = await aget(port, "/metrics")
            dashboard, _, _ = await aget(port, "/dashboard")
    assert status == 404 and dashboard == 404
    warnings = [r.getMessage() for r in caplog.records if "dashboard" in r.getMessage()]
    assert len(warnings) == 1 and "PATTER_DASHBOARD_TOKEN" in warnings[0]


async def test_bad_token_is_refused_before_serving(anyio_backend: str) -> None:
    phone = Patter()
    with pytest.raises(InvalidOption, match="at least 16 characters"):
        await phone.serve(phone.agent(provider="echo"), None, dashboard_token="short")


def test_cli_bad_token_exits_2_with_one_line() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "patter_anyio",
            "serve",
            "--dashboard-token",
            "has space 0123456789",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--dashboard-token must be visible ASCII" in lines[0], lines


async def test_shutdown_ends_an_open_event_stream_cleanly(anyio_backend: str) -> None:
    seen = Recorded()
    phone = Patter()
    data = b""
    agent = phone.agent(provider="echo")
    async with serving(phone, agent, seen, shutdown_grace=30) as port:
        stream = await anyio.connect_tcp("127.0.0.1", port)
        async with stream:
            await stream.send(b"GET /api/calls/events HTTP/1.1\r\nHost: t\r\n\r\n")
            while b"event: snapshot" not in data:
                data += await stream.receive()
            began = anyio.current_time()
            phone.stop()  # the stream is not a call: it does not hold the drain
            with anyio.fail_after(5), contextlib.suppress(anyio.EndOfStream):
                while True:
                    data += await stream.receive()
            elapsed = anyio.current_time() - began
    assert elapsed < 2.0
    # The chunked body ends with its last chunk, not a reset.
    assert data.endswith(b"\r\n0\r\n\r\n")
