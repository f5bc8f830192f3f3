"""ElevenLabs Conversational AI ("Agents") over WebSocket, as a sans-IO session.

Theory of operation
-------------------

PROTOCOLS.md §6. A public agent is reached directly::

    start                -> OpenSocket("main", wss://{host}/v1/convai/conversation?agent_id=...)

A private agent (``api_key`` given) first trades the key for a signed URL::

    start                -> StartHttp("signed_url", GET .../get-signed-url?agent_id=..., xi-api-key)
    HttpDone (200 + JSON) -> OpenSocket("main", <signed_url>)
    HttpDone (other)      -> ProviderError(fatal=True)

Once the socket is open we send ``conversation_initiation_client_data`` (the
overrides given, and the dynamic variables). The server answers
``conversation_initiation_metadata``, which names the audio formats the
*agent's configuration* fixes (they cannot be chosen per conversation); we
adopt them as ``input_format`` / ``output_format`` and emit
:class:`SessionReady`. Commands given before then are held and flushed in
order, minus any caller audio if the input format turned out different from
the one the bridge assumed (that audio would be noise).

Server events::

    audio                      -> AudioOut (unless event_id <= last interruption's)
    interruption               -> UserSpeechStarted (+ ResponseDone cancelled)
    ping                       -> (we queue pong with the same event_id)
    agent_response             -> Transcript(assistant)
    agent_response_correction  -> Transcript(assistant, corrected text, correction=True)
    user_transcript            -> UserSpeechStopped, Transcript(user)
    tentative_user_transcript  -> Transcript(user, final=False)
    client_tool_call           -> ToolCall(arguments = JSON of the parameters)
    error                      -> ProviderError(fatal=False; the close that follows is fatal)

Limits of the protocol, by design of the service rather than of this code:

* ``Cancel`` and ``Truncate`` send nothing: ElevenLabs detects barge-in and
  cuts its own answer server side, then tells us with ``interruption``.
* There is no "speak this text" message. ``Say`` before the socket opens
  becomes the ``first_message`` override (when none is configured); later it
  is sent as a ``user_message`` asking the agent to repeat the text, so the
  agent's model sees it as a caller turn and may paraphrase.
* There is no "answer finished" message either. :class:`ResponseDone` is
  inferred: ``completed`` when the caller's next ``user_transcript`` arrives
  or audio of a new turn (a new ``event_id``) starts, ``cancelled`` on
  ``interruption``; it follows the last audio of that answer.
* ``UpdateInstructions`` is a ``contextual_update``: context the agent reads,
  not a replacement of its system prompt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._base_urls import DEFAULT_ELEVENLABS_BASE_URL
from .._errors import LocalProtocolError, MalformedMessage
from .._json import (
    JSON_UINT,
    b64decode,
    get_int,
    get_object,
    get_str,
    load_message,
    opt_str,
)
from ..audio._format import ALAW_8K, ULAW_8K, AudioFormat, Encoding
from ..http._types import HttpRequest
from ._base import (
    DEFAULT_MAX_MALFORMED_MESSAGES,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_PENDING_BYTES,
    DEFAULT_SETUP_TIMEOUT,
    RealtimeSessionBase,
    SessionState,
    b64encode,
    dumps,
)
from ._events import (
    AudioOut,
    Cancel,
    HoldBargeIn,
    ProviderCommand,
    ProviderError,
    ProviderEvent,
    ResponseDone,
    ResumeBargeIn,
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
from ._io import ChannelId
from ._session import StartHttp
from ._urls import elevenlabs_conversation_url, elevenlabs_signed_url_endpoint

__all__ = [
    "ELEVENLABS_SAY_PREFIX",
    "SIGNED_URL_CHANNEL",
    "ElevenLabsConfig",
    "ElevenLabsSession",
    "elevenlabs_audio_format",
]

SIGNED_URL_CHANNEL = ChannelId("signed_url")

#: How ``Say`` is worded once the conversation runs (see the module doc).
ELEVENLABS_SAY_PREFIX = "Please say exactly this to me, word for word, and nothing else: "

# 64 KiB for the signed-URL answer: it is one short JSON object (~300 bytes);
# more is not the API we know, and we would not hold it in memory.
DEFAULT_MAX_SIGNED_URL_RESPONSE_BYTES = 64 * 1024

_PCM_RATES = frozenset({8000, 16000, 22050, 24000, 44100, 48000})

_AUDIO_PREFIX = '{"user_audio_chunk":"'  # no "type" field: PROTOCOLS.md §6
_AUDIO_SUFFIX = '"}'
# An audio event exactly as documented (PROTOCOLS.md section 6), compact and
# in its key order, without alignment, is read without a dict
# (``_message_shape``): the head, the base64 up to its closing quote, and
# the event id closing the message.
_EVENT_HEAD = '{"type":"audio","audio_event":{"audio_base_64":"'
_EVENT_TAIL = re.compile('","event_id":(' + JSON_UINT + ")}}")


def elevenlabs_audio_format(name: str) -> AudioFormat | None:
    """``ulaw_8000`` / ``pcm_16000`` ... -> AudioFormat; None if we cannot carry it."""
    if name == "ulaw_8000":
        return ULAW_8K
    if name == "alaw_8000":
        return ALAW_8K
    prefix, _, rate = name.partition("_")
    # isascii: str.isdigit() admits "¹" and other digits int() refuses.
    if prefix == "pcm" and rate.isascii() and rate.isdigit() and int(rate) in _PCM_RATES:
        return AudioFormat(encoding=Encoding.PCM16LE, sample_rate=int(rate))
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ElevenLabsConfig:
    """One agent's connection settings and per-conversation overrides.

    Each override (``prompt``, ``first_message``, ``language``, ``voice_id``)
    must be allowed in the agent's security settings, or the server closes
    with 1008 ``override_error``; only the ones given are sent.
    """

    agent_id: str
    api_key: str | None = None  # given: private agent, reached via a signed URL
    base_url: str = DEFAULT_ELEVENLABS_BASE_URL
    prompt: str | None = None
    first_message: str | None = None
    language: str | None = None
    voice_id: str | None = None
    dynamic_variables: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    # The formats the agent is expected to use (set both to ulaw_8000 in the
    # agent for Twilio); the server's metadata has the last word.
    expected_input_format: str = "ulaw_8000"
    expected_output_format: str = "ulaw_8000"
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_pending_bytes: int = DEFAULT_MAX_PENDING_BYTES
    max_malformed_messages: int = DEFAULT_MAX_MALFORMED_MESSAGES
    max_signed_url_response_bytes: int = DEFAULT_MAX_SIGNED_URL_RESPONSE_BYTES
    setup_timeout: float = DEFAULT_SETUP_TIMEOUT

    def __post_init__(self) -> None:
        if not isinstance(self.agent_id, str) or not self.agent_id:
            raise LocalProtocolError("agent_id must be a non-empty string")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key):
            raise LocalProtocolError("api_key must be a non-empty string or None")
        for name in (self.expected_input_format, self.expected_output_format):
            if elevenlabs_audio_format(name) is None:
                raise LocalProtocolError(f"unsupported ElevenLabs audio format {name!r}")
        for key, value in self.dynamic_variables.items():
            if not isinstance(key, str) or not isinstance(value, str | int | float | bool):
                raise LocalProtocolError(f"dynamic variable {key!r} must be str/int/float/bool")
        if self.max_message_bytes <= 0 or self.max_pending_bytes < 0:
            raise LocalProtocolError("message limits must be positive")


def initiation_message(config: ElevenLabsConfig, first_message: str | None) -> dict[str, object]:
    """``conversation_initiation_client_data`` with only the overrides given."""
    agent: dict[str, object] = {}
    if config.prompt is not None:
        agent["prompt"] = {"prompt": config.prompt}
    if first_message is not None:
        agent["first_message"] = first_message
    if config.language is not None:
        agent["language"] = config.language
    override: dict[str, object] = {}
    if agent:
        override["agent"] = agent
    if config.voice_id is not None:
        override["tts"] = {"voice_id": config.voice_id}
    return {
        "type": "conversation_initiation_client_data",
        "conversation_config_override": override,
        "dynamic_variables": dict(config.dynamic_variables),
    }


class ElevenLabsSession(RealtimeSessionBase):
    """A :class:`~patter_core.providers.ProviderSession` for ElevenLabs agents."""

    _provider_name = "ElevenLabs"

    def __init__(self, config: ElevenLabsConfig) -> None:
        super().__init__(
            max_message_bytes=config.max_message_bytes,
            max_pending_bytes=config.max_pending_bytes,
            max_malformed_messages=config.max_malformed_messages,
            setup_timeout=config.setup_timeout,
        )
        self._config = config
        self._input = elevenlabs_audio_format(config.expected_input_format) or ULAW_8K
        self._output = elevenlabs_audio_format(config.expected_output_format) or ULAW_8K
        self._first_message = config.first_message
        self._init_sent = False
        self._last_interrupt_id = -1  # event ids start at 0 or 1; -1 drops nothing
        self._answering: str | None = None  # item id of agent audio not yet "done"
        self._answering_any = False
        self._http_status: int | None = None
        self._http_body = bytearray()
        self._http_in_flight = False
        #: The server's conversation id, once the metadata arrives.
        self.conversation_id: str | None = None
        #: Agent audio dropped because it belonged to an interrupted answer.
        self.stale_audio_dropped = 0

    @property
    def config(self) -> ElevenLabsConfig:
        return self._config

    @property
    def input_format(self) -> AudioFormat:
        return self._input

    @property
    def output_format(self) -> AudioFormat:
        return self._output

    def start(self, now: float) -> list[ProviderEvent]:
        self._begin(now)
        cfg = self._config
        if cfg.api_key is None:
            self._open_socket(elevenlabs_conversation_url(cfg.base_url, cfg.agent_id))
            return []
        self._http_in_flight = True
        self._io.append(
            StartHttp(
                channel=SIGNED_URL_CHANNEL,
                request=HttpRequest(
                    method="GET",
                    url=elevenlabs_signed_url_endpoint(cfg.base_url, cfg.agent_id),
                    headers=(("xi-api-key", cfg.api_key), ("accept", "application/json")),
                ),
            )
        )
        return []

    # -- the signed-URL request -------------------------------------------------

    def _check_http(self, channel: ChannelId) -> bool:
        """True if this HTTP report is for us; False if it arrived after close."""
        if channel != SIGNED_URL_CHANNEL:
            raise LocalProtocolError(f"unknown HTTP channel {channel!r}")
        if self._state is SessionState.CLOSED:
            return False
        if not self._http_in_flight:
            raise LocalProtocolError("HTTP report with no request in flight")
        return True

    def _http_started(self, channel: ChannelId, status: int, now: float) -> list[ProviderEvent]:
        if self._check_http(channel):
            self._http_status = status
        return []

    def _http_data(self, channel: ChannelId, data: bytes, now: float) -> list[ProviderEvent]:
        if not self._check_http(channel):
            return []
        if len(self._http_body) + len(data) > self._config.max_signed_url_response_bytes:
            self._http_in_flight = False
            return self._fail("signed URL response too large", code="signed_url_failed")
        self._http_body += data
        return []

    def _http_failed(self, channel: ChannelId, message: str, now: float) -> list[ProviderEvent]:
        if not self._check_http(channel):
            return []
        self._http_in_flight = False
        return self._fail(f"signed URL request failed: {message}", code="signed_url_failed")

    def _http_done(self, channel: ChannelId, now: float) -> list[ProviderEvent]:
        if not self._check_http(channel):
            return []
        self._http_in_flight = False
        status = self._http_status
        body = bytes(self._http_body)
        self._http_body.clear()
        if status is None or not 200 <= status < 300:
            # The body names the problem (bad key, unknown agent); never the key.
            snippet = body[:200].decode("utf-8", "replace")
            return self._fail(
                f"signed URL request answered HTTP {status}: {snippet}",
                code=f"http_{status}",
            )
        try:
            url = get_str(
                load_message(body, self._config.max_signed_url_response_bytes), "signed_url"
            )
        except MalformedMessage as exc:
            return self._fail(f"signed URL response unusable: {exc}", code="signed_url_failed")
        if not url.startswith(("wss://", "ws://")):
            return self._fail("signed URL is not a ws(s):// URL", code="signed_url_failed")
        self._open_socket(url)
        return []

    # -- commands -> wire -------------------------------------------------------

    def _audio_text(self, audio: bytes) -> str:
        return _AUDIO_PREFIX + b64encode(audio) + _AUDIO_SUFFIX

    def _encode(self, command: ProviderCommand) -> list[tuple[str, bool]]:
        if isinstance(command, SendAudio):
            if not command.audio:
                return []
            return [(self._audio_text(command.audio), True)]
        if isinstance(command, Cancel | Truncate):
            return []  # handled server side; see the module doc
        if isinstance(command, ToolResult):
            result = {
                "type": "client_tool_result",
                "tool_call_id": command.call_id,
                "result": command.output,
                "is_error": command.is_error,
            }
            return [(dumps(result), False)]
        if isinstance(command, Say):
            if not self._init_sent and self._first_message is None:
                self._first_message = command.text
                return []
            return [
                (
                    dumps({"type": "user_message", "text": ELEVENLABS_SAY_PREFIX + command.text}),
                    False,
                )
            ]
        if isinstance(command, SendText):
            return [(dumps({"type": "user_message", "text": command.text}), False)]
        if isinstance(command, HoldBargeIn | ResumeBargeIn):
            # Turn taking is the agent's own, server side; no client message
            # turns interruptions off. The bridge ignores them meanwhile.
            return []
        if isinstance(command, UpdateInstructions):
            return [(dumps({"type": "contextual_update", "text": command.instructions}), False)]
        raise LocalProtocolError(f"not a provider command: {command!r}")

    # -- wire -> events ---------------------------------------------------------

    def _on_open(self, now: float) -> list[ProviderEvent]:
        self._init_sent = True
        self._send_now(dumps(initiation_message(self._config, self._first_message)))
        return []

    def _on_message(self, kind: str, message: dict[str, Any], now: float) -> list[ProviderEvent]:
        if kind == "audio":
            return self._audio(get_object(message, "audio_event"))
        if kind == "ping":
            event_id = get_int(get_object(message, "ping_event"), "event_id")
            # Answered at once, even before the metadata: an unanswered ping
            # is how the server decides we are gone.
            self._send_now(dumps({"type": "pong", "event_id": event_id}))
            return []
        if kind == "interruption":
            event_id = get_int(get_object(message, "interruption_event"), "event_id")
            self._last_interrupt_id = max(self._last_interrupt_id, event_id)
            return [UserSpeechStarted(), *self._answer_done("cancelled")]
        if kind == "agent_response":
            event = get_object(message, "agent_response_event")
            return [Transcript(role="assistant", text=get_str(event, "agent_response"))]
        if kind == "agent_response_correction":
            event = get_object(message, "agent_response_correction_event")
            text = get_str(event, "corrected_agent_response")
            return [Transcript(role="assistant", text=text, correction=True)]
        if kind == "user_transcript":
            event = get_object(message, "user_transcription_event")
            text = get_str(event, "user_transcript")
            # The agent's own turn-taking decided the caller is done: for the
            # per-turn timings this is the end of the caller's speech.
            ends = [*self._answer_done("completed"), UserSpeechStopped()]
            return [*ends, Transcript(role="user", text=text)]
        if kind == "tentative_user_transcript":
            event = get_object(message, "tentative_user_transcription_event")
            text = get_str(event, "user_transcript")
            return [Transcript(role="user", text=text, final=False)]
        if kind == "client_tool_call":
            return self._tool_call(get_object(message, "client_tool_call"))
        if kind == "conversation_initiation_metadata":
            return self._metadata(get_object(message, "conversation_initiation_metadata_event"))
        if kind == "error":
            return [self._error(message)]
        return []  # vad_score, agent_response_metadata, newer events: nothing to do

    def _message_shape(self, data: str) -> list[ProviderEvent] | None:
        if not data.startswith(_EVENT_HEAD):
            return None
        end = data.find('"', len(_EVENT_HEAD))
        tail = _EVENT_TAIL.fullmatch(data, end) if end >= 0 else None
        if tail is None:
            return None
        text = data[len(_EVENT_HEAD) : end]
        if "\\" in text:
            return None  # not the plain base64 string of the documented shape
        try:
            # _audio_out raises (odd PCM) only before it changes anything.
            return self._audio_out(b64decode(text), int(tail[1]))
        except MalformedMessage:
            return None  # the general path says why, in its own words

    def _audio(self, event: dict[str, Any]) -> list[ProviderEvent]:
        audio = b64decode(get_str(event, "audio_base_64"))
        raw_id = event.get("event_id")
        event_id = get_int(event, "event_id") if raw_id is not None else None
        return self._audio_out(audio, event_id)

    def _audio_out(self, audio: bytes, event_id: int | None) -> list[ProviderEvent]:
        # As the official SDK does: audio generated before the latest
        # interruption belongs to the answer the caller talked over.
        if event_id is not None and event_id <= self._last_interrupt_id:
            self.stale_audio_dropped += 1
            return []
        if not audio:
            return []
        if self._output.encoding is Encoding.PCM16LE and len(audio) % 2:
            raise MalformedMessage("PCM16 audio with an odd byte count")
        item_id = str(event_id) if event_id is not None else None
        events: list[ProviderEvent] = []
        if self._answering_any and item_id != self._answering:
            events += self._answer_done("completed")  # a new turn ends the previous one
        self._answering, self._answering_any = item_id, True
        events.append(AudioOut(audio=audio, item_id=item_id))
        return events

    def _answer_done(self, status: str) -> list[ProviderEvent]:
        """ResponseDone for the agent audio in flight, if any (see the module doc)."""
        if not self._answering_any:
            return []
        item_id, self._answering, self._answering_any = self._answering, None, False
        return [ResponseDone(item_id=item_id, status=status)]

    def _tool_call(self, event: dict[str, Any]) -> list[ProviderEvent]:
        parameters = event.get("parameters", {})
        if parameters is None:
            parameters = {}
        # Parameters that are not an object still make a tool call: the
        # bridge answers it with an error result (is_error), so the agent is
        # not left waiting for a result that never comes.
        return [
            ToolCall(
                call_id=get_str(event, "tool_call_id"),
                name=get_str(event, "tool_name"),
                arguments=dumps(parameters),
            )
        ]

    def _metadata(self, event: dict[str, Any]) -> list[ProviderEvent]:
        if self._state is SessionState.READY:
            return []  # a repeat tells us nothing new
        self.conversation_id = opt_str(event, "conversation_id")
        formats = []
        for key, current in (
            ("user_input_audio_format", self._input),
            ("agent_output_audio_format", self._output),
        ):
            name = opt_str(event, key)
            fmt = current if name is None else elevenlabs_audio_format(name)
            if fmt is None:
                return self._fail(
                    f"agent uses audio format {name!r}, which a phone call cannot carry; "
                    "set ulaw_8000 or a pcm_* format in the agent",
                    code="unsupported_audio_format",
                )
            formats.append(fmt)
        input_changed = formats[0] != self._input
        self._input, self._output = formats
        ready = self._ready()
        self._go_live(drop_audio=input_changed)
        return [ready]

    def _error(self, message: dict[str, Any]) -> ProviderError:
        event = message.get("error_event")
        if not isinstance(event, dict):
            event = message
        text = opt_str(event, "message") or "unspecified error"
        code = opt_str(event, "error_type")
        raw_code = event.get("code")
        if code is None and isinstance(raw_code, int | str) and not isinstance(raw_code, bool):
            code = str(raw_code)
        return ProviderError(message=text, fatal=False, code=code)
