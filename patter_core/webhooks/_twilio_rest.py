"""Twilio REST requests, built as :class:`HttpRequest` values for the runtime.

Calls API, version 2010-04-01: ``POST /2010-04-01/Accounts/{AccountSid}/Calls.json``
creates a call, ``POST .../Calls/{CallSid}.json`` updates one (new TwiML, or
``Status=completed`` to hang up), ``POST .../Calls/{CallSid}/Recordings.json``
starts a recording. Bodies are URL-encoded forms; a list value (such as
``StatusCallbackEvent``) is sent as the same name repeated, which is how the
official SDK sends it. Authentication is HTTP Basic with the account SID (or
an API key SID) and its secret (RFC 7617).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from .._base_urls import DEFAULT_TWILIO_API
from .._errors import LocalProtocolError
from ..http import HttpRequest, HttpResponse
from ._rest import CarrierApiError, json_object
from ._twiml import INLINE_TWIML_MAX_CHARS

__all__ = ["TwilioCall", "TwilioRest", "parse_twilio_call"]


_Field = tuple[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class TwilioCall:
    """The parts of a Call (or Recording) resource we act on."""

    sid: str
    status: str | None


def _segment(value: str) -> str:
    if not value:
        raise LocalProtocolError("an empty SID cannot go in a URL path")
    return quote(value, safe="")


def _flag(value: bool) -> str:
    return "true" if value else "false"


class TwilioRest:
    """Builds Calls API requests for one account.

    ``username``/``password`` default to ``account_sid``/``auth_token``; pass
    an API key SID and secret to use those instead.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str = DEFAULT_TWILIO_API,
        username: str | None = None,
    ) -> None:
        self.account_sid = account_sid
        self._base = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{_segment(account_sid)}"
        user = username or account_sid
        credentials = base64.b64encode(f"{user}:{auth_token}".encode()).decode("ascii")
        self._headers = (
            ("authorization", f"Basic {credentials}"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "application/json"),
        )

    def _post(self, path: str, fields: Iterable[_Field | tuple[str, str | None]]) -> HttpRequest:
        present = [(k, v) for k, v in fields if v is not None]
        return HttpRequest(
            method="POST",
            url=f"{self._base}{path}",
            headers=self._headers,
            body=urlencode(present).encode("ascii"),
        )

    def create_call(
        self,
        *,
        to: str,
        from_: str,
        url: str | None = None,
        twiml: str | None = None,
        status_callback: str | None = None,
        status_callback_events: Sequence[str] = ("initiated", "ringing", "answered", "completed"),
        machine_detection: str | None = None,
        async_amd: bool | None = None,
        async_amd_status_callback: str | None = None,
        machine_detection_timeout: int | None = None,
        timeout: int | None = None,
    ) -> HttpRequest:
        """An outbound call that fetches TwiML from ``url`` or runs ``twiml``.

        ``machine_detection`` is ``"Enable"`` or ``"DetectMessageEnd"``
        (§2.4); with ``async_amd`` the result comes to
        ``async_amd_status_callback`` while the call already runs.
        """
        if (url is None) == (twiml is None):
            raise LocalProtocolError("give exactly one of url and twiml")
        if twiml is not None and len(twiml) > INLINE_TWIML_MAX_CHARS:
            raise LocalProtocolError(
                f"inline TwiML is {len(twiml)} characters; Twilio allows {INLINE_TWIML_MAX_CHARS}"
            )
        fields: list[tuple[str, str | None]] = [
            ("To", to),
            ("From", from_),
            ("Url", url),
            ("Twiml", twiml),
        ]
        if status_callback is not None:
            fields.append(("StatusCallback", status_callback))
            fields.append(("StatusCallbackMethod", "POST"))
            fields.extend(("StatusCallbackEvent", event) for event in status_callback_events)
        fields += [
            ("MachineDetection", machine_detection),
            (
                "MachineDetectionTimeout",
                None if machine_detection_timeout is None else str(machine_detection_timeout),
            ),
            ("AsyncAmd", None if async_amd is None else _flag(async_amd)),
            ("AsyncAmdStatusCallback", async_amd_status_callback),
            ("AsyncAmdStatusCallbackMethod", None if async_amd_status_callback is None else "POST"),
            ("Timeout", None if timeout is None else str(timeout)),
        ]
        return self._post("/Calls.json", fields)

    def update_call_twiml(self, call_sid: str, twiml: str) -> HttpRequest:
        """Replace what a live call is doing with new TwiML (e.g. end a
        ``<Connect><Stream>`` with a ``<Say>``).

        Inline TwiML longer than ``INLINE_TWIML_MAX_CHARS`` (4,000) is refused
        by Twilio (error 32018), so it raises LocalProtocolError here instead.
        """
        if len(twiml) > INLINE_TWIML_MAX_CHARS:
            raise LocalProtocolError(
                f"inline TwiML is {len(twiml)} characters; Twilio allows {INLINE_TWIML_MAX_CHARS}"
            )
        return self._post(f"/Calls/{_segment(call_sid)}.json", [("Twiml", twiml)])

    def hang_up(self, call_sid: str) -> HttpRequest:
        """End a live call: ``Status=completed``."""
        return self._post(f"/Calls/{_segment(call_sid)}.json", [("Status", "completed")])

    def start_recording(
        self,
        call_sid: str,
        *,
        recording_status_callback: str | None = None,
        recording_status_callback_events: Sequence[str] = ("completed",),
        recording_channels: str | None = None,
        recording_track: str | None = None,
    ) -> HttpRequest:
        """Start recording a live call (``POST .../Recordings.json``)."""
        fields: list[tuple[str, str | None]] = []
        if recording_status_callback is not None:
            fields.append(("RecordingStatusCallback", recording_status_callback))
            fields.append(("RecordingStatusCallbackMethod", "POST"))
            fields.extend(
                ("RecordingStatusCallbackEvent", event)
                for event in recording_status_callback_events
            )
        fields.append(("RecordingChannels", recording_channels))
        fields.append(("RecordingTrack", recording_track))
        return self._post(f"/Calls/{_segment(call_sid)}/Recordings.json", fields)


def parse_twilio_call(response: HttpResponse) -> TwilioCall:
    """``sid`` and ``status`` of a Call/Recording response.

    A non-2xx answer raises :class:`CarrierApiError` carrying Twilio's error
    ``code`` and ``message``; so does a body that is not a JSON object with
    a string ``sid``.
    """
    if not 200 <= response.status < 300:
        code: str | None = None
        message: str | None = None
        try:
            data = json_object(response)
        except CarrierApiError:
            data = {}
        if isinstance(data.get("code"), int | str):
            code = str(data["code"])
        if isinstance(data.get("message"), str):
            message = data["message"]
        raise CarrierApiError(
            f"Twilio answered {response.status}: {message or 'no message'}",
            api_status=response.status,
            api_code=code,
            api_message=message,
        )
    data = json_object(response)
    sid = data.get("sid")
    status = data.get("status")
    if not isinstance(sid, str) or not sid or not (status is None or isinstance(status, str)):
        raise CarrierApiError("Twilio response without a string sid", api_status=response.status)
    return TwilioCall(sid=sid, status=status)
