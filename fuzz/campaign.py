"""Coverage-guided fuzz campaign, one per parser (atheris over libFuzzer).

    python -m fuzz.campaign twilio-media --runs 1000000   # one target
    python -m fuzz.campaign all --runs 1000000            # every target, one after another
    python -m fuzz.campaign twilio-media --replay         # line coverage of the saved corpus

A run starts from the committed corpus ``fuzz/corpus/<target>/`` (seeded from
the target's documented messages when empty), fuzzes ``patter_core`` with
edge-coverage feedback for ``--runs`` inputs, then merges what it found back
into the committed corpus, minimised by libFuzzer (``-merge=1`` keeps the
smallest set of files that covers every feature seen). Scratch files go to
``fuzz/.work/`` (not committed); a finding is written to
``fuzz/findings/<target>-crash-<sha1>`` and reported with its traceback.

The summary line gives what the README records: inputs run, edges and
features libFuzzer reached, lines of the target's sources covered by the
corpus, wall time and corpus size. atheris is only needed to fuzz (the
``fuzz`` extra); ``--replay`` and the test that replays the corpus need
nothing beyond the test extra.
"""

from __future__ import annotations

import argparse
import inspect
import re
import subprocess
import sys
import time
import types
from pathlib import Path

__all__ = ["line_coverage", "main", "replay"]

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
WORK = ROOT / "fuzz" / ".work"
FINDINGS = ROOT / "fuzz" / "findings"
CORE = ROOT / "patter_core"
# Inputs carry a few messages; past 4 KiB mutations only grow payloads the
# parsers copy without looking at (and the committed corpus stays small).
MAX_LEN = 4096


def _target_names() -> list[str]:
    from fuzz.targets import TARGETS

    return list(TARGETS)


def _executable_lines(path: Path) -> set[int]:
    """Line numbers that hold code in ``path`` (every nested code object)."""
    lines: set[int] = set()
    stack = [compile(path.read_text(), str(path), "exec")]
    while stack:
        code = stack.pop()
        lines.update(line for _, _, line in code.co_lines() if line is not None)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return lines


def line_coverage(name: str, inputs: list[bytes]) -> tuple[int, int]:
    """(lines run, executable lines) of the target's sources over ``inputs``."""
    from fuzz.targets import TARGETS

    target = TARGETS[name]
    files = {str(CORE / source) for source in target.sources}
    hit: set[tuple[str, int]] = set()

    def local(frame: types.FrameType, event: str, arg: object) -> object:
        if event == "line":
            hit.add((frame.f_code.co_filename, frame.f_lineno))
        return local

    def tracer(frame: types.FrameType, event: str, arg: object) -> object:
        if frame.f_code.co_filename in files:
            hit.add((frame.f_code.co_filename, frame.f_lineno))
            return local
        return None

    sys.settrace(tracer)
    try:
        for data in inputs:
            target.run(data)
    finally:
        sys.settrace(None)
    run = total = 0
    for file in files:
        path = Path(file)
        lines = _executable_lines(path)
        # Module-level lines ran at import, before tracing: count them as run.
        covered = {line for f, line in hit if f == file} | _module_level_lines(path)
        run += len(covered & lines)
        total += len(lines)
    return run, total


def _module_level_lines(path: Path) -> set[int]:
    """Lines run at import: the module body and class bodies (not functions)."""
    lines: set[int] = set()
    stack = [compile(path.read_text(), str(path), "exec")]
    while stack:
        code = stack.pop()
        lines.update(line for _, _, line in code.co_lines() if line is not None)
        stack.extend(
            c
            for c in code.co_consts
            if isinstance(c, types.CodeType) and not c.co_flags & inspect.CO_OPTIMIZED
        )
    return lines


def corpus_files(name: str) -> list[Path]:
    folder = CORPUS / name
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def replay(name: str) -> tuple[int, int, int]:
    """Run every saved input of ``name`` once: (inputs, lines run, lines)."""
    inputs = [p.read_bytes() for p in corpus_files(name)]
    hit, total = line_coverage(name, inputs)
    return len(inputs), hit, total


def _seed(name: str) -> None:
    from fuzz.targets import TARGETS, corpus_name

    folder = CORPUS / name
    folder.mkdir(parents=True, exist_ok=True)
    if not any(folder.iterdir()):
        for data in TARGETS[name].seeds:
            (folder / corpus_name(data)).write_bytes(data)


def _dictionary(name: str) -> Path:
    from fuzz.targets import TARGETS

    path = WORK / f"{name}.dict"
    words = [w for w in TARGETS[name].tokens if w.isprintable() and '"' not in w and "\\" not in w]
    path.write_text("".join(f'"{w}"\n' for w in words))
    return path


def _worker(name: str, libfuzzer_args: list[str]) -> None:
    """Run libFuzzer in this process (it exits the process when done)."""
    import atheris

    with atheris.instrument_imports(include=["patter_core"]):
        import patter_core  # noqa: F401  (instrumented before the targets load it)
        from fuzz.targets import TARGETS

    # libFuzzer re-runs argv[0] through the shell for -merge; make it this worker.
    self_command = f"{sys.executable} -m fuzz.campaign --worker {name} --"
    atheris.Setup([self_command, *libfuzzer_args], TARGETS[name].run)
    atheris.Fuzz()


def _libfuzzer(name: str, args: list[str], log: Path) -> int:
    command = [sys.executable, "-m", "fuzz.campaign", "--worker", name, "--", *args]
    with log.open("w") as out:
        return subprocess.call(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


_DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+)")
_STATUS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)")


def _campaign(name: str, runs: int, max_time: int) -> int:
    _seed(name)
    WORK.mkdir(parents=True, exist_ok=True)
    FINDINGS.mkdir(parents=True, exist_ok=True)
    scratch = WORK / name
    scratch.mkdir(exist_ok=True)
    log = WORK / f"{name}.log"
    if log.exists():  # keep the previous run's figures next to this one's
        log.replace(WORK / f"{name}.previous.log")
    args = [
        f"-runs={runs}",
        f"-max_len={MAX_LEN}",
        f"-dict={_dictionary(name)}",
        f"-artifact_prefix={FINDINGS / name}-",
        "-print_final_stats=1",
        "-timeout=10",
        "-rss_limit_mb=2048",
    ]
    if max_time:
        args.append(f"-max_total_time={max_time}")
    started = time.monotonic()
    status = _libfuzzer(name, [*args, str(scratch), str(CORPUS / name)], log)
    wall = time.monotonic() - started
    text = log.read_text(errors="replace")
    done = _DONE.findall(text) or _STATUS.findall(text)
    inputs, edges, features = (int(v) for v in done[-1]) if done else (0, 0, 0)
    if status != 0:
        print(f"{name}: FINDING after {inputs} inputs (exit {status}); see {log}")
        print("\n".join(text.splitlines()[-40:]))
        return 1
    # Minimise: the smallest set of files covering every feature, committed.
    merged = WORK / f"{name}.merged"
    subprocess.call(["rm", "-rf", str(merged)])
    merged.mkdir()
    merge_args = [f"-max_len={MAX_LEN}", "-merge=1", str(merged), str(CORPUS / name), str(scratch)]
    if _libfuzzer(name, merge_args, WORK / f"{name}.merge.log") == 0 and any(merged.iterdir()):
        subprocess.call(["rm", "-rf", str(CORPUS / name), str(scratch)])
        merged.rename(CORPUS / name)
    files = corpus_files(name)
    size = sum(p.stat().st_size for p in files)
    _, hit, total = replay(name)
    print(
        f"{name}: {inputs} inputs in {wall:.0f} s ({inputs / max(wall, 1e-9):.0f}/s),"
        f" {edges} edges, {features} features, lines {hit}/{total}"
        f" ({100 * hit / max(total, 1):.0f}%), corpus {len(files)} files {size / 1024:.0f} KiB,"
        " no finding"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _worker(argv[1], argv[3:])
        return 0
    names = _target_names()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("target", choices=[*names, "all"])
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs to run")
    parser.add_argument("--max-time", type=int, default=0, help="stop after this many seconds")
    parser.add_argument("--replay", action="store_true", help="replay the corpus, no fuzzing")
    args = parser.parse_args(argv)
    chosen = names if args.target == "all" else [args.target]
    if args.replay:
        for name in chosen:
            count, hit, total = replay(name)
            percent = 100 * hit / max(total, 1)
            print(
                f"{name}: {count} corpus inputs, lines {hit}/{total} ({percent:.0f}%), no finding"
            )
        return 0
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("fuzz.campaign: atheris is not installed: pip install -e '.[fuzz]'", file=sys.stderr)
        return 2
    failed = 0
    for name in chosen:
        failed |= _campaign(name, args.runs, args.max_time)
    return failed


if __name__ == "__main__":
    sys.exit(main())
