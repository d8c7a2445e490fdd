"""CandleStore resume mode: a resubscription's snapshot merges instead of replacing.

After a reconnect the streamer resubscribes each ready candle series from its newest bar
(``store.resume(symbol)`` returns that bar's time and turns the mode on), so the snapshot that
follows covers only [that bar, now]. Replacing the series with it would throw the older history
away; the store merges it: the window it covers (from the index of its END/SNIP row on) becomes
exactly the snapshot's bars, older bars stay. Checked against the oracle (tests/oracles), against
a twin that received a full snapshot of the same market, and against the streamer's previous
implementation (the resumed snapshot's rows rewritten into one TX_PENDING transaction), which it
equals whenever the server deleted nothing and nothing overflows the capacity.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttfast import CandleStore, ColumnBatch
from ttfast.candles import (
    CHANGE_APPENDED,
    CHANGE_CORRECTED,
    CHANGE_REMOVED,
    CHANGE_REVISED_LAST,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.oracles.candles import SERIES_DOUBLES, Event, OracleStore, events_to_columns, index_of

TX, REMOVE, BEGIN, END, SNIP = 1, 2, 4, 8, 16
MIN = 60_000
T0 = 1_767_000_000_000 - 1_767_000_000_000 % MIN
SYM = "SPY{=m}"


def bar(k: int, close: float, flags: int = 0, sym: str = SYM) -> Event:
    t = T0 + k * MIN
    return Event(sym, flags, index_of(t), t, k, (close, close + 1, close - 1, close) + (1.0,) * 6)


def snapshot(bars: dict[int, float], from_k: int, sym: str = SYM) -> list[Event]:
    """What the server sends for a subscription from bar `from_k`: newest first, BEGIN on the
    first row, END on the bar at from_k, or a REMOVE|END placeholder there when it has none,
    a single BEGIN|END|REMOVE row when empty."""
    ks = sorted((k for k in bars if k >= from_k), reverse=True)
    if not ks:
        return [Event(sym, BEGIN | END | REMOVE, index_of(T0 + from_k * MIN), T0 + from_k * MIN)]
    rows = [bar(k, bars[k], sym=sym) for k in ks]
    rows[0].flags |= BEGIN
    if ks[-1] == from_k:
        rows[-1].flags |= END
    else:
        t = T0 + from_k * MIN
        rows.append(Event(sym, END | REMOVE, index_of(t), t))
    return rows


def apply(store: CandleStore, evs: list[Event]) -> dict[str, tuple[int, int, int, int, int]]:
    return {
        c.symbol: c.as_tuple() for c in store.apply(ColumnBatch("Candle", events_to_columns(evs)))
    }


def closes(store: CandleStore, sym: str = SYM) -> dict[int, float]:
    s = store[sym]
    return {(int(t) - T0) // MIN: float(c) for t, c in zip(s.time, s.close, strict=True)}


def same_series(a: CandleStore, b: CandleStore, sym: str = SYM) -> None:
    sa, sb = a[sym], b[sym]
    assert list(sa.index) == list(sb.index)
    for name in ("time", "count", *SERIES_DOUBLES):
        np.testing.assert_array_equal(getattr(sa, name), getattr(sb, name))


def history(n: int = 30) -> dict[int, float]:
    return {k: 100.0 + k for k in range(n)}


# ------------------------------------------------------------------------------ examples


def test_resumed_snapshot_merges_and_keeps_the_history() -> None:
    store = CandleStore()
    market = history(30)
    apply(store, snapshot(market, 0))
    s = store[SYM]
    assert s.ready and len(s) == 30 and store.snapshots == 1
    assert store.resume(SYM) == T0 + 29 * MIN and s.resuming
    market[29] = 500.0  # the forming bar moved on while we were away, three bars were added
    market.update({30: 130.0, 31: 131.0, 32: 132.0})
    resumed = snapshot(market, 29)
    got = apply(store, resumed[:2])  # nothing visible until the snapshot ends
    assert got == {} and s.in_snapshot and s.ready and len(s) == 30 and s.pending == 2
    got = apply(store, resumed[2:])
    assert got == {SYM: (CHANGE_REVISED_LAST | CHANGE_APPENDED, 3, 0, 0, 29)}
    assert closes(store) == market and s.ready and not s.in_snapshot
    assert store.snapshots == 1  # a merge is not a replacing snapshot
    assert s.resuming  # the mode lasts: the subscription still starts at bar 29


def test_bar_the_server_deleted_inside_the_window_is_removed() -> None:
    store = CandleStore()
    market = history(30)
    apply(store, snapshot(market, 0))
    store.resume(SYM)
    market.update({30: 130.0, 31: 131.0})
    store.resume(SYM)  # (idempotent)
    del market[29]  # gone on the server: the snapshot ends with a placeholder at bar 29
    got = apply(store, snapshot(market, 29))
    assert got == {SYM: (CHANGE_APPENDED | CHANGE_REMOVED, 2, 1, 0, 29)}
    assert closes(store) == market


def test_empty_resumed_snapshot_removes_the_bars_of_its_window_only() -> None:
    store = CandleStore()
    apply(store, snapshot(history(30), 0))
    store.resume(SYM)
    got = apply(store, snapshot({}, 29))  # one BEGIN|END|REMOVE row at bar 29
    assert got == {SYM: (CHANGE_REMOVED, 0, 1, 0, 29)}
    assert closes(store) == {k: v for k, v in history(30).items() if k < 29}


def test_snip_bounds_the_window_at_the_oldest_row_sent() -> None:
    store = CandleStore()
    apply(store, snapshot(history(30), 0))
    store.resume(SYM)
    rows = [bar(34, 4.0, BEGIN), bar(33, 3.0), bar(32, 2.0, SNIP)]  # server cut at bar 32
    got = apply(store, rows)
    assert got == {SYM: (CHANGE_APPENDED, 3, 0, 0, 30)}
    assert closes(store) == {**history(30), 32: 2.0, 33: 3.0, 34: 4.0}
    assert not store[SYM].snip  # the series as a whole was not cut


def test_resume_needs_a_complete_series_and_cancel_restores_replacing() -> None:
    store = CandleStore()
    assert store.resume("NOPE") is None
    apply(store, [bar(0, 1.0, BEGIN)])  # snapshot still streaming in: nothing to resume from
    assert store.resume(SYM) is None and not store[SYM].resuming
    apply(store, [bar(-1, 1.0, END)])
    assert store.resume(SYM) == T0 and store[SYM].resuming
    store.cancel_resume(SYM)
    assert not store[SYM].resuming
    got = apply(store, snapshot({5: 5.0}, 5))
    assert got[SYM][0] & 1 and closes(store) == {5: 5.0}  # SNAPSHOT: replaced
    empty = CandleStore()
    apply(empty, snapshot({}, 0))
    assert empty[SYM].ready and empty.resume(SYM) is None  # ready but no bars


def test_a_snapshot_keeps_the_mode_it_began_in() -> None:
    store = CandleStore()
    apply(store, snapshot(history(10), 0))
    store.resume(SYM)
    resumed = snapshot({9: 9.0, 10: 10.0}, 9)
    apply(store, resumed[:1])
    store.cancel_resume(SYM)  # too late for the snapshot being received: it still merges
    apply(store, resumed[1:])
    assert closes(store) == {**history(9), 9: 9.0, 10: 10.0}
    apply(store, [bar(20, 1.0, BEGIN)])  # begun without the mode: replaces
    assert store.resume(SYM) is None  # (not ready while it streams in: nothing to resume)
    apply(store, [bar(19, 1.0, END)])
    assert closes(store) == {19: 1.0, 20: 1.0}


def test_live_rows_and_other_symbols_around_a_merge() -> None:
    store = CandleStore()
    apply(store, snapshot(history(5), 0) + snapshot(history(5), 0, sym="QQQ{=m}"))
    store.resume(SYM)
    rows = snapshot({4: 4.0, 5: 5.0, 6: 6.0}, 4)
    mixed = [rows[0], bar(5, 7.0, sym="QQQ{=m}"), rows[1], bar(5, 8.0, sym="QQQ{=m}"), rows[2]]
    got = apply(store, mixed)
    assert got[SYM] == (CHANGE_REVISED_LAST | CHANGE_APPENDED, 2, 0, 0, 4)
    assert got["QQQ{=m}"] == (CHANGE_APPENDED, 1, 0, 0, 5)
    assert closes(store)[6] == 6.0 and closes(store, "QQQ{=m}")[5] == 8.0
    live = apply(store, [bar(6, 6.5), bar(7, 7.0)])
    assert live == {SYM: (CHANGE_REVISED_LAST | CHANGE_APPENDED, 1, 0, 0, 6)}


def test_merge_that_writes_an_older_bar_is_a_correction() -> None:
    store = CandleStore()
    apply(store, snapshot(history(10), 0))
    store.resume(SYM)
    market = {**history(10), 7: 70.0, 9: 90.0}
    got = apply(store, snapshot(market, 7))  # (the streamer resumes from the newest bar; a
    assert got == {SYM: (CHANGE_REVISED_LAST | CHANGE_CORRECTED, 0, 0, 0, 7)}  # server may not)
    assert closes(store) == market


def test_resumed_snapshot_larger_than_the_capacity_keeps_the_newest_bars() -> None:
    # (the streamer's old TX_PENDING rewrite held at most `capacity` events and let the oldest
    # held ones -- the NEWEST bars of a newest-first snapshot -- give way)
    store = CandleStore(capacity=8)
    apply(store, snapshot(history(8), 0))
    store.resume(SYM)
    market = {k: float(k) for k in range(7, 30)}
    apply(store, snapshot(market, 7))
    assert closes(store) == {k: float(k) for k in range(22, 30)}
    assert store.pending_dropped == 0


# ------------------------------------------------------------------------------ properties


def _split(evs: list[Event], cuts: list[int]) -> list[list[Event]]:
    bounds = sorted({0, len(evs), *(c % (len(evs) + 1) for c in cuts)})
    return [evs[a:b] for a, b in itertools.pairwise(bounds)]


@st.composite
def reconnects(draw: st.DrawFn) -> dict[str, Any]:
    """A market of n bars, the first snapshot, then (while the client was away) a revised
    forming bar, new bars and up to three bars deleted anywhere."""
    n = draw(st.integers(1, 40))
    market = {k: float(draw(st.integers(1, 9))) for k in range(n)}
    later = dict(market)
    for k in range(n - 1, n - 1 + draw(st.integers(0, 12))):
        later[k] = float(draw(st.integers(1, 9)))
    deleted = draw(st.sets(st.sampled_from(sorted(later)), max_size=3))
    return {
        "market": market,
        "later": {k: v for k, v in later.items() if k not in deleted},
        "capacity": draw(st.sampled_from([4, 16, 64, 4096])),
        "cuts": draw(st.lists(st.integers(0, 60), max_size=4)),
        "tx": draw(st.booleans()),
        "lost_connection": draw(st.booleans()),
    }


def _resumed(case: dict[str, Any], later: dict[int, float], resume_k: int) -> list[Event]:
    rows = snapshot(later, resume_k)
    if case["tx"]:  # TX_PENDING on every row but the last: visible only with the last one
        for e in rows[:-1]:
            e.flags |= TX
    return rows


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reconnects())
def test_merge_equals_a_fault_free_twin_and_the_oracle(case: dict[str, Any]) -> None:
    """After the merge the window [resume bar, now] is exactly the server's and older bars are
    the ones stored before (a deletion there cannot be seen); with nothing deleted before the
    window and everything within the capacity, that is a fault-free twin's series (a client
    that got a full snapshot of the same market). The oracle agrees on every call."""
    cap, market, later = case["capacity"], case["market"], case["later"]
    resume_k = len(market) - 1  # the streamer resumes from the newest stored bar
    store, oracle = CandleStore(capacity=cap), OracleStore(capacity=cap)
    for part in _split(snapshot(market, 0), case["cuts"]):
        assert apply(store, part) == dict(oracle.apply_events(part))
    stored = closes(store)
    assert store.resume(SYM) == oracle.resume(SYM) == T0 + resume_k * MIN
    resumed = _resumed(case, later, resume_k)
    if case["lost_connection"]:  # a first attempt breaks off; the reconnect sends it again
        part = resumed[: len(resumed) // 2]
        assert apply(store, part) == dict(oracle.apply_events(part))
        assert store.resume(SYM) == oracle.resume(SYM) == T0 + resume_k * MIN
    for part in _split(resumed, case["cuts"]):
        assert apply(store, part) == dict(oracle.apply_events(part))
    s = store[SYM]
    assert s.ready and not s.in_snapshot and s.resuming
    want = {k: v for k, v in stored.items() if k < resume_k}
    want.update((k, v) for k, v in later.items() if k >= resume_k)
    assert closes(store) == dict(sorted(want.items())[-cap:])
    if set(later) >= set(market) - {resume_k} and len(later) <= cap:
        twin = CandleStore(capacity=cap)
        apply(twin, snapshot(later, 0))
        same_series(store, twin)
    cols = oracle.columns(SYM)
    assert list(s.index) == cols["index"]
    for name in SERIES_DOUBLES:
        np.testing.assert_array_equal(getattr(s, name), np.array(cols[name]))
    counters = ("events", "evicted", "removed", "rejected", "snapshots", "pending_dropped")
    st_ = store.stats()
    assert {k: st_[k] for k in counters} == {k: getattr(oracle, k) for k in counters}


def legacy_resume_flags(evs: list[Event], in_snap: set[str]) -> list[Event]:
    """The streamer's previous implementation: a resumed snapshot's rows become one TX_PENDING
    transaction (BEGIN..END become TX rows, the END/SNIP row commits), so they upsert."""
    out = []
    for e in evs:
        f = e.flags
        if f & BEGIN:
            in_snap.add(e.symbol)
        if e.symbol in in_snap:
            if f & (END | SNIP):
                in_snap.discard(e.symbol)
                f &= REMOVE
            else:
                f = (f & REMOVE) | TX
        out.append(Event(e.symbol, f, e.index, e.time, e.count, e.doubles))
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reconnects())
def test_no_change_from_the_streamers_old_merge_when_nothing_was_deleted(
    case: dict[str, Any],
) -> None:
    """Where the old per-row rewrite was right (the server deleted no bar of the window, nothing
    overflows the capacity) the store's merge gives the same Changes and the same series."""
    market = case["market"]
    resume_k = len(market) - 1
    later = {**market, **{k: v for k, v in case["later"].items() if k >= resume_k}}
    new, old = CandleStore(), CandleStore()
    for s in (new, old):
        apply(s, snapshot(market, 0))
    assert new.resume(SYM) is not None
    in_snap: set[str] = set()
    for part in _split(_resumed(case, later, resume_k), case["cuts"]):
        assert apply(new, part) == apply(old, legacy_resume_flags(part, in_snap))
    same_series(new, old)
