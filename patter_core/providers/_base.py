"""What the two realtime sessions (OpenAI, ElevenLabs) share.

Theory of operation
-------------------

A realtime session owns one WebSocket channel, ``"main"``, and moves through::

    IDLE --start--> CONNECTING --SocketOpened--> OPEN --(provider accepts)--> READY
      any state --close / SocketClosed / fatal error--> CLOSED

Outbound messages go into an I/O queue drained by :meth:`io_to_send`. Until
the subclass declares the session *live* (OpenAI: once ``session.update`` is
queued, since the server applies events in order; ElevenLabs: once the
conversation metadata has told us the audio formats), commands are held in a
bounded pending queue and flushed in order when it goes live.

A provider's malformed message (bad JSON, wrong field types, bad base64) never
raises: it becomes ``ProviderError(fatal=False, code="malformed_message")``
and is counted in :attr:`malformed_messages`. Past
``max_malformed_messages`` the stream is clearly not the protocol we speak,
so the session reports a fatal error and closes the socket (1002).

Nothing here reads a clock: ``start(now)`` arms a set-up deadline, exposed by
:meth:`next_deadline` and fired by :meth:`handle_timer`, as in aioquic.
"""

from __future__ import annotations

import binascii
import enum
import json
from typing import Any

from .._errors import LocalProtocolError, MalformedMessage
from .._json import get_str, load_message
from . import _io
from ._events import ProviderCommand, ProviderError, ProviderEvent, SessionReady
from ._io import MAIN_CHANNEL, ChannelId
from ._session import CloseSocket, IoAction, OpenSocket, SendMessage

__all__ = ["MAIN", "RealtimeSessionBase", "SessionState"]

MAIN = MAIN_CHANNEL

# Why these numbers:
# - 8 MiB per message: OpenAI caps *client* events at 15 MiB, and server audio
#   deltas are a few KiB; ElevenLabs audio events are tens of KiB. Anything
#   bigger is a broken peer, and parsing it would stall every call on the loop.
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# - 512 KiB of pending messages: about 5 s of 24 kHz PCM16 in base64, 48 s of
#   mu-law. A provider that takes longer than that to connect has failed, and
#   the set-up timeout will say so.
DEFAULT_MAX_PENDING_BYTES = 512 * 1024
# - 100 malformed messages: a healthy provider sends none; a hundred means the
#   stream is not the protocol we speak and carrying on only floods the logs.
DEFAULT_MAX_MALFORMED_MESSAGES = 100
# - 15 s to be ready: both providers accept a session in well under a second;
#   past this the caller has been hearing silence for too long.
DEFAULT_SETUP_TIMEOUT = 15.0


class SessionState(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    OPEN = "open"
    READY = "ready"
    CLOSED = "closed"


def b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def dumps(obj: object) -> str:
    """Compact JSON, UTF-8 left as is (WebSocket text frames are UTF-8)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class RealtimeSessionBase:
    """The I/O queue, pending queue, state, timers and error accounting."""

    _provider_name = "provider"

    def __init__(
        self,
        *,
        max_message_bytes: int,
        max_pending_bytes: int,
        max_malformed_messages: int,
        setup_timeout: float,
    ) -> None:
        self._io: list[IoAction] = []
        # The socket in use: "main", unless a subclass moved to a replacement.
        self._channel = MAIN
        self._pending: list[tuple[str, bool]] = []  # (message, is_audio)
        self._pending_bytes = 0
        self._state = SessionState.IDLE
        self._live = False
        self._socket_requested = False
        self._deadline: float | None = None
        self._max_message_bytes = max_message_bytes
        self._max_pending_bytes = max_pending_bytes
        self._max_malformed = max_malformed_messages
        self._setup_timeout = setup_timeout
        #: Provider messages we could not parse or understand (see module doc).
        self.malformed_messages = 0
        #: Outbound messages dropped because the pending queue was full.
        self.dropped_messages = 0

    # -- the ProviderSession surface shared by both providers -----------------

    @property
    def state(self) -> SessionState:
        return self._state

    def io_to_send(self) -> list[IoAction]:
        out, self._io = self._io, []
        return out

    def send(self, command: ProviderCommand, now: float) -> list[ProviderEvent]:
        """Queue the command's messages; a realtime command makes no events
        itself (the provider's answers arrive as messages)."""
        if self._state is SessionState.IDLE:
            raise LocalProtocolError("send() before start()")
        messages = self._encode(command)
        if self._state is SessionState.CLOSED:
            return []  # the call is ending; a late command is not an error
        for text, is_audio in messages:
            self._send_text(text, is_audio)
        return []

    @property
    def audio_now(self) -> bool:
        """True when ``send(SendAudio(audio))`` would send one message at once
        and make no event: :meth:`audio_message` is that message."""
        return self._live and self._state is not SessionState.CLOSED

    def audio_message(self, audio: bytes) -> SendMessage:
        """The message ``SendAudio(audio)`` sends (``audio`` not empty), for
        the bridge's steady state; only while :attr:`audio_now`."""
        return SendMessage(channel=self._channel, data=self._audio_text(audio))

    def close(self, now: float) -> None:
        self._shut(1000)

    def receive_io(self, result: _io.IoResult, now: float) -> list[ProviderEvent]:
        # A message first: 50 a second on a call, against one of each other kind.
        if type(result) is _io.SocketMessage:
            return self._socket_message(result.channel, result.data, now)
        if isinstance(result, _io.SocketOpened):
            return self._socket_opened(result.channel, now)
        if isinstance(result, _io.SocketClosed):
            return self._socket_closed(result.channel, result.code, result.reason, now)
        if isinstance(result, _io.HttpStarted):
            return self._http_started(result.channel, result.status, now)
        if isinstance(result, _io.HttpData):
            return self._http_data(result.channel, result.data, now)
        if isinstance(result, _io.HttpDone):
            return self._http_done(result.channel, now)
        if isinstance(result, _io.HttpFailed):
            return self._http_failed(result.channel, result.message, now)
        assert isinstance(result, _io.HandlerReplied)
        return []  # a realtime session never calls the handler

    def _socket_opened(self, channel: ChannelId, now: float) -> list[ProviderEvent]:
        self._check_channel(channel)
        if self._state is not SessionState.CONNECTING or not self._socket_requested:
            if self._state is SessionState.CLOSED:
                return []  # we closed while the connect was in flight
            raise LocalProtocolError(f"SocketOpened in state {self._state.value}")
        self._state = SessionState.OPEN
        return self._on_open(now)

    def _socket_message(
        self, channel: ChannelId, data: str | bytes, now: float
    ) -> list[ProviderEvent]:
        self._check_channel(channel)
        if self._state is SessionState.CLOSED:
            return []  # late frames after our close are expected and meaningless
        if self._state is not SessionState.OPEN and self._state is not SessionState.READY:
            raise LocalProtocolError(f"SocketMessage in state {self._state.value}")
        try:
            if type(data) is str and len(data) <= self._max_message_bytes // 4:
                events = self._message_shape(data)
                if events is not None:
                    return events
            message = load_message(data, self._max_message_bytes)
            kind = get_str(message, "type") if "type" in message else ""
            return self._on_message(kind, message, now)
        except MalformedMessage as exc:
            return self._malformed(str(exc))

    def _socket_closed(
        self, channel: ChannelId, code: int, reason: str, now: float
    ) -> list[ProviderEvent]:
        self._check_channel(channel)
        if self._state is SessionState.CLOSED:
            return []  # we asked for it
        self._state = SessionState.CLOSED
        self._deadline = None
        self._pending.clear()
        detail = f"{code} {reason}".strip()
        return [
            ProviderError(
                message=f"{self._provider_name} closed the connection ({detail})",
                fatal=True,
                code=str(code),
            )
        ]

    def next_deadline(self) -> float | None:
        return self._deadline

    def handle_timer(self, now: float) -> list[ProviderEvent]:
        if self._deadline is None or now < self._deadline:
            return []
        return self._fail(
            f"{self._provider_name} was not ready within {self._setup_timeout:g} s",
            code="setup_timeout",
        )

    # -- for subclasses ---------------------------------------------------------

    # HTTP results: only for a session that starts requests (ElevenLabs'
    # signed URL); the runtime reports nothing it was not asked for.
    def _http_started(self, channel: ChannelId, status: int, now: float) -> list[ProviderEvent]:
        return []

    def _http_data(self, channel: ChannelId, data: bytes, now: float) -> list[ProviderEvent]:
        return []

    def _http_done(self, channel: ChannelId, now: float) -> list[ProviderEvent]:
        return []

    def _http_failed(self, channel: ChannelId, message: str, now: float) -> list[ProviderEvent]:
        return []

    def _encode(self, command: ProviderCommand) -> list[tuple[str, bool]]:
        raise NotImplementedError

    def _audio_text(self, audio: bytes) -> str:
        """The wire message for a chunk of caller audio (``SendAudio``)."""
        raise NotImplementedError

    def _on_open(self, now: float) -> list[ProviderEvent]:
        raise NotImplementedError

    def _on_message(self, kind: str, message: dict[str, Any], now: float) -> list[ProviderEvent]:
        raise NotImplementedError

    def _message_shape(self, data: str) -> list[ProviderEvent] | None:
        """An audio message in exactly the shape the provider documents, read
        without parsing it into a dict (``_json``'s exact-shape readers): the
        events :meth:`_on_message` would give. None for any other message,
        and for one it cannot vouch for: the general path reads those (and
        reports them in its own words). ``data`` is short enough that its
        size is never what refuses it."""
        return None

    def _begin(self, now: float) -> None:
        if self._state is not SessionState.IDLE:
            raise LocalProtocolError("start() called twice")
        self._state = SessionState.CONNECTING
        self._deadline = now + self._setup_timeout

    def _open_socket(self, url: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._socket_requested = True
        self._io.append(OpenSocket(channel=self._channel, url=url, headers=headers))

    def _send_now(self, text: str) -> None:
        self._io.append(SendMessage(channel=self._channel, data=text))

    def _send_text(self, text: str, is_audio: bool) -> None:
        if self._live:
            self._io.append(SendMessage(channel=self._channel, data=text))
            return
        if self._pending_bytes + len(text) > self._max_pending_bytes:
            self.dropped_messages += 1
            return
        self._pending.append((text, is_audio))
        self._pending_bytes += len(text)

    def _go_live(self, *, drop_audio: bool = False) -> None:
        """Send everything held back, in order (minus stale audio if asked)."""
        self._live = True
        for text, is_audio in self._pending:
            if drop_audio and is_audio:
                self.dropped_messages += 1
                continue
            self._io.append(SendMessage(channel=self._channel, data=text))
        self._pending.clear()
        self._pending_bytes = 0

    def _ready(self) -> SessionReady:
        self._state = SessionState.READY
        self._deadline = None
        return SessionReady()

    def _shut(self, close_code: int) -> None:
        if self._state is SessionState.CLOSED:
            return
        self._state = SessionState.CLOSED
        self._deadline = None
        self._pending.clear()
        self._pending_bytes = 0
        if self._socket_requested:
            self._io.append(CloseSocket(channel=self._channel, code=close_code))

    def _fail(self, message: str, *, code: str, close_code: int = 1000) -> list[ProviderEvent]:
        """A fatal error found on our side: report it and close the socket."""
        self._shut(close_code)
        return [ProviderError(message=message, fatal=True, code=code)]

    def _malformed(self, why: str) -> list[ProviderEvent]:
        self.malformed_messages += 1
        if self.malformed_messages > self._max_malformed:
            # RFC 6455 §7.4.1: 1002 "terminating the connection due to a protocol error".
            return self._fail(
                f"{self._provider_name} sent more than {self._max_malformed} malformed messages",
                code="too_many_malformed_messages",
                close_code=1002,
            )
        return [
            ProviderError(
                message=f"malformed {self._provider_name} message: {why}",
                fatal=False,
                code="malformed_message",
            )
        ]

    def _check_channel(self, channel: ChannelId) -> None:
        if channel != self._channel:
            raise LocalProtocolError(f"unknown channel {channel!r}")
