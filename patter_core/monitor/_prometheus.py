"""The Prometheus text exposition format (version 0.0.4), written by hand.

It is small enough not to need ``prometheus_client`` at run time: a family
is a ``# HELP`` line, a ``# TYPE`` line and its samples, one per line, as
``name{label="value",...} number``. The rules kept here come from the
format's specification ("Exposition formats", text-based format):

* label values escape backslash, double quote and line feed; HELP text
  escapes backslash and line feed;
* a counter's samples, and its HELP and TYPE lines, carry the ``_total``
  suffix;
* a histogram has one cumulative ``_bucket`` per upper bound (``le``), the
  last one ``+Inf``, then ``_sum`` and ``_count``;
* numbers are Go-style floats: ``+Inf``, ``-Inf``, ``NaN``.

The test suite parses the output with ``prometheus_client``'s own parser.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CONTENT_TYPE",
    "Family",
    "Sample",
    "histogram",
    "render",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    """One line: the family name plus ``suffix``, its labels and value."""

    value: float
    labels: Labels = ()
    suffix: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Family:
    name: str
    help: str
    kind: Literal["counter", "gauge", "histogram"]
    samples: tuple[Sample, ...] = ()


def histogram(
    bounds: Sequence[float], counts: Sequence[int], total: float, labels: Labels = ()
) -> tuple[Sample, ...]:
    """Histogram samples from per-bucket (not cumulative) ``counts``: one per
    bound in ``bounds`` and a last one for everything above."""
    if len(counts) != len(bounds) + 1:
        raise ValueError("counts needs one entry per bound plus one for +Inf")
    out: list[Sample] = []
    running = 0
    for bound, count in zip((*bounds, math.inf), counts, strict=True):
        running += count
        out.append(
            Sample(suffix="_bucket", labels=(*labels, ("le", _number(bound))), value=running)
        )
    out.append(Sample(suffix="_sum", labels=labels, value=total))
    out.append(Sample(suffix="_count", labels=labels, value=running))
    return tuple(out)


def render(families: Iterable[Family]) -> bytes:
    lines: list[str] = []
    for family in families:
        default = "_total" if family.kind == "counter" else ""
        # The 0.0.4 text format names a counter's family as its samples are
        # named, suffix included (as prometheus_client itself writes it).
        head = family.name + default
        lines.append(f"# HELP {head} {_escape_help(family.help)}")
        lines.append(f"# TYPE {head} {family.kind}")
        for sample in family.samples:
            name = family.name + (sample.suffix or default)
            if sample.labels:
                inner = ",".join(f'{key}="{_escape_label(value)}"' for key, value in sample.labels)
                name += "{" + inner + "}"
            lines.append(f"{name} {_number(sample.value)}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))
