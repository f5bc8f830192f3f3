"""Run the audio fuzz harness briefly, so CI exercises it."""

from __future__ import annotations

from fuzz import fuzz_audio


def test_fuzz_audio_briefly() -> None:
    fuzz_audio.check(150)


def test_fuzz_audio_cli() -> None:
    assert fuzz_audio.main(["--examples", "10"]) == 0
