"""The one seeded data generator behind every benchmark (and reusable by tests).

Everything is a pure function of its arguments and `seed`: the same call gives the same data
on every machine, so all contestants of a benchmark get byte-identical input.
"""

from __future__ import annotations

import numpy as np

DEFAULT_SEED = 20261121


def rng(seed: int = DEFAULT_SEED) -> np.random.Generator:
    return np.random.default_rng(seed)


def random_walk(n: int, start: float = 100.0, vol: float = 0.001, tick: float | None = None,
                seed: int = DEFAULT_SEED) -> np.ndarray:
    """Geometric random walk of `n` closes; rounded to a tick grid when `tick` is given."""
    r = rng(seed)
    x = start * np.exp(np.cumsum(r.normal(0.0, vol, n)))
    if tick is not None:
        x = np.round(x / tick) * tick
    return x.astype(np.float64)


def candles(n: int, start: float = 100.0, period_ms: int = 300_000,
            t0_ms: int = 1_700_000_000_000, seed: int = DEFAULT_SEED) -> dict[str, np.ndarray]:
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
    return {"time": time, "open": open_, "high": high, "low": low, "close": close,
            "volume": volume, "count": count}


def symbols(n: int) -> list[str]:
    """`n` distinct ticker-like symbols (deterministic)."""
    base = ["SPY", "QQQ", "AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "META", "GOOG", "IWM"]
    return [base[i % len(base)] + ("" if i < len(base) else str(i // len(base)))
            for i in range(n)]


def candle_snapshot_columns(
    n: int,
    symbol: str = "SPY{=m}",
    period_ms: int = 60_000,
    t0_ms: int = 1_700_000_000_000,
    seed: int = DEFAULT_SEED,
) -> dict[str, np.ndarray]:
    """A dxLink Candle snapshot of `n` bars as decoded columns, NEWEST FIRST (spec §6.5):
    flags 0x04 on the newest bar, 0 below, then the 0x0A NaN end marker at fromTime (one period
    before the oldest bar); n + 1 rows; index per spec §6.4."""
    bars = candles(n, period_ms=period_ms, t0_ms=t0_ms, seed=seed)
    time = np.empty(n + 1, dtype=np.int64)
    time[:n] = bars["time"][::-1]
    time[n] = t0_ms - period_ms
    flags = np.zeros(n + 1, dtype=np.int64)
    flags[0] = 0x04
    flags[n] = 0x0A
    cols: dict[str, np.ndarray] = {
        "eventSymbol": np.array([symbol] * (n + 1), dtype=object),
        "eventFlags": flags,
        "index": ((time // 1000) << 32) | ((time % 1000) << 22),
        "time": time,
        "count": np.append(bars["count"][::-1], 0).astype(np.int64),
    }
    for name in ("open", "high", "low", "close", "volume"):
        cols[name] = np.append(bars[name][::-1], np.nan)
    cols["vwap"] = (cols["high"] + cols["low"] + cols["close"]) / 3.0
    return cols


def candle_forming_update_batches(
    n_batches: int,
    n_symbols: int = 10,
    per_symbol: int = 10,
    bar_every: int = 50,
    period_ms: int = 60_000,
    t0_ms: int = 1_700_000_000_000,
    seed: int = DEFAULT_SEED,
) -> list[dict[str, np.ndarray]]:
    """Live Candle traffic as decoded column batches (flags 0): each batch holds `per_symbol`
    in-progress updates for each of `n_symbols` symbols, interleaved (same index, growing count,
    moving close/high/low/volume); a new bar starts every `bar_every` batches."""
    r = rng(seed)
    syms = [f"{s}{{=m}}" for s in symbols(n_symbols)]
    m = n_symbols * per_symbol
    sym_col = np.array(syms * per_symbol, dtype=object)
    out = []
    price = 100.0 + r.random(n_symbols) * 50
    count = np.zeros(n_symbols, dtype=np.int64)
    for b in range(n_batches):
        t = t0_ms + (b // bar_every) * period_ms
        if b % bar_every == 0:
            count[:] = 0
        steps = r.normal(0.0, 0.01, (per_symbol, n_symbols))
        closes = price + np.cumsum(steps, axis=0)
        price = closes[-1]
        cnt = count + np.arange(1, per_symbol + 1)[:, None]
        count = cnt[-1].copy()
        close = closes.reshape(m)
        time = np.full(m, t, dtype=np.int64)
        out.append(
            {
                "eventSymbol": sym_col,
                "eventFlags": np.zeros(m, dtype=np.int64),
                "index": ((time // 1000) << 32) | ((time % 1000) << 22),
                "time": time,
                "count": cnt.reshape(m).astype(np.int64),
                "open": np.full(m, 100.0),
                "high": close + 0.05,
                "low": close - 0.05,
                "close": close,
                "volume": cnt.reshape(m) * 100.0,
                "vwap": close,
            }
        )
    return out
