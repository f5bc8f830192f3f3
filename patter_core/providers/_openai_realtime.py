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

    response.output_audio.delta              -> AudioOut(audio, item_id)
    response.output_audio_transcript.delta   -> Transcript(assistant, final=False)
    response.output_audio_transcript.done    -> Transcript(assistant, final=True)
    input_audio_buffer.speech_started        -> UserSpeechStarted(item_id)
    input_audio_buffer.speech_stopped        -> UserSpeechStopped(item_id)
    ...input_audio_transcription.completed   -> Transcript(user, final=True)
    response.function_call_arguments.done    -> ToolCall(call_id, name, arguments)
    response.done                            -> ResponseDone(item_id, status)
    error                                    -> ProviderError(fatal=False)

The deprecated beta names (``response.audio.delta``,
``response.audio_transcript.*``, ``response.text.*``) are accepted on input
too; unknown types are ignored, as the API adds events over time. An
``error`` is not fatal by itself: the server closes the socket when the
session cannot go on, and that close is the fatal event. The one error we
swallow is ``response_cancel_not_active``: the bridge cancels on every
barge-in, and "nothing to cancel" is the expected answer when the agent was
silent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .._errors import LocalProtocolError
from ..audio._format import ALAW_8K, PCM16_24K, ULAW_8K, AudioFormat
from ._base import (
    DEFAULT_MAX_MALFORMED_MESSAGES,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_PENDING_BYTES,
    DEFAULT_SETUP_TIMEOUT,
    Malformed,
    RealtimeSessionBase,
    b64decode,
    b64encode,
    dumps,
    get_obj,
    get_str,
    opt_str,
)
from ._events import (
    AudioOut,
    Cancel,
    HoldBargeIn,
    ProviderCommand,
    ProviderError,
    ProviderEvent,
    ResponseDone,
    Say,
    SendAudio,
    SendText,
    ToolCall,
    ToolResult,
    Transcript,
    Truncate,
    UpdateInstructions,
    UserSpeechStarted,
    UserSpeechStopped,
)
from ._urls import DEFAULT_OPENAI_BASE_URL, openai_realtime_url

__all__ = [
    "SAY_EXACTLY_PREFIX",
    "OpenAIRealtimeConfig",
    "OpenAIRealtimeSession",
    "OpenAITurnDetection",
]

#: How a greeting or ``Say`` is worded: the Realtime API has no "speak this
#: text" event, so we ask for a response whose per-response instructions are
#: to repeat the text verbatim.
SAY_EXACTLY_PREFIX = "Say exactly this to the caller, word for word, and nothing else: "

# GA audio format objects (PROTOCOLS.md §5.2) and the AudioFormat each carries.
_FORMATS: dict[str, tuple[dict[str, object], AudioFormat]] = {
    "pcmu": ({"type": "audio/pcmu"}, ULAW_8K),
    "pcma": ({"type": "audio/pcma"}, ALAW_8K),
    "pcm24": ({"type": "audio/pcm", "rate": 24000}, PCM16_24K),  # the only PCM rate
}

# The hot path: one append per 20 ms frame in each call. Base64 needs no JSON
# escaping, so the message is two constant strings around the payload.
_APPEND_PREFIX = '{"type":"input_audio_buffer.append","audio":"'
_APPEND_SUFFIX = '"}'
_RESPONSE_CREATE = '{"type":"response.create"}'
_RESPONSE_CANCEL = '{"type":"response.cancel"}'

# Server errors that are the expected answer to something we did on purpose.
_EXPECTED_ERROR_CODES = frozenset({"response_cancel_not_active"})


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAITurnDetection:
    """``audio.input.turn_detection``; the defaults are the server's own (§5.2)."""

    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float = 0.5  # server_vad only
    prefix_padding_ms: int = 300  # server_vad only
    silence_duration_ms: int = 500  # server_vad only
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"  # semantic_vad only
    create_response: bool = True
    # The server cancels its own answer when the caller talks over it.
    interrupt_response: bool = True
    idle_timeout_ms: int | None = None  # server_vad only

    def to_json(self) -> dict[str, object]:
        if self.type == "semantic_vad":
            return {
                "type": "semantic_vad",
                "eagerness": self.eagerness,
                "create_response": self.create_response,
                "interrupt_response": self.interrupt_response,
            }
        if self.type != "server_vad":
            raise LocalProtocolError(f"unknown turn detection type {self.type!r}")
        out: dict[str, object] = {
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
            "create_response": self.create_response,
            "interrupt_response": self.interrupt_response,
        }
        if self.idle_timeout_ms is not None:
            out["idle_timeout_ms"] = self.idle_timeout_ms
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAIRealtimeConfig:
    """One agent's Realtime settings; ``tools`` are ``{name, description, parameters}``."""

    api_key: str
    model: str = "gpt-realtime"
    voice: str = "marin"
    instructions: str = ""
    first_message: str | None = None
    tools: Sequence[Mapping[str, Any]] = ()
    # "pcmu" passes Twilio's mu-law 8 kHz through untouched; "pcm24" is the
    # API's only PCM rate, 24 kHz, resampled by the bridge.
    audio_format: Literal["pcmu", "pcma", "pcm24"] = "pcmu"
    # None means manual turns (the bridge commits and asks for responses).
    turn_detection: OpenAITurnDetection | None = field(default_factory=OpenAITurnDetection)
    input_transcription_model: str | None = "gpt-4o-mini-transcribe"
    noise_reduction: Literal["near_field", "far_field"] | None = None
    base_url: str = DEFAULT_OPENAI_BASE_URL
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES
    max_malformed_messages: int = DEFAULT_MAX_MALFORMED_MESSAGES
    setup_timeout: float = DEFAULT_SETUP_TIMEOUT

    def __post_init__(self) -> None:
        if not isinstance(self.api_key, str) or not self.api_key:
            raise LocalProtocolError("api_key must be a non-empty string")
        if self.audio_format not in _FORMATS:
            raise LocalProtocolError(f"audio_format must be one of {sorted(_FORMATS)}")
        for tool in self.tools:
            if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
                raise LocalProtocolError(f"each tool needs a string 'name': {tool!r}")
        if self.max_message_bytes <= 0 or self.max_pending_bytes < 0:
            raise LocalProtocolError("message limits must be positive")


def session_update(config: OpenAIRealtimeConfig) -> dict[str, object]:
    """The GA ``session.update`` for ``config`` (PROTOCOLS.md §5.2)."""
    fmt = _FORMATS[config.audio_format][0]
    audio_in: dict[str, object] = {
        "format": fmt,
        "turn_detection": (
            config.turn_detection.to_json() if config.turn_detection is not None else None
        ),
    }
    if config.input_transcription_model is not None:
        audio_in["transcription"] = {"model": config.input_transcription_model}
    if config.noise_reduction is not None:
        audio_in["noise_reduction"] = {"type": config.noise_reduction}
    session: dict[str, object] = {
        "type": "realtime",
        "model": config.model,
        "output_modalities": ["audio"],
        "instructions": config.instructions,
        "audio": {"input": audio_in, "output": {"format": fmt, "voice": config.voice}},
    }
    if config.tools:
        session["tools"] = [
            {
                "type": "function",
                "name": tool["name"],
                "description": tool.get("description", ""),
                "parameters": tool.get("parameters", {"type": "object", "properties": {}}),
            }
            for tool in config.tools
        ]
        session["tool_choice"] = "auto"
    return {"type": "session.update", "session": session}


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
        self._format = _FORMATS[config.audio_format][1]
        self._url = openai_realtime_url(config.base_url, config.model)
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

    @property
    def config(self) -> OpenAIRealtimeConfig:
        return self._config

    @property
    def input_format(self) -> AudioFormat:
        return self._format

    @property
    def output_format(self) -> AudioFormat:
        return self._format

    def start(self, now: float) -> None:
        self._begin(now)
        self._open_socket(self._url, (("authorization", f"Bearer {self._config.api_key}"),))

    # -- commands -> wire -------------------------------------------------------

    def _encode(self, command: ProviderCommand) -> list[tuple[str, bool]]:
        if isinstance(command, SendAudio):
            if not command.audio:
                return []
            return [(_APPEND_PREFIX + b64encode(command.audio) + _APPEND_SUFFIX, True)]
        if isinstance(command, Cancel):
            return [(_RESPONSE_CANCEL, False)]
        if isinstance(command, Truncate):
            if command.played_ms < 0:
                raise LocalProtocolError(f"played_ms must be >= 0, not {command.played_ms}")
            item = {
                "type": "conversation.item.truncate",
                "item_id": command.item_id,
                "content_index": 0,
                "audio_end_ms": command.played_ms,
            }
            return [(dumps(item), False)]
        if isinstance(command, ToolResult):
            output = {
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call_output",
                    "call_id": command.call_id,
                    "output": command.output,
                },
            }
            return [(dumps(output), False), (_RESPONSE_CREATE, False)]
        if isinstance(command, Say):
            return [(_say(command.text), False)]
        if isinstance(command, SendText):
            item = {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": command.text}],
                },
            }
            return [(dumps(item), False), (_RESPONSE_CREATE, False)]
        if isinstance(command, HoldBargeIn):
            # The server cancels its own answer on speech (interrupt_response)
            # and answers the speech (create_response): both off, until the end.
            detection = self._config.turn_detection
            if detection is None:
                return []
            held = replace(detection, interrupt_response=False, create_response=False)
            update = {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"turn_detection": held.to_json()}},
                },
            }
            return [(dumps(update), False)]
        if isinstance(command, UpdateInstructions):
            update = {
                "type": "session.update",
                "session": {"type": "realtime", "instructions": command.instructions},
            }
            return [(dumps(update), False)]
        raise LocalProtocolError(f"not a provider command: {command!r}")

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

    def _audio_delta(self, m: dict[str, Any]) -> list[ProviderEvent]:
        audio = b64decode(get_str(m, "delta"))
        if not audio:
            return []
        if self._format is PCM16_24K and len(audio) % 2:
            raise Malformed("PCM16 delta with an odd byte count")
        return [AudioOut(audio=audio, item_id=opt_str(m, "item_id"))]

    def _assistant_delta(self, m: dict[str, Any]) -> list[ProviderEvent]:
        text = get_str(m, "delta")
        return [Transcript(role="assistant", text=text, final=False, item_id=opt_str(m, "item_id"))]

    def _assistant_done(self, m: dict[str, Any]) -> list[ProviderEvent]:
        text = get_str(m, "transcript")
        return [Transcript(role="assistant", text=text, final=True, item_id=opt_str(m, "item_id"))]

    def _text_done(self, m: dict[str, Any]) -> list[ProviderEvent]:
        text = get_str(m, "text")
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
        return [
            ToolCall(
                call_id=get_str(m, "call_id"),
                name=get_str(m, "name"),
                arguments=get_str(m, "arguments"),
            )
        ]

    def _response_done(self, m: dict[str, Any]) -> list[ProviderEvent]:
        response = get_obj(m, "response")
        status = opt_str(response, "status") or "completed"
        item_id: str | None = None
        output = response.get("output")
        if isinstance(output, list):
            # The spoken answer is the last "message" item of the response.
            for item in output:
                if isinstance(item, dict) and item.get("type") == "message":
                    item_id = opt_str(item, "id")
        # response.usage: the token counts the Realtime API reports per answer.
        usage = response.get("usage")
        counts: tuple[tuple[str, int], ...] = ()
        if isinstance(usage, dict):
            counts = tuple(
                (key, value)
                for key in ("input_tokens", "output_tokens", "total_tokens")
                if isinstance(value := usage.get(key), int) and not isinstance(value, bool)
            )
        return [ResponseDone(item_id=item_id, status=status, usage=counts)]

    def _session_created(self, m: dict[str, Any]) -> list[ProviderEvent]:
        session = m.get("session")
        if isinstance(session, dict):
            self.session_id = opt_str(session, "id")
        return []

    def _session_updated(self, m: dict[str, Any]) -> list[ProviderEvent]:
        if self._got_session_updated:
            return []  # the answer to a later UpdateInstructions
        self._got_session_updated = True
        events: list[ProviderEvent] = [self._ready()]
        if self._config.first_message:
            self._send_now(_say(self._config.first_message))
        return events

    def _error(self, m: dict[str, Any]) -> list[ProviderEvent]:
        error = get_obj(m, "error")
        code = opt_str(error, "code") or opt_str(error, "type")
        if code in _EXPECTED_ERROR_CODES:
            self.expected_errors += 1
            return []
        message = opt_str(error, "message") or "unspecified error"
        return [ProviderError(message=message, fatal=False, code=code)]


def _say(text: str) -> str:
    return dumps(
        {"type": "response.create", "response": {"instructions": SAY_EXACTLY_PREFIX + text}}
    )


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
    "response.done": _S._response_done,
    "error": _S._error,
}
