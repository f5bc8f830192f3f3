"""Two instances behind a real nginx (deploy/nginx.conf), then one drained mid-call.

Needs Debian's ``nginx`` package (``.ci/run`` installs it). Everything runs on
127.0.0.1: two ``patter-local serve`` processes with the echo agent and one
shared stream secret, nginx in front with the repository's own config (only
its ports and pid file rewritten), and ``dial`` playing Twilio through nginx.

What it shows: calls spread over both instances, a webhook answered by one
and its stream served by the other; on SIGTERM the drained instance keeps its
live calls until they end by themselves, while every new call lands on the
other one; no caller sees a failure, and each call ends exactly once.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECRET = "nginx-test-shared-secret-0123456789"

nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
pytestmark = pytest.mark.skipif(
    nginx is None and not os.environ.get("PATTER_REQUIRE_NGINX"),
    reason="Debian's nginx package is not installed (.ci/run installs it)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on {port}")


def http_get(port: int, path: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def nginx_config(listen: int, upstreams: tuple[int, int], workdir: Path) -> str:
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    text = text.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    text = text.replace("patter-1:8000", f"127.0.0.1:{upstreams[0]}")
    text = text.replace("patter-2:8000", f"127.0.0.1:{upstreams[1]}")
    text = re.sub(r"^pid .*;$", f"pid {workdir}/nginx.pid;", text, flags=re.M)
    return text.replace("worker_processes auto;", "worker_processes 1;")


def dial(nginx_port: int, seconds: float, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "patter_anyio",
            "dial",
            "--server",
            f"http://127.0.0.1:{nginx_port}",
            "--duration",
            str(seconds),
            "--tone-seconds",
            "0.5",
            "--quiet",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


def calls_ended(log: Path) -> list[tuple[str, str]]:
    return re.findall(r"call ended call=(\S+) reason=(\S+)", log.read_text())


def test_two_instances_behind_nginx_and_a_drain(tmp_path: Path) -> None:
    ports = (free_port(), free_port())
    listen = free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_AUTH_TOKEN"))}
    env.update(PATTER_STREAM_SECRET=SECRET, PYTHONUNBUFFERED="1")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    servers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "patter_anyio",
                "serve",
                "--provider",
                "echo",
                "--port",
                str(port),
                "--webhook-url",
                f"127.0.0.1:{listen}",
                "--trusted-proxy",
                "127.0.0.1",
                "--shutdown-grace",
                "30",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        for port, log in zip(ports, logs, strict=True)
    ]
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_config(listen, ports, tmp_path))
    assert nginx is not None
    proxy = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
        stdout=(tmp_path / "nginx.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    dials: list[subprocess.Popen[bytes]] = []
    try:
        for port, proc in zip(ports, servers, strict=True):
            wait_port(port, proc, "instance")
        wait_port(listen, proxy, "nginx")
        assert http_get(listen, "/health")[0] == 200

        # Ten short calls through nginx, five at a time.
        for batch in range(2):
            group = [dial(listen, 3.0, tmp_path / f"dial-{batch}-{i}.log") for i in range(5)]
            dials += group
            for i, proc in enumerate(group):
                log = tmp_path / f"dial-{batch}-{i}.log"
                assert proc.wait(60) == 0, log.read_text() + (tmp_path / "nginx.log").read_text()
        # nginx alternates requests: a call's webhook and its stream may land
        # on either instance, so each serves webhooks or streams or both.
        served = [len(re.findall(r"incoming call|stream open", log.read_text())) for log in logs]
        assert all(served), served

        # Five long calls, then SIGTERM to an instance while it carries some.
        long_calls = [dial(listen, 6.0, tmp_path / f"dial-long-{i}.log") for i in range(5)]
        dials += long_calls
        deadline = time.monotonic() + 20
        victim = None
        while victim is None and time.monotonic() < deadline:
            for index, port in enumerate(ports):
                body = http_get(port, "/health")[1]
                if int(re.findall(rb'"calls": (\d+)', body)[0]):
                    victim = index
                    break
            time.sleep(0.1)
        assert victim is not None, "an instance has live calls when it is drained"
        other = 1 - victim
        ended_before = len(calls_ended(logs[victim]))
        servers[victim].send_signal(signal.SIGTERM)
        time.sleep(0.3)
        status, body = http_get(ports[victim], "/health")
        assert status == 503 and b'"draining"' in body

        # New calls while the victim drains: all of them land on the other.
        new_calls = [dial(listen, 3.0, tmp_path / f"dial-new-{i}.log") for i in range(5)]
        dials += new_calls
        for proc in long_calls + new_calls:
            assert proc.wait(60) == 0, proc.args
        # The victim finished its live calls by themselves, then exited cleanly.
        assert servers[victim].wait(30) == 0
        assert servers[other].poll() is None
    finally:
        for proc in [*dials, *servers, proxy]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*servers, proxy]:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()

    ended = [calls_ended(log) for log in logs]
    everyone = [call for per in ended for call, _ in per]
    # Twenty calls, each ended exactly once, none of them by the shutdown.
    assert len(everyone) == 20 and len(set(everyone)) == 20, Counter(everyone)
    assert {reason for per in ended for _, reason in per} == {"carrier_stop"}
    assert ended[victim][ended_before:], "the victim's live calls finished during the drain"
    # The new calls all went to the other: the victim took nothing new.
    text = logs[victim].read_text()
    drain_at = text.index("draining:")
    assert "incoming call" not in text[drain_at:] and "stream open" not in text[drain_at:]
    # Webhook on one instance, stream on the other, for some call.
    webhooks = {m: i for i, log in enumerate(logs) for m in re.findall(r"incoming call call=(\S+)", log.read_text())}
    streams = {m: i for i, log in enumerate(logs) for m in re.findall(r"stream open carrier=\S+ call=(\S+)", log.read_text())}
    assert set(webhooks) == set(streams) == set(everyone)
    assert any(webhooks[c] != streams[c] for c in everyone)
