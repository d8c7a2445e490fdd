"""Issue 13 #10: two candle periods of one symbol never overwrite each other.

The worker's primary period (``--period``) keeps the documented names (``snapshot:SPY``,
``analytics:delta:SPY``); any other period is named by its full dxFeed candle symbol
(``snapshot:SPY{=1h}``, ``analytics:delta:SPY{=1h}``). Every snapshot/delta payload carries
``"period"``; InfluxDB points are tagged ``symbol=SPY`` plus ``period=5m`` / ``period=1h``.
Real redis-server and influxd, candles in through the Redis source.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from tests.servers import InfluxServer, RedisServer

from ttfast._core.indicators import hma as batch_hma
from ttfast._core.indicators import macd as batch_macd
from ttfast.worker import Worker, WorkerConfig

T0 = 1_700_006_400_000 - 1_700_006_400_000 % 3_600_000
P5, P60 = 300_000, 3_600_000
N = 50


def _same(a: float | None, b: float) -> bool:
    return (a is None and math.isnan(b)) or a == b


def _candle(sym: str, t: int, c: float) -> bytes:
    return json.dumps(
        {
            "eventType": "Candle",
            "eventSymbol": sym,
            "time": t,
            "open": c,
            "high": c + 0.5,
            "low": c - 0.5,
            "close": c,
            "volume": 7.0,
        }
    ).encode()


async def test_two_periods_of_one_symbol_through_the_redis_source(
    redis_srv: RedisServer, influx_srv: InfluxServer
) -> None:
    db = "p" + uuid.uuid4().hex[:8]
    influx_srv.create_database(db)
    cfg = WorkerConfig(
        symbols=[],
        period="5m",
        source="redis",
        redis_url=redis_srv.url,
        telegraf_url=influx_srv.url,
        telegraf_db=db,
        quiet=True,
    )
    worker = Worker(cfg)
    rng = np.random.default_rng(11)
    c5 = np.round(100 + np.cumsum(rng.normal(0, 0.2, N)), 2)
    c60 = np.round(300 + np.cumsum(rng.normal(0, 1.0, N)), 2)
    t5 = [T0 + i * P5 for i in range(N)]
    t60 = [T0 + i * P60 for i in range(N)]
    reader = aioredis.Redis.from_url(redis_srv.url)
    ps = reader.pubsub()
    await ps.psubscribe("analytics:delta:*")
    deltas: list[tuple[str, dict[str, Any]]] = []

    async def drain() -> None:
        while True:
            m = await ps.get_message(ignore_subscribe_messages=True, timeout=0.05)
            if m is not None:
                deltas.append((m["channel"].decode(), json.loads(m["data"])))

    async def feed() -> None:
        await asyncio.sleep(0.5)
        for i in range(N):  # interleaved, as two subscribers of one feed would publish them
            await reader.publish("market:CandleEvent:SPY", _candle("SPY{=5m}", t5[i], c5[i]))
            await reader.publish("market:CandleEvent:SPY{=1h}", _candle("SPY{=1h}", t60[i], c60[i]))

    drainer = asyncio.create_task(drain())
    task = asyncio.create_task(worker.run())
    await feed()
    await asyncio.sleep(0.5)
    worker.stop()
    assert await asyncio.wait_for(task, 30) == 0
    drainer.cancel()

    assert sorted(worker.pipeline.symbols) == ["SPY", "SPY{=1h}"]
    assert sorted(await reader.keys("*")) == [b"snapshot:SPY", b"snapshot:SPY{=1h}"]
    for key, closes, times, period in (
        ("SPY", c5, t5, "5m"),
        ("SPY{=1h}", c60, t60, "1h"),
    ):
        snap = json.loads(await reader.get(f"snapshot:{key}"))
        assert snap["type"] == "snapshot" and snap["symbol"] == "SPY"
        assert snap["period"] == period
        assert snap["bars"] == N
        assert snap["last_candle"]["time"] == times[-1]
        assert snap["last_candle"]["close"] == closes[-1]
        _m, _s, h = batch_macd(closes)
        assert _same(snap["macd"]["hist"], h[-1])
        assert _same(snap["hma"]["value"], batch_hma(closes, 20)[-1])
        mine = [d for ch, d in deltas if ch == f"analytics:delta:{key}"]
        assert len(mine) >= N  # one forming-bar delta per bar, and the finals
        pos = {t: i for i, t in enumerate(times)}
        for d in mine:
            assert d["symbol"] == "SPY" and d["period"] == period
            i = pos[d["candle"]["time"]]  # a bar of this period, never of the other
            assert d["candle"]["close"] == closes[i]
            if d["final"]:
                assert _same(d["macd"]["hist"], h[i])
        rows = influx_srv.query(
            db, f"SELECT close FROM candle WHERE symbol='SPY' AND period='{period}'"
        )
        assert {r["time"] // 1_000_000: r["close"] for r in rows} == {
            t: float(c) for t, c in zip(times, closes, strict=True)
        }
        irows = influx_srv.query(
            db, f"SELECT hist FROM indicators WHERE symbol='SPY' AND period='{period}'"
        )
        ih = {r["time"] // 1_000_000: r["hist"] for r in irows}
        assert _same(ih[times[-2]], h[-2])
    # no third series: every point is tagged with one of the two periods
    tags = influx_srv.query(db, 'SHOW TAG VALUES FROM candle WITH KEY = "period"')
    assert sorted(r["value"] for r in tags) == ["1h", "5m"]
    await ps.aclose()
    await reader.aclose()


async def test_primary_period_spelled_differently_is_still_primary(
    redis_srv: RedisServer,
) -> None:
    """`--period 1h` and dxFeed's normalized `SPY{=h}` are the same (primary) period."""
    cfg = WorkerConfig(symbols=[], period="1h", source="redis", redis_url=redis_srv.url, quiet=True)
    worker = Worker(cfg)
    reader = aioredis.Redis.from_url(redis_srv.url)

    async def feed() -> None:
        await asyncio.sleep(0.5)
        for i in range(3):
            await reader.publish("market:CandleEvent:QQQ", _candle("QQQ{=h}", T0 + i * P60, 5.0))
            await reader.publish("market:CandleEvent:QQQ", _candle("QQQ{=5m}", T0 + i * P5, 6.0))

    task = asyncio.create_task(worker.run())
    await feed()
    await asyncio.sleep(0.4)
    worker.stop()
    assert await asyncio.wait_for(task, 30) == 0
    snap = json.loads(await reader.get("snapshot:QQQ"))
    assert snap["period"] == "1h" and snap["last_candle"]["close"] == 5.0
    snap5 = json.loads(await reader.get("snapshot:QQQ{=5m}"))
    assert snap5["period"] == "5m" and snap5["last_candle"]["close"] == 6.0
    await reader.aclose()
