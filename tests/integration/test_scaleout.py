"""Scale-out over a real 6-node Redis Cluster (issue 18): 1 ingest + 3 compute workers.

`kill -9` of a compute worker mid-stream: its partitions are taken over by the others, and
every closed bar of every symbol lands in ``history:<sym>`` with the bytes the single-process
pipeline computes from the same seeded market bars.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from redis.cluster import ClusterNode, RedisCluster
from tests.integration.scaleout_helpers import (
    PERIOD_MS,
    SEED,
    adrained,
    drained,
    reference,
    spawn_worker,
    wait_until,
)
from tests.servers import RedisCluster as ClusterFixture

from ttfast.sim import market
from ttfast.warm import Bars, snapshot_batch
from ttfast.worker import Worker, WorkerConfig
from ttfast.worker.scaleout import GROUP, lease_key, partition_of, stream_key

P = 16
SYMS = [f"S{i:02d}" for i in range(20)]

pytestmark = pytest.mark.timeout(300)


def _reference_finals(sym: str, first: int, last: int, live: int) -> dict[int, bytes]:
    """The single-process worker's `"final": true` deltas of the bars [live, last]: the
    seeded bars [first, live] as a snapshot, then bar by bar."""
    starts = np.arange(first, last + 2 * PERIOD_MS, PERIOD_MS, dtype=np.int64)
    b = market.candle_bars(market.symbol_key(SEED, sym), PERIOD_MS, starts, last + 3 * PERIOD_MS)
    k = int(np.searchsorted(b.time, live)) + 1
    head = Bars(b.time[:k], b.open[:k], b.high[:k], b.low[:k], b.close[:k], b.volume[:k])
    w = Worker(WorkerConfig(symbols=[sym], source="sim", quiet=True))
    cs = f"{sym}{{=5m}}"
    w.on_changes(w.store.apply(snapshot_batch(cs, head)))
    finals: dict[int, bytes] = {}
    for i in range(k, len(b.time)):
        bar = (b.open[i], b.high[i], b.low[i], b.close[i], b.volume[i])
        out = w.on_changes(w.store.apply_bar(cs, int(b.time[i]), *bar))
        for _ch, payload in out.publishes:
            d = json.loads(payload)
            if d.get("type") == "delta" and d["final"]:
                finals[d["candle"]["time"]] = payload
    return finals


class _Deltas:
    """Every sharded delta of `channels` (SSUBSCRIBE on each shard), from a thread."""

    def __init__(self, cluster: ClusterFixture, channels: list[str]) -> None:
        self.r = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in cluster.startup_nodes])
        self.ps = self.r.pubsub()
        self.ps.ssubscribe(*channels)
        self.got: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            m = self.ps.get_sharded_message(ignore_subscribe_messages=True, timeout=0.0)
            if m is None:
                time.sleep(0.002)
            elif m["type"] in ("smessage", b"smessage"):
                self.got.append(m["data"])

    def drain(self, quiet: float = 1.0, timeout: float = 60.0) -> None:
        """Wait until nothing arrived for `quiet` seconds (read what Redis already sent)."""
        deadline = time.monotonic() + timeout
        n = -1
        while n != len(self.got) and time.monotonic() < deadline:
            n = len(self.got)
            time.sleep(quiet)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.ps.close()
        self.r.close()


def test_kill9_compute_worker_loses_no_final_bar(cluster: ClusterFixture, tmp_path: Path) -> None:
    r = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in cluster.startup_nodes])
    deltas = _Deltas(cluster, [f"analytics:delta:{s}" for s in SYMS])
    common = ["--redis", cluster.url, "--partitions", str(P), "--status-interval", "1"]
    logs = [tmp_path / "ingest.log"] + [tmp_path / f"compute{i}.log" for i in range(3)]
    computes = [spawn_worker(["--role", "compute", *common], logs[1 + i]) for i in range(3)]
    ingest = spawn_worker(
        [
            "--role", "ingest", *common, "--symbols", ",".join(SYMS), "--sim-seed", str(SEED),
            "--sim-speed", "1200", "--history-days", "1", "--no-serve", "--no-print",
        ],
        logs[0],
    )  # fmt: skip
    procs = [ingest, *computes]
    try:

        def owners() -> dict[int, str | None]:
            return {
                p: (v.decode() if (v := r.get(lease_key(p))) is not None else None)
                for p in range(P)
            }

        def pid_of(owner: str) -> int:
            return int(owner.split(":")[1])

        def balanced() -> bool:
            o = owners()
            held = {pid_of(v) for v in o.values() if v is not None}
            return None not in o.values() and held == {c.pid for c in computes}

        wait_until(balanced, 90, "all partitions leased, every compute worker holding some", logs)
        wait_until(
            lambda: all(r.zcard(f"history:{s}") > 250 for s in SYMS),
            90,
            "the history of every symbol",
            logs,
        )
        time.sleep(3.0)  # mid-stream
        before = owners()
        used = {partition_of(f"{s}{{=5m}}", P) for s in SYMS}

        def share(c: subprocess.Popen[bytes]) -> list[int]:
            return sorted(p for p, v in before.items() if v is not None and pid_of(v) == c.pid)

        victim = max(computes, key=lambda c: len(set(share(c)) & used))
        theirs = share(victim)
        assert set(theirs) & used
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        took = wait_until(
            lambda: all((v := owners()[p]) is not None and pid_of(v) != victim.pid for p in theirs),
            30,
            "the dead worker's partitions taken over",
            logs,
        )
        assert took < 5.0, f"takeover took {took:.1f}s"
        time.sleep(4.0)  # the survivors carry the whole stream for a while
        ingest.send_signal(signal.SIGTERM)
        assert ingest.wait(60) == 0

        wait_until(lambda: drained(r, P), 90, "every entry processed and acknowledged", logs)
        for c in computes:
            if c is not victim:
                c.send_signal(signal.SIGTERM)
                assert c.wait(60) == 0
        for sym in SYMS:
            got = {int(t): m for m, t in r.zrange(f"history:{sym}", 0, -1, withscores=True)}
            first, last = min(got), max(got)
            snap = json.loads(r.get(f"snapshot:{sym}"))
            assert snap["last_candle"]["time"] == last + PERIOD_MS, sym  # nothing after `last`
            ref = reference(sym, first, last)
            assert sorted(got) == sorted(ref), f"{sym}: bars missing or extra"
            bad = [t for t in ref if got[t] != ref[t]]
            assert not bad, (
                f"{sym}: {len(bad)} bars differ, e.g. {got[bad[0]]!r} != {ref[bad[0]]!r}"
            )
            assert last - first > 300 * PERIOD_MS  # the snapshot plus live bars
        # every bar that closed live has its "final": true delta, each copy with the bytes of
        # the single-process worker's (duplicates allowed, loss not)
        deltas.drain()
        deltas.close()
        finals: dict[str, dict[int, list[bytes]]] = {s: {} for s in SYMS}
        for payload in deltas.got:
            d = json.loads(payload)
            if d["final"]:
                finals[d["symbol"]].setdefault(d["candle"]["time"], []).append(payload)
        for sym in SYMS:
            got_f = finals[sym]
            assert len(got_f) > 20, sym
            last = max(int(t) for t in r.zrange(f"history:{sym}", -1, -1, withscores=True)[0][1:])
            first = int(r.zrange(f"history:{sym}", 0, 0, withscores=True)[0][1])
            ref_f = _reference_finals(sym, first, last, min(got_f))
            assert sorted(got_f) == sorted(ref_f), f"{sym}: final deltas missing"
            for t, copies in got_f.items():
                assert all(c == ref_f[t] for c in copies), f"{sym} {t}: {copies[0]!r}"
    finally:
        deltas.close()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        r.close()


async def test_pending_entries_of_a_dead_consumer_are_claimed(cluster: ClusterFixture) -> None:
    """A consumer read entries and died before writing anything: a compute worker claims them
    (XAUTOCLAIM), writes their outputs, then reads on; every closed bar is the reference's."""
    import asyncio

    from redis.asyncio.cluster import ClusterNode as AsyncNode
    from redis.asyncio.cluster import RedisCluster as AsyncCluster

    from ttfast import CandleStore
    from ttfast.worker.scaleout import ComputeWorker, encode_entry

    parts = 4
    r = AsyncCluster(startup_nodes=[AsyncNode(h, p) for h, p in cluster.startup_nodes])
    syms = ["AAA", "BBB", "CCC"]
    t0 = 1_767_225_600_000
    n = 120
    store = CandleStore(4096)
    sent = 0
    for sym in syms:
        cs = f"{sym}{{=5m}}"
        starts = np.arange(t0, t0 + n * PERIOD_MS, PERIOD_MS, dtype=np.int64)
        b = market.candle_bars(market.symbol_key(SEED, sym), PERIOD_MS, starts, t0 + n * PERIOD_MS)
        k = 60  # a snapshot of the first k bars, then bar by bar (a partial state first)
        head = Bars(b.time[:k], b.open[:k], b.high[:k], b.low[:k], b.close[:k], b.volume[:k])
        changes = [store.apply(snapshot_batch(cs, head))]
        for i in range(k, n):
            t = int(b.time[i])
            changes.append(store.apply_bar(cs, t, b.open[i], b.open[i], b.open[i], b.open[i], 1.0))
            changes.append(
                store.apply_bar(cs, t, b.open[i], b.high[i], b.low[i], b.close[i], b.volume[i])
            )
        for ch in changes:
            for c in ch:
                await r.xadd(stream_key(partition_of(cs, parts)), encode_entry(c))
                sent += 1
    dead_read = 0
    for p in range(parts):
        if not await r.exists(stream_key(p)):
            continue
        await r.xgroup_create(stream_key(p), GROUP, id="0")
        got = await r.xreadgroup(GROUP, "dead", {stream_key(p): ">"}, count=100)
        dead_read += sum(len(e) for _, e in (got.items() if isinstance(got, dict) else got))
    assert 0 < dead_read < sent
    cfg = WorkerConfig(
        redis_url=cluster.url, partitions=parts, lease_ms=1000, history_bars=1000, quiet=True
    )
    w = ComputeWorker(cfg)
    task = asyncio.create_task(w.run())

    deadline = time.monotonic() + 60
    while not await adrained(r, parts):
        assert time.monotonic() < deadline, w.status_line()
        await asyncio.sleep(0.1)
    w.stop()
    assert await asyncio.wait_for(task, 30) == 0
    assert w.stats.claimed == dead_read
    for sym in syms:
        got = {int(t): m for m, t in await r.zrange(f"history:{sym}", 0, -1, withscores=True)}
        ref = reference(sym, t0, t0 + (n - 2) * PERIOD_MS)
        assert got == ref, sym
        snap = json.loads(await r.get(f"snapshot:{sym}"))
        assert snap["last_candle"]["time"] == t0 + (n - 1) * PERIOD_MS
    await r.aclose()


def test_role_flags() -> None:
    from ttfast.worker import parse_args

    cfg = parse_args(["--role", "compute", "--redis", "redis+cluster://127.0.0.1:7000,h:7001"])
    assert (cfg.role, cfg.partitions, cfg.lease_ms) == ("compute", 16, 2000)
    assert parse_args([]).role == "single"  # today's worker stays the default
    for bad in (
        ["--role", "ingest"],  # no --redis
        ["--role", "compute", "--redis", "redis://x:1", "--partitions", "0"],
        [
            "--redis",
            "redis+cluster://127.0.0.1:7000",
        ],  # the single worker's sink is not a cluster client
    ):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_partitions_are_stable() -> None:
    import zlib

    from redis.cluster import key_slot

    from ttfast.worker.scaleout import redact

    for sym in ("SPY{=5m}", "QQQ{=1h}", "AAPL{=5m}"):
        assert partition_of(sym, 16) == zlib.crc32(sym.encode()) % 16  # not hash(): stable
    assert stream_key(3) == "{p3}:candles" and lease_key(3) == "{p3}:lease"
    assert key_slot(stream_key(3).encode()) == key_slot(lease_key(3).encode())  # one slot
    assert redact("redis+cluster://u:secret@h:1,h:2") == "redis+cluster://***@h:1,h:2"
