"""Reading candles back (`ttfast.warm`): InfluxQL against a real influxd 1.6.7; Flux through
influxdb-client against the documented ``/api/v2/query`` response (annotated CSV), since no
InfluxDB 2.x server can be installed here."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest
from aiohttp import web
from tests.servers import InfluxServer

from ttfast.sinks.telegraf import TelegrafSink
from ttfast.warm import (
    FluxReader,
    HistoryUnavailable,
    InfluxQLReader,
    flux_string,
    influxql_string,
)

T0 = 1_767_225_600_000  # 2026-01-01


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _write(influx: InfluxServer, db: str, sym: str, n: int, period: str = "5m") -> None:
    sink = TelegrafSink(influx.url, database=db, period=period)
    await sink.start()
    t = T0 + np.arange(n, dtype=np.int64) * 300_000
    close = 100.0 + np.arange(n) * 0.25
    candle = [close - 0.1, close + 0.5, close - 0.5, close, np.full(n, 1000.0)]
    nan = np.full(n, math.nan)
    sink.write_rows(sym, t, candle, [nan, nan, nan, nan])
    assert await sink.flush(10.0)
    await sink.close()


async def test_influxql_last_time_and_last_bars(influx_srv: InfluxServer) -> None:
    db = "h" + uuid.uuid4().hex[:8]
    influx_srv.create_database(db)
    await _write(influx_srv, db, "SP'Y", 50)
    await _write(influx_srv, db, "QQQ", 10)
    r = InfluxQLReader(influx_srv.url, db)
    try:
        assert await r.last_time("SP'Y", "5m", T0, T0 + 10**10) == T0 + 49 * 300_000
        assert await r.last_time("SP'Y", "5m", T0, T0 + 20 * 300_000) == T0 + 20 * 300_000
        assert await r.last_time("SP'Y", "1h", T0, T0 + 10**10) is None
        assert await r.last_time("NONE", "5m", T0, T0 + 10**10) is None
        bars = await r.last_bars("SP'Y", "5m", 30)
        assert len(bars) == 30 and bars.time[0] == T0 + 20 * 300_000
        assert list(bars.time) == sorted(bars.time) and bars.time[-1] == T0 + 49 * 300_000
        assert bars.close[-1] == 100.0 + 49 * 0.25 and bars.volume[0] == 1000.0
        assert len(await r.last_bars("QQQ", "5m", 30)) == 10
    finally:
        await r.close()
    missing = InfluxQLReader(influx_srv.url, "no_such_db_" + uuid.uuid4().hex[:6])
    try:
        assert await missing.last_time("SPY", "5m", 0, T0) is None  # nothing stored yet
    finally:
        await missing.close()


async def test_influxql_unreachable_is_history_unavailable() -> None:
    r = InfluxQLReader("http://127.0.0.1:9/", "db")
    with pytest.raises(HistoryUnavailable, match="unreachable"):
        await r.last_time("SPY", "5m", 0, 1)
    await r.close()


def test_string_literals() -> None:
    assert influxql_string("a'b\\c") == "'a\\'b\\\\c'"
    assert flux_string('a"b\\c${x}') == '"a\\"b\\\\c\\${x}"'


# -- Flux: the documented response format -----------------------------------------------------
def _annotated_csv(columns: list[tuple[str, str]], rows: list[list[str]]) -> str:
    """InfluxDB v2 ``/api/v2/query`` annotated CSV (#datatype/#group/#default, one table)."""
    names = ["result", "table", *(c for c, _ in columns)]
    lines = [
        "#datatype,string,long," + ",".join(t for _, t in columns),
        "#group,false,false," + ",".join("false" for _ in columns),
        "#default,_result,," + ",".join("" for _ in columns),
        "," + ",".join(names),
    ]
    lines += [",,0," + ",".join(row) for row in rows]
    return "\r\n".join(lines) + "\r\n\r\n"


class FluxPeer:
    def __init__(self, body: str, status: int = 200) -> None:
        self.body, self.status = body, status
        self.queries: list[dict[str, object]] = []
        self.headers: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _query(self, request: web.Request) -> web.Response:
        self.queries.append(json.loads(await request.read()))
        self.headers.append(dict(request.headers))
        if self.status != 200:
            return web.json_response(
                {"code": "invalid", "message": "compilation failed: bad flux"}, status=self.status
            )
        return web.Response(text=self.body, content_type="text/csv")

    async def __aenter__(self) -> FluxPeer:
        app = web.Application()
        app.router.add_post("/api/v2/query", self._query)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def test_flux_last_time_parses_the_documented_format() -> None:
    body = _annotated_csv(
        [("_time", "dateTime:RFC3339"), ("_value", "double")],
        [[_iso(T0 + 600_000), "101.5"]],
    )
    async with FluxPeer(body) as peer:
        r = FluxReader(peer.url, org="my-org", bucket='b"1', token="flux-tok")
        got = await r.last_time('S"PY', "5m", T0, T0 + 3_600_000)
        await r.close()
    assert got == T0 + 600_000
    q = peer.queries[0]["query"]
    assert isinstance(q, str)
    assert 'from(bucket: "b\\"1")' in q and 'r.symbol == "S\\"PY"' in q
    assert 'r.period == "5m"' in q and "|> last()" in q
    assert "range(start: 2026-01-01T00:00:00.000Z, stop: 2026-01-01T01:00:00.001Z)" in q
    assert peer.headers[0]["Authorization"] == "Token flux-tok"


async def test_flux_last_bars_parses_a_pivoted_table() -> None:
    cols = [
        ("_start", "dateTime:RFC3339"),
        ("_stop", "dateTime:RFC3339"),
        ("_time", "dateTime:RFC3339"),
        ("_measurement", "string"),
        ("period", "string"),
        ("symbol", "string"),
        ("close", "double"),
        ("high", "double"),
        ("low", "double"),
        ("open", "double"),
        ("volume", "double"),
    ]
    rows = []
    for i in (2, 1, 0):  # newest first, as sort(desc: true) returns them
        t = T0 + i * 300_000
        tags = [_iso(0), _iso(T0 + 10**9), _iso(t), "candle", "5m", "SPY"]
        vals = [str(100 + i), str(101 + i), str(99 + i), str(100.5 + i), "" if i == 1 else "7"]
        rows.append([*tags, *vals])
    async with FluxPeer(_annotated_csv(cols, rows)) as peer:
        r = FluxReader(peer.url, org="o", bucket="b", token="t")
        bars = await r.last_bars("SPY", "5m", 3)
        await r.close()
    assert list(bars.time) == [T0, T0 + 300_000, T0 + 600_000]
    assert list(bars.close) == [100.0, 101.0, 102.0]
    assert list(bars.open) == [100.5, 101.5, 102.5]
    assert bars.volume[0] == 7.0 and math.isnan(bars.volume[1])
    q = peer.queries[0]["query"]
    assert isinstance(q, str) and "pivot(" in q and "limit(n: 3)" in q


async def test_flux_error_is_history_unavailable_with_the_message() -> None:
    async with FluxPeer("", status=400) as peer:
        r = FluxReader(peer.url, org="o", bucket="b", token="secret-flux")
        with pytest.raises(HistoryUnavailable, match="compilation failed") as info:
            await r.last_time("SPY", "5m", 0, 1)
        await r.close()
    assert "secret-flux" not in str(info.value)
