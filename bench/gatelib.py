"""The benchmark regression gate's machinery (robust on noisy shared 2-core machines).

Two kinds of checks, both measured in the same run, never against a stored wall time:

* RatioCase — `ref` and `fast` do the same work; we time them interleaved (A B A B ...) and take
  the median of per-round ratios ref/fast. A floor guards what was achieved (measured ratio minus
  a safety margin). Complexity ratios (cost at n=400 / cost at n=20) use the same machinery with
  `ceiling` instead of `floor`.
* CallgrindCase — instructions per operation counted by valgrind callgrind in a child process
  (exactly repeatable for the same binary and input), compared with bench/budget.json. A budget
  is changed only by a deliberate commit (`python -m bench.gate --rebaseline`).

Each bench/bench_*.py module may define module-level ``GATE_RATIOS`` and ``GATE_CALLGRIND``
lists; bench/test_gate.py collects them all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
BUDGET_FILE = BENCH_DIR / "budget.json"


@dataclass
class RatioCase:
    """ratio = time(ref) / time(fast), both doing the same `units` of work per call."""

    name: str
    fast: Callable[[], object]
    ref: Callable[[], object]
    floor: float | None = None  # fail when ratio < floor (speed-up guards)
    ceiling: float | None = None  # fail when ratio > ceiling (complexity guards)
    target: float | None = None  # the goal, reported only
    units: int = 1  # work units per call (events, bars...) for ns/unit
    note: str = ""


@dataclass
class RatioResult:
    case: RatioCase
    ratio: float
    fast_ns_per_unit: float
    ref_ns_per_unit: float
    ok: bool


def _time_call(fn: Callable[[], object], min_time: float) -> float:
    """Seconds per call: repeat fn until min_time has passed, return the best of 3 chunks."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time / 3:
            break
        n *= 2 if dt == 0 else max(2, int(min_time / 3 / dt) + 1)
    best = dt / n
    for _ in range(2):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def measure_ratio(case: RatioCase, rounds: int = 7, min_time: float = 0.03) -> RatioResult:
    case.fast()
    case.ref()  # warm-up (imports, caches, lazy init)
    ratios, tf, tr = [], [], []
    for i in range(rounds):
        if i % 2 == 0:
            a = _time_call(case.fast, min_time)
            b = _time_call(case.ref, min_time)
        else:
            b = _time_call(case.ref, min_time)
            a = _time_call(case.fast, min_time)
        tf.append(a)
        tr.append(b)
        ratios.append(b / a)
    ratio = statistics.median(ratios)
    ok = (case.floor is None or ratio >= case.floor) and (
        case.ceiling is None or ratio <= case.ceiling
    )
    return RatioResult(
        case,
        ratio,
        statistics.median(tf) * 1e9 / case.units,
        statistics.median(tr) * 1e9 / case.units,
        ok,
    )


@dataclass
class CallgrindCase:
    """Instructions per operation of `stmt`, counted inside functions matching `toggle`.

    `setup` and `stmt` are Python source run in a fresh interpreter under callgrind; `stmt` is
    executed `repeat` times after one warm-up; only instructions executed inside functions whose
    symbol matches the `toggle` glob (e.g. ``*__pyx_*FeedDecoder*decode*``) are collected.
    """

    name: str
    setup: str
    stmt: str
    toggle: str
    repeat: int = 20
    tolerance: float = 0.05  # allowed growth over the budget (5%)
    per: int = 1  # divide by this (events per op) for the report
    extra: dict[str, str] = field(default_factory=dict)


def valgrind_available() -> bool:
    return shutil.which("valgrind") is not None


def count_instructions(case: CallgrindCase) -> float:
    """Instructions per `stmt` execution (inclusive, inside the toggled functions)."""
    script = (
        textwrap.dedent(case.setup)
        + "\n"
        + textwrap.dedent(f"""
        def __op():
        {textwrap.indent(textwrap.dedent(case.stmt), "    ")}
        __op()
        for __i in range({case.repeat}):
            __op()
        """)
    )
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "case.py"
        src.write_text(script)
        out = Path(tmp) / "callgrind.out"
        env = dict(os.environ, PYTHONHASHSEED="0", PYTHONMALLOC="malloc")
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            f"--toggle-collect={case.toggle}",
            "--dump-instr=no",
            "--compress-strings=no",
            sys.executable,
            str(src),
        ]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"callgrind case {case.name} failed:\n{proc.stderr[-3000:]}")
        total = 0
        for line in out.read_text().splitlines():
            m = re.match(r"^summary:\s+(\d+)", line) or re.match(r"^totals:\s+(\d+)", line)
            if m:
                total = int(m.group(1))
                break
    if total == 0:
        raise RuntimeError(
            f"callgrind case {case.name}: no instructions collected; "
            f"does the toggle glob {case.toggle!r} match a symbol?"
        )
    return total / (case.repeat + 1)


def load_budget() -> dict[str, float]:
    if BUDGET_FILE.exists():
        data: dict[str, float] = json.loads(BUDGET_FILE.read_text())
        return data
    return {}


def save_budget(budget: dict[str, float]) -> None:
    BUDGET_FILE.write_text(json.dumps(dict(sorted(budget.items())), indent=2) + "\n")


def collect_cases() -> tuple[list[RatioCase], list[CallgrindCase]]:
    """Import every bench/bench_*.py and gather its GATE_RATIOS / GATE_CALLGRIND."""
    import importlib

    ratios: list[RatioCase] = []
    grind: list[CallgrindCase] = []
    for path in sorted(BENCH_DIR.glob("bench_*.py")):
        mod = importlib.import_module(f"bench.{path.stem}")
        ratios.extend(getattr(mod, "GATE_RATIOS", []))
        grind.extend(getattr(mod, "GATE_CALLGRIND", []))
    return ratios, grind


def format_ratio_table(results: list[RatioResult]) -> str:
    rows = [("case", "ratio", "floor/ceil", "target", "ttfast ns/unit", "ref ns/unit", "")]
    for r in results:
        c = r.case
        bound = (
            f">={c.floor:g}"
            if c.floor is not None
            else (f"<={c.ceiling:g}" if c.ceiling is not None else "")
        )
        rows.append(
            (
                c.name,
                f"{r.ratio:.2f}",
                bound,
                f"{c.target:g}" if c.target else "",
                f"{r.fast_ns_per_unit:.1f}",
                f"{r.ref_ns_per_unit:.1f}",
                "ok" if r.ok else "REGRESSION",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    )
