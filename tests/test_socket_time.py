"""The guard's rule for a WebSocket's idle and send timeouts (pure).

``next_look`` decides when a guard looks at a socket next, or that a
timeout has passed; the runtime's guards (a task per socket, or one for a
server) only sleep and act on it. The properties a guard relies on: no
deadline of an operation in progress is passed before the look that sees
it, an operation that starts after a look is never due before the next
one, a look is always later than now (float rounding included: a look at
the same instant would make a guard spin), and a stalled write wins over
an idle read.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from patter_core.http._sockettime import next_look

_time = st.floats(0, 1e6, allow_nan=False)
_timeout = st.floats(0.01, 1e4, allow_nan=False)


@given(
    now=_time,
    read_ago=st.none() | st.floats(0, 2e4),
    write_ago=st.none() | st.floats(0, 2e4),
    send=_timeout,
    idle=st.none() | _timeout,
)
def test_a_look_meets_every_deadline(
    now: float, read_ago: float | None, write_ago: float | None, send: float, idle: float | None
) -> None:
    read = None if read_ago is None else now - read_ago
    write = None if write_ago is None else now - write_ago
    look = next_look(
        now, read_started=read, write_started=write, send_timeout=send, idle_timeout=idle
    )
    write_due = write is not None and now >= write + send
    read_due = read is not None and idle is not None and now >= read + idle
    if write_due:
        assert look == "send"  # a stalled write first
        return
    if read_due:
        assert look == "idle"
        return
    assert isinstance(look, float) and look > now
    # Never past a deadline in progress, nor past the earliest deadline of
    # an operation that starts now.
    assert look <= now + min(send, idle if idle is not None else send)
    if write is not None:
        assert look <= write + send
    if read is not None and idle is not None:
        assert look <= read + idle


def test_a_deadline_that_rounds_to_now_is_due() -> None:
    # 4098.0 - 1.9775221533623153 + 1.9775221533623153 == 4098.0 in floats,
    # though 4098.0 - (4098.0 - 1.9775221533623153) < 1.9775221533623153.
    now, timeout = 4098.0, 1.9775221533623153
    started = now - timeout
    assert now - started < timeout and started + timeout == now
    look = next_look(
        now, read_started=started, write_started=None, send_timeout=60.0, idle_timeout=timeout
    )
    assert look == "idle"


def test_the_look_is_exactly_the_earliest_deadline() -> None:
    kw = {"send_timeout": 10.0, "idle_timeout": 60.0}
    assert next_look(100.0, read_started=None, write_started=None, **kw) == 110.0
    assert next_look(100.0, read_started=50.0, write_started=None, **kw) == 110.0
    assert next_look(100.0, read_started=45.0, write_started=None, **kw) == 105.0
    assert next_look(100.0, read_started=None, write_started=95.0, **kw) == 105.0
    assert next_look(100.0, read_started=40.0, write_started=None, **kw) == "idle"
    assert next_look(100.0, read_started=40.0, write_started=90.0, **kw) == "send"
    # No idle limit (a provider socket): only the send timeout counts.
    assert (
        next_look(100.0, read_started=0.0, write_started=None, send_timeout=10.0, idle_timeout=None)
        == 110.0
    )
    # Integer times still give a time, never a verdict by accident.
    assert (
        next_look(100, read_started=None, write_started=None, send_timeout=10, idle_timeout=None)
        == 110.0
    )
