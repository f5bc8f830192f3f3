"""``dial`` on the command line: flag errors, bad WAVs, a whole recorded call."""

from __future__ import annotations

import argparse
import wave
from pathlib import Path

import numpy as np
import pytest

from patter_anyio._dial import build_dial_parser, dial_main, register_dial

from .fakes.fake_agent import fake_agent


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("patter-local: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--dtmf", "x"], "DIGIT@SECONDS"),
        (["--dtmf", "5@-1"], ">= 0"),
        (["--tone", "5000"], "4000 Hz"),
        (["--duration", "0"], "positive"),
        (["--duration", "nan"], "positive"),
        (["--audio", "a.wav", "--tone", "440"], "not allowed with"),
        (["--carrier", "sip"], "invalid choice"),
        (["--no-such-flag"], "unrecognized"),
        (["--server", "ftp://x", "--quiet"], "--server must be an http"),
    ],
)
def test_flag_errors_exit_2_with_one_line(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert dial_main(argv, {}) == 2
    assert needle in one_error_line(capsys)


def test_bad_wav_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    assert dial_main(["--audio", str(junk)], {}) == 2
    assert "not a PCM WAV" in one_error_line(capsys)
    assert dial_main(["--audio", str(tmp_path / "missing.wav")], {}) == 2
    assert "no such file" in one_error_line(capsys)
    eight_bit = tmp_path / "8bit.wav"
    with wave.open(str(eight_bit), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(b"\x80" * 800)
    assert dial_main(["--audio", str(eight_bit)], {}) == 2
    assert "only 16-bit" in one_error_line(capsys)


def test_unreachable_server_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        code = dial_main(["--server", f"http://127.0.0.1:{port}", "--quiet"], {})
    assert code == 1
    assert "cannot reach the server" in one_error_line(capsys)


def test_register_dial_on_a_foreign_parser() -> None:
    parser = argparse.ArgumentParser(prog="x")
    register_dial(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dial", "--dtmf", "1@0.5", "--dtmf", "#@1", "--tone", "300"])
    assert args.dtmf == [("1", 0.5), ("#", 1.0)] and args.tone == 300.0
    assert callable(args.handler)


def test_whole_call_from_a_stereo_wav_records_what_came_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 0.6 s of a 500 Hz tone at 16 kHz stereo: read, mixed down, resampled
    # to 8 kHz, sent; the agent echoes it; the recording must hold it.
    rate = 16000
    t = np.arange(round(0.6 * rate)) / rate
    tone = np.round(0.25 * 32767 * np.sin(2 * np.pi * 500 * t)).astype("<i2")
    stereo = np.stack([tone, tone], axis=1).tobytes()
    src = tmp_path / "in.wav"
    with wave.open(str(src), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(stereo)
    out = tmp_path / "out.wav"
    with fake_agent(auth_token="tok") as agent:
        env = {"TWILIO_AUTH_TOKEN": "tok"}
        argv = ["--server", agent.base_url, "--audio", str(src), "--duration", "1.2"]
        code = dial_main([*argv, "--record", str(out), "--backend", "trio"], env)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert agent.webhook_signature_ok == [True] and agent.ws_signature_ok == [True]
    assert "(signed)" in captured.out and "frames sent         60" in captured.out
    assert "transcript          none" in captured.out
    assert captured.err.count("\n") >= 1  # one progress line per second (not a TTY)
    with wave.open(str(out), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        heard = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert len(heard) == round(1.2 * 8000)
    loud = heard[np.abs(heard) > 1000]
    assert len(loud) > 0.4 * 8000 * 0.5  # most of the 0.6 s came back
    spectrum = np.abs(np.fft.rfft(heard.astype(np.float64)))
    assert abs(np.argmax(spectrum) * 8000 / len(heard) - 500) < 10


def test_parser_has_help_for_every_flag() -> None:
    text = build_dial_parser().format_help()
    assert "dial" in text
