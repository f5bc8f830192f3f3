"""The one error of the dial tool, and the webhook POST that fails with it."""

from __future__ import annotations

from patter_core import PatterError
from patter_core.http import HttpRequest, HttpResponse

from ..net._httpclient import (
    ClientConnectionError,
    ClientError,
    ClientTimeout,
    RedirectRefused,
    request,
)

__all__ = ["DialError", "post_webhook"]


class DialError(PatterError):
    """The call could not be made or failed; ``exit_code`` is 1, or 2 for bad options."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


async def post_webhook(
    req: HttpRequest, *, server: str, name: str, carrier: str, timeout: float, max_bytes: int
) -> HttpResponse:
    """POST one webhook as the carrier would; a failure to get an answer is a DialError.

    ``name`` says which webhook in the messages (``"webhook"``,
    ``"call.initiated webhook"``); ``carrier`` who would not follow a redirect.
    The answer's status is the caller's to judge.
    """
    try:
        return await request(req, timeout=timeout, max_response_bytes=max_bytes)
    except ClientConnectionError as exc:
        raise DialError(f"cannot reach the server at {server}: {exc}") from None
    except ClientTimeout:
        raise DialError(
            f"the server at {server} did not answer the {name} within {timeout:g} s"
        ) from None
    except RedirectRefused as exc:
        raise DialError(
            f"the {name} answered {exc.status} (redirect to {exc.location}); "
            f"{carrier} would not follow it"
        ) from None
    except ClientError as exc:
        raise DialError(f"the {name} failed: {exc}") from None
