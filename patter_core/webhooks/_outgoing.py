"""Webhooks we send: tools and message handlers that live on another server.

A tool with a ``webhook_url`` is called with one ``POST`` of JSON::

    {"tool": name, "arguments": {...}, "call_id": ..., "caller": ...,
     "callee": ..., "attempt": 1}

and its answer (a 2xx) is what the model gets: the body as text, up to
:data:`DEFAULT_MAX_WEBHOOK_RESPONSE_BYTES`. An ``on_message`` URL gets
``{"text", "call_id", "caller", "callee", "attempt"}`` and answers with the
reply: ``{"text": reply}`` as JSON, or the body as plain text.

Signing. With a secret, every request carries ``X-Patter-Signature:
sha256=<hex>``: HMAC-SHA256 (RFC 2104) of the exact body bytes, so the
receiver can check the call came from this server (and, through
``attempt`` and ``call_id`` in the body, tell a retry from a new call).

Retries (:data:`WEBHOOK_RETRY`): a failed connection, a timeout or a 5xx
is sent again, twice at most, after 0.5 s then 1 s; a 4xx never is (the
receiver understood and refused: sending it again cannot help).

The SSRF rule. A webhook URL is chosen by whoever configures the agent,
but a tool's target must not be this machine's neighbours: an address that
is loopback, private (RFC 1918, RFC 4193), link-local (169.254.0.0/16, where
cloud metadata services answer), unspecified, multicast or reserved is
refused unless the tool sets ``allow_private_webhooks``. A literal address
is checked when the tool is built (:func:`webhook_url_problem`); a name is
checked after resolution, on every call (:func:`address_problem`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..http._types import HttpRequest, HttpResponse
from ._rest import RetryPolicy

__all__ = [
    "DEFAULT_MAX_WEBHOOK_RESPONSE_BYTES",
    "DEFAULT_WEBHOOK_TIMEOUT",
    "SIGNATURE_HEADER",
    "WEBHOOK_RETRY",
    "WebhookAnswer",
    "address_problem",
    "message_reply",
    "message_webhook_request",
    "sign_webhook_body",
    "tool_webhook_answer",
    "tool_webhook_request",
    "webhook_url_problem",
]

#: Seconds one attempt may take: a tool the caller waits on in silence.
DEFAULT_WEBHOOK_TIMEOUT = 10.0
#: A tool result is read to the model; a megabyte is far past any useful one.
DEFAULT_MAX_WEBHOOK_RESPONSE_BYTES = 1024 * 1024
#: Three attempts in all, 0.5 s then 1 s apart (module doc).
WEBHOOK_RETRY = RetryPolicy(max_attempts=3, first_delay_s=0.5, max_delay_s=1.0)
SIGNATURE_HEADER = "x-patter-signature"


def sign_webhook_body(secret: bytes, body: bytes) -> str:
    """The ``X-Patter-Signature`` value: ``sha256=`` and the hex HMAC of ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def address_problem(address: str) -> str | None:
    """Why a webhook may not go to ``address`` (an IP literal), or None.

    IPv4-mapped IPv6 addresses (``::ffff:127.0.0.1``) are judged as the
    IPv4 address they carry.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("unspecified", ip.is_unspecified),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
    ):
        if flag:
            return (
                f"webhook address {ip} is {kind}; set allow_private_webhooks=True "
                "to call a server on this network"
            )
    return None


def webhook_url_problem(url: object, *, allow_private: bool) -> str | None:
    """Why ``url`` cannot be a webhook, or None (checked once, when configured)."""
    if not isinstance(url, str):
        return f"a webhook URL must be text, not {type(url).__name__}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"not a URL: {url!r}"
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"a webhook URL must be http:// or https:// with a host, not {url!r}"
    if parts.username or parts.password:
        return "a webhook URL must not carry a user name or password (use a secret)"
    if parts.fragment:
        return "a webhook URL must not have a #fragment"
    if allow_private:
        return None
    host = parts.hostname
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None  # a name: checked after resolution, at call time
    return address_problem(host)


def _request(url: str, payload: Mapping[str, Any], secret: bytes | None) -> HttpRequest:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    headers = [("content-type", "application/json"), ("accept", "application/json, text/plain")]
    if secret:
        headers.append((SIGNATURE_HEADER, sign_webhook_body(secret, body)))
    return HttpRequest(method="POST", url=url, headers=tuple(headers), body=body)


def tool_webhook_request(
    url: str,
    *,
    tool: str,
    arguments: Mapping[str, Any],
    call: Mapping[str, Any],
    attempt: int,
    secret: bytes | None,
) -> HttpRequest:
    """The ``POST`` for one attempt at a webhook tool (module doc)."""
    payload = {
        "tool": tool,
        "arguments": dict(arguments),
        "call_id": call.get("call_id", ""),
        "caller": call.get("caller", ""),
        "callee": call.get("callee", ""),
        "attempt": attempt,
    }
    return _request(url, payload, secret)


def message_webhook_request(
    url: str, *, message: Mapping[str, Any], attempt: int, secret: bytes | None
) -> HttpRequest:
    """The ``POST`` for one attempt at an ``on_message`` URL (module doc)."""
    payload = {
        "text": message.get("text", ""),
        "call_id": message.get("call_id", ""),
        "caller": message.get("caller", ""),
        "callee": message.get("callee", ""),
        "attempt": attempt,
    }
    return _request(url, payload, secret)


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookAnswer:
    """What the model gets from a tool webhook's answer."""

    output: str
    is_error: bool


def _text(response: HttpResponse) -> str:
    return response.body.decode("utf-8", "replace")


def tool_webhook_answer(tool: str, response: HttpResponse) -> WebhookAnswer:
    """A 2xx body is the tool's result, as is; anything else is an error
    naming the status (and the start of the receiver's explanation)."""
    if 200 <= response.status < 300:
        return WebhookAnswer(output=_text(response), is_error=False)
    detail = _text(response).strip()[:200]
    message = f"tool {tool} webhook answered {response.status}"
    return WebhookAnswer(output=message + (f": {detail}" if detail else ""), is_error=True)


def message_reply(response: HttpResponse) -> str | None:
    """An ``on_message`` URL's reply text, or None when it failed.

    ``{"text": reply}`` (JSON) or a plain-text body; a 2xx with neither
    (an empty body, ``{"text": null}``) is "no reply".
    """
    if not 200 <= response.status < 300:
        return None
    text = _text(response)
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict):
        reply = data.get("text")
        return reply if isinstance(reply, str) else ""
    return data if isinstance(data, str) else text
