"""Aggregate repeated warnings: the first few in full, then a count.

A flood of refused requests (500 a second with a bad signature) must not
write a log line each: the log would grow by thousands of lines a minute
and bury everything else. :class:`LogThrottle` lets the first ``burst``
occurrences of each reason through per ``interval``, counts the rest, and
hands the counts back once their interval is over, for one summary line per
reason. The clock is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LogThrottle", "Suppressed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Suppressed:
    """``count`` occurrences of ``reason`` not logged since ``since``."""

    reason: str
    count: int
    since: float


class LogThrottle:
    """Decides which warnings to write in full; ``now`` is any monotonic clock."""

    #: Distinct reasons tracked; more (an attacker varying the reason text)
    #: are counted under one key so memory stays bounded.
    MAX_REASONS = 64

    def __init__(self, *, burst: int = 5, interval: float = 10.0) -> None:
        if burst < 0 or not interval > 0:
            raise ValueError("burst must be >= 0 and interval > 0")
        self._burst = burst
        self._interval = interval
        # reason -> [window start, logged in the window, suppressed in it]
        self._windows: dict[str, list[float]] = {}
        self._due: list[Suppressed] = []

    def admit(self, reason: str, now: float) -> bool:
        """True: log this occurrence in full. False: it was counted."""
        if reason not in self._windows and len(self._windows) >= self.MAX_REASONS:
            reason = "other"
        window = self._windows.get(reason)
        if window is None or now - window[0] >= self._interval:
            if window is not None and window[2]:
                self._due.append(Suppressed(reason=reason, count=int(window[2]), since=window[0]))
            window = self._windows[reason] = [now, 0.0, 0.0]
        if window[1] < self._burst:
            window[1] += 1
            return True
        window[2] += 1
        return False

    def take(self, now: float, *, all_: bool = False) -> list[Suppressed]:
        """Counts of the windows that are over (or of every window, ``all_``)."""
        out, self._due = self._due, []
        for reason, window in list(self._windows.items()):
            if not (all_ or now - window[0] >= self._interval):
                continue
            if window[2]:
                out.append(Suppressed(reason=reason, count=int(window[2]), since=window[0]))
            del self._windows[reason]
        return out

    def next_deadline(self) -> float | None:
        """When a count is due for reporting (None: nothing suppressed)."""
        if self._due:
            return 0.0
        ends = [w[0] + self._interval for w in self._windows.values() if w[2]]
        return min(ends) if ends else None
