"""OpenAI Realtime (GA) over WebSocket, as a sans-IO session.

Theory of operation
-------------------

PROTOCOLS.md §5. ``start`` asks for ``OpenSocket("main",
wss://.../v1/realtime?model=..., Authorization: Bearer ...)``; no
``OpenAI-Beta`` header, which would select the deprecated beta shape. Once the
socket is open we queue one ``session.update`` (GA shape, built once per
session) and go *live*: the server applies client events in order, so audio
appended after the update is already read in the configured format. The
server's ``session.updated`` gives :class:`SessionReady`, then the optional
greeting (``response.create`` asking for the exact first message).

Server events become the common provider events::

    session.created (expires_at)             -> a renewal planned (_openai_renewal), or
                                                SessionLimit(expires_at) when renewal is off
    response.output_audio.delta              -> AudioOut(audio, item_id)
    response.output_audio_transcript.delta   -> Transcript(assistant, final=False)
    response.output_audio_transcript.done    -> Transcript(assistant, final=True)
    input_audio_buffer.speech_started        -> UserSpeechStarted(item_id)
    input_audio_buffer.speech_stopped        -> UserSpeechStopped(item_id)
    ...input_audio_transcription.completed   -> Transcript(user, final=True)
    response.output_item.done (function_call, completed)
                                             -> ToolCall(call_id, name, arguments)
    response.done                            -> ResponseDone(item_id, status, tool_calls)
    error                                    -> ProviderError(fatal=False)

One response at a time (PROTOCOLS.md §5.1 "Behaviour"): the server refuses
a ``response.create`` while a response is active
(``conversation_already_has_active_response``), so ours wait in a queue
until the active response's ``response.done``, as OpenAI's own SDK does. A
response is active from our ``response.create`` (or the server's
``response.created``, e.g. from server VAD) to its ``response.done``; a
refused create goes back to the head of the queue. Tool outputs are sent at
once, and one ``response.create`` follows when every completed call of the
answer has its output (parallel calls: N outputs, one create).

Function calls act only from completed items: the server also emits
``response.function_call_arguments.done`` for an interrupted or cancelled
response, so the call is held until ``response.output_item.done`` (status
``completed``) or a completed ``response.done``; a cancelled one is dropped
and counted in :attr:`OpenAIRealtimeSession.dropped_tool_calls`.

``response.done`` with status ``failed`` (rate limits, quota) is reported as
a non-fatal ``ProviderError(code="response_failed")`` and counted;
``max_failed_responses`` failures in a row end the session (fatal).

The deprecated beta names (``response.audio.delta``,
``response.audio_transcript.*``, ``response.text.*``) are accepted on input
too; unknown types are ignored, as the API adds events over time. An
``error`` is not fatal by itself: the server closes the socket when the
session cannot go on, and that close is the fatal event. The one error we
swallow is ``response_cancel_not_active``: the bridge cancels on every
barge-in, and "nothing to cancel" is the expected answer when the agent was
silent.

Before ``session.expires_at`` the session is replaced by a new one with the
conversation carried over; see :mod:`._openai_renewal`. The client events
themselves, and the audio delta read without a dict, are
:mod:`._openai_wire`'s.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from .._deadlines import earliest
from .._errors import LocalProtocolError, MalformedMessage
from .._json import (
    b64decode,
    get_object,
    get_str,
    load_message,
    opt_str,
)
from ..audio._format import PCM16_24K, AudioFormat
from . import _openai_wire as wire
from ._base import RealtimeSessionBase, SessionState, dumps
from ._events import (
    AnswerStage,
    AudioOut,
    ProviderCommand,
    ProviderError,
    ProviderEvent,
    ResponseDone,
    SessionLimit,
    ToolCall,
    ToolResult,
    Transcript,
    UpdateInstructions,
    UserSpeechStarted,
    UserSpeechStopped,
)
from ._io import ChannelId
from ._openai_config import (
    FORMATS,
    REASONING_EFFORTS,
    OpenAIRealtimeConfig,
    OpenAITurnDetection,
    session_update,
)
from ._openai_renewal import MAX_HISTORY_ITEMS, SWITCH_BY_SECONDS, Renewal, history_items
from ._openai_wire import SAY_EXACTLY_PREFIX
from ._session import CloseSocket, OpenSocket, SendMessage
from ._urls import openai_realtime_url

__all__ = [
    "REASONING_EFFORTS",
    "SAY_EXACTLY_PREFIX",
    "OpenAIRealtimeConfig",
    "OpenAIRealtimeSession",
    "OpenAITurnDetection",
    "session_update",
]

# Server errors that are the expected answer to something we did on purpose.
_EXPECTED_ERROR_CODES = frozenset({"response_cancel_not_active"})
_ACTIVE_RESPONSE = "conversation_already_has_active_response"


class OpenAIRealtimeSession(RealtimeSessionBase):
    """A :class:`~patter_core.providers.ProviderSession` for OpenAI Realtime."""

    _provider_name = "OpenAI Realtime"

    def __init__(self, config: OpenAIRealtimeConfig) -> None:
        super().__init__(
            max_message_bytes=config.max_message_bytes,
            max_pending_bytes=config.max_pending_bytes,
            max_malformed_messages=config.max_malformed_messages,
            setup_timeout=config.setup_timeout,
        )
        self._config = config
        self._format = FORMATS[config.audio_format][1]
        self._url = openai_realtime_url(config.base_url, config.model)
        self._headers = (("authorization", f"Bearer {config.api_key}"),)
        # Built once: also proves now, not mid-call, that the tools serialise.
        try:
            self._session_update = dumps(session_update(config))
        except (TypeError, ValueError) as exc:
            raise LocalProtocolError(f"configuration is not JSON-serialisable: {exc}") from None
        self._got_session_updated = False
        #: Server errors swallowed as expected (see module doc).
        self.expected_errors = 0
        #: The server's id for this session, once ``session.created`` arrives.
        self.session_id: str | None = None
        #: When the server will close the session (``session.expires_at``).
        self.expires_at: float | None = None
        # One response at a time (module doc).
        self._response_active = False
        self._awaiting_created = False
        self._creates: list[str] = []
        self._last_create: str | None = None
        self._open_calls: set[str] = set()  # completed calls awaiting our output
        self._outputs_sent = False  # a tool output is waiting for its response.create
        self._held_calls: dict[str, ToolCall] = {}  # by item id, until the item completes
        self._answer_calls = 0  # completed calls in the active response
        self._failed_in_a_row = 0
        #: ``response.create`` refused as "already has an active response" and re-sent.
        self.refused_creates = 0
        #: Function calls of cancelled or incomplete responses, not acted on.
        self.dropped_tool_calls = 0
        #: Responses that ended with status ``failed``.
        self.failed_responses = 0
        # Session renewal before expiry (_openai_renewal).
        self._history: deque[tuple[str, str]] = deque(maxlen=MAX_HISTORY_ITEMS)
        self._instructions_update: str | None = None
        self._renew_at: float | None = None
        self._renewal: Renewal | None = None
        self._retired: set[ChannelId] = set()
        #: Sessions replaced before they expired, the conversation carried over.
        self.renewals = 0

    @property
    def config(self) -> OpenAIRealtimeConfig:
        return self._config

    @property
    def input_format(self) -> AudioFormat:
        return self._format

    @property
    def output_format(self) -> AudioFormat:
        return self._format

    def start(self, now: float) -> list[ProviderEvent]:
        self._begin(now)
        self._open_socket(self._url, self._headers)
        return []

    # -- commands -> wire -------------------------------------------------------

    def _audio_text(self, audio: bytes) -> str:
        return wire.append(audio)

    def _encode(self, command: ProviderCommand) -> list[tuple[str, bool]]:
        messages = wire.encode(command, self._config.turn_detection)
        if isinstance(command, UpdateInstructions):
            self._instructions_update = messages[0][0]  # a renewed session gets it too
        return messages

    def send(self, command: ProviderCommand, now: float) -> list[ProviderEvent]:
        events = super().send(command, now)
        if isinstance(command, ToolResult):
            self._open_calls.discard(command.call_id)
            self._outputs_sent = True
            self._flush_responses()
        return events

    def _send_text(self, text: str, is_audio: bool) -> None:
        if text.startswith(wire.CREATE_PREFIX):
            self._creates.append(text)
            self._flush_responses()
            return
        super()._send_text(text, is_audio)

    def _flush_responses(self) -> None:
        """Send the next ``response.create`` if no response is active (module doc)."""
        if self._state is SessionState.CLOSED or self._response_active:
            return
        if self._outputs_sent and not self._open_calls:
            self._outputs_sent = False
            self._creates.insert(0, wire.RESPONSE_CREATE)
        if not self._creates:
            return
        text = self._creates.pop(0)
        self._response_active = self._awaiting_created = True
        self._last_create = text
        super()._send_text(text, False)

    # -- renewal before expiry (_openai_renewal) ---------------------------------

    def next_deadline(self) -> float | None:
        base = super().next_deadline()
        if self._state is SessionState.CLOSED:
            return base
        r = self._renewal
        if r is None:
            return earliest(base, self._renew_at)
        if not r.ready:
            return earliest(base, r.deadline)
        if self.expires_at is not None:
            return earliest(base, self.expires_at - SWITCH_BY_SECONDS)
        return base

    def handle_timer(self, now: float) -> list[ProviderEvent]:
        events = super().handle_timer(now)
        r = self._renewal
        if self._state is SessionState.CLOSED or self._state is SessionState.IDLE:
            return events
        if r is None and self._renew_at is not None and now >= self._renew_at:
            self._renew_at = None
            self._renewal = Renewal(
                channel=ChannelId(f"main.{self.renewals + 2}"),
                deadline=now + self._config.setup_timeout,
            )
            self._io.append(
                OpenSocket(channel=self._renewal.channel, url=self._url, headers=self._headers)
            )
        elif r is not None and not r.ready and now >= r.deadline:
            events += self._renewal_failed("the new session was not ready in time")
        elif r is not None and r.ready and now >= (self.expires_at or now) - SWITCH_BY_SECONDS:
            events += self._switch()  # forced, even mid-answer
        return events

    def _socket_opened(self, channel: ChannelId, now: float) -> list[ProviderEvent]:
        r = self._renewal
        if r is not None and channel == r.channel:
            self._io.append(SendMessage(channel=channel, data=self._session_update))
            if self._instructions_update is not None:
                self._io.append(SendMessage(channel=channel, data=self._instructions_update))
            return []
        return super()._socket_opened(channel, now)

    def _socket_message(
        self, channel: ChannelId, data: str | bytes, now: float
    ) -> list[ProviderEvent]:
        r = self._renewal
        if r is None or channel != r.channel:
            if channel in self._retired:
                return []  # the old session's last words: it is no longer ours
            return super()._socket_message(channel, data, now)
        try:
            m = load_message(data, self._config.max_message_bytes)
            kind = get_str(m, "type") if "type" in m else ""
            if kind == "session.created":
                session = get_object(m, "session")
                r.session_id = opt_str(session, "id")
                expires = session.get("expires_at")
                if isinstance(expires, int | float) and not isinstance(expires, bool):
                    r.expires_at = float(expires) - self._config.wall_offset
            elif kind == "session.updated" and not r.ready:
                r.ready = True
                for text in history_items(self._history):
                    self._io.append(SendMessage(channel=channel, data=text))
                return self._maybe_switch()
            elif kind == "error":
                error = get_object(m, "error")
                detail = opt_str(error, "message") or "unspecified error"
                return [ProviderError(message=f"renewal: {detail}", code=opt_str(error, "code"))]
        except MalformedMessage as exc:
            return self._malformed(str(exc))
        return []

    def _socket_closed(
        self, channel: ChannelId, code: int, reason: str, now: float
    ) -> list[ProviderEvent]:
        r = self._renewal
        if r is not None and channel == r.channel:
            return self._renewal_failed(f"the new session closed ({code} {reason})".strip())
        if channel in self._retired:
            return []  # we closed it after the switch
        return super()._socket_closed(channel, code, reason, now)

    def close(self, now: float) -> None:
        r, self._renewal = self._renewal, None
        if r is not None and self._state is not SessionState.CLOSED:
            self._io.append(CloseSocket(channel=r.channel))
        super().close(now)

    def _maybe_switch(self) -> list[ProviderEvent]:
        r = self._renewal
        if r is None or not r.ready or self._response_active or self._open_calls:
            return []
        return self._switch()

    def _switch(self) -> list[ProviderEvent]:
        """Move the call to the renewed session (see _openai_renewal)."""
        r, self._renewal = self._renewal, None
        if r is None or self._state is SessionState.CLOSED:
            return []
        events: list[ProviderEvent] = []
        if self._response_active:  # forced: the old answer is cut off
            events.append(ResponseDone(status="cancelled"))
        old, self._channel = self._channel, r.channel
        self._retired.add(old)
        self._io.append(CloseSocket(channel=old))
        self._response_active = self._awaiting_created = False
        self._held_calls.clear()
        self._open_calls.clear()
        self.renewals += 1
        old_expiry, self.session_id, self.expires_at = self.expires_at, r.session_id, r.expires_at
        lead = self._config.renew_before_expiry
        if r.expires_at is not None and lead is not None:
            if old_expiry is not None and r.expires_at <= old_expiry:
                # The new session ends no later: renewing again would not help.
                events.append(SessionLimit(expires_at=r.expires_at))
            else:
                self._renew_at = r.expires_at - lead
        self._flush_responses()
        return events

    def _renewal_failed(self, why: str) -> list[ProviderEvent]:
        r, self._renewal = self._renewal, None
        if r is not None:
            self._retired.add(r.channel)
            self._io.append(CloseSocket(channel=r.channel))
        events: list[ProviderEvent] = [
            ProviderError(message=f"session renewal failed: {why}", code="renewal_failed")
        ]
        if self.expires_at is not None:
            events.append(SessionLimit(expires_at=self.expires_at))
        return events

    # -- wire -> events ---------------------------------------------------------

    def _on_open(self, now: float) -> list[ProviderEvent]:
        self._send_now(self._session_update)
        self._go_live()
        return []

    def _on_message(self, kind: str, message: dict[str, Any], now: float) -> list[ProviderEvent]:
        handler = _HANDLERS.get(kind)
        if handler is None:
            return []  # unknown or uninteresting (rate_limits.updated, ...)
        return handler(self, message)

    def _message_shape(self, data: str) -> list[ProviderEvent] | None:
        if not data.endswith('"}'):
            return None
        match = wire.DELTA_HEAD.match(data)
        if match is None:
            return None
        delta = data[match.end() : -2]
        if '"' in delta or "\\" in delta:
            return None  # not the plain base64 string of the documented shape
        try:
            return self._audio(delta, match[1])
        except MalformedMessage:
            return None  # the general path says why, in its own words

    def _audio_delta(self, m: dict[str, Any]) -> list[ProviderEvent]:
        return self._audio(get_str(m, "delta"), opt_str(m, "item_id"))

    def _audio(self, delta: str, item_id: str | None) -> list[ProviderEvent]:
        audio = b64decode(delta)
        if not audio:
            return []
        if self._format is PCM16_24K and len(audio) % 2:
            raise MalformedMessage("PCM16 delta with an odd byte count")
        return [AudioOut(audio=audio, item_id=item_id)]

    def _assistant_delta(self, m: dict[str, Any]) -> list[ProviderEvent]:
        text = get_str(m, "delta")
        return [Transcript(role="assistant", text=text, final=False, item_id=opt_str(m, "item_id"))]

    def _assistant_done(self, m: dict[str, Any]) -> list[ProviderEvent]:
        text = get_str(m, "transcript")
        self._history.append(("assistant", text))
        return [Transcript(role="assistant", text=text, final=True, item_id=opt_str(m, "item_id"))]

    def _text_done(self, m: dict[str, Any]) -> list[ProviderEvent]:
        text = get_str(m, "text")
        self._history.append(("assistant", text))
        return [Transcript(role="assistant", text=text, final=True, item_id=opt_str(m, "item_id"))]

    def _speech_started(self, m: dict[str, Any]) -> list[ProviderEvent]:
        return [UserSpeechStarted(item_id=opt_str(m, "item_id"))]

    def _speech_stopped(self, m: dict[str, Any]) -> list[ProviderEvent]:
        return [UserSpeechStopped(item_id=opt_str(m, "item_id"))]

    def _user_delta(self, m: dict[str, Any]) -> list[ProviderEvent]:
        text = get_str(m, "delta")
        return [Transcript(role="user", text=text, final=False, item_id=opt_str(m, "item_id"))]

    def _user_done(self, m: dict[str, Any]) -> list[ProviderEvent]:
        text = get_str(m, "transcript")
        self._history.append(("user", text))
        return [Transcript(role="user", text=text, final=True, item_id=opt_str(m, "item_id"))]

    def _user_failed(self, m: dict[str, Any]) -> list[ProviderEvent]:
        error = m.get("error")
        detail = opt_str(error, "message") if isinstance(error, dict) else None
        return [
            ProviderError(
                message=f"caller transcription failed: {detail or 'no detail'}",
                code="transcription_failed",
            )
        ]

    def _tool_call(self, m: dict[str, Any]) -> list[ProviderEvent]:
        # Held until its item completes: also sent for cancelled responses.
        call = ToolCall(
            call_id=get_str(m, "call_id"),
            name=get_str(m, "name"),
            arguments=get_str(m, "arguments"),
        )
        self._held_calls[opt_str(m, "item_id") or call.call_id] = call
        return []

    def _release_call(self, key: str, completed: bool) -> list[ProviderEvent]:
        call = self._held_calls.pop(key, None)
        if call is None:
            return []
        if not completed:
            self.dropped_tool_calls += 1
            return []
        self._open_calls.add(call.call_id)
        self._answer_calls += 1
        return [call]

    def _item_done(self, m: dict[str, Any]) -> list[ProviderEvent]:
        item = get_object(m, "item")
        if item.get("type") != "function_call":
            return []
        key = opt_str(item, "id") or opt_str(item, "call_id") or ""
        return self._release_call(key, opt_str(item, "status") in (None, "completed"))

    def _response_created(self, m: dict[str, Any]) -> list[ProviderEvent]:
        self._response_active = True  # ours, or the server's own (server VAD)
        self._awaiting_created = False
        return [AnswerStage(stage="response_created")]

    def _response_done(self, m: dict[str, Any]) -> list[ProviderEvent]:
        response = get_object(m, "response")
        status = opt_str(response, "status") or "completed"
        item_id: str | None = None
        events: list[ProviderEvent] = []
        output = response.get("output")
        if isinstance(output, list):
            for item in output:
                if not isinstance(item, dict):
                    continue
                if item.get("type") == "message":
                    # The spoken answer is the last "message" item of the response.
                    item_id = opt_str(item, "id")
                elif item.get("type") == "function_call":
                    key = opt_str(item, "id") or opt_str(item, "call_id") or ""
                    ok = status == "completed" and opt_str(item, "status") in (None, "completed")
                    events += self._release_call(key, ok)
        for key in list(self._held_calls):  # calls the output did not list
            events += self._release_call(key, status == "completed")
        # response.usage: the token counts the Realtime API reports per answer.
        usage = response.get("usage")
        counts: tuple[tuple[str, int], ...] = ()
        if isinstance(usage, dict):
            counts = tuple(
                (key, value)
                for key in ("input_tokens", "output_tokens", "total_tokens")
                if isinstance(value := usage.get(key), int) and not isinstance(value, bool)
            )
        events.append(
            ResponseDone(
                item_id=item_id, status=status, tool_calls=self._answer_calls, usage=counts
            )
        )
        self._answer_calls = 0
        self._response_active = self._awaiting_created = False
        if status == "failed":
            events += self._response_failed(response)
        elif status == "completed":
            self._failed_in_a_row = 0
        self._flush_responses()
        self._maybe_switch()
        return events

    def _response_failed(self, response: dict[str, Any]) -> list[ProviderEvent]:
        self.failed_responses += 1
        self._failed_in_a_row += 1
        details = response.get("status_details")
        error = details.get("error") if isinstance(details, dict) else None
        reason = "no detail"
        if isinstance(error, dict):
            reason = opt_str(error, "message") or opt_str(error, "code") or reason
        elif isinstance(details, dict):
            reason = opt_str(details, "reason") or reason
        limit = self._config.max_failed_responses
        if self._failed_in_a_row >= limit:
            return self._fail(
                f"{limit} responses in a row failed (last: {reason})", code="response_failed"
            )
        return [ProviderError(message=f"response failed: {reason}", code="response_failed")]

    def _session_created(self, m: dict[str, Any]) -> list[ProviderEvent]:
        session = m.get("session")
        if not isinstance(session, dict):
            return []
        self.session_id = opt_str(session, "id")
        expires = session.get("expires_at")
        # Unix seconds; the server closes the session then (60 minutes, 1001).
        # Kept on the clock ``now`` runs on (config.wall_offset).
        if isinstance(expires, int | float) and not isinstance(expires, bool) and expires > 0:
            self.expires_at = float(expires) - self._config.wall_offset
            lead = self._config.renew_before_expiry
            if lead is None:
                return [SessionLimit(expires_at=self.expires_at)]
            self._renew_at = self.expires_at - lead
        return []

    def _session_updated(self, m: dict[str, Any]) -> list[ProviderEvent]:
        if self._got_session_updated:
            return []  # the answer to a later UpdateInstructions
        self._got_session_updated = True
        events: list[ProviderEvent] = [self._ready()]
        if self._config.first_message:
            self._send_text(wire.say(self._config.first_message), False)
        return events

    def _error(self, m: dict[str, Any]) -> list[ProviderEvent]:
        error = get_object(m, "error")
        code = opt_str(error, "code") or opt_str(error, "type")
        if code in _EXPECTED_ERROR_CODES:
            self.expected_errors += 1
            return []
        if code == _ACTIVE_RESPONSE and self._last_create is not None:
            # Ours lost a race with the server's own (server VAD): it goes
            # first when that one is done.
            self.refused_creates += 1
            self._creates.insert(0, self._last_create)
            self._last_create = None
            self._response_active = True
            self._awaiting_created = False
            return []
        if self._awaiting_created:
            # Our create was refused for another reason: nothing is active.
            self._response_active = self._awaiting_created = False
            self._flush_responses()
        message = opt_str(error, "message") or "unspecified error"
        return [ProviderError(message=message, fatal=False, code=code)]


_Handler = Callable[[OpenAIRealtimeSession, dict[str, Any]], list[ProviderEvent]]

_S = OpenAIRealtimeSession
_HANDLERS: dict[str, _Handler] = {
    # GA names (PROTOCOLS.md §5.3), then the deprecated beta names.
    "session.created": _S._session_created,
    "session.updated": _S._session_updated,
    "response.output_audio.delta": _S._audio_delta,
    "response.audio.delta": _S._audio_delta,
    "response.output_audio_transcript.delta": _S._assistant_delta,
    "response.audio_transcript.delta": _S._assistant_delta,
    "response.output_audio_transcript.done": _S._assistant_done,
    "response.audio_transcript.done": _S._assistant_done,
    "response.output_text.delta": _S._assistant_delta,
    "response.text.delta": _S._assistant_delta,
    "response.output_text.done": _S._text_done,
    "response.text.done": _S._text_done,
    "input_audio_buffer.speech_started": _S._speech_started,
    "input_audio_buffer.speech_stopped": _S._speech_stopped,
    "conversation.item.input_audio_transcription.delta": _S._user_delta,
    "conversation.item.input_audio_transcription.completed": _S._user_done,
    "conversation.item.input_audio_transcription.failed": _S._user_failed,
    "response.function_call_arguments.done": _S._tool_call,
    "response.output_item.done": _S._item_done,
    "response.created": _S._response_created,
    "response.done": _S._response_done,
    "error": _S._error,
}
