"""ttfast CandleStore: real-world dxLink shapes (spec §6.5/§6.6) and the oracle property test."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttfast import ColumnBatch
from ttfast.candles import (
    CHANGE_APPENDED,
    CHANGE_CORRECTED,
    CHANGE_EVICTED,
    CHANGE_REMOVED,
    CHANGE_REVISED_LAST,
    CHANGE_SNAPSHOT,
    CandleStore,
    candle_index,
    candle_time,
    normalize_candle_symbol,
)

# the oracle lives in tests/oracles (repository root on sys.path; no package __init__ needed)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.oracles.candles import (
    DOUBLE_FIELDS,
    SERIES_DOUBLES,
    Event,
    OracleStore,
    events_to_columns,
    index_of,
)

NaN = math.nan
FIELDS_QC = (
    "eventFlags",
    "eventSymbol",
    "time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "openInterest",
)
DAY = 86_400_000


def batch(fields: tuple[str, ...], rows: list[tuple[Any, ...]]) -> ColumnBatch:
    return ColumnBatch.from_rows("Candle", fields, rows)


def changes_of(ch: Any) -> dict[str, tuple[int, int, int, int, int]]:
    return {c.symbol: c.as_tuple() for c in ch}


# ------------------------------------------------------------------------------ index / symbols


def test_candle_index_matches_spec_values() -> None:
    assert candle_index(1756293300000) == 7543222285683916800  # I-TW267 Candle
    assert candle_index(1685328300152, 53148) == 7238429932160864156  # PR-TW47 TimeAndSale
    assert candle_index(1684559855338) == 7235129486797176832  # Greeks
    assert candle_time(7238429932160864156) == 1685328300152
    with pytest.raises(ValueError):  # before 1970: outside the unsigned index
        candle_index(-1)
    with pytest.raises(ValueError):
        candle_index(0, 1 << 22)


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("AAPL{=1d}", "AAPL{=d}"),
        ("AAPL{=d}", "AAPL{=d}"),
        ("QQQ{=5m}", "QQQ{=5m}"),
        ("IBM{=mo}", "IBM{=mo}"),
        ("IBM{=1MO}", "IBM{=mo}"),
        ("SPY{=1h}", "SPY{=h}"),
        ("SPY{=5M}", "SPY{=5m}"),
        ("SPY{=5Minutes}", "SPY{=5m}"),
        ("SPY{=2Days}", "SPY{=2d}"),
        ("SPY{=1.5h}", "SPY{=1.5h}"),
        ("SPY{=10.0m}", "SPY{=10m}"),
        ("AAPL{=1t}", "AAPL"),
        ("AAPL{=t}", "AAPL"),
        ("AAPL", "AAPL"),
        ("AAPL{=5m,tho=true}", "AAPL{=5m,tho=true}"),
        ("AAPL{tho=TRUE,=5m}", "AAPL{=5m,tho=true}"),
        ("AAPL{=5m,tho=false}", "AAPL{=5m}"),
        ("EUR/USD{=m,price=bid}", "EUR/USD{=m,price=bid}"),
        ("EUR/USD{=m,price=BID}", "EUR/USD{=m,price=bid}"),
        ("/ES{=d,price=s}", "/ES{=d,price=s}"),
        ("/ES{=d,price=settlement}", "/ES{=d,price=s}"),
        ("X{=d,price=last,a=m}", "X{=d}"),
        ("X{a=s,=d}", "X{=d,a=s}"),
        ("AAPL&Q{=15s}", "AAPL&Q{=15s}"),
        ("/ESU24:XCME{=1600t}", "/ESU24:XCME{=1600t}"),
    ],
)
def test_normalize_candle_symbol(raw: str, norm: str) -> None:
    assert normalize_candle_symbol(raw) == norm
    assert normalize_candle_symbol(norm) == norm  # idempotent


@pytest.mark.parametrize(
    "bad",
    ["AAPL{=1d", "AAPL{d}", "AAPL{=0m}", "AAPL{=5q}", "{=d}", "AAPL{=d,=m}", "AAPL{=d,price=foo}"],
)
def test_normalize_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        normalize_candle_symbol(bad)


# ------------------------------------------------------------------------------ real shapes


def qc_snapshot(
    symbol: str = "AAPL{=d}", n: int = 5, t_new: int = 1750032000000, from_time: int = 926208000000
) -> list[tuple[Any, ...]]:
    """The QC sample's shape: 0x04 on the newest bar, 0 below, 0x0A NaN marker at fromTime."""
    rows: list[tuple[Any, ...]] = []
    for k in range(n):
        t = t_new - k * DAY
        c = 197.3 - k
        rows.append((4 if k == 0 else 0, symbol, t, c - 0.5, c + 1, c - 1, c, 1e6 + k, NaN))
    rows.append((10, symbol, from_time, NaN, NaN, NaN, NaN, NaN, NaN))
    return rows


def test_snapshot_newest_first_with_end_marker() -> None:
    store = CandleStore()
    ch = store.apply(batch(FIELDS_QC, qc_snapshot()))
    s = store["AAPL{=d}"]
    assert len(s) == 5 and s.ready and not s.snip and not s.in_snapshot and s.pending == 0
    assert list(s.time) == [1750032000000 - k * DAY for k in range(4, -1, -1)]  # chronological
    assert not np.isnan(s.close).any()  # the NaN end marker never became a bar
    assert 926208000000 not in s.time
    assert s.last is not None and s.last.close == 197.3 and s.last.time == 1750032000000
    assert changes_of(ch) == {"AAPL{=d}": (CHANGE_SNAPSHOT | CHANGE_APPENDED, 5, 0, 0, 0)}
    assert np.isnan(s.vwap).all()  # absent column -> NaN
    assert list(s.count) == [0] * 5


def test_snapshot_spanning_batches_is_invisible_until_end() -> None:
    store = CandleStore()
    rows = qc_snapshot(n=10)
    assert not store.apply(batch(FIELDS_QC, rows[:4]))
    s = store["AAPL{=d}"]
    assert len(s) == 0 and not s.ready and s.in_snapshot and s.pending == 4
    assert not store.apply(batch(FIELDS_QC, rows[4:8]))
    ch = store.apply(batch(FIELDS_QC, rows[8:]))
    assert len(s) == 10 and s.ready and ch[0].snapshot and s.pending == 0


def test_empty_snapshot_0x0E() -> None:
    store = CandleStore()
    ch = store.apply(
        batch(FIELDS_QC, [(14, "SPY{=5m}", 1700000000000, NaN, NaN, NaN, NaN, NaN, NaN)])
    )
    s = store["SPY{=5m}"]
    assert len(s) == 0 and s.ready and s.last is None
    assert changes_of(ch) == {"SPY{=5m}": (CHANGE_SNAPSHOT, 0, 0, 0, 0)}


def test_one_event_snapshot_begin_and_end_together() -> None:
    store = CandleStore()
    store.apply(batch(FIELDS_QC, [(12, "X{=m}", 60_000, 1, 2, 0.5, 1.5, 10, NaN)]))
    assert len(store["X{=m}"]) == 1 and store["X{=m}"].ready


def test_snapshot_snip() -> None:
    store = CandleStore()
    rows = qc_snapshot(n=3)[:-1]
    last = list(rows[-1])
    last[0] = 0x10  # the oldest delivered bar ends the snapshot with SNIP
    rows[-1] = tuple(last)
    store.apply(batch(FIELDS_QC, rows))
    s = store["AAPL{=d}"]
    assert s.ready and s.snip and len(s) == 3
    # a later complete snapshot clears the snip mark
    store.apply(batch(FIELDS_QC, qc_snapshot(n=2)))
    assert s.ready and not s.snip and len(s) == 2


def test_tx_pending_correction_of_older_bar_closed_by_plain_event() -> None:
    store = CandleStore()
    store.apply(batch(FIELDS_QC, qc_snapshot(n=5)))
    s = store["AAPL{=d}"]
    old_t = 1750032000000 - 3 * DAY
    before = s.close
    # the correction arrives as TX_PENDING: held, not visible
    ch = store.apply(batch(FIELDS_QC, [(1, "AAPL{=d}", old_t, 1, 2, 0.5, 99.0, 5, NaN)]))
    assert not ch and s.pending == 1 and np.array_equal(s.close, before)
    # the transaction closes with a flags-0 update of the forming bar
    ch = store.apply(batch(FIELDS_QC, [(0, "AAPL{=d}", 1750032000000, 1, 2, 0.5, 198.0, 7, NaN)]))
    assert s.pending == 0
    assert s.close[1] == 99.0 and s.close[-1] == 198.0
    rec = ch["AAPL{=d}"]
    assert rec.corrected and rec.revised_last and rec.history_changed
    assert rec.first == 1 and rec.appended == 0
    assert rec.flags == CHANGE_CORRECTED | CHANGE_REVISED_LAST


def test_tx_pending_inside_snapshot_and_on_end_event() -> None:
    # I-GN83: older snapshot rows may carry TX_PENDING; boundaries come only from BEGIN/END
    store = CandleStore()
    rows = qc_snapshot(n=4)
    rows = [rows[0]] + [(r[0] | 1, *r[1:]) for r in rows[1:]]  # incl. the end marker: 0x0B
    store.apply(batch(FIELDS_QC, rows))
    s = store["AAPL{=d}"]
    assert len(s) == 0 and not s.ready and s.pending == 5  # END with TX: still held
    ch = store.apply(batch(FIELDS_QC, [(0, "AAPL{=d}", 1750032000000, 1, 2, 0.5, 200.0, 7, NaN)]))
    assert len(s) == 4 and s.ready and s.close[-1] == 200.0 and ch[0].snapshot


def test_second_snapshot_mid_stream_replaces_everything() -> None:
    store = CandleStore()
    store.apply(batch(FIELDS_QC, qc_snapshot(n=5)))
    s = store["AAPL{=d}"]
    newer = qc_snapshot(n=3, t_new=1750032000000 + 10 * DAY, from_time=1750032000000 + 7 * DAY)
    store.apply(batch(FIELDS_QC, newer[:2]))
    # while the new snapshot streams in, the old bars stay visible but the series is not ready
    assert len(s) == 5 and not s.ready and s.in_snapshot
    ch = store.apply(batch(FIELDS_QC, newer[2:]))
    assert s.ready and len(s) == 3 and s.time[0] == 1750032000000 + 8 * DAY
    assert ch[0].snapshot and ch[0].first == 0 and ch[0].appended == 3


def test_forming_bar_updates_with_growing_count() -> None:
    # I-TW267: the same index repeated with count 7 -> 9 -> 10, then the next bar
    t = 1756293300000
    fields = (
        "eventSymbol",
        "eventFlags",
        "index",
        "time",
        "count",
        "open",
        "high",
        "low",
        "close",
        "volume",
    )
    store = CandleStore()
    store.apply(
        batch(
            fields,
            [
                ("QQQ{=5m}", 4, candle_index(t), t, 7, 570.1, 570.5, 570.0, 570.2, 700.0),
                (
                    "QQQ{=5m}",
                    10,
                    candle_index(t - 300_000),
                    t - 300_000,
                    0,
                    NaN,
                    NaN,
                    NaN,
                    NaN,
                    NaN,
                ),
            ],
        )
    )
    s = store["QQQ{=5m}"]
    assert len(s) == 1
    ch = store.apply(
        batch(
            fields,
            [
                ("QQQ{=5m}", 0, 7543222285683916800, t, 9, 570.1, 570.6, 570.0, 570.6, 900.0),
                ("QQQ{=5m}", 0, 7543222285683916800, t, 10, 570.1, 570.6, 569.9, 570.0, 1000.0),
            ],
        )
    )
    assert len(s) == 1 and s.last is not None and s.last.count == 10 and s.last.close == 570.0
    assert changes_of(ch) == {"QQQ{=5m}": (CHANGE_REVISED_LAST, 0, 0, 0, 0)}
    ch = store.apply(
        batch(
            fields,
            [
                ("QQQ{=5m}", 0, candle_index(t), t, 11, 570.1, 570.6, 569.9, 570.3, 1100.0),
                (
                    "QQQ{=5m}",
                    0,
                    candle_index(t + 300_000),
                    t + 300_000,
                    1,
                    570.3,
                    570.3,
                    570.3,
                    570.3,
                    50.0,
                ),
            ],
        )
    )
    rec = ch[0]
    assert rec.revised_last and rec.appended == 1 and rec.first == 0 and not rec.history_changed
    assert list(s.count) == [11, 1]


def test_remove_event_deletes_bar_and_is_never_stored() -> None:
    store = CandleStore()
    store.apply(batch(FIELDS_QC, qc_snapshot(n=4)))
    s = store["AAPL{=d}"]
    t = 1750032000000 - 2 * DAY
    ch = store.apply(batch(FIELDS_QC, [(2, "AAPL{=d}", t, NaN, NaN, NaN, NaN, NaN, NaN)]))
    assert len(s) == 3 and t not in s.time
    assert changes_of(ch) == {"AAPL{=d}": (CHANGE_REMOVED, 0, 1, 0, 1)}
    # removing an absent bar changes nothing and reports nothing
    assert not store.apply(batch(FIELDS_QC, [(2, "AAPL{=d}", t, NaN, NaN, NaN, NaN, NaN, NaN)]))
    assert store.removed == 1


def test_update_of_the_bar_before_a_removed_last_bar_is_a_correction() -> None:
    # REMOVE of the last bar, then (same call) a plain write of the bar that is now last: that
    # bar is older than the previous last one, so the write is a CORRECTION (the forming-bar
    # fast path used to report only REMOVED)
    store, oracle = CandleStore(), OracleStore()
    first = [Event("A", 0, index_of(k * 60_000), k * 60_000, k, (float(k),) * 10) for k in (0, 6)]
    second = [
        Event("A", 2, index_of(6 * 60_000), 6 * 60_000),
        Event("A", 0, index_of(0), 0, 9, (9.0,) * 10),
    ]
    for evs in (first, second):
        got = changes_of(store.apply(ColumnBatch("Candle", events_to_columns(evs))))
        assert got == dict(oracle.apply_events(evs))
    assert got == {"A": (CHANGE_CORRECTED | CHANGE_REMOVED, 0, 1, 0, 0)}
    assert_same_series(store, oracle, "A")


def test_capacity_evicts_oldest_and_counts() -> None:
    store = CandleStore(capacity=3)
    store.apply(batch(FIELDS_QC, qc_snapshot(n=5)))
    s = store["AAPL{=d}"]
    assert len(s) == 3 and s.time[0] == 1750032000000 - 2 * DAY  # newest 3 of a newest-first
    ch = store.apply(batch(FIELDS_QC, [(0, "AAPL{=d}", 1750032000000 + DAY, 1, 2, 0, 1, 1, NaN)]))
    assert changes_of(ch) == {"AAPL{=d}": (CHANGE_APPENDED | CHANGE_EVICTED, 1, 0, 1, 2)}
    assert s.time[0] == 1750032000000 - DAY
    # a bar older than everything in a full series is dropped (counted as evicted)
    ch = store.apply(batch(FIELDS_QC, [(0, "AAPL{=d}", 1, 1, 2, 0, 1, 1, NaN)]))
    assert changes_of(ch) == {"AAPL{=d}": (CHANGE_EVICTED, 0, 0, 1, 3)}
    assert store.stats()["evicted"] == 2 + 1 + 1


def test_missing_columns_derive_index_time_and_default_values() -> None:
    t0 = 1_700_000_000_000
    store = CandleStore()
    # no eventFlags, no index, with sequence
    store.apply(
        ColumnBatch(
            "Candle",
            {
                "eventSymbol": ["A", "A"],
                "time": [t0, t0 + 60_000],
                "sequence": [0, 0],
                "close": [1.0, 2.0],
            },
        )
    )
    s = store["A"]
    assert list(s.index) == [candle_index(t0), candle_index(t0 + 60_000)]
    assert list(s.close) == [1.0, 2.0] and np.isnan(s.open).all() and list(s.count) == [0, 0]
    assert not s.ready  # plain events without a snapshot do not make a series ready
    # no time column: time derived from the index
    store.apply(
        ColumnBatch(
            "Candle", {"eventSymbol": ["B"], "index": [candle_index(t0 + 123)], "close": [3.0]}
        )
    )
    assert list(store["B"].time) == [t0 + 123]


def test_bad_batches() -> None:
    store = CandleStore()
    with pytest.raises(ValueError, match="Candle"):
        store.apply(type("B", (), {"event_type": "Quote", "column": lambda self, n: None})())
    with pytest.raises(ValueError, match="eventSymbol"):
        store.apply(ColumnBatch("Candle", {"time": [1]}))
    with pytest.raises(ValueError, match="index nor a time"):
        store.apply(ColumnBatch("Candle", {"eventSymbol": ["A"], "close": [1.0]}))
    ch = store.apply(ColumnBatch("Candle", {"eventSymbol": [None, "", "A"], "time": [1, 2, 3]}))
    assert store.rejected == 2 and ch.symbols == ["A"] and store.events == 1

    class Short:  # the batch's length is its eventSymbol column's: 'time' is too long
        event_type = "Candle"
        fields = ("eventSymbol", "time")

        def __len__(self) -> int:
            return 3

        def column(self, name: str) -> Any:
            return {
                "eventSymbol": np.array(["A"], dtype=object),
                "time": np.zeros(3, np.int64),
            }.get(name)

    with pytest.raises(ValueError, match="'time' has 3 values for a batch of 1"):
        store.apply(Short())
    with pytest.raises(ValueError):
        CandleStore(capacity=0)


def test_non_native_dtypes_are_converted() -> None:
    class Loose:
        event_type = "Candle"
        size = 2

        def column(self, name: str) -> Any:
            return {
                "eventSymbol": ["A", "A"],
                "time": [1000, 2000],
                "close": np.array([1, 2], dtype=np.int32),
                "eventFlags": np.array([0, 0], dtype=np.int32),
            }.get(name)

    store = CandleStore()
    store.apply(Loose())
    assert list(store["A"].close) == [1.0, 2.0]


def test_series_api() -> None:
    store = CandleStore(capacity=10)
    for k in range(4):
        store.apply_bar("S", 60_000 * k, k, k + 1, k - 1, k + 0.5, 10 * k)
    s = store["S"]
    assert s.ready and len(s) == 4 and s[0].time == 0 and s[-1].close == 3.5
    assert [b.time for b in s] == [0, 60_000, 120_000, 180_000]
    assert s.position(120_000) == 2 and s.position(1) == -1
    col = s.close
    store.apply_bar("S", 180_000, 3, 4, 2, 9.0, 30)
    assert col[-1] == 3.5 and s.close[-1] == 9.0  # columns are copies
    assert "S" in store and "T" not in store and len(store) == 1 and store.symbols() == ["S"]
    assert store.get("T") is None
    with pytest.raises(KeyError):
        store["T"]
    with pytest.raises(IndexError):
        s[4]
    assert set(s.columns()) == {"time", "index", "count", *SERIES_DOUBLES}
    assert store.discard("S") and "S" not in store and len(s) == 4


def test_iterating_while_the_store_changes_is_safe() -> None:
    store = CandleStore()
    store.apply(batch(FIELDS_QC, qc_snapshot(n=50)))
    it = iter(store["AAPL{=d}"])
    next(it)
    store.apply(batch(FIELDS_QC, qc_snapshot(n=3)))  # new snapshot frees the old ring
    assert len(list(it)) == 2  # continues on the live (3-bar) series, never on freed memory


def test_interleaved_symbols_in_one_batch() -> None:
    store = CandleStore()
    rows = []
    for k in range(3):
        rows.append((0, "A", 60_000 * k, 1, 1, 1, 1.0 + k, 1, NaN))
        rows.append((0, "B", 60_000 * k, 1, 1, 1, 2.0 + k, 1, NaN))
    ch = store.apply(batch(FIELDS_QC, rows))
    assert ch.symbols == ["A", "B"] and list(store["B"].close) == [2.0, 3.0, 4.0]


def test_large_newest_first_snapshot_with_insertions_everywhere() -> None:
    # exercise ring growth / recentering in both directions against the oracle
    rng = np.random.default_rng(7)
    store, oracle = CandleStore(capacity=300), OracleStore(capacity=300)
    evs = [Event("Z", 4, index_of(0), 0)]
    for k in rng.permutation(1000):
        flags = 2 if rng.random() < 0.1 else 0
        evs.append(
            Event("Z", flags, index_of(int(k) * 1000), int(k) * 1000, int(k), (float(k),) * 10)
        )
    evs.append(Event("Z", 8, index_of(5_000_000), 5_000_000))
    for k in range(1000, 1400):  # live appends with eviction, then reversals
        evs.append(Event("Z", 0, index_of(k * 1000), k * 1000, k, (float(k),) * 10))
    for k in range(1399, 1000, -3):
        evs.append(Event("Z", 0 if k % 2 else 2, index_of(k * 1000), k * 1000, 1, (1.0,) * 10))
    for lo in range(0, len(evs), 97):
        part = evs[lo : lo + 97]
        got = changes_of(store.apply(ColumnBatch("Candle", events_to_columns(part))))
        assert got == dict(oracle.apply_events(part))
        assert_same_series(store, oracle, "Z")


# ------------------------------------------------------------------------------ oracle property


def assert_same_series(store: CandleStore, oracle: OracleStore, sym: str) -> None:
    s = store[sym]
    o = oracle.series[sym]
    cols = oracle.columns(sym)
    assert list(s.index) == cols["index"]
    assert list(s.time) == cols["time"]
    assert list(s.count) == cols["count"]
    for name in SERIES_DOUBLES:
        np.testing.assert_array_equal(getattr(s, name), np.array(cols[name], dtype=np.float64))
    assert (s.ready, s.snip, s.in_snapshot, s.pending, s.resuming) == (
        o.ready,
        o.snip,
        o.building(),
        oracle.pending_count(sym),
        o.resume,
    )


FLAG_CHOICES = [0, 0, 0, 0, 1, 1, 2, 3, 4, 4, 5, 8, 9, 10, 11, 12, 14, 16, 17, 18, 20, 24, 0x40]


_EVENT = st.tuples(
    st.integers(0, 2),  # symbol
    st.integers(0, 13),  # time slot
    st.sampled_from([0, 0, 0, 0, 1, 5]),  # sequence
    st.sampled_from([0, 0, 0, 7]),  # ms offset
    st.sampled_from(FLAG_CHOICES),
    st.integers(0, 50),  # count
    st.one_of(st.just(math.nan), st.floats(-1e6, 1e6, allow_nan=False)),
)
_OP = st.one_of(
    st.lists(_EVENT, max_size=25),
    st.tuples(st.just("bar"), st.integers(0, 2), st.integers(0, 13), st.floats(1, 100)),
    st.tuples(st.sampled_from(["resume", "cancel_resume"]), st.integers(0, 2)),
)


@st.composite
def event_streams(draw: st.DrawFn) -> tuple[int, list[list[Event] | tuple[Any, ...]], set[str]]:
    capacity = draw(st.sampled_from([1, 2, 3, 5, 8, 64]))
    syms = ["A{=m}", "B{=m}", "C{=m}"][: draw(st.integers(1, 3))]
    omit = draw(
        st.sets(st.sampled_from(["index", "time", "flags", "count", "doubles"]), max_size=2)
    )
    if {"index", "time"} <= omit:
        omit.discard("time")
    ops: list[list[Event] | tuple[Any, ...]] = []
    for op in draw(st.lists(_OP, min_size=1, max_size=12)):
        if isinstance(op, tuple) and op[0] == "bar":  # a non-dxLink bar
            ops.append(("bar", syms[op[1] % len(syms)], op[2] * 60_000, op[3]))
            continue
        if isinstance(op, tuple):  # resume mode on (if there is something to resume) or off
            ops.append((op[0], syms[op[1] % len(syms)]))
            continue
        evs = []
        for si, k, seq, off, flags, count, v in op:
            t = k * 60_000 + off
            d = (v, v + 1, v - 1, v * 0.5, abs(v), math.nan, 1.0, 2.0, 0.25, float(k))
            evs.append(
                Event(
                    syms[si % len(syms)],
                    0 if "flags" in omit else flags,
                    index_of(t, seq),
                    t,
                    0 if "count" in omit else count,
                    (math.nan,) * 10 if "doubles" in omit else d,
                )
            )
        ops.append(evs)
    return capacity, ops, omit


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams())
def test_store_matches_oracle(
    case: tuple[int, list[list[Event] | tuple[Any, ...]], set[str]],
) -> None:
    capacity, ops, omit = case
    store, oracle = CandleStore(capacity=capacity), OracleStore(capacity=capacity)
    for op in ops:
        if isinstance(op, tuple) and op[0] != "bar":
            assert getattr(store, op[0])(op[1]) == getattr(oracle, op[0])(op[1])
            continue
        if isinstance(op, tuple):
            _, sym, t, c = op
            got = changes_of(store.apply_bar(sym, t, c, c + 1, c - 1, c, 10.0))
            want = dict(oracle.apply_bar(sym, t, c, c + 1, c - 1, c, 10.0))
        else:
            cols = events_to_columns(
                op,
                with_index="index" not in omit,
                with_time="time" not in omit,
                with_flags="flags" not in omit,
                with_count="count" not in omit,
                doubles=() if "doubles" in omit else DOUBLE_FIELDS,
            )
            ch = store.apply(ColumnBatch("Candle", cols))
            got = changes_of(ch)
            want = dict(oracle.apply_events(op))
            assert ch.symbols == list(want)  # first-touched order
        assert got == want
        for sym in oracle.series:
            assert_same_series(store, oracle, sym)
    st_ = store.stats()
    counters = ("events", "evicted", "removed", "rejected", "snapshots", "pending_dropped")
    assert {k: st_[k] for k in counters} == {k: getattr(oracle, k) for k in counters}


def test_changes_flags_are_distinct_bits() -> None:
    bits = [
        CHANGE_SNAPSHOT,
        CHANGE_REVISED_LAST,
        CHANGE_APPENDED,
        CHANGE_CORRECTED,
        CHANGE_REMOVED,
        CHANGE_EVICTED,
    ]
    assert len(set(bits)) == 6 and all(b & (b - 1) == 0 for b in bits)
