"""End to end over loopback: Twilio as Twilio documents it.

The voicemail drop on a live stream (clear, cancel, the message as its own
answer, played whole before the hang-up), a fax, the upgrade URL's two
signed forms, transfers that our own clean-up must not hang up, the inline
TwiML limit, the AMD webhook answered at once, ``MachineDetectionTimeout``.

The real server (``Patter.serve`` on 127.0.0.1), a fake OpenAI Realtime
server over real WebSockets, a fake Twilio REST API, and Twilio's end of
the media stream playing the agent's audio in real time
(:mod:`tests.fakes.carrier`).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import urlencode

import anyio
import pytest
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]
from websockets.exceptions import InvalidStatus

from patter_anyio import InvalidOption, Patter
from tests.fakes.carrier import (
    CarrierStream,
    carrier_stream,
    http_post,
    local_ws_url,
    run_in_asyncio_thread,
    stream_signature,
    tone_report,
    ulaw_tone,
)
from tests.fakes.fake_elevenlabs import FakeElevenLabs
from tests.fakes.fake_openai_realtime import FakeOpenAIRealtime
from tests.fakes.provider_servers import Close, ProviderServer, provider_server
from tests.fakes.servers import RecordedRequest, RunningRestServer, rest_server, twilio_responder
from tests.test_e2e_echo import ACCOUNT_SID, AUTH_TOKEN, CALL_SID, HOST
from tests.test_e2e_realtime import (
    OPENAI_KEY,
    Recorded,
    answer_call,
    end_call_with_goodbye,
    hangups,
    of_type,
    serving,
)

pytestmark = pytest.mark.anyio

VOICEMAIL = "Please call us back."
TRANSFER_TO = "+14155550123"


def _phone(rest: RunningRestServer, provider: ProviderServer | None = None) -> Patter:
    extra: dict[str, Any] = {}
    if provider is not None:
        extra = {"openai_key": OPENAI_KEY, "openai_base_url": provider.base_url + "/v1"}
    return Patter(
        twilio_sid=ACCOUNT_SID,
        twilio_token=AUTH_TOKEN,
        webhook_url=HOST,
        phone_number="+18005550199",
        twilio_api_base_url=rest.base_url,
        stream_secret="e2e-stream-secret-0123456789",
        **extra,
    )


async def post_amd(port: int, answered_by: str, call_sid: str = CALL_SID) -> tuple[int, float]:
    """Twilio's async AMD callback, signed; returns the status and how long it took."""
    form = {"AccountSid": ACCOUNT_SID, "CallSid": call_sid, "AnsweredBy": answered_by}
    path = "/webhooks/twilio/amd"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"https://{HOST}{path}", form)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
    }
    began = time.monotonic()
    answer = await http_post(port, path, urlencode(form).encode(), headers)
    return answer.status, time.monotonic() - began


def _calls_path(call_sid: str = CALL_SID) -> str:
    return f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call_sid}.json"


async def test_voicemail_drop_during_a_live_answer() -> None:
    """machine_end_beep while the agent answers the greeting: clear, cancel,
    the message as its own response, its audio played whole, then the hang-up."""
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    seen = Recorded()
    message_audio = ulaw_tone(500, 800)
    with provider_server(fake) as provider, rest_server(twilio_responder) as rest:
        # The message is the only response.create we send in this call.
        provider.when(of_type("response.create"), lambda _: fake.respond(message_audio, VOICEMAIL))
        phone = _phone(rest, provider)
        async with serving(phone, phone.agent(provider="openai"), seen, voicemail_message=VOICEMAIL) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> tuple[CarrierStream, int, int]:
                headers = {"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)}
                async with carrier_stream(local_ws_url(port, stream_url), headers=headers) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("session.update"))
                    await anyio.sleep(0.2)
                    # The agent is answering the machine's greeting: 3 s of 1 kHz.
                    provider.push(lambda: fake.begin_response() + fake.audio(ulaw_tone(1000, 3000)))
                    await call.wait(lambda: call.played_ms >= 300, what="the answer playing")
                    status, _ = await post_amd(port, "machine_end_beep")
                    assert status == 200
                    await call.wait(lambda: bool(call.clears), what="the clear")
                    cleared = call.clears[0]
                    await call.wait(lambda: call.played_ms - cleared / 8 >= 300, what="message")
                    # The machine's noise, while the message plays, cuts nothing.
                    provider.push(lambda: fake.speech_started(audio_start_ms=4000))
                    await call.wait(call.closed.is_set, timeout=8, what="the hang-up")
                    return call, cleared, len(call.audio)

            call, cleared_at, total = await run_in_asyncio_thread(carrier)
            end = await seen.wait_ended()

    # The provider: the answer cancelled and truncated, then the message asked for.
    kinds = [m["type"] for m in fake.received if m["type"] != "input_audio_buffer.append"]
    cancel = kinds.index("response.cancel")
    assert kinds.index("conversation.item.truncate") > cancel
    assert kinds.index("response.create") > cancel
    # The server's own barge-in was held back just before the message was asked for.
    sent = [m for m in fake.received if m["type"] != "input_audio_buffer.append"]
    held = sent[kinds.index("response.create") - 1]
    assert held["type"] == "session.update"
    assert held["session"]["audio"]["input"]["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "create_response": False,
        "interrupt_response": False,
    }
    assert len(call.clears) == 1  # the noise during the message cleared nothing
    (create,) = provider.received_matching(of_type("response.create"))
    assert create["response"]["instructions"].endswith(VOICEMAIL)
    # The carrier: one clear, then the whole message and nothing of the old answer.
    assert len(call.clears) == 1
    after = bytes(call.audio[cleared_at:])
    heard = tone_report(after)
    assert abs(heard.peak_hz - 500) < 5 and heard.snr_db >= 30, heard
    assert abs(len(after) - len(message_audio)) <= 160, (len(after), len(message_audio))
    # Hung up only once all of it had played and every mark was echoed.
    assert call.played_at_close == total
    assert call.pending_marks == 0
    assert hangups(rest) == [{"Status": "completed"}]
    assert end["reason"] == "voicemail"


async def test_elevenlabs_voicemail_plays_whole_before_the_hang_up() -> None:
    """ElevenLabs has no "answer finished": the inferred end of the interrupted
    answer arrives with the message's first chunk and must not end the wait."""
    fake = FakeElevenLabs(agent_id="agent_vm")
    seen = Recorded()
    message_audio = ulaw_tone(500, 800)
    with provider_server(fake) as provider, rest_server(twilio_responder) as rest:
        provider.when(of_type("user_message"), lambda _: fake.agent_says(VOICEMAIL, message_audio))
        phone = Patter(
            twilio_sid=ACCOUNT_SID,
            twilio_token=AUTH_TOKEN,
            webhook_url=HOST,
            twilio_api_base_url=rest.base_url,
            elevenlabs_base_url=provider.base_url,
        )
        agent = phone.agent(provider="elevenlabs", agent_id="agent_vm")
        async with serving(phone, agent, seen, voicemail_message=VOICEMAIL) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> tuple[CarrierStream, int, int, float]:
                headers = {"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)}
                async with carrier_stream(local_ws_url(port, stream_url), headers=headers) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("conversation_initiation_client_data"))
                    await anyio.sleep(0.2)
                    provider.push(lambda: fake.agent_says("Hi there!", ulaw_tone(1000, 3000)))
                    await call.wait(lambda: call.played_ms >= 300, what="the answer playing")
                    status, _ = await post_amd(port, "machine_end_other")
                    assert status == 200
                    await call.wait(lambda: bool(call.clears), what="the clear")
                    cleared = call.clears[0]
                    await call.wait(
                        lambda: len(call.audio) - cleared >= len(message_audio) - 160,
                        what="the message arriving",
                    )
                    await call.wait(call.closed.is_set, timeout=8, what="the hang-up")
                    heard_ms = (call.played_at_close or 0) - cleared
                    return call, cleared, len(call.audio), heard_ms / 8

            call, cleared_at, total, heard_ms = await run_in_asyncio_thread(carrier)
            end = await seen.wait_ended()
    (asked,) = provider.received_matching(of_type("user_message"))
    assert asked["text"].endswith(VOICEMAIL)
    after = bytes(call.audio[cleared_at:])
    heard = tone_report(after)
    assert abs(heard.peak_hz - 500) < 5 and heard.snr_db >= 30, heard
    assert abs(len(after) - len(message_audio)) <= 160
    # All of it played before the hang-up, not just its first chunk.
    assert call.played_at_close == total and heard_ms >= 780
    assert hangups(rest) == [{"Status": "completed"}]
    assert end["reason"] == "voicemail"


async def test_fax_hangs_up_without_agent_audio() -> None:
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    seen = Recorded()
    with provider_server(fake) as provider, rest_server(twilio_responder) as rest:
        phone = _phone(rest, provider)
        async with serving(phone, phone.agent(provider="openai"), seen, voicemail_message=VOICEMAIL) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> CarrierStream:
                headers = {"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)}
                async with carrier_stream(local_ws_url(port, stream_url), headers=headers) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("session.update"))
                    status, _ = await post_amd(port, "fax")
                    assert status == 200
                    await call.wait(call.closed.is_set, what="the hang-up")
                    return call

            call = await run_in_asyncio_thread(carrier)
            end = await seen.wait_ended()
    assert end["reason"] == "fax"
    assert hangups(rest) == [{"Status": "completed"}]
    assert call.audio == bytearray() and call.media_messages == 0
    assert provider.received_matching(of_type("response.create")) == []


async def test_upgrade_signed_with_a_trailing_slash_is_accepted_and_no_other() -> None:
    seen = Recorded()
    with rest_server(twilio_responder) as rest:
        phone = _phone(rest)
        async with serving(phone, phone.agent(provider="echo"), seen) as port:
            stream_url, params = await answer_call(port)
            url = local_ws_url(port, stream_url)

            async def carrier() -> dict[str, Any]:
                out: dict[str, Any] = {}
                for name, signed_url in (
                    ("exact", stream_url),
                    ("slash", stream_url + "/"),
                    ("two slashes", stream_url + "//"),
                    ("other path", stream_url.replace("/ws/stream/", "/ws/other/")),
                    ("http", stream_url.replace("wss://", "https://")),
                ):
                    headers = {"X-Twilio-Signature": stream_signature(signed_url, AUTH_TOKEN)}
                    try:
                        async with carrier_stream(url, headers=headers) as call:
                            await call.start(call_id=CALL_SID, custom_parameters=params)
                            await call.stop()
                            await call.wait(call.closed.is_set, what="the stream ending")
                            out[name] = "accepted"
                    except InvalidStatus as exc:
                        out[name] = exc.response.status_code
                return out

            result = await run_in_asyncio_thread(carrier)
    assert result == {
        "exact": "accepted",
        "slash": "accepted",
        "two slashes": 403,
        "other path": 403,
        "http": 403,
    }


@pytest.mark.parametrize("ending", ["end_call", "provider_failure"])
async def test_no_hangup_once_a_transfer_was_requested(ending: str) -> None:
    fake = FakeOpenAIRealtime(api_key=OPENAI_KEY)
    seen = Recorded()
    with provider_server(fake) as provider, rest_server(twilio_responder) as rest:
        phone = _phone(rest, provider)
        agent = phone.agent(provider="openai", transfer_allowlist=[TRANSFER_TO])
        async with serving(phone, agent, seen) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> CarrierStream:
                headers = {"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)}
                async with carrier_stream(local_ws_url(port, stream_url), headers=headers) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("session.update"))
                    arguments = json.dumps({"number": TRANSFER_TO})
                    provider.push(lambda: fake.function_call("transfer_call", arguments, "c_t"))
                    await call.wait(lambda: bool(hangups(rest)), what="the transfer request")
                    # Before Twilio's stop arrives, something ends the call.
                    if ending == "end_call":
                        await end_call_with_goodbye(provider, fake, "c_end")
                    else:
                        provider.push([Close(1011, "overloaded")])
                    await call.wait(call.closed.is_set, what="our side ending")
                    return call

            await run_in_asyncio_thread(carrier)
            end = await seen.wait_ended()
            await anyio.sleep(0.3)  # a hang-up would have reached the REST fake by now
    (transfer,) = hangups(rest)
    assert transfer == {
        "Twiml": '<?xml version="1.0" encoding="UTF-8"?><Response>'
        f"<Dial>{TRANSFER_TO}</Dial></Response>"
    }
    assert end["transferred_to"] == TRANSFER_TO
    assert end["reason"] == ("end_call" if ending == "end_call" else "provider_closed")


async def test_a_voicemail_message_past_the_twiml_limit_is_refused_at_configuration() -> None:
    with rest_server(twilio_responder) as rest:
        phone = _phone(rest)
        agent = phone.agent(provider="echo")
        with pytest.raises(InvalidOption, match="voicemail_message is too long"):
            await phone.serve(agent, None, handle_signals=False, voicemail_message="x" * 5000)
        with pytest.raises(InvalidOption, match="voicemail_message is too long"):
            await phone.call(
                to="+14155550100", machine_detection=True, voicemail_message="x" * 5000
            )
        # Escaping counts: 1,000 ampersands are 5,000 characters of TwiML.
        with pytest.raises(InvalidOption, match="Twilio allows 4000"):
            await phone.serve(agent, None, handle_signals=False, voicemail_message="&" * 1000)
    assert rest.requests == []  # nothing was dialled


async def test_amd_webhook_answers_at_once_while_its_rest_follow_up_is_slow() -> None:
    release = threading.Event()

    def slow(rec: RecordedRequest) -> tuple[int, dict[str, Any]]:
        release.wait(5)  # Twilio's API taking its time
        return twilio_responder(rec)

    seen = Recorded()
    other = "CA" + "e" * 32
    with rest_server(slow) as rest:
        phone = _phone(rest)
        async with serving(phone, phone.agent(provider="echo"), seen, voicemail_message=VOICEMAIL) as port:
            try:
                status, took = await post_amd(port, "machine_end_beep", other)
                update = await anyio.to_thread.run_sync(
                    lambda: rest.wait_for(lambda r: r.path == _calls_path(other), 5.0)
                )
            finally:
                release.set()
    assert status == 200
    assert took < 1.0, took
    assert update.form == {
        "Twiml": '<?xml version="1.0" encoding="UTF-8"?><Response>'
        f"<Say>{VOICEMAIL}</Say><Hangup /></Response>"
    }


async def test_amd_fax_without_a_stream_is_hung_up() -> None:
    seen = Recorded()
    other = "CA" + "d" * 32
    with rest_server(twilio_responder) as rest:
        phone = _phone(rest)
        async with serving(phone, phone.agent(provider="echo"), seen, voicemail_message=VOICEMAIL) as port:
            status, _ = await post_amd(port, "fax", other)
            update = await anyio.to_thread.run_sync(
                lambda: rest.wait_for(lambda r: r.path == _calls_path(other), 5.0)
            )
    assert status == 200
    assert update.form == {"Status": "completed"}


async def test_create_call_carries_machine_detection_timeout() -> None:
    with rest_server(twilio_responder) as rest:
        phone = _phone(rest)
        await phone.call(to="+14155550100", machine_detection=True, machine_detection_timeout=20)
        await phone.call(to="+14155550100")  # no AMD: no detection fields at all
        with pytest.raises(InvalidOption, match="machine_detection_timeout"):
            await phone.call(to="+14155550100", machine_detection=True, machine_detection_timeout=2)
    with_amd, without = (r.form for r in rest.requests)
    assert with_amd["MachineDetection"] == "DetectMessageEnd"
    assert with_amd["MachineDetectionTimeout"] == "20"
    assert "MachineDetectionTimeout" not in without and "MachineDetection" not in without
