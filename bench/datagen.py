"""The one seeded data generator behind every benchmark (and reusable by tests).

Everything is a pure function of its arguments and `seed`: the same call gives the same data
on every machine, so all contestants of a benchmark get byte-identical input.
"""

from __future__ import annotations

import numpy as np

DEFAULT_SEED = 20261121


def rng(seed: int = DEFAULT_SEED) -> np.random.Generator:
    return np.random.default_rng(seed)


def random_walk(
    n: int,
    start: float = 100.0,
    vol: float = 0.001,
    tick: float | None = None,
    seed: int = DEFAULT_SEED,
) -> np.ndarray:
    """Geometric random walk of `n` closes; rounded to a tick grid when `tick` is given."""
    r = rng(seed)
    x = start * np.exp(np.cumsum(r.normal(0.0, vol, n)))
    if tick is not None:
        x = np.round(x / tick) * tick
    return x.astype(np.float64)


def candles(
    n: int,
    start: float = 100.0,
    period_ms: int = 300_000,
    t0_ms: int = 1_700_000_000_000,
    seed: int = DEFAULT_SEED,
) -> dict[str, np.ndarray]:
    """`n` consistent OHLCV bars oldest→newest: time, open, high, low, close, volume, count."""
    r = rng(seed)
    close = random_walk(n, start, seed=seed)
    open_ = np.empty(n)
    open_[0] = start
    open_[1:] = close[:-1]
    spread = np.abs(r.normal(0.0, 0.0007, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = np.round(r.lognormal(8.0, 1.0, n))
    count = r.integers(1, 500, n).astype(np.int64)
    time = t0_ms + np.arange(n, dtype=np.int64) * period_ms
    return {
        "time": time,
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "count": count,
    }


def symbols(n: int) -> list[str]:
    """`n` distinct ticker-like symbols (deterministic)."""
    base = ["SPY", "QQQ", "AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META", "GOOG", "IWM"]
    return [base[i % len(base)] + ("" if i < len(base) else str(i // len(base))) for i in range(n)]
