"""ttfast indicators: bit-exact with TA-Lib 0.8, streaming == batch, revision purity, colours.

Oracles: TA-Lib itself (the contract), pandas ewm for seed="first", and the pure-Python twins
in tests/oracles/indicators.py (same state, same operation order, same bits).
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.datagen import random_walk
from tests.oracles import indicators as O

from ttfast import Ema, Hma, Macd, Wma, ema, hma, macd, wma
from ttfast import indicators as I

PERIODS = [4, 9, 14, 20, 21, 55]
SERIES = {  # name -> (start, vol, tick): prices ~1, ~100, ~5000, and tick-size grids
    "p1": (1.0, 0.002, None),
    "p100": (100.0, 0.001, None),
    "p5000": (5000.0, 0.001, None),
    "p1_tick1e-4": (1.0, 0.002, 1e-4),
    "p100_tick0.01": (100.0, 0.001, 0.01),
    "p5000_tick0.25": (5000.0, 0.001, 0.25),
}
N_BARS = 200_000


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Identical doubles bit for bit (NaN == NaN)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.array_equal(a.view(np.int64), b.view(np.int64)))


def first_diff(a: np.ndarray, b: np.ndarray) -> str:
    d = np.nonzero(a.view(np.int64) != b.view(np.int64))[0]
    return f"{len(d)} differ, first at {d[:3]}: {a[d[:3]]!r} vs {b[d[:3]]!r}" if len(d) else ""


def talib_hma(x: np.ndarray, n: int) -> np.ndarray:
    raw = 2 * talib.WMA(x, n // 2) - talib.WMA(x, n)
    out: np.ndarray = talib.WMA(raw, int(math.sqrt(n)))
    return out


@pytest.fixture(scope="module", params=list(SERIES))
def series(request: pytest.FixtureRequest) -> np.ndarray:
    start, vol, tick = SERIES[request.param]
    return random_walk(N_BARS, start, vol, tick, seed=7 + len(request.param))


# ---------------------------------------------------------------------------- TA-Lib exactness


@pytest.fixture(autouse=True)
def _auto_fma() -> object:
    I.set_fma_mode(None)  # follow the CPU, like TA-Lib's dispatch
    yield
    I.set_fma_mode(None)


@pytest.mark.parametrize("n", PERIODS)
def test_wma_hma_ema_bit_exact_vs_talib(series: np.ndarray, n: int) -> None:
    got, want = wma(series, n), talib.WMA(series, n)
    assert same(got, want), first_diff(got, want)
    got, want = hma(series, n), talib_hma(series, n)
    assert same(got, want), first_diff(got, want)
    got, want = ema(series, n), talib.EMA(series, n)
    assert same(got, want), first_diff(got, want)


@pytest.mark.parametrize("params", [(12, 26, 9), (4, 9, 14), (20, 55, 9), (55, 21, 4), (9, 9, 1)])
def test_macd_bit_exact_vs_talib(series: np.ndarray, params: tuple[int, int, int]) -> None:
    for got, want in zip(macd(series, *params), talib.MACD(series, *params), strict=True):
        assert same(got, want), first_diff(got, want)


def test_hma_first_value_bar() -> None:
    x = random_walk(100, 100.0)
    out = hma(x, 20)
    assert np.isnan(out[:22]).all() and not np.isnan(out[22])  # (n-1) + (isqrt(n)-1)
    m, s, h = macd(x)
    assert np.isnan(h[:33]).all() and not np.isnan(h[33:]).any()
    assert np.isnan(m[:33]).all() and np.isnan(s[:33]).all()


@pytest.mark.slow
def test_five_million_bars_bit_exact() -> None:
    x = random_walk(5_000_000, 100.0, 0.0005, seed=99)
    for n in (9, 20, 55):
        assert same(wma(x, n), talib.WMA(x, n)), n
        assert same(hma(x, n), talib_hma(x, n)), n
    for got, want in zip(macd(x), talib.MACD(x, 12, 26, 9), strict=True):
        assert same(got, want)


def test_wma_reanchor_matters() -> None:
    """Without TA-Lib 0.8's 8n re-anchor the recurrence drifts in the last bits: make sure
    our series covers many re-anchors and that the textbook formula agrees to rounding."""
    x = random_walk(5000, 100.0)
    for n in (4, 20):
        ours = wma(x, n)
        naive = np.array(O.naive_wma(x.tolist(), n))
        np.testing.assert_allclose(ours[n - 1 :], naive[n - 1 :], rtol=1e-13)
    xs = x[:300].tolist()
    np.testing.assert_allclose(hma(x[:300], 9)[11:], O.naive_hma(xs, 9)[11:], rtol=1e-12)


# ---------------------------------------------------------------------------- seed="first"


def test_seed_first_matches_pandas_ewm() -> None:
    for start in (1.0, 100.0, 5000.0):
        x = random_walk(50_000, start, seed=3)
        s = pd.Series(x)
        fast = s.ewm(span=12, adjust=False).mean()
        slow = s.ewm(span=26, adjust=False).mean()
        m = fast - slow
        sig = m.ewm(span=9, adjust=False).mean()
        want = (m.to_numpy(), sig.to_numpy(), (m - sig).to_numpy())
        got = macd(x, 12, 26, 9, seed="first")
        for g, w in zip(got, want, strict=True):
            assert not np.isnan(g).any()
            assert np.max(np.abs(g - w)) <= 1e-12 * start  # 1e-12 relative to the price level
        e = ema(x, 20, seed="first")
        np.testing.assert_allclose(e, s.ewm(span=20, adjust=False).mean(), rtol=1e-12)


# ---------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("seed", ["talib", "first"])
def test_streaming_equals_batch(seed: str) -> None:
    x = random_walk(20_000, 100.0, tick=0.01, seed=5)
    m, h, e, w = Macd(12, 26, 9, seed=seed), Hma(20), Ema(14, seed=seed), Wma(21)
    rows = np.array([(*m.update(v), h.update(v), e.update(v), w.update(v)) for v in x.tolist()])
    for col, want in zip(
        rows.T, (*macd(x, seed=seed), hma(x, 20), ema(x, 14, seed), wma(x, 21)), strict=True
    ):
        assert same(col, want), first_diff(col, want)
    assert m.count == h.count == e.count == w.count == len(x)
    assert m.value == tuple(r[-1] for r in macd(x, seed=seed))
    assert (m.macd, m.signal, m.hist) == m.value
    assert h.value == hma(x, 20)[-1] and e.value == ema(x, 14, seed)[-1]
    assert w.value == wma(x, 21)[-1]


def test_revise_is_pure_and_committed_equals_last_revised() -> None:
    x = random_walk(3000, 100.0, seed=11).tolist()
    objs = [Macd(), Hma(20), Ema(10), Wma(9), Hma(9, lookback=2)]
    for i, v in enumerate(x):
        for o in objs:
            before = o.value
            r1 = o.revise(v + 0.5)
            r2 = o.revise(v)
            assert o.revise(v + 0.5) == r1 or _all_nan(r1)  # any number of times, same answer
            assert o.value == before or _all_nan(before)  # no mutation
            c = o.update(v)
            assert _bits(c) == _bits(r2), (i, type(o).__name__)


def _bits(v: object) -> object:
    if isinstance(v, tuple):
        return tuple(_bits(u) for u in v)
    assert isinstance(v, float)
    return np.float64(v).view(np.int64).item()


def _all_nan(v: object) -> bool:
    vals = v if isinstance(v, tuple) else (v,)
    return all(isinstance(u, float) and math.isnan(u) for u in vals)


price = st.floats(min_value=0.5, max_value=5000.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(st.tuples(st.booleans(), price), min_size=1, max_size=150),
    n=st.integers(min_value=2, max_value=30),
    seed=st.sampled_from(["talib", "first"]),
)
def test_revision_property(ops: list[tuple[bool, float]], n: int, seed: str) -> None:
    """Every revised value equals a from-scratch batch over the committed closes + the forming
    one; every committed value equals the batch over the committed closes."""
    objs = {
        "macd": (Macd(n // 2 + 1, n, 3, seed=seed), lambda a: macd(a, n // 2 + 1, n, 3, seed)),
        "hma": (Hma(n), lambda a: hma(a, n)),
        "ema": (Ema(n, seed=seed), lambda a: ema(a, n, seed)),
        "wma": (Wma(n), lambda a: wma(a, n)),
    }
    committed: list[float] = []
    for commit, v in ops:
        arr = np.array([*committed, v])
        for o, batch in objs.values():
            want = batch(arr)
            got = o.update(v) if commit else o.revise(v)
            if isinstance(want, tuple):
                assert _bits(got) == _bits(tuple(float(w[-1]) for w in want))
            else:
                assert _bits(got) == _bits(float(want[-1]))
        if commit:
            committed.append(v)


@settings(max_examples=60, deadline=None)
@given(
    xs=st.lists(price, min_size=1, max_size=200),
    n=st.integers(min_value=1, max_value=25),
    fused=st.booleans(),
)
def test_compiled_equals_python_twin(xs: list[float], n: int, fused: bool) -> None:
    I.set_fma_mode(fused)
    pairs: list[tuple[object, object]] = [
        (Ema(n), O.EmaO(n, fused=fused)),
        (Ema(n, "first"), O.EmaO(n, "first", fused)),
        (Wma(n), O.WmaO(n)),
        (Macd(n, 2 * n, max(1, n // 2)), O.MacdO(n, 2 * n, max(1, n // 2), fused=fused)),
        (Macd(2 * n, n, 3, "first"), O.MacdO(2 * n, n, 3, "first", fused)),
    ]
    if n >= 2:
        pairs.append((Hma(n, lookback=1 + n % 2), O.HmaO(n, lookback=1 + n % 2)))
    for x in xs:
        for c, o in pairs:
            assert _bits(c.revise(x + 0.25)) == _bits(o.revise(x + 0.25))  # type: ignore[attr-defined]
            assert _bits(c.update(x)) == _bits(o.update(x))  # type: ignore[attr-defined]
            if isinstance(c, Macd):
                assert isinstance(o, O.MacdO)
                assert c.hist_color == o.hist_color
            if isinstance(c, Hma):
                assert isinstance(o, O.HmaO)
                assert c.direction == o.direction


def test_long_sequence_twin_covers_reanchor() -> None:
    x = random_walk(700, 100.0, seed=21).tolist()
    for n in (2, 3, 5, 20):
        c, o = Wma(n), O.WmaO(n)
        for v in x:  # 700 > 8n re-anchors several times for these n
            assert _bits(c.revise(v * 1.001)) == _bits(o.revise(v * 1.001))
            assert _bits(c.update(v)) == _bits(o.update(v))


# ---------------------------------------------------------------------------- FMA dispatch


def test_fma_mode_is_selectable_and_both_modes_are_exact_to_their_twin() -> None:
    x = random_walk(30_000, 100.0, seed=4)
    I.set_fma_mode(False)
    plain = macd(x)
    assert not Macd().fused
    I.set_fma_mode(True)
    fused = macd(x)
    assert Macd().fused
    I.set_fma_mode(None)
    assert I.fma_mode() == I.cpu_has_fma()
    want = talib.MACD(x, 12, 26, 9)
    mine = fused if I.cpu_has_fma() else plain
    for g, w in zip(mine, want, strict=True):
        assert same(g, w)
    for p, f in zip(plain, fused, strict=True):  # both agree far below any price tick
        np.testing.assert_allclose(p, f, rtol=0, atol=1e-11)


# ---------------------------------------------------------------------------- colours


@pytest.mark.parametrize(
    ("hist", "prev", "colour"),
    [
        (1.0, 0.5, "#26a69a"),
        (1.0, 1.0, "#b2dfdb"),
        (0.5, 1.0, "#b2dfdb"),
        (0.0, -1.0, "#26a69a"),
        (0.0, 0.0, "#b2dfdb"),
        (-1.0, -2.0, "#ffcdd2"),
        (-1.0, -1.0, "#ff5252"),
        (-2.0, -1.0, "#ff5252"),
        (1.0, math.nan, "#b2dfdb"),
        (-1.0, math.nan, "#ff5252"),
        (math.nan, 1.0, None),
    ],
)
def test_hist_colour_rules(hist: float, prev: float, colour: str | None) -> None:
    assert O.hist_color(hist, prev) == colour
    m = Macd(2, 3, 1)
    assert m.hist_color is None  # nothing committed yet
    # the forming bar of a fresh Macd has no prev: the first defined bar gets "falling"
    assert m.color_for(hist) == O.hist_color(hist, math.nan)


def test_macd_colours_stream_vs_rule() -> None:
    x = random_walk(2000, 100.0, seed=8).tolist()
    m = Macd()
    prev = math.nan
    for v in x:
        r = m.revise(v)
        assert m.color_for(r[2]) == O.hist_color(r[2], m.hist)
        m.update(v)
        assert m.hist_color == O.hist_color(m.hist, prev)
        if not math.isnan(m.hist):
            prev = m.hist
    assert I.MACD_LINE_COLOR == "#2962FF" and I.SIGNAL_LINE_COLOR == "#ff6d00"
    assert I.HIST_COLORS == ("#26a69a", "#b2dfdb", "#ffcdd2", "#ff5252")


@pytest.mark.parametrize("lookback", [1, 2, 3])
def test_hma_direction(lookback: int) -> None:
    # a plateau (tie keeps the state), a rise, a fall
    x = [10.0] * 30 + [10.0 + i for i in range(10)] + [20.0 - i for i in range(10)] + [5.0] * 10
    h, o = Hma(4, lookback), O.HmaO(4, lookback)
    seen = set()
    for v in x:
        assert h.direction_for(h.revise(v)) == o.direction_for(o.revise(v))
        h.update(v)
        o.update(v)
        assert h.direction == o.direction
        seen.add(h.direction)
        assert h.color == {None: None, "up": "#01FFFF", "down": "#FF66FE"}[h.direction]
    assert seen == {None, "up", "down"}
    flat = Hma(4, lookback)
    for _ in range(30):  # exactly constant HMA: every comparison is a tie, the state stays None
        assert flat.update(10.0) in (10.0,) or not flat.ready
        assert flat.direction is None
    flat.update(11.0)
    assert flat.direction == "up"
    assert h.direction_for(math.nan) is None


# ---------------------------------------------------------------------------- lifecycle


def test_slow_path_is_one_implementation(caplog: pytest.LogCaptureFixture) -> None:
    """reset / extend / rebuild are written once (the compiled base class) for all four
    indicators, and still count, log and skip non-finite inputs per class."""
    classes = (Ema, Wma, Macd, Hma)
    for meth in ("reset", "extend", "rebuild"):
        assert len({getattr(cls, meth) for cls in classes}) == 1, meth
    x = random_walk(300, 100.0, seed=5)
    bad = x.copy()
    bad[[3, 7]] = [math.nan, math.inf]
    for cls in classes:
        a, b = cls(9), cls(9)
        with caplog.at_level(logging.WARNING, logger="ttfast.indicators"):
            assert a.extend(bad) == 2
        assert f"{cls.__name__}.extend: skipped 2 non-finite" in caplog.text
        b.extend(x[:50])
        assert b.rebuild(bad) == 2 and b.count == a.count == len(x) - 2
        assert b.value == a.value
        a.reset()
        assert a.count == 0 and not a.ready
        assert a.extend(np.empty(0)) == 0 and a.count == 0


def test_reset_and_rebuild_from_candle_series() -> None:
    x = random_walk(500, 100.0, seed=9)
    for make in (lambda: Macd(), lambda: Hma(20, 2), lambda: Ema(9), lambda: Wma(9)):
        a, b = make(), make()
        for v in x.tolist():
            a.update(v)
        b.update(123.0)
        assert b.rebuild(SimpleNamespace(close=x)) == 0  # duck-typed CandleSeries (.close)
        assert _bits(a.value) == _bits(b.value) and a.count == b.count
        assert _bits(a.revise(101.0)) == _bits(b.revise(101.0))
        b.rebuild(x[:100])
        b.extend(x[100:])
        assert _bits(a.value) == _bits(b.value)
        b.reset()
        assert b.count == 0 and not b.ready and _all_nan(b.value)
        if isinstance(a, Macd) and isinstance(b, Macd):
            assert b.hist_color is None
        if isinstance(a, Hma) and isinstance(b, Hma):
            assert b.direction is None and b.color is None


def test_ready_and_count() -> None:
    m = Macd()
    for i in range(33):
        m.update(100.0 + i % 3)
        assert not m.ready and m.count == i + 1
    m.update(100.0)
    assert m.ready
    e = Ema(3)
    e.update(1.0)
    e.update(2.0)
    assert not e.ready and math.isnan(e.value)
    assert e.update(6.0) == 3.0 and e.ready
    assert Ema(3, "first").update(5.0) == 5.0
    assert Wma(1).update(7.5) == 7.5


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "make",
    [
        lambda: Ema(0),
        lambda: Wma(-1),
        lambda: Hma(1),
        lambda: Hma(10, 0),
        lambda: Macd(0, 26),
        lambda: Macd(12, 26, 0),
        lambda: Ema(5, "pandas"),
        lambda: Macd(seed="x"),
        lambda: Ema(2_000_000),
    ],
)
def test_invalid_parameters(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_numpy_integer_periods() -> None:
    assert Hma(np.int64(20)).n == 20 and Macd(np.int32(12), np.int64(26)).slow_period == 26


def test_invalid_parameter_types() -> None:
    with pytest.raises(TypeError):
        Ema(2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Hma(True)
    with pytest.raises(ValueError):
        wma(np.zeros((3, 3)), 2)


def test_fast_greater_than_slow_is_swapped() -> None:
    m = Macd(26, 12, 9)
    assert (m.fast_period, m.slow_period, m.signal_period) == (12, 26, 9)
    x = random_walk(300, 100.0)
    for a, b in zip(macd(x, 26, 12, 9), macd(x, 12, 26, 9), strict=True):
        assert same(a, b)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input_rejected_in_streaming(bad: float) -> None:
    for o in (Macd(), Hma(20), Ema(5), Wma(5)):
        o.update(1.0)
        with pytest.raises(ValueError, match="finite"):
            o.update(bad)
        with pytest.raises(ValueError, match="finite"):
            o.revise(bad)
        assert o.count == 1  # state untouched


def test_non_finite_input_skipped_and_counted_in_batch(caplog: pytest.LogCaptureFixture) -> None:
    x = random_walk(400, 100.0, seed=2)
    bad = x.copy()
    holes = [0, 50, 51, 200, 399]
    bad[holes] = [math.nan, math.inf, math.nan, -math.inf, math.nan]
    clean = np.delete(x, holes)
    keep = np.setdiff1d(np.arange(len(x)), holes)
    before = I.nan_skipped_total()
    with caplog.at_level(logging.WARNING, logger="ttfast.indicators"):
        outs = {
            "wma": (wma(bad, 9), wma(clean, 9)),
            "hma": (hma(bad, 16), hma(clean, 16)),
            "ema": (ema(bad, 9), ema(clean, 9)),
        }
        for a, b in zip(macd(bad), macd(clean), strict=True):
            outs[f"macd{len(outs)}"] = (a, b)
    for name, (got, want) in outs.items():
        assert np.isnan(got[holes]).all(), name
        assert same(got[keep], want), name  # skipped values do not disturb the state
    assert I.nan_skipped_total() - before == 5 * 4  # wma, hma, ema, macd
    assert "skipped 5 non-finite" in caplog.text
    h = Hma(16)
    assert h.rebuild(bad) == 5 and h.count == len(clean)


def test_empty_and_short_inputs() -> None:
    assert wma(np.array([]), 5).shape == (0,)
    assert all(a.shape == (0,) for a in macd([]))
    assert np.isnan(hma([1.0, 2.0], 20)).all()
    assert np.isnan(macd([1.0] * 10)[2]).all()
    assert same(wma([1, 2, 3], 2), talib.WMA(np.array([1.0, 2.0, 3.0]), 2))  # int input ok


# ---------------------------------------------------------------------------- C-level API


def test_c_level_api_matches_python_api() -> None:
    from ttfast._core.indicators import _c_api_selftest

    x = random_walk(600, 100.0, seed=13)
    rows = _c_api_selftest(x, 101.0)
    m, h = Macd(), Hma(20)
    for v, row in zip(x.tolist(), rows, strict=True):
        rm, rh = m.revise(101.0), h.revise(101.0)
        rc, rd = m.color_for(rm[2]), h.direction_for(rh)
        m.update(v)
        h.update(v)
        codes = (None, *I.HIST_COLORS)
        dirs = {0: None, 1: "up", -1: "down"}
        assert _bits(row[:4]) == _bits((*m.value, h.value))
        assert codes[row[4] + 1] == m.hist_color and dirs[row[5]] == h.direction
        assert _bits(row[6]) == _bits(rm[2]) and codes[row[7] + 1] == rc
        assert _bits(row[8]) == _bits(rh) and dirs[row[9]] == rd
