"""End to end over loopback: Telnyx as its guide documents it.

The real server (``Patter.serve``) on 127.0.0.1, Telnyx's webhooks signed
with a test Ed25519 key, its Call Control API faked by a recording REST
server and its media socket played by :mod:`tests.fakes.carrier`. Each test
is one fact of PROTOCOLS.md §4.4 ("Re-checked 2026-12-06"): legs we did not
create get no stream, commands carry a command_id and are retried on 5xx
only, a machine greeting that ends in silence gets the voicemail, the
streaming token may come nested in ``connected``, DTMF frames are put back
in order.
"""

from __future__ import annotations

import re
import threading
from functools import partial
from typing import Any
from urllib.parse import unquote

import anyio
import pytest

from patter_core.webhooks._telnyx_flow import is_our_leg
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
from tests.fakes.http_fakes import DeepgramFake, deepgram_server, pipeline_http_server
from tests.fakes.provider_servers import provider_server
from tests.fakes.servers import RecordedRequest, rest_server, telnyx_responder
from tests.test_e2e_telnyx import (
    CALL_ID,
    CALLEE,
    CALLER,
    SIGNING_KEY,
    actions,
    answer_and_stream,
    call_payload,
    telnyx_phone,
    wait_actions,
)

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

TARGET_ID = "v3:e2e-transfer-target-leg"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


async def test_transfer_target_leg_gets_no_stream_and_no_agent() -> None:
    """After a transfer the new leg's webhooks reach us too; only our leg streams."""
    fake = FakeOpenAIRealtime(api_key="sk-e2e")
    with provider_server(fake) as provider, rest_server(telnyx_responder) as rest:
        phone = telnyx_phone(rest, openai_key="sk-e2e", openai_base_url=provider.base_url + "/v1")
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(phone.serve, phone.agent(provider="openai"), None, handle_signals=False)
            )
            stream = await answer_and_stream(port, rest)
            token = stream["stream_auth_token"]

            async def carrier() -> None:
                async with carrier_stream(
                    local_ws_url(port, stream["stream_url"]),
                    headers={"x-telnyx-streaming-auth-token": token},
                    carrier="telnyx",
                ) as call:
                    await call.start(call_id=CALL_ID, caller=CALLER, callee=CALLEE)
                    await call.send_audio(ulaw_silence(200), speed=2)
                    await call.wait(lambda: provider.connections == 1, what="the agent connects")
                    # The transfer target's leg: dialled by Telnyx, no client_state of ours.
                    target = dict(call_payload(TARGET_ID), client_state=None)
                    for event_type, extra in (
                        ("call.initiated", {"direction": "outgoing", "state": "bridging"}),
                        ("call.bridged", {}),
                        ("call.answered", {"state": "answered"}),
                    ):
                        answer = await telnyx_webhook(
                            port, SIGNING_KEY, event_type, {**target, **extra}
                        )
                        assert answer.status == 200, answer
                    await call.send_audio(ulaw_silence(600), speed=2)
                    await call.stop()
                    await call.wait(call.closed.is_set, what="server closes after stop")

            await run_in_asyncio_thread(carrier)
            await anyio.sleep(0.3)  # webhook follow-ups run in the background
            phone.stop()
    assert actions(rest, "streaming_start", TARGET_ID) == []
    assert actions(rest, "answer", TARGET_ID) == []
    assert [unquote(r.path) for r in rest.requests if "streaming_start" in r.path] == [
        f"/v2/calls/{CALL_ID}/actions/streaming_start"
    ]
    assert provider.connections == 1  # the caller's agent only


async def test_command_ids_and_retries_5xx_but_never_4xx() -> None:
    lock = threading.Lock()
    answered: dict[str, int] = {}

    def responder(rec: RecordedRequest) -> tuple[int, dict[str, Any]]:
        action = rec.path.rsplit("/", 1)[-1]
        with lock:
            answered[action] = answered.get(action, 0) + 1
            count = answered[action]
        if action == "answer":
            return 422, {"errors": [{"code": "90018", "title": "Call has already ended"}]}
        if action == "streaming_start" and count == 1:
            return 503, {"errors": [{"code": "10000", "title": "Service unavailable"}]}
        return telnyx_responder(rec)

    with rest_server(responder) as rest:
        phone = telnyx_phone(rest)
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(phone.serve, phone.agent(provider="echo"), None, handle_signals=False)
            )
            initiated = await telnyx_webhook(port, SIGNING_KEY, "call.initiated", call_payload())
            assert initiated.status == 200
            (answer,) = await wait_actions(rest, "answer")
            state = answer.json["client_state"]
            answered_hook = await telnyx_webhook(
                port, SIGNING_KEY, "call.answered", dict(call_payload(), client_state=state)
            )
            assert answered_hook.status == 200
            with anyio.fail_after(5):
                while len(actions(rest, "streaming_start")) < 2:
                    await anyio.sleep(0.02)
            await anyio.sleep(1.2)  # longer than two retry delays: nothing more comes
            phone.stop()
    # The 422 was not repeated; the 503 was, once, with the very same command.
    assert len(actions(rest, "answer")) == 1
    first, second = actions(rest, "streaming_start")
    assert first.body == second.body
    assert re.fullmatch(UUID, first.json["command_id"])
    assert all(re.fullmatch(UUID, r.json["command_id"]) for r in rest.requests)
    assert first.json["command_id"] != answer.json["command_id"]


async def test_machine_greeting_ending_in_silence_gets_the_voicemail() -> None:
    voicemail = "Please call us back."
    ends: list[dict[str, Any]] = []
    with (
        rest_server(telnyx_responder) as rest,
        pipeline_http_server() as http,
        deepgram_server(DeepgramFake(transcript=None)) as dg,
    ):
        phone = telnyx_phone(
            rest,
            openai_key="sk-test",
            deepgram_key=dg.api_key,
            openai_base_url=http.openai_base_url,
            deepgram_base_url=dg.base_url,
            phone_number=CALLER,
            telnyx_connection_id="conn-e2e",
        )
        agent = phone.agent(provider="pipeline", stt="deepgram", tts="openai")
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(
                    phone.serve,
                    agent,
                    None,
                    handle_signals=False,
                    on_message=lambda message: "unused",
                    on_call_end=ends.append,
                )
            )
            call_id = await phone.call(
                to=CALLEE, machine_detection=True, voicemail_message=voicemail
            )
            (dial,) = [r for r in rest.requests if r.path == "/v2/calls"]
            body = dial.json
            # greeting_end: a greeting.ended on a beep or on silence.
            assert body["answering_machine_detection"] == "greeting_end"
            assert is_our_leg(body["client_state"])
            leg = dict(call_payload(call_id), client_state=body["client_state"])
            leg["direction"] = "outgoing"
            for event_type in ("call.initiated", "call.answered"):
                hook = await telnyx_webhook(port, SIGNING_KEY, event_type, leg)
                assert hook.status == 200
            (start,) = await wait_actions(rest, "streaming_start", call_id)

            async def carrier() -> CarrierStream:
                async with carrier_stream(
                    local_ws_url(port, start.json["stream_url"]),
                    headers={"x-telnyx-streaming-auth-token": start.json["stream_auth_token"]},
                    carrier="telnyx",
                ) as call:
                    await call.start(call_id=call_id, caller=CALLER, callee=CALLEE)
                    await call.send_audio(ulaw_tone(300, 200))  # the machine's greeting
                    # The greeting ended in silence, no beep.
                    hook = await telnyx_webhook(
                        port,
                        SIGNING_KEY,
                        "call.machine.greeting.ended",
                        dict(leg, result="ended"),
                    )
                    assert hook.status == 200
                    await call.wait(call.closed.is_set, timeout=10, what="the drop ends the call")
                    return call

            call = await run_in_asyncio_thread(carrier)
            (hangup,) = await wait_actions(rest, "hangup", call_id)
            with anyio.fail_after(5):
                while not ends:
                    await anyio.sleep(0.01)
            phone.stop()
    assert http.tts_texts() == [voicemail]
    report = tone_report(bytes(call.heard))
    assert abs(report.peak_hz - 500) < 5 and report.snr_db >= 30, report
    assert call.close_code == 1000
    assert ends[0]["reason"] == "voicemail"
    assert isinstance(hangup.json["command_id"], str)


async def test_nested_streaming_token_in_connected_is_accepted() -> None:
    starts: list[dict[str, Any]] = []
    ends: list[dict[str, Any]] = []
    with rest_server(telnyx_responder) as rest:
        phone = telnyx_phone(rest)
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

            async def carrier() -> CarrierStream:
                # No upgrade header: the token only in connected, nested.
                async with carrier_stream(
                    local_ws_url(port, stream["stream_url"]), carrier="telnyx"
                ) as call:
                    await call.start(
                        call_id=CALL_ID,
                        caller=CALLER,
                        callee=CALLEE,
                        connected_token=stream["stream_auth_token"],
                        nested_token=True,
                        client_state=stream["client_state"],
                    )
                    tone = ulaw_silence(100) + ulaw_tone(300, 600) + ulaw_silence(800)
                    await call.send_audio(tone, speed=2)
                    await call.wait_played_out(560)
                    await call.stop()
                    await call.wait(call.closed.is_set, what="server closes after stop")
                    return call

            call = await run_in_asyncio_thread(carrier)
            with anyio.fail_after(5):
                while not ends:
                    await anyio.sleep(0.01)
            phone.stop()
    assert len(starts) == 1 and ends[0]["reason"] == "carrier_stop"
    report = tone_report(bytes(call.heard))
    assert abs(report.peak_hz - 300) < 5 and report.snr_db >= 30, report


async def test_dtmf_out_of_order_reaches_the_agent_in_order() -> None:
    ends: list[dict[str, Any]] = []
    with rest_server(telnyx_responder) as rest:
        phone = telnyx_phone(rest)
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(
                    phone.serve,
                    phone.agent(provider="echo"),
                    None,
                    handle_signals=False,
                    on_call_end=ends.append,
                )
            )
            stream = await answer_and_stream(port, rest)

            async def carrier() -> None:
                async with carrier_stream(
                    local_ws_url(port, stream["stream_url"]),
                    headers={"x-telnyx-streaming-auth-token": stream["stream_auth_token"]},
                    carrier="telnyx",
                ) as call:
                    await call.start(call_id=CALL_ID, caller=CALLER, callee=CALLEE)
                    await call.send_audio(ulaw_silence(100), speed=2)
                    one, two, three = (call.take_sequence() for _ in range(3))
                    # "3" and "2" overtook "1" on the way.
                    await call.telnyx_dtmf("3", three)
                    await call.telnyx_dtmf("2", two)
                    await call.telnyx_dtmf("1", one)
                    await call.send_audio(ulaw_silence(400), speed=2)
                    await call.stop()
                    await call.wait(call.closed.is_set, what="server closes after stop")

            await run_in_asyncio_thread(carrier)
            with anyio.fail_after(5):
                while not ends:
                    await anyio.sleep(0.01)
            phone.stop()
    pressed = [t["text"] for t in ends[0]["transcript"] if str(t["text"]).startswith("[DTMF")]
    assert pressed == ["[DTMF 1]", "[DTMF 2]", "[DTMF 3]"]


async def test_voicemail_without_a_stream_speaks_then_hangs_up() -> None:
    """The machine's greeting ends in silence before any stream of ours carries
    the call: Telnyx speaks the message, and its speak.ended hangs up."""
    voicemail = "Sorry we missed you."
    with rest_server(telnyx_responder) as rest:
        phone = telnyx_phone(rest, phone_number=CALLER, telnyx_connection_id="conn-e2e")
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(phone.serve, phone.agent(provider="echo"), None, handle_signals=False)
            )
            call_id = await phone.call(
                to=CALLEE, machine_detection=True, voicemail_message=voicemail
            )
            (dial,) = [r for r in rest.requests if r.path == "/v2/calls"]
            leg = dict(call_payload(call_id), client_state=dial.json["client_state"])
            hook = await telnyx_webhook(
                port, SIGNING_KEY, "call.machine.greeting.ended", dict(leg, result="ended")
            )
            assert hook.status == 200
            (speak,) = await wait_actions(rest, "speak", call_id)
            assert actions(rest, "hangup", call_id) == []  # not before the message is spoken
            ended = dict(leg, client_state=speak.json["client_state"])
            hook = await telnyx_webhook(port, SIGNING_KEY, "call.speak.ended", ended)
            assert hook.status == 200
            (hangup,) = await wait_actions(rest, "hangup", call_id)
            phone.stop()
    body = speak.json
    assert (body["payload"], body["voice"], body["service_level"]) == (
        voicemail,
        "female",
        "basic",
    )
    assert re.fullmatch(UUID, body["command_id"]) and re.fullmatch(UUID, hangup.json["command_id"])
