"""The dashboard in a real browser (headless Chromium over the DevTools
Protocol): refused without the token on a non-loopback bind; with it, a
live call appears, its transcript lines arrive, and the call moves to the
finished list with its latency chart. The screenshot is kept in the test's
temporary directory (``dashboard.png``)."""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.browser import Browser, chromium_path, launch
from tests.fakes.carrier import (
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

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        chromium_path() is None and not os.environ.get("PATTER_REQUIRE_CHROMIUM"),
        reason="Debian's chromium package is not installed (.ci/run installs it)",
    ),
]

TOKEN = "dashboard-token-0123456789"


def live_count(browser: Browser) -> int:
    return int(browser.evaluate("document.querySelectorAll('#live .call').length"))


async def test_dashboard_follows_a_call(anyio_backend: str, tmp_path: Path) -> None:
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    seen = Recorded()
    hang_up = threading.Event()
    with provider_server(fake) as provider, twilio_rest() as rest, launch() as browser:
        phone = twilio_phone(rest, openai_key=OPENAI_KEY, openai_base_url=provider.base_url + "/v1")
        agent = phone.agent(provider="openai", system_prompt=PROMPT)
        async with (
            serving(phone, agent, seen, host="0.0.0.0", dashboard_token=TOKEN) as port,
            anyio.create_task_group() as tg,
        ):
            base = f"http://127.0.0.1:{port}/dashboard"

            def refused() -> tuple[dict[str, int], str]:
                browser.navigate(base)
                return browser.document_statuses(), browser.evaluate("document.body.innerText")

            statuses, text = await anyio.to_thread.run_sync(refused)
            assert statuses[base] == 401
            assert "a dashboard token is required" in text

            def opened() -> None:
                browser.navigate(f"{base}?token={TOKEN}")
                browser.wait_for(
                    "document.getElementById('status').textContent === 'live'",
                    what="the event stream open",
                )

            await anyio.to_thread.run_sync(opened)
            # The cookie is HttpOnly: the page's script cannot read it.
            assert await anyio.to_thread.run_sync(browser.evaluate, "document.cookie") == ""
            assert await anyio.to_thread.run_sync(live_count, browser) == 0
            stream_url, params = await answer_call(port)

            async def carrier() -> None:
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
                    await anyio.sleep(0.25)
                    provider.push(lambda: fake.respond(ulaw_tone(1000, 400), "It has shipped."))
                    await call.wait_played_out(400)
                    await interrupt(call, provider, fake)  # the caller talks over an answer
                    while not hang_up.is_set():
                        await anyio.sleep(0.02)
                    await end_call_with_goodbye(provider, fake)
                    await call.wait(call.closed.is_set, what="the server closing the stream")

            finished = anyio.Event()

            async def run_carrier() -> None:
                await run_in_asyncio_thread(carrier, timeout=40)
                finished.set()

            tg.start_soon(run_carrier)

            def while_live() -> Any:
                browser.wait_for(
                    "document.querySelectorAll('#live .call').length === 1", 15, what="live call"
                )
                caller = browser.evaluate(
                    "document.querySelector('#live .call .caller').textContent"
                )
                browser.wait_for(
                    "[...document.querySelectorAll('#live .call .line .text')]"
                    ".map(e => e.textContent).join('|') === 'Where is it?|It has shipped.'",
                    15,
                    what="both transcript lines on the live call",
                )
                browser.wait_for(
                    "document.querySelector('#live .call .barge-ins').textContent"
                    " === ' \u00b7 barge-ins: 1'",
                    15,
                    what="the barge-in counted on the live call",
                )
                return caller

            assert await anyio.to_thread.run_sync(while_live) == CALLER
            hang_up.set()

            def after() -> dict[str, Any]:
                browser.wait_for(
                    "document.querySelectorAll('#finished .call').length === 1"
                    " && document.querySelectorAll('#live .call').length === 0",
                    15,
                    what="the call in the finished list",
                )
                return dict(
                    bars=browser.evaluate(
                        "document.querySelectorAll('#finished .call svg.latency rect').length"
                    ),
                    label=browser.evaluate(
                        "document.querySelector('#finished .call svg.latency text').textContent"
                    ),
                    tip=browser.evaluate(
                        "document.querySelector('#finished .call svg.latency rect title')"
                        ".textContent"
                    ),
                    meta=browser.evaluate(
                        "document.querySelector('#finished .call .meta').textContent"
                    ),
                    lines=browser.evaluate(
                        "document.querySelectorAll('#finished .call .line').length"
                    ),
                    png=browser.screenshot(tmp_path / "dashboard.png"),
                )

            shown = await anyio.to_thread.run_sync(after)
            with anyio.fail_after(20):
                await finished.wait()
            end = await seen.wait_ended()

    (turn,) = end["metrics"]["turns"]
    assert shown["bars"] == 1
    # The page rounds as JavaScript's Math.round does (half up), not as
    # Python's round() (half to even): 252.5 ms shows as 253.
    assert shown["tip"] == f"turn 1: {math.floor(turn['latency_ms'] + 0.5)} ms"
    assert shown["label"].startswith("response latency per turn (ms): p50 ")
    assert "ended: end_call" in shown["meta"] and "barge-ins: 1" in shown["meta"]
    assert shown["lines"] == 3  # the caller, the cut answer, the goodbye
    png = shown["png"]
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert (tmp_path / "dashboard.png").read_bytes() == png
