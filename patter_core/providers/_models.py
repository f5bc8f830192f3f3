"""Every default model we send to a provider, and the shutdown dates announced for models.

Theory of operation
-------------------

Providers retire models on announced dates, and a call placed with a retired
model fails at connect time. So the defaults live here, in one table, each
next to what we know of its end, and :func:`model_warnings` tells the server,
at start, which configured models are past or near their shutdown (the
runtime logs each at WARNING). Nothing here reads a clock: the date is an
argument.

The OpenAI dates are the "Announced shutdown date" lines of the official
openai-python SDK's type docs (3.63; the tests read the installed SDK and
check this table against it). Deepgram and ElevenLabs have announced no
shutdown for the models we use.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DEEPGRAM_STT_MODEL",
    "DEFAULT_MODELS",
    "ELEVENLABS_TTS_MODEL",
    "KNOWN_SHUTDOWNS",
    "LLM_MODEL",
    "OPENAI_STT_MODEL",
    "OPENAI_TTS_MODEL",
    "OPENAI_TTS_VOICE",
    "REALTIME_MODEL",
    "REALTIME_TRANSCRIPTION_MODEL",
    "REALTIME_VOICE",
    "SHUTDOWN_WARNING_DAYS",
    "ModelDefault",
    "model_warnings",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelDefault:
    """One default: what it is for, the model, and its announced shutdown (or None)."""

    role: str
    model: str
    shutdown: datetime.date | None = None


# OpenAI Realtime: the SDK's current models are gpt-realtime-2, -2.1 and
# -2.1-mini; OpenAI's own Agents SDK and Twilio example default to -2.1.
REALTIME_MODEL = "gpt-realtime-2.1"
# The voices our sessions ask for when the agent names none.
REALTIME_VOICE = "marin"
OPENAI_TTS_VOICE = "alloy"
# Input transcription inside a Realtime session (and the pipeline's OpenAI
# speech-to-text): gpt-transcribe is current for both endpoints.
REALTIME_TRANSCRIPTION_MODEL = "gpt-transcribe"
OPENAI_STT_MODEL = "gpt-transcribe"
# Pipeline LLM (chat completions): a small current model keeps the first
# token quick; gpt-4o-mini shuts down 2027-01-14.
LLM_MODEL = "gpt-5.4-mini"
# OpenAI text-to-speech: the SDK lists no speech model without a shutdown
# date (all four end 2027-01-06); until it does, this default warns at start.
OPENAI_TTS_MODEL = "gpt-4o-mini-tts"
# ElevenLabs Flash: the low-latency family (about 75 ms to first audio).
ELEVENLABS_TTS_MODEL = "eleven_flash_v2_5"
DEEPGRAM_STT_MODEL = "nova-3"

_D = datetime.date

#: Announced shutdowns of models a phone agent may be configured with
#: (openai-python 3.63 type docs). Keys are model ids as sent on the wire.
KNOWN_SHUTDOWNS: dict[str, datetime.date] = {
    # Realtime models (RealtimeSessionCreateRequest.model).
    **dict.fromkeys(
        (
            "gpt-realtime",
            "gpt-realtime-2025-08-28",
            "gpt-realtime-mini",
            "gpt-realtime-mini-2025-12-15",
            "gpt-audio-mini",
            "gpt-audio-mini-2025-12-15",
        ),
        _D(2027, 1, 20),
    ),
    # Transcription (AudioTranscription.model, AudioModel).
    **dict.fromkeys(
        (
            "whisper-1",
            "gpt-4o-mini-transcribe",
            "gpt-4o-mini-transcribe-2025-12-15",
            "gpt-4o-transcribe",
            "gpt-4o-transcribe-diarize",
        ),
        _D(2027, 2, 26),
    ),
    # Text-to-speech (SpeechModel).
    **dict.fromkeys(
        ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15"), _D(2027, 1, 6)
    ),
    # Chat models a pipeline is often pointed at (ChatModel).
    **dict.fromkeys(
        (
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4.1-2025-04-14",
            "gpt-4.1-mini-2025-04-14",
            "gpt-4o",
            "gpt-4o-2024-11-20",
            "gpt-4o-2024-08-06",
            "gpt-4o-mini",
            "gpt-4o-mini-2024-07-18",
        ),
        _D(2027, 1, 14),
    ),
    **dict.fromkeys(
        (
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano",
            "gpt-5-2025-08-07",
            "gpt-5-mini-2025-08-07",
            "gpt-5-nano-2025-08-07",
        ),
        _D(2026, 12, 11),
    ),
    **dict.fromkeys(("gpt-4.1-nano", "gpt-4.1-nano-2025-04-14", "gpt-3.5-turbo"), _D(2026, 10, 23)),
    **dict.fromkeys(("gpt-5.4-nano", "gpt-5.4-nano-2026-03-17", "gpt-5.1"), _D(2027, 4, 1)),
}

#: Every default we send, one row each (README "Models" lists the same).
DEFAULT_MODELS: tuple[ModelDefault, ...] = tuple(
    ModelDefault(role=role, model=model, shutdown=KNOWN_SHUTDOWNS.get(model))
    for role, model in (
        ("openai realtime", REALTIME_MODEL),
        ("openai realtime transcription", REALTIME_TRANSCRIPTION_MODEL),
        ("pipeline openai speech-to-text", OPENAI_STT_MODEL),
        ("pipeline deepgram speech-to-text", DEEPGRAM_STT_MODEL),
        ("pipeline llm", LLM_MODEL),
        ("pipeline openai text-to-speech", OPENAI_TTS_MODEL),
        ("pipeline elevenlabs text-to-speech", ELEVENLABS_TTS_MODEL),
    )
)

#: Warn this many days ahead: long enough to change a setting and redeploy.
SHUTDOWN_WARNING_DAYS = 30


def model_warnings(
    models: Iterable[tuple[str, str]],
    today: datetime.date,
    *,
    shutdowns: dict[str, datetime.date] | None = None,
    days: int = SHUTDOWN_WARNING_DAYS,
) -> list[str]:
    """One line per ``(role, model)`` past or within ``days`` of its announced shutdown."""
    table = KNOWN_SHUTDOWNS if shutdowns is None else shutdowns
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    for role, model in models:
        end = table.get(model)
        if end is None or (role, model) in seen:
            continue
        seen.add((role, model))
        left = (end - today).days
        if left < 0:
            out.append(
                f"{role} model {model!r} was shut down on {end.isoformat()}: "
                "calls using it fail; configure a current model"
            )
        elif left <= days:
            out.append(
                f"{role} model {model!r} shuts down on {end.isoformat()} "
                f"(in {left} days); configure a current model"
            )
    return out
