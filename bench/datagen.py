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


def rest_live_orders_body(n: int, seed: int = DEFAULT_SEED) -> bytes:
    """A ``GET /accounts/{n}/orders/live`` response body with `n` orders, shaped like the API's
    (dashed keys, money as strings, epoch-ms ``updated-at``, 1-4 option legs)."""
    import json

    r = rng(seed)
    roots = ["SPY", "QQQ", "AAPL", "TSLA", "IWM"]
    items = []
    for i in range(n):
        root = roots[i % len(roots)]
        nlegs = int(r.integers(1, 5))
        strike0 = int(r.integers(100, 600))
        legs = [
            {
                "instrument-type": "Equity Option",
                "symbol": f"{root:<6}261218{'CP'[k % 2]}{(strike0 + 5 * k) * 1000:08d}",
                "quantity": 1,
                "remaining-quantity": 1,
                "action": "Buy to Open" if k % 2 == 0 else "Sell to Open",
                "fills": [],
            }
            for k in range(nlegs)
        ]
        items.append(
            {
                "id": 54758826 + i,
                "account-number": "5WT00001",
                "time-in-force": "GTC",
                "order-type": "Limit",
                "size": 1,
                "underlying-symbol": root,
                "underlying-instrument-type": "Equity",
                "price": f"{r.integers(5, 900) / 100:.2f}",
                "price-effect": "Debit" if i % 3 else "Credit",
                "status": "Live",
                "cancellable": True,
                "editable": True,
                "edited": False,
                "received-at": "2026-11-20T14:30:00.123+00:00",
                "updated-at": 1795303187010 + i,
                "live-at": "2026-11-20T14:30:00.200+00:00",
                "external-identifier": f"ttf-{i:032x}",
                "legs": legs,
            }
        )
    ctx = "/accounts/5WT00001/orders/live"
    body = {"data": {"items": items}, "api-version": "v1", "context": ctx}
    return json.dumps(body).encode()
