"""End to end over loopback: a Telnyx call, from signed webhooks to echoed audio.

Telnyx signs its webhooks with Ed25519 (PROTOCOLS.md section 4.2); the test
signs with a PyNaCl key whose public half the server is configured with.
``call.initiated`` must make the server answer through the (fake) Call
Control API, ``call.answered`` must make it start a stream carrying a stream
auth token, and only a media socket presenting that token in
``x-telnyx-streaming-auth-token`` may reach an agent.
"""

from __future__ import annotations

import base64
from functools import partial
from typing import Any
from urllib.parse import unquote

import anyio
import pytest
from nacl.signing import SigningKey

from patter_anyio import Patter
from tests.fakes.carrier import (
    CarrierStream,
    carrier_stream,
    local_ws_url,
    run_in_asyncio_thread,
    telnyx_webhook,
    tone_report,
    ulaw_silence,
    ulaw_tone,
)
from tests.fakes.fake_openai_realtime import FakeOpenAIRealtime
from tests.fakes.provider_servers import provider_server
from tests.fakes.servers import RecordedRequest, RunningRestServer, rest_server, telnyx_responder

pytestmark = pytest.mark.anyio

# A fixed test key pair: not a Telnyx key.
SIGNING_KEY = SigningKey(bytes(range(32)))
PUBLIC_KEY = base64.b64encode(bytes(SIGNING_KEY.verify_key)).decode()
API_KEY = "KEY_e2e_telnyx_0123456789"
HOST = "voice.example.test"
CALL_ID = "v3:e2e-call-control-id-0001"
CALLER = "+13125550100"
CALLEE = "+13125550199"


def call_payload(call_id: str = CALL_ID) -> dict[str, Any]:
    return {
        "call_control_id": call_id,
        "call_leg_id": "leg-e2e",
        "call_session_id": "session-e2e",
        "client_state": None,
        "connection_id": "1234567890",
        "direction": "incoming",
        "from": CALLER,
        "to": CALLEE,
        "state": "parked",
    }


def telnyx_phone(rest: RunningRestServer, **providers: Any) -> Patter:
    return Patter(
        telnyx_key=API_KEY,
        telnyx_public_key=PUBLIC_KEY,
        telnyx_api_base_url=rest.base_url + "/v2",
        webhook_url=HOST,
        stream_secret="e2e-stream-secret-telnyx-0123",
        **providers,
    )


def actions(rest: RunningRestServer, name: str, call_id: str = CALL_ID) -> list[RecordedRequest]:
    path = f"/v2/calls/{call_id}/actions/{name}"
    return [r for r in list(rest.requests) if r.method == "POST" and unquote(r.path) == path]


async def wait_actions(
    rest: RunningRestServer, name: str, call_id: str = CALL_ID, timeout: float = 5.0
) -> list[RecordedRequest]:
    """The server answers the webhook first and sends its commands after."""
    with anyio.fail_after(timeout):
        while not (found := actions(rest, name, call_id)):
            await anyio.sleep(0.01)
    return found


async def answer_and_stream(port: int, rest: RunningRestServer, call_id: str = CALL_ID) -> Any:
    """Deliver call.initiated and call.answered; return the streaming_start body."""
    initiated = await telnyx_webhook(port, SIGNING_KEY, "call.initiated", call_payload(call_id))
    assert initiated.status == 200, initiated
    (answer,) = await wait_actions(rest, "answer", call_id)
    assert answer.headers["authorization"] == f"Bearer {API_KEY}"
    assert actions(rest, "streaming_start", call_id) == []
    # Telnyx echoes the answer's client_state in the leg's later webhooks.
    state = answer.json["client_state"]
    answered = await telnyx_webhook(
        port,
        SIGNING_KEY,
        "call.answered",
        dict(call_payload(call_id), state="answered", client_state=state),
    )
    assert answered.status == 200, answered
    (start,) = await wait_actions(rest, "streaming_start", call_id)
    return start.json


async def test_telnyx_echo_call(anyio_backend: str) -> None:
    starts: list[dict[str, Any]] = []
    ends: list[dict[str, Any]] = []
    with rest_server(telnyx_responder) as rest:
        phone = telnyx_phone(rest)
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                port = await tg.start(
                    partial(
                        phone.serve,
                        phone.agent(provider="echo"),
                        None,
                        handle_signals=False,
                        on_call_start=starts.append,
                        on_call_end=ends.append,
                    )
                )
                stream = await answer_and_stream(port, rest)
                token = stream["stream_auth_token"]
                tone = ulaw_tone(300, 600)

                async def carrier() -> CarrierStream:
                    async with carrier_stream(
                        local_ws_url(port, stream["stream_url"]),
                        headers={"x-telnyx-streaming-auth-token": token},
                        carrier="telnyx",
                    ) as call:
                        await call.start(call_id=CALL_ID, caller=CALLER, callee=CALLEE)
                        await call.send_audio(ulaw_silence(100) + tone + ulaw_silence(800), speed=2)
                        await call.wait_played_out(560)
                        await call.send_audio(ulaw_silence(200), speed=2)
                        await call.stop()
                        await call.wait(call.closed.is_set, what="server closes after stop")
                        return call

                call = await run_in_asyncio_thread(carrier)
                with anyio.fail_after(5):
                    while not ends:
                        await anyio.sleep(0.01)
                await anyio.sleep(0.1)
                phone.stop()

    # streaming_start: our public wss URL for this call, PCMU both ways, a token.
    assert stream["stream_url"] == f"wss://{HOST}/ws/telnyx/stream/{CALL_ID}"
    assert stream["stream_codec"] == "PCMU"
    assert stream["stream_bidirectional_codec"] == "PCMU"
    assert stream["stream_bidirectional_mode"] == "rtp"
    assert isinstance(token, str) and len(token) >= 16

    # The echo came back as Telnyx media frames, the same tone.
    outbound = [m for m in call.received if m.get("event") == "media"]
    assert outbound and all(set(m) == {"event", "media"} for m in outbound)
    report = tone_report(bytes(call.heard))
    assert abs(report.peak_hz - 300) < 5, report
    assert report.snr_db >= 30, report
    assert call.marks and not call.clears

    assert len(starts) == 1 and len(ends) == 1
    assert (starts[0]["call_id"], starts[0]["caller"], starts[0]["callee"]) == (
        CALL_ID,
        CALLER,
        CALLEE,
    )
    assert ends[0]["reason"] == "carrier_stop" and ends[0]["carrier"] == "telnyx"
    # The carrier ended it; nobody asked Telnyx to hang up.
    assert actions(rest, "hangup") == []


async def test_telnyx_webhook_signature_checked(anyio_backend: str) -> None:
    other_key = SigningKey(bytes(range(1, 33)))
    with rest_server(telnyx_responder) as rest:
        phone = telnyx_phone(rest)
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(phone.serve, phone.agent(provider="echo"), None, handle_signals=False)
            )
            forged = await telnyx_webhook(port, other_key, "call.initiated", call_payload())
            stale = await telnyx_webhook(
                port, SIGNING_KEY, "call.initiated", call_payload(), timestamp=1_700_000_000
            )
            phone.stop()
    assert forged.status == 403 and stale.status == 403
    assert rest.requests == []  # nothing was answered


async def test_telnyx_stream_token_required(anyio_backend: str) -> None:
    """Missing, wrong or another call's token: closed 1008, no provider connection."""
    fake = FakeOpenAIRealtime(api_key="sk-e2e")
    ends: list[dict[str, Any]] = []
    with provider_server(fake) as provider, rest_server(telnyx_responder) as rest:
        phone = telnyx_phone(rest, openai_key="sk-e2e", openai_base_url=provider.base_url + "/v1")
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(
                    phone.serve,
                    # No warm start: the verified call.initiated of the other
                    # call would open a session of its own; only streams count here.
                    phone.agent(provider="openai", prewarm=False),
                    None,
                    handle_signals=False,
                    on_call_end=ends.append,
                )
            )
            other_id = "v3:e2e-call-control-id-0002"
            other = await answer_and_stream(port, rest, other_id)
            url = local_ws_url(port, f"wss://{HOST}/ws/telnyx/stream/{CALL_ID}")

            async def carrier() -> dict[str, int | None]:
                out: dict[str, int | None] = {}
                for name, token in (
                    ("missing", None),
                    ("wrong", "not-a-token"),
                    ("other call's", other["stream_auth_token"]),
                ):
                    headers = {} if token is None else {"x-telnyx-streaming-auth-token": token}
                    async with carrier_stream(url, headers=headers, carrier="telnyx") as call:
                        await call.start(call_id=CALL_ID, caller=CALLER, callee=CALLEE)
                        await call.send_audio(ulaw_tone(300, 100))
                        await call.wait(call.closed.is_set, what="the server closing it")
                        out[name] = call.close_code
                return out

            result = await run_in_asyncio_thread(carrier)
            with anyio.fail_after(5):
                while len(ends) < 3:
                    await anyio.sleep(0.01)
            phone.stop()
    assert result == {"missing": 1008, "wrong": 1008, "other call's": 1008}
    assert [e["reason"] for e in ends] == ["token_rejected"] * 3
    assert provider.handshakes == [] and provider.connections == 0
