"""What a new user sees: the start-up block, Ctrl-C, credentials from the
environment, bind errors and the validation messages."""

from __future__ import annotations

import base64
import errno
import logging
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from typing import Any

import anyio
import pytest
from nacl.signing import SigningKey

from patter_anyio import InvalidOption, Patter
from patter_anyio._config import config_from_args
from patter_anyio._console import (
    BindError,
    StartupInfo,
    bind_problem,
    describe_agent,
    startup_lines,
)
from patter_core import CountingEntropy
from patter_core.providers._models import REALTIME_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_AUTH_TOKEN", "_PUBLIC_KEY", "_ACCOUNT_SID"))
        and k not in ("ELEVENLABS_AGENT_ID", "PATTER_WEBHOOK_URL")
    }
    env["PYTHONPATH"] = ROOT
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "patter_anyio", *argv],
        capture_output=True,
        text=True,
        env=env or _env(),
        cwd=ROOT,
        timeout=60,
    )


def _block(argv: list[str], env: dict[str, str]) -> list[tuple[int, str]]:
    from patter_anyio._cli import runtime_from_config

    # The event loop's line (with uvloop installed) is test_cli_serve's.
    _, config = config_from_args(
        ["serve", "--loop", "asyncio", *argv], env, entropy=CountingEntropy()
    )
    agent = describe_agent(
        runtime_from_config(config).agent, elevenlabs_agent_id=config.providers.elevenlabs_agent_id
    )
    return startup_lines(config.startup_info(port=config.port, agent=agent))


# --------------------------------------------------------------- the start block
def test_block_with_a_provider_and_the_webhook_urls_to_paste() -> None:
    env = {
        "OPENAI_API_KEY": "sk-x",
        "TWILIO_ACCOUNT_SID": "AC1",
        "TWILIO_AUTH_TOKEN": "tok",
        "PATTER_STREAM_SECRET": "0123456789abcdef0123",
    }
    block = _block(["--webhook-url", "https://abc.ngrok.app/", "--voice", "cedar"], env)
    assert block == [
        (logging.INFO, "patter-local 0.1.0 listening on http://127.0.0.1:8000"),
        (logging.INFO, f"agent: OpenAI Realtime (model {REALTIME_MODEL}, voice cedar)"),
        (logging.INFO, "Twilio voice webhook (POST): https://abc.ngrok.app/webhooks/twilio/voice"),
        (logging.INFO, "Telnyx voice webhook: https://abc.ngrok.app/webhooks/telnyx/voice"),
        (logging.INFO, "signatures: Twilio checked; Telnyx off"),
        (logging.INFO, "Ctrl-C to stop (twice to end live calls at once)"),
    ]


def test_a_warning_only_when_a_carrier_is_configured_but_unchecked() -> None:
    # Twilio account without the auth token; Telnyx API key without the public key.
    block = _block(
        ["--webhook-url", "abc.ngrok.app"],
        {"TWILIO_ACCOUNT_SID": "AC1", "TELNYX_API_KEY": "KEY", "PATTER_STREAM_SECRET": "x" * 16},
    )
    warnings = [text for level, text in block if level == logging.WARNING]
    assert warnings == [
        "Twilio credentials are set but TWILIO_AUTH_TOKEN (with --webhook-url) is not: "
        "anyone can post Twilio webhooks here",
        "TELNYX_API_KEY is set but TELNYX_PUBLIC_KEY is not: anyone can post Telnyx webhooks here",
    ]
    # Nothing configured: both off, said at INFO, no warning at all.
    assert all(level == logging.INFO for level, _ in _block([], {}))


def test_block_for_other_agents_and_hosts() -> None:
    info = StartupInfo(
        host="0.0.0.0",
        port=9000,
        agent="x",
        webhook_host=None,
        twilio_checked=True,
        telnyx_checked=True,
        twilio_configured=True,
        telnyx_configured=True,
    )
    lines = startup_lines(info)
    assert (logging.INFO, "signatures: Twilio and Telnyx checked") in lines
    assert (logging.WARNING, "bound to 0.0.0.0: reachable from other machines") in lines
    assert startup_lines(StartupInfo(**{**_fields(info), "host": "::1"}))[0] == (
        logging.INFO,
        "patter-local 0.1.0 listening on http://[::1]:9000",
    )
    phone = Patter(env={"ELEVENLABS_AGENT_ID": "agent_1"})
    assert (
        describe_agent(phone.agent(provider="elevenlabs"), elevenlabs_agent_id="agent_1")
        == "ElevenLabs Conversational AI (agent agent_1)"
    )
    # No provider named: the ElevenLabs agent, as the command line picks it.
    assert phone.agent().provider == "elevenlabs"
    assert describe_agent(Patter(env={}).agent()) == (
        "the echo agent: no provider key set (it repeats what the caller says)"
    )


def _fields(info: StartupInfo) -> dict[str, Any]:
    return {name: getattr(info, name) for name in StartupInfo.__dataclass_fields__}


def test_cli_serve_logs_the_block_once_bound_then_ctrl_c_says_it_stopped(
    tmp_path: pathlib.Path,
) -> None:
    port = _free_port()
    log_path = tmp_path / "err.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "patter_anyio", "serve", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            env=_env(),
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 20
        while "Ctrl-C to stop" not in log_path.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [line.split(": ", 1)[1] for line in log_path.read_text().splitlines()]
    assert lines[0] == f"patter-local 0.1.0 listening on http://127.0.0.1:{port}"
    assert "WARNING" not in log_path.read_text()
    assert lines[-2:] == ["Ctrl-C: no live calls, stopping", "stopped"]


# ------------------------------------------------------ Ctrl-C with a live call
SERVE_SCRIPT = textwrap.dedent(
    """
    import sys, anyio
    from patter_anyio import Patter

    phone = Patter(env={})

    def on_call_end(call):
        print("on_call_end", call["call_id"], call["reason"], flush=True)

    anyio.run(lambda: phone.serve(phone.agent(), port=int(sys.argv[1]),
                                  on_call_end=on_call_end, shutdown_grace=30))
    """
)


def test_serve_ctrl_c_twice_with_a_live_call(tmp_path: pathlib.Path) -> None:
    """The API's serve() with no logging set up: the block on stderr; the
    first Ctrl-C names the live call and the grace, the second ends it at
    once with on_call_end, the last line says it stopped."""
    port = _free_port()
    script = tmp_path / "app.py"
    script.write_text(SERVE_SCRIPT)
    err_path, out_path = tmp_path / "err.log", tmp_path / "out.log"
    with err_path.open("w") as err, out_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(port)], stdout=out, stderr=err, env=_env(), cwd=ROOT
        )
    caller = None
    try:
        _wait_for(err_path, "Ctrl-C to stop", proc)
        caller = subprocess.Popen(
            [
                *(sys.executable, "-m", "patter_anyio", "dial"),
                *("--server", f"http://127.0.0.1:{port}", "--duration", "30", "--quiet"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_env(),
            cwd=ROOT,
        )
        _wait_for(err_path, "call started", proc)
        proc.send_signal(signal.SIGINT)
        _wait_for(err_path, "a second Ctrl-C ends them now", proc)
        time.sleep(0.3)
        assert proc.poll() is None  # the call goes on through the grace
        assert "on_call_end" not in out_path.read_text()
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - began < 10  # not the 30 s grace
    finally:
        for p in (proc, caller):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    err_text = err_path.read_text()
    messages = [line.split(": ", 1)[1] for line in err_text.splitlines() if ": " in line]
    assert messages[0] == f"patter-local 0.1.0 listening on http://127.0.0.1:{port}"
    assert (
        "agent: the echo agent: no provider key set (it repeats what the caller says)" in messages
    )
    assert (
        "Ctrl-C: 1 live call(s) may go on for up to 30 s; a second Ctrl-C ends them now" in messages
    )
    assert "Ctrl-C again: ending 1 live call(s) now (on_call_end runs for each)" in messages
    assert messages[-1] == "stopped"
    ended = out_path.read_text().splitlines()
    assert len(ended) == 1 and ended[0].endswith(" server_shutdown"), ended


def _wait_for(path: pathlib.Path, needle: str, proc: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 20
    while needle not in path.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, path.read_text()
        time.sleep(0.05)


# ----------------------------------------------------------- the environment
def test_patter_reads_credentials_from_the_environment_arguments_first() -> None:
    # A well-formed key: the settings model checks it as the command line does.
    public_key = base64.b64encode(bytes(SigningKey(b"\x05" * 32).verify_key)).decode()
    env = {
        "TWILIO_ACCOUNT_SID": "ACenv",
        "TWILIO_AUTH_TOKEN": "tok-env",
        "TELNYX_API_KEY": "KEYenv",
        "TELNYX_PUBLIC_KEY": public_key,
        "OPENAI_API_KEY": "sk-env",
        "ELEVENLABS_API_KEY": "el-env",
        "ELEVENLABS_AGENT_ID": "agent-env",
        "DEEPGRAM_API_KEY": "dg-env",
    }
    phone = Patter(env=env, openai_key="sk-arg", twilio_sid="ACarg", twilio_token="tok-arg")
    assert (phone.carriers.twilio_sid, phone.carriers.twilio_token) == ("ACarg", "tok-arg")
    assert (phone.carriers.telnyx_key, phone.carriers.telnyx_public_key) == ("KEYenv", public_key)
    assert phone.providers.openai_key == "sk-arg"
    assert phone.providers.elevenlabs_key == "el-env"
    assert phone.providers.elevenlabs_agent_id == "agent-env"
    assert phone.providers.deepgram_key == "dg-env"
    assert phone.agent().provider == "openai"  # the key from the environment picks it


def test_patter_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-shell")
    assert Patter().providers.openai_key == "sk-shell"


@pytest.mark.anyio
async def test_a_missing_key_names_the_argument_and_the_variable() -> None:
    phone = Patter(env={})
    with pytest.raises(InvalidOption) as info:
        await phone.serve(phone.agent(provider="openai"), port=None, handle_signals=False)
    assert str(info.value) == "provider openai needs an OpenAI key: openai_key= or OPENAI_API_KEY"
    with pytest.raises(InvalidOption, match="twilio_sid and twilio_token go together"):
        Patter(env={"TWILIO_ACCOUNT_SID": "AC1"})


@pytest.mark.anyio
async def test_on_message_with_an_echo_agent_reads_as_english() -> None:
    phone = Patter(env={})
    with pytest.raises(InvalidOption, match="an echo agent answers by itself"):
        await phone.serve(phone.agent(), port=None, on_message=lambda text: text)


# ------------------------------------------------------------------ bind errors
@pytest.mark.anyio
async def test_serve_on_a_taken_port_raises_one_sentence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="patter_anyio")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        phone = Patter(env={})
        with pytest.raises(BindError) as info:
            await phone.serve(phone.agent(), port=port, handle_signals=False)
    assert str(info.value) == (
        f"cannot listen on 127.0.0.1:{port}: the port is already in use "
        "(another server running? choose another with port=)"
    )
    assert isinstance(info.value, OSError)  # code that caught the bind's error still does
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


def test_bind_problem_wording() -> None:
    assert bind_problem("10.9.9.9", 80, OSError(errno.EADDRNOTAVAIL, "x")) == (
        "cannot listen on 10.9.9.9:80: 10.9.9.9 is not an address of this machine"
    )
    assert bind_problem("nowhere.invalid", 80, socket.gaierror(-2, "x")) == (
        "cannot listen on nowhere.invalid:80: 'nowhere.invalid' is not an address or a known "
        "host name"
    )
    assert "permission denied" in bind_problem("127.0.0.1", 80, OSError(errno.EACCES, "x"))


def test_cli_port_in_use_exits_2_with_one_line_and_no_warnings_first() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run("serve", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr == (
        f"patter-local: error: cannot listen on 127.0.0.1:{port}: the port is already in use "
        "(another server running? choose another with --port)\n"
    )


def test_cli_address_not_of_this_machine_exits_2_without_the_reachable_warning() -> None:
    result = _run("serve", "--host", "192.0.2.1", "--port", str(_free_port()))
    assert result.returncode == 2
    assert result.stderr.startswith("patter-local: error: cannot listen on 192.0.2.1:")
    assert len(result.stderr.splitlines()) == 1


def test_cli_refuses_an_impossible_host_before_anything() -> None:
    result = _run("serve", "--host", "999.1.1.1")
    assert (result.returncode, result.stderr) == (
        2,
        "patter-local: error: --host must be an IP address of this machine or a host name, "
        "not '999.1.1.1'\n",
    )


# ------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            ["--phone-number", "555-0100"],
            {},
            "--phone-number must be an E.164 number such as +15550001111, not '555-0100'",
        ),
        (
            [],
            {"PATTER_WEBHOOK_URL": "https://abc.ngrok.app/webhooks/twilio/voice"},
            "PATTER_WEBHOOK_URL must be a public host such as abc.ngrok.app, "
            "not 'https://abc.ngrok.app/webhooks/twilio/voice'",
        ),
        (
            ["--webhook-url", "abc.ngrok.app/x"],
            {},
            "--webhook-url must be a public host such as abc.ngrok.app, not 'abc.ngrok.app/x'",
        ),
    ],
)
def test_cli_validation_names_the_setting(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    from patter_anyio import ConfigError

    with pytest.raises(ConfigError) as info:
        config_from_args(["serve", *argv], env, entropy=CountingEntropy())
    assert str(info.value) == message


def test_cli_accepts_an_e164_phone_number() -> None:
    _, config = config_from_args(
        ["serve", "--phone-number", "+15550001111"], {}, entropy=CountingEntropy()
    )
    assert config.carriers.phone_number == "+15550001111"


def test_version() -> None:
    result = _run("--version")
    assert (result.returncode, result.stdout) == (0, "patter-local 0.1.0\n")


def test_quiet_transcripts_leaves_what_is_said_out_of_the_log() -> None:
    from patter_anyio._cli import configure_logging

    transcript = logging.getLogger("patter_anyio.transcript")
    ours = logging.getLogger("patter_anyio")
    level = ours.level
    ours.setLevel(logging.INFO)  # as basicConfig would set the root, outside pytest
    try:
        _, config = config_from_args(
            ["serve", "--quiet-transcripts"], {}, entropy=CountingEntropy()
        )
        configure_logging(config)
        assert not transcript.isEnabledFor(logging.INFO)
        assert logging.getLogger("patter_anyio.call").isEnabledFor(logging.INFO)
        _, config = config_from_args(["serve"], {}, entropy=CountingEntropy())
        configure_logging(config)
        assert transcript.isEnabledFor(logging.INFO)
    finally:
        transcript.setLevel(logging.NOTSET)
        ours.setLevel(level)


@pytest.mark.anyio
async def test_health_answers_while_the_api_serves() -> None:
    # A smoke test that the start block does not get in the way of serving.
    phone = Patter(env={})
    async with anyio.create_task_group() as tg:
        port = await tg.start(
            lambda task_status: phone.serve(
                phone.agent(), port=None, handle_signals=False, task_status=task_status
            )
        )
        body = await anyio.to_thread.run_sync(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read()
        )
        assert b'"status": "ok"' in body
        phone.stop(immediate=True)


# ------------------------------------------------------------ repository files
def test_env_example_lists_every_variable_the_server_reads() -> None:
    from patter_anyio._config import ENVIRONMENT

    text = pathlib.Path(ROOT, ".env.example").read_text()
    listed = {line.split("=", 1)[0] for line in text.splitlines() if line and line[0] != "#"}
    assert listed == {name for name, _ in ENVIRONMENT}


def test_license_is_the_mit_text_the_metadata_claims() -> None:
    text = pathlib.Path(ROOT, "LICENSE").read_text()
    pyproject = pathlib.Path(ROOT, "pyproject.toml").read_text()
    assert 'license = { text = "MIT" }' in pyproject
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge, to any person obtaining a copy" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text


def test_no_command_says_which_there_are() -> None:
    result = _run()
    assert (result.returncode, result.stderr) == (
        2,
        "patter-local: error: give a command: serve (run the server) or dial (place a test "
        "call); patter-local --help lists them\n",
    )
