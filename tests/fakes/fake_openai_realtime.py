"""A pure stand-in for the OpenAI Realtime server, and a transport-less driver.

:class:`FakeOpenAIRealtime` is the *server* side of PROTOCOLS.md §5 with no
socket: ``check_handshake`` judges the upgrade request, ``on_connect`` gives
the messages sent on open, ``on_message(text)`` answers a client message, and
the scripting methods (``speech_started``, ``respond``, ``function_call``,
``error``...) return server-initiated messages. Every method returns a list
of JSON texts in the GA wire shape, so a WebSocket wrapper (the ``websockets``
package on 127.0.0.1) can serve it unchanged.

:class:`Loopback` wires any provider session to any such peer in memory: it
performs the session's I/O actions against the fake and collects the
provider events, so tests run without sockets.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import numpy as np

from patter_core.http._types import HttpRequest
from patter_core.providers import (
    MAIN_CHANNEL,
    ChannelId,
    CloseSocket,
    HttpData,
    HttpDone,
    HttpStarted,
    OpenSocket,
    ProviderEvent,
    ProviderSession,
    SendMessage,
    SocketClosed,
    SocketMessage,
    SocketOpened,
    StartHttp,
)
from patter_core.providers._models import REALTIME_MODEL
from tests.fakes.provider_servers import Pause

__all__ = ["FakeOpenAIRealtime", "FakePeer", "Loopback", "tone"]


def _ulaw_encode(pcm: np.ndarray) -> bytes:
    """G.711 mu-law (the classic segment encoder), enough for test tones."""
    x = pcm.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return bytes((~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes())


def tone(audio_format: str, ms: int, hz: float = 440.0, amplitude: int = 8000) -> bytes:
    """A sine tone in ``"pcmu"`` (8 kHz mu-law) or ``"pcm24"`` (24 kHz PCM16 LE)."""
    rate = 24000 if audio_format == "pcm24" else 8000
    n = rate * ms // 1000
    pcm = (amplitude * np.sin(2 * np.pi * hz * np.arange(n) / rate)).astype("<i2")
    return bytes(pcm.tobytes()) if audio_format == "pcm24" else _ulaw_encode(pcm)


class FakeOpenAIRealtime:
    """The server side of an OpenAI Realtime GA session, message by message."""

    def __init__(
        self,
        *,
        api_key: str = "sk-test",
        model: str = REALTIME_MODEL,
        ready_delay: float = 0.0,
        confirm_session: bool = True,
    ) -> None:
        self.api_key = api_key
        self.model = model
        #: Seconds between session.update and session.updated (a real
        #: provider's set-up takes 300 to 1,000 ms in all).
        self.ready_delay = ready_delay
        #: False: never answer session.update (a provider that hangs).
        self.confirm_session = confirm_session
        self.received: list[dict[str, Any]] = []  # every client message, parsed
        self.audio_in = bytearray()  # decoded input_audio_buffer.append payloads
        self.session: dict[str, Any] = {"type": "realtime", "id": "sess_fake", "model": model}
        self.active_response: str | None = None
        self._active_item: str | None = None
        self._output: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        #: How to answer an accepted ``response.create`` (default: begin a response).
        self.answer: Callable[[dict[str, Any]], list[str]] | None = None
        #: ``response.create`` refused because a response was active.
        self.refused_creates = 0
        #: Upgrades accepted so far; from ``refuse_from`` on, upgrades get 429
        #: (a replacement session that cannot be had).
        self.accepted = 0
        self.refuse_from: int | None = None
        #: ``session.expires_at`` for the 1st, 2nd ... connection (else none).
        self.expires_at: list[float] = []
        #: ``response.usage`` sent with every ``response.done`` (None: none).
        self.usage: dict[str, Any] | None = None

    # -- transport-facing -----------------------------------------------------

    def check_handshake(self, path: str, headers: Sequence[tuple[str, str]]) -> int | None:
        """None to accept the upgrade, else the HTTP status to refuse it with."""
        parts = urlsplit(path)
        if parts.path.rstrip("/") not in ("/v1/realtime", "/realtime"):
            return 404
        if parse_qs(parts.query).get("model") != [self.model]:
            return 400
        auth = {k.lower(): v for k, v in headers}.get("authorization")
        if auth != f"Bearer {self.api_key}":
            return 401
        if self.refuse_from is not None and self.accepted >= self.refuse_from:
            return 429
        self.accepted += 1
        return None

    def on_connect(self) -> list[str]:
        session = dict(self.session)
        if len(self.expires_at) >= self.accepted > 0:
            session["expires_at"] = int(self.expires_at[self.accepted - 1])
        return [self._event("session.created", session=session)]

    def on_message(self, data: str | bytes) -> list[str]:
        try:
            msg = json.loads(data)
            kind = msg["type"]
        except (ValueError, KeyError, TypeError):
            return self.error("invalid_json", "could not parse the client event")
        self.received.append(msg)
        if kind == "input_audio_buffer.append":
            self.audio_in += base64.b64decode(msg["audio"])
            return []  # the real server sends no ack
        if kind == "session.update":
            self.session.update(msg["session"])
            if not self.confirm_session:
                return []
            updated = self._event("session.updated", session=self.session)
            if self.ready_delay:
                return [Pause(self.ready_delay), updated]  # type: ignore[list-item]
            return [updated]
        if kind == "response.cancel":
            if self.active_response is None:
                return self.error(
                    "response_cancel_not_active",
                    "Cancellation failed: no active response found",
                )
            return self.end_response(status="cancelled", reason="client_cancelled")
        if kind == "conversation.item.truncate":
            return [
                self._event(
                    "conversation.item.truncated",
                    item_id=msg["item_id"],
                    content_index=msg["content_index"],
                    audio_end_ms=msg["audio_end_ms"],
                )
            ]
        if kind == "conversation.item.create":
            item = dict(msg["item"], id=f"item_{next(self._ids)}", status="completed")
            return [self._event("conversation.item.added", previous_item_id=None, item=item)]
        if kind == "response.create":
            # As documented: one response at a time per conversation.
            if self.active_response is not None:
                self.refused_creates += 1
                return self.error(
                    "conversation_already_has_active_response",
                    "Conversation already has an active response in progress: "
                    f"{self.active_response}. Wait until the response is finished "
                    "before creating a new one.",
                )
            if self.answer is not None:
                return self.answer(msg)
            # No script: the response starts; the test scripts what it says
            # (audio, transcript) and its end (end_response).
            return self.begin_response()
        return []

    # -- scripted server events -------------------------------------------------

    def speech_started(self, audio_start_ms: int = 0, item_id: str = "item_user") -> list[str]:
        """Caller speech; with server_vad's interrupt_response the server cancels itself."""
        out = [
            self._event(
                "input_audio_buffer.speech_started", audio_start_ms=audio_start_ms, item_id=item_id
            )
        ]
        audio = self.session.get("audio") or {}
        detection = (audio.get("input") or {}).get("turn_detection") or {}
        if self.active_response is not None and detection.get("interrupt_response", True):
            out += self.end_response(status="cancelled", reason="turn_detected")
        return out

    def speech_stopped(self, audio_end_ms: int = 0, item_id: str = "item_user") -> list[str]:
        return [
            self._event(
                "input_audio_buffer.speech_stopped", audio_end_ms=audio_end_ms, item_id=item_id
            )
        ]

    def user_transcript(self, text: str, item_id: str = "item_user") -> list[str]:
        return [
            self._event(
                "conversation.item.input_audio_transcription.completed",
                item_id=item_id,
                content_index=0,
                transcript=text,
                usage={"type": "duration", "seconds": 1},
            )
        ]

    def begin_response(self) -> list[str]:
        self.active_response = f"resp_{next(self._ids)}"
        self._active_item = f"item_{next(self._ids)}"
        item = {"id": self._active_item, "type": "message", "role": "assistant", "content": []}
        self._output = [dict(item, status="completed")]
        response = {"id": self.active_response, "object": "realtime.response"}
        return [
            self._event("response.created", response=dict(response, status="in_progress")),
            self._event(
                "response.output_item.added",
                response_id=self.active_response,
                output_index=0,
                item=dict(item, status="in_progress"),
            ),
        ]

    def audio_template(self) -> tuple[str, str]:
        """``response.output_audio.delta`` of the active response, cut around its
        base64 ``delta``: for a sender of many deltas that does not encode JSON
        per delta (the call benchmark's fake shares the machine's cores)."""
        head, _, tail = self._part("response.output_audio.delta", delta="\0").partition(
            '"\\u0000"'
        )
        return head + '"', '"' + tail

    def audio(self, audio: bytes, chunk_bytes: int = 800) -> list[str]:
        return [
            self._part(
                "response.output_audio.delta",
                delta=base64.b64encode(audio[i : i + chunk_bytes]).decode(),
            )
            for i in range(0, len(audio), chunk_bytes)
        ]

    def transcript(self, text: str) -> list[str]:
        words = text.split(" ")
        deltas = [w if i == 0 else " " + w for i, w in enumerate(words)]
        out = [self._part("response.output_audio_transcript.delta", delta=d) for d in deltas]
        out.append(self._part("response.output_audio_transcript.done", transcript=text))
        return out

    def end_response(self, status: str = "completed", reason: str | None = None) -> list[str]:
        out = [self._part("response.output_audio.done")] if self._active_item else []
        details = None if reason is None else {"type": status, "reason": reason}
        response = {
            "id": self.active_response,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": self._output,
        }
        if self.usage is not None:
            response["usage"] = self.usage
        out.append(self._event("response.done", response=response))
        self.active_response = self._active_item = None
        self._output = []
        return out

    def respond(self, audio: bytes, text: str, chunk_bytes: int = 800) -> list[str]:
        """A whole spoken answer: created, audio deltas, transcript, done."""
        return (
            self.begin_response()
            + self.audio(audio, chunk_bytes)
            + self.transcript(text)
            + self.end_response()
        )

    def function_call(
        self, name: str, arguments: str, call_id: str = "call_1", status: str = "completed"
    ) -> list[str]:
        """One response calling one function; ``status="cancelled"`` as when interrupted."""
        return self.function_calls([(name, arguments, call_id)], status=status)

    def function_calls(
        self, calls: Sequence[tuple[str, str, str]], status: str = "completed"
    ) -> list[str]:
        """One response calling ``(name, arguments, call_id)`` functions in parallel.

        The server emits ``response.function_call_arguments.done`` even for a
        cancelled response; the item then ends ``incomplete``.
        """
        response_id = f"resp_{next(self._ids)}"
        response = {"id": response_id, "object": "realtime.response"}
        out = [self._event("response.created", response=dict(response, status="in_progress"))]
        items = []
        item_status = "completed" if status == "completed" else "incomplete"
        for index, (name, arguments, call_id) in enumerate(calls):
            item_id = f"item_{next(self._ids)}"
            item = {
                "id": item_id,
                "type": "function_call",
                "status": item_status,
                "name": name,
                "call_id": call_id,
                "arguments": arguments,
            }
            items.append(item)
            common = {"response_id": response_id, "item_id": item_id, "output_index": index}
            out += [
                self._event(
                    "response.function_call_arguments.delta",
                    **common,
                    call_id=call_id,
                    delta=arguments,
                ),
                self._event(
                    "response.function_call_arguments.done",
                    **common,
                    call_id=call_id,
                    name=name,
                    arguments=arguments,
                ),
                self._event(
                    "response.output_item.done",
                    response_id=response_id,
                    output_index=index,
                    item=item,
                ),
            ]
        details = None if status == "completed" else {"type": status, "reason": "turn_detected"}
        out.append(
            self._event(
                "response.done",
                response=dict(response, status=status, status_details=details, output=items),
            )
        )
        return out

    def failed_response(self, code: str = "rate_limit_exceeded") -> list[str]:
        """A response the server gave up on (rate limit, quota)."""
        response_id = f"resp_{next(self._ids)}"
        error = {"type": "requests", "code": code, "message": f"failed: {code}"}
        response = {
            "id": response_id,
            "object": "realtime.response",
            "status": "failed",
            "status_details": {"type": "failed", "error": error},
            "output": [],
        }
        self.active_response = None
        return [
            self._event("response.created", response=dict(response, status="in_progress")),
            self._event("response.done", response=response),
        ]

    def error(self, code: str, message: str, type: str = "invalid_request_error") -> list[str]:
        error = {"type": type, "code": code, "message": message, "param": None, "event_id": None}
        return [self._event("error", error=error)]

    # -- internals ------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> str:
        return json.dumps({"type": kind, "event_id": f"event_{next(self._ids)}", **fields})

    def _part(self, kind: str, **fields: Any) -> str:
        return self._event(
            kind,
            response_id=self.active_response,
            item_id=self._active_item,
            output_index=0,
            content_index=0,
            **fields,
        )


class FakePeer(Protocol):
    def check_handshake(self, path: str, headers: Sequence[tuple[str, str]]) -> int | None: ...

    def on_connect(self) -> list[str]: ...

    def on_message(self, data: str | bytes) -> list[str]: ...


class Loopback:
    """Run a provider session against a fake peer, in memory, no transport.

    ``pump()`` performs every queued I/O action (open, send, close, HTTP) and
    feeds the peer's answers back until nothing is left; ``deliver(messages)``
    pushes server-initiated messages. Events land in ``events``; what the
    session sent is in ``sent``.
    """

    def __init__(self, session: ProviderSession, peer: FakePeer, now: float = 0.0) -> None:
        self.session = session
        self.peer = peer
        self.now = now
        self.events: list[ProviderEvent] = []
        self.sent: list[str | bytes] = []
        self.opened: list[OpenSocket] = []
        self.http: list[HttpRequest] = []
        self.closed: list[int] = []
        self.connected = False
        #: The channel of the newest socket (a renewed session opens another).
        self.channel = MAIN_CHANNEL

    def start(self) -> list[ProviderEvent]:
        self.session.start(self.now)
        return self.pump()

    def pump(self) -> list[ProviderEvent]:
        mark = len(self.events)
        while actions := self.session.io_to_send():
            for action in actions:
                self._perform(action)
        return self.events[mark:]

    def deliver(self, messages: list[str], channel: ChannelId | None = None) -> list[ProviderEvent]:
        """Server messages on ``channel`` (default: the newest socket's)."""
        mark = len(self.events)
        self._feed(messages, channel)
        self.pump()
        return self.events[mark:]

    def _feed(self, messages: list[str], channel: ChannelId | None = None) -> None:
        # No pumping here: actions already drained go out first, in order.
        for message in messages:
            self.events += self.session.receive_io(
                SocketMessage(channel=channel or self.channel, data=message), self.now
            )

    def _perform(self, action: object) -> None:
        if isinstance(action, OpenSocket):
            self.opened.append(action)
            self.channel = action.channel
            parts = urlsplit(action.url)
            status = self.peer.check_handshake(f"{parts.path}?{parts.query}", action.headers)
            if status is not None:
                self.events += self.session.receive_io(
                    SocketClosed(
                        channel=action.channel,
                        code=1006,
                        reason=f"handshake refused: HTTP {status}",
                    ),
                    self.now,
                )
                return
            self.connected = True
            self.events += self.session.receive_io(SocketOpened(channel=action.channel), self.now)
            self._feed(self.peer.on_connect())
        elif isinstance(action, SendMessage):
            assert self.connected, "sent on a socket that is not open"
            self.sent.append(action.data)
            self._feed(self.peer.on_message(action.data))
        elif isinstance(action, CloseSocket):
            self.closed.append(action.code)
            self.connected = False
        elif isinstance(action, StartHttp):
            self.http.append(action.request)
            status, body = self.peer.http_request(action.request)  # type: ignore[attr-defined]
            ch = action.channel
            self.events += self.session.receive_io(
                HttpStarted(
                    channel=ch, status=status, headers=(("content-type", "application/json"),)
                ),
                self.now,
            )
            self.events += self.session.receive_io(HttpData(channel=ch, data=body), self.now)
            self.events += self.session.receive_io(HttpDone(channel=ch), self.now)
        else:
            raise AssertionError(f"unexpected action {action!r}")
