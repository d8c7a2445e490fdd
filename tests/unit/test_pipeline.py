"""IndicatorPipeline against the obvious oracle: batch MACD/HMA over the stored closes.

After every apply, each row the pipeline emits for bar i must equal the batch computation over
the store's closes[0..i] (bit for bit): FORMING rows revise, FINAL rows commit, HISTORY rows
are a rebuild -- all three must agree with recomputing from scratch.
"""

from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import ttfast._core.pipeline as pl
from ttfast._core import CandleStore, IndicatorPipeline
from ttfast._core.indicators import HIST_COLORS
from ttfast._core.indicators import hma as batch_hma
from ttfast._core.indicators import macd as batch_macd

P = 60_000


def _eq(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def _check(store: CandleStore, out, syms_seen: set[str]) -> None:
    by_sym: dict[str, list[int]] = {}
    for i in range(out.n):
        by_sym.setdefault(out.symbols[i], []).append(i)
    for name, rows in by_sym.items():
        s = store[name]
        closes = np.asarray(s.close)
        times = np.asarray(s.time)
        m, sig, h = batch_macd(closes)
        hm = batch_hma(closes, 20)
        pos = {int(t): k for k, t in enumerate(times)}
        for i in rows:
            k = pos[int(out.time[i])]
            c = out.columns[:, i]
            assert _eq(c[3], closes[k])
            assert _eq(c[5], m[k]) and _eq(c[6], sig[k]) and _eq(c[7], h[k]), (name, k)
            assert _eq(c[8], hm[k]), (name, k)
            if out.kind[i] == 0:
                assert k == len(closes) - 1
            else:
                assert k < len(closes) - 1
        syms_seen.add(name)
    # payloads: valid JSON (NaN -> null), deltas only for forming/final rows
    ndelta = sum(1 for i in range(out.n) if out.kind[i] != 2)
    deltas = [json.loads(p) for ch, p in out.publishes if ch.startswith(b"analytics:delta:")]
    assert len(deltas) == ndelta
    for d in deltas:
        assert d["type"] == "delta" and isinstance(d["final"], bool)
        assert d["macd"]["color"] in (None, *HIST_COLORS)
    snaps = [json.loads(p) for _k, p in out.snapshots]
    assert {sn["symbol"] for sn in snaps} == {
        out.symbols[i] for i in range(out.n) if out.kind[i] != 2
    }
    for sn in snaps:
        assert sn["bars"] == len(store[sn["symbol"]])
        want = float(np.asarray(store[sn["symbol"]].close)[-1])
        assert sn["last_candle"]["close"] == (None if math.isnan(want) else want)


ops = st.lists(
    st.tuples(
        st.sampled_from(["new", "new", "new", "revise", "revise", "correct", "nan"]),
        st.sampled_from(["A", "B"]),
        st.floats(-3, 3),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_rows_equal_batch_recomputation(seq: list[tuple[str, str, float]]) -> None:
    store = CandleStore(50)  # small capacity: evictions happen too
    pipe = IndicatorPipeline()
    last: dict[str, tuple[int, float]] = {}
    seen: set[str] = set()
    for op, sym, dx in seq:
        t, c = last.get(sym, (0, 100.0))
        if op == "new" or sym not in last:
            t, c = t + P, round(c + dx, 2)
        elif op == "revise":
            c = round(c + dx / 10, 2)
        elif op == "nan":
            c = math.nan
        elif op == "correct":
            s = store[sym]
            if len(s) < 2:
                continue
            k = int(abs(dx) * 7) % (len(s) - 1)
            t_old = int(np.asarray(s.time)[k])
            out = pipe.process(store.apply_bar(sym, t_old, 1, 2, 0, round(100 + dx, 2), 1.0))
            _check(store, out, seen)
            continue
        last[sym] = (t, c if not math.isnan(c) else last.get(sym, (0, 100.0))[1])
        out = pipe.process(store.apply_bar(sym, t, c, c, c, c, 1.0))
        _check(store, out, seen)


def test_long_stream_matches_batch_and_counts() -> None:
    rng = np.random.default_rng(5)
    store = CandleStore(10_000)
    pipe = IndicatorPipeline(publish_raw=False, period="1m")
    closes = np.round(100 + np.cumsum(rng.normal(0, 0.2, 3000)), 2)
    finals = 0
    for i, c in enumerate(closes):
        for j in range(3):  # the forming bar is re-sent with changing closes
            x = float(c) if j == 2 else float(c) + 0.05 * (j + 1)
            out = pipe.process(store.apply_bar("X{=1m}", i * P, x, x, x, x, 1.0))
            finals += int(np.count_nonzero(out.kind == 1))
            assert out.symbols == ["X"] * out.n
    assert finals == pipe.finals == 2999
    _m, _s, h = batch_macd(closes)
    snap = json.loads(out.snapshots[0][1])
    assert snap["macd"]["hist"] == h[-1] and snap["hma"]["value"] == batch_hma(closes, 20)[-1]
    assert all(not ch.startswith(b"market:") for ch, _ in out.publishes)
    assert pipe.rebuilds == 1  # bar 1 arriving: bar 0 was never committed before


def _payloads(out) -> tuple[dict[bytes, dict], dict[bytes, list[dict]]]:
    snaps = {k: json.loads(p) for k, p in out.snapshots}
    pubs: dict[bytes, list[dict]] = {}
    for ch, p in out.publishes:
        pubs.setdefault(ch, []).append(json.loads(p))
    return snaps, pubs


def test_periods_get_distinct_names_and_a_period_field() -> None:
    """Issue 13 #10: the primary period keeps `SPY`; others are named by their candle symbol."""
    store = CandleStore(100)
    pipe = IndicatorPipeline(period="5m")
    out = pipe.process(store.apply_bar("SPY{=5m}", 0, 1, 1, 1, 1.0, 1))
    out2 = pipe.process(store.apply_bar("SPY{=h}", 0, 2, 2, 2, 2.0, 1))
    out3 = pipe.process(store.apply_bar("SPY{=1h,tho=true}", 0, 3, 3, 3, 3.0, 1))
    out4 = pipe.process(store.apply_bar("SPY{=5m,tho=true}", 0, 4, 4, 4, 4.0, 1))
    out5 = pipe.process(store.apply_bar("SPY{=05m}", 0, 5, 5, 5, 5.0, 1))  # same as 5m
    assert pipe.symbols == [
        "SPY",
        "SPY{=h}",
        "SPY{=1h,tho=true}",
        "SPY{tho=true}",
        "SPY{=05m}",  # its primary name is taken: falls back to the full symbol
    ]
    assert pipe.name_conflicts == 1
    want = [
        (out, b"SPY", "SPY", "5m", 1.0),
        (out2, b"SPY{=h}", "SPY", "1h", 2.0),
        (out3, b"SPY{=1h,tho=true}", "SPY{tho=true}", "1h", 3.0),
        (out4, b"SPY{tho=true}", "SPY{tho=true}", "5m", 4.0),
        (out5, b"SPY{=05m}", "SPY", "5m", 5.0),
    ]
    for o, name, tag, period, close in want:
        snaps, pubs = _payloads(o)
        (snap,) = snaps.values()
        assert list(snaps) == [b"snapshot:" + name]
        assert snap["symbol"] == tag and snap["period"] == period
        assert snap["last_candle"]["close"] == close
        assert list(snap)[:3] == ["type", "symbol", "period"]
        (delta,) = pubs[b"analytics:delta:" + name]
        assert delta["symbol"] == tag and delta["period"] == period
        (raw,) = pubs[b"market:CandleEvent:" + name]
        assert raw["close"] == close
        assert o.symbols == [name.decode()]
        assert o.tag_symbols == [tag] and o.periods == [period]


def test_period_field_without_a_primary_period() -> None:
    pipe = IndicatorPipeline()
    store = CandleStore(10)
    snaps, _ = _payloads(pipe.process(store.apply_bar("A", 0, 1, 1, 1, 1, 1)))
    assert snaps[b"snapshot:A"]["period"] is None
    snaps, _ = _payloads(pipe.process(store.apply_bar("A{=d}", 0, 1, 1, 1, 1, 1)))
    assert snaps[b"snapshot:A{=d}"]["period"] == "1d"
    out = pipe.process(store.apply_bar("A{=d}", 1, 1, 1, 1, 1, 1))
    assert out.periods == ["1d"] * out.n and out.tag_symbols == ["A"] * out.n
    # a bare symbol is the primary period when there is one
    p2 = IndicatorPipeline(period="1m")
    snaps, _ = _payloads(p2.process(store.apply_bar("B", 0, 1, 1, 1, 1, 1)))
    assert snaps[b"snapshot:B"]["period"] == "1m" and snaps[b"snapshot:B"]["symbol"] == "B"


def test_max_symbols_and_discard() -> None:
    """Issue 13 #9: the pipeline keeps state for at most max_symbols; discard frees a slot."""
    store = CandleStore(10)
    pipe = IndicatorPipeline(max_symbols=3)
    for k in range(5):
        out = pipe.process(store.apply_bar(f"S{k}", 0, 1, 1, 1, 1.0 + k, 1))
        assert out.n == (1 if k < 3 else 0)
    assert pipe.symbols == ["S0", "S1", "S2"]
    assert pipe.symbols_refused == 2
    assert pipe.discard("S1") is True and pipe.discard("S1") is False
    assert pipe.symbols == ["S0", "S2"]
    out = pipe.process(store.apply_bar("S4", 60_000, 1, 1, 1, 7.0, 1))
    assert out.symbols == ["S4", "S4"]  # both stored bars: it starts from the store
    assert pipe.symbols == ["S0", "S2", "S4"]
    # rows of several symbols in one batch still map to the right names after slot reuse
    out = pipe.process(store.apply_bar("S0", 60_000, 1, 1, 1, 9.0, 1))
    assert out.symbols[-1] == "S0"
    snaps, _ = _payloads(out)
    assert snaps[b"snapshot:S0"]["last_candle"]["close"] == 9.0
    # a discarded symbol that comes back starts over (its store series was discarded too)
    store.discard("S1")
    out = pipe.process(store.apply_bar("S1", 120_000, 1, 1, 1, 3.0, 1))
    assert out.n == 0 and pipe.symbols_refused == 3
    pipe.reset()
    assert pipe.symbols == ["S0", "S2", "S4"]


def test_kinds_columns_and_redis_names_are_module_constants() -> None:
    """Facts the shell reads PipelineOutput with, defined once in the compiled core."""
    assert (pl.KIND_FORMING, pl.KIND_FINAL, pl.KIND_HISTORY) == (0, 1, 2)
    assert len(pl.COLUMNS) == pl.COLUMN_COUNT == 9
    for i, name in enumerate(pl.COLUMNS):
        assert getattr(pl, "COLUMN_" + name.upper()) == i
    assert pl.HIST_COLORS == HIST_COLORS
    store = CandleStore(10)
    out = IndicatorPipeline().process(store.apply_bar("A", 0, 1.0, 2.0, 0.5, 1.5, 10.0))
    assert out.columns.shape == (pl.COLUMN_COUNT, 1) and out.kind.tolist() == [pl.KIND_FORMING]
    col = {
        name: float(out.columns[getattr(pl, "COLUMN_" + name.upper()), 0]) for name in pl.COLUMNS
    }
    assert [col[k] for k in ("open", "high", "low", "close", "volume")] == [
        1.0,
        2.0,
        0.5,
        1.5,
        10.0,
    ]
    assert all(math.isnan(col[k]) for k in ("macd", "signal", "hist", "hma"))
    assert (
        len(out.candle) == pl.COLUMN_MACD
        and len(out.indicators) == pl.COLUMN_COUNT - pl.COLUMN_MACD
    )
    # default Redis names ...
    assert (
        [k for k, _ in out.snapshots] == [pl.SNAPSHOT_KEY_PREFIX.encode() + b"A"] == [b"snapshot:A"]
    )
    assert [ch for ch, _ in out.publishes] == [b"market:CandleEvent:A", b"analytics:delta:A"]
    assert (pl.DELTA_CHANNEL_PREFIX, pl.RAW_CHANNEL_PREFIX) == (
        "analytics:delta:",
        "market:CandleEvent:",
    )
    # ... or the constructor's: only the names change
    pipe = IndicatorPipeline(snapshot_prefix="s/", delta_prefix="d/", raw_prefix="r/")
    assert (pipe.snapshot_prefix, pipe.delta_prefix, pipe.raw_prefix) == ("s/", "d/", "r/")
    out2 = pipe.process(store.apply_bar("A", 0, 1.0, 2.0, 0.5, 1.5, 10.0))
    assert [k for k, _ in out2.snapshots] == [b"s/A"]
    assert [ch for ch, _ in out2.publishes] == [b"r/A", b"d/A"]
    assert [p for _, p in out2.snapshots] == [p for _, p in out.snapshots]
    assert [p for _, p in out2.publishes] == [p for _, p in out.publishes]
