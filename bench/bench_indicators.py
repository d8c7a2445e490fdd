"""Indicators: ttfast streaming/batch vs talipp, TA-Lib, pandas and a pure-Python O(1) twin.

Side by side in one run (pytest-benchmark groups), same seeded closes from bench/datagen.py:
* streaming, per update of MACD(12,26,9) + HMA(20): ttfast from Python (one `update` call per
  indicator per bar), ttfast from the C-level loop (`extend` = `update_many`, what the worker's
  compiled loop does), talipp `add`, TA-Lib "recompute the last 50 bars" per update, and the
  pure-Python O(1) twin (tests/oracles/indicators.py, plain EMA step);
* batch over 1M closes: ttfast `macd`/`hma`/`wma` vs TA-Lib vs pandas ewm (MACD);
* complexity: cost at n=400 vs n=20 (batch WMA, streaming HMA).
`python -m bench.bench_indicators` prints a table (the README's).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib
from talipp.indicators import HMA as TalippHMA
from talipp.indicators import MACD as TalippMACD

from bench import datagen
from bench.gatelib import CallgrindCase, RatioCase, measure_ratio
from ttfast._core.indicators import Hma, Macd, hma, macd, wma

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.oracles.indicators import HmaO, MacdO

STREAM = datagen.random_walk(2_000, 100.0, tick=0.01).tolist()  # bars per streaming call
BATCH = datagen.random_walk(1_000_000, 100.0)
BATCH_GATE = BATCH[:200_000]
TAIL = 50


def _warm(objs: tuple[object, ...]) -> None:
    for v in datagen.random_walk(200, 100.0, seed=1).tolist():
        for o in objs:
            o.update(v) if hasattr(o, "update") else o.add(v)  # type: ignore[attr-defined]


_M, _H = Macd(), Hma(20)
_warm((_M, _H))
_ARR = np.asarray(STREAM)


def ttfast_stream() -> None:
    m, h = _M.update, _H.update
    for v in STREAM:
        m(v)
        h(v)


def ttfast_stream_revise() -> None:
    m, h = _M.revise, _H.revise
    for v in STREAM:
        m(v)
        h(v)


def ttfast_c_loop() -> None:
    _M.extend(_ARR)
    _H.extend(_ARR)


class _Talipp:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.m, self.h = TalippMACD(12, 26, 9), TalippHMA(20)
        for v in datagen.random_walk(200, 100.0, seed=1).tolist():
            self.m.add(v)
            self.h.add(v)

    def run(self) -> None:
        if len(self.m) > 20_000:  # talipp keeps every output (and slows as it grows): bound it
            self.reset()
        m, h = self.m.add, self.h.add
        for v in STREAM:
            m(v)
            h(v)


_TALIPP = _Talipp()


def talipp_stream() -> None:
    _TALIPP.run()


_TAIL_BUF = np.asarray(datagen.random_walk(TAIL, 100.0, seed=1))


def talib_tail() -> None:
    """Recompute the last 50 bars with TA-Lib on every update (the common workaround)."""
    buf = _TAIL_BUF
    sq = int(math.sqrt(20))
    for v in STREAM:
        buf[:-1] = buf[1:]
        buf[-1] = v
        talib.MACD(buf, 12, 26, 9)
        talib.WMA(2 * talib.WMA(buf, 10) - talib.WMA(buf, 20), sq)


_PM, _PH = MacdO(), HmaO(20)
_warm((_PM, _PH))


def python_twin() -> None:
    m, h = _PM.update, _PH.update
    for v in STREAM[:200]:  # the twin is slow; 200 bars per call (units below)
        m(v)
        h(v)


def batch_macd(x: np.ndarray = BATCH) -> object:
    return macd(x)


def talib_macd(x: np.ndarray = BATCH) -> object:
    return talib.MACD(x, 12, 26, 9)


def pandas_macd(x: np.ndarray = BATCH) -> object:
    s = pd.Series(x)
    m = s.ewm(span=12, adjust=False).mean() - s.ewm(span=26, adjust=False).mean()
    sig = m.ewm(span=9, adjust=False).mean()
    return m, sig, m - sig


def batch_hma(x: np.ndarray = BATCH) -> object:
    return hma(x, 20)


def talib_hma(x: np.ndarray = BATCH) -> object:
    return talib.WMA(2 * talib.WMA(x, 10) - talib.WMA(x, 20), 4)


# ----------------------------------------------------------------------- pytest-benchmark


@pytest.mark.benchmark(group="indicators-stream")
@pytest.mark.parametrize(
    "fn",
    [ttfast_stream, ttfast_stream_revise, ttfast_c_loop, talipp_stream, talib_tail, python_twin],
    ids=lambda f: f.__name__,
)
def test_bench_stream(benchmark: pytest.FixtureDef, fn: Callable[[], None]) -> None:  # type: ignore[type-arg]
    benchmark(fn)


@pytest.mark.benchmark(group="indicators-batch")
@pytest.mark.parametrize(
    "fn",
    [batch_macd, talib_macd, pandas_macd, batch_hma, talib_hma],
    ids=lambda f: f.__name__,
)
def test_bench_batch(benchmark: pytest.FixtureDef, fn: Callable[[], object]) -> None:  # type: ignore[type-arg]
    benchmark(fn)


# ----------------------------------------------------------------------- gate

_H400, _H20 = Hma(400), Hma(20)
_warm((_H400, _H20))


def _hma_stream(h: Hma) -> Callable[[], None]:
    def run() -> None:
        u = h.update
        for v in STREAM:
            u(v)

    return run


NB = len(STREAM)
NG = len(BATCH_GATE)

GATE_RATIOS = [
    RatioCase("indicators.stream.macd_hma.vs_talipp", ttfast_stream, talipp_stream,
              floor=80.0, target=100.0, units=NB,
              note="per bar: Macd.update + Hma.update from Python vs talipp add"),
    RatioCase("indicators.stream_c.macd_hma.vs_talipp", ttfast_c_loop, talipp_stream,
              floor=600.0, target=100.0, units=NB, note="C-level loop (update_many)"),
    RatioCase("indicators.batch.macd.vs_talib", lambda: batch_macd(BATCH_GATE),
              lambda: talib_macd(BATCH_GATE), floor=0.42, target=1 / 1.5, units=NG),
    RatioCase("indicators.batch.hma.vs_talib", lambda: batch_hma(BATCH_GATE),
              lambda: talib_hma(BATCH_GATE), floor=0.55, target=1 / 1.5, units=NG),
    # 0.75-0.8 measured (load 3.3 on 2 cores), but 0.56 in a gate run at the same load: both
    # sides are memory-bound, so the ratio sinks when other jobs share the caches; a 2x slower
    # wma (0.38) still fails
    RatioCase("indicators.batch.wma.vs_talib", lambda: wma(BATCH_GATE, 20),
              lambda: talib.WMA(BATCH_GATE, 20), floor=0.4, target=1 / 1.5, units=NG),
    # complexity: cost(n=400) / cost(n=20) must stay flat (O(1) per bar)
    RatioCase("indicators.batch.wma.n400_over_n20", lambda: wma(BATCH_GATE, 20),
              lambda: wma(BATCH_GATE, 400), ceiling=1.5, target=1.2, units=NG),
    RatioCase("indicators.stream.hma.n400_over_n20", _hma_stream(_H20), _hma_stream(_H400),
              ceiling=1.5, target=1.2, units=NB),
]  # fmt: skip

GATE_CALLGRIND = [
    CallgrindCase(
        "indicators.macd_hma.update_many",
        setup=(
            "import numpy as np\nfrom ttfast._core.indicators import Macd, Hma\n"
            "x = 100.0 + np.cumsum(np.sin(np.arange(10000) * 0.37))\n"
            "m, h = Macd(), Hma(20)\nm.extend(x[:500]); h.extend(x[:500])"
        ),
        stmt="m.extend(x); h.extend(x)",
        toggle="*10indicators_*update_many*",
        repeat=5,
        per=10000,
    ),
]


# ----------------------------------------------------------------------- table


def table() -> str:
    """Markdown tables for the README. Each row is measured interleaved with its reference
    (gatelib.measure_ratio: median of alternating rounds), so load on a shared machine skews
    both sides alike; absolute ns are medians of the same rounds."""
    stream = [
        ("ttfast `update()` from Python", ttfast_stream, NB),
        ("ttfast `revise()` from Python (forming bar)", ttfast_stream_revise, NB),
        ("ttfast C-level loop (`update_many`, worker)", ttfast_c_loop, NB),
        ("TA-Lib 0.8, recompute the last 50 bars", talib_tail, NB),
        ("pure-Python O(1) twin (tests/oracles)", python_twin, 200),
    ]
    out = [
        "| streaming: MACD(12,26,9) + HMA(20), per bar | ns/bar | talipp ns/bar | talipp / this |",
        "|---|---:|---:|---:|",
    ]
    for name, fn, units in stream:

        def ref(u: int = units) -> None:
            if u == NB:
                talipp_stream()
            else:  # same number of bars as fn
                m, h = _TALIPP.m.add, _TALIPP.h.add
                for v in STREAM[:u]:
                    m(v)
                    h(v)

        r = measure_ratio(RatioCase(name, fn, ref, units=units), rounds=5)
        out.append(
            f"| {name} | {r.fast_ns_per_unit:,.0f} | {r.ref_ns_per_unit:,.0f} | {r.ratio:,.1f}x |"
        )
    n = len(BATCH)
    batch = [
        ("ttfast `macd()`", batch_macd, talib_macd, "TA-Lib MACD"),
        ("pandas ewm MACD", pandas_macd, talib_macd, "TA-Lib MACD"),
        ("ttfast `hma(20)`", batch_hma, talib_hma, "TA-Lib WMA-composed HMA(20)"),
        ("ttfast `wma(20)`", lambda: wma(BATCH, 20), lambda: talib.WMA(BATCH, 20),
         "TA-Lib WMA(20)"),
        ("ttfast `wma(400)`", lambda: wma(BATCH, 400), lambda: talib.WMA(BATCH, 400),
         "TA-Lib WMA(400)"),
    ]  # fmt: skip
    out += [
        "",
        "| batch over 1M closes | ns/element | reference | ref ns/element | this / ref |",
        "|---|---:|---|---:|---:|",
    ]
    for name, fn, ref_fn, ref_name in batch:
        r = measure_ratio(RatioCase(name, fn, ref_fn, units=n), rounds=3, min_time=0.05)
        out.append(
            f"| {name} | {r.fast_ns_per_unit:.2f} | {ref_name} | {r.ref_ns_per_unit:.2f} "
            f"| {1 / r.ratio:.2f} |"
        )
    c1 = measure_ratio(RatioCase("", lambda: wma(BATCH, 20), lambda: wma(BATCH, 400), units=n),
                       rounds=3)  # fmt: skip
    c2 = measure_ratio(RatioCase("", _hma_stream(_H20), _hma_stream(_H400), units=NB), rounds=5)
    out += [
        "",
        f"Cost at n=400 / cost at n=20: batch WMA {c1.ratio:.2f}, streaming HMA {c2.ratio:.2f}.",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(table())
