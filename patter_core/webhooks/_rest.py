"""What the carrier REST builders share: errors and JSON response checks."""

from __future__ import annotations

import json
from typing import Any

from .._errors import RemoteProtocolError
from ..http import HttpResponse

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "CarrierApiError", "json_object"]

# Call resources are a few KB; a megabyte is generous and still bounds what
# a misbehaving endpoint can make us parse.
DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024


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
    response: HttpResponse, *, max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
) -> dict[str, Any]:
    """The response body as a JSON object, or :class:`CarrierApiError`."""
    if len(response.body) > max_bytes:
        raise CarrierApiError("response body too large", api_status=response.status)
    try:
        data = json.loads(response.body)
    except (ValueError, RecursionError):
        raise CarrierApiError(
            f"response is not JSON (status {response.status})", api_status=response.status
        ) from None
    if not isinstance(data, dict):
        raise CarrierApiError("response is not a JSON object", api_status=response.status)
    return data
