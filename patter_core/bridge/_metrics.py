"""Per-call metrics: what the caller felt, turn by turn, measured where the
bridge already sees each event.

Theory of operation: the bridge calls the recorder at a few points with the
``now`` it was given -- the provider says the caller stopped speaking
(``UserSpeechStopped``), the first agent audio of the answer goes to the
carrier, the caller barges in (the bridge sends ``clear``), the carrier
echoes the marks that confirm the cut, the provider finishes an answer and
reports its usage. A *turn* opens at the end of the caller's speech and
closes at the first agent audio after it; its latency is the difference,
the silence the caller hears. The recorder keeps numbers only (bounded by
``max_turns``); :meth:`CallMetricsRecorder.report` builds the immutable
:class:`CallMetrics` for ``on_call_end``, where the API edge sees it as a
dict (:meth:`CallMetrics.as_dict`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .._deadlines import ToWall, same_time
from ._inbound import CallerAudio

__all__ = ["BargeIn", "CallMetrics", "CallMetricsRecorder", "LatencySummary", "Turn"]

#: Turns kept per call: hours of conversation; the count goes on past it.
DEFAULT_MAX_TURNS = 1000


#: Provider time to first byte: from the step to the first agent audio.
#: Realtime: ``response.created`` to the first delta sent; the pipeline:
#: the first sentence's text-to-speech request to its first audio.
_TTFB_FROM = {"response_created": "provider_ttfb_ms", "tts_request": "tts_ttfb_ms"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Turn:
    """One answer: the caller's end of speech to the first agent audio sent,
    and the provider's steps in between (``AnswerStage``), when it says."""

    speech_stopped_at: float
    first_audio_at: float
    stages: tuple[tuple[str, float], ...] = ()

    @property
    def latency_ms(self) -> float:
        return round((self.first_audio_at - self.speech_stopped_at) * 1000.0, 1)

    def as_dict(self, to_wall: ToWall = same_time) -> dict[str, object]:
        out: dict[str, object] = {
            "speech_stopped_at": to_wall(self.speech_stopped_at),
            "first_audio_at": to_wall(self.first_audio_at),
            "latency_ms": self.latency_ms,
        }
        if self.stages:
            # ms after the caller's end of speech, step by step
            out["provider_ms"] = {
                name: round((at - self.speech_stopped_at) * 1000.0, 1) for name, at in self.stages
            }
            for name, at in self.stages:
                if name in _TTFB_FROM:
                    out[_TTFB_FROM[name]] = round((self.first_audio_at - at) * 1000.0, 1)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class BargeIn:
    """The caller spoke over the agent: when the ``clear`` went out and,
    once the carrier confirmed it, how long the agent took to go quiet."""

    at: float
    quiet_ms: float | None = None

    def as_dict(self, to_wall: ToWall = same_time) -> dict[str, object]:
        return {"at": to_wall(self.at), "quiet_ms": self.quiet_ms}


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencySummary:
    p50: float | None = None
    p95: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: Sequence[float]) -> LatencySummary:
        if not values:
            return cls()
        ordered = sorted(values)
        return cls(p50=_percentile(ordered, 0.50), p95=_percentile(ordered, 0.95), max=ordered[-1])

    def as_dict(self) -> dict[str, object]:
        return {"p50": self.p50, "p95": self.p95, "max": self.max}


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallMetrics:
    duration_s: float
    turns: tuple[Turn, ...]
    latency_ms: LatencySummary
    barge_ins: tuple[BargeIn, ...]
    frames_in: int
    frames_out: int
    frames_buffered: int
    frames_dropped: int
    usage: Mapping[str, int] = field(default_factory=dict)

    def as_dict(self, to_wall: ToWall = same_time) -> dict[str, object]:
        """The documented dict; ``to_wall`` turns its timestamps into wall time."""
        return {
            "duration_s": self.duration_s,
            "turns": [turn.as_dict(to_wall) for turn in self.turns],
            "latency_ms": self.latency_ms.as_dict(),
            "barge_ins": len(self.barge_ins),
            "barge_in_details": [b.as_dict(to_wall) for b in self.barge_ins],
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "frames_buffered": self.frames_buffered,
            "frames_dropped": self.frames_dropped,
            "usage": dict(self.usage),
        }


class CallMetricsRecorder:
    __slots__ = (
        "_barge_ins",
        "_max_turns",
        "_stages",
        "_stopped_at",
        "_turns",
        "_usage",
        "frames_out",
    )

    def __init__(self, *, max_turns: int = DEFAULT_MAX_TURNS) -> None:
        self._max_turns = max_turns
        self._turns: list[Turn] = []
        self._stopped_at: float | None = None
        self._stages: dict[str, float] = {}
        self._barge_ins: list[BargeIn] = []
        self._usage: dict[str, int] = {}
        #: Media frames sent to the carrier.
        self.frames_out = 0

    def speech_stopped(self, now: float) -> None:
        """The caller's end of speech (the provider's or the VAD's word)."""
        self._stopped_at = now
        self._stages = {}

    def stage(self, name: str, now: float) -> None:
        """A provider step of the open turn (the first time it is reported)."""
        if self._stopped_at is not None:
            self._stages.setdefault(name, now)

    def agent_audio(self, now: float) -> None:
        """Agent audio went to the carrier: the first after speech closes a turn."""
        stopped = self._stopped_at
        if stopped is None:
            return
        self._stopped_at = None
        if len(self._turns) < self._max_turns:
            stages = tuple(self._stages.items())
            self._turns.append(Turn(speech_stopped_at=stopped, first_audio_at=now, stages=stages))

    def barge_in(self, now: float) -> None:
        if len(self._barge_ins) < self._max_turns:
            self._barge_ins.append(BargeIn(at=now))

    def cut_confirmed(self, now: float) -> None:
        """The carrier echoed the marks a ``clear`` cut: the agent is quiet."""
        if self._barge_ins and self._barge_ins[-1].quiet_ms is None:
            last = self._barge_ins[-1]
            self._barge_ins[-1] = BargeIn(at=last.at, quiet_ms=round((now - last.at) * 1000, 1))

    def usage(self, counts: Mapping[str, int]) -> None:
        """Add a provider's usage report (tokens, characters, seconds)."""
        for key, value in counts.items():
            self._usage[key] = self._usage.get(key, 0) + value

    def report(self, *, started_at: float | None, now: float, inbound: CallerAudio) -> CallMetrics:
        """The call's metrics; ``inbound`` counted the caller's audio."""
        turns = tuple(self._turns)
        usage = dict(self._usage)
        if inbound.ms_sent:
            # Seconds of caller audio sent: what speech-to-text (or the model) heard.
            usage["input_audio_ms"] = round(inbound.ms_sent)
        return CallMetrics(
            duration_s=round(now - started_at, 3) if started_at is not None else 0.0,
            turns=turns,
            latency_ms=LatencySummary.of([turn.latency_ms for turn in turns]),
            barge_ins=tuple(self._barge_ins),
            frames_in=inbound.frames_in,
            frames_out=self.frames_out,
            frames_buffered=inbound.frames_held,
            frames_dropped=inbound.frames_dropped,
            usage=usage,
        )
