"""TelegrafSink against a real influxd 1.6.7 (HTTP /write, gzip, UDP), points read back."""

from __future__ import annotations

import asyncio
import math
import time
import uuid

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.servers import InfluxServer, free_port

from ttfast.sinks.telegraf import TelegrafSink


def _rows(n: int, seed: int = 1) -> tuple:
    rng = np.random.default_rng(seed)
    t = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 300_000
    close = np.round(100 + np.cumsum(rng.normal(0, 0.5, n)), 2)
    candle = [close - 0.1, close + 0.5, close - 0.5, close, np.round(rng.uniform(0, 1e6, n))]
    macd = rng.normal(0, 1, n)
    macd[:5] = math.nan  # warm-up: not ready
    ind = [macd, macd * 0.5, macd * 0.5, close + 0.01]
    return t, candle, ind


def _db(influx: InfluxServer) -> str:
    name = "t" + uuid.uuid4().hex[:10]
    influx.create_database(name)
    return name


@pytest.mark.parametrize("gzip", [False, True])
async def test_http_points_read_back(influx_srv: InfluxServer, gzip: bool) -> None:
    db = _db(influx_srv)
    sink = TelegrafSink(influx_srv.url, database=db, period="5m", gzip=gzip, batch_bytes=4096)
    await sink.start()
    t, candle, ind = _rows(300)
    syms = ["SPY" if i % 2 else "Q Q,=x" for i in range(300)]  # escaping on the wire
    sink.write_rows(syms, t, candle, ind)
    assert await sink.flush(10.0)
    await sink.close()
    assert sink.stats.lines_sent == 600 - 5 + 5  # 5 indicator rows keep only `hma`
    assert sink.stats.fields_omitted == 5 * 3
    assert sink.stats.batches_sent > 1  # split by batch_bytes
    rows = influx_srv.query(db, 'SELECT * FROM "candle" GROUP BY *')
    assert len(rows) == 300
    by_t = {(r["symbol"], r["time"]): r for r in rows}
    for i in (0, 1, 150, 299):
        r = by_t[(syms[i], int(t[i]) * 1_000_000)]
        assert r["period"] == "5m"
        for k, f in enumerate(("open", "high", "low", "close", "volume")):
            assert r[f] == float(candle[k][i])  # bit-exact through the text encoding
    ind_rows = influx_srv.query(db, 'SELECT * FROM "indicators" GROUP BY *')
    assert len(ind_rows) == 300
    first = min(ind_rows, key=lambda r: r["time"])
    assert first["macd"] is None and first["hma"] == float(ind[3][0])


async def test_udp_points_read_back(influx_srv: InfluxServer) -> None:
    sink = TelegrafSink(
        f"udp://127.0.0.1:{influx_srv.udp_port}", period="1m", udp_payload=1024, flush_interval=0.01
    )
    await sink.start()
    t, candle, ind = _rows(200, seed=2)
    sym = "U" + uuid.uuid4().hex[:6]
    sink.write_rows(sym, t, candle, ind)
    assert await sink.flush(5.0)
    await sink.close()
    deadline = time.monotonic() + 10
    while True:
        rows = influx_srv.query("udp", f"SELECT close FROM candle WHERE symbol='{sym}'")
        if len(rows) == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert len(rows) == 200
    assert sorted(r["close"] for r in rows) == sorted(float(x) for x in candle[3])


async def test_4xx_is_logged_dropped_and_counted(
    influx_srv: InfluxServer, caplog: pytest.LogCaptureFixture
) -> None:
    sink = TelegrafSink(influx_srv.url, database="no_such_db_" + uuid.uuid4().hex[:6])
    await sink.start()
    t, candle, ind = _rows(10)
    sink.write_rows("SPY", t, candle, ind)
    assert await sink.flush(5.0)
    db = _db(influx_srv)
    bad = TelegrafSink(influx_srv.url, database=db)
    await bad.start()
    bad.write_lines(b"candle,symbol=SPY close=1.0 1\ncandle,symbol=SPY close=2i 2\n", 2)
    assert await bad.flush(5.0)
    await sink.close()
    await bad.close()
    assert sink.stats.lines_rejected == 20 and sink.stats.lines_sent == 0
    assert "database not found" in caplog.text  # the server's own message is logged
    assert bad.stats.lines_rejected == 2
    assert "field type conflict" in caplog.text


async def test_connection_errors_retry_then_drop_at_close() -> None:
    sink = TelegrafSink(
        f"http://127.0.0.1:{free_port()}",
        backoff_initial=0.01,
        backoff_max=0.02,
        flush_interval=0.0,
    )
    await sink.start()
    t, candle, ind = _rows(4)
    sink.write_rows("SPY", t, candle, ind)
    await asyncio.sleep(0.2)
    assert sink.stats.retries >= 2
    await sink.close(timeout=0.1)
    assert sink.stats.lines_dropped == 8 and sink.stats.lines_sent == 0


async def test_bounded_buffer_drops_oldest() -> None:
    sink = TelegrafSink("http://127.0.0.1:9", max_buffer_bytes=1000)
    for i in range(100):
        sink.write_lines(b"m x=%d.0 %d\n" % (i, i), 1)
    assert sink.stats.buffered_bytes <= 1000
    assert sink.stats.lines_dropped == 100 - sink.backlog_lines > 0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=20))
def test_any_finite_float_roundtrips_through_influxd(
    influx_srv: InfluxServer, xs: list[float]
) -> None:
    async def go() -> str:
        db = _db(influx_srv)
        sink = TelegrafSink(influx_srv.url, database=db)
        await sink.start()
        a = np.array(xs)
        t = np.arange(len(xs), dtype=np.int64)
        sink.write_rows("X", t, [a] * 5, [a] * 4)
        assert await sink.flush(5.0)
        await sink.close()
        return db

    db = asyncio.run(go())
    rows = influx_srv.query(db, "SELECT close, hma FROM candle, indicators")
    got = sorted((r["time"], r["close"] if r["close"] is not None else r["hma"]) for r in rows)
    want = sorted([(i * 1_000_000, x) for i, x in enumerate(xs)] * 2)
    assert [(a, float(b)) for a, b in got] == [(a, float(b)) for a, b in want]
