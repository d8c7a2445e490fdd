"""CandleStore under bad input and resource limits (issue 13, items 8, 9, 11 and 12).

* a never-committed TX_PENDING group holds at most `capacity` events per symbol (the oldest give
  way and are counted in `pending_dropped`);
* at most `max_symbols` symbols: rows of refused new symbols are skipped and counted
  (`symbols_refused`, `rows_refused`), the rest of the batch is applied, `discard` frees a slot;
* the dxFeed index is unsigned: bars after 2038-01-19 (and in 2100) sort after older ones, and
  `candle_index`/`candle_time` round-trip up to 2106-02-07;
* rows with eventFlags outside [0, 2**31), or (without an index column) a sequence outside
  [0, 2**22) or a time outside the index's range are skipped and counted in `rejected`.

Each unit test failed on the store before the fix; the property tests compare the store with the
§6.6 oracle (tests/oracles/candles.py), which states these rules literally.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttfast import ColumnBatch, FeedDecoder
from ttfast.candles import CandleStore, candle_index, candle_time

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench import datagen
from tests.oracles.candles import (
    DOUBLE_FIELDS,
    MAX_SEQUENCE,
    SERIES_DOUBLES,
    TIME_LIMIT,
    Event,
    OracleStore,
    events_to_columns,
    index_of,
)

MIN = 60_000
T0 = 1_700_000_000_000
Y2038 = (1 << 31) * 1000  # 2038-01-19T03:14:08Z: the first second whose index is >= 2**63
Y2100 = 4_102_444_800_000  # 2100-01-01T00:00:00Z
COUNTERS = (
    "events",
    "evicted",
    "removed",
    "rejected",
    "snapshots",
    "pending_dropped",
    "symbols_refused",
    "rows_refused",
)


def signed(index: int) -> int:
    """The index as a Java long (what a dxFeed server prints and the decoder's int64 holds)."""
    return index - (1 << 64) if index >= 1 << 63 else index


def changes_of(ch: Any) -> dict[str, tuple[int, int, int, int, int]]:
    return {c.symbol: c.as_tuple() for c in ch}


def assert_same(store: CandleStore, oracle: OracleStore) -> None:
    assert store.symbols() == list(oracle.series)
    for sym, o in oracle.series.items():
        s = store[sym]
        cols = oracle.columns(sym)
        assert s.index.tolist() == cols["index"]
        assert s.time.tolist() == cols["time"]
        assert s.count.tolist() == cols["count"]
        for name in SERIES_DOUBLES:
            np.testing.assert_array_equal(getattr(s, name), np.array(cols[name], dtype=float))
        assert (s.ready, s.snip, s.in_snapshot, s.pending) == (
            o.ready,
            o.snip,
            o.building(),
            oracle.pending_count(sym),
        )
    stats = store.stats()
    assert {k: stats[k] for k in COUNTERS} == {k: getattr(oracle, k) for k in COUNTERS}
    assert all(getattr(store, k) == stats[k] for k in COUNTERS)


# ------------------------------------------------------------------ 8: bounded TX_PENDING hold


def test_never_committed_transaction_holds_at_most_capacity_events() -> None:
    store = CandleStore(capacity=16)
    n = 200_000
    ts = T0 + MIN * np.arange(n, dtype=np.int64)
    held = ColumnBatch(
        "Candle",
        {"eventSymbol": ["X"] * n, "eventFlags": [1] * n, "time": ts, "close": np.arange(n)},
    )
    assert not store.apply(held)
    s = store["X"]
    assert len(s) == 0 and s.pending == 16
    assert store.pending_dropped == n - 16 == store.stats()["pending_dropped"]
    assert store.events == n  # applied to the store's state (held), not rejected
    # the transaction finally ends: the newest 16 held events and the closing one are applied
    ch = store.apply(
        ColumnBatch("Candle", {"eventSymbol": ["X"], "time": [T0 + n * MIN], "close": [float(n)]})
    )
    assert s.pending == 0 and len(s) == 16
    assert s.close.tolist() == [float(k) for k in range(n - 15, n + 1)]
    assert ch["X"].evicted == 1 and store.pending_dropped == n - 16


def test_held_events_wrap_around_in_arrival_order() -> None:
    # capacity 3: the hold keeps the newest 3 rows; a REMOVE among them must still come after
    # the write it removes
    store, oracle = CandleStore(capacity=3), OracleStore(capacity=3)
    evs = [Event("X", 1, index_of(k * MIN), k * MIN, k, (float(k),) * 10) for k in range(7)]
    evs.append(Event("X", 3, index_of(6 * MIN), 6 * MIN))  # TX|REMOVE of the newest write
    evs.append(Event("X", 0, index_of(2 * MIN), 2 * MIN, 9, (9.0,) * 10))
    for part in (evs[:4], evs[4:]):
        assert changes_of(store.apply(ColumnBatch("Candle", events_to_columns(part)))) == dict(
            oracle.apply_events(part)
        )
        assert_same(store, oracle)
    assert store.pending_dropped == 5 and store["X"].time.tolist() == [2 * MIN, 5 * MIN]


# ------------------------------------------------------------------ 9: symbol limit


def test_max_symbols_refuses_new_symbols_and_applies_the_rest() -> None:
    store = CandleStore(capacity=8, max_symbols=2)
    assert store.max_symbols == 2
    syms = ["A", "B", "C", "A", "C", "D", "B"]
    ch = store.apply(
        ColumnBatch(
            "Candle",
            {"eventSymbol": syms, "time": [MIN * k for k in range(7)], "close": range(1, 8)},
        )
    )
    assert store.symbols() == ["A", "B"] and ch.symbols == ["A", "B"]
    assert store["A"].close.tolist() == [1.0, 4.0] and store["B"].close.tolist() == [2.0, 7.0]
    assert (store.symbols_refused, store.rows_refused, store.events, store.rejected) == (2, 3, 4, 0)
    stats = store.stats()
    assert (stats["symbols_refused"], stats["rows_refused"], stats["symbols"]) == (2, 3, 2)
    # each call counts each refused symbol once
    store.apply(ColumnBatch("Candle", {"eventSymbol": ["C", "C"], "time": [MIN, 2 * MIN]}))
    assert (store.symbols_refused, store.rows_refused) == (3, 5)
    # apply_bar of a refused symbol: counted, nothing created, no exception
    assert not store.apply_bar("E", MIN, 1, 1, 1, 1, 1)
    assert "E" not in store and (store.symbols_refused, store.rows_refused) == (4, 6)
    # discard frees a slot for a new symbol (the worker drops idle symbols this way)
    assert store.discard("B") and len(store) == 1
    ch = store.apply(ColumnBatch("Candle", {"eventSymbol": ["C", "D"], "time": [MIN, MIN]}))
    assert store.symbols() == ["A", "C"] and ch.symbols == ["C"] and store.rows_refused == 7
    assert store.apply_bar("A", 9 * MIN, 1, 1, 1, 1, 1)  # known symbols keep working


def test_max_symbols_with_the_decoders_reused_symbol_objects() -> None:
    # the decoder hands out one str object per symbol: refusals must not poison the symbol cache
    dec = FeedDecoder()
    dec.set_fields("Candle", ["eventSymbol", "eventFlags", "time", "close"])
    store = CandleStore(max_symbols=1)
    frame = b'{"type":"FEED_DATA","channel":3,"data":["Candle",[%s]]}'
    rows = ",".join(f'"{s}",0,{T0 + k * MIN},{k}' for k, s in enumerate("ABABAB"))
    for _ in range(2):
        (b,) = dec.decode(frame % rows.encode())
        store.apply(b)
    assert store.symbols() == ["A"] and store["A"].close.tolist() == [0.0, 2.0, 4.0]
    assert (store.symbols_refused, store.rows_refused) == (2, 6)
    assert store.discard("A")
    rows = ",".join(f'"{s}",0,{T0 + k * MIN},{k}' for k, s in enumerate("BABABA"))
    (b,) = dec.decode(frame % rows.encode())
    store.apply(b)
    assert store.symbols() == ["B"] and store["B"].close.tolist() == [0.0, 2.0, 4.0]


def test_many_symbols_stay_bounded() -> None:
    store = CandleStore(capacity=4, max_symbols=1000)
    syms = [f"S{k}" for k in range(100_000)]
    store.apply(ColumnBatch("Candle", {"eventSymbol": syms, "time": [MIN] * len(syms)}))
    assert len(store) == 1000 and store.symbols() == syms[:1000]
    assert store.symbols_refused == store.rows_refused == 99_000


def test_max_symbols_is_validated() -> None:
    assert CandleStore().max_symbols == 10_000
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_symbols"):
            CandleStore(max_symbols=bad)
    with pytest.raises(TypeError):
        CandleStore(16, 10)  # type: ignore[misc]  # keyword-only
    assert "max_symbols=7" in repr(CandleStore(max_symbols=7))


# ------------------------------------------------------------------ 11: index past 2038


def test_candle_index_is_unsigned_and_round_trips_past_2038() -> None:
    assert candle_index(Y2038) == 1 << 63
    assert candle_index(Y2038 - 1) == index_of(Y2038 - 1) < 1 << 63
    for t in (0, 1, 999, 1000, Y2038 - 1, Y2038, Y2038 + 1, Y2100, Y2100 + 123, TIME_LIMIT - 1):
        for seq in (0, 1, MAX_SEQUENCE):
            i = candle_index(t, seq)
            assert i == index_of(t, seq) and 0 <= i < 1 << 64
            assert candle_time(i) == t
            assert candle_time(signed(i)) == t  # the Java long form reads the same
    for bad_t in (-1, -(10**12), TIME_LIMIT, 1 << 62):
        with pytest.raises(ValueError, match="time"):
            candle_index(bad_t)
    for bad_seq in (-1, 1 << 22, 1 << 40):
        with pytest.raises(ValueError, match="sequence"):
            candle_index(T0, bad_seq)
    for bad_i in (1 << 64, -(1 << 63) - 1):
        with pytest.raises(ValueError, match="index"):
            candle_time(bad_i)


_AROUND = [Y2038 - 2 * MIN, Y2038 - MIN, Y2038 - 1, Y2038, Y2038 + MIN, Y2100]


def test_apply_bar_orders_bars_across_2038_and_in_2100() -> None:
    store = CandleStore()
    for k, t in enumerate(_AROUND):
        ch = store.apply_bar("X", t, k, k, k, k, 1.0)
        assert ch["X"].appended == 1 and not ch["X"].history_changed
    s = store["X"]
    assert s.time.tolist() == _AROUND and s.last is not None and s.last.close == 5.0
    assert s.index.tolist() == [candle_index(t) for t in _AROUND] and s.index.dtype == np.uint64
    assert s.last.index == candle_index(Y2100) and s.position(Y2038) == 3
    ch = store.apply_bar("X", Y2038 - MIN, 9, 9, 9, 9, 1.0)  # a correction before the boundary
    assert ch["X"].corrected and ch["X"].first == 1 and s.close[1] == 9.0
    ch = store.apply_bar("X", Y2100, 7, 7, 7, 7, 1.0)  # the forming bar
    assert ch["X"].revised_last and not ch["X"].corrected and s.last.close == 7.0
    for bad in (-1, TIME_LIMIT):
        with pytest.raises(ValueError, match="time"):
            store.apply_bar("X", bad, 1, 1, 1, 1, 1)
    assert s.position(-1) == -1 and s.position(TIME_LIMIT) == -1


def _frame(rows: list[tuple[str, int, int, int, float]]) -> bytes:
    """A Candle FEED_DATA frame in the SDK's field order; the index is printed as a Java long."""
    toks: list[str] = []
    for sym, flags, index, t, close in rows:
        by_name = {
            "eventSymbol": f'"{sym}"',
            "eventTime": "0",
            "eventFlags": str(flags),
            "index": str(signed(index)),
            "time": str(t),
            "sequence": "0",
            "count": "1",
        }
        for name in datagen.CANDLE_FIELDS:
            toks.append(by_name.get(name, datagen.java_double(close)))
    return datagen._feed_data(3, [("Candle", toks)])


def test_decoded_snapshot_across_2038_then_live_updates() -> None:
    dec = FeedDecoder()
    dec.set_fields("Candle", list(datagen.CANDLE_FIELDS))
    store = CandleStore()
    snap = [Y2100, Y2038 + MIN, Y2038, Y2038 - MIN, Y2038 - 2 * MIN]
    rows = [("X", 4 if k == 0 else 0, candle_index(t), t, float(k)) for k, t in enumerate(snap)]
    rows.append(("X", 10, candle_index(Y2038 - 3 * MIN), Y2038 - 3 * MIN, math.nan))
    (b,) = dec.decode(_frame(rows))
    assert int(b.column("index")[0]) < 0  # what a Java server sends past 2038
    ch = store.apply(b)
    s = store["X"]
    assert s.ready and s.time.tolist() == snap[::-1] and ch["X"].appended == 5
    assert s.last is not None and s.last.time == Y2100 and s.last.close == 0.0
    (b,) = dec.decode(_frame([("X", 0, candle_index(Y2100), Y2100, 42.0)]))
    ch = store.apply(b)
    assert changes_of(ch) == {"X": (2, 0, 0, 0, 4)} and s.last.close == 42.0 and len(s) == 5
    (b,) = dec.decode(_frame([("X", 0, candle_index(Y2100 + MIN), Y2100 + MIN, 43.0)]))
    assert store.apply(b)["X"].appended == 1 and s.last.close == 43.0
    # the same bars from a ColumnBatch with the unsigned indices, and without an index column
    for cols in (
        {"index": [candle_index(t) for t in snap], "time": snap},
        {"index": np.array([candle_index(t) for t in snap], dtype=np.uint64)},
        {"time": snap},
    ):
        other = CandleStore()
        other.apply(ColumnBatch("Candle", {"eventSymbol": ["Y"] * 5, "close": range(5), **cols}))
        assert other["Y"].time.tolist() == snap[::-1]
        assert other["Y"].close.tolist() == [4.0, 3.0, 2.0, 1.0, 0.0]
        assert other["Y"].last is not None and other["Y"].last.time == Y2100


def test_candle_batch_rejects_indices_outside_64_bits() -> None:
    with pytest.raises(ValueError, match="index"):
        ColumnBatch("Candle", {"eventSymbol": ["A", "A"], "index": [1 << 63, -1]})
    with pytest.raises(ValueError, match="index"):
        ColumnBatch("Candle", {"eventSymbol": ["A"], "index": [1 << 64]})


# ------------------------------------------------------------------ 12: bad eventFlags, sequence


def test_rows_with_bad_event_flags_are_rejected() -> None:
    store = CandleStore()
    flags = [0, (1 << 32) + 4, -1, 1 << 31, 1 << 40, 0]
    store.apply(
        ColumnBatch(
            "Candle",
            {
                "eventSymbol": ["A"] * 6,
                "eventFlags": flags,
                "time": [T0 + k * MIN for k in range(6)],
                "close": range(6),
            },
        )
    )
    s = store["A"]
    assert s.close.tolist() == [0.0, 5.0] and not s.in_snapshot and s.pending == 0
    assert store.rejected == 4 and store.events == 2 and store.removed == 0


def test_rows_with_bad_sequence_or_time_are_rejected_without_an_index_column() -> None:
    store = CandleStore()
    seqs = [0, 1 << 22, -1, (1 << 22) + 5, 7, 0, 0]
    times = [T0, T0, T0, T0, T0, -1, TIME_LIMIT]
    store.apply(
        ColumnBatch(
            "Candle", {"eventSymbol": ["A"] * 7, "time": times, "sequence": seqs, "close": range(7)}
        )
    )
    s = store["A"]
    assert s.index.tolist() == [candle_index(T0), candle_index(T0, 7)]
    assert s.close.tolist() == [0.0, 4.0] and s.time.tolist() == [T0, T0]
    assert store.rejected == 5 and store.events == 2
    # a bad row never creates a series
    store.apply(ColumnBatch("Candle", {"eventSymbol": ["B"], "time": [T0], "sequence": [-5]}))
    assert "B" not in store and store.rejected == 6


def test_decoded_batch_with_bad_event_flags() -> None:
    dec = FeedDecoder()
    dec.set_fields("Candle", list(datagen.CANDLE_FIELDS))
    rows = [
        ("A", 0, candle_index(T0), T0, 1.0),
        ("A", (1 << 32) + 4, candle_index(T0 + MIN), T0 + MIN, 2.0),
        ("A", -1, candle_index(T0 + 2 * MIN), T0 + 2 * MIN, 3.0),
        ("A", 0, candle_index(T0 + 3 * MIN), T0 + 3 * MIN, 4.0),
    ]
    (b,) = dec.decode(_frame(rows))
    store = CandleStore()
    store.apply(b)
    assert store["A"].close.tolist() == [1.0, 4.0] and store.rejected == 2


# ------------------------------------------------------------------ properties vs the oracle

_SYMS = ["A{=m}", "B{=m}", "C{=m}", "D{=m}"]
_LIMIT_FLAGS = [0, 0, 1, 1, 1, 1, 2, 3, 4, 5, 8, 9, 10, 12, 16]


@st.composite
def limit_streams(draw: st.DrawFn) -> tuple[int, int, list[Any]]:
    """Long transactions, more symbols than max_symbols, discards and apply_bar in between."""
    capacity = draw(st.sampled_from([1, 2, 3, 5]))
    max_symbols = draw(st.sampled_from([1, 2, 3, 10_000]))
    ops: list[Any] = []
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["batch", "batch", "batch", "discard", "bar"]))
        sym = draw(st.sampled_from(_SYMS))
        k = draw(st.integers(0, 12))
        if kind == "discard":
            ops.append(("discard", sym))
        elif kind == "bar":
            ops.append(("bar", sym, k * MIN, float(k)))
        else:
            evs = []
            for si, k, flags in draw(
                st.lists(
                    st.tuples(st.integers(0, 3), st.integers(0, 12), st.sampled_from(_LIMIT_FLAGS)),
                    max_size=30,
                )
            ):
                t = T0 + k * MIN
                evs.append(Event(_SYMS[si], flags, index_of(t), t, k, (float(k),) * 10))
            ops.append(evs)
    return capacity, max_symbols, ops


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limit_streams())
def test_limits_match_oracle(case: tuple[int, int, list[Any]]) -> None:
    capacity, max_symbols, ops = case
    store = CandleStore(capacity=capacity, max_symbols=max_symbols)
    oracle = OracleStore(capacity=capacity, max_symbols=max_symbols)
    for op in ops:
        if isinstance(op, list):
            ch = store.apply(ColumnBatch("Candle", events_to_columns(op)))
            want = dict(oracle.apply_events(op))
            assert changes_of(ch) == want and ch.symbols == list(want)
        elif op[0] == "discard":
            assert store.discard(op[1]) == oracle.discard(op[1])
        else:
            _, sym, t, c = op
            t += T0
            got = changes_of(store.apply_bar(sym, t, c, c + 1, c - 1, c, 10.0))
            assert got == dict(oracle.apply_bar(sym, t, c, c + 1, c - 1, c, 10.0))
        assert_same(store, oracle)


_BASES = [T0, Y2038 - 6 * MIN, Y2038 - 6 * MIN + 1, Y2100, TIME_LIMIT - 13 * MIN]
_BAD_FLAGS = [-1, -(1 << 31), 1 << 31, (1 << 32) + 4, (1 << 32) + 1, 1 << 62]
_ROW = st.tuples(
    st.integers(0, 1),  # symbol
    st.integers(-1, 13),  # time slot (-1 -> before the base, 13 -> past it)
    st.sampled_from([0, 0, 0, 7, 999]),  # ms offset
    st.sampled_from([0] * 8 + [1, 2, 4, 8, 10, 12, 0x40] + _BAD_FLAGS),
    st.sampled_from([0] * 8 + [1, 5, MAX_SEQUENCE, -1, 1 << 22, (1 << 22) + 3, 1 << 40]),
)


@st.composite
def index_streams(draw: st.DrawFn) -> tuple[int, bool, list[list[Event]]]:
    """Bars around the 2038 boundary / in 2100 / at the index's end, with bad flags, sequences
    and (for batches without an index column) times outside the index range."""
    capacity = draw(st.sampled_from([1, 3, 8, 64]))
    with_index = draw(st.booleans())
    base = draw(st.sampled_from(_BASES))
    batches: list[list[Event]] = []
    for rows in draw(st.lists(st.lists(_ROW, max_size=20), min_size=1, max_size=6)):
        evs = []
        for si, k, off, flags, seq in rows:
            t = base + k * MIN + off
            if k == -1 and draw(st.booleans()):
                t = -1 - off  # before 1970
            good_seq = seq if 0 <= seq <= MAX_SEQUENCE else 0
            index = index_of(t, good_seq) if 0 <= t < TIME_LIMIT else 0
            d = tuple(float(k) + j for j in range(10))
            evs.append(Event(_SYMS[si], flags, index, t, k, d, sequence=seq))
        batches.append(evs)
    return capacity, with_index, batches


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index_streams())
def test_index_range_and_bad_rows_match_oracle(case: tuple[int, bool, list[list[Event]]]) -> None:
    capacity, with_index, batches = case
    store, oracle = CandleStore(capacity=capacity), OracleStore(capacity=capacity)
    for evs in batches:
        if with_index:  # rows with a time outside the index range carry no index: drop them
            evs = [e for e in evs if 0 <= e.time < TIME_LIMIT]
        cols = events_to_columns(evs, with_index=with_index, doubles=DOUBLE_FIELDS)
        ch = store.apply(ColumnBatch("Candle", cols))
        want = dict(oracle.apply_events(evs, derived_index=not with_index))
        assert changes_of(ch) == want and ch.symbols == list(want)
        assert_same(store, oracle)
