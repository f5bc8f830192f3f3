"""``dial`` on the command line: flag errors, bad WAVs, a whole recorded call."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from patter_anyio.dial import build_dial_parser, dial_main, register_dial

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


# -- what a new user meets -------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--dtmf", "5@2", "--duration", "2"],
            "--dtmf 5@2: after the call ends at 2 s (give a longer --duration)",
        ),
        (
            # No --duration: the 3 s test signal plus 2 s.
            ["--dtmf", "1@1", "--dtmf", "9@6", "--barge-in-at", "7"],
            "--dtmf 9@6, --barge-in-at 7: after the call ends at 5 s (give a longer --duration)",
        ),
    ],
)
def test_events_after_the_call_ends_are_refused_before_dialling(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens on port 9: the check comes before any connection.
    assert dial_main(["--server", "http://127.0.0.1:9", "--quiet", *argv], {}) == 2
    assert one_error_line(capsys) == f"patter-local: error: {message}"


def test_an_empty_wav_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.wav"
    with wave.open(str(empty), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
    assert dial_main(["--audio", str(empty)], {}) == 2
    assert one_error_line(capsys) == (
        f"patter-local: error: {empty}: the file holds no audio (0 samples)"
    )


def test_an_unwritable_recording_path_fails_before_dialling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no" / "such" / "dir.wav"
    assert dial_main(["--server", "http://127.0.0.1:9", "--record", str(missing)], {}) == 2
    assert one_error_line(capsys) == (
        f"patter-local: error: cannot write {missing}: no such directory {missing.parent}"
    )
    assert dial_main(["--server", "http://127.0.0.1:9", "--record", str(tmp_path)], {}) == 2
    assert one_error_line(capsys) == f"patter-local: error: cannot write {tmp_path}: it is a directory"


def test_ctrl_c_during_dial_prints_the_partial_summary_and_writes_the_recording(
    tmp_path: Path,
) -> None:
    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "partial.wav"
    with fake_agent(auth_token="tok") as agent:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "patter_anyio", "dial", "--server", agent.base_url),
                *("--duration", "30", "--record", str(out), "--quiet"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root), "TWILIO_AUTH_TOKEN": "tok"},
        )
        try:
            deadline = time.monotonic() + 20
            while not agent.ws_signature_ok:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "ended because we hung up early (Ctrl-C)" in stdout, stdout
    assert "frames received" in stdout and f"recording           {out}" in stdout
    with wave.open(str(out), "rb") as w:
        seconds = w.getnframes() / w.getframerate()
    assert 0.5 < seconds < 10, seconds


def _dial_process(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parent.parent
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_AUTH_TOKEN", "_PUBLIC_KEY", "_AGENT_ID", "_BASE_URL"))
    }
    return subprocess.run(
        [sys.executable, "-m", "patter_anyio", "dial", *argv],
        capture_output=True,
        text=True,
        cwd=root,
        env={**clean, "PYTHONPATH": str(root), **env},
        timeout=120,
    )


def test_spawn_server_uses_the_echo_agent_whatever_key_the_shell_has() -> None:
    # The base URL leads nowhere: had the key switched the agent to OpenAI,
    # the call would fail.
    result = _dial_process(
        "--spawn-server", "--duration", "4", "--quiet",
        env={"OPENAI_API_KEY": "sk-from-the-shell", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "  agent               the echo agent (spawned server; --provider chooses another)" in out
    assert "  frames received     " in out and "frames received     0 " not in out
    assert "\n  transcript          none\n" in out + "\n"
    assert "agent failed" not in out


def test_spawn_server_shows_a_provider_failure_and_exits_1() -> None:
    result = _dial_process(
        "--spawn-server", "--provider", "openai", "--duration", "3", "--quiet",
        env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
    )  # fmt: skip
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "  agent               openai (spawned server)" in result.stdout
    failed = [line for line in result.stdout.splitlines() if "agent failed" in line]
    assert len(failed) == 1 and failed[0].startswith(
        "  agent failed        the provider failed: could not connect"
    ), result.stdout
    assert "Traceback" not in result.stderr
