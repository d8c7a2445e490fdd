"""ttfast-worker end to end against real redis-server and influxd (sim and redis sources)."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
import redis.asyncio as aioredis
from tests.servers import InfluxServer, RedisServer

from ttfast._core.indicators import hma as batch_hma
from ttfast._core.indicators import macd as batch_macd
from ttfast.worker import Worker, WorkerConfig, main

SYMS = ["SPY", "QQQ", "AAPL"]


def _same(a: float | None, b: float) -> bool:
    return (a is None and math.isnan(b)) or a == b


async def _run(worker: Worker, seconds: float, during=None) -> None:
    task = asyncio.create_task(worker.run())
    if during is not None:
        await during()
    await asyncio.sleep(seconds)
    worker.stop()
    assert await asyncio.wait_for(task, 30) == 0


async def test_sim_end_to_end_redis_and_influx(
    redis_srv: RedisServer, influx_srv: InfluxServer
) -> None:
    db = "w" + uuid.uuid4().hex[:8]
    influx_srv.create_database(db)
    cfg = WorkerConfig(
        symbols=SYMS,
        period="5m",
        source="sim",
        redis_url=redis_srv.url,
        telegraf_url=influx_srv.url,
        telegraf_db=db,
        history_days=1.0,
        sim_speed=1200.0,
        quiet=True,
    )
    worker = Worker(cfg)
    reader = aioredis.Redis.from_url(redis_srv.url)
    ps = reader.pubsub()
    await ps.psubscribe("analytics:delta:*")
    deltas: list[dict] = []

    async def drain() -> None:
        while True:
            m = await ps.get_message(ignore_subscribe_messages=True, timeout=0.05)
            if m is not None:
                deltas.append(json.loads(m["data"]))

    drainer = asyncio.create_task(drain())
    await _run(worker, 4.0)
    await asyncio.sleep(0.3)
    drainer.cancel()
    assert worker.stats.finals > 0, "no bar closed during the run"
    for sym in SYMS:
        s = worker.store[f"{sym}{{=5m}}"]
        closes, times = np.asarray(s.close), np.asarray(s.time)
        m, sig, h = batch_macd(closes)
        hm = batch_hma(closes, 20)
        snap = json.loads(await reader.get(f"snapshot:{sym}"))
        assert snap["type"] == "snapshot" and snap["symbol"] == sym
        assert snap["period"] == "5m"  # the primary period keeps the documented names
        assert snap["bars"] == len(closes) > 200
        assert snap["last_candle"]["time"] == int(times[-1])
        assert snap["last_candle"]["close"] == closes[-1]
        assert _same(snap["macd"]["value"], m[-1]) and _same(snap["macd"]["signal"], sig[-1])
        assert _same(snap["macd"]["hist"], h[-1]) and _same(snap["hma"]["value"], hm[-1])
        assert snap["macd"]["color"] in ("#26a69a", "#b2dfdb", "#ffcdd2", "#ff5252")
        assert snap["hma"]["direction"] in ("up", "down")
        # every closed-bar delta equals the batch computation at that bar
        pos = {int(t): i for i, t in enumerate(times)}
        finals = [d for d in deltas if d["symbol"] == sym and d["final"]]
        assert finals, sym
        for d in finals:
            assert d["period"] == "5m"
            i = pos[d["candle"]["time"]]
            assert d["candle"]["close"] == closes[i]
            assert _same(d["macd"]["hist"], h[i]) and _same(d["hma"]["value"], hm[i])
        # influxd holds every stored bar with the final values
        rows = influx_srv.query(db, f"SELECT close FROM candle WHERE symbol='{sym}'")
        got = {r["time"] // 1_000_000: r["close"] for r in rows}
        assert got == {int(t): float(c) for t, c in zip(times, closes, strict=True)}
        irows = influx_srv.query(db, f"SELECT hist, hma FROM indicators WHERE symbol='{sym}'")
        ih = {r["time"] // 1_000_000: r for r in irows}
        for i in (-1, -2, -30, 40):
            r = ih[int(times[i])]
            assert _same(r["hist"], h[i]) and _same(r["hma"], hm[i])
    assert worker.redis is not None and worker.redis.stats.dropped == 0
    await ps.aclose()
    await reader.aclose()


async def test_redis_killed_and_restarted_mid_run(redis_srv: RedisServer) -> None:
    cfg = WorkerConfig(
        symbols=SYMS,
        source="sim",
        redis_url=redis_srv.url,
        history_days=0.5,
        sim_speed=1200.0,
        quiet=True,
        redis_backlog=50,
    )
    worker = Worker(cfg)

    async def outage() -> None:
        await asyncio.sleep(1.5)
        redis_srv.kill()
        await asyncio.sleep(1.5)
        redis_srv.start()
        await asyncio.sleep(0.1)
        await reader_ready()

    async def reader_ready() -> None:
        r = aioredis.Redis.from_url(redis_srv.url)
        await r.ping()
        await r.aclose()

    await _run(worker, 2.0, outage)
    st = worker.redis.stats if worker.redis else None
    assert st is not None
    assert st.failures >= 1 and st.reconnects >= 1
    assert st.dropped > 0  # the 50-deep backlog overflowed while Redis was down
    assert st.enqueued == st.published + st.dropped  # nothing unaccounted for
    reader = aioredis.Redis.from_url(redis_srv.url)
    for sym in SYMS:  # the restarted (empty) Redis got fresh snapshots: the worker resumed
        snap = json.loads(await reader.get(f"snapshot:{sym}"))
        s = worker.store[f"{sym}{{=5m}}"]
        assert snap["last_candle"]["time"] == int(np.asarray(s.time)[-1])
    await reader.aclose()


async def test_redis_source_counts_and_skips_malformed(redis_srv: RedisServer) -> None:
    cfg = WorkerConfig(symbols=[], source="redis", redis_url=redis_srv.url, quiet=True)
    worker = Worker(cfg)
    pub = aioredis.Redis.from_url(redis_srv.url)
    t0 = 1_700_000_000_000
    rng = np.random.default_rng(3)
    closes = np.round(100 + np.cumsum(rng.normal(0, 0.3, 80)), 2)

    async def feed() -> None:
        await asyncio.sleep(0.5)  # let the source subscribe
        bad = [
            b"not json",
            b'{"time": "x", "close": 1}',
            b'{"close": 1.0}',
            b"[1,2]",
            b'{"time": 1, "close": "NaN?"}',
        ]
        for i, c in enumerate(closes):
            msg = {
                "time": t0 + i * 60_000,
                "open": c,
                "high": c + 1,
                "low": c - 1,
                "close": c,
                "volume": 10.0,
            }
            await pub.publish("market:CandleEvent:ABC", json.dumps(msg))
            if i % 16 == 0:
                await pub.publish("market:CandleEvent:ABC", bad[(i // 16) % len(bad)])
        await asyncio.sleep(0.5)

    await _run(worker, 0.1, feed)
    assert worker.stats.malformed == 5
    snap = json.loads(await pub.get("snapshot:ABC"))
    _m, _s, h = batch_macd(closes)
    assert snap["bars"] == 80 and snap["last_candle"]["close"] == closes[-1]
    assert _same(snap["macd"]["hist"], h[-1])
    assert _same(snap["hma"]["value"], batch_hma(closes, 20)[-1])
    # raw candles are not re-published when they came from Redis
    assert worker.pipeline.publish_raw is False
    await pub.aclose()


def test_cli_sim_offline_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "--duration",
                "2",
                "--symbols",
                "SPY",
                "--status-interval",
                "0.5",
                "--sim-speed",
                "600",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "events" in err and "rows" in err


async def test_dxlink_source_through_local_rest_and_dxlink_servers(
    redis_srv: RedisServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """--source dxlink: OAuth from env -> /api-quote-tokens -> streamer, all against local
    servers; secrets never reach the log."""
    from ttfast.sim import DxLinkServer, RestSimServer, SimClock

    dx = DxLinkServer(seed=3, clock=SimClock(time_scale=1200.0), default_aggregation=0.1)
    dx_url = await dx.start()
    rest = RestSimServer(dx_url)
    base = await rest.start()
    monkeypatch.setenv("TASTYTRADE_CLIENT_SECRET", "cs-SECRET-0123")
    monkeypatch.setenv("TASTYTRADE_REFRESH_TOKEN", "rt-SECRET-4567")
    monkeypatch.setenv("TASTYTRADE_BASE_URL", base)
    caplog.set_level("DEBUG")
    cfg = WorkerConfig(
        symbols=["SPY"], source="dxlink", redis_url=redis_srv.url, history_days=0.5, quiet=True
    )
    worker = Worker(cfg)
    try:
        await _run(worker, 2.5)
    finally:
        await rest.stop()
        await dx.stop()
    reader = aioredis.Redis.from_url(redis_srv.url)
    snap = json.loads(await reader.get("snapshot:SPY"))
    await reader.aclose()
    closes = np.asarray(worker.store["SPY{=5m}"].close)
    assert snap["bars"] == len(closes) > 50
    assert _same(snap["macd"]["hist"], batch_macd(closes)[2][-1])
    for secret in ("cs-SECRET-0123", "rt-SECRET-4567", rest.state.quote_token):
        assert secret not in caplog.text


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_flushes_and_exits_zero(redis_srv: RedisServer, sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ttfast.worker",
            "--symbols",
            "SPY,QQQ",
            "--redis",
            redis_srv.url,
            "--sim-speed",
            "600",
            "--status-interval",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        import redis as sync_redis

        r = sync_redis.Redis.from_url(redis_srv.url)
        while r.get("snapshot:QQQ") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    assert "redis up" in err or "redis DOWN" in err  # final status line printed
    snap = json.loads(r.get("snapshot:SPY"))
    assert snap["type"] == "snapshot" and snap["bars"] > 0
    r.close()
