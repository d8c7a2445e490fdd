"""``python -m bench.soak``: run the soak parts and print one table (see bench/soak/__init__)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench.soak.common import Row, loadavg, log, render_markdown, render_table

PARTS = ("fuzz", "storm", "worker", "overflow")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="Soak run (not part of the test command): fuzzed frames through the "
        "decoder, a reconnect storm, and the worker through Redis/influxd outages. Prints one "
        "table; exits 1 if an invariant fails. See docs/reliability.md.",
    )
    p.add_argument(
        "--quick", action="store_true", help="everything small (about 1-2 minutes in total)"
    )
    p.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="run the worker part this long, repeating the outage cycle (default: one cycle)",
    )
    p.add_argument("--frames", type=int, default=None, help="fuzzed frames (default 1,000,000)")
    p.add_argument("--storm", type=int, default=None, help="forced disconnects (default 100)")
    p.add_argument(
        "--outage", type=float, default=None, help="influxd outage in seconds (default 60)"
    )
    p.add_argument(
        "--redis-outage", type=float, default=None, help="Redis outage in seconds (default 10)"
    )
    p.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated subset of {','.join(PARTS)} (overflow = the worker part again "
        "with tiny sink buffers, so that losses happen and must be counted)",
    )
    p.add_argument("--seed", type=int, default=1, help="mutator seed")
    p.add_argument("--artifacts", default=None, help="directory for crash/mismatch frames")
    p.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    p.add_argument("--json", default=None, help="write the raw results to this file")
    a = p.parse_args(argv)
    q = a.quick
    a.frames = a.frames if a.frames is not None else (30_000 if q else 1_000_000)
    a.storm = a.storm if a.storm is not None else (30 if q else 100)
    a.outage = a.outage if a.outage is not None else (5.0 if q else 60.0)
    a.redis_outage = a.redis_outage if a.redis_outage is not None else (3.0 if q else 10.0)
    a.parts = [x.strip() for x in a.parts.split(",") if x.strip()]
    for x in a.parts:
        if x not in PARTS:
            p.error(f"unknown part {x!r} (choose from {', '.join(PARTS)})")
    return a


def _plans(a: argparse.Namespace) -> list[Any]:
    from bench.soak.worker import WorkerPlan

    q = a.quick
    warm, gap, settle = (4.0, 3.0, 8.0) if q else (10.0, 10.0, 15.0)
    one = warm + a.redis_outage + gap + a.outage + settle
    plans = []
    if "worker" in a.parts:
        plans.append(
            WorkerPlan(
                seconds=max(one, (a.minutes or 0) * 60),
                warmup=warm,
                redis_outage=a.redis_outage,
                gap=gap,
                outage=a.outage,
                settle=settle,
                label="worker",
            )
        )
    if "overflow" in a.parts:
        ro, io = (2.0, 4.0) if q else (5.0, 10.0)
        plans.append(
            WorkerPlan(
                seconds=3 + ro + 2 + io + 8,
                warmup=3.0,
                redis_outage=ro,
                gap=2.0,
                outage=io,
                settle=8.0,
                sim_speed=600.0,
                history_days=1.0,
                redis_backlog=200,
                telegraf_buffer=64 * 1024,
                label="overflow",
            )
        )
    return plans


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    art = Path(a.artifacts or tempfile.mkdtemp(prefix="ttfast-soak-"))
    art.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    header = (
        f"ttfast soak: {' '.join(sys.argv[1:]) or '(defaults)'} | {platform.node()} "
        f"{os.cpu_count()} cpu | load at start {loadavg()} | artifacts {art}"
    )
    log(header)
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    details: list[str] = []
    if "fuzz" in a.parts:
        from bench.soak import fuzz

        log(f"fuzz: {a.frames:,} mutated frames x 2 on_error modes (child process)")
        try:
            r = fuzz.run(a.frames, a.seed, art)
            raw["fuzz"] = r
            rows += fuzz.rows(r)
            details.append(
                f"== fuzz: {r['elapsed_s']:.1f} s; other exceptions: {r['other_examples'][:6]}"
                f"; oracle mismatches: {r['mismatch_examples'][:6]}; crashes: {r['crashes']}; "
                f"hangs: {r['hangs']}"
            )
            log(f"fuzz: done in {r['elapsed_s']:.1f} s")
        except Exception as e:
            log(traceback.format_exc())
            why = f"could not run: {e!r}"
            rows.append(Row("fuzz", "fuzzed frames", f"{a.frames:,}", why, False))
    if "storm" in a.parts:
        from bench.soak import storm

        log(f"storm: {a.storm} forced disconnects")
        try:
            r = storm.run(a.storm)
            raw["storm"] = {k: v for k, v in r.items()}
            rows += storm.rows(r)
            details.append(f"== storm: { {k: v for k, v in r.items() if k != 'series'} }")
        except Exception as e:
            log(traceback.format_exc())
            rows.append(Row("storm", "reconnect storm", str(a.storm), f"crashed: {e!r}", False))
    for plan in _plans(a):
        from bench.soak import worker

        log(f"{plan.label}: worker soak, about {plan.seconds:.0f} s")
        try:
            r = worker.run(plan)
            rows += worker.rows(r)
            details.append(worker.details(r))
        except Exception as e:
            log(traceback.format_exc())
            rows.append(Row(plan.label, "worker soak", "-", f"could not run: {e!r}", False))
            continue
        raw[plan.label] = {
            "error": r.get("error"),
            "events": r.get("events"),
            "counters": r.get("worker"),
        }
    elapsed = time.monotonic() - t0
    print("\n".join(details), file=sys.stderr)
    failed = [r for r in rows if r.ok is False]
    print(f"\n{header}\ntotal {elapsed:.0f} s, load at end {loadavg()}")
    print(render_table(rows))
    print(
        f"{len(failed)} invariant(s) failed" if failed else "all invariants held",
        f"({sum(r.ok is True for r in rows)} pass, {sum(r.ok is None for r in rows)} n/a)",
    )
    if a.markdown:
        print()
        print(render_markdown(rows))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(raw, f, indent=1, default=str)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
