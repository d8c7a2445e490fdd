"""Candle store: ttfast CandleStore vs a plain-Python dict/list store doing the same work.

Both contestants consume the same decoded column batches (ttfast.ColumnBatch, the shape
of the decoder's EventBatch) and implement the same dxFeed model (spec §6.6: snapshot buffering
and replacement, TX_PENDING, REMOVE_EVENT, same-index replacement, chronological order, a
capacity with eviction). The Python store is written to be fast for Python: a dict keyed by
index plus a sorted key list (bisect), the forming-bar update is O(1), rows come from
`.tolist()` columns.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import datagen
from bench.gatelib import CallgrindCase, RatioCase
from ttfast import CandleStore, ColumnBatch, FeedDecoder

TX, REMOVE, BEGIN, END, SNIP = 1, 2, 4, 8, 16
FIELDS = ("open", "high", "low", "close", "volume", "vwap")


class _PySeries:
    __slots__ = ("bars", "building", "done", "keys", "pending")

    def __init__(self) -> None:
        self.bars: dict[int, tuple[Any, ...]] = {}
        self.keys: list[int] = []
        self.pending: list[tuple[Any, ...]] = []
        self.building = False
        self.done = False


class PyCandleStore:
    """The plain-Python reference: same semantics, idiomatic fast Python."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self.series: dict[str, _PySeries] = {}

    def _write(self, s: _PySeries, row: tuple[Any, ...]) -> None:
        idx = row[2]
        bars, keys = s.bars, s.keys
        if idx in bars:
            bars[idx] = row
            return
        if len(keys) >= self.capacity:
            if idx < keys[0]:
                return
            del bars[keys.pop(0)]
        if not keys or idx > keys[-1]:
            keys.append(idx)
        else:
            insort(keys, idx)
        bars[idx] = row

    def _apply_visible(self, s: _PySeries, row: tuple[Any, ...]) -> None:
        if row[1] & REMOVE:
            if row[2] in s.bars:
                del s.bars[row[2]]
                del s.keys[bisect_left(s.keys, row[2])]
        else:
            self._write(s, row)

    def apply(self, batch: Any) -> set[str]:
        cols = [batch.column(n) for n in ("eventSymbol", "eventFlags", "index", "time", "count")]
        cols += [batch.column(n) for n in FIELDS]
        touched = set()
        series = self.series
        for row in zip(*(c.tolist() for c in cols if c is not None), strict=True):
            sym, flags = row[0], row[1]
            s = series.get(sym)
            if s is None:
                s = series[sym] = _PySeries()
            if flags & BEGIN:
                s.building, s.done = True, False
                s.pending.clear()
            if s.building and flags & (END | SNIP):
                s.building, s.done = False, True
            if flags & TX or s.building:
                s.pending.append(row)
                continue
            touched.add(sym)
            if s.done:  # apply the snapshot to a fresh dict, sort once, keep the newest
                bars: dict[int, tuple[Any, ...]] = {}
                s.pending.append(row)
                for x in s.pending:
                    if x[1] & REMOVE:
                        bars.pop(x[2], None)
                    else:
                        bars[x[2]] = x
                keys = sorted(bars)
                for k in keys[: -self.capacity]:
                    del bars[k]
                s.bars, s.keys, s.done = bars, keys[-self.capacity :], False
                s.pending.clear()
                continue
            if s.pending:
                for x in s.pending:
                    self._apply_visible(s, x)
                s.pending.clear()
            self._apply_visible(s, row)
        return touched

    def closes(self, sym: str) -> list[float]:
        s = self.series[sym]
        return [s.bars[k][8] for k in s.keys]


# ------------------------------------------------------------------------------ data

UPDATE_BATCHES = [ColumnBatch("Candle", c) for c in datagen.candle_forming_update_batches(200)]
N_UPDATES = sum(b.size for b in UPDATE_BATCHES)


def _snapshot_batches(n: int, rows_per_batch: int = 10_000) -> list[ColumnBatch]:
    cols = datagen.candle_snapshot_columns(n)
    return [
        ColumnBatch("Candle", {k: v[i : i + rows_per_batch] for k, v in cols.items()})
        for i in range(0, n + 1, rows_per_batch)
    ]


SNAP_100K = _snapshot_batches(100_000)
SNAP_20K = _snapshot_batches(20_000, rows_per_batch=5_000)
_SNAP_1M: list[ColumnBatch] = []


def snap_1m() -> list[ColumnBatch]:
    if not _SNAP_1M:
        _SNAP_1M.extend(_snapshot_batches(1_000_000))
    return _SNAP_1M


def _decoded(frames: list[bytes]) -> list[Any]:
    """Real EventBatch objects from the dxLink decoder, columns already materialized (cached on
    the batch), so a benchmark times the store, not the decoder."""
    dec = FeedDecoder()
    dec.set_fields("Candle", list(datagen.CANDLE_FIELDS))
    out = [b for f in frames for b in dec.decode(f)]
    for b in out:
        for name in b.fields:
            b.column(name)
    return out


# live traffic as the streamer sees it: small decoded batches of forming-bar updates
LIVE_EB_10 = _decoded(datagen.candle_feed_frames(10, 20, 10, rows_per_frame=10)[1])
LIVE_EB_1 = _decoded(datagen.candle_feed_frames(10, 4, 10, rows_per_frame=1)[1])
# a newest-first snapshot as the server sends it: 1000-row frames, SNAPSHOT_BEGIN ... 0x0A end
SNAP_EB_20K = _decoded(datagen.candle_snapshot_frames(20_001, per_frame=1000))


def _fast_live(batches: list[Any], capacity: int = 4096) -> CandleStore:
    store = CandleStore(capacity=capacity)
    for b in batches:
        store.apply(b)
    return store


def _ref_live(batches: list[Any], capacity: int = 4096) -> PyCandleStore:
    store = PyCandleStore(capacity=capacity)
    for b in batches:
        store.apply(b)
    return store


def _fast_updates() -> CandleStore:
    store = CandleStore(capacity=4096)
    for b in UPDATE_BATCHES:
        store.apply(b)
    return store


def _ref_updates() -> PyCandleStore:
    store = PyCandleStore(capacity=4096)
    for b in UPDATE_BATCHES:
        store.apply(b)
    return store


def _fast_snapshot(batches: list[ColumnBatch]) -> CandleStore:
    store = CandleStore(capacity=1 << 20)
    for b in batches:
        store.apply(b)
    return store


def _ref_snapshot(batches: list[ColumnBatch]) -> PyCandleStore:
    store = PyCandleStore(capacity=1 << 20)
    for b in batches:
        store.apply(b)
    return store


def test_contestants_agree() -> None:
    """Both stores end with identical series (the benchmark compares equal work)."""
    fast, ref = _fast_updates(), _ref_updates()
    for sym in ref.series:
        np.testing.assert_array_equal(fast[sym].close, ref.closes(sym))
    fast2, ref2 = _fast_snapshot(SNAP_100K), _ref_snapshot(SNAP_100K)
    s = fast2["SPY{=m}"]
    assert len(s) == 100_000 and s.ready and not math.isnan(s.close[0])
    np.testing.assert_array_equal(s.close, ref2.closes("SPY{=m}"))
    assert bool(np.all(np.diff(s.time) > 0))
    for batches in (LIVE_EB_10, LIVE_EB_1, SNAP_EB_20K):
        fast3, ref3 = _fast_live(batches), _ref_live(batches)
        assert sorted(fast3) == sorted(ref3.series)
        for sym in ref3.series:
            np.testing.assert_array_equal(fast3[sym].close, ref3.closes(sym))
    assert len(_fast_live(SNAP_EB_20K, 1 << 15)["SPY{=5m}"]) == 20_000


@pytest.mark.benchmark(group="candles-live-eventbatch")
def test_bench_live_eventbatch_10_ttfast(benchmark: Any) -> None:
    benchmark(_fast_live, LIVE_EB_10)


@pytest.mark.benchmark(group="candles-live-eventbatch")
def test_bench_live_eventbatch_10_python(benchmark: Any) -> None:
    benchmark(_ref_live, LIVE_EB_10)


@pytest.mark.benchmark(group="candles-updates")
def test_bench_updates_ttfast(benchmark: Any) -> None:
    benchmark(_fast_updates)


@pytest.mark.benchmark(group="candles-updates")
def test_bench_updates_python(benchmark: Any) -> None:
    benchmark(_ref_updates)


@pytest.mark.benchmark(group="candles-snapshot-1m")
def test_bench_snapshot_1m_ttfast(benchmark: Any) -> None:
    batches = snap_1m()
    store = benchmark(_fast_snapshot, batches)
    assert len(store["SPY{=m}"]) == 1_000_000


@pytest.mark.slow
@pytest.mark.benchmark(group="candles-snapshot-1m")
def test_bench_snapshot_1m_python(benchmark: Any) -> None:
    benchmark.pedantic(_ref_snapshot, args=(snap_1m(),), rounds=1, iterations=1)


GATE_RATIOS = [
    RatioCase(
        "candles.forming_updates.vs_python",
        _fast_updates,
        _ref_updates,
        floor=15.0,
        units=N_UPDATES,
        note="in-progress bar updates, 100/batch over 10 symbols; goal >= 10 M updates/s",
    ),
    RatioCase(
        "candles.snapshot_20k.vs_python",
        lambda: _fast_snapshot(SNAP_20K),
        lambda: _ref_snapshot(SNAP_20K),
        # memory-bound vs a CPU-bound reference: the ratio sinks when other jobs share the
        # caches (30-38 measured with 1-6 other jobs on 2 cores); a 2x slowdown still fails
        floor=20.0,
        units=20_001,
        note="newest-first snapshot ingest, 5k rows/batch, capacity 2**20",
    ),
    RatioCase(
        "candles.live_eventbatch_10.vs_python",
        lambda: _fast_live(LIVE_EB_10),
        lambda: _ref_live(LIVE_EB_10),
        floor=5.5,
        units=2000,
        note="forming-bar updates from decoded EventBatches of 10 rows (store only)",
    ),
    RatioCase(
        "candles.live_eventbatch_1.vs_python",
        lambda: _fast_live(LIVE_EB_1),
        lambda: _ref_live(LIVE_EB_1),
        floor=4.5,
        units=400,
        note="forming-bar updates from decoded EventBatches of 1 row (store only)",
    ),
    RatioCase(
        "candles.snapshot_eventbatch_20k.vs_python",
        lambda: _fast_live(SNAP_EB_20K, 1 << 15),
        lambda: _ref_live(SNAP_EB_20K, 1 << 15),
        # 26-34 measured under the same load as snapshot_20k above
        floor=18.0,
        units=20_001,
        note="newest-first snapshot from decoded EventBatches of 1000 rows, capacity 2**15",
    ),
]

_REPO = str(Path(__file__).resolve().parents[1])
_SETUP = f"import sys\nsys.path.insert(0, {_REPO!r})\n"

GATE_CALLGRIND = [
    CallgrindCase(
        "candles.forming_update",
        setup=_SETUP
        + (
            "from bench import datagen\nfrom ttfast import CandleStore, ColumnBatch\n"
            "bs = [ColumnBatch('Candle', c) for c in datagen.candle_forming_update_batches(20)]\n"
            "store = CandleStore()\n"
        ),
        stmt="for b in bs: store.apply(b)",
        toggle="__pyx_pw_*CandleStore_*apply",
        per=2000,
    ),
    CallgrindCase(
        "candles.snapshot_bar",
        setup=_SETUP
        + (
            "from bench import datagen\nfrom ttfast import CandleStore, ColumnBatch\n"
            "b = ColumnBatch('Candle', datagen.candle_snapshot_columns(20000))\n"
            "store = CandleStore(capacity=1 << 15)\n"
        ),
        stmt="store.apply(b)",
        toggle="__pyx_pw_*CandleStore_*apply",
        repeat=5,
        per=20001,
    ),
    CallgrindCase(
        "candles.live_eventbatch_update",
        setup=_SETUP
        + (
            "from bench import datagen\nfrom ttfast import FeedDecoder\n"
            "from ttfast.candles import CandleStore\n"
            "dec = FeedDecoder()\ndec.set_fields('Candle', list(datagen.CANDLE_FIELDS))\n"
            "fr = datagen.candle_feed_frames(10, 2, 10, rows_per_frame=10)[1]\n"
            "bs = [b for f in fr for b in dec.decode(f)]\n"
            "store = CandleStore()\n"
        ),
        # columns are materialized by the warm-up run (cached on the batch): the store's cost
        stmt="for b in bs: store.apply(b)",
        toggle="__pyx_pw_*CandleStore_*apply",
        per=200,
    ),
]
