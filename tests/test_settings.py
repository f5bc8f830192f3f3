"""One settings model, built one way, whichever door the values came in by.

The command line (flags and environment) and ``Patter(...)`` (arguments,
else environment) both build ``CarrierSettings`` and ``ProviderSettings``
with ``build_settings``: the same values give equal settings, the same
mistakes the same one-line error, named as the user wrote the setting.
"""

from __future__ import annotations

import base64

import pytest
from nacl.signing import SigningKey

from patter_anyio import ConfigError, InvalidOption, Patter
from patter_anyio._config import config_from_args
from patter_anyio._settings import CarrierSettings, ProviderSettings, build_settings

PUBLIC_KEY = base64.b64encode(bytes(SigningKey(b"\x07" * 32).verify_key)).decode()
KEYS = {
    "TWILIO_ACCOUNT_SID": "AC123",
    "TWILIO_AUTH_TOKEN": "tok",
    "TELNYX_API_KEY": "KEY1",
    "TELNYX_PUBLIC_KEY": PUBLIC_KEY,
    "OPENAI_API_KEY": "sk-x",
    "ELEVENLABS_API_KEY": "xi-x",
    "ELEVENLABS_AGENT_ID": "agent_1",
    "DEEPGRAM_API_KEY": "dg-x",
}
URLS = {
    "OPENAI_BASE_URL": "http://127.0.0.1:9/v1/",
    "ELEVENLABS_BASE_URL": "http://127.0.0.1:10",
    "DEEPGRAM_BASE_URL": "ws://127.0.0.1:11/",
    "TWILIO_API_BASE_URL": "http://127.0.0.1:12",
    "TELNYX_API_BASE_URL": "http://127.0.0.1:13/v2",
}


def _cli(*argv: str, env: dict[str, str]) -> tuple[CarrierSettings, ProviderSettings]:
    _, config = config_from_args(["serve", *argv], env)
    return config.carriers, config.providers


def test_flags_and_environment_give_what_patter_arguments_give() -> None:
    from_cli = _cli(
        "--webhook-url", "https://abc.ngrok.app/", "--phone-number", "+15550001111",
        env={**KEYS, **URLS},
    )  # fmt: skip
    phone = Patter(
        webhook_url="https://abc.ngrok.app/",
        phone_number="+15550001111",
        openai_base_url=URLS["OPENAI_BASE_URL"],
        elevenlabs_base_url=URLS["ELEVENLABS_BASE_URL"],
        deepgram_base_url=URLS["DEEPGRAM_BASE_URL"],
        twilio_api_base_url=URLS["TWILIO_API_BASE_URL"],
        telnyx_api_base_url=URLS["TELNYX_API_BASE_URL"],
        env=KEYS,
    )
    assert from_cli == (phone.carriers, phone.providers)
    carriers, providers = from_cli
    assert carriers.webhook_host == "abc.ngrok.app" and carriers.twilio_sid == "AC123"
    assert carriers.telnyx_public_key == PUBLIC_KEY
    assert providers.openai_base_url == "http://127.0.0.1:9/v1"  # the slash dropped
    assert providers.deepgram_base_url == "ws://127.0.0.1:11"


def test_keys_as_arguments_are_the_keys_from_the_environment() -> None:
    phone = Patter(
        twilio_sid="AC123",
        twilio_token="tok",
        telnyx_key="KEY1",
        telnyx_public_key=PUBLIC_KEY,
        openai_key="sk-x",
        elevenlabs_key="xi-x",
        elevenlabs_agent_id="agent_1",
        deepgram_key="dg-x",
        webhook_url="abc.ngrok.app",
        env={},
    )
    assert (phone.carriers, phone.providers) == _cli(env={**KEYS, "PATTER_WEBHOOK_URL": "abc.ngrok.app"})
    # An argument wins over the environment; a blank variable is unset.
    other = Patter(openai_key="sk-arg", env={"OPENAI_API_KEY": "sk-env", "DEEPGRAM_API_KEY": " "})
    assert other.providers.openai_key == "sk-arg" and other.providers.deepgram_key is None


def test_nothing_given_is_the_models_defaults_through_every_door() -> None:
    defaults = (CarrierSettings(), ProviderSettings())
    assert build_settings({}) == defaults
    assert _cli(env={}) == defaults
    phone = Patter(env={})
    assert (phone.carriers, phone.providers) == defaults


@pytest.mark.parametrize(
    ("argv", "env", "kwargs", "message"),
    [
        (
            ["--phone-number", "555-0001"],
            {},
            {"phone_number": "555-0001"},
            "{} must be an E.164 number such as +15550001111, not '555-0001'",
        ),
        (
            ["--webhook-url", "https://a.b/path"],
            {},
            {"webhook_url": "https://a.b/path"},
            "{} must be a public host such as abc.ngrok.app, not 'https://a.b/path'",
        ),
        (
            [],
            {"OPENAI_BASE_URL": "ftp://x"},
            {"openai_base_url": "ftp://x"},
            "{} must be an http(s) URL, not 'ftp://x'",
        ),
        (
            [],
            {"DEEPGRAM_BASE_URL": "ftp://x"},
            {"deepgram_base_url": "ftp://x"},
            "{} must be an http(s) or ws(s) URL, not 'ftp://x'",
        ),
        (
            [],
            {"TELNYX_PUBLIC_KEY": "bm90IGEga2V5"},
            {"telnyx_public_key": "bm90IGEga2V5"},
            "{} is not a base64 Ed25519 public key",
        ),
    ],
)
def test_one_mistake_one_message_named_as_given(
    argv: list[str], env: dict[str, str], kwargs: dict[str, str], message: str
) -> None:
    flag = argv[0] if argv else next(iter(env))
    with pytest.raises(ConfigError) as cli:
        config_from_args(["serve", *argv], env)
    assert str(cli.value) == message.format(flag)
    with pytest.raises(InvalidOption) as api:
        Patter(**kwargs, env={})  # type: ignore[arg-type]
    assert str(api.value) == message.format(next(iter(kwargs)))
    # The environment variable is named when the key came from there.
    if "TELNYX_PUBLIC_KEY" in env:
        with pytest.raises(InvalidOption, match=r"^TELNYX_PUBLIC_KEY is not"):
            Patter(env=env)
