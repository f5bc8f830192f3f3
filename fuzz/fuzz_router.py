"""Fuzz the pure router: any request head routes or rejects, nothing else.

Run: ``python -m fuzz.fuzz_router --examples 5000``.
"""

from __future__ import annotations

import argparse
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patter_core.http import Reject, Route, Router, ServerLimits, TrustedProxies
from patter_core.http._clientip import client_ip

_PATHS = st.sampled_from(
    [
        "/health",
        "/webhooks/twilio/voice",
        "/webhooks/telnyx/voice",
        "/ws/stream/",
        "/ws/telnyx/stream/",
        "/",
        "",
        "*",
    ]
)
_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=40)
_HEADER_NAMES = st.sampled_from(
    [
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "content-length",
        "x-forwarded-for",
        "host",
    ]
)
_HEADERS = st.lists(st.tuples(st.one_of(_HEADER_NAMES, _TEXT), _TEXT), max_size=8)
_METHODS = st.one_of(st.sampled_from(["GET", "POST", "HEAD", "PUT"]), _TEXT)


def check(method: str, target: str, headers: list[tuple[str, str]], peer: str) -> None:
    router = Router(ServerLimits(max_ws_per_ip=2), trusted_proxies=["127.0.0.1", "10.0.0.0/8"])
    for _ in range(3):
        decision = router.route(method, target, headers, peer)
        assert isinstance(decision, (Route, Reject))
        if isinstance(decision, Reject):
            assert 400 <= decision.status < 600
        elif decision.endpoint.is_websocket:
            assert decision.websocket_accept is not None
            assert decision.call_id
    ip = client_ip(peer, headers, TrustedProxies(["127.0.0.1"]))
    assert isinstance(ip, str)


_STRATEGY = (
    _METHODS,
    st.one_of(st.builds(lambda p, s: p + s, _PATHS, _TEXT), _TEXT),
    _HEADERS,
    st.one_of(st.sampled_from(["127.0.0.1", "10.1.2.3", "::1", "::ffff:127.0.0.1"]), _TEXT),
)


def run(examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(*_STRATEGY)
    def target(method: str, path: str, headers: list[tuple[str, str]], peer: str) -> None:
        check(method, path, headers, peer)

    target()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=3000)
    args = parser.parse_args(argv)
    try:
        run(args.examples)
    except Exception as exc:  # the falsifying example is printed by Hypothesis
        print(f"fuzz_router: FAILED: {exc!r}")
        return 1
    print(f"fuzz_router: {args.examples} examples, no unexpected exception")
    return 0


if __name__ == "__main__":
    sys.exit(main())
