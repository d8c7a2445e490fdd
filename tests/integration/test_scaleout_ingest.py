"""Ingest leadership over a real 6-node Redis Cluster (issue 18): two ``--role ingest``
processes, one leads (lease ``{ttfast}:ingest``); ``kill -9`` of the leader → the standby
takes over within 5 s, resubscribes every symbol from its last bar in the streams, and at the
end no bar is missing: every closed bar's history is byte-identical to the single-process
pipeline's over the seeded market's bars. Plus the fencing and merge rules of the compute
side, in process."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from redis.cluster import ClusterNode, RedisCluster
from tests.integration.scaleout_helpers import (
    PERIOD_MS,
    SEED,
    drained,
    reference,
    spawn_worker,
    wait_until,
)
from tests.servers import RedisCluster as ClusterFixture

from ttfast import CandleStore
from ttfast.sim import market
from ttfast.warm import Bars, snapshot_batch
from ttfast.worker import WorkerConfig
from ttfast.worker.scaleout import stream_key
from ttfast.worker.scaleout.common import INGEST_LEASE_KEY, encode_entry, entry_meta
from ttfast.worker.scaleout.compute import ComputeWorker

P = 8
SYMS = [f"L{i:02d}" for i in range(10)]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["kill9", "pause"])
def test_leader_ingest_dies_standby_takes_over(
    cluster: ClusterFixture, tmp_path: Path, how: str
) -> None:
    """``kill9``: SIGKILL of the leader. ``pause``: the leader is stopped (SIGSTOP) past its
    lease and continued: it finds its lease gone, appends nothing more and exits with 3."""
    r = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in cluster.startup_nodes])
    anchor = int(time.time() * 1000)  # one market clock for both ingest processes
    common = ["--redis", cluster.url, "--partitions", str(P), "--status-interval", "1"]
    ingest_args = [
        "--role", "ingest", *common, "--symbols", ",".join(SYMS), "--sim-seed", str(SEED),
        "--sim-speed", "1200", "--sim-anchor", str(anchor), "--history-days", "1",
        "--no-serve", "--no-print",
    ]  # fmt: skip
    logs = [tmp_path / n for n in ("leader.log", "standby.log", "compute0.log", "compute1.log")]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        computes = [spawn_worker(["--role", "compute", *common], logs[2 + i]) for i in range(2)]
        procs += computes
        leader = spawn_worker(ingest_args, logs[0])
        procs.append(leader)

        def lease() -> str | None:
            v = r.get(INGEST_LEASE_KEY)
            return None if v is None else v.decode()

        wait_until(
            lambda: (v := lease()) is not None and f":{leader.pid}:" in v, 60, "a leader", logs
        )
        standby = spawn_worker(ingest_args, logs[1])
        procs.append(standby)
        wait_until(lambda: "standby" in logs[1].read_text(), 60, "the standby standing by", logs)
        wait_until(
            lambda: all(r.zcard(f"history:{s}") > 250 for s in SYMS),
            90,
            "the history of every symbol",
            logs,
        )
        time.sleep(2.0)  # mid-stream
        assert f":{leader.pid}:" in (lease() or "")  # the standby did not take over early
        leader.send_signal(signal.SIGKILL if how == "kill9" else signal.SIGSTOP)
        t_kill = time.monotonic()
        if how == "kill9":
            leader.wait(10)

        def new_epoch_appending() -> bool:
            for p in range(P):
                for _id, fields in r.xrevrange(stream_key(p), count=1):
                    if entry_meta(fields)[1] >= 2:
                        return True
            return False

        wait_until(new_epoch_appending, 30, "the standby appending as the new leader", logs)
        took = time.monotonic() - t_kill
        assert f":{standby.pid}:" in (lease() or "")
        assert took < 5.0, f"takeover took {took:.1f}s"
        if how == "pause":
            leader.send_signal(signal.SIGCONT)
            assert leader.wait(30) == 3  # lease lost: stops without appending
            assert "lease lost" in logs[0].read_text()
        wait_until(
            lambda: "resubscribed from their last bar" in logs[1].read_text(), 10, "resume", logs
        )
        time.sleep(4.0)  # the new leader streams live bars for a while
        standby.send_signal(signal.SIGTERM)
        assert standby.wait(60) == 0

        wait_until(lambda: drained(r, P), 90, "every entry processed and acknowledged", logs)
        # the compute workers trim the streams to their state logs' checkpoints: the standby's
        # resume and the exact takeovers above did not need the streams' whole history
        kept = sum(r.xlen(stream_key(p)) for p in range(P))
        added = sum(r.xinfo_stream(stream_key(p))["entries-added"] for p in range(P))
        assert kept < added / 2, (kept, added)
        for c in computes:
            c.send_signal(signal.SIGTERM)
            assert c.wait(60) == 0
        for sym in SYMS:
            got = {int(t): m for m, t in r.zrange(f"history:{sym}", 0, -1, withscores=True)}
            first, last = min(got), max(got)
            snap = json.loads(r.get(f"snapshot:{sym}"))
            assert snap["last_candle"]["time"] == last + PERIOD_MS, sym
            ref = reference(sym, first, last)
            assert sorted(got) == sorted(ref), f"{sym}: bars missing or extra"
            bad = [t for t in ref if got[t] != ref[t]]
            assert not bad, f"{sym}: {len(bad)} bars differ, e.g. {got[bad[0]]!r}"
            # the run went on past the kill: bars from both leaders
            assert last - first > 300 * PERIOD_MS
        print(f"ingest takeover ({how}): {took:.2f}s to the new leader's first append")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        r.close()


def _cut(b: Bars, lo: int, hi: int | None = None) -> Bars:
    return Bars(*(np.asarray(getattr(b, f))[lo:hi].copy() for f in _F))


_F = ("time", "open", "high", "low", "close", "volume")


def _bars(sym: str, t0: int, n: int) -> Bars:
    starts = np.arange(t0, t0 + n * PERIOD_MS, PERIOD_MS, dtype=np.int64)
    b = market.candle_bars(market.symbol_key(SEED, sym), PERIOD_MS, starts, t0 + n * PERIOD_MS)
    return Bars(b.time, b.open, b.high, b.low, b.close, b.volume)


Entry = tuple[bytes, dict[bytes, bytes]]


def _entries(sym: str, bars: Bars, *, epoch: int, merge: bool = False) -> list[Entry]:
    store = CandleStore(4096)
    return [
        (b"0-0", encode_entry(ch, epoch=epoch, merge=merge))
        for ch in store.apply(snapshot_batch(sym, bars))
    ]


def _history(w: ComputeWorker, outs: list) -> dict[int, bytes]:  # type: ignore[type-arg]
    from ttfast.edge.history import history_ops

    got: dict[int, bytes] = {}
    for out in outs:
        for op in history_ops(out, 100_000):
            got.update(dict(op.bars))
    return got


def test_merge_entry_keeps_older_bars_and_fencing_skips_a_deposed_leader() -> None:
    """``k=m`` (a new leader's resubscription from its last bar) merges: the series keeps the
    older bars and the indicators equal a single series over all bars; an entry of an older
    epoch after a newer one is skipped and counted."""
    sym, cs = "MRG", "MRG{=5m}"
    t0 = 1_767_225_600_000
    full = _bars(sym, t0, 200)
    w = ComputeWorker(WorkerConfig(redis_url="redis://127.0.0.1:1", history_bars=1000))
    head = _cut(full, 0, 150)
    tail = _cut(full, 140)  # overlaps the last 10 bars
    w.apply(0, _entries(cs, head, epoch=1))
    outs = w.apply(0, _entries(cs, tail, epoch=2, merge=True))
    s = w.store.get(cs)
    assert s is not None and len(s) == 200
    assert np.array_equal(np.asarray(s.time), np.asarray(full.time))
    got = _history(w, outs)
    ref = reference(sym, t0, t0 + 198 * PERIOD_MS)
    assert got and all(got[t] == ref[t] for t in got)  # the merged bars' outputs: as one run
    # a deposed leader (epoch 1) appends late: skipped, the series unchanged
    stale = _cut(full, 0, 100)
    assert w.apply(0, _entries(cs, stale, epoch=1)) == []
    assert w.stats.fenced == 1 and len(w.store.get(cs) or ()) == 200
    # without merge a full entry replaces (a fresh leader's snapshot)
    w.apply(0, _entries(cs, tail, epoch=2))
    assert len(w.store.get(cs) or ()) == 60


async def test_resume_points_from_the_stream_tail_or_the_checkpoint(
    cluster: ClusterFixture,
) -> None:
    """A new leader resumes a symbol from its newest entry in the stream; a symbol whose
    entries were trimmed away (the compute workers trim to their checkpoints) from the
    checkpoint's ``t:<candle symbol>``; an unknown symbol starts cold."""
    from ttfast.worker.scaleout import IngestWorker, connect, partition_of
    from ttfast.worker.scaleout.state import ckpt_key

    now = int(time.time() * 1000) // PERIOD_MS * PERIOD_MS
    cfg = WorkerConfig(
        redis_url=cluster.url, partitions=4, symbols=["AAA", "BBB", "CCC"], source="sim"
    )
    w = IngestWorker(cfg)
    c = connect(cluster.url)
    bars = _bars("AAA", now - 20 * PERIOD_MS, 20)
    (e,) = [
        encode_entry(ch, epoch=1) for ch in CandleStore(64).apply(snapshot_batch("AAA{=5m}", bars))
    ]
    await c.xadd(stream_key(partition_of("AAA{=5m}", 4)), e)
    p_b = partition_of("BBB{=5m}", 4)
    await c.hset(ckpt_key(p_b), mapping={"id": "1-0", "epoch": 1, "t:BBB{=5m}": now - PERIOD_MS})
    await w._resume_points(c)
    assert w.warm_start_ms == {"AAA": int(bars.time[-1]), "BBB": now - PERIOD_MS}
    assert w._merge == {"AAA{=5m}", "BBB{=5m}"} and w.resumed == 2
    await c.aclose()


async def test_a_process_with_other_partitions_refuses_to_run(cluster: ClusterFixture) -> None:
    """The first scale-out process records the deployment's --partitions; an ingest, a compute
    worker or an edge given another P exits with 2 (it would read or write other streams)."""
    import asyncio
    import sys

    from ttfast.worker.scaleout import IngestWorker, connect
    from ttfast.worker.scaleout.common import PARTITIONS_KEY

    c = connect(cluster.url)
    ok = ComputeWorker(WorkerConfig(redis_url=cluster.url, partitions=16, duration=0.5))
    assert await ok.run() == 0  # the first one: records 16
    assert await c.get(PARTITIONS_KEY) == b"16"
    for w in (
        ComputeWorker(WorkerConfig(redis_url=cluster.url, partitions=8, quiet=True)),
        IngestWorker(WorkerConfig(redis_url=cluster.url, partitions=8, source="sim", quiet=True)),
    ):
        assert await asyncio.wait_for(w.run(), 30) == 2
    edge = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ttfast.edge", "--redis", cluster.url, "--partitions", "8",
        "--port", "0", stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _out, err = await asyncio.wait_for(edge.communicate(), 60)
    assert edge.returncode == 2 and b"--partitions 16" in err
    # without --partitions the edge follows the recorded P
    import re
    import urllib.request

    edge = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ttfast.edge", "--redis", cluster.url, "--port", "0",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert edge.stderr is not None
        line = b""
        while b"ttfast-edge: http" not in line:
            line = await asyncio.wait_for(edge.stderr.readline(), 60)
            assert line, "the edge exited"
        m = re.search(rb"(http://\S+)", line)
        assert m is not None
        metrics = await asyncio.to_thread(
            lambda: urllib.request.urlopen(m.group(1).decode() + "metrics", timeout=10).read()
        )
        assert re.search(rb"redis_partitions 16\b", metrics), metrics[:2000]
    finally:
        edge.terminate()
        await edge.wait()
    await c.aclose()


async def test_entries_trimmed_before_any_read_are_reported(cluster: ClusterFixture) -> None:
    """With no compute worker running, ``MAXLEN`` drops unread entries: the compute worker that
    takes the partition later counts exactly those (the ingest numbers its entries; `missing`),
    logs it, and processes the entries that remain."""
    import asyncio

    from ttfast.worker.scaleout import connect, partition_of

    c = connect(cluster.url)
    cs = "TRM{=5m}"
    p = partition_of(cs, 4)
    store = CandleStore(64)
    bars = _bars("TRM", 1_767_225_600_000, 40)
    (first,) = store.apply(snapshot_batch(cs, _cut(bars, 0, 20)))
    entries = [encode_entry(first, epoch=1)]
    for i in range(20, 40):
        (ch,) = store.apply_bar(cs, int(bars.time[i]), 1.0, 1.0, 1.0, 1.0, 1.0)
        entries.append(encode_entry(ch, epoch=1))
    for n, e in enumerate(entries, 1):  # numbered as the ingest does; 11 trimmed unread
        e[b"n"] = b"%d" % n
        await c.xadd(stream_key(p), e, maxlen=10, approximate=False)
    w = ComputeWorker(WorkerConfig(redis_url=cluster.url, partitions=4, quiet=True))
    task = asyncio.create_task(w.run())
    deadline = time.monotonic() + 30
    while w.stats.entries < 10:
        assert time.monotonic() < deadline, w.status_line()
        await asyncio.sleep(0.05)
    w.stop()
    assert await asyncio.wait_for(task, 30) == 0
    assert w.stats.missing == 11  # exactly the entries trimmed before being read
    await c.aclose()
