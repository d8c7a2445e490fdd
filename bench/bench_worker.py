"""ttfast-worker vs the naive pipeline a user would write, on the same Candle frame stream.

ttfast: FeedDecoder.decode(frame) -> CandleStore.apply -> IndicatorPipeline.process -> one
redis-py pipeline per frame (the RedisSink's batching). Naive: json.loads -> tastytrade SDK
``Candle.from_stream`` -> talipp MACD(12,26,9) + HMA(20) add/update per event -> json.dumps ->
``await redis.publish`` per event. Both get byte-identical frames from bench/datagen.py and
publish to a real redis-server.

Run ``python -m bench.bench_worker`` for the full report (throughput ratio, p50/p99 latency
from frame receipt to PUBLISH acknowledged at a fixed 50k updates/s as measured by
bench/bench_latency.py, RedisSink rate vs ``redis-benchmark`` pipelined PUBLISH). The gate
compares the compute part only (no I/O).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bench import datagen
from bench.gatelib import CallgrindCase, RatioCase
from ttfast._core import CandleStore, IndicatorPipeline
from ttfast._core.feed import FeedDecoder


def _frames(n_symbols: int, n_bars: int, updates: int) -> tuple[dict[str, object], list[bytes]]:
    return datagen.candle_feed_frames(n_symbols, n_bars, updates, rows_per_frame=50)


class Fast:
    """The worker's per-frame path (sinks reduced to the payload lists they would queue)."""

    def __init__(self, config: dict[str, object]) -> None:
        self.dec = FeedDecoder()
        self.dec.configure(config)
        self.store = CandleStore(4096)
        self.pipe = IndicatorPipeline()
        # dxLink candles start with a snapshot; mark every series ready as the streamer would
        self.events = 0

    def prime(self, frames: list[bytes]) -> None:
        """Make the symbols' series ready (the live stream follows a snapshot in reality)."""
        for b in self.dec.decode(frames[0]):
            syms = b.column("eventSymbol")
            for s in dict.fromkeys(syms.tolist()):
                self.store.apply_bar(s, 1_600_000_000_000, 1.0, 1.0, 1.0, 1.0, 0.0)

    def frame(self, frame: bytes) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
        pubs: list[tuple[bytes, bytes]] = []
        snaps: list[tuple[bytes, bytes]] = []
        for b in self.dec.decode(frame):
            out = self.pipe.process(self.store.apply(b))
            pubs += out.publishes
            snaps += out.snapshots
            self.events += b.size
        return pubs, snaps


class Naive:
    """What a user would write with the tastytrade SDK + talipp + redis-py."""

    def __init__(self) -> None:
        from talipp.indicators import HMA, MACD

        self._macd_cls, self._hma_cls = MACD, HMA
        self.state: dict[str, tuple[Any, Any, int]] = {}

    def event(self, c: Any) -> tuple[str, str]:
        from tastytrade.dxfeed import Candle  # noqa: F401 (imported for the type)

        sym = c.event_symbol
        st = self.state.get(sym)
        if st is None:
            st = (self._macd_cls(12, 26, 9), self._hma_cls(20), -1)
        m, h, last_t = st
        x = float(c.close)  # the SDK gives Decimal prices
        if c.time == last_t:
            m.update(x)
            h.update(x)
        else:
            m.add(x)
            h.add(x)
        self.state[sym] = (m, h, c.time)
        mv = m[-1]
        hv = h[-1]
        payload = json.dumps(
            {
                "type": "delta",
                "symbol": sym.split("{")[0],
                "candle": {
                    "time": c.time,
                    "open": c.open,
                    "high": c.high,
                    "low": c.low,
                    "close": c.close,
                    "volume": c.volume,
                },
                "macd": None
                if mv is None
                else {"value": mv.macd, "signal": mv.signal, "hist": mv.histogram},
                "hma": hv,
                "final": False,
            },
            default=float,
        )
        return "analytics:delta:" + sym.split("{")[0], payload

    def frame(self, frame: bytes) -> list[tuple[str, str]]:
        from tastytrade.dxfeed import Candle

        msg = json.loads(frame)
        return [self.event(c) for c in Candle.from_stream(msg["data"][1])]


# -- gate: compute only (decode -> store -> indicators -> JSON payloads), no I/O -------------
_CFG, _GATE_FRAMES = _frames(10, 40, 5)  # 2000 events in 40 frames


def _gate_fast() -> None:
    f = Fast(_CFG)
    f.prime(_GATE_FRAMES)
    for fr in _GATE_FRAMES:
        f.frame(fr)


def _gate_naive() -> None:
    n = Naive()
    for fr in _GATE_FRAMES:
        n.frame(fr)


GATE_RATIOS = [
    RatioCase(
        "worker.compute.vs_sdk_talipp",
        _gate_fast,
        _gate_naive,
        floor=30.0,
        target=20.0,
        units=2000,
        note="decode+store+MACD/HMA+JSON per event, no I/O",
    ),
]


@pytest.mark.benchmark(group="worker")
def test_bench_worker_compute(benchmark: Any) -> None:
    benchmark(_gate_fast)


@pytest.mark.benchmark(group="worker")
def test_bench_naive_compute(benchmark: Any) -> None:
    benchmark(_gate_naive)


# -- end to end with a real redis-server ----------------------------------------------------
async def _e2e_fast(url: str, cfg: dict[str, object], frames: list[bytes]) -> float:
    """Frames through the worker's path into the RedisSink, as fast as they can go."""
    from ttfast.sinks.redis import RedisSink

    sink = RedisSink(url, max_backlog=10_000_000)
    await sink.start()
    f = Fast(cfg)
    f.prime(frames)
    t0 = time.perf_counter()
    for fr in frames:
        pubs, snaps = f.frame(fr)
        sink.publish_many(pubs)
        for k, v in snaps:
            sink.set_snapshot(k, v)
        await asyncio.sleep(0)  # one loop iteration per frame, as when frames come off a socket
    assert await sink.flush(120)
    dt = time.perf_counter() - t0
    assert sink.stats.dropped == 0
    await sink.close()
    return f.events / dt


async def _e2e_naive(url: str, frames: list[bytes]) -> float:
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(url)
    n = Naive()
    events = 0
    t0 = time.perf_counter()
    for fr in frames:
        for ch, payload in n.frame(fr):
            await r.publish(ch, payload)
            events += 1
    dt = time.perf_counter() - t0
    await r.aclose()
    return events / dt


async def _sink_rate(url: str, n: int, payload: bytes) -> float:
    from ttfast.sinks.redis import RedisSink

    sink = RedisSink(url, max_backlog=n + 1, max_commands=1024)
    await sink.start()
    t0 = time.perf_counter()
    sink.publish_many([(b"bench", payload)] * n)
    assert await sink.flush(60)
    dt = time.perf_counter() - t0
    await sink.close()
    return n / dt


def _redis_benchmark(port: int, n: int, payload: bytes, pipeline: int) -> float:
    out = subprocess.run(
        [
            "redis-benchmark",
            "-p",
            str(port),
            "-n",
            str(n),
            "-P",
            str(pipeline),
            "-q",
            "--csv",
            "PUBLISH",
            "bench",
            payload.decode(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = [ln for ln in out.stdout.splitlines() if "PUBLISH" in ln][-1]
    return float(line.split(",")[1].strip('"'))


def test_bench_worker_end_to_end() -> None:
    """Runs once in the normal suite (small sizes) to prove both paths work end to end."""
    from tests.servers import redis_server

    cfg, frames = _frames(10, 20, 5)
    with redis_server() as srv:
        fast = asyncio.run(_e2e_fast(srv.url, cfg, frames))
        naive = asyncio.run(_e2e_naive(srv.url, frames[:4]))
    assert fast > naive > 0


_E2E_CFG, _E2E_FRAMES = _frames(10, 20, 5)  # 1,000 events in 20 frames


@pytest.mark.benchmark(group="worker-end-to-end")
@pytest.mark.parametrize("who", ["ttfast", "naive"])
def test_bench_end_to_end(benchmark: Any, who: str) -> None:
    """The same 1,000 events, frames -> ... -> Redis PUBLISH acknowledged (a fresh store,
    pipeline and connection per round)."""
    from tests.servers import redis_server

    with redis_server() as srv:
        if who == "ttfast":
            run = lambda: asyncio.run(_e2e_fast(srv.url, _E2E_CFG, _E2E_FRAMES))  # noqa: E731
        else:
            pytest.importorskip("tastytrade")
            run = lambda: asyncio.run(_e2e_naive(srv.url, _E2E_FRAMES))  # noqa: E731
        benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)


def report() -> None:
    from tests.servers import redis_server

    cfg, frames = _frames(20, 100, 10)  # 20k events
    with redis_server() as srv:
        fasts, naives = [], []
        for _ in range(3):  # interleaved, medians
            fasts.append(asyncio.run(_e2e_fast(srv.url, cfg, frames)))
            naives.append(asyncio.run(_e2e_naive(srv.url, frames[:80])))  # 4k events
        fast, naive = statistics.median(fasts), statistics.median(naives)
        print(
            f"end to end (decode -> indicators -> Redis PUBLISH), events/s: "
            f"ttfast {fast:,.0f}  naive {naive:,.0f}  ratio {fast / naive:.1f}x"
        )
        # latency: bench/bench_latency.py (a dxLink generator process, the worker's real path,
        # per-stage HDR histograms); here only its total, frame receipt -> PUBLISH acked
        from bench.bench_latency import worker_latency

        for rate in (50_000, 10_000):
            h = worker_latency(srv.url, rate, 2.0, ["base"])["base"]["total"]
            print(
                f"latency at {rate:,} updates/s, frame receipt -> PUBLISH acked: "
                f"p50 {h.get_value_at_percentile(50) / 1000:.2f} ms  "
                f"p99 {h.get_value_at_percentile(99) / 1000:.2f} ms  "
                f"max {h.get_max_value() / 1000:.2f} ms"
            )
        payload = b"x" * 400  # the size of a delta payload
        sink = asyncio.run(_sink_rate(srv.url, 200_000, payload))
        rb = _redis_benchmark(srv.port, 200_000, payload, 64)
        rb16 = _redis_benchmark(srv.port, 200_000, payload, 16)
        print(
            f"RedisSink PUBLISH rate {sink:,.0f}/s vs redis-benchmark -P 64 {rb:,.0f}/s "
            f"({sink / rb:.0%}), -P 16 {rb16:,.0f}/s ({sink / rb16:.0%}); payload 400 B"
        )
    from bench.gatelib import measure_ratio

    res = measure_ratio(GATE_RATIOS[0])
    print(
        f"compute only (gate case): {res.ratio:.1f}x  ttfast {res.fast_ns_per_unit:.0f} ns/event"
        f"  naive {res.ref_ns_per_unit:.0f} ns/event"
    )


if __name__ == "__main__":
    report()


_GRIND_SETUP = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from bench import datagen
from ttfast._core import CandleStore, IndicatorPipeline, LineEncoder
from ttfast._core.feed import FeedDecoder
import numpy as np
cfg, frames = datagen.candle_feed_frames(10, 20, 5, rows_per_frame=50)
dec = FeedDecoder(); dec.configure(cfg)
store = CandleStore(4096); pipe = IndicatorPipeline()
for s in dict.fromkeys(dec.decode(frames[0])[0].column("eventSymbol").tolist()):
    store.apply_bar(s, 1_600_000_000_000, 1.0, 1.0, 1.0, 1.0, 0.0)
batches = [b for fr in frames for b in dec.decode(fr)]
changes = [store.apply(b) for b in batches[:1]]
enc = LineEncoder("candle", ("symbol", "period"), ("open", "high", "low", "close", "volume"))
n = 1000
t = np.arange(n, dtype=np.int64) * 60_000_000_000
px = [np.round(100 + np.cumsum(np.random.default_rng(k).normal(0, 0.1, n)), 2) for k in range(5)]
syms = [("SPY", "QQQ", "AAPL")[i % 3] for i in range(n)]
"""

GATE_CALLGRIND = [
    # one batch of 50 live updates over 10 symbols -> rows + JSON payloads (instructions/batch)
    CallgrindCase(
        "worker.pipeline.process",
        setup=_GRIND_SETUP,
        stmt="pipe.process(changes[0])",
        toggle="*IndicatorPipeline*process*",
        per=10,
    ),
    # 1000 candle rows to line protocol (instructions per row)
    CallgrindCase(
        "worker.lineproto.encode",
        setup=_GRIND_SETUP,
        stmt="enc.encode(t, (syms, '1m'), px)",
        toggle="*lineproto_11LineEncoder_6encode*",
        per=1000,
    ),
]
