"""Fencing of the compute workers' stored outputs (scale-out, docs/scale-out.md *Fencing*).

A compute worker paused past its lease (a VM stall, SIGSTOP, a long GC) wakes up with a round
already computed; the partition's new owner has written newer outputs meanwhile. Its late round
must write nothing: every stored output (``snapshot:<name>``, ``history:<name>``) and every
commit (state log, checkpoint, XACK) is a script that runs only if no newer lease token of the
partition has written there. Tested on a real 6-node cluster with two real `ComputeWorker`s,
the deposed one's round sent after the new owner's, and the fence script on its own on one
server (ordering, ``NOSCRIPT`` after a flush, both clients).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.cluster import ClusterNode as AsyncNode
from redis.asyncio.cluster import RedisCluster as AsyncCluster
from redis.crc import key_slot
from tests.servers import RedisCluster as ClusterFixture
from tests.servers import redis_server

from ttfast import CandleStore
from ttfast.sim import market
from ttfast.warm import Bars, snapshot_batch
from ttfast.worker import WorkerConfig
from ttfast.worker.scaleout import ComputeWorker, encode_entry, partition_of
from ttfast.worker.scaleout.common import (
    ACQUIRE_FENCED_SCRIPT,
    RoundNotDone,
    connect,
    fence_key,
    fenced,
    lease_key,
    partition_fence_key,
    run_round,
)
from ttfast.worker.scaleout.compute import LeaseLost
from ttfast.worker.scaleout.resp import RespCluster
from ttfast.worker.scaleout.state import ckpt_key

pytestmark = pytest.mark.timeout(180)

PERIOD_MS = 300_000
T0 = 1_767_225_600_000


@given(st.one_of(st.binary(max_size=30), st.text(alphabet="ab{}:=5m", max_size=12)))
def test_a_fence_is_on_its_keys_slot(key: bytes | str) -> None:
    k = key.encode() if isinstance(key, str) else key
    f = fence_key(key)
    assert key_slot(f) == key_slot(k)
    assert f.endswith(b":fence:" + k)  # one fence per key


def test_fence_keys_of_names_with_braces() -> None:
    for k in (b"snapshot:SPY{=5m}", b"history:a}b", b"snapshot:a{}b", b"x{", b"}", b"{}"):
        assert key_slot(fence_key(k)) == key_slot(k), k


@pytest.mark.parametrize("client", ["resp", "redis-py"])
async def test_fence_script_orders_writers_by_token(client: str) -> None:
    with redis_server() as srv:
        c: Any = RespCluster(srv.url) if client == "resp" else connect(srv.url)
        k = b"snapshot:X"
        f = fence_key(k)

        async def write(token: int, value: bytes) -> list[Any]:
            return await run_round(c, [fenced(f, k, token, [("SET", k, value), ("INCR", "n")])])

        with pytest.raises(RoundNotDone):  # NOSCRIPT: loaded now, the round is sent again
            await write(2, b"two")
        assert await write(2, b"two") == [1]
        assert await write(1, b"one") == [-1]  # an older token: nothing written
        assert await write(2, b"two again") == [1]  # the same token writes on
        assert await write(3, b"three") == [1]
        raw = connect(srv.url)
        assert await raw.get(k) == b"three" and await raw.get(f) == b"3"
        assert await raw.get("n") == b"3"  # the refused script ran none of its commands
        await raw.execute_command("SCRIPT", "FLUSH")  # (a restarted or promoted node)
        with pytest.raises(RoundNotDone):
            await write(4, b"four")
        assert await write(4, b"four") == [1]
        await raw.aclose()
        await c.aclose()


async def test_tokens_grow_even_when_the_last_one_was_lost() -> None:
    with redis_server() as srv:
        r: Any = connect(srv.url)

        async def take(owner: str) -> int:
            return int(await r.eval(ACQUIRE_FENCED_SCRIPT, 2, "L", "F", owner, 10_000))

        t1 = await take("a")
        assert t1 > 1_700_000_000_000  # the node's clock in ms
        assert await take("b") == 0  # a held lease gives no token
        await r.delete("L")
        t2 = await take("b")
        assert t2 > t1
        # a failover lost t2 (not replicated): the fence is back at t1, the lease gone
        await r.set("F", t1)
        await r.delete("L")
        await asyncio.sleep(0.005)
        assert await take("c") > t2
        await r.set("F", 2**52)  # a token ahead of the clock: the next is one more
        await r.delete("L")
        assert await take("d") == 2**52 + 1
        await r.aclose()


def _entries(sym: str, n: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """A snapshot of the first 40 bars of `sym`, then each later bar opened and closed."""
    starts = np.arange(T0, T0 + n * PERIOD_MS, PERIOD_MS, dtype=np.int64)
    b = market.candle_bars(market.symbol_key(5, sym), PERIOD_MS, starts, T0 + n * PERIOD_MS)
    store = CandleStore(4096)
    k = 40
    head = Bars(b.time[:k], b.open[:k], b.high[:k], b.low[:k], b.close[:k], b.volume[:k])
    out: list[tuple[bytes, dict[bytes, bytes]]] = []

    def add(changes: Any) -> None:  # (encoded at once: a change refers to the live series)
        for c in changes:
            out.append((b"%d-0" % (len(out) + 1), encode_entry(c)))

    add(store.apply(snapshot_batch(sym, head)))
    for i in range(k, n):
        t = int(b.time[i])
        add(store.apply_bar(sym, t, b.open[i], b.open[i], b.open[i], b.open[i], 1.0))
        add(store.apply_bar(sym, t, b.open[i], b.high[i], b.low[i], b.close[i], 9.0))
    return out


@pytest.mark.parametrize("client", ["resp", "redis-py"])
async def test_a_deposed_workers_late_round_writes_nothing(
    cluster: ClusterFixture, client: str
) -> None:
    parts = 4
    cs = "FNC{=5m}"
    p = partition_of(cs, parts)
    entries = _entries(cs, 80)
    cfg = WorkerConfig(
        redis_url=cluster.url, partitions=parts, lease_ms=1000, history_bars=1000, quiet=True
    )
    r = AsyncCluster(startup_nodes=[AsyncNode(h, port) for h, port in cluster.startup_nodes])

    async def take(w: ComputeWorker) -> None:
        w.client = connect(cluster.url)
        w.writer = RespCluster(cluster.url) if client == "resp" else w.client
        got = await r.eval(
            ACQUIRE_FENCED_SCRIPT, 2, lease_key(p), partition_fence_key(p), w.id, 60_000
        )
        assert got
        w.tokens[p] = int(got)

    a, b = ComputeWorker(cfg), ComputeWorker(cfg)
    await take(a)
    await a.write(a.apply(p, entries[:60]), p)  # A's first round
    await a._commit(p, entries[59][0], [])
    late = a.apply(p, entries[60:70])  # computed; then A stalls past its lease ...
    await r.delete(lease_key(p))  # (its lease expired)
    await take(b)  # ... and B takes the partition (a newer token), rebuilds, writes on
    assert b.tokens[p] > a.tokens[p]
    await b.write(b.apply(p, entries), p)
    await b._commit(p, entries[-1][0], [])
    snap = await r.get("snapshot:FNC")
    assert snap is not None
    hist = await r.zrange("history:FNC", 0, -1, withscores=True)
    ckpt = await r.hgetall(ckpt_key(p))
    assert json.loads(snap)["last_candle"]["time"] == int(T0 + 79 * PERIOD_MS)

    with pytest.raises(LeaseLost):  # A wakes up: its late round is refused, whole
        await a.write(late, p)
    assert a.stats.stale_writes == 2  # the snapshot and the history: nothing written
    with pytest.raises(LeaseLost):
        await a._commit(p, entries[69][0], [])
    assert await r.get("snapshot:FNC") == snap
    assert await r.zrange("history:FNC", 0, -1, withscores=True) == hist
    assert await r.hgetall(ckpt_key(p)) == ckpt
    assert b.stats.stale_writes == 0

    # with B's token the same late round does land: the snapshot goes back to the older bar
    # A saw (so the checks above can fail)
    a.tokens[p] = b.tokens[p]
    a._lost.clear()
    await a.write(late, p)
    now = await r.get("snapshot:FNC")
    assert now is not None and json.loads(now)["last_candle"]["time"] < T0 + 79 * PERIOD_MS

    for w in (a, b):
        await w.client.aclose()
        if w.writer is not w.client:
            await w.writer.aclose()
    await r.aclose()
