"""End to end: outbound calls, answering machines, recording and status callbacks.

The server is ``Patter.serve`` on 127.0.0.1; Twilio is split in two fakes on
loopback: its REST API (:func:`tests.fakes.servers.rest_server`, which
records every request) and its webhooks and media stream
(:mod:`tests.fakes.http_fakes`, signed with the official ``twilio``
package). Telnyx's REST API is faked the same way.
"""

from __future__ import annotations

import base64
from functools import partial
from typing import Any

import anyio
import pytest

from patter_anyio import Patter
from patter_core.webhooks._telnyx_flow import is_our_leg
from tests.fakes.http_fakes import (
    TWILIO_SID,
    TWILIO_TOKEN,
    WEBHOOK_HOST,
    DeepgramFake,
    Recorder,
    analyse_tone,
    deepgram_server,
    form_fields,
    incoming_call,
    pipeline_http_server,
    post_twilio_form,
    twilio_stream,
    ulaw_frames,
)
from tests.fakes.servers import (
    RecordedRequest,
    RunningRestServer,
    rest_server,
    telnyx_responder,
    twilio_responder,
)

pytestmark = pytest.mark.anyio

OUR_NUMBER = "+15550001111"
THEIR_NUMBER = "+15550002222"
CALLS_PATH = f"/2010-04-01/Accounts/{TWILIO_SID}/Calls"
BASIC = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()


async def _wait_rest(
    rest: RunningRestServer, predicate: Any, timeout: float = 10.0
) -> RecordedRequest:
    """The REST fake's wait, off the event loop the server runs on."""
    return await anyio.to_thread.run_sync(partial(rest.wait_for, predicate, timeout))


def _twilio_phone(rest: RunningRestServer, **kwargs: Any) -> Patter:
    return Patter(
        mode="local",
        twilio_sid=TWILIO_SID,
        twilio_token=TWILIO_TOKEN,
        phone_number=OUR_NUMBER,
        webhook_url=WEBHOOK_HOST,
        twilio_api_base_url=rest.base_url,
        **kwargs,
    )


async def test_outbound_call_with_voicemail_drop() -> None:
    """Dial with AMD; a machine answers; the voicemail is spoken, then we hang up."""
    rec = Recorder()
    voicemail = "Please call us back."
    with (
        rest_server(twilio_responder) as rest,
        pipeline_http_server() as http,
        deepgram_server(DeepgramFake(transcript=None)) as dg,
    ):
        phone = _twilio_phone(
            rest,
            openai_key="sk-test",
            deepgram_key=dg.api_key,
            openai_base_url=http.openai_base_url,
            deepgram_base_url=dg.base_url,
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
                    on_call_end=rec.hook("on_call_end"),
                    voicemail_message="The default message.",
                )
            )
            call_sid = await phone.call(
                to=THEIR_NUMBER, machine_detection=True, voicemail_message=voicemail
            )
            assert call_sid == "CA" + "0" * 32

            # The exact create-call form, with Basic auth.
            create = await _wait_rest(rest, lambda r: r.path.endswith("/Calls.json"))
            assert len(rest.requests) == 1
            assert (create.method, create.path) == ("POST", CALLS_PATH + ".json")
            assert create.headers["authorization"] == BASIC
            assert create.headers["content-type"] == "application/x-www-form-urlencoded"
            assert form_fields(create.body) == [
                ("To", THEIR_NUMBER),
                ("From", OUR_NUMBER),
                ("Url", f"https://{WEBHOOK_HOST}/webhooks/twilio/voice"),
                ("StatusCallback", f"https://{WEBHOOK_HOST}/webhooks/twilio/status"),
                ("StatusCallbackMethod", "POST"),
                ("StatusCallbackEvent", "initiated"),
                ("StatusCallbackEvent", "ringing"),
                ("StatusCallbackEvent", "answered"),
                ("StatusCallbackEvent", "completed"),
                ("MachineDetection", "DetectMessageEnd"),
                ("MachineDetectionTimeout", "45"),  # Twilio's 30 s cuts long greetings
                ("AsyncAmd", "true"),
                ("AsyncAmdStatusCallback", f"https://{WEBHOOK_HOST}/webhooks/twilio/amd"),
                ("AsyncAmdStatusCallbackMethod", "POST"),
            ]

            # Twilio fetches our TwiML for the answered call and streams it.
            params = await incoming_call(
                port, call_sid, caller=OUR_NUMBER, callee=THEIR_NUMBER, direction="outbound-api"
            )
            async with twilio_stream(port, call_sid, params) as carrier:
                await carrier.start()
                await carrier.media(ulaw_frames(300, 200))  # the machine's greeting
                status, body = await post_twilio_form(
                    port,
                    "/webhooks/twilio/amd",
                    {
                        "CallSid": call_sid,
                        "AccountSid": TWILIO_SID,
                        "AnsweredBy": "machine_end_beep",
                        "MachineDetectionDuration": "2300",
                    },
                )
                assert status == 200, body
                # The message plays, its marks come back, then we end the call.
                assert await carrier.wait_closed() == 1000
            hangup = await _wait_rest(rest, lambda r: r.path == f"{CALLS_PATH}/{call_sid}.json")
            end = await rec.wait_for("on_call_end")
            phone.stop()

    assert http.tts_texts() == [voicemail]  # the per-call message, not the default
    (item,) = carrier.log.audio_by_item
    report = analyse_tone(carrier.log.item_pcm(item), 8000)
    assert abs(report.peak_hz - 500) < 5 and report.snr_db >= 30, report
    assert abs(report.seconds - 0.05 * len(voicemail)) < 0.03
    assert hangup.form == {"Status": "completed"}
    assert hangup.headers["authorization"] == BASIC
    assert end["reason"] == "voicemail"
    assert (end["call_id"], end["caller"], end["callee"]) == (call_sid, OUR_NUMBER, THEIR_NUMBER)


async def test_amd_for_a_call_without_a_stream_says_twiml_and_hangs_up() -> None:
    with rest_server(twilio_responder) as rest:
        phone = _twilio_phone(rest)
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(
                    phone.serve,
                    phone.agent(provider="echo"),
                    None,
                    handle_signals=False,
                    voicemail_message="Sorry we missed you & <friends>.",
                )
            )
            form = {"CallSid": "CA" + "f" * 32, "AccountSid": TWILIO_SID}
            # A human: nothing to do.
            status, _ = await post_twilio_form(
                port, "/webhooks/twilio/amd", {**form, "AnsweredBy": "human"}
            )
            assert status == 200
            status, _ = await post_twilio_form(
                port, "/webhooks/twilio/amd", {**form, "AnsweredBy": "machine_end_silence"}
            )
            assert status == 200
            update = await _wait_rest(
                rest, lambda r: r.path.endswith(f"/Calls/{'CA' + 'f' * 32}.json")
            )
            phone.stop()
    assert len(rest.requests) == 1
    assert update.headers["authorization"] == BASIC
    assert update.form == {
        "Twiml": '<?xml version="1.0" encoding="UTF-8"?><Response>'
        "<Say>Sorry we missed you &amp; &lt;friends&gt;.</Say><Hangup /></Response>"
    }


async def test_telnyx_outbound_dial_request() -> None:
    with rest_server(telnyx_responder) as rest:
        phone = Patter(
            mode="local",
            telnyx_key="KEY-telnyx-test",
            telnyx_connection_id="conn-123",
            phone_number=OUR_NUMBER,
            webhook_url="https://abc.ngrok.app/",
            telnyx_api_base_url=rest.base_url + "/v2",
        )
        call_id = await phone.call(to=THEIR_NUMBER, machine_detection=True)
        dial = await _wait_rest(rest, lambda r: r.path.endswith("/calls"))
    assert call_id == "v3:fake-outbound"
    assert len(rest.requests) == 1
    assert (dial.method, dial.path) == ("POST", "/v2/calls")
    assert dial.headers["authorization"] == "Bearer KEY-telnyx-test"
    body = dict(dial.json)
    # Our leg's mark (with a nonce) and a command_id derived from the request.
    assert is_our_leg(body.pop("client_state"))
    assert isinstance(body.pop("command_id"), str)
    assert body == {
        "to": THEIR_NUMBER,
        "from": OUR_NUMBER,
        "connection_id": "conn-123",
        # greeting_end: a greeting.ended on a beep or on silence.
        "answering_machine_detection": "greeting_end",
        "webhook_url": f"https://{WEBHOOK_HOST}/webhooks/telnyx/voice",
    }


async def test_recording_starts_with_the_stream() -> None:
    rec = Recorder()
    with rest_server(twilio_responder) as rest:
        phone = _twilio_phone(rest)
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(
                    phone.serve,
                    phone.agent(provider="echo"),
                    None,
                    handle_signals=False,
                    recording=True,
                    on_call_end=rec.hook("on_call_end"),
                )
            )
            call_sid = "CA" + "c" * 32
            params = await incoming_call(port, call_sid)
            assert rest.requests == []  # nothing is recorded before the stream starts
            async with twilio_stream(port, call_sid, params) as carrier:
                await carrier.start()
                recording = await _wait_rest(rest, lambda r: r.path.endswith("/Recordings.json"))
                await carrier.stop()
                await carrier.wait_closed()
            form = {
                "CallSid": call_sid,
                "AccountSid": TWILIO_SID,
                "RecordingSid": "RE" + "0" * 32,
                "RecordingStatus": "completed",
                "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{TWILIO_SID}/Recordings/RE{'0' * 32}",
                "RecordingDuration": "3",
                "RecordingChannels": "1",
                "RecordingSource": "StartCallRecordingAPI",
            }
            assert (await post_twilio_form(port, "/webhooks/twilio/recording", form))[0] == 200
            assert (await post_twilio_form(port, "/webhooks/twilio/recording", form, sign=False))[
                0
            ] == 403
            await rec.wait_for("on_call_end")
            phone.stop()
    assert recording.path == f"{CALLS_PATH}/{call_sid}/Recordings.json"
    assert recording.headers["authorization"] == BASIC
    assert form_fields(recording.body) == [
        ("RecordingStatusCallback", f"https://{WEBHOOK_HOST}/webhooks/twilio/recording"),
        ("RecordingStatusCallbackMethod", "POST"),
        ("RecordingStatusCallbackEvent", "completed"),
    ]
    # A carrier-side stop is not ours to hang up: only the recording went out.
    assert [r.path for r in rest.requests] == [recording.path]


async def test_status_callbacks_are_checked() -> None:
    with rest_server(twilio_responder) as rest:
        phone = _twilio_phone(rest)
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(phone.serve, phone.agent(provider="echo"), None, handle_signals=False)
            )
            form = {
                "CallSid": "CA" + "d" * 32,
                "AccountSid": TWILIO_SID,
                "CallStatus": "completed",
                "CallDuration": "42",
                "SequenceNumber": "3",
                "CallbackSource": "call-progress-events",
            }
            path = "/webhooks/twilio/status"
            status, body = await post_twilio_form(port, path, form)
            assert (status, body) == (200, b'<?xml version="1.0" encoding="UTF-8"?><Response />')
            assert (await post_twilio_form(port, path, form, sign=False))[0] == 403
            # Signed by someone else's token, or over another host: refused too.
            assert (await post_twilio_form(port, path, form, token="other-token"))[0] == 403
            assert (await post_twilio_form(port, path, form, host="evil.example"))[0] == 403
            phone.stop()
    assert rest.requests == []


async def test_amd_before_the_stream_uses_the_calls_own_message() -> None:
    """An outbound call's own voicemail message, even with no stream live yet."""
    with rest_server(twilio_responder) as rest:
        phone = _twilio_phone(rest)
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(phone.serve, phone.agent(provider="echo"), None, handle_signals=False)
            )
            call_sid = await phone.call(
                to=THEIR_NUMBER, machine_detection=True, voicemail_message="Call back soon."
            )
            status, _ = await post_twilio_form(
                port,
                "/webhooks/twilio/amd",
                {"CallSid": call_sid, "AccountSid": TWILIO_SID, "AnsweredBy": "machine_end_beep"},
            )
            assert status == 200
            update = await _wait_rest(rest, lambda r: r.path == f"{CALLS_PATH}/{call_sid}.json")
            phone.stop()
    assert update.form["Twiml"].endswith("<Say>Call back soon.</Say><Hangup /></Response>")
