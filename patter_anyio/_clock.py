"""The runtime's two clocks, each for one job.

* :meth:`Clock.monotonic` is every ``now`` the runtime hands the core for a
  deadline (a call's timers, a provider session's, the prewarm's): it never
  jumps when the system's time is set, so a watchdog neither fires early
  nor waits an hour after an NTP step.
* :meth:`Clock.wall` is for what is compared with other machines or shown to
  users: stream-token expiry, the Telnyx replay window, an outbound call's
  times, the dashboard.

A callback payload's timestamps are bridge ``now`` values, so monotonic; the
runner converts them with :meth:`Clock.to_wall` when it builds the user's
dict, and nowhere else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SYSTEM_CLOCK", "Clock"]


@dataclass(frozen=True, slots=True)
class Clock:
    """A monotonic and a wall clock (tests pass their own functions)."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time

    def wall_offset(self) -> float:
        """Wall-clock seconds minus the monotonic clock's reading, now."""
        return self.wall() - self.monotonic()

    def to_wall(self, reading: float) -> float:
        """The wall-clock time of a :meth:`monotonic` ``reading``."""
        return reading + self.wall_offset()


SYSTEM_CLOCK = Clock()
