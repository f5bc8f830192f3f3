"""Tools and message handlers on another server: the I/O half.

What goes on the wire, the signature, the retry rule and the SSRF rule are
``patter_core.webhooks``' (``_outgoing.py``); this module resolves the
host, sends the attempts and sleeps between them. A :class:`RemoteTool` is
a tool handler like any other, so the call runner needs nothing new: a
failure raises :class:`ToolFailed`, which reaches the model as a tool
result with its error flag set.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import anyio

from patter_core import PatterError
from patter_core.http import HttpRequest, HttpResponse
from patter_core.webhooks import RetryPolicy
from patter_core.webhooks._outgoing import (
    DEFAULT_MAX_WEBHOOK_RESPONSE_BYTES,
    DEFAULT_WEBHOOK_TIMEOUT,
    WEBHOOK_RETRY,
    address_problem,
    message_reply,
    message_webhook_request,
    tool_webhook_answer,
    tool_webhook_request,
)

from ..net._httpclient import (
    ClientConnectionError,
    ClientError,
    ClientProtocolError,
    ClientTimeout,
    request,
)

__all__ = ["RemoteMessageHandler", "RemoteTool", "ToolFailed", "with_default_secret"]

log = logging.getLogger("patter_anyio.remote")


class ToolFailed(PatterError):
    """A tool could not give a result; the message is what the model hears."""


async def _check_resolved(url: str) -> None:
    """The SSRF rule for a name: every address it resolves to must be public."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ToolFailed(f"cannot resolve {host}: {exc}") from None
    for info in infos:
        problem = address_problem(str(info[4][0]))
        if problem:
            raise ToolFailed(f"{host}: {problem}")


async def _send(
    build: Callable[[int], HttpRequest],
    url: str,
    *,
    allow_private: bool,
    timeout: float,
    policy: RetryPolicy,
    max_response_bytes: int,
) -> HttpResponse:
    """Attempts until one is answered with a non-5xx, or the policy gives up."""
    if not allow_private:
        await _check_resolved(url)
    attempt = 0
    while True:
        attempt += 1
        try:
            response = await request(
                build(attempt), timeout=timeout, max_response_bytes=max_response_bytes
            )
        except (ClientConnectionError, ClientTimeout, ClientProtocolError) as exc:
            delay = policy.delay_after(attempt, None)
            if delay is None:
                raise ToolFailed(f"{url} did not answer after {attempt} attempts: {exc}") from None
            log.info("webhook %s attempt %d failed (%s); retrying", url, attempt, exc)
        except ClientError as exc:  # too large, a redirect: sending again cannot help
            raise ToolFailed(f"{url}: {exc}") from None
        else:
            delay = policy.delay_after(attempt, response.status)
            if delay is None:
                return response
            log.info("webhook %s attempt %d answered %d; retrying", url, attempt, response.status)
        await anyio.sleep(delay)


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteTool:
    """A tool handler that POSTs the call to ``url`` (``Tool(webhook_url=...)``)."""

    name: str
    url: str
    secret: bytes | None = None
    allow_private: bool = False
    timeout: float = DEFAULT_WEBHOOK_TIMEOUT
    retry: RetryPolicy = WEBHOOK_RETRY
    max_response_bytes: int = DEFAULT_MAX_WEBHOOK_RESPONSE_BYTES

    async def __call__(self, arguments: dict[str, Any], call: dict[str, Any]) -> str:
        response = await _send(
            lambda attempt: tool_webhook_request(
                self.url,
                tool=self.name,
                arguments=arguments,
                call=call,
                attempt=attempt,
                secret=self.secret,
            ),
            self.url,
            allow_private=self.allow_private,
            timeout=self.timeout,
            policy=self.retry,
            max_response_bytes=self.max_response_bytes,
        )
        answer = tool_webhook_answer(self.name, response)
        if answer.is_error:
            raise ToolFailed(answer.output)
        return answer.output


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteMessageHandler:
    """``on_message`` as a URL: the caller's text POSTed, the reply read back."""

    url: str
    secret: bytes | None = None
    allow_private: bool = False
    timeout: float = DEFAULT_WEBHOOK_TIMEOUT
    retry: RetryPolicy = WEBHOOK_RETRY

    async def __call__(self, message: dict[str, Any]) -> str:
        response = await _send(
            lambda attempt: message_webhook_request(
                self.url, message=message, attempt=attempt, secret=self.secret
            ),
            self.url,
            allow_private=self.allow_private,
            timeout=self.timeout,
            policy=self.retry,
            max_response_bytes=DEFAULT_MAX_WEBHOOK_RESPONSE_BYTES,
        )
        reply = message_reply(response)
        if reply is None:
            raise ToolFailed(f"on_message {self.url} answered {response.status}")
        return reply


def with_default_secret(handler: Any, secret: bytes | None) -> Any:
    """``handler`` signed with ``secret`` when it is remote and has none of its own."""
    if secret and isinstance(handler, RemoteTool | RemoteMessageHandler) and not handler.secret:
        return replace(handler, secret=secret)
    return handler


def tool_handlers(tools: Mapping[str, Any], secret: bytes | None) -> dict[str, Any]:
    return {name: with_default_secret(handler, secret) for name, handler in tools.items()}
