"""The command line: configuration (pure) and real processes (short-lived)."""

from __future__ import annotations

import importlib.util
import logging
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from patter_anyio import ConfigError, Patter
from patter_anyio._config import ServerConfig, config_from_args
from patter_core import CountingEntropy

# The test extra installs uvloop where it builds; `serve` then runs on it.
UVLOOP = importlib.util.find_spec("uvloop") is not None
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse(*argv: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return config_from_args(["serve", *argv], env or {}, entropy=CountingEntropy())


def test_defaults() -> None:
    command, config = parse()
    assert command == "serve"
    assert (config.host, config.port, config.provider, config.workers) == (
        "127.0.0.1",
        8000,
        "echo",
        1,
    )
    assert config.stream_secret_generated and len(config.stream_secret) == 64
    assert _block(config) == [
        (logging.INFO, "patter-local 0.1.0 listening on http://127.0.0.1:8000"),
        *([(logging.INFO, "event loop: uvloop")] if UVLOOP else []),
        (logging.INFO, "agent: the echo agent: no provider key set (it repeats what the caller says)"),
        (
            logging.INFO,
            "webhook URLs: set --webhook-url (PATTER_WEBHOOK_URL) to your public host, e.g. "
            "the one `ngrok http 8000` prints; until then stream URLs follow the Host header",
        ),
        (logging.INFO, "signatures: Twilio and Telnyx off"),
        (
            logging.INFO,
            "stream tokens: a per-process secret (set PATTER_STREAM_SECRET to share it "
            "between instances)",
        ),
        (logging.INFO, "Ctrl-C to stop (twice to end live calls at once)"),
    ]


def test_the_event_loop_is_uvloop_when_installed_unless_asked_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert parse()[1].loop == ("uvloop" if UVLOOP else "asyncio")
    assert parse("--loop", "asyncio")[1].loop == "asyncio"
    assert parse("--backend", "trio")[1].loop is None
    with pytest.raises(ConfigError, match=r"^--loop uvloop needs --backend asyncio$"):
        parse("--loop", "uvloop", "--backend", "trio")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a)
    )
    assert parse()[1].loop == "asyncio"
    with pytest.raises(ConfigError, match=r"pip install 'patter-local\[fast\]'"):
        parse("--loop", "uvloop")


def test_provider_audio_flag() -> None:
    env = {"OPENAI_API_KEY": "sk-x"}
    assert parse(env=env)[1].provider_audio == "pcmu"
    _, config = parse("--provider-audio", "pcm24k", env=env)
    assert config.provider_audio == "pcm24k"
    from patter_anyio._cli import runtime_from_config

    assert runtime_from_config(config).agent.provider_audio == "pcm24k"
    result = _run("serve", "--provider-audio", "pcm24k")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "patter-local: error: --provider-audio applies to --provider openai, not echo"
    )


def test_a_loop_that_cannot_run_exits_2_with_one_line() -> None:
    result = _run("serve", "--loop", "uvloop", "--backend", "trio")
    assert result.returncode == 2
    assert result.stderr.strip() == "patter-local: error: --loop uvloop needs --backend asyncio"


def _block(config: ServerConfig) -> list[tuple[int, str]]:
    from patter_anyio._cli import runtime_from_config
    from patter_anyio._console import describe_agent, startup_lines

    agent = describe_agent(
        runtime_from_config(config).agent, elevenlabs_agent_id=config.providers.elevenlabs_agent_id
    )
    return startup_lines(config.startup_info(port=config.port, agent=agent))


def test_flags_and_environment() -> None:
    _, config = parse(
        "--host", "0.0.0.0", "--port", "9000", "--webhook-url", "https://abc.ngrok.app/",
        "--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "127.0.0.1", "--workers", "3",
        "--recording", "--voicemail-message", "Call me back", "--log-level", "debug",
        env={
            "OPENAI_API_KEY": "sk-x",
            "TWILIO_ACCOUNT_SID": "AC123",
            "TWILIO_AUTH_TOKEN": "tok",
            "PATTER_STREAM_SECRET": "0123456789abcdef0123",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/",
        },
    )  # fmt: skip
    assert config.carriers.webhook_host == "abc.ngrok.app"
    assert config.port == 9000 and config.workers == 3 and config.reuse_port
    assert config.provider == "openai"  # default when its key is set
    assert config.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert config.stream_secret == "0123456789abcdef0123" and not config.stream_secret_generated
    assert config.providers.openai_base_url == "http://127.0.0.1:9"
    assert config.log_level == "DEBUG" and config.recording
    assert "sk-x" not in repr(config) and "tok" not in repr(config)
    _, config = parse(env={"PATTER_WEBHOOK_URL": "example.com:8443"})
    assert config.carriers.webhook_host == "example.com:8443"


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["--port", "70000"], {}, "port must be 1-65535"),
        (["--port", "0"], {}, "port must be 1-65535"),
        (["--workers", "0"], {}, "workers"),
        (["--provider", "openai"], {}, "OPENAI_API_KEY"),
        (["--provider", "elevenlabs"], {}, "ELEVENLABS_AGENT_ID"),
        (["--provider", "pipeline"], {}, "OPENAI_API_KEY"),
        (["--recording"], {}, "TWILIO_ACCOUNT_SID"),
        (["--provider", "gemini"], {}, "invalid choice"),
        (["--webhook-url", "https://a.b/path"], {}, "--webhook-url"),
        (["--trusted-proxy", "not-an-ip"], {}, "--trusted-proxy"),
        (["--stream-secret", "short"], {}, "at least 16"),
        ([], {"TWILIO_AUTH_TOKEN": "t"}, "PATTER_WEBHOOK_URL"),
        ([], {"TELNYX_PUBLIC_KEY": "bm90IGEga2V5"}, "TELNYX_PUBLIC_KEY"),
        ([], {"OPENAI_BASE_URL": "ftp://x"}, "OPENAI_BASE_URL"),
        (["--bogus"], {}, "unrecognized"),
    ],
)
def test_bad_settings_raise_config_error(argv: list[str], env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(*argv, env=env)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_AUTH_TOKEN", "_PUBLIC_KEY"))
    }
    env.pop("ELEVENLABS_AGENT_ID", None)
    env["PYTHONPATH"] = ROOT
    return env


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "patter_anyio", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(),
        cwd=ROOT,
    )


def test_voicemail_message_past_twilios_inline_twiml_limit_is_refused() -> None:
    twilio = {"TWILIO_ACCOUNT_SID": "AC123", "TWILIO_AUTH_TOKEN": "tok"}
    with pytest.raises(ConfigError, match=r"--voicemail-message is too long.*Twilio allows 4000"):
        parse("--webhook-url", "abc.ngrok.app", "--voicemail-message", "x" * 5000, env=twilio)
    _, config = parse(
        "--webhook-url", "abc.ngrok.app", "--voicemail-message", "x" * 3000, env=twilio
    )
    assert config.voicemail_message == "x" * 3000


def test_bad_port_exits_2_with_one_line() -> None:
    result = _run("serve", "--port", "70000")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "port must be 1-65535" in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_key_exits_2() -> None:
    result = _run("serve", "--provider", "openai")
    assert result.returncode == 2
    assert result.stderr.strip() == "patter-local: error: --provider openai needs OPENAI_API_KEY"


def test_help_lists_flags_and_environment() -> None:
    result = _run("serve", "--help")
    assert result.returncode == 0
    for needle in (
        "--webhook-url",
        "--workers",
        "--trusted-proxy",
        "TWILIO_AUTH_TOKEN",
        "DEEPGRAM_BASE_URL",
    ):
        assert needle in result.stdout
    assert _run("--help").returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_health(port: int, proc: subprocess.Popen[str]) -> bytes:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                return bytes(resp.read())
        except OSError:
            time.sleep(0.1)
    raise AssertionError("server did not come up")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_health_then_sigterm(workers: str, tmp_path: pathlib.Path) -> None:
    port = _free_port()
    log_path = tmp_path / "stderr.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "patter_anyio",
                "serve",
                "--port",
                str(port),
                "--workers",
                workers,
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            text=True,
            env=_env(),
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 15
        while log_path.read_text().count("listening on") < int(workers):
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        for _ in range(4):
            assert _wait_health(port, proc) == b'{"status": "ok", "mode": "local", "calls": 0, "version": "0.1.0"}'
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = log_path.read_text()
    assert proc.returncode == 0, err
    assert "signatures: Twilio and Telnyx off" in err and "WARNING" not in err
    assert err.count("listening on") == int(workers)
    assert err.count("event loop: uvloop") == (int(workers) if UVLOOP else 0)
    assert err.count(": stopped") == int(workers)


def test_sigterm_with_a_live_call_drains_then_ends_it_as_server_shutdown(
    tmp_path: pathlib.Path,
) -> None:
    port = _free_port()
    log_path = tmp_path / "stderr.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "patter_anyio", "serve"),
                *("--port", str(port), "--shutdown-grace", "1"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            text=True,
            env=_env(),
            cwd=ROOT,
        )
    _wait_health(port, proc)
    caller = subprocess.Popen(
        [
            *(sys.executable, "-m", "patter_anyio", "dial"),
            *("--server", f"http://127.0.0.1:{port}", "--duration", "20", "--quiet"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 15
        while "call started" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        time.sleep(0.3)
        # Draining: the health check says so while the call goes on.
        with pytest.raises(urllib.error.HTTPError) as draining:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
        assert draining.value.code == 503
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - began >= 0.9  # the grace time, then the end
        caller.wait(timeout=15)
    finally:
        for p in (proc, caller):
            if p.poll() is None:
                p.kill()
                p.wait()
    log = log_path.read_text()
    assert log.count("call ended") == 1 and "reason=server_shutdown" in log, log


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({}, "echo"),
        ({"OPENAI_API_KEY": "sk-x"}, "openai"),
        ({"ELEVENLABS_AGENT_ID": "agent_1"}, "elevenlabs"),
        ({"OPENAI_API_KEY": "sk-x", "ELEVENLABS_AGENT_ID": "agent_1"}, "openai"),
    ],
)
def test_cli_and_library_pick_the_same_default_provider(env: dict[str, str], want: str) -> None:
    _, config = parse(env=env)
    assert config.provider == want
    library = Patter(
        openai_key=env.get("OPENAI_API_KEY"), elevenlabs_agent_id=env.get("ELEVENLABS_AGENT_ID")
    )
    assert library.agent().provider == want
