"""CandleStore snapshot ingest (the newest-first fast path) against the §6.6 oracle.

The store copies a run of strictly newest-first snapshot rows (same symbol, plain or TX_PENDING)
straight into the front of the staging ring, as far as the ring's free room and the capacity
allow, and drops the rows a full map cannot keep; these properties drive every way in and out of
that path: shuffled order, duplicates (also of the bar just received), REMOVE inside the snapshot,
TX_PENDING rows, rows newer than the first one, other symbols interleaved, capacity smaller than
the snapshot, a second SNAPSHOT_BEGIN mid-way, SNAPSHOT_SNIP, unfinished snapshots followed by
live bars, and batch boundaries anywhere. Fed both as ColumnBatch columns and as real EventBatch
objects from the dxLink decoder.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttfast import CandleStore, ColumnBatch, FeedDecoder

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import datagen
from tests.oracles.candles import (
    DOUBLE_FIELDS,
    SERIES_DOUBLES,
    Event,
    OracleStore,
    events_to_columns,
    index_of,
)

MIN = 60_000
SYM, OTHER = "SPY{=m}", "QQQ{=m}"


def _bar(sym: str, flags: int, k: int, count: int = 1) -> Event:
    v = float(k) + 0.25
    return Event(sym, flags, index_of(k * MIN), k * MIN, count, (v, v + 1, v - 1, v) + (v,) * 6)


@st.composite
def snapshot_streams(draw: st.DrawFn) -> tuple[int, list[list[Event]]]:
    capacity = draw(st.sampled_from([1, 2, 5, 17, 64, 300, 4096]))
    events: list[Event] = []
    top = 1000
    for _ in range(draw(st.integers(1, 2))):  # one snapshot, sometimes a second one
        n = draw(st.integers(0, 400))
        order = draw(st.sampled_from(["newest_first", "newest_first", "shuffled", "noisy"]))
        ks = list(range(top, top - n, -1))
        if order == "shuffled":
            ks = draw(st.permutations(ks))
        rows = [_bar(SYM, 0, k, count=k % 7) for k in ks]
        if order == "noisy" and rows:
            for _ in range(draw(st.integers(1, 8))):
                pos = draw(st.integers(0, len(rows)))
                kind = draw(
                    st.sampled_from(
                        ["dup", "remove", "remove_absent", "tx", "newer", "sym", "prev", "prev"]
                    )
                )
                k = draw(st.integers(top - n - 3, top + 3))
                if kind == "prev" and pos > 0:  # repeat or remove the bar just received
                    prev = rows[pos - 1]
                    k = prev.time // MIN
                    kind = draw(st.sampled_from(["dup", "remove"]))
                if kind == "dup":
                    rows.insert(pos, _bar(SYM, 0, k, count=99))
                elif kind == "remove":
                    rows.insert(pos, _bar(SYM, 2, k))
                elif kind == "remove_absent":
                    rows.insert(pos, _bar(SYM, 2, top - n - 50))
                elif kind == "tx" and pos < len(rows):
                    e = rows[pos]
                    rows[pos] = Event(e.symbol, e.flags | 1, e.index, e.time, e.count, e.doubles)
                elif kind == "newer":
                    rows.insert(pos, _bar(SYM, 0, top + 10))
                elif kind == "sym":
                    rows.insert(pos, _bar(OTHER, 0, k))
        begin = draw(st.sampled_from([4, 5]))  # SNAPSHOT_BEGIN, sometimes with TX_PENDING
        if rows and rows[0].symbol == SYM:
            e = rows[0]
            rows[0] = Event(e.symbol, e.flags | begin, e.index, e.time, e.count, e.doubles)
        else:
            rows.insert(0, _bar(SYM, begin, top + 1))
        end = draw(st.sampled_from(["marker", "marker", "on_last", "snip", "none"]))
        if end == "marker":  # the 0x0A REMOVE|SNAPSHOT_END placeholder at fromTime
            rows.append(Event(SYM, 0x0A, index_of((top - n - 1) * MIN), (top - n - 1) * MIN))
        elif end == "on_last":
            e = rows[-1]
            rows[-1] = Event(e.symbol, e.flags | 8, e.index, e.time, e.count, e.doubles)
        elif end == "snip":
            rows.append(Event(SYM, 0x1A, index_of((top - n - 1) * MIN), (top - n - 1) * MIN))
        events += rows
        top += draw(st.integers(-5, 5))
    # live traffic afterwards: forming-bar updates and new bars
    k = top + 1
    for _ in range(draw(st.integers(0, 20))):
        k += draw(st.sampled_from([0, 0, 1, -3]))
        events.append(_bar(SYM, draw(st.sampled_from([0, 0, 0, 1, 2])), k, count=5))
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), max_size=8)))
    batches, lo = [], 0
    for c in [*cuts, len(events)]:
        if c > lo:
            batches.append(events[lo:c])
            lo = c
    return capacity, batches


def _assert_same(store: CandleStore, oracle: OracleStore) -> None:
    for sym, o in oracle.series.items():
        s = store[sym]
        cols = oracle.columns(sym)
        assert list(s.index) == cols["index"]
        assert list(s.time) == cols["time"]
        assert list(s.count) == cols["count"]
        for name in SERIES_DOUBLES:
            np.testing.assert_array_equal(getattr(s, name), np.array(cols[name], dtype=float))
        assert (s.ready, s.snip, s.in_snapshot, s.pending) == (
            o.ready,
            o.snip,
            o.building(),
            oracle.pending_count(sym),
        )
    st_ = store.stats()
    assert (st_["events"], st_["evicted"], st_["removed"], st_["snapshots"]) == (
        oracle.events,
        oracle.evicted,
        oracle.removed,
        oracle.snapshots,
    )


def _run(capacity: int, batches: list[list[Event]], as_batch: Any) -> None:
    store, oracle = CandleStore(capacity=capacity), OracleStore(capacity=capacity)
    for evs in batches:
        ch = store.apply(as_batch(evs))
        want = dict(oracle.apply_events(evs))
        assert {c.symbol: c.as_tuple() for c in ch} == want
        assert ch.symbols == list(want)
        _assert_same(store, oracle)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshot_streams())
def test_snapshot_paths_match_oracle(case: tuple[int, list[list[Event]]]) -> None:
    capacity, batches = case
    _run(capacity, batches, lambda evs: ColumnBatch("Candle", events_to_columns(evs)))


def _frame(evs: list[Event]) -> bytes:
    d = dict(zip(DOUBLE_FIELDS, range(10), strict=True))
    toks: list[str] = []
    for e in evs:
        by_name = {
            "eventSymbol": f'"{e.symbol}"',
            "eventTime": "0",
            "eventFlags": str(e.flags),
            "index": str(e.index),
            "time": str(e.time),
            "sequence": "0",
            "count": str(e.count),
        }
        for name in datagen.CANDLE_FIELDS:
            if name in by_name:
                toks.append(by_name[name])
            else:
                toks.append(datagen.java_double(e.doubles[d[name]]))
    return datagen._feed_data(3, [("Candle", toks)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshot_streams())
def test_snapshot_paths_match_oracle_from_decoded_event_batches(
    case: tuple[int, list[list[Event]]],
) -> None:
    capacity, batches = case
    dec = FeedDecoder()
    dec.set_fields("Candle", list(datagen.CANDLE_FIELDS))

    def as_event_batch(evs: list[Event]) -> Any:
        (b,) = dec.decode(_frame(evs))
        assert type(b).__name__ == "EventBatch" and b.size == len(evs)
        return b

    _run(capacity, batches, as_event_batch)


def test_big_newest_first_snapshot_then_live_bars() -> None:
    # 70k bars (past the ring's jump to its full buffer) into capacity 50k, then live appends
    n, cap = 70_000, 50_000
    cols = datagen.candle_snapshot_columns(n)
    store = CandleStore(capacity=cap)
    for i in range(0, n + 1, 7_000):
        store.apply(ColumnBatch("Candle", {k: v[i : i + 7_000] for k, v in cols.items()}))
    s = store["SPY{=m}"]
    assert s.ready and len(s) == cap and store.evicted == n - cap
    want_t = cols["time"][:cap][::-1]
    np.testing.assert_array_equal(s.time, want_t)
    np.testing.assert_array_equal(s.close, cols["close"][:cap][::-1])
    t = int(want_t[-1])
    for j in range(1, 30_000, 1000):  # fills the free room, then the ring re-centers/grows
        ts = [t + k * MIN for k in range(j, min(j + 1000, 30_000))]
        store.apply(ColumnBatch("Candle", {"eventSymbol": ["SPY{=m}"] * len(ts), "time": ts}))
    assert len(s) == cap and s.time[-1] == t + 29_999 * MIN and s.time[0] == want_t[29_999]
    assert bool(np.all(np.diff(s.time) == MIN)) and math.isnan(s.close[-1])


def test_symbol_cache_survives_discard_and_new_objects() -> None:
    # apply() caches symbol object -> series across calls; discard() must invalidate it
    store = CandleStore(capacity=10)
    sym = "".join(["A", "{=m}"])  # a str object of our own, reused like the decoder does
    b1 = ColumnBatch("Candle", {"eventSymbol": [sym], "time": [MIN], "close": [1.0]})
    store.apply(b1)
    first = store[sym]
    assert store.discard(sym) and sym not in store
    store.apply(ColumnBatch("Candle", {"eventSymbol": [sym], "time": [2 * MIN], "close": [2.0]}))
    assert store[sym] is not first and list(store[sym].close) == [2.0] and len(first) == 1
    other = "".join(["A", "{=m}"])  # equal string, another object: same series
    store.apply(ColumnBatch("Candle", {"eventSymbol": [other], "time": [3 * MIN], "close": [3.0]}))
    assert list(store[sym].close) == [2.0, 3.0]
    # many symbols (more than the cache holds) in one store keep their own series
    syms = [f"S{k}" for k in range(500)]
    for _ in range(2):
        store.apply(
            ColumnBatch("Candle", {"eventSymbol": syms, "time": [MIN] * 500, "close": [1.0] * 500})
        )
    assert len(store) == 501 and all(len(store[x]) == 1 for x in syms)
