"""What the scale-out tests share (tests/integration/test_scaleout*.py, test_edge_cluster.py):
worker processes with their logs, waiting with the logs' tails on a timeout, "every entry
processed", and the single-process reference the cluster's outputs must equal. The 6-node
cluster fixture itself is `cluster` in tests/integration/conftest.py."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tests.servers import clean_env

from ttfast.edge.history import history_ops
from ttfast.sim import market
from ttfast.warm import Bars, snapshot_batch
from ttfast.worker import Worker, WorkerConfig
from ttfast.worker.scaleout import GROUP, stream_key

PERIOD_MS = 300_000
SEED = 11


def spawn_worker(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m ttfast.worker *args``, stdout and stderr into `log`."""
    env = dict(clean_env(), PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "ttfast.worker", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def tails(logs: list[Path]) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)


def wait_until(cond: Callable[[], Any], timeout: float, what: str, logs: list[Path]) -> float:
    """Poll `cond` every 0.1 s; the seconds it took, or AssertionError with the logs' tails."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out ({timeout}s) waiting for {what}\n{tails(logs)}")
        time.sleep(0.1)
    return time.monotonic() - t0


def _stream_drained(info: dict[Any, Any], groups: list[dict[Any, Any]]) -> bool:
    g = next((g for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
    return not (g is None or g["pending"] or g["last-delivered-id"] != info["last-generated-id"])


def drained(r: Any, partitions: int) -> bool:
    """Every entry of every partition stream delivered to the group and acknowledged (a
    stream without the group yet: not drained); `r` a redis-py (sync) cluster client."""
    for p in range(partitions):
        if r.exists(stream_key(p)) and not _stream_drained(
            r.xinfo_stream(stream_key(p)), r.xinfo_groups(stream_key(p))
        ):
            return False
    return True


async def adrained(r: Any, partitions: int) -> bool:
    """`drained` with an asyncio client."""
    for p in range(partitions):
        if await r.exists(stream_key(p)) and not _stream_drained(
            await r.xinfo_stream(stream_key(p)), await r.xinfo_groups(stream_key(p))
        ):
            return False
    return True


def reference(sym: str, first: int, last: int) -> dict[int, bytes]:
    """The single-process worker's closed bars (history JSON) over the seeded market's bars
    [first, last] of `sym` (one more bar forming, so that `last` is closed)."""
    starts = np.arange(first, last + 2 * PERIOD_MS, PERIOD_MS, dtype=np.int64)
    b = market.candle_bars(market.symbol_key(SEED, sym), PERIOD_MS, starts, last + 3 * PERIOD_MS)
    bars = Bars(b.time, b.open, b.high, b.low, b.close, b.volume)
    w = Worker(WorkerConfig(symbols=[sym], source="sim", quiet=True))
    out = w.on_changes(w.store.apply(snapshot_batch(f"{sym}{{=5m}}", bars)))
    (op,) = history_ops(out, 100_000)
    return dict(op.bars)
