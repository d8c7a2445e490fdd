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
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib
from talipp.indicators import HMA as TalippHMA
from talipp.indicators import MACD as TalippMACD

from bench import datagen
from bench.gatelib import CallgrindCase, RatioCase
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
    RatioCase("indicators.batch.wma.vs_talib", lambda: wma(BATCH_GATE, 20),
              lambda: talib.WMA(BATCH_GATE, 20), floor=0.55, target=1 / 1.5, units=NG),
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


def _per_call(fn: Callable[[], object], reps: int = 5) -> float:
    best = math.inf
    fn()
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def table() -> str:
    rows = [
        ("ttfast update() from Python", ttfast_stream, NB),
        ("ttfast revise() from Python (forming bar)", ttfast_stream_revise, NB),
        ("ttfast C-level loop (update_many)", ttfast_c_loop, NB),
        ("talipp 2.7 add()", talipp_stream, NB),
        ("TA-Lib recompute last 50 bars", talib_tail, NB),
        ("pure-Python O(1) twin", python_twin, 200),
    ]
    out = [
        "| streaming, MACD(12,26,9) + HMA(20) per bar | ns/bar | talipp / this |",
        "|---|---:|---:|",
    ]
    t_talipp = _per_call(talipp_stream) / NB
    for name, fn, units in rows:
        t = _per_call(fn) / units
        out.append(f"| {name} | {t * 1e9:,.0f} | {t_talipp / t:,.1f}x |")
    n = len(BATCH)
    brows = [
        ("ttfast macd()", batch_macd), ("TA-Lib MACD", talib_macd),
        ("pandas ewm MACD", pandas_macd), ("ttfast hma(20)", batch_hma),
        ("TA-Lib WMA-composed HMA(20)", talib_hma),
        ("ttfast wma(20)", lambda: wma(BATCH, 20)),
        ("TA-Lib WMA(20)", lambda: talib.WMA(BATCH, 20)),
        ("ttfast wma(400)", lambda: wma(BATCH, 400)),
        ("TA-Lib WMA(400)", lambda: talib.WMA(BATCH, 400)),
    ]  # fmt: skip
    out += ["", "| batch over 1M closes | ns/element |", "|---|---:|"]
    for name, fn in brows:
        out.append(f"| {name} | {_per_call(fn) / n * 1e9:.2f} |")
    t20 = _per_call(_hma_stream(_H20)) / NB
    t400 = _per_call(_hma_stream(_H400)) / NB
    out += ["", f"streaming Hma(400)/Hma(20) cost: {t400 / t20:.2f}"]
    return "\n".join(out)


if __name__ == "__main__":
    print(table())
