"""Compute workers write the single worker's points too (``--telegraf``): every bar of every
symbol in InfluxDB 1.x (a real influxd), the candle fields bit-exact, acknowledged by the
database before the stream entries are (at least once)."""

from __future__ import annotations

import asyncio
import time
import uuid

import numpy as np
import pytest
from tests.integration.scaleout_helpers import adrained
from tests.servers import InfluxServer
from tests.servers import RedisCluster as ClusterFixture

from ttfast import CandleStore
from ttfast.sim import market
from ttfast.warm import Bars, snapshot_batch
from ttfast.worker import WorkerConfig
from ttfast.worker.scaleout import connect, encode_entry, partition_of, stream_key
from ttfast.worker.scaleout.compute import ComputeWorker

PERIOD_MS = 300_000
T0 = 1_767_225_600_000


@pytest.mark.timeout(120)
async def test_compute_worker_writes_every_bar_to_influx(
    cluster: ClusterFixture, influx_srv: InfluxServer
) -> None:
    db = "t" + uuid.uuid4().hex[:10]
    influx_srv.create_database(db)
    c = connect(cluster.url)
    parts = 4
    syms = ["PTA", "PTB", "PTC"]
    n, k = 80, 50  # n bars: a snapshot of k, then bar by bar
    series: dict[str, Bars] = {}
    store = CandleStore(1024)
    for sym in syms:
        cs = f"{sym}{{=5m}}"
        starts = np.arange(T0, T0 + n * PERIOD_MS, PERIOD_MS, dtype=np.int64)
        b = market.candle_bars(market.symbol_key(11, sym), PERIOD_MS, starts, T0 + n * PERIOD_MS)
        series[sym] = Bars(b.time, b.open, b.high, b.low, b.close, b.volume)
        head = Bars(b.time[:k], b.open[:k], b.high[:k], b.low[:k], b.close[:k], b.volume[:k])
        chs = [*store.apply(snapshot_batch(cs, head))]
        for i in range(k, n):
            bar = (b.open[i], b.high[i], b.low[i], b.close[i], b.volume[i])
            chs += store.apply_bar(cs, int(b.time[i]), *bar)
        for ch in chs:
            await c.xadd(stream_key(partition_of(cs, parts)), encode_entry(ch, epoch=1))
    cfg = WorkerConfig(
        redis_url=cluster.url,
        partitions=parts,
        quiet=True,
        telegraf_url=influx_srv.url,
        telegraf_db=db,
    )
    w = ComputeWorker(cfg)
    task = asyncio.create_task(w.run())

    deadline = time.monotonic() + 60
    while not await adrained(c, parts):
        assert time.monotonic() < deadline, w.status_line()
        await asyncio.sleep(0.1)
    # acknowledged entries: their points were acknowledged by influxd before
    for sym in syms:
        rows = influx_srv.query(db, f"SELECT * FROM candle WHERE symbol='{sym}'")
        assert len(rows) == n, sym
        b = series[sym]
        by_t = {r["time"]: r for r in rows}
        for i in range(n):
            r = by_t[int(b.time[i]) * 1_000_000]
            assert (r["open"], r["close"], r["volume"]) == (b.open[i], b.close[i], b.volume[i])
        ind = influx_srv.query(db, f"SELECT count(hma) FROM indicators WHERE symbol='{sym}'")
        assert ind and ind[0]["count"] > 0
    w.stop()
    assert await asyncio.wait_for(task, 30) == 0
    assert w.stats.points_late == 0 and w.stats.bad_rows == 0
    assert w.points.telegraf is not None and w.points.telegraf.stats.lines_dropped == 0
    await c.aclose()
