"""Replay the committed fuzz corpus: every saved input parses or raises our error.

``fuzz/corpus/<target>/`` holds the minimised inputs the coverage-guided
campaign (``python -m fuzz.campaign``) kept; replaying them is a regression
test for everything the campaign ever reached, and takes a few seconds.
"""

from __future__ import annotations

import pytest

from fuzz.campaign import CORPUS, corpus_files, line_coverage
from fuzz.targets import TARGETS, corpus_name


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_corpus_replays_without_undeclared_errors(name: str) -> None:
    files = corpus_files(name)
    # A target with no saved corpus would pass by replaying nothing.
    assert len(files) > len(TARGETS[name].seeds) // 2, f"{CORPUS / name} is (nearly) empty"
    for path in files:
        try:
            TARGETS[name].run(path.read_bytes())
        except Exception as exc:
            raise AssertionError(f"{path.name}: {type(exc).__name__}: {exc}") from exc


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_run_and_every_corpus_file_is_named_by_its_content(name: str) -> None:
    for seed in TARGETS[name].seeds:
        TARGETS[name].run(seed)
    for path in corpus_files(name):
        assert path.name == corpus_name(path.read_bytes()), path


def test_corpus_is_small() -> None:
    total = sum(p.stat().st_size for name in TARGETS for p in corpus_files(name))
    assert total < 4 * 1024 * 1024, total


def test_line_coverage_counts_what_runs() -> None:
    # The router seeds reach the router; an empty replay reaches only imports.
    router = TARGETS["router"]
    seeded, total = line_coverage("router", router.seeds)
    empty, same_total = line_coverage("router", [])
    assert total == same_total > 0
    assert empty < seeded <= total


def test_a_target_lets_undeclared_errors_through(monkeypatch: pytest.MonkeyPatch) -> None:
    # The replay above only means something if a parser's KeyError reaches it.
    from patter_core.http import Router

    def broken(*args: object) -> None:
        raise KeyError("host")

    monkeypatch.setattr(Router, "route", broken)
    with pytest.raises(KeyError):
        TARGETS["router"].run(TARGETS["router"].seeds[0])


def test_a_declared_error_must_carry_an_answer() -> None:
    from fuzz.targets import _declared
    from patter_core import RemoteProtocolError

    _declared(RemoteProtocolError("bad", http_status=413, close_code=1009))
    with pytest.raises(AssertionError):
        _declared(RemoteProtocolError("bad", http_status=200))


def test_replay_command_prints_coverage(capsys: pytest.CaptureFixture[str]) -> None:
    from fuzz.campaign import main

    assert main(["sse", "--replay"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"sse: {len(corpus_files('sse'))} corpus inputs, lines ")
    assert out.rstrip().endswith("no finding")
