"""End to end, the command line: ``python -m patter_anyio serve`` as a real process.

The echo agent needs no keys, so the process serves a whole call: a signed
voice webhook, a signed media stream from the ``websockets`` carrier, the
caller's tone echoed back. SIGINT then stops it cleanly. Bad flags and a
busy port are one line on stderr, never a traceback.
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import pytest

from tests.fakes.http_fakes import (
    TWILIO_TOKEN,
    WEBHOOK_HOST,
    analyse_tone,
    http_get,
    incoming_call,
    twilio_stream,
    ulaw_frames,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
CALLER_HZ = 600.0
# How long a stop with no live call may take (the server's grace period
# applies only to calls still running).
STOP_SECONDS = 5.0


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("TWILIO_", "TELNYX_", "OPENAI_", "ELEVENLABS_", "DEEPGRAM_", "PATTER_")
        )
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _serve(
    tmp_path: pathlib.Path, *argv: str, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], pathlib.Path]]:
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "patter_anyio", "serve", *argv],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            env=_env(**env),
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 20
        while "listening on" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        yield proc, log_path
    finally:
        if proc.poll() is None:
            proc.kill()  # only our own child, by its handle
            proc.wait()


@pytest.mark.anyio
async def test_cli_serves_an_echo_call_then_stops_on_sigint(
    anyio_backend: str, tmp_path: pathlib.Path
) -> None:
    backend = anyio_backend  # the server process runs on the same loop as the test
    port = _free_port()
    with _serve(
        tmp_path,
        "--port",
        str(port),
        "--backend",
        backend,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        PATTER_WEBHOOK_URL=WEBHOOK_HOST,
    ) as (proc, log_path):
        status, body = await http_get(port, "/health")
        assert (status, body) == (200, b'{"status": "ok", "mode": "local", "calls": 0, "version": "0.1.0"}')

        call_sid = "CA" + "e" * 32
        params = await incoming_call(port, call_sid)
        assert set(params) == {"caller", "callee", "stream_token"}
        async with twilio_stream(port, call_sid, params) as carrier:
            await carrier.start()
            # Speech, then enough silence for the echo agent's turn to end.
            await carrier.media(ulaw_frames(CALLER_HZ, 600), pace=0.02)
            await carrier.media([b"\xff" * 160] * 40, pace=0.02)
            # All 600 ms of it (8 bytes of μ-law a millisecond), every chunk marked.
            await carrier.wait_for(
                lambda log: (
                    sum(map(len, log.audio_by_item.values())) >= 8 * 600 and not log.unmarked
                ),
                10,
                "the whole echo",
            )
            await carrier.stop()
            assert await carrier.wait_closed() == 1000
        (item,) = carrier.log.audio_by_item
        report = analyse_tone(carrier.log.item_pcm(item), 8000)
        assert abs(report.peak_hz - CALLER_HZ) < 5, report
        assert report.snr_db >= 30, report
        assert 0.55 <= report.seconds <= 0.65, report

        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = await anyio.to_thread.run_sync(lambda: proc.wait(timeout=STOP_SECONDS + 5))
        took = time.monotonic() - started
    err = log_path.read_text()
    assert code == 0, err
    assert took < STOP_SECONDS, took
    assert "Traceback" not in err
    assert ": stopped" in err


def _run(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "patter_anyio", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(**env),
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["serve", "--bogus"], {}, "unrecognized arguments: --bogus"),
        (["serve", "--port", "http"], {}, "--port"),
        (["serve", "--provider", "gemini"], {}, "invalid choice: 'gemini'"),
        (["serve", "--workers", "0"], {}, "workers"),
        (["serve", "--webhook-url", "https://a.b/path"], {}, "--webhook-url"),
        (["serve", "--provider", "pipeline"], {}, "OPENAI_API_KEY"),
        (["serve", "--recording"], {}, "TWILIO_ACCOUNT_SID"),
        (["serve"], {"TWILIO_AUTH_TOKEN": "t"}, "PATTER_WEBHOOK_URL"),
        (["serve"], {"OPENAI_BASE_URL": "ftp://x"}, "OPENAI_BASE_URL"),
        (["launch"], {}, "invalid choice: 'launch'"),
        ([], {}, "give a command: serve (run the server) or dial"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv: list[str], env: dict[str, str], needle: str) -> None:
    result = _run(*argv, **env)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("patter-local: error: ") and needle in lines[0], lines[0]


def test_busy_port_exits_2_with_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # At the default log level: nothing is logged before the bind fails.
        result = _run("serve", "--port", str(port))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"patter-local: error: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in lines[0]
