"""What the carrier REST builders share: errors and JSON response checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._errors import LocalProtocolError, MalformedMessage, RemoteProtocolError
from .._json import load_message
from ..http import HttpResponse

__all__ = ["DEFAULT_MAX_CARRIER_RESPONSE_BYTES", "CarrierApiError", "RetryPolicy", "json_object"]

# Call resources are a few KB; a megabyte is generous and still bounds what
# a misbehaving endpoint can make us parse.
DEFAULT_MAX_CARRIER_RESPONSE_BYTES = 1024 * 1024


class CarrierApiError(RemoteProtocolError):
    """The carrier's REST API refused a request or answered nonsense.

    ``api_status`` is the HTTP status it answered with (0 when the body was
    unreadable), ``api_code``/``api_message`` its own error code and text when
    it gave them. ``http_status`` (what *we* answer upstream, if anything) is
    502: the fault is the upstream service's.
    """

    def __init__(
        self,
        message: str,
        *,
        api_status: int,
        api_code: str | None = None,
        api_message: str | None = None,
    ) -> None:
        super().__init__(message, http_status=502, close_code=1011)
        self.api_status = api_status
        self.api_code = api_code
        self.api_message = api_message


def json_object(
    response: HttpResponse, *, max_bytes: int = DEFAULT_MAX_CARRIER_RESPONSE_BYTES
) -> dict[str, Any]:
    """The response body as a JSON object, or :class:`CarrierApiError`."""
    try:
        return load_message(response.body, max_bytes)
    except MalformedMessage as exc:
        raise CarrierApiError(
            f"unusable response (status {response.status}): {exc}", api_status=response.status
        ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When to send a carrier command again.

    Telnyx's guidance is to retry a 5xx, and a ``command_id`` makes it run a
    repeated command once within 60 s (PROTOCOLS.md §4.4, "Duplicates"). So a
    5xx or a failed connection is retried after ``first_delay_s``, doubling
    up to ``max_delay_s``, for ``max_attempts`` attempts in all; a 4xx never
    is (the request itself is wrong, or the call is gone: sending it again
    cannot help). The defaults spend 3.5 s of waiting at most, well inside
    Telnyx's 60 s window.
    """

    max_attempts: int = 4
    first_delay_s: float = 0.5
    max_delay_s: float = 4.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or not 1 <= self.max_attempts <= 10:
            raise LocalProtocolError("max_attempts must be an int in 1..10")
        if not 0 <= self.first_delay_s <= self.max_delay_s <= 60:
            raise LocalProtocolError("need 0 <= first_delay_s <= max_delay_s <= 60")

    def delay_after(self, attempts: int, status: int | None) -> float | None:
        """Seconds to wait before the next attempt, or None to stop.

        ``attempts`` made so far; ``status`` of the last answer, None when
        the connection failed.
        """
        if status is not None and status < 500:
            return None
        if attempts >= self.max_attempts:
            return None
        return float(min(self.first_delay_s * 2 ** (attempts - 1), self.max_delay_s))
