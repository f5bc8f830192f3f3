"""Twilio HMAC-SHA256 signing keys: configured by flag, environment or API,
selected by ``X-Twilio-Webhooks-Signature-Settings``, checked over the real
server. Signatures come from the official ``twilio`` package."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any
from urllib.parse import urlencode

import anyio
import pytest
from twilio.request_validator import RequestValidator

from patter_anyio import ConfigError, InvalidOption, Patter
from patter_anyio._cli import build_app
from patter_anyio._config import config_from_args
from patter_anyio.net._server import Server
from patter_core import CountingEntropy, LocalProtocolError, SignatureError
from patter_core.webhooks import TwilioSignatureValidator

from .test_cli_serve import _run
from .test_server_http import HOST, LIMITS, VOICE_FORM, exchange, post, split

KEY_ID = "SK" + "0" * 32
SECRET = "c2lnbmluZy1rZXktc2VjcmV0LXZhbHVlPQ=="  # base64, '=' included
OTHER_ID = "SK" + "1" * 32
OTHER_SECRET = "another-secret"
PATH = "/webhooks/twilio/voice"


def parse(*argv: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return config_from_args(["serve", *argv], env or {}, entropy=CountingEntropy())[1]


def sha256_request(secret: str, settings: str | None) -> bytes:
    """A voice webhook signed with HMAC-SHA256 under ``secret``."""
    url = f"https://{HOST}{PATH}"
    signature = RequestValidator(secret).compute_signature(url, VOICE_FORM, "HMAC_SHA256")
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    if settings is not None:
        headers["X-Twilio-Webhooks-Signature-Settings"] = settings
    return post(PATH, urlencode(VOICE_FORM).encode(), headers)


def settings(key_id: str) -> str:
    return f"key={key_id},algorithm=HMAC_SHA256"


# ------------------------------------------------------------------ config
def test_flag_and_environment() -> None:
    config = parse(
        "--webhook-url", HOST,
        "--twilio-signing-key", f"{KEY_ID}={SECRET}",
        "--twilio-signing-key", f" {OTHER_ID} = {OTHER_SECRET} ",
    )  # fmt: skip
    assert dict(config.twilio_signing_keys) == {KEY_ID: SECRET, OTHER_ID: OTHER_SECRET}
    assert SECRET not in repr(config)
    assert config.startup_info(port=8000, agent="echo").twilio_checked
    env = {"PATTER_WEBHOOK_URL": HOST, "TWILIO_SIGNING_KEYS": f"{KEY_ID}={SECRET},{OTHER_ID}=x"}
    assert dict(parse(env=env).twilio_signing_keys) == {KEY_ID: SECRET, OTHER_ID: "x"}
    # Flags win over the environment.
    flagged = parse("--twilio-signing-key", f"{OTHER_ID}=y", env=env)
    assert dict(flagged.twilio_signing_keys) == {OTHER_ID: "y"}
    assert parse().twilio_signing_keys == ()


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["--twilio-signing-key", "no-separator"], {}, "--twilio-signing-key: item 1"),
        (["--twilio-signing-key", "=secret"], {}, "--twilio-signing-key: item 1"),
        (["--twilio-signing-key", "a=b", "--twilio-signing-key", "c="], {}, "item 2"),
        (["--twilio-signing-key", "a b=secret"], {}, "key id"),
        (["--twilio-signing-key", "a=s1", "--twilio-signing-key", "a=s2"], {}, "twice"),
        ([], {"TWILIO_SIGNING_KEYS": f"{KEY_ID}={SECRET},oops"}, "TWILIO_SIGNING_KEYS: item 2"),
        ([], {"TWILIO_SIGNING_KEYS": ","}, "TWILIO_SIGNING_KEYS: item 1"),
    ],
)
def test_malformed_keys_are_one_line_errors(
    argv: list[str], env: dict[str, str], needle: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse("--webhook-url", HOST, *argv, env=env)
    message = str(info.value)
    assert needle in message and "\n" not in message
    assert SECRET not in message and "s2" not in message


def test_keys_need_the_public_host() -> None:
    with pytest.raises(ConfigError, match="PATTER_WEBHOOK_URL"):
        parse("--twilio-signing-key", f"{KEY_ID}={SECRET}")


def test_malformed_flag_exits_2_with_one_line() -> None:
    result = _run("serve", "--webhook-url", HOST, "--twilio-signing-key", "k1")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "patter-local: error: --twilio-signing-key: item 1 is not KEY_ID=SECRET"
    )


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ("k=s", "must be a dict"),
        ({"k,1": "s"}, "key id"),
        ({"k": ""}, "empty secret"),
        ({"k": 5}, "empty secret"),
        ({3: "s"}, "key id"),
    ],
)
def test_api_rejects_malformed_keys(keys: Any, needle: str) -> None:
    with pytest.raises(InvalidOption, match=needle):
        Patter(webhook_url=HOST, twilio_signing_keys=keys)
    with pytest.raises(InvalidOption, match="need webhook_url"):
        Patter(twilio_signing_keys={KEY_ID: SECRET})


def test_validator_with_keys_only_refuses_unkeyed_requests() -> None:
    url = f"https://{HOST}{PATH}"
    validator = TwilioSignatureValidator(None, shared_keys={KEY_ID: SECRET})
    good = RequestValidator(SECRET).compute_signature(url, VOICE_FORM, "HMAC_SHA256")
    validator.validate(url, VOICE_FORM, good, settings=settings(KEY_ID))
    legacy = RequestValidator("token").compute_signature(url, VOICE_FORM)
    with pytest.raises(SignatureError, match="no auth token"):
        validator.validate(url, VOICE_FORM, legacy)
    with pytest.raises(LocalProtocolError):
        TwilioSignatureValidator(None, shared_keys={})


# ------------------------------------------------------------ real server
@asynccontextmanager
async def serving(*argv: str, env: dict[str, str] | None = None) -> AsyncIterator[int]:
    """The server as ``serve`` builds it from its flags and environment."""
    config = parse("--webhook-url", HOST, *argv, env=env)
    server = Server(build_app(config), host="127.0.0.1", port=0, limits=LIMITS)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        try:
            yield port
        finally:
            server.stop()


async def statuses(port: int) -> dict[str, int]:
    requests = {
        "own key": sha256_request(SECRET, settings(KEY_ID)),
        "second key": sha256_request(OTHER_SECRET, settings(OTHER_ID)),
        "unknown key id": sha256_request(SECRET, settings("SK" + "9" * 32)),
        "wrong secret": sha256_request(OTHER_SECRET, settings(KEY_ID)),
        "no settings header": sha256_request(SECRET, None),
    }
    return {name: split(await exchange(port, raw))[0] for name, raw in requests.items()}


@pytest.mark.anyio
async def test_sha256_webhook_over_the_real_server() -> None:
    flag = (f"{KEY_ID}={SECRET}", f"{OTHER_ID}={OTHER_SECRET}")
    async with serving("--twilio-signing-key", flag[0], "--twilio-signing-key", flag[1]) as port:
        by_flag = await statuses(port)
    env = {"TWILIO_SIGNING_KEYS": ",".join(flag), "TWILIO_AUTH_TOKEN": "token"}
    async with serving(env=env) as port:
        by_env = await statuses(port)
    expected = {
        "own key": 200,
        "second key": 200,
        "unknown key id": 403,
        "wrong secret": 403,
        "no settings header": 403,
    }
    assert by_flag == expected
    assert by_env == expected


@pytest.mark.anyio
async def test_without_keys_the_sha256_webhook_is_refused() -> None:
    async with serving(env={"TWILIO_AUTH_TOKEN": "token"}) as port:
        status = split(await exchange(port, sha256_request(SECRET, settings(KEY_ID))))[0]
    assert status == 403


@pytest.mark.anyio
async def test_patter_api_keys_reach_the_server() -> None:
    phone = Patter(webhook_url=HOST, twilio_signing_keys={KEY_ID: SECRET})
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            port = await tg.start(partial(phone.serve, phone.agent(), None, handle_signals=False))
            good = split(await exchange(port, sha256_request(SECRET, settings(KEY_ID))))[0]
            unknown = split(await exchange(port, sha256_request(SECRET, settings(OTHER_ID))))[0]
            phone.stop()
    assert (good, unknown) == (200, 403)
