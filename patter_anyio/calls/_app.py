"""The webhook endpoints: what each carrier request gets back.

:class:`WebhookApp` is the :class:`~patter_anyio.Application` the server
calls. Every decision it makes comes from ``patter_core.webhooks``
(signature checks, form and envelope parsing, TwiML, stream tokens); this
module only glues them to the routes, reads the clock and awaits the
application's hooks:

* ``POST /webhooks/twilio/voice`` -> ``<Connect><Stream>`` to
  ``wss://{webhook_host}/ws/stream/{CallSid}`` with the ``caller``,
  ``callee`` and ``stream_token`` parameters;
* ``/webhooks/twilio/{status,recording,amd}`` -> parsed, handed to a hook,
  answered 200 with an empty ``<Response/>``; ``/webhooks/twilio/stream-status``
  (``<Stream statusCallback>``) -> logged, ``stream-error`` at WARNING with
  Twilio's error code;
* ``POST /webhooks/telnyx/voice`` -> verified, parsed, handed to a hook
  (which answers ``call.initiated`` through the REST API), empty 200.

Signatures are checked whenever the credential is configured: the Twilio
URL is rebuilt from the configured webhook host, never from ``Host``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from patter_core import PatterError, RemoteProtocolError, SignatureError
from patter_core.http import Endpoint, HttpResponse, Reject, Route
from patter_core.http._types import text_response
from patter_core.webhooks import (
    AmdCallback,
    CallStatusCallback,
    FormData,
    IncomingCall,
    RecordingStatusCallback,
    StreamTokens,
    TelnyxEvent,
    TelnyxSignatureVerifier,
    TwilioCallFlow,
    TwilioSignatureValidator,
    parse_amd_callback,
    parse_call_status,
    parse_form,
    parse_incoming_call,
    parse_recording_status,
    parse_stream_status,
    parse_telnyx_webhook,
)
from patter_core.webhooks._twilio_flow import stream_status_log
from patter_core.webhooks._twilio_signature import media_stream_urls, public_url
from patter_core.webhooks._twiml import empty_twiml, twiml_response

from ..net._server import ServerRequest, StreamHandler, StreamRequest
from ..net._websocket import WebSocket

__all__ = ["WebhookApp", "WebhookHooks", "read_until_close"]

log = logging.getLogger("patter_anyio.app")


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookHooks:
    """Optional async callbacks, one per kind of carrier event.

    A hook that raises is logged; the carrier still gets its 200, because
    an error answer only makes it retry the same event.
    """

    on_incoming_call: Callable[[IncomingCall], Awaitable[None]] | None = None
    on_call_status: Callable[[CallStatusCallback], Awaitable[None]] | None = None
    on_recording_status: Callable[[RecordingStatusCallback], Awaitable[None]] | None = None
    on_amd_result: Callable[[AmdCallback], Awaitable[None]] | None = None
    on_telnyx_event: Callable[[TelnyxEvent], Awaitable[None]] | None = None
    #: A warm transfer's person call progressed: (the caller's call sid, status).
    on_transfer_status: Callable[[str, CallStatusCallback], Awaitable[None]] | None = None
    #: An outbound call's variables by call id, for its ``<Parameter>`` list.
    variables_for: Callable[[str], Mapping[str, str]] | None = None
    #: Before a Twilio call is answered: False refuses it with ``<Reject />``
    #: (``serve(route=...)``; it never raises, a broken rule gives the default).
    route_call: Callable[[IncomingCall], Awaitable[bool]] | None = None


async def read_until_close(ws: WebSocket, request: StreamRequest) -> None:
    """The default stream handler: accept and read until the carrier closes."""
    del request
    while True:
        await ws.receive()


class WebhookApp:
    """Serves the carrier webhooks and hands media streams on (the server
    answers ``/health`` and ``/ready`` itself: it knows the live calls)."""

    def __init__(
        self,
        *,
        stream_secret: bytes,
        webhook_host: str | None = None,
        twilio_auth_token: str | None = None,
        telnyx_public_key: str | None = None,
        hooks: WebhookHooks | None = None,
        stream_handler: StreamHandler | None = None,
        clock: Callable[[], float] = time.time,
        twilio_signing_keys: Mapping[str, str] | None = None,
    ) -> None:
        if (twilio_auth_token or twilio_signing_keys) and not webhook_host:
            raise PatterError("Twilio signature checks need the public webhook host")
        self.webhook_host = webhook_host
        self.tokens = StreamTokens.from_list(stream_secret)
        self.twilio = (
            TwilioSignatureValidator(twilio_auth_token, shared_keys=twilio_signing_keys)
            if twilio_auth_token or twilio_signing_keys
            else None
        )
        self.telnyx = TelnyxSignatureVerifier(telnyx_public_key) if telnyx_public_key else None
        self.hooks = hooks if hooks is not None else WebhookHooks()
        self.twilio_flow = TwilioCallFlow(self.tokens, webhook_host=webhook_host, rest=None)
        self.stream_handler: StreamHandler = stream_handler or read_until_close
        # Wall clock: stream-token expiry and the Telnyx replay window are
        # compared with other machines' clocks.
        self.clock = clock

    # ------------------------------------------------------------------ HTTP
    async def handle_http(self, route: Route, request: ServerRequest) -> HttpResponse:
        try:
            if route.endpoint is Endpoint.TELNYX_VOICE:
                return await self._telnyx_voice(request)
            form = self._twilio_form(request)
            if route.endpoint is Endpoint.TWILIO_VOICE:
                return await self._twilio_voice(request, form)
            if route.endpoint is Endpoint.TWILIO_STATUS:
                status = parse_call_status(form)
                # DEBUG: the outcome of our own calls is logged where it is
                # known; others' (another instance's) are not worth more.
                log.debug("call status call=%s status=%s", status.call_sid, status.call_status)
                await self._run_hook(self.hooks.on_call_status, status)
            elif route.endpoint is Endpoint.TWILIO_RECORDING:
                recording = parse_recording_status(form)
                log.info(
                    "recording call=%s status=%s",
                    recording.call_sid,
                    recording.recording_status,
                )
                await self._run_hook(self.hooks.on_recording_status, recording)
            elif route.endpoint is Endpoint.TWILIO_AMD:
                amd = parse_amd_callback(form)
                log.info("amd call=%s answered_by=%s", amd.call_sid, amd.answered_by)
                await self._run_hook(self.hooks.on_amd_result, amd)
            elif route.endpoint is Endpoint.TWILIO_TRANSFER_STATUS:
                status = parse_call_status(form)
                caller = _query(request.target).get("call", "")
                log.info(
                    "transfer call=%s person=%s status=%s",
                    caller,
                    status.call_sid,
                    status.call_status,
                )
                if caller and self.hooks.on_transfer_status is not None:
                    try:
                        await self.hooks.on_transfer_status(caller, status)
                    except Exception:
                        log.exception("webhook hook failed for the transfer status")
            elif route.endpoint is Endpoint.TWILIO_CONFERENCE_STATUS:
                log.info(
                    "conference %s event=%s call=%s",
                    form.get("FriendlyName"),
                    form.get("StatusCallbackEvent"),
                    form.get("CallSid"),
                )
            elif route.endpoint is Endpoint.TWILIO_STREAM_STATUS:
                line = stream_status_log(parse_stream_status(form))
                log.log(logging.WARNING if line.warning else logging.INFO, "%s", line.text)
            else:
                return text_response(404, "not found")
            return twiml_response(empty_twiml())
        except SignatureError as exc:
            # 403 with no detail to the peer; the detail, and what to do, in the log.
            log.warning("%s", self._refusal_line(route, request, exc))
            return text_response(403, "forbidden")
        except RemoteProtocolError as exc:
            log.warning("%s refused: %s (%d)", route.path, exc, exc.http_status)
            return text_response(exc.http_status, str(exc))

    def _refusal_line(self, route: Route, request: ServerRequest, exc: SignatureError) -> str:
        """One line a user can act on for a webhook refused with 403."""
        if route.endpoint is Endpoint.TELNYX_VOICE:
            return (
                f"Telnyx webhook {route.path} refused (403): {exc}; check that "
                "TELNYX_PUBLIC_KEY is the public key from the Telnyx portal and that "
                "this machine's clock is right"
            )
        assert self.webhook_host is not None
        checked = public_url(self.webhook_host, request.target)
        line = (
            f"Twilio webhook {route.path} refused (403): {exc}; the signature was checked "
            f"against {checked}"
        )
        arrived = request.header("x-forwarded-host") or request.header("host")
        if arrived and arrived.lower() != self.webhook_host.lower():
            line += (
                f", but the request came for host {arrived}: if Twilio posts there, "
                f"start the server with --webhook-url {arrived}"
            )
        else:
            line += (
                ": Twilio signs the exact URL set on the number (set --webhook-url to its "
                "host) with the account's TWILIO_AUTH_TOKEN"
            )
        return line

    def _twilio_form(self, request: ServerRequest) -> FormData:
        if self.twilio is None:
            return parse_form(request.body)
        assert self.webhook_host is not None
        return self.twilio.validate_request(
            url=public_url(self.webhook_host, request.target),
            headers=request.headers,
            body=request.body,
        )

    async def _twilio_voice(self, request: ServerRequest, form: FormData) -> HttpResponse:
        call = parse_incoming_call(form)
        log.info("incoming call call=%s direction=%s", call.call_sid, call.direction)
        await self._run_hook(self.hooks.on_incoming_call, call)
        admitted = self.hooks.route_call is None or await self.hooks.route_call(call)
        variables = self.hooks.variables_for(call.call_sid) if self.hooks.variables_for else None
        return self.twilio_flow.voice_answer(
            call,
            self.clock(),
            admitted=admitted,
            host_header=request.header("host"),
            variables=variables,
        )

    async def _telnyx_voice(self, request: ServerRequest) -> HttpResponse:
        if self.telnyx is not None:
            self.telnyx.verify(headers=request.headers, body=request.body, now=self.clock())
        event = parse_telnyx_webhook(request.body)
        log.info("telnyx event=%s call=%s", event.event_type, event.call_control_id)
        await self._run_hook(self.hooks.on_telnyx_event, event)
        return HttpResponse(status=200)

    async def _run_hook(self, hook: Callable[[Any], Awaitable[None]] | None, event: Any) -> None:
        if hook is None:
            return
        try:
            await hook(event)
        except Exception:
            log.exception("webhook hook failed for %s", type(event).__name__)

    # ---------------------------------------------------------------- streams
    async def authorize_stream(self, request: StreamRequest) -> Reject | None:
        """Twilio signs the upgrade over the ``wss://`` URL (PROTOCOLS.md
        section 1.2 step 8), with or without a trailing ``/``; Telnyx does
        not sign it, its token arrives in a header and is checked with the
        call's ``start`` frame."""
        if request.carrier == "twilio" and self.twilio is not None:
            assert self.webhook_host is not None
            try:
                self.twilio.validate_upgrade(
                    urls=media_stream_urls(self.webhook_host, request.target),
                    headers=request.headers,
                )
            except RemoteProtocolError as exc:
                url = media_stream_urls(self.webhook_host, request.target)[0]
                return Reject(
                    status=403,
                    reason=f"forbidden: {exc} (checked against {url}; "
                    "--webhook-url must be the host Twilio reaches)",
                )
        return None

    async def handle_stream(self, ws: WebSocket, request: StreamRequest) -> None:
        await self.stream_handler(ws, request)


def _query(target: str) -> dict[str, str]:
    _, _, query = target.partition("?")
    return dict(parse_qsl(query))
