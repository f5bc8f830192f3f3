"""The dial tool playing Telnyx: webhooks out, a fake Call Control API in.

A Telnyx call reaches a server in two halves (PROTOCOLS.md §4): Telnyx
POSTs signed JSON webhooks, and the server acts on the call by POSTing
commands to the Call Control REST API. So the carrier in a box needs both
sides:

* :class:`FakeTelnyxApi` -- ``POST .../calls/{call_control_id}/actions/{action}``
  on 127.0.0.1, answering ``{"data":{"result":"ok"}}`` as Telnyx does and
  recording every command (with its ``Authorization``). The server under
  test is pointed at it with ``TELNYX_API_BASE_URL``.
* :func:`set_up_telnyx_call` -- the dance an incoming call makes: post
  ``call.initiated`` (signed with Ed25519 over ``{timestamp}|{body}`` when
  a key is given, §4.2), wait for the server's ``answer``, post
  ``call.answered`` (echoing the answer's ``client_state``, as Telnyx does
  in every later webhook of the leg), wait for ``streaming_start`` and read
  from it where and how to stream (§4.3). ``streaming.started`` and
  ``streaming.stopped`` bracket the stream, and ``call.hangup`` ends it
  with ``sip_hangup_cause: unspecified`` and no ``end_time``, as on an
  inbound call (§4.4).

Telnyx may deliver a webhook twice (§4.4, "Duplicates"): with
``duplicates`` every webhook is posted twice, byte for byte.

Errors here are :class:`DialError` with an exit code, as everywhere in dial.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

import anyio
import anyio.abc
from nacl.exceptions import CryptoError
from nacl.signing import SigningKey

from patter_core import Entropy
from patter_core.http import HttpRequest, HttpResponse, Paths, Reject, Route
from patter_core.media._carrier import iso_time

from ..net._server import Server, ServerRequest, StreamRequest
from ..net._websocket import WebSocket
from ._errors import DialError, post_webhook

__all__ = [
    "DEFAULT_TELNYX_API_PORT",
    "TELNYX_WEBHOOK_PATH",
    "FakeTelnyxApi",
    "TelnyxCommand",
    "TelnyxStreamPlan",
    "TelnyxWebhooks",
    "load_signing_key",
    "post_hangup",
    "post_streaming",
    "public_key_b64",
    "run_fake_telnyx_api",
    "set_up_telnyx_call",
    "telnyx_event_body",
]

DEFAULT_TELNYX_API_PORT = 8766
TELNYX_WEBHOOK_PATH = Paths.TELNYX_VOICE
# A Call Control command is a small JSON object (streaming_start with a
# token and a few custom parameters is well under 8 KiB); 64 KiB is generous
# and gets a Telnyx-shaped 413. (Heads, bodies and slow clients are bounded
# by the server it runs on, ``net/_server.py``.)
MAX_COMMAND_BYTES = 64 * 1024
# One call makes two or three commands; keeping more than this would only
# record a loop.
MAX_COMMANDS = 256
# The webhook answer is an empty 200; anything bigger is only shown.
_MAX_WEBHOOK_ANSWER_BYTES = 64 * 1024
_SNIPPET_CHARS = 200
# Rates the streaming_start docs list for stream_bidirectional_sampling_rate (§4.3).
_L16_RATES = (8000, 16000, 22050, 24000, 48000)
_ACTION_PATH = re.compile(r"(?:/.*)?/calls/([^/]+)/actions/([A-Za-z_]+)")


@dataclass(frozen=True, slots=True, kw_only=True)
class TelnyxCommand:
    """One request the server made to the fake Call Control API."""

    action: str  # "answer", "streaming_start", "hangup", ...
    call_control_id: str
    authorization: str | None  # the Authorization header as sent
    body: Mapping[str, Any]  # the JSON object ({} when it was not one)
    accepted: bool  # False: answered 401 (no or wrong Bearer key)


def _snippet(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:_SNIPPET_CHARS] + ("..." if len(text) > _SNIPPET_CHARS else "")


# ------------------------------------------------------------ the fake REST API


class FakeTelnyxApi:
    """Records Call Control commands and answers them as Telnyx does.

    ``api_key``: when set, a command must carry ``Authorization: Bearer
    <api_key>``; when None any Bearer key is accepted. A command without a
    Bearer key is always refused with 401, as Telnyx refuses it.
    """

    def __init__(self, *, api_key: str | None = None, host: str = "127.0.0.1") -> None:
        self.api_key = api_key
        self.host = host
        self.port = 0
        self.commands: list[TelnyxCommand] = []
        # Made on first use: an anyio Event belongs to a running event loop.
        self._changed: anyio.Event | None = None

    def _event(self) -> anyio.Event:
        if self._changed is None:
            self._changed = anyio.Event()
        return self._changed

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def wait_for(self, action: str, timeout: float) -> TelnyxCommand | None:
        """The first ``action`` command received (now or within ``timeout``)."""
        with anyio.move_on_after(timeout):
            while True:
                for command in self.commands:
                    if command.action == action:
                        return command
                await self._event().wait()
        return None

    def _record(self, command: TelnyxCommand) -> None:
        if len(self.commands) < MAX_COMMANDS:
            self.commands.append(command)
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    def _answer(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        path = target.split("?", 1)[0]
        match = _ACTION_PATH.fullmatch(path)
        if match is None:
            return 404, _api_error("10005", "Resource not found", f"no route for {path}")
        if method != "POST":
            return 405, _api_error("10015", "Method not allowed", f"{method} {path}")
        call_id, action = unquote(match.group(1)), match.group(2)
        try:
            parsed = json.loads(body.decode("utf-8")) if body else {}
        except (UnicodeDecodeError, ValueError, RecursionError):
            parsed = None
        authorization = headers.get("authorization")
        scheme, _, key = (authorization or "").partition(" ")
        accepted = scheme.lower() == "bearer" and bool(key.strip())
        if accepted and self.api_key is not None:
            accepted = key.strip() == self.api_key
        self._record(
            TelnyxCommand(
                action=action,
                call_control_id=call_id,
                authorization=authorization,
                body=parsed if isinstance(parsed, dict) else {},
                accepted=accepted,
            )
        )
        if not accepted:
            return 401, _api_error("10009", "Authentication failed", "missing or wrong API key")
        if not isinstance(parsed, dict):
            return 422, _api_error("10002", "Invalid parameter", "the body is not a JSON object")
        return 200, {"data": {"result": "ok"}}

    # -- served by our own server (``net/_server.py``), every path mounted ----

    async def handle_http(self, route: Route, request: ServerRequest) -> HttpResponse:
        """One Call Control request: recorded, and answered as Telnyx does."""
        if len(request.body) > MAX_COMMAND_BYTES:
            status, answer = 413, _api_error("10011", "Request too large", "body over 64 KiB")
        else:
            headers = {name.lower(): value for name, value in request.headers}
            status, answer = self._answer(request.method, request.target, headers, request.body)
        return HttpResponse(
            status=status,
            headers=(("content-type", "application/json"),),
            body=json.dumps(answer, separators=(",", ":")).encode("utf-8"),
        )

    async def authorize_stream(self, request: StreamRequest) -> Reject | None:
        return Reject(status=404, reason="not found")  # the API has no streams

    async def handle_stream(self, ws: WebSocket, request: StreamRequest) -> None:
        raise AssertionError("authorize_stream refuses every stream")


def _api_error(code: str, title: str, detail: str) -> dict[str, Any]:
    # Telnyx v2 errors: {"errors":[{"code","title","detail"}]}.
    return {"errors": [{"code": code, "title": title, "detail": detail}]}


@asynccontextmanager
async def run_fake_telnyx_api(
    *, port: int = DEFAULT_TELNYX_API_PORT, host: str = "127.0.0.1", api_key: str | None = None
) -> AsyncIterator[FakeTelnyxApi]:
    """Serve a :class:`FakeTelnyxApi` on ``host:port`` (0: any free port) while inside."""
    api = FakeTelnyxApi(api_key=api_key, host=host)
    # Our own server, every path mounted on the fake (its /health stays ours).
    server = Server(api, host=host, port=port, mounts=("/",))
    failure: Exception | None = None
    try:
        async with anyio.create_task_group() as tg:
            api.port = await tg.start(server.serve)
            try:
                yield api
            except Exception as exc:
                # Raised again below, outside the task group, so the caller
                # sees the error itself rather than an exception group.
                failure = exc
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        bind, rest = group.split(OSError)
        if bind is None or rest is not None or api.port:
            raise
        cause = _first(bind)
        raise DialError(
            f"cannot listen on {host}:{port} for the fake Telnyx API: {cause.strerror or cause}"
        ) from None
    if failure is not None:
        raise failure


def _first(group: BaseExceptionGroup[OSError]) -> OSError:
    """The first OSError in a (nested) group."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


# ------------------------------------------------------------------- webhooks


def load_signing_key(text: str) -> SigningKey:
    """A base64 Ed25519 private key: the 32-byte seed (or seed + public half)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise DialError("--telnyx-signing-key is not base64", exit_code=2) from None
    if len(raw) not in (32, 64):
        raise DialError(
            f"--telnyx-signing-key must be a 32-byte Ed25519 seed, not {len(raw)} bytes",
            exit_code=2,
        )
    try:
        return SigningKey(raw[:32])
    except CryptoError:  # pragma: no cover - every 32-byte seed is a key
        raise DialError("--telnyx-signing-key is not an Ed25519 key", exit_code=2) from None


def public_key_b64(key: SigningKey) -> str:
    """The base64 public key a server needs as ``TELNYX_PUBLIC_KEY``."""
    return base64.b64encode(bytes(key.verify_key)).decode("ascii")


def telnyx_event_body(
    event_type: str,
    payload: Mapping[str, Any],
    *,
    event_id: str,
    occurred_at: str,
    delivered_to: str,
) -> bytes:
    """A webhook envelope exactly as §4.1 shows it (compact JSON)."""
    envelope = {
        "data": {
            "event_type": event_type,
            "id": event_id,
            "occurred_at": occurred_at,
            "payload": dict(payload),
            "record_type": "event",
        },
        "meta": {"attempt": 1, "delivered_to": delivered_to},
    }
    return json.dumps(envelope, separators=(",", ":")).encode("utf-8")


def _uuid(entropy: Entropy) -> str:
    h = entropy.token_bytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TelnyxStreamPlan:
    """Where and how the server asked Telnyx to stream (its ``streaming_start``)."""

    call_control_id: str
    call_session_id: str
    user_id: str
    stream_id: str
    stream_url: str
    auth_token: str | None
    codec: Literal["PCMU", "L16", "G722"]  # what the stream carries to the agent
    sample_rate: int
    custom_parameters: dict[str, str] = field(default_factory=dict)
    #: What the agent must send back (stream_bidirectional_codec and its rate).
    back_codec: Literal["PCMU", "L16"] = "PCMU"
    back_rate: int = 8000
    client_state: str | None = None


@dataclass(slots=True)
class _CallIds:
    call_control_id: str
    call_leg_id: str
    call_session_id: str
    connection_id: str
    user_id: str
    stream_id: str
    client_state: str | None = None


class TelnyxWebhooks:
    """Posts the webhooks of one call to the server, signed when a key is given."""

    def __init__(
        self,
        *,
        server: str,
        path: str,
        delivered_to: str,
        key: SigningKey | None,
        from_number: str,
        to_number: str,
        timeout: float,
        entropy: Entropy,
        duplicates: bool = False,
    ) -> None:
        self.duplicates = duplicates
        self.server = server
        self.path = path
        self.delivered_to = delivered_to
        self.key = key
        self.from_number = from_number
        self.to_number = to_number
        self.timeout = timeout
        self.entropy = entropy
        self.started_at = iso_time(_wall_clock())
        self.ids = _CallIds(
            call_control_id="v3:"
            + base64.urlsafe_b64encode(entropy.token_bytes(30)).decode("ascii"),
            call_leg_id=_uuid(entropy),
            call_session_id=_uuid(entropy),
            connection_id=str(int.from_bytes(entropy.token_bytes(8), "big")),
            user_id=_uuid(entropy),
            stream_id=_uuid(entropy).upper(),
        )

    def _payload(self, **extra: Any) -> dict[str, Any]:
        ids = self.ids
        return {
            "call_control_id": ids.call_control_id,
            "call_leg_id": ids.call_leg_id,
            "call_session_id": ids.call_session_id,
            "client_state": ids.client_state,
            "connection_id": ids.connection_id,
            "from": self.from_number,
            "to": self.to_number,
            "start_time": self.started_at,
            **extra,
        }

    async def post(self, event_type: str, **extra: Any) -> None:
        now = _wall_clock()
        body = telnyx_event_body(
            event_type,
            self._payload(**extra),
            event_id=_uuid(self.entropy),
            occurred_at=iso_time(now),
            delivered_to=self.delivered_to,
        )
        headers = [("content-type", "application/json")]
        if self.key is not None:
            # §4.2: Ed25519 over the UTF-8 of "{timestamp}|{raw body}".
            timestamp = str(int(now))
            signature = self.key.sign(timestamp.encode("ascii") + b"|" + body).signature
            headers.append(("telnyx-signature-ed25519", base64.b64encode(signature).decode()))
            headers.append(("telnyx-timestamp", timestamp))
        req = HttpRequest(
            method="POST", url=self.server + self.path, headers=tuple(headers), body=body
        )
        for _ in range(2 if self.duplicates else 1):
            await self._deliver(req, event_type)

    async def _deliver(self, req: HttpRequest, event_type: str) -> None:
        response = await post_webhook(
            req,
            server=self.server,
            name=f"{event_type} webhook",
            carrier="Telnyx",
            timeout=self.timeout,
            max_bytes=_MAX_WEBHOOK_ANSWER_BYTES,
        )
        if response.status >= 300:
            hint = ""
            if response.status == 403:
                hint = (
                    " (the signing key is not the pair of the server's TELNYX_PUBLIC_KEY)"
                    if self.key is not None
                    else " (the server checks signatures: give --telnyx-signing-key)"
                )
            raise DialError(
                f"the {event_type} webhook answered {response.status}: "
                f"{_snippet(response.body)}{hint}".rstrip()
            )


def _wall_clock() -> float:
    # Telnyx timestamps are wall-clock seconds: the server compares them
    # with its own clock (a ±300 s window, §4.2).
    return time.time()


async def _command(api: FakeTelnyxApi, action: str, call_id: str, timeout: float) -> TelnyxCommand:
    command = await api.wait_for(action, timeout)
    if command is None:
        raise DialError(
            f"no {action} command reached the fake Telnyx API within {timeout:g} s: start the "
            f"server with TELNYX_API_KEY set and TELNYX_API_BASE_URL={api.base_url}"
        )
    if not command.accepted:
        raise DialError(
            f"the server's {action} command had no valid Bearer key "
            f"(Authorization: {command.authorization or 'missing'})"
        )
    if command.call_control_id != call_id:
        raise DialError(f"the server sent {action} for call {command.call_control_id!r}, not ours")
    return command


def _plan(
    command: TelnyxCommand, ids: _CallIds, fallback: Literal["PCMU", "L16", "G722"] | None = None
) -> TelnyxStreamPlan:
    body = command.body
    url = body.get("stream_url")
    if not isinstance(url, str) or not url.startswith(("wss://", "ws://")):
        raise DialError(f"streaming_start has no wss:// stream_url: {json.dumps(dict(body))[:200]}")
    codec = body.get("stream_codec", "PCMU")
    codec = "PCMU" if codec == "default" else codec
    back = body.get("stream_bidirectional_codec", codec)
    if body.get("stream_bidirectional_mode") != "rtp":
        raise DialError(
            "streaming_start without stream_bidirectional_mode 'rtp': Telnyx would not "
            "play the agent's audio to the caller"
        )
    if codec not in ("PCMU", "L16") or back not in ("PCMU", "L16"):
        raise DialError(
            f"streaming_start asks for {codec!r} in and {back!r} back; dial carries PCMU or L16"
        )
    rate = 8000
    if "L16" in (codec, back):
        rate = body.get("stream_bidirectional_sampling_rate", 8000)
        if rate not in _L16_RATES:
            raise DialError(f"streaming_start asks for L16 at {rate!r} Hz")
    # "When transcoding is not possible, the codec from the call will be
    # used" (§4.4): a fallback streams in the call's codec whatever was asked.
    codec_in = fallback or codec
    token = body.get("stream_auth_token")
    params: dict[str, str] = {}
    raw_params = body.get("custom_parameters")
    if isinstance(raw_params, list):
        for entry in raw_params:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                params[entry["name"]] = str(entry.get("value", ""))
    return TelnyxStreamPlan(
        call_control_id=ids.call_control_id,
        call_session_id=ids.call_session_id,
        user_id=ids.user_id,
        stream_id=ids.stream_id,
        stream_url=url,
        auth_token=token if isinstance(token, str) else None,
        codec="L16" if codec_in == "L16" else "G722" if codec_in == "G722" else "PCMU",
        sample_rate=int(rate) if codec_in == "L16" else 16000 if codec_in == "G722" else 8000,
        custom_parameters=params,
        back_codec="L16" if back == "L16" else "PCMU",
        back_rate=int(rate) if back == "L16" else 8000,
        client_state=ids.client_state,
    )


async def set_up_telnyx_call(
    webhooks: TelnyxWebhooks,
    api: FakeTelnyxApi,
    *,
    fallback: Literal["PCMU", "L16", "G722"] | None = None,
) -> TelnyxStreamPlan:
    """``call.initiated`` -> answer -> ``call.answered`` -> streaming_start.

    ``fallback``: stream in this codec whatever ``stream_codec`` asked, as
    Telnyx does when it cannot transcode the call's codec.
    """
    ids = webhooks.ids
    # The server answers through the REST API, usually before its 200 to
    # the webhook (it awaits the command), but a server may do it later.
    await webhooks.post("call.initiated", direction="incoming", state="parked")
    answer = await _command(api, "answer", ids.call_control_id, webhooks.timeout)
    state = answer.body.get("client_state")
    ids.client_state = state if isinstance(state, str) else None
    await webhooks.post("call.answered")
    start = await _command(api, "streaming_start", ids.call_control_id, webhooks.timeout)
    state = start.body.get("client_state")
    if isinstance(state, str):
        ids.client_state = state
    return _plan(start, ids, fallback)


async def post_streaming(webhooks: TelnyxWebhooks, plan: TelnyxStreamPlan, event: str) -> None:
    """``streaming.started`` or ``streaming.stopped``; best effort (only reported)."""
    try:
        with anyio.move_on_after(min(webhooks.timeout, 2.0)):
            await webhooks.post(event, stream_url=plan.stream_url, stream_id=plan.stream_id)
    except DialError:
        pass


async def post_hangup(webhooks: TelnyxWebhooks) -> None:
    """``call.hangup`` after the stream ended; best effort, as the call is over.

    An inbound leg's hang-up: ``sip_hangup_cause`` is ``unspecified`` and
    there is no ``end_time`` (telnyx-python 4.189 types, §4.4).
    """
    try:
        with anyio.move_on_after(min(webhooks.timeout, 2.0)):
            await webhooks.post(
                "call.hangup",
                hangup_cause="normal_clearing",
                hangup_source="caller",
                sip_hangup_cause="unspecified",
            )
    except DialError:
        pass
