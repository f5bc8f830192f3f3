"""The official openai SDK as an oracle: strict type checks and its deprecation notes.

``check(value, SomeParamTypedDict)`` walks a message we build against the
SDK's request types and fails on any key the type does not declare, a
missing required key, or a value outside a ``Literal``: stricter than
pydantic, which lets unknown keys through.

``deprecations(module, attribute)`` reads the SDK's "Deprecated values"
notes (attribute docstrings in the generated type modules, so only the
source has them) into ``{model: shutdown date}``.
"""

from __future__ import annotations

import ast
import collections.abc
import datetime
import importlib
import inspect
import re
import types
import typing
from typing import Any

import typing_extensions

__all__ = ["check", "deprecations", "literal_values"]


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) in (typing_extensions.Required, typing_extensions.NotRequired):
        tp = typing.get_args(tp)[0]
    while typing.get_origin(tp) in (typing.Required, typing.NotRequired):
        tp = typing.get_args(tp)[0]
    return tp


def _problems(value: Any, tp: Any, path: str) -> list[str]:
    tp = _unwrap(tp)
    if tp is Any or tp is object:
        return []
    if typing_extensions.is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {value!r}"]
        hints = typing.get_type_hints(tp, include_extras=True)
        out = [f"{path}.{k}: not in {tp.__name__}" for k in value if k not in hints]
        required = getattr(tp, "__required_keys__", frozenset())
        out += [f"{path}.{k}: required by {tp.__name__}" for k in required if k not in value]
        for key, item in value.items():
            if key in hints:
                out += _problems(item, hints[key], f"{path}.{key}")
        return out
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal or origin is typing_extensions.Literal:
        return [] if value in args else [f"{path}: {value!r} not one of {args}"]
    if origin in (typing.Union, types.UnionType):
        attempts = [_problems(value, arg, path) for arg in args]
        if any(not a for a in attempts):
            return []
        return min(attempts, key=len)
    if tp is type(None):
        return [] if value is None else [f"{path}: expected null"]
    if origin in (list, collections.abc.Sequence, collections.abc.Iterable) or (
        getattr(tp, "__name__", "") == "SequenceNotStr"
        or getattr(origin, "__name__", "") == "SequenceNotStr"
    ):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        inner = args[0] if args else Any
        return [p for i, item in enumerate(value) for p in _problems(item, inner, f"{path}[{i}]")]
    if origin in (dict, collections.abc.Mapping) or tp in (dict, typing.Dict):  # noqa: UP006
        return [] if isinstance(value, dict) else [f"{path}: expected an object"]
    if tp is bool:
        return [] if isinstance(value, bool) else [f"{path}: expected a bool"]
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected an int"]
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected a number"]
    if tp is str:
        return [] if isinstance(value, str) else [f"{path}: expected a string"]
    if isinstance(tp, typing.TypeAliasType if hasattr(typing, "TypeAliasType") else ()):
        return _problems(value, tp.__value__, path)
    return []  # a type we do not model: accept rather than guess


def check(value: Any, tp: Any) -> None:
    """Fail with every mismatch between ``value`` and the SDK type ``tp``."""
    problems = _problems(value, tp, "$")
    assert not problems, "\n".join(problems)


def literal_values(tp: Any) -> set[str]:
    """Every string Literal reachable through Unions of ``tp``."""
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Literal or origin is typing_extensions.Literal:
        return {a for a in typing.get_args(tp) if isinstance(a, str)}
    if origin in (typing.Union, types.UnionType):
        return set().union(*(literal_values(a) for a in typing.get_args(tp)))
    return set()


_ENTRY = re.compile(r"^- (.*?)(?=^- |\Z)", re.S | re.M)
_DATE = re.compile(r"Announced\s+shutdown\s+date:\s+(\d{4}-\d{2}-\d{2})")


def _parse(doc: str) -> dict[str, datetime.date]:
    out: dict[str, datetime.date] = {}
    _, _, notes = doc.partition("Deprecated values:")
    for entry in _ENTRY.findall(notes.strip() + "\n"):
        names, _, rest = entry.partition(":")
        date = _DATE.search(entry)
        if date is None:
            continue  # "Not a supported model ID" and similar
        for name in re.findall(r'"([^"]+)"', names + rest.split("Announced")[0]):
            out[name] = datetime.date.fromisoformat(date.group(1))
    return out


def deprecations(module: str, attribute: str) -> dict[str, datetime.date]:
    """``{model: shutdown}`` from the docstring after ``attribute`` in SDK ``module``.

    ``attribute`` is ``"Class.field"`` for a field, or a module-level name.
    """
    source = inspect.getsource(importlib.import_module(module))
    tree = ast.parse(source)
    owner, _, name = attribute.rpartition(".")
    body: list[ast.stmt] = tree.body
    if owner:
        body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == owner).body
    for node, after in zip(body, [*body[1:], None], strict=True):
        target = None
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            target = node.target.id
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            target = node.targets[0].id
        if target != name:
            continue
        if (
            isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            return _parse(after.value.value)
        return {}
    raise AssertionError(f"{module} has no {attribute}")
