"""Run the dial fuzz harness briefly, so CI exercises it."""

from __future__ import annotations

from fuzz import fuzz_dial


def test_fuzz_dial_briefly() -> None:
    fuzz_dial.check(200)


def test_fuzz_dial_cli() -> None:
    assert fuzz_dial.main(["--examples", "20"]) == 0
