"""What the dashboard and ``/metrics`` know: live calls, the last finished
ones, and counters, fed from the call events the runtime already produces.

Theory of operation: the runner hands every call event it fires
(``on_call_start``, ``on_transcript``, ``on_call_end``, each a payload dict)
to :meth:`CallBoard.observe` with ``now``. That is the only input; no media
frame ever reaches this module, so it costs a call nothing on the hot path.
``observe`` updates the board in memory and returns the server-sent event
to broadcast (or None). Everything is bounded: the finished calls are a
ring of ``max_finished`` (default 200), a live call's transcript keeps its
first ``max_transcript`` lines, and the runtime counts, through
:meth:`CallBoard.event_dropped`, the events a slow dashboard could not take.
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._prometheus import CONTENT_TYPE, Family, Sample, histogram, render

__all__ = ["BoardEvent", "CallBoard", "sse_comment", "sse_event"]

#: Response latency histogram bounds, in seconds: a phone caller notices
#: anything past ~0.8 s; the top buckets catch a stalled provider.
LATENCY_BUCKETS_S = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
#: Finished calls kept for the dashboard: a day of a small agent, a few MB.
DEFAULT_MAX_FINISHED = 200
#: Lines kept of one live call's transcript (on_call_end carries the whole).
DEFAULT_MAX_TRANSCRIPT = 500
#: Distinct labels kept per counter: the reasons are the code's own strings,
#: but a bound keeps an unexpected one from growing the page forever.
_MAX_LABELS = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardEvent:
    """A server-sent event: ``kind`` is its ``event:`` field, ``data`` JSON."""

    id: int
    kind: str
    data: str

    def encode(self) -> bytes:
        return sse_event(self.kind, self.data, self.id)


def sse_event(kind: str, data: str, event_id: int | None = None) -> bytes:
    """One event in the ``text/event-stream`` format (HTML Living Standard,
    "Server-sent events"): fields, one per line, and a blank line. Every
    line of ``data`` gets its own ``data:`` field, so no text can end the
    event early."""
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {kind}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def sse_comment(text: str = "") -> bytes:
    """A comment line: keeps a quiet stream open through proxies."""
    return f": {text}\n\n".encode()


def _dumps(value: object) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


class CallBoard:
    __slots__ = (
        "_ended",
        "_finished",
        "_frames_dropped",
        "_latency_counts",
        "_latency_sum",
        "_live",
        "_max_transcript",
        "_next_id",
        "_provider_errors",
        "_recordings",
        "_refused",
        "_started",
        "events_dropped",
    )

    def __init__(
        self,
        *,
        max_finished: int = DEFAULT_MAX_FINISHED,
        max_transcript: int = DEFAULT_MAX_TRANSCRIPT,
    ) -> None:
        if max_finished < 1 or max_transcript < 1:
            raise ValueError("max_finished and max_transcript must be at least 1")
        self._live: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._finished: deque[dict[str, Any]] = deque(maxlen=max_finished)
        self._max_transcript = max_transcript
        self._next_id = 0
        self._started = 0
        self._ended: dict[str, int] = {}
        self._refused: dict[str, int] = {}
        self._latency_counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self._latency_sum = 0.0
        self._frames_dropped = 0
        self._provider_errors = 0
        # Recording files of the finished calls in the ring, by id: served
        # through the dashboard, never shown (the server's paths are its own).
        self._recordings: dict[str, str] = {}
        #: Events a subscriber's full queue could not take.
        self.events_dropped = 0

    # -- input ---------------------------------------------------------------------

    def observe(self, name: str, payload: Mapping[str, object], now: float) -> BoardEvent | None:
        """Take one call event; the event to broadcast, if any."""
        call_id = str(payload.get("call_id") or "")
        stream_id = str(payload.get("stream_id") or "")
        if name == "on_call_start":
            key = stream_id or call_id
            if not key:
                return None
            self._started += 1
            record: dict[str, Any] = {
                "id": key,
                "call_id": call_id,
                "caller": payload.get("caller", ""),
                "callee": payload.get("callee", ""),
                "carrier": payload.get("carrier", ""),
                "agent": payload.get("agent", ""),
                "started_at": now,
                "status": "live",
                "barge_ins": 0,
                "transcript": [],
            }
            self._live[key] = record
            return self._event("call_start", record)
        if name == "on_transcript":
            live = self._find_live(call_id)
            if live is None:
                return None
            line = {"role": payload.get("role"), "text": payload.get("text"), "time": now}
            if len(live["transcript"]) < self._max_transcript:
                live["transcript"].append(line)
            return self._event("transcript", {"id": live["id"], **line})
        if name == "on_call_end":
            return self._on_end(call_id, stream_id, payload, now)
        if name == "barge_in":
            live = self._find_live(call_id)
            if live is None:
                return None
            live["barge_ins"] += 1
            return self._event("barge_in", {"id": live["id"], "barge_ins": live["barge_ins"]})
        return None

    def refused(self, reason: str) -> None:
        """A media-stream upgrade was refused (counted by reason)."""
        _bump(self._refused, reason)

    def event_dropped(self) -> None:
        self.events_dropped += 1

    def _find_live(self, call_id: str) -> dict[str, Any] | None:
        for record in reversed(self._live.values()):
            if record["call_id"] == call_id:
                return record
        return None

    def _on_end(
        self, call_id: str, stream_id: str, payload: Mapping[str, object], now: float
    ) -> BoardEvent | None:
        reason = str(payload.get("reason") or "unknown")
        _bump(self._ended, reason)
        if reason.startswith("provider_"):
            self._provider_errors += 1
        dropped = payload.get("frames_dropped")
        if isinstance(dropped, int):
            self._frames_dropped += dropped
        metrics = payload.get("metrics")
        if isinstance(metrics, Mapping):
            for turn in metrics.get("turns") or ():
                latency = turn.get("latency_ms") if isinstance(turn, Mapping) else None
                if isinstance(latency, (int, float)):
                    self._observe_latency(latency / 1000.0)
        live = self._live.pop(stream_id, None) or self._live.pop(call_id, None)
        if live is None:
            # A stream that never became a call (refused token, no start):
            # counted, not listed.
            return None
        record = {
            key: value
            for key, value in payload.items()
            if key not in ("custom_parameters", "recording_path")
        }
        path = payload.get("recording_path")
        if isinstance(path, str) and path:
            self._recordings[live["id"]] = path
            record["recording_url"] = f"api/recordings/{live['id']}"
        record.update(
            id=live["id"],
            agent=live.get("agent", ""),
            status="finished",
            started_at=live["started_at"],
            ended_at=now,
            duration_s=round(now - live["started_at"], 3),
        )
        if len(self._finished) == self._finished.maxlen:
            self._recordings.pop(self._finished[0]["id"], None)
        self._finished.append(record)
        return self._event("call_end", record)

    def _observe_latency(self, seconds: float) -> None:
        self._latency_sum += seconds
        for index, bound in enumerate(LATENCY_BUCKETS_S):
            if seconds <= bound:
                self._latency_counts[index] += 1
                return
        self._latency_counts[-1] += 1

    def _event(self, kind: str, data: Mapping[str, Any]) -> BoardEvent:
        self._next_id += 1
        return BoardEvent(id=self._next_id, kind=kind, data=_dumps(data))

    # -- output --------------------------------------------------------------------

    @property
    def live_count(self) -> int:
        return len(self._live)

    def calls_json(self, now: float) -> bytes:
        """``GET /api/calls``: live calls (newest first) and finished ones."""
        live = [dict(r, duration_s=round(now - r["started_at"], 3)) for r in self._live.values()]
        finished = [_summary(r) for r in self._finished]
        body = {"live": live[::-1], "finished": finished[::-1]}
        return _dumps(body).encode("utf-8")

    def call_json(self, key: str, now: float) -> bytes | None:
        """``GET /api/calls/{id}``: one call whole, by stream id or call id."""
        for record in reversed(self._live.values()):
            if key in (record["id"], record["call_id"]):
                return _dumps(
                    dict(record, duration_s=round(now - record["started_at"], 3))
                ).encode()
        for record in reversed(self._finished):
            if key in (record["id"], record.get("call_id")):
                return _dumps(record).encode("utf-8")
        return None

    def recording_path(self, key: str) -> str | None:
        """The recording file of a finished call still in the ring."""
        return self._recordings.get(key)

    def snapshot_event(self, now: float) -> bytes:
        """The first event of a new stream: everything the page needs to draw."""
        return sse_event("snapshot", self.calls_json(now).decode("utf-8"), self._next_id)

    def prometheus(self) -> tuple[str, bytes]:
        """``GET /metrics``: content type and body."""
        families = [
            Family(
                name="patter_live_calls",
                help="Calls in progress.",
                kind="gauge",
                samples=(Sample(value=len(self._live)),),
            ),
            Family(
                name="patter_calls_started",
                help="Calls that passed their stream token check.",
                kind="counter",
                samples=(Sample(value=self._started),),
            ),
            Family(
                name="patter_calls_ended",
                help="Calls ended, by reason.",
                kind="counter",
                samples=_labelled("reason", self._ended),
            ),
            Family(
                name="patter_response_latency_seconds",
                help="From the caller's end of speech to the first agent audio sent.",
                kind="histogram",
                samples=histogram(LATENCY_BUCKETS_S, self._latency_counts, self._latency_sum),
            ),
            Family(
                name="patter_frames_dropped",
                help="Caller audio frames dropped before the provider was ready.",
                kind="counter",
                samples=(Sample(value=self._frames_dropped),),
            ),
            Family(
                name="patter_provider_errors",
                help="Calls ended by a provider failure.",
                kind="counter",
                samples=(Sample(value=self._provider_errors),),
            ),
            Family(
                name="patter_upgrades_refused",
                help="Media stream upgrades refused, by reason.",
                kind="counter",
                samples=_labelled("reason", self._refused),
            ),
            Family(
                name="patter_dashboard_events_dropped",
                help="Dashboard events a slow subscriber could not take.",
                kind="counter",
                samples=(Sample(value=self.events_dropped),),
            ),
        ]
        return CONTENT_TYPE, render(families)


def _bump(counts: dict[str, int], label: str) -> None:
    if label not in counts and len(counts) >= _MAX_LABELS:
        label = "other"
    counts[label] = counts.get(label, 0) + 1


def _labelled(name: str, counts: Mapping[str, int]) -> tuple[Sample, ...]:
    return tuple(
        Sample(labels=((name, key),), value=value) for key, value in sorted(counts.items())
    )


def _summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """A finished call for the list: no transcript (``/api/calls/{id}`` has it)."""
    out = {key: value for key, value in record.items() if key != "transcript"}
    out["transcript_lines"] = len(record.get("transcript") or ())
    return out
