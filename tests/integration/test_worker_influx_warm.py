"""Warm start (``ttfast-worker --warm-from influx|redis``): the newest stored bars seed the
store and the indicators, and dxLink is asked only from the newest stored bar on (real influxd,
real redis-server, local dxLink server)."""

from __future__ import annotations

import asyncio
import json
import math
import uuid

import numpy as np
import pytest
import redis.asyncio as aioredis
from tests.servers import InfluxServer, RedisServer

from ttfast._core.indicators import hma as batch_hma
from ttfast._core.indicators import macd as batch_macd
from ttfast.backfill import backfill
from ttfast.sim import DxLinkServer, SimClock
from ttfast.sinks.telegraf import TelegrafSink
from ttfast.symbols import build_candle_symbol
from ttfast.worker import Worker, WorkerConfig
from ttfast.worker.config import parse_args
from ttfast.worker.sources import make_streamer

SYMS = ["SPY", "QQQ"]
H = 3_600_000


def _provider(url: str):  # type: ignore[no-untyped-def]
    async def provider() -> tuple[str, str]:
        return url, "sim-token"

    return provider


async def test_warm_start_seeds_then_asks_only_for_what_is_missing(
    influx_srv: InfluxServer, caplog: pytest.LogCaptureFixture
) -> None:
    db = "warm" + uuid.uuid4().hex[:8]
    influx_srv.create_database(db)
    dx = DxLinkServer(seed=7, clock=SimClock(), max_snapshot_rows=100_000)
    url = await dx.start()
    try:
        now = dx.clock.now_ms()
        # stored history: 300 closed 1h bars per symbol, ending 5 bars before now
        start, stop = now - 305 * H, now - 6 * H
        res = await backfill(
            SYMS,
            "1h",
            start,
            stop,
            sink=TelegrafSink(influx_srv.url, database=db),
            reader=None,
            dxlink_url=url,
            token_provider=_provider(url),
        )
        assert res.ok
        stored_last = {s.symbol: s.last_ms for s in res.symbols}

        cfg = WorkerConfig(
            symbols=SYMS,
            period="1h",
            source="sim",
            telegraf_url=influx_srv.url,
            telegraf_db=db,
            warm_from="influx",
            warm_bars=200,
            quiet=True,
            print_table=True,  # keeps w.latest: the newest indicator row per symbol
        )
        w = Worker(cfg)
        assert await w.warm_start() == 2
        for sym in SYMS:
            s = w.store[build_candle_symbol(sym, "1h")]
            assert len(s) == 200 and s.ready
            assert int(s.time[-1]) == stored_last[sym] == w.warm_start_ms[sym]
        assert w.pipeline.symbol_count == 2  # indicators are warm before any live bar

        streamer = make_streamer(w, url, _provider(url))
        await streamer.open()
        try:
            w.subscribe_candles(streamer, now - 2 * 86_400_000)
            for _ in range(500):
                if all(len(w.store[build_candle_symbol(s, "1h")]) >= 205 for s in SYMS):
                    break
                await asyncio.sleep(0.02)
        finally:
            await streamer.close()
        # dxLink was asked only from the newest stored bar on
        subs = [m for _, m in dx.received if m.get("type") == "FEED_SUBSCRIPTION" and m.get("add")]
        from_times = {a["symbol"]: a["fromTime"] for m in subs for a in m["add"]}
        assert from_times == {build_candle_symbol(s, "1h"): stored_last[s] for s in SYMS}
        for sym in SYMS:
            s = w.store[build_candle_symbol(sym, "1h")]
            t = np.asarray(s.time)
            # the seeded bars stayed, the missing ones were merged in after them
            assert int(t[0]) == stored_last[sym] - 199 * H and len(t) >= 205
            assert np.all(np.diff(t) == H)
            # the live rows' indicators equal the batch computation over seeded + merged bars
            _, _, hist = batch_macd(np.asarray(s.close))
            hma = batch_hma(np.asarray(s.close), 20)
            t_l, _, hist_l, _, hma_l, _ = w.latest[sym]
            i = int(np.searchsorted(t, t_l))
            assert t_l > stored_last[sym] and not math.isnan(hist_l)
            assert (hist_l, hma_l) == (hist[i], hma[i])
    finally:
        await dx.stop()


async def test_warm_start_without_a_readable_database_starts_cold(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg = WorkerConfig(
        symbols=SYMS,
        telegraf_url="http://127.0.0.1:9",
        warm_from="influx",
        quiet=True,
    )
    w = Worker(cfg)
    assert await w.warm_start() == 0
    assert "starting cold" in caplog.text and len(w.store) == 0


def test_warm_flags() -> None:
    cfg = parse_args(["--telegraf", "http://h:1", "--warm-from", "influx", "--warm-bars", "50"])
    assert cfg.warm_from == "influx" and cfg.warm_bars == 50
    with pytest.raises(SystemExit):
        parse_args(["--warm-from", "influx"])  # nothing to read from


async def test_warm_start_from_the_redis_history(redis_srv: RedisServer) -> None:
    """A worker with --redis keeps closed bars in history:<name>; a restarted worker seeds
    from them."""
    first = Worker(
        WorkerConfig(
            symbols=SYMS,
            period="5m",
            source="sim",
            redis_url=redis_srv.url,
            history_days=1.0,
            history_bars=100,
            sim_speed=1200.0,
            quiet=True,
        )
    )
    task = asyncio.create_task(first.run())
    r = aioredis.Redis.from_url(redis_srv.url)
    try:
        for _ in range(500):
            counts = [await r.zcard(f"history:{s}") for s in SYMS]
            if min(counts) >= 100:
                break
            await asyncio.sleep(0.02)
        first.stop()
        assert await asyncio.wait_for(task, 30) == 0
        stored = {}
        for sym in SYMS:
            stored[sym] = [json.loads(m) for m in await r.zrange(f"history:{sym}", 0, -1)]
    finally:
        await r.aclose()
    w = Worker(
        WorkerConfig(
            symbols=SYMS,
            period="5m",
            redis_url=redis_srv.url,
            warm_from="redis",
            warm_bars=60,
            quiet=True,
        )
    )
    assert await w.warm_start() == 2
    for sym in SYMS:
        s = w.store[build_candle_symbol(sym, "5m")]
        bars = stored[sym][-60:]
        assert [int(t) for t in s.time] == [b["time"] for b in bars]
        assert [float(c) for c in s.close] == [b["close"] for b in bars]
        assert w.warm_start_ms[sym] == bars[-1]["time"]
    assert w.pipeline.symbol_count == 2


def test_warm_from_redis_needs_redis() -> None:
    assert parse_args(["--redis", "redis://h:1/0", "--warm-from", "redis"]).warm_from == "redis"
    with pytest.raises(SystemExit):
        parse_args(["--warm-from", "redis"])
