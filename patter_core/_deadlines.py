"""The earliest of several deadlines, any of which may be unset.

Every protocol object here reports when it next needs ``handle_timer`` and
the bridge asks them all after every input (about 100 times a second per
call), so this is written without building a list.
"""

from __future__ import annotations

__all__ = ["earliest"]


def earliest(*deadlines: float | None) -> float | None:
    """The smallest of ``deadlines`` that is set (None when none is)."""
    best: float | None = None
    for deadline in deadlines:
        if deadline is not None and (best is None or deadline < best):
            best = deadline
    return best
