"""``ttfast backfill`` against the local dxLink server, into a real influxd 1.6.7 (InfluxQL
resume) and a real VictoriaMetrics (InfluxDB v2 write): resumable, idempotent, --to, snips."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.servers import InfluxServer, VictoriaMetricsServer, victoria_metrics

from ttfast.backfill import Progress, backfill, parse_time, period_ms
from ttfast.sim import DxLinkServer, SimClock
from ttfast.sinks.influx import InfluxV2Sink
from ttfast.sinks.telegraf import TelegrafSink
from ttfast.warm import InfluxQLReader

ROOT = Path(__file__).resolve().parents[2]
FROM = parse_time("2026-10-01")
TO = parse_time("2026-10-11T00:00Z")
N_5M = (TO - FROM) // 300_000 + 1  # the sim market has a bar every period


@pytest.fixture(scope="module")
def vm() -> Iterator[VictoriaMetricsServer]:
    with victoria_metrics() as srv:
        yield srv


@pytest.fixture
async def dx() -> AsyncIterator[tuple[str, DxLinkServer]]:
    srv = DxLinkServer(seed=3, clock=SimClock(), max_snapshot_rows=200_000)
    url = await srv.start()
    try:
        yield url, srv
    finally:
        await srv.stop()


def _provider(url: str):  # type: ignore[no-untyped-def]
    async def provider() -> tuple[str, str]:
        return url, "sim-token"

    return provider


def _db(influx: InfluxServer) -> str:
    name = "bf" + uuid.uuid4().hex[:8]
    influx.create_database(name)
    return name


def _stored(influx: InfluxServer, db: str, sym: str) -> dict[int, float]:
    rows = influx.query(db, f"SELECT close FROM candle WHERE symbol='{sym}' AND period='5m'")
    return {r["time"] // 1_000_000: r["close"] for r in rows}


class _StopAfter(Progress):
    """A progress line that signals once `n` bars are acknowledged (to interrupt a run)."""

    def __init__(self, n: int) -> None:
        super().__init__(stream=None)
        self.n = n
        self.reached = asyncio.Event()

    def show(self, force: bool = False) -> None:
        if self.done >= self.n:
            self.reached.set()


async def test_interrupted_backfill_resumes_from_what_is_stored(
    dx: tuple[str, DxLinkServer], influx_srv: InfluxServer
) -> None:
    url, _ = dx
    db = _db(influx_srv)

    def run(progress: Progress | None = None, resume: bool = True):  # type: ignore[no-untyped-def]
        return backfill(
            ["SPY", "QQQ"],
            "5m",
            FROM,
            TO,
            sink=TelegrafSink(influx_srv.url, database=db),
            reader=InfluxQLReader(influx_srv.url, db) if resume else None,
            dxlink_url=url,
            token_provider=_provider(url),
            batch_rows=500,
            progress=progress,
        )

    stop = _StopAfter(N_5M + 1000)  # all of SPY and part of QQQ
    task = asyncio.create_task(run(stop))
    await asyncio.wait_for(stop.reached.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(_stored(influx_srv, db, "SPY")) == N_5M
    partial = len(_stored(influx_srv, db, "QQQ"))
    assert 1000 <= partial < N_5M

    again = await run(Progress(stream=None))
    assert again.ok
    spy, qqq = again.symbols
    assert spy.resumed and spy.start_ms == TO and spy.written == 1  # only the last bar again
    assert qqq.resumed and FROM < qqq.start_ms < TO
    assert qqq.written == N_5M - partial + 1
    assert (qqq.first_ms, qqq.last_ms) == (qqq.start_ms, TO)
    # the same bars as one uninterrupted run into a fresh database
    fresh = _db(influx_srv)
    whole = await backfill(
        ["QQQ"],
        "5m",
        FROM,
        TO,
        sink=TelegrafSink(influx_srv.url, database=fresh),
        reader=None,
        dxlink_url=url,
        token_provider=_provider(url),
    )
    assert whole.ok and whole.lines_sent == N_5M
    got = _stored(influx_srv, db, "QQQ")
    assert len(got) == N_5M and got == _stored(influx_srv, fresh, "QQQ")
    assert min(got) == FROM and max(got) == TO


async def test_backfill_into_victoria_metrics_twice_leaves_one_point(
    dx: tuple[str, DxLinkServer], vm: VictoriaMetricsServer
) -> None:
    url, _ = dx
    sym = "IWM"
    for _ in range(2):
        res = await backfill(
            [sym],
            "1h",
            FROM,
            TO,
            sink=InfluxV2Sink(vm.url, org="o", bucket="b", token="t"),
            reader=None,
            dxlink_url=url,
            token_provider=_provider(url),
            batch_rows=100,
        )
        assert res.ok and res.lines_sent == (TO - FROM) // 3_600_000 + 1
    pts = vm.points(f'{{__name__=~"candle_.*",symbol="{sym}",period="1h"}}')  # raises on dups
    closes = {t: v for (name, _, t), v in pts.items() if name == "candle_close"}
    assert sorted(closes) == list(range(FROM, TO + 1, 3_600_000))
    assert {name for name, _, _ in pts} == {
        f"candle_{f}" for f in ("open", "high", "low", "close", "volume")
    }


async def test_bars_after_to_and_the_forming_bar_are_not_written(
    dx: tuple[str, DxLinkServer], influx_srv: InfluxServer
) -> None:
    url, srv = dx
    db = _db(influx_srv)
    res = await backfill(
        ["SPY"],
        "1h",
        srv.clock.now_ms() - 10 * 3_600_000,
        None,
        sink=TelegrafSink(influx_srv.url, database=db),
        reader=InfluxQLReader(influx_srv.url, db),
        dxlink_url=url,
        token_provider=_provider(url),
        now_ms=srv.clock.now_ms,
    )
    now = srv.clock.now_ms()
    rows = influx_srv.query(db, "SELECT close FROM candle")
    assert rows and res.symbols[0].written == len(rows) in (9, 10)
    assert all(r["time"] // 1_000_000 + 3_600_000 <= now for r in rows)  # closed bars only


async def test_a_truncated_snapshot_is_reported(influx_srv: InfluxServer) -> None:
    srv = DxLinkServer(seed=3, clock=SimClock(), max_snapshot_rows=50)
    url = await srv.start()
    try:
        db = _db(influx_srv)
        res = await backfill(
            ["SPY"],
            "5m",
            FROM,
            TO,
            sink=TelegrafSink(influx_srv.url, database=db),
            reader=None,
            dxlink_url=url,
            token_provider=_provider(url),
        )
    finally:
        await srv.stop()
    (r,) = res.symbols
    assert r.truncated_before is not None and r.truncated_before > TO  # only recent bars sent
    assert r.written == 0


def test_period_and_time_parsing() -> None:
    assert period_ms("5m") == 300_000 and period_ms("1h") == period_ms("h") == 3_600_000
    assert period_ms("2d") == 2 * 86_400_000
    with pytest.raises(ValueError, match="time-based"):
        period_ms("1mo")
    assert parse_time("2026-01-01") == parse_time("2026-01-01T00:00Z") == 1_767_225_600_000
    assert parse_time("2026-01-01T01:00+01:00") == 1_767_225_600_000
    assert parse_time("1767225600000") == 1_767_225_600_000
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_cli_backfill_sim_into_influxd(influx_srv: InfluxServer) -> None:
    db = _db(influx_srv)
    argv = [sys.executable, "-m", "ttfast.cli", "backfill", "--symbols", "SPY,QQQ"]
    argv += ["--period", "1h", "--from", "2026-09-01", "--to", "2026-09-08"]
    argv += ["--telegraf", influx_srv.url, "--telegraf-db", db, "--source", "sim"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASTYTRADE_")}
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    assert "bars 338/338" in r.stderr and "bars/s" in r.stderr and "ETA" in r.stderr
    assert "written 338 rejected 0 dropped 0" in r.stderr
    rows = influx_srv.query(db, "SELECT count(close) FROM candle GROUP BY symbol")
    assert {r["symbol"]: r["count"] for r in rows} == {"SPY": 169, "QQQ": 169}
    # again: resumed at the last stored bar, nothing lost, nothing twice
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert r.returncode == 0 and "resumed at 2026-09-08T00:00Z" in r.stderr, r.stderr
    rows = influx_srv.query(db, "SELECT count(close) FROM candle GROUP BY symbol")
    assert {r["symbol"]: r["count"] for r in rows} == {"SPY": 169, "QQQ": 169}


def test_cli_refuses_a_token_on_the_command_line() -> None:
    secret = "S3cretTokenValue=="
    argv = [sys.executable, "-m", "ttfast.cli", "backfill", "--symbols", "SPY"]
    argv += ["--from", "2026-01-01", "--influx", "http://127.0.0.1:9", "--influx-org", "o"]
    argv += ["--influx-bucket", "b", "--influx-token", secret]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "not taken on the command line" in r.stderr
    assert secret not in r.stderr + r.stdout
