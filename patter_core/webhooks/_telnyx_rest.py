"""Telnyx Call Control v2 requests, built as :class:`HttpRequest` values.

``POST {base}/calls`` dials; ``POST {base}/calls/{call_control_id}/actions/<action>``
acts on a live call (PROTOCOLS.md §4.3). Bodies are JSON objects with
absent options left out (Telnyx treats a missing field as its default, and
``null`` is not always accepted). Authentication: ``Authorization: Bearer
<API key>``. ``client_state`` (base64, see ``encode_client_state``) comes
back in the webhooks the command causes.

Every request carries a ``command_id``: Telnyx ignores a command whose
``command_id`` it saw on the same call in the last 60 s (PROTOCOLS.md §4.4,
"Duplicates"). Unless one is given, it is derived from the call, the command
and its fields (:func:`derive_command_id`), so a command sent again -- a
retry after a 5xx or a lost connection, or the same webhook handled twice --
carries the same id and runs once, while a different command does not
collide.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .._base_urls import DEFAULT_TELNYX_API
from .._errors import LocalProtocolError
from ..http import HttpRequest, HttpResponse
from ._rest import CarrierApiError, json_object

__all__ = [
    "TelnyxCall",
    "TelnyxRest",
    "derive_command_id",
    "parse_telnyx_response",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class TelnyxCall:
    """What a Telnyx command answers: ``data.call_control_id`` etc., when present."""

    call_control_id: str | None
    call_leg_id: str | None
    call_session_id: str | None
    result: str | None
    data: Mapping[str, Any]


def derive_command_id(path: str, fields: Mapping[str, Any]) -> str:
    """A UUID-shaped id from a command's path (call and action) and fields.

    The same command on the same call gives the same id; anything else a
    different one.
    """
    canonical = json.dumps(
        [path, {k: v for k, v in fields.items() if k != "command_id"}],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    h = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _segment(value: str) -> str:
    if not value:
        raise LocalProtocolError("an empty call_control_id cannot go in a URL path")
    return quote(value, safe="")


def _stream_fields(
    *,
    stream_url: str | None,
    stream_track: str | None,
    stream_codec: str | None,
    stream_bidirectional_mode: str | None,
    stream_bidirectional_codec: str | None,
    stream_bidirectional_sampling_rate: int | None = None,
    stream_auth_token: str | None = None,
) -> dict[str, Any]:
    if stream_url is not None and not stream_url.startswith(("wss://", "ws://")):
        raise LocalProtocolError("stream_url must be a ws:// or wss:// URL")
    if stream_url is None:
        return {}
    return {
        "stream_url": stream_url,
        "stream_track": stream_track,
        "stream_codec": stream_codec,
        "stream_bidirectional_mode": stream_bidirectional_mode,
        "stream_bidirectional_codec": stream_bidirectional_codec,
        "stream_bidirectional_sampling_rate": stream_bidirectional_sampling_rate,
        "stream_auth_token": stream_auth_token,
    }


class TelnyxRest:
    """Builds Call Control requests with one API key."""

    def __init__(self, api_key: str, *, base_url: str = DEFAULT_TELNYX_API) -> None:
        if not api_key:
            raise LocalProtocolError("an empty Telnyx API key")
        self._base = base_url.rstrip("/")
        self._headers = (
            ("authorization", f"Bearer {api_key}"),
            ("content-type", "application/json"),
            ("accept", "application/json"),
        )

    def _post(self, path: str, fields: Mapping[str, Any]) -> HttpRequest:
        body = {k: v for k, v in fields.items() if v is not None}
        if "command_id" not in body:
            body["command_id"] = derive_command_id(path, body)
        return HttpRequest(
            method="POST",
            url=f"{self._base}{path}",
            headers=self._headers,
            body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        )

    def _action(self, call_control_id: str, action: str, fields: Mapping[str, Any]) -> HttpRequest:
        return self._post(f"/calls/{_segment(call_control_id)}/actions/{action}", fields)

    def answer(
        self,
        call_control_id: str,
        *,
        stream_url: str | None = None,
        stream_track: str = "inbound_track",
        stream_codec: str | None = "PCMU",
        stream_bidirectional_mode: str | None = "rtp",
        stream_bidirectional_codec: str | None = "PCMU",
        client_state: str | None = None,
        command_id: str | None = None,
        webhook_url: str | None = None,
    ) -> HttpRequest:
        """Answer, optionally streaming at once. Telnyx's ``answer`` has no
        sampling-rate field (§4.3): for L16 at 16 kHz answer without a
        ``stream_url`` and follow with :meth:`streaming_start`."""
        return self._action(
            call_control_id,
            "answer",
            {
                **_stream_fields(
                    stream_url=stream_url,
                    stream_track=stream_track,
                    stream_codec=stream_codec,
                    stream_bidirectional_mode=stream_bidirectional_mode,
                    stream_bidirectional_codec=stream_bidirectional_codec,
                ),
                "client_state": client_state,
                "command_id": command_id,
                "webhook_url": webhook_url,
            },
        )

    def streaming_start(
        self,
        call_control_id: str,
        *,
        stream_url: str,
        stream_track: str = "inbound_track",
        stream_codec: str | None = "L16",
        stream_bidirectional_mode: str | None = "rtp",
        stream_bidirectional_codec: str | None = "L16",
        stream_bidirectional_sampling_rate: int | None = 16000,
        stream_auth_token: str | None = None,
        custom_parameters: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        client_state: str | None = None,
        command_id: str | None = None,
    ) -> HttpRequest:
        """Start a media stream; defaults are L16 at 16 kHz both ways, our
        canonical bus, so no resampling. ``stream_auth_token`` reaches the
        media socket as the ``x-telnyx-streaming-auth-token`` header (§4.3)."""
        items = (
            custom_parameters.items()
            if isinstance(custom_parameters, Mapping)
            else custom_parameters
        )
        params = [{"name": name, "value": value} for name, value in items]
        return self._action(
            call_control_id,
            "streaming_start",
            {
                **_stream_fields(
                    stream_url=stream_url,
                    stream_track=stream_track,
                    stream_codec=stream_codec,
                    stream_bidirectional_mode=stream_bidirectional_mode,
                    stream_bidirectional_codec=stream_bidirectional_codec,
                    stream_bidirectional_sampling_rate=stream_bidirectional_sampling_rate,
                    stream_auth_token=stream_auth_token,
                ),
                "custom_parameters": params or None,
                "client_state": client_state,
                "command_id": command_id,
            },
        )

    def speak(
        self,
        call_control_id: str,
        *,
        payload: str,
        voice: str = "female",
        language: str | None = None,
        service_level: str | None = None,
        client_state: str | None = None,
        command_id: str | None = None,
    ) -> HttpRequest:
        """Text-to-speech on the call (a voicemail drop, a goodbye).

        ``voice`` is ``Provider.Model.VoiceId`` (e.g. ``Telnyx.KokoroTTS.af``)
        or the basic ``male``/``female``, which the API accepts only together
        with ``service_level: basic`` (PROTOCOLS.md §4.4, "speak"): that is
        filled in for a basic voice.
        """
        if voice in ("male", "female") and service_level is None:
            service_level = "basic"
        return self._action(
            call_control_id,
            "speak",
            {
                "payload": payload,
                "voice": voice,
                "language": language,
                "service_level": service_level,
                "client_state": client_state,
                "command_id": command_id,
            },
        )

    def hangup(
        self,
        call_control_id: str,
        *,
        client_state: str | None = None,
        command_id: str | None = None,
    ) -> HttpRequest:
        return self._action(
            call_control_id, "hangup", {"client_state": client_state, "command_id": command_id}
        )

    def reject(
        self, call_control_id: str, *, cause: str = "CALL_REJECTED", command_id: str | None = None
    ) -> HttpRequest:
        """Refuse an incoming call before answering it (``cause``: ``CALL_REJECTED``
        or ``USER_BUSY``, Call Control's ``actions/reject``)."""
        if cause not in ("CALL_REJECTED", "USER_BUSY"):
            raise LocalProtocolError(f"reject cause must be CALL_REJECTED or USER_BUSY: {cause!r}")
        return self._action(call_control_id, "reject", {"cause": cause, "command_id": command_id})

    def transfer(
        self,
        call_control_id: str,
        *,
        to: str,
        from_: str | None = None,
        command_id: str | None = None,
    ) -> HttpRequest:
        """Transfer the call to ``to`` (a number or SIP URI); the stream ends."""
        return self._action(
            call_control_id, "transfer", {"to": to, "from": from_, "command_id": command_id}
        )

    def bridge(
        self, call_control_id: str, *, other: str, command_id: str | None = None
    ) -> HttpRequest:
        """Connect this call with ``other`` (both then get ``call.bridged``)."""
        return self._action(
            call_control_id, "bridge", {"call_control_id": other, "command_id": command_id}
        )

    def streaming_stop(self, call_control_id: str, *, command_id: str | None = None) -> HttpRequest:
        """End the call's media stream (the call itself goes on)."""
        return self._action(call_control_id, "streaming_stop", {"command_id": command_id})

    def record_start(
        self,
        call_control_id: str,
        *,
        audio_format: str = "mp3",
        channels: str = "single",
        command_id: str | None = None,
    ) -> HttpRequest:
        """Start recording the call (``call.recording.saved`` follows the hang-up)."""
        return self._action(
            call_control_id,
            "record_start",
            {"format": audio_format, "channels": channels, "command_id": command_id},
        )

    def dial(
        self,
        *,
        to: str,
        from_: str,
        connection_id: str,
        stream_url: str | None = None,
        stream_track: str = "inbound_track",
        stream_codec: str | None = "L16",
        stream_bidirectional_mode: str | None = "rtp",
        stream_bidirectional_codec: str | None = "L16",
        stream_bidirectional_sampling_rate: int | None = 16000,
        stream_auth_token: str | None = None,
        answering_machine_detection: str | None = None,
        webhook_url: str | None = None,
        client_state: str | None = None,
        command_id: str | None = None,
        timeout_secs: int | None = None,
    ) -> HttpRequest:
        """An outbound call (``POST /calls``). ``answering_machine_detection``
        is e.g. ``"detect"`` or ``"detect_beep"`` (the latter sends
        ``call.machine.greeting.ended``)."""
        return self._post(
            "/calls",
            {
                "to": to,
                "from": from_,
                "connection_id": connection_id,
                **_stream_fields(
                    stream_url=stream_url,
                    stream_track=stream_track,
                    stream_codec=stream_codec,
                    stream_bidirectional_mode=stream_bidirectional_mode,
                    stream_bidirectional_codec=stream_bidirectional_codec,
                    stream_bidirectional_sampling_rate=stream_bidirectional_sampling_rate,
                    stream_auth_token=stream_auth_token,
                ),
                "answering_machine_detection": answering_machine_detection,
                "webhook_url": webhook_url,
                "client_state": client_state,
                "command_id": command_id,
                "timeout_secs": timeout_secs,
            },
        )


def _opt_str(data: Mapping[str, Any], name: str, status: int) -> str | None:
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise CarrierApiError(f"Telnyx response field {name} is not a string", api_status=status)


def parse_telnyx_response(response: HttpResponse) -> TelnyxCall:
    """The ``data`` object of a command's answer.

    A non-2xx answer raises :class:`CarrierApiError` with the first of
    Telnyx's ``errors`` (``code``, ``title``/``detail``); so does a body that
    is not ``{"data": {...}}``.
    """
    if not 200 <= response.status < 300:
        code = message = None
        try:
            errors = json_object(response).get("errors")
        except CarrierApiError:
            errors = None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            code = str(first["code"]) if isinstance(first.get("code"), str | int) else None
            detail = first.get("detail") or first.get("title")
            message = detail if isinstance(detail, str) else None
        raise CarrierApiError(
            f"Telnyx answered {response.status}: {message or 'no message'}",
            api_status=response.status,
            api_code=code,
            api_message=message,
        )
    data = json_object(response).get("data")
    if not isinstance(data, dict):
        raise CarrierApiError("Telnyx response without a data object", api_status=response.status)
    return TelnyxCall(
        call_control_id=_opt_str(data, "call_control_id", response.status),
        call_leg_id=_opt_str(data, "call_leg_id", response.status),
        call_session_id=_opt_str(data, "call_session_id", response.status),
        result=_opt_str(data, "result", response.status),
        data=data,
    )
