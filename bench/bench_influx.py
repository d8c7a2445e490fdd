"""InfluxDB v2 writes: `InfluxV2Sink` vs influxdb-client used the usual way, into one real server.

Both write the same worker rows (``candle`` open/high/low/close/volume and ``indicators``
macd/signal/hist/hma, tagged symbol and period, ns timestamps: two points per row) to the same
VictoriaMetrics ``/api/v2/write`` on loopback (no InfluxDB 2.x server can be installed here;
VictoriaMetrics implements the v2 write endpoint), and a call returns once the server has
acknowledged every point:

* ttfast: ``InfluxV2Sink.write_rows`` (the compiled ``LineEncoder``, one call per batch) and
  ``await flush()``; the sink posts 512 kB batches through influxdb-client's async client.
* influxdb-client: one ``Point`` per measurement and row (``.tag``/``.field``/``.time``), handed
  to its batching write API (``write_api(write_options=WriteOptions(batch_size=5000))``, its
  background thread serializes and posts); the call waits for its success callback on the last
  batch (rather than ``close()``, which polls every 100 ms).

The server's own work (parsing, storing) is in both times. The gate ratio
``influx.sink.vs_influxdb_client`` is rows/s(ttfast) / rows/s(influxdb-client), same run.
``python -m bench.bench_influx`` prints the rates.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.gatelib import RatioCase

ROWS = 5000  # per call; 2 points a row = 10000 points = two full batches of 5000
SYMBOLS = [f"SYM{i:02d}" for i in range(20)]
ORG, BUCKET = "bench", "bench"


def _rows(n: int = ROWS, seed: int = 11) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
    """Worker-shaped rows: n bars round-robin over 20 symbols, 5-minute times (ms)."""
    rng = np.random.default_rng(seed)
    syms = [SYMBOLS[i % len(SYMBOLS)] for i in range(n)]
    t = 1_767_225_600_000 + (np.arange(n, dtype=np.int64) // len(SYMBOLS)) * 300_000
    close = np.round(100 + np.cumsum(rng.normal(0, 0.2, n)), 2)
    cols = [close - 0.05, close + 0.1, close - 0.1, close, np.round(rng.uniform(0, 1e5, n))]
    macd = rng.normal(0, 1, n)
    cols += [macd, macd * 0.9, macd * 0.1, close + 0.01]
    return syms, t, cols


SYMS, TIMES, COLS = _rows()


class _Server:
    """One VictoriaMetrics for the process, started on first use (stopped at exit)."""

    srv: Any = None

    @classmethod
    def url(cls) -> str:
        if cls.srv is None:
            from tests.servers import VictoriaMetricsServer

            tmp = tempfile.TemporaryDirectory(prefix="ttfast-bench-vm-")
            srv = VictoriaMetricsServer(shutil.which("victoria-metrics") or "", Path(tmp.name))
            srv.start()
            atexit.register(tmp.cleanup)
            atexit.register(srv.stop)
            cls.srv = srv
        return str(cls.srv.url)


class Fast:
    """InfluxV2Sink on its own event loop (kept across calls, like a running worker)."""

    def __init__(self, url: str) -> None:
        from ttfast.sinks.influx import InfluxV2Sink

        self.loop = asyncio.new_event_loop()
        self.sink = InfluxV2Sink(url, org=ORG, bucket=BUCKET, token="bench", period="5m")
        self.loop.run_until_complete(self.sink.start())

    async def _write(self) -> None:
        self.sink.write_rows(SYMS, TIMES, COLS[:5], COLS[5:])
        assert await self.sink.flush(60.0)

    def __call__(self) -> None:
        self.loop.run_until_complete(self._write())

    def close(self) -> None:
        self.loop.run_until_complete(self.sink.close())
        self.loop.close()


class Ref:
    """influxdb-client's Points through its batching write API (a long-lived write_api)."""

    def __init__(self, url: str) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import WriteOptions

        self.client = InfluxDBClient(url=url, token="bench", org=ORG)
        self.done = threading.Event()
        self.pending = 0
        self.errors: list[BaseException] = []
        self.write_api = self.client.write_api(
            write_options=WriteOptions(batch_size=5000, flush_interval=10_000),
            success_callback=self._ok,
            error_callback=self._error,
        )

    def _ok(self, conf: object, data: str | bytes) -> None:
        self.pending -= 5000
        if self.pending <= 0:
            self.done.set()

    def _error(self, conf: object, data: str | bytes, exc: BaseException) -> None:
        self.errors.append(exc)
        self.done.set()

    def __call__(self) -> None:
        from influxdb_client import Point, WritePrecision

        self.done.clear()
        self.pending = 2 * ROWS
        points = []
        t_ns = (TIMES * 1_000_000).tolist()
        o, h, lo, c, v, m, s, hi, hm = (col.tolist() for col in COLS)
        for i, sym in enumerate(SYMS):
            points.append(
                Point("candle")
                .tag("symbol", sym)
                .tag("period", "5m")
                .field("open", o[i])
                .field("high", h[i])
                .field("low", lo[i])
                .field("close", c[i])
                .field("volume", v[i])
                .time(t_ns[i], WritePrecision.NS)
            )
            points.append(
                Point("indicators")
                .tag("symbol", sym)
                .tag("period", "5m")
                .field("macd", m[i])
                .field("signal", s[i])
                .field("hist", hi[i])
                .field("hma", hm[i])
                .time(t_ns[i], WritePrecision.NS)
            )
        self.write_api.write(BUCKET, ORG, points)
        if not self.done.wait(60.0) or self.errors:
            raise RuntimeError(f"influxdb-client write failed: {self.errors[:1]}")

    def close(self) -> None:
        self.write_api.close()
        self.client.close()


class _Lazy:
    """Contestants built on first call (the gate collects cases at import)."""

    fast: Fast | None = None
    ref: Ref | None = None

    @classmethod
    def run_fast(cls) -> None:
        if cls.fast is None:
            cls.fast = Fast(_Server.url())
            atexit.register(cls.fast.close)
        cls.fast()

    @classmethod
    def run_ref(cls) -> None:
        if cls.ref is None:
            cls.ref = Ref(_Server.url())
            atexit.register(cls.ref.close)
        cls.ref()


GATE_RATIOS = (
    [
        RatioCase(
            "influx.sink.vs_influxdb_client",
            _Lazy.run_fast,
            _Lazy.run_ref,
            # measured 10.1-12.5 by the gate (8.2-16.4 as report() medians) on the shared
            # 2-core VM with other jobs running; the server's parse time is in both sides,
            # so the ratio moves with its load: a 2x slower sink still fails
            floor=6.0,
            target=10.0,
            units=ROWS,
            note="rows into VictoriaMetrics /api/v2/write, acknowledged; 2 points/row",
        )
    ]
    if shutil.which("victoria-metrics")
    else []
)


@pytest.mark.benchmark(group="influx")
def test_bench_influx_sink(benchmark: Any) -> None:
    benchmark(_Lazy.run_fast)


@pytest.mark.benchmark(group="influx")
def test_bench_influxdb_client_points(benchmark: Any) -> None:
    benchmark(_Lazy.run_ref)


def report(rounds: int = 5) -> None:
    fast, ref = [], []
    _Lazy.run_fast()
    _Lazy.run_ref()
    for _ in range(rounds):  # interleaved
        t0 = time.perf_counter()
        _Lazy.run_fast()
        fast.append(ROWS / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        _Lazy.run_ref()
        ref.append(ROWS / (time.perf_counter() - t0))
    f, r = statistics.median(fast), statistics.median(ref)
    print(
        f"rows/s into VictoriaMetrics /api/v2/write ({ROWS} rows, 2 points each), medians of "
        f"{rounds}: ttfast InfluxV2Sink {f:,.0f}  influxdb-client Points+batching {r:,.0f}  "
        f"ratio {f / r:.1f}x"
    )


if __name__ == "__main__":
    report()
