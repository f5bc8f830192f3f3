"""The dial tool against the project's own server (``serve`` with the echo agent)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import anyio
import numpy as np
import pytest

from patter_anyio.dial import DialError, DialOptions, dial

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "dial-test-token"
HOST = "abc.example.test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def echo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_AGENT_ID", "_AUTH_TOKEN", "_PUBLIC_KEY", "_BASE_URL"))
        and not k.startswith("PATTER_")
    }
    env["TWILIO_AUTH_TOKEN"] = TOKEN
    log_path = tmp_path_factory.mktemp("dial") / "serve.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "patter_anyio", "serve", "--port", str(port)),
                *("--webhook-url", HOST, "--provider", "echo", "--log-level", "warning"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            env=env,
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_signed_call_is_answered_and_echoed(echo_server: int) -> None:
    report = anyio.run(
        dial,
        DialOptions(
            server=f"http://127.0.0.1:{echo_server}",
            webhook_host=HOST,
            auth_token=TOKEN,
            tone_seconds=1.6,
            duration=3.0,
            dtmf=(("1", 0.3),),
        ),
    )
    assert report.ended_by == "carrier" and report.signed
    assert report.stream_url == f"wss://{HOST}/ws/stream/{report.call_sid}"
    assert "stream_token" in report.custom_parameters
    assert report.frames_sent == 150 and report.frames_received > 0
    # Every mark the agent sent came back once (or is still playing).
    assert len(report.marks_echoed) + report.marks_pending == report.marks_received
    assert len(set(report.marks_echoed)) == len(report.marks_echoed)
    heard = np.frombuffer(report.audio, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(heard * np.hanning(len(heard))))
    assert abs(np.argmax(spectrum) * 8000 / len(heard) - 440) < 10


def test_wrong_token_is_refused(echo_server: int) -> None:
    options = DialOptions(
        server=f"http://127.0.0.1:{echo_server}", webhook_host=HOST, auth_token="nope"
    )
    with pytest.raises(DialError) as info:
        anyio.run(dial, options)
    assert "the webhook answered 403" in str(info.value) and info.value.exit_code == 1
