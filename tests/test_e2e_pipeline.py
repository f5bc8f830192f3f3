"""End to end, the pipeline agent: speech-to-text, a reply, text-to-speech, over real sockets.

The server is ``Patter.serve`` on 127.0.0.1; the carrier is the
``websockets`` package speaking Twilio Media Streams; Deepgram is a
``websockets`` server and the HTTP providers a stdlib HTTP server, all on
loopback. Every audio check is by content: the caller's tone must reach
Deepgram at its frequency, the TTS tone must reach the caller at its own.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio
import pytest

from patter_anyio import Patter
from tests.fakes.http_fakes import (
    TWILIO_SID,
    TWILIO_TOKEN,
    WEBHOOK_HOST,
    DeepgramFake,
    Recorder,
    analyse_tone,
    deepgram_server,
    incoming_call,
    pipeline_http_server,
    twilio_stream,
    ulaw_frames,
)

pytestmark = pytest.mark.anyio

CALLER_HZ = 1000.0
TTS_HZ = 500.0
FIRST_MESSAGE = "Thanks for calling."
REPLY = "Hi! How can I help?"


def _phone(http: Any, dg: DeepgramFake, **overrides: Any) -> Patter:
    options: dict[str, Any] = {
        "twilio_sid": TWILIO_SID,
        "twilio_token": TWILIO_TOKEN,
        "webhook_url": WEBHOOK_HOST,
        "phone_number": "+15550009999",
        "openai_key": "sk-test",
        "deepgram_key": dg.api_key,
        "openai_base_url": http.openai_base_url,
        "elevenlabs_base_url": http.elevenlabs_base_url,
        "deepgram_base_url": dg.base_url,
        # No real carrier REST is reachable; nothing here should need it.
        "twilio_api_base_url": "http://127.0.0.1:9",
    }
    return Patter(mode="local", **(options | overrides))


def _assert_tone(pcm: bytes, rate: int, hz: float, what: str) -> None:
    report = analyse_tone(pcm, rate)
    assert abs(report.peak_hz - hz) < 5, f"{what}: peak {report.peak_hz:.1f} Hz, not {hz}"
    assert report.snr_db >= 30, f"{what}: SNR {report.snr_db:.1f} dB"


@pytest.mark.parametrize("handler_kind", ["sync", "async"])
async def test_pipeline_with_message_handler(handler_kind: str) -> None:
    rec = Recorder()
    messages: list[dict[str, Any]] = []

    def on_message_sync(message: dict[str, Any]) -> str:
        messages.append(message)
        return REPLY

    async def on_message_async(message: dict[str, Any]) -> str:
        await anyio.sleep(0.01)
        messages.append(message)
        return REPLY

    handler = on_message_sync if handler_kind == "sync" else on_message_async
    with pipeline_http_server() as http, deepgram_server() as dg:
        phone = _phone(http, dg)
        agent = phone.agent(
            provider="pipeline", stt="deepgram", tts="openai", first_message=FIRST_MESSAGE
        )
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(
                    phone.serve,
                    agent,
                    None,
                    handle_signals=False,
                    on_message=handler,
                    on_transcript=rec.hook("on_transcript"),
                    on_call_start=rec.hook("on_call_start"),
                    on_call_end=rec.hook("on_call_end", is_async=True),
                )
            )
            call_sid = "CA" + "a" * 32
            params = await incoming_call(port, call_sid)
            async with twilio_stream(port, call_sid, params) as carrier:
                await carrier.start()
                # The greeting is spoken by TTS while the caller talks.
                await carrier.media(ulaw_frames(CALLER_HZ, 1000))
                reply = await rec.wait_for(
                    "on_transcript", lambda p: p["role"] == "assistant" and p["text"] == REPLY
                )
                await carrier.wait_for(
                    lambda log: any(
                        m["event"] == "mark" and "answer-" in m["mark"]["name"]
                        for m in log.messages[-3:]
                    ),
                    what="the reply's last mark",
                )
                await carrier.stop()
                assert await carrier.wait_closed() == 1000
            end = await rec.wait_for("on_call_end")
            phone.stop()

    # Deepgram: the documented query, our key, and the caller's tone as 16 kHz linear16.
    assert dg.auth == ["Token dg-test"]
    assert dg.paths[0].startswith("/v1/listen?model=nova-3&language=en&encoding=linear16")
    assert "sample_rate=16000" in dg.paths[0]
    assert len(dg.audio) >= dg.after_bytes
    _assert_tone(bytes(dg.audio), 16000, CALLER_HZ, "caller audio at Deepgram")
    assert dg.control[-1:] == ["CloseStream"]

    # The handler got the final transcript, once.
    assert len(messages) == 1
    assert messages[0]["text"] == "hello there"
    assert messages[0]["call_id"] == call_sid
    assert messages[0]["caller"] == "+15550001111"

    # TTS: the greeting first, then the reply, sentence by sentence.
    texts = http.tts_texts()
    assert texts[0] == FIRST_MESSAGE
    # The reply's two sentences are requested in parallel: either may land first.
    assert sorted(texts[1:]) == ["Hi!", "How can I help?"]
    for r in http.of("/audio/speech"):
        assert r.headers["authorization"] == "Bearer sk-test"
        assert r.json["response_format"] == "pcm"

    # The caller heard both, as the 500 Hz tone, at the right lengths.
    items = sorted(carrier.log.audio_by_item)
    assert len(items) == 2, items
    greeting, answer = (carrier.log.item_pcm(i) for i in items)
    for pcm, spoken in ((greeting, texts[:1]), (answer, texts[1:])):
        _assert_tone(pcm, 8000, TTS_HZ, f"TTS audio for {spoken!r}")
        # 50 ms of speech per character; the last frame is padded to 20 ms.
        expected_ms = 50 * sum(len(t) for t in spoken)
        assert expected_ms <= len(pcm) / 16 < expected_ms + 20 + 1, (len(pcm) / 16, expected_ms)

    # Transcripts: greeting, the caller, the reply.
    said = [(p["role"], p["text"]) for p in rec.of("on_transcript")]
    assert said == [
        ("assistant", FIRST_MESSAGE),
        ("user", "hello there"),
        ("assistant", REPLY),
    ]
    assert reply["call_id"] == call_sid
    assert len(rec.of("on_call_start")) == 1
    assert end["reason"] == "carrier_stop"
    assert [t["text"] for t in end["transcript"]] == [FIRST_MESSAGE, "hello there", REPLY]


async def test_pipeline_with_llm_streams_sentences_and_takes_dtmf() -> None:
    rec = Recorder()
    first, second = "Sure thing, I can help.", "The weather is sunny today."
    with pipeline_http_server() as http, deepgram_server(DeepgramFake(transcript=None)) as dg:
        # The SSE stream holds its second sentence until the first one's TTS
        # request has arrived: speech must start while the LLM still writes.
        http.chat_answers.append(["Sure thing,", " I can help.", " ", None, second])
        phone = _phone(http, dg, elevenlabs_key="el-test")
        agent = phone.agent(
            provider="pipeline",
            stt="deepgram",
            tts="elevenlabs",
            voice="voice-1",
            system_prompt="Answer briefly. The caller is {caller}.",
        )
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(
                    phone.serve,
                    agent,
                    None,
                    handle_signals=False,
                    on_transcript=rec.hook("on_transcript"),
                    on_call_end=rec.hook("on_call_end"),
                )
            )
            call_sid = "CA" + "b" * 32
            params = await incoming_call(port, call_sid)
            async with twilio_stream(port, call_sid, params) as carrier:
                await carrier.start()
                await carrier.media(ulaw_frames(CALLER_HZ, 200))
                await carrier.dtmf("5")
                await rec.wait_for("on_transcript", lambda p: p["role"] == "assistant")
                await carrier.wait_for(
                    lambda log: bool(log.events("mark")) and not log.unmarked,
                    what="the answer's last mark",
                )
                await carrier.stop()
                await carrier.wait_closed()
            end = await rec.wait_for("on_call_end")
            phone.stop()

    # One LLM round: system prompt with the caller filled in, the digit as text.
    chats = http.of("/chat/completions")
    assert len(chats) == 1
    body = chats[0].json
    assert chats[0].headers["authorization"] == "Bearer sk-test"
    assert body["stream"] is True and body["model"] == "gpt-5.4-mini"
    assert body["messages"] == [
        {"role": "system", "content": "Answer briefly. The caller is +15550001111."},
        {"role": "user", "content": "The caller pressed 5 on the phone keypad."},
    ]

    # Two sentences, two ElevenLabs requests; the first before the SSE ended.
    tts = http.of("/stream?output_format=pcm_16000")
    assert [r.json["text"] for r in tts] == [first, second]
    assert all(r.path.startswith("/v1/text-to-speech/voice-1/stream") for r in tts)
    assert all(r.headers["xi-api-key"] == "el-test" for r in tts)
    assert http.tts_during_chat == [True]
    assert tts[0].at < http.chat_done_at[0]

    # The caller heard the answer: one item, the 500 Hz tone, both sentences long.
    (item,) = carrier.log.audio_by_item
    pcm = carrier.log.item_pcm(item)
    _assert_tone(pcm, 8000, TTS_HZ, "ElevenLabs audio")
    expected_ms = 50 * (len(first) + len(second))
    assert expected_ms <= len(pcm) / 16 < expected_ms + 21

    said = [(p["role"], p["text"]) for p in rec.of("on_transcript")]
    assert said == [("user", "[DTMF 5]"), ("assistant", f"{first} {second}")]
    assert end["reason"] == "carrier_stop"


def _wav_from_multipart(body: bytes) -> tuple[int, bytes]:
    """(sample rate, PCM16 samples) of the WAV file part of a transcription upload."""
    start = body.index(b"RIFF")
    wav = body[start:]
    assert wav[8:12] == b"WAVE"
    rate = int.from_bytes(wav[24:28], "little")
    data_at = wav.index(b"data") + 8
    size = int.from_bytes(wav[data_at - 4 : data_at], "little")
    return rate, wav[data_at : data_at + size]


async def test_pipeline_with_openai_transcription() -> None:
    """No Deepgram: the energy VAD cuts the utterance, OpenAI transcribes it."""
    rec = Recorder()
    with pipeline_http_server() as http, deepgram_server(DeepgramFake(transcript=None)) as dg:
        phone = _phone(http, dg)
        agent = phone.agent(provider="pipeline", stt="openai", tts="openai", language="en")
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(
                    phone.serve,
                    agent,
                    None,
                    handle_signals=False,
                    on_message=lambda message: f"You said {message['text']}.",
                    on_transcript=rec.hook("on_transcript"),
                )
            )
            call_sid = "CA" + "9" * 32
            params = await incoming_call(port, call_sid)
            async with twilio_stream(port, call_sid, params) as carrier:
                await carrier.start()
                await carrier.media(ulaw_frames(CALLER_HZ, 600))
                await carrier.media([b"\xff" * 160] * 45)  # 900 ms: the turn is over
                await rec.wait_for("on_transcript", lambda p: p["role"] == "assistant")
                await carrier.wait_for(
                    lambda log: bool(log.audio_by_item) and not log.unmarked, what="the reply"
                )
                await carrier.stop()
            phone.stop()

    assert dg.paths == []  # Deepgram was never asked
    (upload,) = http.of("/audio/transcriptions")
    assert upload.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="model"\r\n\r\ngpt-transcribe' in upload.body
    rate, pcm = _wav_from_multipart(upload.body)
    assert rate == 16000
    _assert_tone(pcm, 16000, CALLER_HZ, "the uploaded utterance")
    said = [(p["role"], p["text"]) for p in rec.of("on_transcript")]
    assert said == [("user", "hello there"), ("assistant", "You said hello there.")]
    (item,) = carrier.log.audio_by_item
    _assert_tone(carrier.log.item_pcm(item), 8000, TTS_HZ, "the reply")


async def test_pipeline_elevenlabs_websocket_tts() -> None:
    """``tts="elevenlabs-ws"``: one stream-input socket per answer, over loopback."""
    from websockets.asyncio.server import ServerConnection
    from websockets.exceptions import ConnectionClosed

    from tests.fakes.fake_elevenlabs_tts import FakeElevenLabsTtsSocket
    from tests.fakes.servers import websocket_server

    peers: list[FakeElevenLabsTtsSocket] = []
    paths: list[str] = []

    async def tts_socket(conn: ServerConnection) -> None:
        peer = FakeElevenLabsTtsSocket(api_key="el-test")
        assert conn.request is not None
        headers = tuple((k.lower(), v) for k, v in conn.request.headers.raw_items())
        paths.append(conn.request.path)
        if not peer.accept("ws://fake" + conn.request.path, headers):
            await conn.close(1008, "bad key")
            return
        peers.append(peer)
        try:
            async for message in conn:
                for answer in peer.receive(message):
                    await conn.send(answer)
        except ConnectionClosed:
            pass

    rec = Recorder()
    with (
        pipeline_http_server() as http,
        deepgram_server() as dg,
        websocket_server(tts_socket) as tts,
    ):
        phone = _phone(
            http,
            dg,
            elevenlabs_key="el-test",
            elevenlabs_base_url=f"http://127.0.0.1:{tts.port}",
        )
        agent = phone.agent(
            provider="pipeline", stt="deepgram", tts="elevenlabs-ws", voice="voice-9"
        )
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                partial(
                    phone.serve,
                    agent,
                    None,
                    handle_signals=False,
                    on_message=lambda message: REPLY,
                    on_transcript=rec.hook("on_transcript"),
                    on_call_end=rec.hook("on_call_end"),
                )
            )
            call_sid = "CA" + "e" * 32
            params = await incoming_call(port, call_sid)
            async with twilio_stream(port, call_sid, params) as carrier:
                await carrier.start()
                await carrier.media(ulaw_frames(CALLER_HZ, 1000))
                await rec.wait_for(
                    "on_transcript", lambda p: p["role"] == "assistant" and p["text"] == REPLY
                )
                await carrier.wait_for(
                    lambda log: bool(log.events("mark")) and not log.unmarked,
                    what="the answer's last mark",
                )
                await carrier.stop()
                assert await carrier.wait_closed() == 1000
            await rec.wait_for("on_call_end")
            phone.stop()

    # One socket for the answer, on the documented path, with our voice.
    assert len(peers) == 1 and paths[0].startswith("/v1/text-to-speech/voice-9/stream-input?")
    assert peers[0].spoken == ["Hi!", "How can I help?"]
    assert peers[0].finished
    # The caller heard the answer: the fake's 440 Hz tone, 50 ms a character.
    items = sorted(carrier.log.audio_by_item)
    assert len(items) == 1, items
    pcm = carrier.log.item_pcm(items[0])
    _assert_tone(pcm, 8000, 440.0, "stream-input TTS audio")
    expected_ms = 50 * len("Hi!How can I help?")
    assert expected_ms <= len(pcm) / 16 < expected_ms + 20 + 1, (len(pcm) / 16, expected_ms)
