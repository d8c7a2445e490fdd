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
    pipe = IndicatorPipeline(publish_raw=False)
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
