"""End to end over loopback: a Twilio call to the echo agent, on asyncio and trio.

The real server (``Patter.serve`` on 127.0.0.1, ephemeral port) answers a
webhook signed with the official ``twilio`` package; the carrier, a
``websockets`` client on its own thread, opens the signed media stream the
TwiML names, streams a 300 Hz tone as 20 ms mu-law frames and plays back
what the echo agent repeats, echoing marks as Twilio does. What comes back
must be the same tone, clean.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import partial
from typing import Any
from urllib.parse import urlencode, urlsplit

import anyio
import pytest
from twilio.request_validator import RequestValidator

from patter_anyio import Patter
from tests.fakes.provider_servers import (
    carrier_stream,
    http_post,
    run_in_asyncio_thread,
    tone_report,
    ulaw_silence,
    ulaw_tone,
)
from tests.fakes.servers import rest_server, twilio_responder

pytestmark = pytest.mark.anyio

AUTH_TOKEN = "e2e-twilio-auth-token-0123456789"
ACCOUNT_SID = "AC" + "a" * 32
HOST = "voice.example.test"
CALL_SID = "CA" + "1" * 32
CALLER = "+14155550100"
CALLEE = "+18005550199"


def incoming_call_form(call_sid: str = CALL_SID) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": CALLER,
        "To": CALLEE,
        "Caller": CALLER,
        "Called": CALLEE,
        "FromCity": "",
    }


async def twilio_webhook(
    port: int, form: dict[str, str], *, token: str = AUTH_TOKEN, tamper: bool = False
) -> tuple[int, bytes]:
    """POST /webhooks/twilio/voice signed by the official validator (over the public URL)."""
    signature = RequestValidator(token).compute_signature(
        f"https://{HOST}/webhooks/twilio/voice", form
    )
    body = dict(form)
    if tamper:
        body["From"] = "+19005550000"
    answer = await http_post(
        port,
        "/webhooks/twilio/voice",
        urlencode(body).encode(),
        {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    return answer.status, answer.body


def parse_stream_twiml(body: bytes) -> tuple[str, dict[str, str]]:
    """``<Connect><Stream url>`` and its ``<Parameter>`` pairs."""
    root = ET.fromstring(body)
    stream = root.find("./Connect/Stream")
    assert stream is not None, body
    params = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    return stream.attrib["url"], params


def stream_signature(stream_url: str, token: str = AUTH_TOKEN) -> str:
    """Twilio signs the upgrade over the wss:// URL, with no parameters."""
    return str(RequestValidator(token).compute_signature(stream_url, {}))


def local_ws_url(port: int, stream_url: str) -> str:
    """The public wss:// URL of the TwiML, reached on the loopback server."""
    return f"ws://127.0.0.1:{port}{urlsplit(stream_url).path}"


async def test_echo_call_over_twilio(anyio_backend: str) -> None:
    starts: list[dict[str, Any]] = []
    ends: list[dict[str, Any]] = []
    with rest_server(twilio_responder) as rest:
        phone = Patter(
            twilio_sid=ACCOUNT_SID,
            twilio_token=AUTH_TOKEN,
            webhook_url=HOST,
            twilio_api_base_url=rest.base_url,
        )
        agent = phone.agent(provider="echo")
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                port = await tg.start(
                    partial(
                        phone.serve,
                        agent,
                        None,
                        handle_signals=False,
                        on_call_start=starts.append,
                        on_call_end=ends.append,
                    )
                )
                status, body = await twilio_webhook(port, incoming_call_form())
                assert status == 200, body
                stream_url, params = parse_stream_twiml(body)
                assert stream_url == f"wss://{HOST}/ws/stream/{CALL_SID}"
                assert params["caller"] == CALLER and params["callee"] == CALLEE
                assert params["stream_token"]

                tone = ulaw_tone(300, 600)

                async def carrier() -> Any:
                    async with carrier_stream(
                        local_ws_url(port, stream_url),
                        headers={"X-Twilio-Signature": stream_signature(stream_url)},
                    ) as call:
                        await call.start(call_id=CALL_SID, custom_parameters=params)
                        # The echo agent counts 20 ms frames, not seconds: twice
                        # real time is still one frame at a time, in order.
                        await call.send_audio(ulaw_silence(100) + tone + ulaw_silence(800), speed=2)
                        await call.wait_played_out(560)
                        # Nothing more is coming: the echo has finished its turn.
                        await call.send_audio(ulaw_silence(200), speed=2)
                        await call.stop()
                        await call.wait(call.closed.is_set, what="server closes after stop")
                        return call

                call = await run_in_asyncio_thread(carrier)
                with anyio.fail_after(5):
                    while not ends:
                        await anyio.sleep(0.01)
                await anyio.sleep(0.1)  # a second on_call_end would have fired by now
                phone.stop()

    report = tone_report(bytes(call.heard))
    assert abs(report.peak_hz - 300) < 5, report
    assert report.snr_db >= 30, report
    assert 560 <= report.duration_ms <= 700, report
    # One mark per 200 ms echo chunk, each echoed after it played, none cleared.
    assert call.marks and not call.clears
    assert all(not m.cleared for m in call.marks)
    assert call.close_code == 1000

    assert len(starts) == 1 and len(ends) == 1
    assert starts[0]["call_id"] == CALL_SID and starts[0]["caller"] == CALLER
    assert starts[0]["custom_parameters"]["callee"] == CALLEE
    end = ends[0]
    assert end["reason"] == "carrier_stop"
    assert (end["call_id"], end["caller"], end["callee"]) == (CALL_SID, CALLER, CALLEE)
    assert end["carrier"] == "twilio"
    # The carrier ended the call: we never asked Twilio to hang up.
    assert rest.requests == []
