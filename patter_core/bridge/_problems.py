"""Rate-limited reports of a provider's non-fatal errors.

A provider in trouble can send an ``error`` event per audio frame (50 a
second); the operator needs to see that it happens and how often, not 50
log lines a second. :class:`ProblemLog` admits the first ``burst`` reports
of each code per ``window`` seconds and folds the rest into a count carried
by the next admitted line. Pure: ``now`` is an argument.
"""

from __future__ import annotations

from ._actions import LogProblem

__all__ = ["ProblemLog"]

# Why these numbers: 3 lines show a pattern; one minute is short enough that
# a recurring problem keeps showing up in the log while a call lasts.
DEFAULT_BURST = 3
DEFAULT_WINDOW_SECONDS = 60.0
# Distinct codes remembered per call; a provider inventing codes must not
# grow this without bound.
MAX_CODES = 64


class ProblemLog:
    def __init__(
        self, *, burst: int = DEFAULT_BURST, window: float = DEFAULT_WINDOW_SECONDS
    ) -> None:
        self._burst = burst
        self._window = window
        # code -> [window start, admitted in window, suppressed since last admitted]
        self._codes: dict[str, list[float]] = {}
        #: Every report, admitted or not.
        self.total = 0

    def admit(self, code: str, message: str, now: float) -> str | None:
        """The line to log for this report, or None to stay quiet."""
        self.total += 1
        entry = self._codes.get(code)
        if entry is None:
            if len(self._codes) >= MAX_CODES:
                code = "other"
                entry = self._codes.setdefault(code, [now, 0, 0])
            else:
                entry = self._codes[code] = [now, 0, 0]
        if now - entry[0] >= self._window:
            entry[0], entry[1] = now, 0
        if entry[1] >= self._burst:
            entry[2] += 1
            return None
        entry[1] += 1
        suppressed = int(entry[2])
        entry[2] = 0
        line = f"provider error ({code}): {message}"
        if suppressed:
            line += f" ({suppressed} more like it not logged)"
        return line

    def report(self, code: str | None, message: str, now: float) -> list[LogProblem]:
        """:meth:`admit` as the bridge's actions: one ``LogProblem`` or none."""
        line = self.admit(code or "error", message, now)
        return [] if line is None else [LogProblem(message=line)]
