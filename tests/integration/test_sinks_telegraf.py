"""TelegrafSink against a real influxd 1.6.7 (HTTP /write, gzip, UDP), points read back."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.servers import InfluxAuthServer, InfluxServer, free_port, influx_auth_server

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
    sink = TelegrafSink(
        influx_srv.url, database="no_such_db_" + uuid.uuid4().hex[:6], create_database=False
    )
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


async def _wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def test_small_writes_are_sent_on_the_flush_timer(influx_srv: InfluxServer) -> None:
    """Issue 13 #1: a line is sent within flush_interval even after the buffer has emptied."""
    db = _db(influx_srv)
    sink = TelegrafSink(influx_srv.url, database=db, flush_interval=0.2)
    await sink.start()
    t0 = 1_700_000_000_000_000_000
    for i in range(3):
        sink.write_lines(b"tick,symbol=SPY v=%di %d\n" % (i, t0 + i), 1)
        await _wait_for(lambda i=i: sink.stats.lines_sent == i + 1)  # no flush(): the timer
        assert sink.stats.lines_sent == i + 1, f"line {i} not sent on the timer"
        assert sink.backlog_lines == 0
        await asyncio.sleep(0.3)  # an idle period with an empty buffer before the next line
    rows = influx_srv.query(db, "SELECT v FROM tick")
    assert [r["v"] for r in rows] == [0, 1, 2]
    await sink.close()


@pytest.mark.parametrize("form", ["database", "url"])
async def test_missing_database_is_created(
    influx_srv: InfluxServer, caplog: pytest.LogCaptureFixture, form: str
) -> None:
    """Issue 13 #14: against InfluxDB 1.x, a database that does not exist is created."""
    caplog.set_level("INFO", logger="ttfast.sinks.telegraf")
    name = "new_" + uuid.uuid4().hex[:8]
    if form == "url":
        sink = TelegrafSink(f"{influx_srv.url}/write?db={name}", database="ignored")
    else:
        sink = TelegrafSink(influx_srv.url, database=name)
    await sink.start()
    t, candle, ind = _rows(10)
    sink.write_rows("SPY", t, candle, ind)
    assert await sink.flush(10.0)
    await sink.close()
    assert sink.stats.lines_rejected == 0 and sink.stats.lines_sent == 20
    assert len(influx_srv.query(name, "SELECT close FROM candle")) == 10
    assert f'database "{name}" ready' in caplog.text


async def _peer(routes: dict[str, web.Response | None]) -> tuple[web.AppRunner, str, list[str]]:
    """A loopback HTTP peer answering `routes` (path -> response; None -> 404), logging paths."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        seen.append(request.path)
        resp = routes.get(request.path)
        if resp is None:
            return web.Response(status=404, text="404 page not found")
        return web.Response(status=resp.status, text=resp.text, headers=resp.headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}", seen


async def test_no_query_endpoint_hints_when_database_not_found(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A listener with /write but no /query: nothing to create; a rejection gets a clear hint."""
    not_found = web.Response(status=404, text='{"error":"database not found: \\"hist\\""}')
    runner, url, seen = await _peer({"/write": not_found})
    sink = TelegrafSink(url, database="hist")
    await sink.start()
    sink.write_lines(b"m v=1 1\nm v=2 2\n", 2)
    sink.write_lines(b"m v=3 3\n", 1)
    assert await sink.flush(5.0)
    await sink.close()
    await runner.cleanup()
    assert "/query" in seen and "/write" in seen
    assert sink.stats.lines_rejected == 3 and sink.stats.lines_sent == 0
    hints = [r for r in caplog.records if "does not exist" in r.getMessage()]
    assert len(hints) == 1  # once, not per batch
    assert "hist" in hints[0].getMessage() and "CREATE DATABASE" in hints[0].getMessage()


async def test_telegraf_listener_query_stub_is_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Telegraf's influxdb_listener answers any /query with {"results":[]}; writes go through."""
    ok = web.Response(status=200, text='{"results":[]}', content_type="application/json")
    runner, url, seen = await _peer({"/query": ok, "/write": web.Response(status=204)})
    sink = TelegrafSink(url, database="anything")
    await sink.start()
    sink.write_lines(b"m v=1 1\n", 1)
    assert await sink.flush(5.0)
    await sink.close()
    await runner.cleanup()
    assert seen == ["/query", "/write"]
    assert sink.stats.lines_sent == 1
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


@pytest.fixture(scope="module")
def influx_auth() -> Iterator[InfluxAuthServer]:
    with influx_auth_server() as srv:
        yield srv


@pytest.mark.parametrize("creds", ["basic", "params"])
async def test_missing_database_created_with_admin_credentials(
    influx_auth: InfluxAuthServer, caplog: pytest.LogCaptureFixture, creds: str
) -> None:
    name = "adm_" + uuid.uuid4().hex[:8]
    a, pw = influx_auth.admin, influx_auth.admin_password
    port = influx_auth.http_port
    url = (
        f"http://{a}:{pw}@127.0.0.1:{port}"
        if creds == "basic"
        else f"http://127.0.0.1:{port}/write?u={a}&p={pw}"
    )
    sink = TelegrafSink(url, database=name)
    await sink.start()
    sink.write_lines(b"m,symbol=SPY v=1 1\n", 1)
    assert await sink.flush(10.0)
    await sink.close()
    assert sink.stats.lines_sent == 1
    assert name in influx_auth.database_names()
    assert pw not in caplog.text and pw not in repr(sink)


async def test_database_creation_refused_is_a_clear_error(
    influx_auth: InfluxAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A write-only user cannot create the database: say so once, at start, without secrets."""
    name = "nope_" + uuid.uuid4().hex[:8]
    influx_auth.create_user("writer_" + name, "w-s3cret-pw")
    url = f"http://writer_{name}:w-s3cret-pw@127.0.0.1:{influx_auth.http_port}"
    sink = TelegrafSink(url, database=name)
    await sink.start()
    sink.write_lines(b"m v=1 1\n", 1)
    assert await sink.flush(10.0)
    await sink.close()
    assert sink.stats.lines_rejected == 1 and sink.stats.lines_sent == 0
    assert name not in influx_auth.database_names()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(f'cannot create database "{name}"' in m for m in errors), errors
    assert "w-s3cret-pw" not in caplog.text


async def test_write_only_user_on_existing_database_is_fine(
    influx_auth: InfluxAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    """CREATE DATABASE needs admin; a writer's refusal is not an error when the db exists."""
    name = "has_" + uuid.uuid4().hex[:8]
    influx_auth.create_database(name)
    influx_auth.create_user("w_" + name, "w-pw-2", write_on=name)
    sink = TelegrafSink(
        f"http://127.0.0.1:{influx_auth.http_port}/write?u=w_{name}&p=w-pw-2", database=name
    )
    await sink.start()
    sink.write_lines(b"m v=1 1\n", 1)
    assert await sink.flush(10.0)
    await sink.close()
    assert sink.stats.lines_sent == 1
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
    assert "w-pw-2" not in caplog.text


async def test_redirect_is_not_followed_and_rejects_the_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 307 on /write would re-POST the batch (and any credentials) to Location: exactly one
    POST arrives, nothing reaches the target, the batch counts as rejected with a clear log."""
    moved = web.Response(status=307, headers={"Location": "/moved?p=s3cret"})
    runner, url, seen = await _peer({"/write": moved, "/moved": web.Response(status=204)})
    sink = TelegrafSink(url, database="d", create_database=False, flush_interval=0.0)
    await sink.start()
    sink.write_lines(b"m v=1 1\nm v=2 2\n", 2)
    assert await sink.flush(5.0)
    await sink.close()
    await runner.cleanup()
    assert seen == ["/write"]
    s = sink.stats
    assert s.lines_rejected == 2 and s.lines_sent == 0 and s.retries == 0
    assert s.lines_enqueued == s.lines_sent + s.lines_dropped + s.lines_rejected
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("HTTP 307" in m and "not followed" in m for m in errors), errors
    assert "s3cret" not in caplog.text


async def test_redirect_on_query_is_not_followed(caplog: pytest.LogCaptureFixture) -> None:
    """CREATE DATABASE is not re-posted to a redirect target either; writes still go out."""
    moved = web.Response(status=308, headers={"Location": "/moved"})
    routes = {"/query": moved, "/write": web.Response(status=204), "/moved": None}
    runner, url, seen = await _peer(routes)
    sink = TelegrafSink(url, database="d")
    await sink.start()
    sink.write_lines(b"m v=1 1\n", 1)
    assert await sink.flush(5.0)
    await sink.close()
    await runner.cleanup()
    assert seen == ["/query", "/write"]
    assert sink.stats.lines_sent == 1
    assert "redirect (not followed)" in caplog.text
