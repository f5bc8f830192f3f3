"""Stream tokens: HMAC-bound to a call id and an expiry."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core import LocalProtocolError, SignatureError
from patter_core.webhooks import StreamTokens
from patter_core.webhooks._tokens import DEFAULT_STREAM_TOKEN_TTL_S

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = 1_700_000_000.25


def test_issue_and_verify() -> None:
    tokens = StreamTokens(SECRET)
    token = tokens.issue("CA1", NOW)
    assert re.fullmatch(r"v1\.\d+\.[A-Za-z0-9_-]{43}", token)
    assert token.split(".")[1] == str(1_700_000_000 + 301)  # ceil(now + 300)
    tokens.verify(token, "CA1", NOW)
    tokens.verify(token, "CA1", NOW + DEFAULT_STREAM_TOKEN_TTL_S)
    # another instance with the same secret agrees
    StreamTokens(SECRET).verify(token, "CA1", NOW + 10)


def test_rejections() -> None:
    tokens = StreamTokens(SECRET)
    token = tokens.issue("CA1", NOW, ttl=60)
    with pytest.raises(SignatureError, match="expired"):
        tokens.verify(token, "CA1", NOW + 61)
    with pytest.raises(SignatureError, match="expired"):
        tokens.verify(token, "CA1", float("nan"))
    with pytest.raises(SignatureError, match="not valid"):
        tokens.verify(token, "CA2", NOW)
    with pytest.raises(SignatureError, match="not valid"):
        StreamTokens(b"another secret of 32 bytes......").verify(token, "CA1", NOW)
    _version, expiry, mac = token.split(".")
    for bad in (
        "",
        "garbage",
        f"v2.{expiry}.{mac}",
        f"v1.{int(expiry) + 1000}.{mac}",  # extending the expiry breaks the MAC
        f"v1.0{expiry}.{mac}",
        f"v1.{expiry}.{mac}=",
        f"v1.{expiry}.{mac[:-1]}",
        f"v1.-{expiry}.{mac}",
        f"v1.{expiry}.{mac}é",
        "v1." + "9" * 40 + "." + mac,
        token * 3,
    ):
        with pytest.raises(SignatureError):
            tokens.verify(bad, "CA1", NOW)


def test_rotation_and_configuration() -> None:
    old = StreamTokens(SECRET)
    token = old.issue("CA1", NOW)
    new = StreamTokens(b"n" * 32, previous_secrets=[SECRET])
    new.verify(token, "CA1", NOW)
    with pytest.raises(SignatureError):
        StreamTokens(SECRET).verify(new.issue("CA1", NOW), "CA1", NOW)
    with pytest.raises(LocalProtocolError):
        StreamTokens(b"short")
    with pytest.raises(LocalProtocolError):
        old.issue("", NOW)
    with pytest.raises(LocalProtocolError):
        old.issue("CA1", NOW, ttl=0)
    with pytest.raises(LocalProtocolError):
        old.issue("CA1", float("nan"))


@settings(max_examples=200, deadline=None)
@given(
    call_id=st.text(st.characters(codec="utf-8"), min_size=1, max_size=60),
    other=st.text(max_size=60),
    now=st.floats(0, 4e9),
    ttl=st.floats(0.001, 86400),
)
def test_tokens_bind_call_id_and_time(call_id: str, other: str, now: float, ttl: float) -> None:
    tokens = StreamTokens(SECRET)
    token = tokens.issue(call_id, now, ttl)
    assert re.fullmatch(r"[A-Za-z0-9._-]+", token)  # safe in a URL, header or TwiML
    tokens.verify(token, call_id, now)
    tokens.verify(token, call_id, now + ttl)
    with pytest.raises(SignatureError):
        tokens.verify(token, call_id, now + ttl + 1.0)
    if other != call_id:
        with pytest.raises(SignatureError):
            tokens.verify(token, other, now)
