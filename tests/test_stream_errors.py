"""A lost peer is recognised in one place: ``patter_anyio._errors``.

The exceptions anyio raises for a gone peer are named once (``STREAM_LOST``,
``STREAM_ENDED``); a module that spells them out again would drift from the
rest (one forgetting ``ClosedResourceError`` and crashing on a closed socket).
"""

from __future__ import annotations

import ast
import pathlib

import anyio
import anyio.abc
import pytest

from patter_anyio._errors import STREAM_ENDED, STREAM_LOST

RUNTIME = pathlib.Path(__file__).resolve().parent.parent / "patter_anyio"
LOST_NAMES = {"BrokenResourceError", "ClosedResourceError"}


def _caught(tree: ast.AST) -> list[ast.AST]:
    """What ``except`` clauses and ``contextlib.suppress(...)`` name: where a
    module decides what counts as a lost peer. (The asyncio stream of our
    own raises these exceptions: that is the contract it keeps, not a
    second list of them.)"""
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            found.append(node.type)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "suppress"
        ):
            found.extend(node.args)
    return found


def _mentions(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return [
        f"{path.name}:{node.lineno} names anyio.{node.attr}"
        for caught in _caught(tree)
        for node in ast.walk(caught)
        if isinstance(node, ast.Attribute) and node.attr in LOST_NAMES
    ]


@pytest.mark.parametrize(
    "path",
    [p for p in sorted(RUNTIME.rglob("*.py")) if p.name != "_errors.py"],
    ids=lambda p: p.name,
)
def test_no_module_repeats_the_lost_stream_exceptions(path: pathlib.Path) -> None:
    assert _mentions(path) == []


def test_the_one_home_names_every_way_a_stream_is_lost() -> None:
    assert set(STREAM_LOST) == {anyio.BrokenResourceError, anyio.ClosedResourceError, OSError}
    assert set(STREAM_ENDED) == {anyio.EndOfStream, *STREAM_LOST}
    # anyio.fail_after raises the builtin TimeoutError: a lost stream too.
    assert issubclass(TimeoutError, STREAM_LOST)


@pytest.mark.anyio
async def test_a_reset_peer_is_caught_by_the_one_tuple() -> None:
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        stream = await anyio.connect_tcp("127.0.0.1", port)
        await stream.aclose()
        with pytest.raises(STREAM_ENDED):
            await stream.receive()
        with pytest.raises(STREAM_LOST):
            await stream.send(b"x")
