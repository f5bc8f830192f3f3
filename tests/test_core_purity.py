"""patter_core must stay sans-IO: no sockets, clocks, threads or randomness.

Walks the AST of every module, so an import hidden in a function body is
caught too.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

CORE = pathlib.Path(__file__).resolve().parent.parent / "patter_core"
BANNED = {
    "socket",
    "ssl",
    "asyncio",
    "anyio",
    "trio",
    "threading",
    "selectors",
    "time",
    "random",
    "subprocess",
    "multiprocessing",
}
FILES = sorted(CORE.rglob("*.py"))


def _violations(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module.split(".")[0]]
        found += [f"{path.name}:{node.lineno} imports {n}" for n in names if n in BANNED]
        if isinstance(node, ast.Attribute) and node.attr == "urandom":
            found.append(f"{path.name}:{node.lineno} uses urandom")
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name == "urandom" for alias in node.names)
        ):
            found.append(f"{path.name}:{node.lineno} imports urandom")
    return found


def test_core_has_modules() -> None:
    assert len(FILES) > 5


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORE)))
def test_module_is_pure(path: pathlib.Path) -> None:
    assert _violations(path) == []


def test_checker_catches_violations(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os\nfrom time import monotonic\ndef f():\n    import socket\n    return os.urandom(4)\n"
    )
    assert len(_violations(bad)) == 3
