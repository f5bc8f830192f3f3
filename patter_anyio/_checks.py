"""Checks of the Python API's arguments: each wrong value is an InvalidOption
with one sentence naming the argument, raised before anything binds."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from patter_core import PatterError
from patter_core.webhooks import (
    TwilioSignatureValidator,
)

from ._agent import InvalidOption
from .calls._recording import recording_dir_problem

__all__ = [
    "article",
    "check_agent_text",
    "check_callback",
    "check_port",
    "check_signing_keys",
    "local_recording_dir",
]


def check_port(port: int | None) -> None:
    if port is None:
        return  # an ephemeral port, for tests and embedding
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidOption(f"port must be an integer in 1-65535, not {port!r}")


def check_agent_text(**fields: object) -> None:
    for name, value in fields.items():
        optional = name not in ("system_prompt", "first_message")
        if not (isinstance(value, str) or (optional and value is None)):
            kind = "text or None" if optional else "text"
            raise InvalidOption(f"{name} must be {kind}, not {type(value).__name__}")


def check_signing_keys(keys: object, host: str | None) -> dict[str, str]:
    if keys is None:
        return {}
    if not isinstance(keys, Mapping):
        raise InvalidOption("twilio_signing_keys must be a dict of key id to secret")
    if keys and host is None:
        raise InvalidOption("twilio_signing_keys need webhook_url: signatures cover the public URL")
    if keys:
        try:
            TwilioSignatureValidator(None, shared_keys=keys)
        except PatterError as exc:
            raise InvalidOption(f"twilio_signing_keys: {exc}") from None
    return dict(keys)


def local_recording_dir(value: object) -> Path | None:
    """The directory ``local_recording`` names, checked writable (created if missing)."""
    if value is False or value is None:
        return None
    if value is True:
        directory = Path("recordings")
    elif isinstance(value, (str, os.PathLike)) and str(value):
        directory = Path(value)
    else:
        raise InvalidOption(f"local_recording must be True or a directory, not {value!r}")
    problem = recording_dir_problem(directory)
    if problem:
        raise InvalidOption(problem)
    return directory


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def check_callback(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise InvalidOption(f"{name} must be callable, not {type(value).__name__}")
