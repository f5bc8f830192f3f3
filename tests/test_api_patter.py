"""The Python API: every mistake is a clear ValueError before anything binds.

Plus one real start on each anyio backend: ``serve`` on an ephemeral port,
``GET /health`` over a socket, ``stop``.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import pytest

from patter_anyio import Patter, Tool
from tests.fakes.http_fakes import http_get

# Keys are fake; nothing here reaches a network.
FULL = {
    "twilio_sid": "AC" + "1" * 32,
    "twilio_token": "token",
    "openai_key": "sk-test",
    "phone_number": "+15550001111",
    "webhook_url": "abc.ngrok.app",
}


def _handler(arguments: dict[str, Any], call: dict[str, Any]) -> str:
    return "ok"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"mode": "cloud"}, "only mode='local'"),
        ({"twilio_sid": "AC1"}, "twilio_sid is set, twilio_token (or TWILIO_AUTH_TOKEN) is not"),
        ({"twilio_token": "t"}, "twilio_token is set, twilio_sid (or TWILIO_ACCOUNT_SID) is not"),
        ({"phone_number": "555-0001"}, "phone_number must be an E.164 number such as +15550001111, not '555-0001'"),
        ({"telnyx_codec": "G722"}, "telnyx_codec"),
        ({"stream_secret": "short"}, "at least 16"),
        ({"openai_base_url": "ftp://x"}, "openai_base_url"),
        ({"twilio_api_base_url": "api.twilio.com"}, "twilio_api_base_url"),
        ({"deepgram_base_url": "ftp://x"}, "deepgram_base_url"),
        ({"webhook_url": "https://abc.ngrok.app/webhooks"}, "webhook_url must be a public host"),
    ],
)
def test_constructor_rejects(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=_escape(needle)):
        Patter(**kwargs)


def _escape(text: str) -> str:
    return re.escape(text)


def test_webhook_url_forms_are_normalised() -> None:
    for url in ("abc.ngrok.app", "https://abc.ngrok.app/", "abc.ngrok.app:8443"):
        phone = Patter(webhook_url=url)
        assert phone.carriers.webhook_host == url.removeprefix("https://").rstrip("/")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"provider": "gemini"}, "provider must be one of openai, elevenlabs, pipeline, echo"),
        ({"stt": "whisper"}, "stt must be 'deepgram' or 'openai'"),
        ({"tts": "polly"}, "tts must be 'elevenlabs', 'elevenlabs-ws' or 'openai'"),
        ({"tools": [{"name": "lookup"}]}, "needs a 'name' and a 'handler'"),
        ({"tools": [{"name": "lookup", "handler": 3}]}, "handler must be callable"),
        ({"tools": [{"name": "end_call", "handler": _handler}]}, "'end_call' is built in"),
        ({"tools": [Tool(name="transfer_call", handler=_handler)]}, "'transfer_call' is built in"),
        (
            {"tools": [{"name": "a", "handler": _handler}, {"name": "a", "handler": _handler}]},
            "tool names must be unique",
        ),
        ({"tools": [{"name": "look up", "handler": _handler}]}, "letters, digits"),
        ({"tools": [{"name": "a", "handler": _handler, "fn": 1}]}, "unknown tool keys: fn"),
        ({"tools": [{"name": "a", "handler": _handler, "parameters": [1]}]}, "JSON schema"),
        ({"tools": ["lookup"]}, "a tool must be a Tool or a dict"),
        ({"tools": {"name": "a", "handler": _handler}}, "tools must be a list"),
        ({"transfer_allowlist": ["front desk"]}, "must be E.164 such as +15550009999, not 'front desk'"),
        ({"transfer_allowlist": ["5550009999"]}, "not '5550009999'"),
        ({"transfer_allowlist": ["+05550009999"]}, "not '+05550009999'"),
        ({"transfer_allowlist": "+15550001111"}, "transfer_allowlist must be a list"),
        ({"system_prompt": 5}, "system_prompt must be text"),
        ({"first_message": None}, "first_message must be text"),
        ({"voice": 7}, "voice must be text or None"),
    ],
)
def test_agent_rejects(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=_escape(needle)):
        Patter().agent(**kwargs)


def test_agent_accepts_tools_in_both_forms() -> None:
    agent = Patter().agent(
        tools=[
            Tool(name="lookup", handler=_handler, description="Look up an order"),
            {"name": "weather", "handler": _handler, "parameters": {"type": "object"}},
        ],
        transfer_allowlist=["+15550003333"],
    )
    assert [t.name for t in agent.tools] == ["lookup", "weather"]
    assert agent.provider == "echo"  # no OpenAI key: the echo agent
    assert Patter(openai_key="sk").agent().provider == "openai"


def _no_listen(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if "listening" in r.getMessage()]


ServeCase = tuple[dict[str, Any], Callable[[Patter], Any], dict[str, Any], str]

SERVE_CASES: list[ServeCase] = [
    ({}, lambda p: p.agent(), {"port": 0}, "port must be an integer in 1-65535, not 0"),
    ({}, lambda p: p.agent(), {"port": 70000}, "not 70000"),
    ({}, lambda p: p.agent(), {"port": "8000"}, "not '8000'"),
    ({}, lambda p: p.agent(), {"port": True}, "not True"),
    (
        {"openai_key": "sk"},
        lambda p: p.agent(provider="openai"),
        {"on_message": lambda m: "hi"},
        "on_message is for provider='pipeline'",
    ),
    (
        {},
        lambda p: p.agent(provider="openai"),
        {},
        "provider openai needs an OpenAI key: openai_key= or OPENAI_API_KEY",
    ),
    ({}, lambda p: p.agent(provider="elevenlabs"), {}, "agent_id= (or elevenlabs_agent_id=) or ELEVENLABS_AGENT_ID"),
    ({}, lambda p: p.agent(provider="pipeline"), {}, "pipeline needs openai_key= or OPENAI_API_KEY"),
    ({}, lambda p: p.agent(), {"recording": "yes"}, "recording must be True or False, not 'yes'"),
    ({}, lambda p: p.agent(), {"recording": 1}, "recording must be True or False, not 1"),
    ({}, lambda p: p.agent(), {"host": "999.1.1.1"}, "host must be an IP address of this machine or a host name, not '999.1.1.1'"),
    ({}, lambda p: p.agent(), {"host": "bad host"}, "not 'bad host'"),
    (
        {"deepgram_key": "dg"},
        lambda p: p.agent(provider="pipeline", tts="elevenlabs"),
        {"on_message": lambda m: "hi"},
        "ElevenLabs needs elevenlabs_key= or ELEVENLABS_API_KEY",
    ),
    ({}, lambda p: p.agent(), {"recording": True}, "recording=True needs twilio_sid"),
    ({}, lambda p: p.agent(), {"on_call_end": "print"}, "on_call_end must be callable, not str"),
    ({}, lambda p: p.agent(), {"on_transcript": 3}, "on_transcript must be callable, not int"),
    ({}, lambda p: p.agent(), {"voicemail_message": 3}, "voicemail_message must be text"),
    ({}, lambda p: "echo", {}, "agent must come from phone.agent"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("ctor", "make_agent", "kwargs", "needle"), SERVE_CASES)
async def test_serve_rejects_before_binding(
    ctor: dict[str, Any],
    make_agent: Callable[[Patter], Any],
    kwargs: dict[str, Any],
    needle: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    phone = Patter(**ctor)
    kwargs = {"port": None, **kwargs}
    with pytest.raises(ValueError, match=_escape(needle)):
        await phone.serve(make_agent(phone), handle_signals=False, **kwargs)
    _no_listen(caplog)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("ctor", "kwargs", "needle"),
    [
        ({}, {"to": "+15550002222"}, "needs phone_number"),
        ({"phone_number": "+15550001111"}, {"to": "+15550002222"}, "needs webhook_url"),
        ({"phone_number": "+1555", "webhook_url": "a.b"}, {"to": "+15550002222"}, "needs Twilio"),
        (FULL, {"to": ""}, "needs a number to call"),
        (FULL, {"to": "+15550002222", "agent": "echo"}, "agent must come from phone.agent"),
        (FULL, {"to": "+15550002222", "voicemail_message": 5}, "voicemail_message must be text"),
        (
            {"telnyx_key": "KEY", "phone_number": "+1555", "webhook_url": "a.b"},
            {"to": "+15550002222"},
            "telnyx_connection_id",
        ),
    ],
)
async def test_call_rejects(ctor: dict[str, Any], kwargs: dict[str, Any], needle: str) -> None:
    # The REST base URL is unroutable: a check that let the call through
    # would fail with a connection error instead of the ValueError.
    phone = Patter(twilio_api_base_url="http://127.0.0.1:9", **ctor)
    with pytest.raises(ValueError, match=_escape(needle)):
        await phone.call(**kwargs)


@pytest.mark.anyio
async def test_serve_starts_answers_health_and_stops(anyio_backend: str) -> None:
    phone = Patter(**FULL)
    agent = phone.agent(provider="openai", first_message="Hello!")
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            port = await tg.start(partial(phone.serve, agent, None, handle_signals=False))
            assert isinstance(port, int) and port > 0
            status, body = await http_get(port, "/health")
            assert status == 200
            assert json.loads(body) == {"status": "ok", "mode": "local", "calls": 0, "version": "0.1.0"}
            phone.stop()
    # Stopped: the port is free again and a second stop is harmless.
    phone.stop()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


@pytest.mark.anyio
async def test_serve_on_a_busy_port_raises_the_os_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        phone = Patter()
        with pytest.raises(OSError):
            await phone.serve(phone.agent(), port, handle_signals=False)


def test_option_errors_are_our_own_type() -> None:
    from patter_anyio import InvalidOption
    from patter_core import PatterError

    with pytest.raises(InvalidOption) as info:
        Patter(mode="cloud")
    assert isinstance(info.value, ValueError) and isinstance(info.value, PatterError)
    assert "mode" in str(info.value)
