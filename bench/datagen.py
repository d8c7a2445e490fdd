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


# The Candle layout the tastytrade SDK (and our streamer) request, in the SDK model's order.
CANDLE_FIELDS = ["eventSymbol", "eventTime", "eventFlags", "index", "time", "sequence", "count",
                 "volume", "vwap", "bidVolume", "askVolume", "impVolatility", "openInterest",
                 "open", "high", "low", "close"]


def candle_feed_frames(n_symbols: int, n_bars: int, updates_per_bar: int = 10,
                       rows_per_frame: int = 50, period_ms: int = 60_000,
                       t0_ms: int = 1_700_000_000_000, channel: int = 3,
                       seed: int = DEFAULT_SEED) -> tuple[dict[str, object], list[bytes]]:
    """A live Candle stream as dxLink COMPACT FEED_DATA frames, plus its FEED_CONFIG.

    Per symbol, each of `n_bars` bars is sent `updates_per_bar` times (same time/index, the
    forming bar's close/high/low/volume/count changing), symbols interleaved like a real feed;
    flags 0 (live updates after a snapshot). Returns (feed_config, frames); frames hold
    `rows_per_frame` events each. Total events = n_symbols * n_bars * updates_per_bar.
    """
    import json

    r = rng(seed)
    syms = [s + "{=1m}" for s in symbols(n_symbols)]
    price = 100.0 + 400.0 * r.random(n_symbols)
    rows: list[list[object]] = []
    for b in range(n_bars):
        t = t0_ms + b * period_ms
        index = (t // 1000) << 32 | (t % 1000) << 22
        opn = price.copy()
        hi, lo, vol = opn.copy(), opn.copy(), np.zeros(n_symbols)
        for u in range(updates_per_bar):
            price = np.round(price * np.exp(r.normal(0.0, 0.0005, n_symbols)), 2)
            hi, lo = np.maximum(hi, price), np.minimum(lo, price)
            vol += np.round(r.lognormal(4.0, 1.0, n_symbols))
            for k in range(n_symbols):
                rows.append([syms[k], 0, 0, int(index), t, 0, u + 1, float(vol[k]),
                             float(price[k]), float(vol[k]) / 2, float(vol[k]) / 2, "NaN", "NaN",
                             float(opn[k]), float(hi[k]), float(lo[k]), float(price[k])])
    frames = []
    for i in range(0, len(rows), rows_per_frame):
        flat = [v for row in rows[i : i + rows_per_frame] for v in row]
        frames.append(json.dumps({"type": "FEED_DATA", "channel": channel,
                                  "data": ["Candle", flat]}, separators=(",", ":")).encode())
    config = {"type": "FEED_CONFIG", "channel": channel, "dataFormat": "COMPACT",
              "aggregationPeriod": 0.1, "eventFields": {"Candle": CANDLE_FIELDS}}
    return config, frames
