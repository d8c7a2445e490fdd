"""The one seeded data generator behind every benchmark (and reusable by tests).

Everything is a pure function of its arguments and `seed`: the same call gives the same data
on every machine, so all contestants of a benchmark get byte-identical input.
"""

from __future__ import annotations

from typing import Any

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


def rest_nested_chain_body(
    n_expirations: int = 30, n_strikes: int = 200, root: str = "SPY", seed: int = DEFAULT_SEED
) -> bytes:
    """A ``GET /option-chains/{root}/nested`` body: one chain item with `n_expirations`
    expirations of `n_strikes` strikes each (an SPY chain is ~30 x 100-400), shaped like the API's
    (dashed keys, strike as a string, OCC + streamer symbols, tick-sizes, one deliverable)."""
    import datetime as dt
    import json

    r = rng(seed)
    d0 = dt.date(2026, 11, 23)
    expirations = []
    for e in range(n_expirations):
        exp = d0 + dt.timedelta(days=int(e * 3 + r.integers(0, 3)))
        ymd = exp.strftime("%y%m%d")
        lo = float(r.integers(300, 450))
        strikes = []
        for k in range(n_strikes):
            strike = lo + k * (0.5 if k % 3 else 1.0)
            s_occ = f"{round(strike * 1000):08d}"
            s_dx = f"{strike:g}"
            strikes.append(
                {
                    "strike-price": f"{strike:.1f}",
                    "call": f"{root:<6}{ymd}C{s_occ}",
                    "call-streamer-symbol": f".{root}{ymd}C{s_dx}",
                    "put": f"{root:<6}{ymd}P{s_occ}",
                    "put-streamer-symbol": f".{root}{ymd}P{s_dx}",
                }
            )
        expirations.append(
            {
                "expiration-type": "Weekly" if e % 4 else "Regular",
                "expiration-date": exp.isoformat(),
                "days-to-expiration": (exp - d0).days,
                "settlement-type": "PM",
                "strikes": strikes,
            }
        )
    item = {
        "underlying-symbol": root,
        "root-symbol": root,
        "option-chain-type": "Standard",
        "shares-per-contract": 100,
        "tick-sizes": [{"value": "0.01", "threshold": "3.0"}, {"value": "0.05"}],
        "deliverables": [
            {
                "id": 12345,
                "root-symbol": root,
                "deliverable-type": "Shares",
                "description": f"100 shares of {root}",
                "amount": "100.0",
                "symbol": root,
                "instrument-type": "Equity",
                "percent": "100",
            }
        ],
        "expirations": expirations,
    }
    body = {"data": {"items": [item]}, "context": f"/option-chains/{root}/nested"}
    return json.dumps(body).encode()


def rest_positions_body(n: int, seed: int = DEFAULT_SEED) -> bytes:
    """A ``GET /accounts/{n}/positions`` body with `n` positions (equities and options), shaped
    like the API's docs example (quantity as a string, multiplier as an int, *-effect siblings)."""
    import json

    r = rng(seed)
    roots = ["SPY", "QQQ", "AAPL", "TSLA", "IWM", "MSFT", "NVDA"]
    items = []
    for i in range(n):
        root = roots[i % len(roots)]
        option = i % 3 != 0
        strike = int(r.integers(100, 600))
        symbol = f"{root:<6}261218{'CP'[i % 2]}{strike * 1000:08d}" if option else root
        close = r.integers(100, 90000) / 100
        item = {
            "account-number": "5WT00001",
            "symbol": symbol,
            "instrument-type": "Equity Option" if option else "Equity",
            "underlying-symbol": root,
            "quantity": str(int(r.integers(1, 500))),
            "quantity-direction": "Long" if i % 4 else "Short",
            "close-price": f"{close:.2f}",
            "average-open-price": f"{close * 0.97:.4f}",
            "average-yearly-market-close-price": f"{close * 0.8:.2f}",
            "average-daily-market-close-price": f"{close:.2f}",
            "multiplier": 100 if option else 1,
            "cost-effect": "Debit" if i % 4 else "Credit",
            "is-suppressed": False,
            "is-frozen": False,
            "restricted-quantity": "0.0",
            "realized-day-gain": f"{r.integers(0, 100000) / 100:.2f}",
            "realized-day-gain-effect": "Credit" if i % 2 else "Debit",
            "realized-day-gain-date": "2026-11-20",
            "realized-today": "0.0",
            "realized-today-effect": "None",
            "realized-today-date": "2026-11-20",
            "created-at": "2026-10-02T17:56:51.872+00:00",
            "updated-at": "2026-11-20T21:49:54.095+00:00",
        }
        if option:
            item["expires-at"] = "2026-12-18T21:15:00.000+00:00"
        items.append(item)
    body = {"data": {"items": items}, "context": "/accounts/5WT00001/positions"}
    return json.dumps(body).encode()


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


# --- dxLink FEED_DATA frames (decoder benchmarks and tests) ---------------------------------

QUOTE_FIELDS = (
    "eventSymbol",
    "eventTime",
    "sequence",
    "timeNanoPart",
    "bidTime",
    "bidExchangeCode",
    "askTime",
    "askExchangeCode",
    "bidPrice",
    "askPrice",
    "bidSize",
    "askSize",
)
"""tastytrade SDK's Quote layout (its pydantic field order; spec dxlink.md §5.1)."""

CANDLE_FIELDS = (
    "eventSymbol",
    "eventTime",
    "eventFlags",
    "index",
    "time",
    "sequence",
    "count",
    "volume",
    "vwap",
    "bidVolume",
    "askVolume",
    "impVolatility",
    "openInterest",
    "open",
    "high",
    "low",
    "close",
)
"""tastytrade SDK's Candle layout (its pydantic field order; spec dxlink.md §5.1)."""


def java_double(x: float) -> str:
    """Format a double like Java's Double.toString, as dxFeed's server does: ``100.0``,
    ``559.36``, ``1.3743299E7``, ``1.0E-4``, and the strings ``"NaN"``/``"Infinity"`` quoted."""
    import math

    if math.isnan(x):
        return '"NaN"'
    if math.isinf(x):
        return '"Infinity"' if x > 0 else '"-Infinity"'
    if x == 0:
        return "-0.0" if math.copysign(1, x) < 0 else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        s = repr(x)
        return s if "." in s else s + ".0"
    digits, _, e10 = repr(abs(x)).partition("e")
    intpart, _, frac = digits.partition(".")
    all_digits = (intpart + frac).lstrip("0")
    lead_zeros = len(intpart + frac) - len(all_digits)
    point = len(intpart) - lead_zeros - 1 + (int(e10) if e10 else 0)
    all_digits = all_digits.rstrip("0") or "0"
    sign = "-" if x < 0 else ""
    return f"{sign}{all_digits[0]}.{all_digits[1:] or '0'}E{point}"


def candle_index(time_ms: int, sequence: int = 0) -> int:
    """dxFeed time-series index (spec dxlink.md §6.4)."""
    return ((time_ms // 1000) << 32) | ((time_ms % 1000) << 22) | sequence


def _feed_data(channel: int, groups: list[tuple[str, list[str]]]) -> bytes:
    parts = []
    for etype, toks in groups:
        parts.append(f'"{etype}",[{",".join(toks)}]')
    return f'{{"type":"FEED_DATA","channel":{channel},"data":[{",".join(parts)}]}}'.encode()


def quote_frames(
    n_frames: int, per_frame: int, seed: int = DEFAULT_SEED, channel: int = 1
) -> list[bytes]:
    """`n_frames` COMPACT FEED_DATA frames of `per_frame` Quote events each (QUOTE_FIELDS),
    numbers formatted like dxFeed's Java server; ~3% of sizes are "NaN" (index quotes)."""
    r = rng(seed)
    syms = symbols(50)
    mids = {s: float(r.uniform(5, 900)) for s in syms}
    t = 1_748_020_169_000
    frames = []
    for _ in range(n_frames):
        toks: list[str] = []
        for _ in range(per_frame):
            s = syms[int(r.integers(0, len(syms)))]
            mids[s] *= float(np.exp(r.normal(0, 0.0005)))
            bid = round(mids[s], 2)
            ask = round(bid + 0.01 * int(r.integers(1, 6)), 2)
            t += int(r.integers(0, 50))
            nan_sizes = r.random() < 0.03
            bsz = float("nan") if nan_sizes else float(r.integers(1, 50) * 100)
            asz = float("nan") if nan_sizes else float(r.integers(1, 50) * 100)
            toks += [
                f'"{s}"',
                "0",
                "0",
                "0",
                str(t),
                '"Q"',
                str(t + 3),
                '"Z"',
                java_double(bid),
                java_double(ask),
                java_double(bsz),
                java_double(asz),
            ]
        frames.append(_feed_data(channel, [("Quote", toks)]))
    return frames


def _candle_tokens(sym: str, bars: dict[str, np.ndarray], i: int, flags: int) -> list[str]:
    t = int(bars["time"][i])
    vol = float(bars["volume"][i])
    return [
        f'"{sym}"',
        "0",
        str(flags),
        str(candle_index(t)),
        str(t),
        "0",
        str(int(bars["count"][i])),
        java_double(vol),
        java_double(round(float(bars["close"][i]), 4)),
        java_double(round(vol * 0.4)),
        java_double(round(vol * 0.6)),
        '"NaN"',
        '"NaN"',
        java_double(round(float(bars["open"][i]), 2)),
        java_double(round(float(bars["high"][i]), 2)),
        java_double(round(float(bars["low"][i]), 2)),
        java_double(round(float(bars["close"][i]), 2)),
    ]


def candle_snapshot_frames(
    n_bars: int,
    per_frame: int,
    symbol: str = "SPY{=5m}",
    seed: int = DEFAULT_SEED,
    channel: int = 3,
) -> list[bytes]:
    """A dxLink Candle history snapshot of `n_bars` bars (CANDLE_FIELDS) split over frames of
    `per_frame` events: newest first, first flagged SNAPSHOT_BEGIN (4), the last one the 0x0A
    REMOVE|SNAPSHOT_END placeholder row with NaN values (spec dxlink.md §6.5)."""
    bars = candles(n_bars, seed=seed)
    rows: list[list[str]] = []
    for k, i in enumerate(range(n_bars - 1, 0, -1)):
        rows.append(_candle_tokens(symbol, bars, i, 4 if k == 0 else 0))
    t0 = int(bars["time"][0])
    rows.append(
        [f'"{symbol}"', "0", "10", str(candle_index(t0)), str(t0), "0", "0"] + ['"NaN"'] * 10
    )
    return [
        _feed_data(channel, [("Candle", [tok for row in rows[i : i + per_frame] for tok in row])])
        for i in range(0, len(rows), per_frame)
    ]


def candle_frames(
    n_frames: int, per_frame: int, seed: int = DEFAULT_SEED, channel: int = 3
) -> list[bytes]:
    """`n_frames` live Candle update frames of `per_frame` events (several symbols, flags 0)."""
    syms = [s + "{=5m}" for s in symbols(10)]
    bars = candles(n_frames * per_frame, seed=seed)
    frames = []
    for f in range(n_frames):
        toks: list[str] = []
        for k in range(per_frame):
            i = f * per_frame + k
            toks += _candle_tokens(syms[i % len(syms)], bars, i, 0)
        frames.append(_feed_data(channel, [("Candle", toks)]))
    return frames


def candle_feed_frames(
    n_symbols: int,
    n_bars: int,
    updates_per_bar: int = 10,
    rows_per_frame: int = 50,
    period_ms: int = 60_000,
    t0_ms: int = 1_700_000_000_000,
    channel: int = 3,
    seed: int = DEFAULT_SEED,
) -> tuple[dict[str, object], list[bytes]]:
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
                rows.append(
                    [
                        syms[k],
                        0,
                        0,
                        int(index),
                        t,
                        0,
                        u + 1,
                        float(vol[k]),
                        float(price[k]),
                        float(vol[k]) / 2,
                        float(vol[k]) / 2,
                        "NaN",
                        "NaN",
                        float(opn[k]),
                        float(hi[k]),
                        float(lo[k]),
                        float(price[k]),
                    ]
                )
    frames = []
    for i in range(0, len(rows), rows_per_frame):
        flat = [v for row in rows[i : i + rows_per_frame] for v in row]
        frames.append(
            json.dumps(
                {"type": "FEED_DATA", "channel": channel, "data": ["Candle", flat]},
                separators=(",", ":"),
            ).encode()
        )
    config = {
        "type": "FEED_CONFIG",
        "channel": channel,
        "dataFormat": "COMPACT",
        "aggregationPeriod": 0.1,
        "eventFields": {"Candle": list(CANDLE_FIELDS)},
    }
    return config, frames


DXLINK_HANDSHAKE = ("SETUP", "AUTH", "CHANNEL_REQUEST")


def dxlink_handshake_replies(m: dict[str, Any]) -> list[dict[str, Any]]:
    """A loopback dxLink server's answers to a SETUP, AUTH or CHANNEL_REQUEST message (the
    generators of bench_dxlink and bench_latency): any token is accepted, every channel FEED."""
    ty = m["type"]
    if ty == "SETUP":
        return [
            {"type": "SETUP", "channel": 0, "keepaliveTimeout": 60,
             "acceptKeepaliveTimeout": 60, "version": "bench"},
            {"type": "AUTH_STATE", "channel": 0, "state": "UNAUTHORIZED"},
        ]  # fmt: skip
    if ty == "AUTH":
        return [{"type": "AUTH_STATE", "channel": 0, "state": "AUTHORIZED"}]
    assert ty == "CHANNEL_REQUEST", ty
    return [{"type": "CHANNEL_OPENED", "channel": m.get("channel", 0), "service": "FEED",
             "parameters": m.get("parameters", {})}]  # fmt: skip
