"""End to end over loopback: a Twilio call to the echo agent, on asyncio and trio.

The real server (``Patter.serve`` on 127.0.0.1, ephemeral port) answers a
webhook signed with the official ``twilio`` package; the carrier, a
``websockets`` client on its own thread, opens the signed media stream the
TwiML names, streams a 300 Hz tone as 20 ms mu-law frames and plays back
what the echo agent repeats, echoing marks as Twilio does. What comes back
must be the same tone, clean.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio
import pytest

from patter_anyio import Patter
from tests.fakes.carrier import (
    carrier_stream,
    local_ws_url,
    parse_stream_twiml,
    run_in_asyncio_thread,
    stream_signature,
    tone_report,
    twilio_voice_webhook,
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
    """What Twilio posts for a ringing inbound call (PROTOCOLS.md section 2.1)."""
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
                answer = await twilio_voice_webhook(
                    port, host=HOST, auth_token=AUTH_TOKEN, form=incoming_call_form()
                )
                assert answer.status == 200, answer.body
                assert answer.headers["content-type"].startswith(("text/xml", "application/xml"))
                stream_url, params = parse_stream_twiml(answer.body)
                assert stream_url == f"wss://{HOST}/ws/stream/{CALL_SID}"
                assert params["caller"] == CALLER and params["callee"] == CALLEE
                assert params["stream_token"]

                tone = ulaw_tone(300, 600)

                async def carrier() -> Any:
                    async with carrier_stream(
                        local_ws_url(port, stream_url),
                        headers={"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)},
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
