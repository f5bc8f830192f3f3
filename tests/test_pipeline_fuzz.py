"""Run the pipeline fuzz harness briefly, so CI exercises it."""

from __future__ import annotations

from fuzz import fuzz_pipeline


def test_fuzz_pipeline_briefly() -> None:
    fuzz_pipeline.check(150)


def test_fuzz_pipeline_cli() -> None:
    assert fuzz_pipeline.main(["--examples", "10"]) == 0
