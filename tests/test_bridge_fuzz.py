"""CI runs the call-bridge fuzz harness briefly."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings

from fuzz.fuzz_bridge import check, main, steps


@settings(max_examples=80, deadline=None)
@given(steps)
def test_bridge_fuzz_property(sequence: list[tuple[str, Any]]) -> None:
    check(sequence)


def test_bridge_fuzz_main_runs() -> None:
    assert main(["--examples", "20"]) == 0
