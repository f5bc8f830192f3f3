"""Fuzz the carrier role (dial, test carriers, benchmark): the agent-message parser and playback.

Arbitrary text, bytes and JSON shaped like agent frames go to
``parse_agent_message``: it must return a message or raise
:class:`RemoteProtocolError` with close code 1007, nothing else. Random
sequences of audio, marks, clears and clock ticks go to ``CarrierPlayback``:
every mark must come back exactly once and in order, and the heard timeline
must be exactly as long as the time that passed, and what played never
exceeds what was received.

    python -m fuzz.fuzz_dial --examples 5000
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patter_core import RemoteProtocolError
from patter_core.media import CarrierPlayback, parse_agent_message

_KEYS = st.sampled_from(["event", "media", "mark", "payload", "name", "streamSid"])
_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(["media", "mark", "clear", "AAEC", "!!", ""])
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=10,
)
_MESSAGES = st.one_of(st.text(max_size=300), st.binary(max_size=64), _JSON.map(json.dumps))
_OPS = st.lists(
    st.tuples(
        st.sampled_from(["audio", "mark", "clear", "tick"]),
        st.integers(0, 4000),
        st.floats(0, 0.3, allow_nan=False),
    ),
    max_size=60,
)


def check_message(message: str | bytes) -> None:
    try:
        parse_agent_message(message)
    except RemoteProtocolError as exc:
        assert exc.close_code == 1007, exc.close_code


def check_playback(ops: list[tuple[str, int, float]], jitter: float) -> None:
    pb = CarrierPlayback(jitter_buffer=jitter)
    now = 0.0
    sent: list[str] = []
    back: list[str] = []
    for i, (op, size, step) in enumerate(ops):
        now += step
        back += pb.due_marks(now)
        if op == "audio":
            pb.add_audio(b"\x55" * size, now)
        elif op == "mark":
            sent.append(f"m{i}")
            back += pb.add_mark(f"m{i}", now)
        elif op == "clear":
            back += pb.clear(now)
            assert pb.buffered_seconds(now) == 0.0
        assert 0 <= pb.played(now) <= pb.received
    back += pb.due_marks(pb.play_end + 1.0)
    assert back == sent, (back, sent)
    assert len(pb.heard(now)) == 2 * round(now * 8000)
    assert all(v >= 0 for v in pb.late_ms)


def check(examples: int) -> None:
    """Run ``examples`` cases of each kind; raises (after Hypothesis prints the input)."""
    common = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    common(given(_MESSAGES)(check_message))()
    common(given(_OPS, st.floats(0, 0.2, allow_nan=False))(check_playback))()


def run(examples: int) -> int:
    """0 when every case passed, 1 (after printing the failing input) if not."""
    try:
        check(examples)
    except Exception as exc:
        print(f"fuzz_dial: FAILED: {type(exc).__name__}: {exc}")
        for note in getattr(exc, "__notes__", []):
            print(note)
        return 1
    print(f"fuzz_dial: {examples} agent messages and {examples} playback scenarios, no failure")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000, help="number of fuzz cases")
    args = parser.parse_args(argv)
    return run(args.examples)


if __name__ == "__main__":
    sys.exit(main())
