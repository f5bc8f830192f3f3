"""When a WebSocket's idle or send timeout has passed, and when to look next.

A guard (one task per socket, or one for a whole server) does not arm a
timer per message: each read and write only notes when it started, and the
guard looks at the socket when :func:`next_look` says. The next look is at
the earliest deadline of the read or write in progress or, when none is,
one shortest timeout away: an operation that starts meanwhile cannot be
due any sooner, so every deadline is met to the loop's precision with one
look per timeout period. A write stalled past ``send_timeout`` (the peer
stopped reading) comes first; a read waiting past ``idle_timeout`` (no
traffic) is the idle close, 1001 (RFC 6455 section 7.4.1).
"""

from __future__ import annotations

import math
from typing import Literal

__all__ = ["Due", "next_look"]

#: What has passed: a write's ``send_timeout`` or a read's ``idle_timeout``.
Due = Literal["send", "idle"]


def next_look(
    now: float,
    *,
    read_started: float | None,
    write_started: float | None,
    send_timeout: float,
    idle_timeout: float | None,
) -> float | Due:
    """The time of the next look (a float above ``now``), or what is due.

    ``read_started`` and ``write_started`` are when the read or write in
    progress began (None when none is); every time is on one monotonic
    clock. ``idle_timeout`` None means no idle limit.
    """
    # Each deadline is compared as it is returned (started + timeout), so a
    # look is always later than ``now``: with ``now - started >= timeout``
    # instead, float rounding can make the two disagree and a guard look
    # again at the same instant, for ever.
    idle = math.inf if idle_timeout is None else idle_timeout
    wake = now + min(send_timeout, idle)
    if write_started is not None:
        deadline = write_started + send_timeout
        if now >= deadline:
            return "send"
        wake = min(wake, deadline)
    if read_started is not None:
        deadline = read_started + idle
        if now >= deadline:
            return "idle"
        wake = min(wake, deadline)
    return float(wake)
