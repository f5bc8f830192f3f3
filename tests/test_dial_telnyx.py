"""``dial --carrier telnyx``: the fake Call Control API, Telnyx frames, and
whole calls against the project's own server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import wave
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import h11
import numpy as np
import pytest
from nacl.signing import SigningKey

from patter_anyio import Patter
from patter_anyio.dial import dial_main
from patter_anyio.dial._call import DialOptions, DialReport, dial
from patter_anyio.dial._frames import TelnyxCarrierFrames
from patter_anyio.dial._telnyx import (
    TelnyxWebhooks,
    load_signing_key,
    run_fake_telnyx_api,
)
from patter_anyio.net._httpclient import request
from patter_core import CountingEntropy, RemoteProtocolError
from patter_core.audio._g711 import ulaw_decode, ulaw_encode
from patter_core.http import HttpRequest
from patter_core.media import TelnyxMediaStream
from patter_core.media._events import Connected, Dtmf, Media, Start, Stop
from patter_core.webhooks import TelnyxSignatureVerifier, parse_telnyx_webhook

SEED = base64.b64encode(bytes(range(32))).decode()
PUBLIC = base64.b64encode(bytes(SigningKey(bytes(range(32))).verify_key)).decode()
OTHER_SEED = base64.b64encode(bytes(range(1, 33))).decode()
RATE = 8000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tone_in(pcm: bytes, threshold: float = 0.05) -> tuple[float, float]:
    """(peak Hz, SNR dB) of the loud part of PCM16 8 kHz: main lobe (+-4 bins) vs the rest."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    assert np.any(x), "nothing was heard"
    loud = np.flatnonzero(np.abs(x) > threshold * np.max(np.abs(x)))
    x = x[loud[0] : loud[-1] + 1]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    spectrum[:3] = 0.0
    peak = int(np.argmax(spectrum))
    signal = float(spectrum[max(peak - 4, 0) : peak + 5].sum())
    noise = float(spectrum.sum()) - signal
    return peak * RATE / len(x), 10 * np.log10(signal / max(noise, 1e-12))


# ------------------------------------------------------------------ the parts


def test_frames_parse_with_the_core_telnyx_stream() -> None:
    """What dial writes is what the server's own parser reads (§4.4)."""
    frames = TelnyxCarrierFrames(
        call_control_id="v3:abc",
        call_session_id="sess",
        user_id="user",
        stream_id="STREAM-1",
        from_number="+15550001",
        to_number="+15550002",
        auth_token="tok",
    )
    stream = TelnyxMediaStream()
    connected = json.loads(frames.connected())
    # The token nested, as two independent Telnyx implementations read it.
    assert connected == {
        "event": "connected",
        "version": "1.0.0",
        "connected": {"x-telnyx-streaming-auth-token": "tok"},
    }
    events = stream.receive(frames.connected())
    assert events == [Connected(version="1.0.0", auth_token="tok")]
    start_frame = json.loads(frames.start({"tenant": "acme"}))
    assert start_frame["sequence_number"] == "1" and start_frame["stream_id"] == "STREAM-1"
    assert start_frame["start"]["media_format"] == {
        "encoding": "PCMU",
        "sample_rate": 8000,
        "channels": 1,
    }
    (start,) = stream.receive(frames.start({"tenant": "acme"}))
    assert isinstance(start, Start)
    assert (start.stream_id, start.call_id, start.caller, start.callee) == (
        "STREAM-1",
        "v3:abc",
        "+15550001",
        "+15550002",
    )
    assert start.custom_parameters == {"tenant": "acme"}
    payload = bytes(range(160))
    media = json.loads(frames.media(payload, 0))
    assert media["media"] == {
        "track": "inbound",
        "chunk": "1",
        "timestamp": "0",
        "payload": base64.b64encode(payload).decode(),
    }
    got = stream.receive(frames.media(payload, 20))
    dtmf = json.loads(frames.dtmf("7"))
    assert dtmf["dtmf"] == {"digit": "7"} and dtmf["sequence_number"] == "5"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", dtmf["occurred_at"])
    got += stream.receive(json.dumps(dtmf)) + stream.receive(frames.stop())
    assert [e.payload for e in got if isinstance(e, Media)] == [payload]
    assert Dtmf(digit="7") in got and isinstance(got[-1], Stop)
    error = json.loads(frames.error() or "")
    assert error["payload"]["code"] == 100002 and error["stream_id"] == "STREAM-1"
    echo = json.loads(frames.mark("m1"))
    assert echo["mark"] == {"name": "m1"} and echo["stream_id"] == "STREAM-1"
    # Every frame after connected is numbered: 2 starts, 2 media, dtmf, stop, mark, mark.
    assert json.loads(frames.mark("x"))["sequence_number"] == "8"


def test_l16_frames_convert_both_ways() -> None:
    frames = TelnyxCarrierFrames(
        call_control_id="v3:abc",
        call_session_id="s",
        user_id="u",
        stream_id="S",
        from_number="a",
        to_number="b",
        codec="L16",
        sample_rate=16000,
    )
    stream = TelnyxMediaStream(l16_byte_order="big")
    (start,) = stream.receive(frames.start({}))
    assert isinstance(start, Start) and start.media_format.sample_rate == 16000
    t = np.arange(RATE) / RATE
    tone = ulaw_encode(np.round(8000 * np.sin(2 * np.pi * 500 * t)).astype("<i2").tobytes())
    sent = [json.loads(frames.media(tone[i : i + 160], i // 8)) for i in range(0, RATE, 160)]
    l16 = b"".join(base64.b64decode(f["media"]["payload"]) for f in sent)
    assert 31000 <= len(l16) <= 32000  # 1 s at 16 kHz, less the resampler's delay
    # Big-endian L16 at 16 kHz carries the 500 Hz tone...
    pcm16 = np.frombuffer(l16, dtype=">i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm16 * np.hanning(len(pcm16))))
    assert abs(np.argmax(spectrum) * 16000 / len(pcm16) - 500) < 3
    # ...and comes back to μ-law 8 kHz as the same tone.
    back = b"".join(frames.agent_audio(l16[i : i + 641]) for i in range(0, len(l16), 641))
    hz, snr = tone_in(ulaw_decode(back))
    assert abs(hz - 500) < 3 and snr > 30


@pytest.mark.anyio
async def test_fake_api_answers_and_records_commands() -> None:
    async with run_fake_telnyx_api(port=0, api_key="k") as api:
        base = api.base_url

        async def post(path: str, auth: str | None, body: bytes = b"{}") -> tuple[int, Any]:
            headers = [("content-type", "application/json")]
            if auth is not None:
                headers.append(("authorization", auth))
            req = HttpRequest(method="POST", url=base + path, headers=tuple(headers), body=body)
            response = await request(req, timeout=5, max_response_bytes=4096)
            return response.status, json.loads(response.body)

        assert await post("/v2/calls/v3%3Aab/actions/answer", "Bearer k") == (
            200,
            {"data": {"result": "ok"}},
        )
        status, answer = await post("/calls/x/actions/hangup", None)
        assert status == 401 and answer["errors"][0]["code"] == "10009"
        assert (await post("/calls/x/actions/hangup", "Bearer wrong"))[0] == 401
        assert (await post("/calls/x/actions/hangup", "Bearer k", b"[1]"))[0] == 422
        assert (await post("/elsewhere", "Bearer k"))[0] == 404
        status, answer = await post("/calls/x/actions/speak", "Bearer k", b" " * (65 * 1024))
        assert status == 413 and answer["errors"][0]["code"] == "10011"
        # It runs on our own server: its /health is the server's.
        health = await request(
            HttpRequest(method="GET", url=base + "/health", headers=(), body=b""),
            timeout=5,
            max_response_bytes=4096,
        )
        assert health.status == 200 and json.loads(health.body)["mode"] == "local"
        cmds = api.commands
        assert [(c.action, c.call_control_id, c.accepted) for c in cmds] == [
            ("answer", "v3:ab", True),
            ("hangup", "x", False),
            ("hangup", "x", False),
            ("hangup", "x", True),
        ]
        assert cmds[0].authorization == "Bearer k"
        assert (await api.wait_for("answer", 0.1)) is cmds[0]
        assert await api.wait_for("speak", 0.05) is None


@pytest.mark.anyio
async def test_webhooks_are_signed_as_telnyx_signs_them() -> None:
    """The official algorithm (§4.2), checked by the server's verifier, over raw bytes."""
    seen: list[tuple[dict[str, str], bytes]] = []

    async def handler(stream: Any) -> None:
        conn = h11.Connection(h11.SERVER)
        body = b""
        async with stream:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive())
                elif isinstance(event, h11.Request):
                    headers = {k.decode().lower(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
            seen.append((headers, body))
            await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler)
        hooks = TelnyxWebhooks(
            server=f"http://127.0.0.1:{port}",
            path="/webhooks/telnyx/voice",
            delivered_to="https://example.test/webhooks/telnyx/voice",
            key=load_signing_key(SEED),
            from_number="+15550001",
            to_number="+15550002",
            timeout=5,
            entropy=CountingEntropy(),
        )
        await hooks.post("call.initiated", direction="incoming", state="parked")
        tg.cancel_scope.cancel()
    headers, body = seen[0]
    verifier = TelnyxSignatureVerifier(PUBLIC)
    now = float(headers["telnyx-timestamp"])
    verifier.verify(headers=tuple(headers.items()), body=body, now=now)
    with pytest.raises(RemoteProtocolError):
        verifier.verify(headers=tuple(headers.items()), body=body + b" ", now=now)
    event = parse_telnyx_webhook(body)
    assert event.event_type == "call.initiated"
    assert event.call_control_id == hooks.ids.call_control_id
    assert event.call_control_id and event.call_control_id.startswith("v3:")
    assert event.payload["direction"] == "incoming" and event.payload["from"] == "+15550001"
    assert json.loads(body)["meta"]["delivered_to"].startswith("https://example.test/")


def test_usage_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--carrier", "telnyx", "--server", "http://127.0.0.1:9", "--quiet"]
    cases = [
        ([*base, "--telnyx-signing-key", "not base64!"], "not base64"),
        ([*base, "--telnyx-signing-key", base64.b64encode(b"short").decode()], "32-byte"),
        ([*base, "--provider", "echo"], "--spawn-server"),
        ([*base, "--telnyx-api-port", "70000"], "0-65535"),
    ]
    for argv, words in cases:
        assert dial_main(argv, {}) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err


# ----------------------------------------------------------- whole calls


async def _serve_and_dial(
    options: DialOptions, *, public_key: str, codec: str = "PCMU"
) -> tuple[DialReport | None, int, list[dict[str, Any]]]:
    """Patter.serve (echo agent) pointed at dial's fake API; then dial."""
    server_port = free_port()
    phone = Patter(
        telnyx_key="test",
        telnyx_public_key=public_key,
        telnyx_api_base_url=f"http://127.0.0.1:{options.telnyx_api_port}",
        webhook_url=f"127.0.0.1:{server_port}",
        telnyx_codec=codec,
    )
    ends: list[dict[str, Any]] = []
    report: DialReport | None = None
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            await tg.start(
                partial(
                    phone.serve,
                    phone.agent(provider="echo"),
                    server_port,
                    handle_signals=False,
                    on_call_end=ends.append,
                )
            )
            try:
                report = await dial(replace(options, server=f"http://127.0.0.1:{server_port}"))
                with anyio.fail_after(5):
                    while not ends:
                        await anyio.sleep(0.01)
            finally:
                phone.stop()
    return report, server_port, ends


@pytest.mark.parametrize(("anyio_backend", "codec"), [("trio", "PCMU"), ("asyncio", "L16")])
@pytest.mark.anyio
async def test_echo_call_over_telnyx(codec: str) -> None:
    api_port = free_port()
    options = DialOptions(
        carrier="telnyx",
        telnyx_api_port=api_port,
        telnyx_signing_key=SEED,
        from_number="+14155550100",
        to_number="+18005550199",
        tone_hz=300,
        tone_seconds=0.6,
        tone_burst_s=None,
        duration=2.4,
        timeout=5,
    )
    report, server_port, ends = await _serve_and_dial(options, public_key=PUBLIC, codec=codec)
    assert report is not None
    assert report.carrier == "telnyx" and report.signed and report.ended_by == "carrier"
    call_id = report.call_sid
    assert call_id.startswith("v3:")
    assert report.stream_url == f"wss://127.0.0.1:{server_port}/ws/telnyx/stream/{call_id}"

    # The server answered and started streaming through the fake API, with Bearer auth.
    commands = report.carrier_commands
    assert [c.action for c in commands] == ["answer", "streaming_start"]
    assert all(c.authorization == "Bearer test" and c.accepted for c in commands)
    assert all(c.call_control_id == call_id for c in commands)
    start = commands[1].body
    assert start["stream_url"] == report.stream_url
    assert (start["stream_codec"], start["stream_bidirectional_codec"]) == (codec, codec)
    assert start["stream_bidirectional_mode"] == "rtp"
    assert isinstance(start["stream_auth_token"], str) and start["stream_auth_token"]

    # The echo: the caller's own tone, clean, and every mark came back once.
    hz, snr = tone_in(report.audio)
    assert abs(hz - 300) < 5 and snr >= 30, (hz, snr)
    assert report.frames_received > 0
    assert len(report.marks_echoed) + report.marks_pending == report.marks_received
    assert len(ends) == 1 and ends[0]["carrier"] == "telnyx"
    assert ends[0]["caller"] == "+14155550100"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_wrong_signing_key_is_refused_403(capsys: pytest.CaptureFixture[str]) -> None:
    api_port, server_port = free_port(), free_port()
    phone = Patter(
        telnyx_key="test",
        telnyx_public_key=PUBLIC,
        telnyx_api_base_url=f"http://127.0.0.1:{api_port}",
        webhook_url=f"127.0.0.1:{server_port}",
    )
    argv = [
        *("--carrier", "telnyx", "--server", f"http://127.0.0.1:{server_port}"),
        *("--telnyx-api-port", str(api_port), "--telnyx-signing-key", OTHER_SEED, "--quiet"),
    ]
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(
                partial(
                    phone.serve, phone.agent(provider="echo"), server_port, handle_signals=False
                )
            )
            code = await anyio.to_thread.run_sync(dial_main, argv, {})
            phone.stop()
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "call.initiated webhook answered 403" in err[0]
    assert "TELNYX_PUBLIC_KEY" in err[0]


def test_spawn_server_twilio_one_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_AGENT_ID", "_AUTH_TOKEN", "_PUBLIC_KEY", "_BASE_URL"))
        and not k.startswith("PATTER_")
    }
    out = tmp_path / "heard.wav"
    argv = [
        *("--spawn-server", "--provider", "echo", "--tone", "500", "--tone-seconds", "0.6"),
        *("--duration", "2.4", "--record", str(out), "--quiet", "--dtmf", "7@1.5"),
    ]
    code = dial_main(argv, env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "(signed)" in captured.out and "ended because we sent stop" in captured.out
    # The transcript comes from the spawned server's log: the key press, once.
    assert captured.out.count("user: [DTMF 7]") == 1, captured.out
    with wave.open(str(out), "rb") as wav:
        assert wav.getframerate() == 8000
        pcm = wav.readframes(wav.getnframes())
    hz, snr = tone_in(pcm)
    assert abs(hz - 500) < 5 and snr >= 30, (hz, snr)


@pytest.mark.anyio
async def test_fake_api_on_a_busy_port_is_one_dial_error() -> None:
    import socket

    from patter_anyio.dial._errors import DialError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DialError, match=rf"^cannot listen on 127.0.0.1:{port} for the fake"):
            async with run_fake_telnyx_api(port=port):
                pass  # pragma: no cover - never entered
