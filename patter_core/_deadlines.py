"""Time in the core: the earliest of several deadlines, and the wall clock.

Every protocol object here reports when it next needs ``handle_timer`` and
the bridge asks them all after every input (about 100 times a second per
call), so :func:`earliest` is written without building a list.

The ``now`` a runtime passes for deadlines comes from a monotonic clock
(one that never jumps when the system's time is set). A timestamp a user
sees is wall-clock seconds: it is converted from a monotonic reading with a
:data:`ToWall` function the runtime hands over at the edge.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ToWall", "earliest", "same_time"]

#: Turns a monotonic ``now`` into wall-clock seconds.
ToWall = Callable[[float], float]


def same_time(now: float) -> float:
    """The identity :data:`ToWall`: for a ``now`` on the wall clock already
    (a test's plain float clock)."""
    return now


def earliest(*deadlines: float | None) -> float | None:
    """The smallest of ``deadlines`` that is set (None when none is)."""
    best: float | None = None
    for deadline in deadlines:
        if deadline is not None and (best is None or deadline < best):
            best = deadline
    return best
