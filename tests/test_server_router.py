"""The pure routing core: paths, methods, upgrades, limits, client IPs."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fuzz import fuzz_router
from patter_core import LocalProtocolError
from patter_core.http import (
    ConnectionLimiter,
    Endpoint,
    Reject,
    Route,
    Router,
    ServerLimits,
    TrustedProxies,
)
from patter_core.http._clientip import client_ip
from patter_core.http._router import websocket_accept

UPGRADE = [
    ("host", "x"),
    ("upgrade", "websocket"),
    ("connection", "keep-alive, Upgrade"),
    ("sec-websocket-version", "13"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
]


def test_rfc6455_accept_example() -> None:
    # RFC 6455 section 1.3.
    assert websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("method", "target", "endpoint"),
    [
        ("GET", "/health", Endpoint.HEALTH),
        ("HEAD", "/health", Endpoint.HEALTH),
        ("POST", "/webhooks/twilio/voice", Endpoint.TWILIO_VOICE),
        ("POST", "/webhooks/twilio/voice?foo=1&bar=2", Endpoint.TWILIO_VOICE),
        ("POST", "/webhooks/twilio/recording", Endpoint.TWILIO_RECORDING),
        ("POST", "/webhooks/twilio/amd", Endpoint.TWILIO_AMD),
        ("POST", "/webhooks/twilio/status", Endpoint.TWILIO_STATUS),
        ("POST", "/webhooks/twilio/stream-status", Endpoint.TWILIO_STREAM_STATUS),
        ("POST", "/webhooks/telnyx/voice", Endpoint.TELNYX_VOICE),
    ],
)
def test_http_routes(method: str, target: str, endpoint: Endpoint) -> None:
    decision = Router().route(method, target, [("host", "x")], "127.0.0.1")
    assert isinstance(decision, Route)
    assert decision.endpoint is endpoint
    assert decision.target == target
    assert decision.path == target.partition("?")[0]


def test_websocket_routes_and_slots() -> None:
    router = Router(ServerLimits(max_ws_per_ip=2))
    a = router.route("GET", "/ws/stream/CA123", UPGRADE, "127.0.0.1")
    b = router.route("GET", "/ws/telnyx/stream/v3%3Aabc", UPGRADE, "127.0.0.1")
    assert isinstance(a, Route) and isinstance(b, Route)
    assert (a.endpoint, a.call_id) == (Endpoint.TWILIO_STREAM, "CA123")
    assert (b.endpoint, b.call_id) == (Endpoint.TELNYX_STREAM, "v3:abc")
    assert a.upgrade_headers() == [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    ]
    third = router.route("GET", "/ws/stream/CA9", UPGRADE, "127.0.0.1")
    assert isinstance(third, Reject) and third.status == 429
    # Another address is not affected.
    assert isinstance(router.route("GET", "/ws/stream/CA9", UPGRADE, "10.0.0.1"), Route)
    router.release(a)
    assert isinstance(router.route("GET", "/ws/stream/CA9", UPGRADE, "127.0.0.1"), Route)


@pytest.mark.parametrize(
    ("method", "target", "headers", "status"),
    [
        ("GET", "/nope", [], 404),
        ("GET", "/ws/stream/", UPGRADE, 404),
        ("GET", "/ws/stream/a/b", UPGRADE, 404),
        ("GET", "/ws/stream/%ff", UPGRADE, 404),
        ("GET", "/ws/stream/" + "a" * 129, UPGRADE, 404),
        ("GET", "http://x/health", [], 400),
        ("POST", "/health", [], 405),
        ("GET", "/webhooks/twilio/voice", [], 405),
        ("POST", "/ws/stream/CA1", UPGRADE, 405),
        ("GET", "/ws/stream/CA1", [], 426),
        ("GET", "/ws/stream/CA1", [*UPGRADE[:3], ("sec-websocket-version", "8"), UPGRADE[4]], 426),
        ("GET", "/ws/stream/CA1", [*UPGRADE[:4], ("sec-websocket-key", "c2hvcnQ=")], 400),
        ("GET", "/ws/stream/CA1", [*UPGRADE[:4], ("sec-websocket-key", "!!!")], 400),
        ("GET", "/ws/stream/CA1", UPGRADE[:4], 400),
        ("POST", "/webhooks/twilio/voice", [("content-length", str(1024 * 1024 + 1))], 413),
        ("GET", "/health", [("x-pad", "p" * 20000)], 431),
    ],
)
def test_rejections(method: str, target: str, headers: list[tuple[str, str]], status: int) -> None:
    decision = Router().route(method, target, headers, "127.0.0.1")
    assert isinstance(decision, Reject)
    assert decision.status == status


@pytest.mark.parametrize("length", ["x", "-1", "9999999\u00b9", "\u0662"])
def test_a_content_length_that_is_not_ascii_digits_is_not_judged_here(length: str) -> None:
    # h11 refuses such a header at the socket; the pure router must not raise
    # on it either ("\u00b9" is a digit to str.isdigit() and not to int()).
    decision = Router().route("POST", "/webhooks/twilio/voice", [("content-length", length)], "::1")
    assert isinstance(decision, Route)
    assert decision.endpoint is Endpoint.TWILIO_VOICE


def test_405_lists_allowed_methods() -> None:
    decision = Router().route("DELETE", "/health", [], "127.0.0.1")
    assert isinstance(decision, Reject)
    assert decision.headers == (("allow", "GET, HEAD"),)


def test_client_ip_default_ignores_forwarded_for() -> None:
    headers = [("x-forwarded-for", "1.2.3.4")]
    assert client_ip("127.0.0.1", headers, TrustedProxies()) == "127.0.0.1"
    # A peer that is not trusted cannot claim another address either.
    assert client_ip("8.8.8.8", headers, TrustedProxies(["127.0.0.1"])) == "8.8.8.8"


def test_client_ip_walks_trusted_hops_from_the_right() -> None:
    trusted = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    headers = [("x-forwarded-for", "6.6.6.6, 1.2.3.4"), ("x-forwarded-for", "10.1.1.1")]
    assert client_ip("127.0.0.1", headers, trusted) == "1.2.3.4"
    assert client_ip("127.0.0.1", [("x-forwarded-for", "garbage, 10.0.0.2")], trusted) == "10.0.0.2"
    assert client_ip("::ffff:127.0.0.1", [("x-forwarded-for", "[2001:db8::1]:443")], trusted) == (
        "2001:db8::1"
    )
    assert client_ip("127.0.0.1", [], trusted) == "127.0.0.1"


def _canon(text: str) -> str:
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.ip_addresses().map(str), max_size=6),
    st.lists(st.ip_addresses().map(str), min_size=1, max_size=3),
)
def test_client_ip_is_the_rightmost_untrusted(chain: list[str], proxies: list[str]) -> None:
    trusted = TrustedProxies(proxies)
    peer = proxies[0]
    result = client_ip(peer, [("x-forwarded-for", ", ".join(chain))], trusted)
    # Oracle: walk right to left past trusted hops.
    expected = _canon(peer)
    for hop in reversed(chain):
        expected = _canon(hop)
        if expected not in trusted:
            break
    assert result == expected


def test_limiter_counts() -> None:
    limiter = ConnectionLimiter(2)
    assert limiter.acquire("a") and limiter.acquire("a") and not limiter.acquire("a")
    assert limiter.acquire("b") and len(limiter) == 2
    limiter.release("a")
    limiter.release("a")
    assert limiter.count("a") == 0 and len(limiter) == 1
    with pytest.raises(LocalProtocolError):
        limiter.release("a")
    with pytest.raises(LocalProtocolError):
        ConnectionLimiter(0)


def test_limits_are_finite_and_validated() -> None:
    limits = ServerLimits()
    assert (limits.max_head_bytes, limits.max_body_bytes, limits.max_ws_per_ip) == (
        16384,
        1048576,
        10,
    )
    with pytest.raises(LocalProtocolError):
        ServerLimits(header_timeout=float("inf"))
    with pytest.raises(LocalProtocolError):
        ServerLimits(max_body_bytes=0)
    with pytest.raises(LocalProtocolError):
        TrustedProxies(["nope"])


def test_fuzz_harness_runs() -> None:
    fuzz_router.run(60)
    assert fuzz_router.main(["--examples", "20"]) == 0


def test_header_lookup_is_case_blind_and_ordered() -> None:
    from patter_core.http._types import find_header, header_values

    headers = (("Host", "a"), ("x-forwarded-for", "1.1.1.1, 2.2.2.2"), ("X-Forwarded-For", "3.3.3.3"))
    assert header_values(headers, "X-FORWARDED-FOR") == ["1.1.1.1, 2.2.2.2", "3.3.3.3"]
    assert find_header(headers, "x-forwarded-for") == "1.1.1.1, 2.2.2.2"
    assert find_header(headers, "HOST") == "a"
    assert find_header(headers, "cookie") is None and header_values(headers, "cookie") == []


def test_mounted_prefixes_take_every_other_path_and_method() -> None:
    """A router built with ``mounts`` (the dial tool's fake carrier API)
    hands paths under them to the application, any method; the product's
    own paths still win, and a router without mounts still answers 404."""
    mounted = Router(mounts=("/v2/", "/calls/"))
    for method, target in (("POST", "/v2/calls/x/actions/answer"), ("DELETE", "/calls/y")):
        route = mounted.route(method, target, [], "127.0.0.1")
        assert isinstance(route, Route) and route.endpoint is Endpoint.MOUNTED, route
        assert route.target == target
    health = mounted.route("GET", "/health", [], "127.0.0.1")
    assert isinstance(health, Route) and health.endpoint is Endpoint.HEALTH
    elsewhere = mounted.route("POST", "/elsewhere", [], "127.0.0.1")
    assert isinstance(elsewhere, Reject) and elsewhere.status == 404
    plain = Router().route("POST", "/v2/calls/x/actions/answer", [], "127.0.0.1")
    assert isinstance(plain, Reject) and plain.status == 404
    big = mounted.route("POST", "/v2/x", [("content-length", str(2 << 20))], "127.0.0.1")
    assert isinstance(big, Reject) and big.status == 413  # the server's limits still hold
