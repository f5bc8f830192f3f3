"""Base URLs: one default per service, one override rule, the same default in
the core's configs, the runtime's settings, the CLI and the Patter API."""

from __future__ import annotations

import inspect

import pytest

from patter_anyio._config import ENVIRONMENT, config_from_args
from patter_anyio._patter import Patter
from patter_anyio._settings import CarrierSettings, ProviderSettings
from patter_core import CountingEntropy
from patter_core._base_urls import BASE_URL_VARIABLES, base_url_from_env
from patter_core.providers._urls import elevenlabs_base_url_from_env, openai_base_url_from_env
from patter_core.providers.pipeline import DeepgramConfig
from patter_core.providers.pipeline._deepgram import deepgram_base_url_from_env, deepgram_url
from patter_core.webhooks import TelnyxRest, TwilioRest

PUBLIC = {
    "OPENAI_BASE_URL": "https://api.openai.com/v1",
    "ELEVENLABS_BASE_URL": "https://api.elevenlabs.io",
    "DEEPGRAM_BASE_URL": "https://api.deepgram.com",
    "TWILIO_API_BASE_URL": "https://api.twilio.com",
    "TELNYX_API_BASE_URL": "https://api.telnyx.com/v2",
}


@pytest.mark.parametrize("variable", sorted(PUBLIC))
def test_override_or_default(variable: str) -> None:
    assert base_url_from_env({}, variable) == PUBLIC[variable]
    assert base_url_from_env({variable: ""}, variable) == PUBLIC[variable]
    assert base_url_from_env({variable: "http://127.0.0.1:9"}, variable) == "http://127.0.0.1:9"


def test_one_table_of_defaults() -> None:
    assert dict(BASE_URL_VARIABLES) == PUBLIC
    assert openai_base_url_from_env({}) == PUBLIC["OPENAI_BASE_URL"]
    assert elevenlabs_base_url_from_env({}) == PUBLIC["ELEVENLABS_BASE_URL"]
    assert deepgram_base_url_from_env({}) == PUBLIC["DEEPGRAM_BASE_URL"]


def test_deepgram_base_is_https_and_its_socket_wss() -> None:
    config = DeepgramConfig(api_key="k")
    assert config.base_url == "https://api.deepgram.com"
    assert deepgram_url(config).startswith("wss://api.deepgram.com/v1/listen?")


def test_every_entry_point_has_the_same_defaults() -> None:
    providers, carriers = ProviderSettings(), CarrierSettings()
    settings = {
        "OPENAI_BASE_URL": providers.openai_base_url,
        "ELEVENLABS_BASE_URL": providers.elevenlabs_base_url,
        "DEEPGRAM_BASE_URL": providers.deepgram_base_url,
        "TWILIO_API_BASE_URL": carriers.twilio_api_base_url,
        "TELNYX_API_BASE_URL": carriers.telnyx_api_base_url,
    }
    assert settings == PUBLIC
    _, cli = config_from_args(["serve"], {}, entropy=CountingEntropy())
    assert {
        name: getattr(cli.providers, name.lower(), None) or getattr(cli.carriers, name.lower())
        for name in PUBLIC
    } == PUBLIC
    parameters = inspect.signature(Patter).parameters
    assert {name: parameters[name.lower()].default for name in PUBLIC} == PUBLIC
    help_text = dict(ENVIRONMENT)
    assert {name: help_text[name] for name in PUBLIC} == {
        name: f"override {url}" for name, url in PUBLIC.items()
    }
    twilio = TwilioRest("AC" + "0" * 32, "token")
    request = twilio.create_call(to="+15550001111", from_="+15550002222", url="https://h/x")
    assert request.url.startswith("https://api.twilio.com/2010-04-01/")
    assert TelnyxRest("key").answer("cc").url.startswith("https://api.telnyx.com/v2/calls/")
