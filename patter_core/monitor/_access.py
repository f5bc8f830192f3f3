"""Who may read the dashboard, the call API and ``/metrics``.

Theory of operation: the decision depends on where the server listens and
whether a token is configured.

* Bound to a loopback address (``127.0.0.1``, ``::1``, ``localhost``) and
  no token configured: only this machine can connect, so the pages are open.
* A token configured (whatever the address: a reverse proxy on this
  machine makes a loopback bind public): a request must carry it, as
  ``Authorization: Bearer <token>``, as the cookie this module sets, or
  once as ``?token=<token>`` (what a browser can be given); the query form
  answers with an HttpOnly cookie, so the page's own requests and its
  event stream carry it from then on. Anything else: 401.
* Bound to a non-loopback address without a token: the pages are off
  (404), and :meth:`MonitorAccess.startup_message` says so.

Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

__all__ = ["AccessDecision", "MonitorAccess", "is_loopback", "token_problem"]

COOKIE_NAME = "patter_dashboard"


#: A token travels in a header, a cookie and a query: visible ASCII, none of
#: the characters those grammars reserve (RFC 6265 section 4.1.1 cookie-octet).
_TOKEN_RESERVED = frozenset(' ",;\\')


def token_problem(token: str) -> str | None:
    """Why ``token`` cannot be a dashboard token, or None."""
    if len(token) < 16:
        return "the dashboard token must be at least 16 characters"
    if any(not (33 <= ord(c) <= 126) or c in _TOKEN_RESERVED for c in token):
        return "the dashboard token must be visible ASCII without spaces, quotes, commas, semicolons or backslashes"
    return None


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve anywhere


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessDecision:
    """``status`` 200 to serve (with ``set_cookie`` to send, if any), else
    the status to refuse with and why."""

    status: int
    reason: str = ""
    set_cookie: str | None = None

    @property
    def allowed(self) -> bool:
        return self.status == 200


class MonitorAccess:
    __slots__ = ("loopback", "token")

    def __init__(self, *, bind_host: str, token: str | None = None) -> None:
        problem = token_problem(token) if token else None
        if problem:
            raise ValueError(problem)
        self.loopback = is_loopback(bind_host)
        self.token = token or None

    @property
    def enabled(self) -> bool:
        return self.loopback or self.token is not None

    def startup_message(self) -> str | None:
        """A line for the start-up log when the pages are off."""
        if self.enabled:
            return None
        return (
            "the dashboard and /metrics are off: the server binds a non-loopback address "
            "and no dashboard token is set (--dashboard-token or PATTER_DASHBOARD_TOKEN)"
        )

    def check(self, headers: Sequence[tuple[str, str]], query: str) -> AccessDecision:
        if not self.enabled:
            return AccessDecision(status=404, reason="the dashboard is off on this server")
        token = self.token
        if token is None:
            return AccessDecision(status=200)
        for name, value in headers:
            name = name.lower()
            if name == "authorization":
                scheme, _, credential = value.strip().partition(" ")
                if scheme.lower() == "bearer" and _same(credential.strip(), token):
                    return AccessDecision(status=200)
            elif name == "cookie":
                for part in value.split(";"):
                    key, _, cookie = part.strip().partition("=")
                    if key == COOKIE_NAME and _same(cookie, token):
                        return AccessDecision(status=200)
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key == "token" and _same(value, token):
                return AccessDecision(
                    status=200,
                    set_cookie=f"{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/",
                )
        return AccessDecision(status=401, reason="a dashboard token is required")


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))
