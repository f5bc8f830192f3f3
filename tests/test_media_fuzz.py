"""Run the media fuzz harness briefly, so CI exercises it."""

from __future__ import annotations

from fuzz import fuzz_media


def test_fuzz_media_briefly() -> None:
    fuzz_media.check(300)


def test_fuzz_media_cli() -> None:
    assert fuzz_media.main(["--examples", "20"]) == 0
