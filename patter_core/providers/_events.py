"""The one vocabulary spoken between the call bridge and every AI provider.

Provider sessions (OpenAI Realtime, ElevenLabs Conversational AI, the
speech-to-text -> LLM/handler -> text-to-speech pipeline) turn their wire
messages into the *events* below, and turn the bridge's *commands* into wire
messages. The bridge never sees a provider's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AnswerStage",
    "AudioOut",
    "Cancel",
    "HoldBargeIn",
    "ProviderCommand",
    "ProviderError",
    "ProviderEvent",
    "ResponseDone",
    "ResumeBargeIn",
    "Say",
    "SendAudio",
    "SendText",
    "SessionLimit",
    "SessionReady",
    "ToolCall",
    "ToolResult",
    "Transcript",
    "Truncate",
    "UpdateInstructions",
    "UserSpeechStarted",
    "UserSpeechStopped",
]

# -- events: provider -> bridge ------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionReady:
    """The provider accepted the session; audio may flow."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioOut:
    """Agent audio, in the session's ``output_format``."""

    audio: bytes
    item_id: str | None = None  # the item/response the audio belongs to (for truncation)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserSpeechStarted:
    """The caller started speaking (the barge-in trigger)."""

    item_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UserSpeechStopped:
    item_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerStage:
    """A step on the way to an answer, for the per-turn timings: Realtime
    ``response_created``; the pipeline's ``stt_final``, ``llm_first_token``
    and ``tts_request`` (the first sentence's request). Timed by the bridge."""

    stage: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Transcript:
    role: Literal["user", "assistant"]
    text: str
    final: bool = True
    item_id: str | None = None
    #: The provider corrected its last answer (ElevenLabs, after a barge-in):
    #: this text replaces that segment.
    correction: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str  # JSON text, exactly as the model produced it


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseDone:
    """The agent finished (or abandoned) one answer."""

    item_id: str | None = None
    status: str = "completed"
    #: Completed function calls in this answer: their outputs make the agent
    #: answer again (so an ``end_call`` waits for that answer too).
    tool_calls: int = 0
    #: What the provider says the answer cost (e.g. Realtime token counts).
    usage: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionLimit:
    """The provider will end the session at ``expires_at`` (the clock ``now`` runs on).

    OpenAI Realtime sessions last at most 60 minutes (``session.expires_at``).
    """

    expires_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderError:
    message: str
    fatal: bool = False
    code: str | None = None


ProviderEvent = (
    SessionReady
    | AudioOut
    | UserSpeechStarted
    | UserSpeechStopped
    | AnswerStage
    | Transcript
    | ToolCall
    | ResponseDone
    | ProviderError
    | SessionLimit
)

# -- commands: bridge -> provider ----------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SendAudio:
    """Caller audio, in the session's ``input_format``."""

    audio: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel:
    """Stop the answer in progress (barge-in)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Truncate:
    """Cut item ``item_id`` at ``played_ms``: what the caller actually heard."""

    item_id: str
    played_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResult:
    call_id: str
    output: str  # JSON text or plain text
    # The tool did not run as asked (unknown tool, bad arguments, a handler
    # that raised or timed out). ElevenLabs carries it as ``is_error``; the
    # others have no such field and send ``output`` alone.
    is_error: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Say:
    """Have the agent speak this text (first message, voicemail drop)."""

    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SendText:
    """Text from the caller's side that is not speech (DTMF keys as text)."""

    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateInstructions:
    instructions: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldBargeIn:
    """From now on, sound on the line must not cancel the agent's answer.

    Sent before a voicemail message: an answering machine's line noise is
    not a caller talking over the agent. The call ends after the message.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeBargeIn:
    """Sound on the line may cancel the agent's answer again (after
    :class:`HoldBargeIn`, e.g. once a greeting that must play in full is over)."""


ProviderCommand = (
    SendAudio
    | Cancel
    | Truncate
    | ToolResult
    | Say
    | SendText
    | UpdateInstructions
    | HoldBargeIn
    | ResumeBargeIn
)
