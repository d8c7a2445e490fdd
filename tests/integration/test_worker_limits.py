"""Issue 13 #9: a bounded number of symbols in the worker (real redis-server).

`--max-symbols` bounds everything the worker keeps per symbol (store series, pipeline state,
Redis keys); new symbols beyond it are refused and counted, with a rate-limited log line.
`--idle-discard SECONDS` frees the store and pipeline state of symbols without a message for
that long (their Redis snapshot stays).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
import redis.asyncio as aioredis
from tests.servers import RedisServer

from ttfast.worker import Worker, WorkerConfig

T0 = 1_700_000_100_000 - 1_700_000_100_000 % 300_000
P5 = 300_000


async def _run(worker: Worker, feed: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(worker.run())
    await feed()
    await asyncio.sleep(0.3)
    worker.stop()
    assert await asyncio.wait_for(task, 30) == 0


def _msg(t: int, c: float) -> bytes:
    return json.dumps({"time": t, "open": c, "high": c, "low": c, "close": c, "volume": 1}).encode()


async def _publish(pub: aioredis.Redis, names: list[str], bars: int) -> None:
    p = pub.pipeline(transaction=False)
    for b in range(bars):
        for k, name in enumerate(names):
            p.publish(f"market:CandleEvent:{name}", _msg(T0 + b * P5, 100.0 + k + b))
    await p.execute()


async def test_max_symbols_refuses_new_symbols(
    redis_srv: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = WorkerConfig(
        symbols=[], source="redis", redis_url=redis_srv.url, quiet=True, max_symbols=20
    )
    worker = Worker(cfg)
    pub = aioredis.Redis.from_url(redis_srv.url)
    names = [f"S{k:03d}" for k in range(60)]

    async def feed() -> None:
        await asyncio.sleep(0.5)
        await _publish(pub, names, 3)

    caplog.set_level(logging.WARNING, "ttfast.worker")
    await _run(worker, feed)
    first = names[:20]
    assert sorted(worker.store.symbols()) == [f"{n}{{=5m}}" for n in first]
    assert sorted(worker.pipeline.symbols) == first
    assert sorted(await pub.keys("*")) == sorted(f"snapshot:{n}".encode() for n in first)
    assert worker.stats.symbols_refused == 40 * 3  # counted per refused message
    st = worker.store.stats()
    assert st.get("symbols_refused", 0) == 0  # refused at the edge, before the store
    for n in first:
        assert json.loads(await pub.get(f"snapshot:{n}"))["bars"] == 3
    lines = [r.getMessage() for r in caplog.records if "symbol limit" in r.getMessage()]
    assert len(lines) == 1, lines  # rate-limited
    assert "--max-symbols 20" in lines[0] and "S020" in lines[0]
    assert "refused 120" in worker.status_line()
    await pub.aclose()


async def test_idle_symbols_are_discarded_and_free_their_slot(redis_srv: RedisServer) -> None:
    cfg = WorkerConfig(
        symbols=[],
        source="redis",
        redis_url=redis_srv.url,
        quiet=True,
        max_symbols=5,
        idle_discard=0.4,
    )
    worker = Worker(cfg)
    pub = aioredis.Redis.from_url(redis_srv.url)
    old = [f"A{k}" for k in range(5)]
    new = [f"B{k}" for k in range(5)]
    seen: dict[str, int] = {}

    async def feed() -> None:
        await asyncio.sleep(0.5)
        await _publish(pub, old, 2)
        await asyncio.sleep(0.2)
        seen["during"] = len(worker.store)
        await asyncio.sleep(1.2)  # > idle_discard + one sweep
        seen["after_idle"] = len(worker.store)
        await _publish(pub, new, 2)

    await _run(worker, feed)
    assert seen == {"during": 5, "after_idle": 0}
    assert worker.stats.symbols_discarded == 5
    assert worker.stats.symbols_refused == 0
    assert sorted(worker.store.symbols()) == [f"{n}{{=5m}}" for n in new]
    assert sorted(worker.pipeline.symbols) == new
    for n in old + new:  # discarding never deletes the Redis snapshot
        assert json.loads(await pub.get(f"snapshot:{n}"))["bars"] == 2
    assert "discarded 5" in worker.status_line()
    await pub.aclose()


def _rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096


def test_100k_distinct_symbols_stay_bounded() -> None:
    """The issue's storm: 100k distinct symbols. Only --max-symbols of them are kept."""
    cfg = WorkerConfig(symbols=[], source="redis", redis_url=None, quiet=True, max_symbols=1000)
    worker = Worker(cfg)
    before = _rss()
    payload = _msg(T0, 1.0)
    for start in range(0, 100_000, 4096):
        worker.ingest_raw(
            [
                {"channel": f"market:CandleEvent:Z{k}".encode(), "data": payload}
                for k in range(start, min(start + 4096, 100_000))
            ]
        )
    assert len(worker.store) == 1000
    assert len(worker.pipeline.symbols) == 1000
    assert worker.stats.symbols_refused == 99_000
    assert worker.stats.events == 1000
    grown = _rss() - before
    assert grown < 60 * 2**20, f"RSS grew {grown / 2**20:.0f} MB"  # was +434 MB unbounded
    assert np.asarray(worker.store["Z999{=5m}"].close).tolist() == [1.0]
