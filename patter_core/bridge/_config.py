"""Configuration of a call bridge and the small contracts it is built from.

The bridge is handed, at construction, everything it cannot decide itself:

* a media stream object (Twilio or Telnyx) honouring :class:`MediaStream`;
* a factory making the provider session once the caller is known
  (:data:`SessionFactory`), so prompt variables can be filled first;
* a :class:`CarrierControl` building carrier REST requests (hang up,
  transfer, start recording);
* a token verifier (:data:`TokenVerifier`), e.g. ``StreamTokens.verify``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .._errors import LocalProtocolError
from ..audio._format import AudioFormat
from ..audio._transcode import Transcoder
from ..http._types import HttpRequest
from ..media._events import MediaEvent, Start
from ..providers._session import ProviderSession
from ..webhooks._variables import parameter_variables

__all__ = [
    "BridgeConfig",
    "CallInfo",
    "CarrierControl",
    "MediaStream",
    "SessionFactory",
    "TokenVerifier",
    "ToolSpec",
    "TranscoderFactory",
    "Transcoding",
    "call_info",
    "default_transcoder",
    "fill_prompt_variables",
    "normalize_number",
]


class MediaStream(Protocol):
    """What the bridge needs of ``TwilioMediaStream`` / ``TelnyxMediaStream``."""

    @property
    def media_format(self) -> AudioFormat | None: ...

    @property
    def send_format(self) -> AudioFormat | None: ...

    @property
    def sent_ms(self) -> int | float: ...

    @property
    def played_ms(self) -> int | float: ...

    def receive(self, message: str | bytes) -> list[MediaEvent]: ...

    def send_media(self, payload: bytes) -> list[str]: ...

    def flush_media(self) -> list[str]: ...

    def send_mark(self, name: str) -> str: ...

    def send_clear(self) -> str: ...


class CarrierControl(Protocol):
    """Builds carrier REST requests; ``None`` means "this carrier cannot"."""

    def hangup(self, call_id: str) -> HttpRequest | None: ...

    def transfer(self, call_id: str, target: str) -> HttpRequest | None: ...

    def start_recording(self, call_id: str) -> HttpRequest | None: ...

    def leave_message(self, call_id: str, text: str) -> HttpRequest | None:
        """Have the carrier speak ``text`` and hang up (the voicemail drop when
        the provider session cannot speak yet; the error message when the
        provider failed)."""
        ...


class Transcoding(Protocol):
    """What the bridge needs of :class:`patter_core.audio.Transcoder`."""

    def convert(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


TranscoderFactory = Callable[[AudioFormat, AudioFormat], Transcoding]


def default_transcoder(src: AudioFormat, dst: AudioFormat) -> Transcoding:
    """:class:`~patter_core.audio.Transcoder`, tolerant of odd byte counts.

    Both directions carry a peer's bytes (a provider's audio deltas, a
    Telnyx L16 payload): an odd-length chunk must not stop the call, so the
    stray byte is carried into the next chunk rather than raised about.
    """
    return Transcoder(src, dst, carry_odd_byte=True)


#: ``verify(token, call_id, now)``: returns on success, raises
#: :class:`~patter_core.SignatureError` otherwise (``StreamTokens.verify``).
TokenVerifier = Callable[[str, str, float], object]


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSpec:
    """A user tool: the model sees ``name``, ``description`` and ``parameters``."""

    name: str
    description: str = ""
    parameters: Mapping[str, object] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class CallInfo:
    """Who is on the call, known once the stream's ``start`` arrived."""

    call_id: str
    stream_id: str
    carrier: str
    caller: str
    callee: str
    custom_parameters: Mapping[str, str]
    #: ``BridgeConfig.instructions`` with ``{caller}``/``{callee}`` filled in.
    instructions: str
    #: ``BridgeConfig.first_message`` filled the same way ("" for none).
    first_message: str
    #: Every tool the model may call: the user's plus the built-ins offered.
    tools: tuple[ToolSpec, ...] = ()
    #: This call's voice, model and language, when ``on_call_start`` chose
    #: them (None: the agent's).
    voice: str | None = None
    model: str | None = None
    language: str | None = None


#: Makes the provider session for one call (after the stream token was checked).
SessionFactory = Callable[[CallInfo], ProviderSession]


_NUMBER_RE = re.compile(r"\+?[0-9]{3,15}")  # E.164: at most 15 digits


def normalize_number(number: str) -> str | None:
    """Strip the usual separators; ``None`` unless what is left is a phone number."""
    cleaned = "".join(ch for ch in number if ch not in " -.()")
    return cleaned if _NUMBER_RE.fullmatch(cleaned) else None


# ITU-T E.164: a leading "+", a country code that does not start with 0,
# at most 15 digits in all.
_E164_RE = re.compile(r"\+[1-9][0-9]{1,14}")


def e164_number(number: object) -> str | None:
    """``number`` as ``+<digits>`` (separators dropped) when it is E.164, else None."""
    if not isinstance(number, str):
        return None
    cleaned = "".join(ch for ch in number if ch not in " -.()")
    return cleaned if _E164_RE.fullmatch(cleaned) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeConfig:
    """Per-call behaviour of the bridge. Every limit is finite on purpose."""

    #: System prompt; ``{caller}`` and ``{callee}`` are filled per call.
    instructions: str = ""
    #: Spoken when the call starts ("" for nothing).
    first_message: str = ""
    #: True: the session speaks ``first_message`` itself (the factory got it in
    #: :class:`CallInfo`); False: the bridge sends ``Say`` after ``SessionReady``.
    first_message_native: bool = False
    #: User tools, run by the runtime (``RunTool``).
    tools: tuple[ToolSpec, ...] = ()
    #: Offer the built-in ``end_call`` tool.
    end_call_tool: bool = True
    #: Numbers ``transfer_call`` may dial. Empty: transfers are off (the tool
    #: answers with an error) so a prompt injection cannot dial out.
    transfer_allowlist: frozenset[str] = frozenset()
    #: Start a carrier recording when the stream starts.
    record: bool = False
    #: Spoken, then the call hangs up, when answering-machine detection says
    #: ``machine_end_*`` (the greeting is over, the beep has gone). "" turns
    #: the voicemail drop off: the call is left alone.
    voicemail_message: str = ""
    #: Longest wait for the voicemail message to play before hanging up anyway;
    #: a voicemail drop is a sentence or two, 60 s is generous.
    voicemail_max_seconds: float = 60.0
    #: After ``end_call``: longest wait for the goodbye to finish playing. A
    #: goodbye is one sentence; 10 s bounds a model that keeps talking.
    end_call_grace_seconds: float = 10.0
    #: The provider's session cap in seconds from the call's start (an
    #: ElevenLabs agent's maximum conversation duration, 600 s unless changed
    #: in the agent); None: only what the provider announces (OpenAI's
    #: ``session.expires_at``).
    provider_max_duration: float | None = None
    #: Said this long before the cap, then the call ends as ``provider_limit``
    #: when it has played: a sentence takes a few seconds, 20 s leaves room.
    provider_limit_margin_seconds: float = 20.0
    provider_limit_message: str = (
        "I'm sorry, this call has reached its time limit and will end now. Goodbye."
    )
    #: How DTMF reaches the agent (``SendText``); ``{digit}`` is filled.
    dtmf_text: str = "The caller pressed {digit} on the phone keypad."
    #: Commands (DTMF text) held until the session is ready; a caller mashing
    #: keys before the agent answers needs no more than this.
    max_pending_commands: int = 32
    #: Length of the transcript kept for ``on_call_end``; bounds memory on a
    #: runaway call (a long call has a few hundred segments).
    max_transcript_entries: int = 10_000
    #: Caller audio held from ``start`` until the provider session is ready
    #: (a real provider takes 300 to 1,000 ms: TLS, handshake, session
    #: confirmation), then sent in order. 5 s covers the whole set-up bound
    #: (``provider_timeout_seconds``); past it the oldest audio is dropped
    #: and counted. 5 s is 40 KB of mu-law, 160 KB of 16 kHz L16.
    max_held_audio_ms: int = 5000
    #: A stream must send a valid ``start`` within this many seconds of being
    #: opened (None: no bound); pings and unknown events do not count.
    start_timeout_seconds: float | None = 10.0
    #: A started call whose carrier sends no media for this long has a dead or
    #: hostile peer: carriers send media continuously, silence included.
    media_timeout_seconds: float | None = 15.0
    #: The provider session must be ready (connected, handshake done, session
    #: confirmed) within this many seconds of ``start``, or the call ends as
    #: ``provider_error``: the caller must not sit in dead air.
    provider_timeout_seconds: float | None = 5.0
    #: Said to the caller (carrier text-to-speech) before the hang-up when the
    #: provider fails; "" hangs up in silence.
    error_message: str = ""
    #: How long the provider session waits for ``on_call_start``'s overrides
    #: (``FireCallback.awaits_answer``; the caller's audio is held meanwhile);
    #: None: the callback is not waited for. Past it: the agent's settings.
    call_start_wait_seconds: float | None = None
    #: Quiet line (nobody speaking) for this long: a reprompt, at most
    #: ``silence_reprompts`` in a row, then ``silence_goodbye`` and the end
    #: (reason ``silence``); None: off. See :mod:`._silence`.
    silence_timeout_seconds: float | None = None
    silence_message: str = "Are you still there?"
    silence_reprompts: int = 1
    silence_goodbye: str = "It seems nobody is there. Goodbye."
    #: The call's own cap from ``start`` (None: none): ``max_duration_message``,
    #: then the end (reason ``max_duration``).
    max_duration_seconds: float | None = None
    max_duration_message: str = "We have reached the time limit for this call. Goodbye."
    #: False: caller speech cuts nothing until the greeting has played (:mod:`._bargein`).
    first_message_interruptible: bool = True
    #: Caller speech shorter than this does not interrupt the agent.
    barge_in_min_ms: int = 0

    def __post_init__(self) -> None:
        names = [tool.name for tool in self.tools]
        if len(set(names)) != len(names):
            raise LocalProtocolError("tool names must be unique")
        for name in names:
            if name in ("end_call", "transfer_call"):
                raise LocalProtocolError(f"tool name {name!r} is reserved")
        for number in self.transfer_allowlist:
            if normalize_number(number) is None:
                raise LocalProtocolError(f"not a phone number in transfer_allowlist: {number!r}")
        if self.provider_max_duration is not None and self.provider_max_duration <= 0:
            raise LocalProtocolError("provider_max_duration must be positive")
        if self.provider_limit_margin_seconds < 0:
            raise LocalProtocolError("provider_limit_margin_seconds must not be negative")
        if self.voicemail_max_seconds <= 0 or self.end_call_grace_seconds < 0:
            raise LocalProtocolError("timeouts must be positive")
        if self.max_pending_commands < 0 or self.max_transcript_entries < 1:
            raise LocalProtocolError("limits must be positive")
        if self.max_held_audio_ms < 0:
            raise LocalProtocolError("max_held_audio_ms must not be negative")
        if self.silence_reprompts < 0 or self.barge_in_min_ms < 0:
            raise LocalProtocolError("silence_reprompts and barge_in_min_ms must not be negative")
        for value in (
            self.silence_timeout_seconds,
            self.max_duration_seconds,
            self.call_start_wait_seconds,
            self.start_timeout_seconds,
            self.media_timeout_seconds,
            self.provider_timeout_seconds,
        ):
            if value is not None and not value > 0:
                raise LocalProtocolError("timeouts must be positive")


#: The ``<Parameter>`` carrying our stream token (Twilio).
STREAM_TOKEN_PARAMETER = "stream_token"

#: Keys in ``Start.custom_parameters`` naming the parties (Twilio's ``start``
#: has no caller/callee fields; the webhook passes them as parameters).
_CALLER_KEYS = ("caller", "from", "From")
_CALLEE_KEYS = ("callee", "to", "To")


def _first(params: Mapping[str, str], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = params.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def call_info(
    start: Start,
    carrier: str,
    config: BridgeConfig,
    tools: tuple[ToolSpec, ...],
    *,
    variables: Mapping[str, str] | None = None,
    settings: Mapping[str, str] | None = None,
) -> CallInfo:
    """The call's :class:`CallInfo`, prompt variables filled (:func:`call_variables`)."""
    params = start.custom_parameters
    caller = start.caller or _first(params, _CALLER_KEYS)
    callee = start.callee or _first(params, _CALLEE_KEYS)
    variables = call_variables(params, variables or {}, caller=caller, callee=callee)
    settings = settings or {}
    return CallInfo(
        call_id=start.call_id,
        stream_id=start.stream_id,
        carrier=carrier,
        caller=caller,
        callee=callee,
        # The stream token is ours, not the application's: it never reaches
        # a callback (it would let whoever logs it open the call's stream).
        custom_parameters={k: v for k, v in params.items() if k != STREAM_TOKEN_PARAMETER},
        instructions=fill_prompt_variables(config.instructions, variables),
        first_message=fill_prompt_variables(config.first_message, variables),
        tools=tools,
        voice=settings.get("voice"),
        model=settings.get("model"),
        language=settings.get("language"),
    )


def call_variables(
    params: Mapping[str, str], overrides: Mapping[str, str], *, caller: str, callee: str
) -> dict[str, str]:
    """Prompt variables, first source wins: ``on_call_start``'s, then the
    outbound call's (:mod:`patter_core.webhooks._variables`), then the parties."""
    out = {"caller": caller, "callee": callee}
    out.update(parameter_variables(params))
    out.update(overrides)
    return out


def unfilled_variables(template: str, variables: Mapping[str, str]) -> list[str]:
    """The ``{name}`` placeholders of ``template`` with no value, in order, once each."""
    names = dict.fromkeys(m.group(1) for m in _VARIABLE_RE.finditer(template))
    return [name for name in names if name not in variables]


_VARIABLE_RE = re.compile(r"\{(\w+)\}")


def fill_prompt_variables(template: str, variables: Mapping[str, str]) -> str:
    """Replace ``{name}`` with ``variables[name]``; unknown names stay as written.

    Unlike :meth:`str.format` it never raises on stray braces (a prompt may
    well contain JSON examples), and it does one pass, so a caller id holding
    ``{callee}`` is not expanded again.
    """

    def repl(match: re.Match[str]) -> str:
        return variables.get(match.group(1), match.group(0))

    return _VARIABLE_RE.sub(repl, template)
