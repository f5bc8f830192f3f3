"""The dial tool against a fake agent on real loopback sockets (both anyio backends)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from patter_anyio.dial import DialError, DialOptions, dial, format_summary
from patter_core import CountingEntropy

from .fakes.fake_agent import fake_agent

TOKEN = "12345-test-auth-token"
HOST = "agent.example.test"
RATE = 8000


def spectrum_peak(pcm: np.ndarray) -> tuple[float, float]:
    """(peak frequency in Hz, SNR in dB: +/-3 bins around the peak against the rest)."""
    x = pcm.astype(np.float64) * np.hanning(len(pcm))
    power = np.abs(np.fft.rfft(x)) ** 2
    power[0] = 0.0
    peak = int(np.argmax(power))
    band = power[max(0, peak - 3) : peak + 4].sum()
    rest = power.sum() - band
    return peak * RATE / len(pcm), 10 * np.log10(band / max(rest, 1e-12))


def window(audio: np.ndarray, start: float, end: float) -> np.ndarray:
    return audio[round(start * RATE) : round(end * RATE)]


@pytest.mark.anyio
async def test_call_greeting_echo_barge_in_dtmf() -> None:
    with fake_agent(
        auth_token=TOKEN, public_host=HOST, greeting_hz=440, greeting_seconds=1.2
    ) as agent:
        progress = []
        report = await dial(
            DialOptions(
                server=agent.base_url,
                webhook_host=HOST,
                auth_token=TOKEN,
                from_number="+14155550100",
                to_number="+14155550199",
                tone_hz=660,
                tone_seconds=2.0,
                tone_burst_s=None,
                tone_amplitude=0.2,
                duration=2.6,
                dtmf=(("5", 0.5),),
                barge_in_at=0.8,
                barge_in_seconds=0.3,
                jitter_buffer_s=0.1,
                entropy=CountingEntropy(),
                progress=progress.append,
            )
        )
        assert agent.done.wait(5)

    # The webhook: fields as Twilio sends them, both signatures valid
    # by the official validator.
    assert agent.webhook_signature_ok == [True] and agent.ws_signature_ok == [True]
    form = agent.webhook_forms[0]
    assert form["CallSid"] == report.call_sid and len(report.call_sid) == 34
    assert report.call_sid.startswith("CA") and report.stream_sid.startswith("MZ")
    assert (form["Direction"], form["CallStatus"], form["ApiVersion"]) == (
        "inbound",
        "ringing",
        "2010-04-01",
    )
    assert (form["From"], form["To"], form["Caller"], form["Called"]) == (
        "+14155550100",
        "+14155550199",
        "+14155550100",
        "+14155550199",
    )
    assert form["FromCity"] == "" and form["AccountSid"].startswith("AC")
    assert agent.ws_paths == [f"/ws/stream/{report.call_sid}"]
    assert report.stream_url == f"wss://{HOST}/ws/stream/{report.call_sid}"

    # The stream frames, numbered as Twilio numbers them.
    assert agent.frames[0] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = agent.start
    assert start is not None and start["sequenceNumber"] == "1"
    assert start["start"]["customParameters"] == {
        "caller": "+14155550100",
        "callee": "+14155550199",
        "stream_token": "tok-123",
    }
    assert report.custom_parameters == start["start"]["customParameters"]
    assert start["start"]["tracks"] == ["inbound"]
    assert start["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }
    numbered = [int(f["sequenceNumber"]) for f in agent.frames[1:]]
    assert numbered == list(range(1, len(numbered) + 1))
    media = [f for f in agent.frames if f["event"] == "media"]
    assert len(media) == report.frames_sent == 130
    assert [m["media"]["chunk"] for m in media[:3]] == ["1", "2", "3"]
    assert [m["media"]["timestamp"] for m in media[:3]] == ["0", "20", "40"]
    assert all(len(m["media"]["payload"]) == 216 for m in media)  # 160 bytes, base64
    assert agent.frames[-1]["event"] == "stop" and agent.stopped

    # DTMF at the requested time.
    assert len(agent.dtmf) == 1
    at, frame = agent.dtmf[0]
    assert frame["dtmf"] == {"track": "inbound_track", "digit": "5"}
    assert abs(at - 0.5) < 0.15
    assert report.dtmf_sent[0][0] == "5" and abs(report.dtmf_sent[0][1] - 0.5) < 0.1

    # Marks: every mark echoed exactly once; the clear flushed the greeting's.
    echoed = Counter(name for _, name in agent.mark_echoes)
    assert echoed == Counter(agent.marks_sent) and set(echoed.values()) == {1}
    assert report.marks_pending == 0 and len(report.marks_echoed) == len(agent.marks_sent)
    greeting_echo = dict((name, t) for t, name in agent.mark_echoes)["greeting"]
    assert 0.75 < greeting_echo < 1.0  # flushed by the clear, not after 1.2 s of play
    assert report.clears_received == 1 and len(agent.clears_sent) == 1
    assert report.barge_in_reaction_s is not None and 0 <= report.barge_in_reaction_s < 0.3

    # What the caller heard: the greeting until the barge-in, silence while
    # the barge-in tone played (the rest of the greeting was cleared), then
    # the echo of the caller's own tone.
    audio = np.frombuffer(report.audio, dtype="<i2")
    assert len(audio) == round(2.6 * RATE)
    freq, snr = spectrum_peak(window(audio, 0.2, 0.7))
    assert abs(freq - 440) < 20 and snr >= 30, (freq, snr)
    quiet = window(audio, 0.85, 1.15).astype(np.float64)
    assert np.sqrt(np.mean(quiet**2)) < 50
    freq, snr = spectrum_peak(window(audio, 1.5, 2.0))
    assert abs(freq - 660) < 20 and snr >= 30, (freq, snr)

    # Summary figures.
    assert report.first_audio_s is not None and report.first_audio_s < 0.3
    assert report.frames_received >= 12 and report.audio_received_s > 2.0
    assert not np.isnan(report.gap_ms[0]) and not np.isnan(report.late_ms[2])
    assert report.ended_by == "carrier" and report.signed and report.transcript == ()
    assert [round(p.elapsed_s) for p in progress] == [1, 2]
    summary = format_summary(report, record_path="out.wav")
    for needle in ("first agent audio", "p95", "18 echoed", "clear after", "5 at 0.5", "out.wav"):
        assert needle in summary


@pytest.mark.anyio
async def test_unsigned_call_and_agent_hangs_up_quietly() -> None:
    with fake_agent() as agent:
        report = await dial(
            DialOptions(server=agent.base_url, tone_seconds=0.2, duration=0.3, progress=None)
        )
    assert agent.webhook_signature_ok == [True] and agent.ws_signature_ok == [True]  # no header
    assert not report.signed and report.frames_sent == 15
    assert report.first_audio_s is not None  # the 0.2 s tone came back as one chunk or more
    assert report.stream_url.startswith(f"wss://127.0.0.1:{agent.port}/ws/stream/CA")


@pytest.mark.parametrize(
    ("config", "options", "expected"),
    [
        (
            {"auth_token": TOKEN},
            {"auth_token": "wrong"},
            "the webhook answered 403: invalid signature (the server checks the signature over "
            "its own --webhook-url: give dial the same --webhook-url, and --auth-token its "
            "TWILIO_AUTH_TOKEN)",
        ),
        ({"twiml": "<Response><Say>hi</Say></Response>"}, {}, "the TwiML has no <Stream>"),
        (
            {"twiml": '<Response><Start><Stream url="wss://x/y"/></Start></Response>'},
            {},
            "only <Start><Stream>",
        ),
        (
            {"twiml": '<Response><Connect><Stream url="ws://x/y"/></Connect></Response>'},
            {},
            "only connects to wss://",
        ),
        ({"twiml": "not xml <"}, {}, "not TwiML"),
        ({"refuse_ws_status": 404}, {}, "was refused: 404 no stream here"),
    ],
)
def test_failed_calls_give_one_line(
    config: dict[str, object], options: dict[str, object], expected: str
) -> None:
    import anyio

    with fake_agent(**config) as agent:
        opts = DialOptions(server=agent.base_url, duration=0.2, **options)  # type: ignore[arg-type]
        with pytest.raises(DialError) as info:
            anyio.run(dial, opts)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == 1


def test_unreachable_server() -> None:
    import socket

    import anyio

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(DialError) as info:
            anyio.run(dial, DialOptions(server=f"http://127.0.0.1:{port}", timeout=2.0))
    assert "cannot reach the server" in str(info.value) and info.value.exit_code == 1


def test_bad_options_are_usage_errors() -> None:
    import anyio

    for opts in (
        DialOptions(server="ftp://x"),
        DialOptions(dtmf=(("Z", 1.0),)),
        DialOptions(tone_hz=5000),
        DialOptions(duration=-1),
        DialOptions(webhook_host="a/b"),
    ):
        with pytest.raises(DialError) as info:
            anyio.run(dial, opts)
        assert info.value.exit_code == 2


@pytest.mark.parametrize("code", [1000, 1011])
def test_agent_hangs_up_first(code: int) -> None:
    import anyio

    with fake_agent(close_after_start=code) as agent:
        report = anyio.run(dial, DialOptions(server=agent.base_url, duration=2.0))
    assert report.ended_by == "agent" and report.close_code == code
    assert report.duration_s < 1.0 and len(report.audio) == 2 * round(report.duration_s * 8000)
    assert "the agent closed the stream" in format_summary(report)


def test_agent_sending_garbage_fails_the_call() -> None:
    import anyio

    with fake_agent(garbage_after_start=True) as agent, pytest.raises(DialError) as info:
        anyio.run(dial, DialOptions(server=agent.base_url, duration=2.0))
    assert "the agent sent a bad frame" in str(info.value) and info.value.exit_code == 1
