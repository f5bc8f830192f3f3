"""The one way a carrier REST request goes out.

Every carrier request (answer, stream, hang up, record, dial, say) is built
by ``patter_core.webhooks``; this sends it with one timeout and the core's
one response size limit for carrier APIs
(:data:`~patter_core.webhooks._rest.DEFAULT_MAX_CARRIER_RESPONSE_BYTES`),
again as a :class:`~patter_core.webhooks.RetryPolicy` allows (Telnyx
commands carry a ``command_id`` and may be repeated; Twilio's are sent once).
"""

from __future__ import annotations

import logging

from patter_core import PatterError
from patter_core.http import HttpRequest, HttpResponse
from patter_core.webhooks import RetryPolicy
from patter_core.webhooks._rest import DEFAULT_MAX_CARRIER_RESPONSE_BYTES

from ._httpclient import ClientError, HttpPool, request_with_retry

__all__ = ["CARRIER_TIMEOUT", "carrier_request", "send_rest"]

log = logging.getLogger("patter_anyio.rest")

#: Seconds a carrier request may take, answer included. Twilio times its own
#: webhooks out after 15 s; a REST call slower than that is as good as lost.
CARRIER_TIMEOUT = 15.0
#: Sent once: a request that is not known to be safe to repeat.
_ONCE = RetryPolicy(max_attempts=1)


async def carrier_request(
    req: HttpRequest,
    *,
    retry: RetryPolicy | None = None,
    timeout: float = CARRIER_TIMEOUT,
    pool: HttpPool | None = None,
) -> HttpResponse:
    """Send ``req``; its answer, or the client's error (``ClientError``)."""
    return await request_with_retry(
        req,
        retry or _ONCE,
        timeout=timeout,
        max_response_bytes=DEFAULT_MAX_CARRIER_RESPONSE_BYTES,
        pool=pool,
    )


async def send_rest(
    req: HttpRequest,
    purpose: str,
    *,
    retry: RetryPolicy | None = None,
    timeout: float = CARRIER_TIMEOUT,
    pool: HttpPool | None = None,
) -> HttpResponse | None:
    """Send a carrier command whose failure the call outlives: a failure or
    a refusal is one WARNING line naming ``purpose``; None when no answer came."""
    try:
        response = await carrier_request(req, retry=retry, timeout=timeout, pool=pool)
    except (ClientError, PatterError) as exc:
        log.warning("carrier %s request failed: %s", purpose, exc)
        return None
    if response.status >= 300:
        log.warning(
            "carrier %s request answered %d: %s",
            purpose,
            response.status,
            response.body[:200].decode("utf-8", "replace"),
        )
    else:
        log.info("carrier %s request done (%d)", purpose, response.status)
    return response
