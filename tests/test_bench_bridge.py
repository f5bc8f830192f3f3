"""The core benchmark runs, and its two ways really differ in path taken."""

from __future__ import annotations

import pytest

from benchmarks import bench_bridge


@pytest.mark.parametrize("audio_format", ["pcmu", "pcm24"])
def test_both_ways_carry_a_call_to_the_end_of_the_run(audio_format: bench_bridge._Format) -> None:
    for quick in (True, False):
        assert bench_bridge.measure(audio_format, quick, pairs=50, repeats=1) > 0


def test_the_general_bridge_is_never_steady() -> None:
    quick = bench_bridge._bridge("pcmu", quick=True)
    general = bench_bridge._bridge("pcmu", quick=False)
    assert quick._steady_until > 1e9  # no deadline: steady for good
    assert general._steady_until < 0


def test_main_prints_both_paths(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_bridge.main(["--pairs", "20", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "pcmu" in out and "pcm24" in out
    with pytest.raises(SystemExit) as exc:
        bench_bridge.main(["--pairs", "0"])
    assert exc.value.code == 2
