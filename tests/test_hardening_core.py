"""The pure pieces of the hardening: admission, watchdogs, refusal text, log throttling,
and the flags that set them."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patter_anyio import ConfigError
from patter_anyio._config import config_from_args
from patter_core import SignatureError
from patter_core.bridge._watchdog import Watchdog, Watchdogs
from patter_core.http import LogThrottle
from patter_core.providers._refusal import describe_refusal
from patter_core.webhooks import StreamAdmission, StreamTokens

SECRET = b"a-test-secret-of-enough-bytes!!"


def test_admission_one_live_stream_per_call_and_no_replay() -> None:
    tokens = StreamTokens(SECRET)
    gate = StreamAdmission(tokens)
    token = tokens.issue("CA1", 1000.0)
    gate.admit(token, "CA1", 1001.0)
    with pytest.raises(SignatureError, match="already has a live stream"):
        gate.admit(token, "CA1", 1002.0)
    with pytest.raises(SignatureError):
        gate.admit(token, "CA2", 1002.0)  # the token names another call
    # Another call's token is not affected.
    gate.admit(tokens.issue("CA2", 1000.0), "CA2", 1002.0)
    gate.release("CA1", 1003.0)
    with pytest.raises(SignatureError, match="already used"):
        gate.admit(token, "CA1", 1004.0)
    # A fresh token for the same call (a new webhook answer) is admitted.
    gate.admit(tokens.issue("CA1", 1005.0), "CA1", 1005.0)
    assert gate.live_calls == 2


def test_admission_forgets_spent_tokens_once_expired_and_stays_bounded() -> None:
    tokens = StreamTokens(SECRET)
    gate = StreamAdmission(tokens, max_spent=3)
    for i in range(5):
        token = tokens.issue(f"CA{i}", 0.0, ttl=10.0)
        gate.admit(token, f"CA{i}", 1.0)
        gate.release(f"CA{i}", 1.0)
    assert len(gate._spent) == 3
    gate.release("CA-none", 11.0)  # unknown: nothing, but expired tokens go
    gate.admit(tokens.issue("CA9", 11.0), "CA9", 11.5)
    assert len(gate._spent) == 0


def test_watchdogs_start_setup_and_media() -> None:
    dogs = Watchdogs(opened_at=0.0, start_timeout=10.0, media_timeout=15.0, setup_timeout=5.0)
    assert dogs.next_deadline() == 10.0
    assert dogs.fired(9.9) is None
    assert dogs.fired(10.0) is Watchdog.START
    dogs = Watchdogs(opened_at=0.0, start_timeout=10.0, media_timeout=15.0, setup_timeout=5.0)
    dogs.started(2.0)
    assert dogs.next_deadline() == 7.0
    assert dogs.fired(7.0) is Watchdog.SETUP
    dogs.ready()
    assert dogs.next_deadline() == 17.0
    dogs.last_media = 16.0  # media kept coming: the check re-arms, nothing fires
    assert dogs.fired(17.0) is None
    assert dogs.next_deadline() == 31.0
    assert dogs.fired(31.0) is Watchdog.MEDIA


def test_watchdogs_off() -> None:
    dogs = Watchdogs(opened_at=None, start_timeout=None, media_timeout=None, setup_timeout=None)
    dogs.started(1.0)
    assert dogs.next_deadline() is None and dogs.fired(1e9) is None


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            401,
            {"error": {"message": "Incorrect API key provided: sk-x.", "code": "invalid_api_key"}},
            "HTTP 401: Incorrect API key provided: sk-x.",
        ),
        (403, {"detail": {"status": "auth_error", "message": "Invalid API key"}}, "HTTP 403: Invalid API key"),
        (422, {"detail": "agent not found"}, "HTTP 422: agent not found"),
        (401, {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."}, "HTTP 401: Invalid credentials."),
        (503, None, "HTTP 503"),
    ],
)
def test_describe_refusal_reads_each_providers_error_shape(
    status: int, body: object, expected: str
) -> None:
    raw = b"" if body is None else json.dumps(body).encode()
    assert describe_refusal(status, raw) == expected


@given(st.one_of(st.none(), st.integers(100, 599)), st.binary(max_size=4096))
def test_describe_refusal_is_one_bounded_printable_line(status: int | None, body: bytes) -> None:
    text = describe_refusal(status, body)
    assert text.isprintable() and "\n" not in text
    assert len(text) <= len("handshake refused: ") + 200


def test_log_throttle_bursts_then_counts_per_reason() -> None:
    throttle = LogThrottle(burst=2, interval=10.0)
    admitted = [throttle.admit("bad signature", 0.1 * i) for i in range(6)]
    assert admitted == [True, True, False, False, False, False]
    assert throttle.admit("too many", 0.5) is True  # another reason has its own burst
    assert throttle.take(5.0) == []
    assert throttle.next_deadline() == 10.0
    (counted,) = throttle.take(10.0)
    assert (counted.reason, counted.count) == ("bad signature", 4)
    assert throttle.admit("bad signature", 10.5) is True  # a new window


def _serve(*argv: str, env: dict[str, str] | None = None) -> object:
    return config_from_args(["serve", *argv], env or {})[1]


def test_timeout_flags_and_environment() -> None:
    config = _serve()
    assert (config.start_timeout, config.media_timeout, config.provider_timeout) == (10, 15, 5)  # type: ignore[attr-defined]
    assert config.limits.shutdown_grace == 30  # type: ignore[attr-defined]
    config = _serve(
        "--start-timeout",
        "2.5",
        "--provider-timeout",
        "3",
        "--error-message",
        "Sorry.",
        env={"PATTER_MEDIA_TIMEOUT": "7", "PATTER_SHUTDOWN_GRACE": "1.5", "PATTER_START_TIMEOUT": "9"},
    )
    assert config.start_timeout == 2.5  # type: ignore[attr-defined]  # the flag wins
    assert config.media_timeout == 7  # type: ignore[attr-defined]
    assert config.provider_timeout == 3  # type: ignore[attr-defined]
    assert config.limits.shutdown_grace == 1.5  # type: ignore[attr-defined]
    assert config.error_message == "Sorry."  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["--start-timeout", "0"], {}, "--start-timeout must be a positive number of seconds"),
        (["--media-timeout", "nan"], {}, "--media-timeout must be a positive"),
        ([], {"PATTER_PROVIDER_TIMEOUT": "-1"}, "PATTER_PROVIDER_TIMEOUT must be a positive"),
        (["--shutdown-grace", "inf"], {}, "--shutdown-grace must be a positive"),
    ],
)
def test_bad_timeouts_are_one_line_errors(argv: list[str], env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        _serve(*argv, env=env)


def test_api_timeouts_are_validated() -> None:
    from patter_anyio import InvalidOption, Patter

    phone = Patter()
    with pytest.raises(InvalidOption, match="provider_timeout must be a positive"):
        phone.agent(provider="echo", provider_timeout=0)
    with pytest.raises(InvalidOption, match="error_message must be text"):
        phone.agent(provider="echo", error_message=3)  # type: ignore[arg-type]


def test_stream_secret_roll_keeps_streams_of_the_old_secret() -> None:
    old, new = b"the-old-secret-0123456789", b"the-new-secret-0123456789"
    on_old = StreamTokens.from_list(old)
    rolling = StreamTokens.from_list(new + b"," + old)
    rolled = StreamTokens.from_list(new)
    token_old = on_old.issue("CA1", 100.0)
    token_new = rolling.issue("CA1", 100.0)
    # An instance mid-roll accepts both; its own tokens use the new secret.
    rolling.verify(token_old, "CA1", 101.0)
    rolling.verify(token_new, "CA1", 101.0)
    rolled.verify(token_new, "CA1", 101.0)
    with pytest.raises(SignatureError):
        on_old.verify(token_new, "CA1", 101.0)  # an instance not rolled yet refuses new tokens
    with pytest.raises(SignatureError):
        rolled.verify(token_old, "CA1", 101.0)  # after the roll, old tokens are dead


def test_stream_secret_list_is_validated() -> None:
    from patter_anyio import InvalidOption, Patter

    with pytest.raises(ConfigError, match="each stream secret must be at least 16"):
        _serve("--stream-secret", "a-long-enough-secret-1,short")
    config = _serve(env={"PATTER_STREAM_SECRET": "a-long-enough-secret-1,a-long-enough-secret-0"})
    assert config.stream_secret.split(",")[0] == "a-long-enough-secret-1"  # type: ignore[attr-defined]
    with pytest.raises(InvalidOption, match="comma-separated"):
        Patter(stream_secret="a-long-enough-secret-1,")


@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=False)), max_size=8))
def test_earliest_is_the_smallest_deadline_set(deadlines: list[float | None]) -> None:
    from patter_core._deadlines import earliest

    present = [d for d in deadlines if d is not None]
    assert earliest(*deadlines) == (min(present) if present else None)
