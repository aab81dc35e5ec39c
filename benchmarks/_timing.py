"""Fair timing on a noisy shared machine: warm both sides up, interleave them, report medians.

Every benchmark in this folder compares a from-scratch piece with its reference *in the same process*
and prints one Markdown section (a `## Title` line, a short context line, a table). `make bench`
(tools/run_benchmarks.py) collects those sections into docs/benchmarks.md.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Comparison:
    ours_s: float  # median seconds per call, ours
    ref_s: float  # median seconds per call, reference
    ratio: float  # median of per-pair (ours / reference) time ratios: < 1 means ours is faster

    @property
    def speedup(self) -> float:
        """How many times faster ours is than the reference (> 1 is faster)."""
        return 1.0 / self.ratio


def _time_once(fn: Callable[[], object], inner: int, before: Callable[[], object] | None = None) -> float:
    if before is not None:
        before()  # untimed (e.g. evicting the caches)
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def compare(ours: Callable[[], object], ref: Callable[[], object], *, warmup: int = 2, repeats: int = 7,
            inner: int = 1, before: Callable[[], object] | None = None) -> Comparison:
    """Time `ours` against `ref`: `warmup` calls each, then `repeats` interleaved pairs (ours, ref, ours, ...);
    `before`, when given, runs untimed before every timed call."""
    for _ in range(warmup):
        ours()
        ref()
    t_ours, t_ref, ratios = [], [], []
    for i in range(repeats):
        # alternate who goes first so drift in machine load hits both sides alike
        if i % 2 == 0:
            a = _time_once(ours, inner, before)
            b = _time_once(ref, inner, before)
        else:
            b = _time_once(ref, inner, before)
            a = _time_once(ours, inner, before)
        t_ours.append(a)
        t_ref.append(b)
        ratios.append(a / b)
    return Comparison(statistics.median(t_ours), statistics.median(t_ref), statistics.median(ratios))


def time_it(fn: Callable[[], object], *, warmup: int = 2, repeats: int = 7, inner: int = 1) -> float:
    """Median seconds per call of a single function (for pieces without a reference, e.g. naive loops)."""
    for _ in range(warmup):
        fn()
    return statistics.median(_time_once(fn, inner) for _ in range(repeats))


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
