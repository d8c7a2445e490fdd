"""Market data on the local REST server, read from the simulated market the dxLink server streams:
``/market-data/{instrument-type}/{symbol}`` and ``/market-data/by-type`` (quote snapshots: bid,
ask, mark, last, day open/high/low, previous close), historic dividends and earnings reports
(seeded, quarterly), and the public ``/margin-requirements-public-configuration`` (the
risk-free rate the option prices use; no token needed).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from aiohttp import web

from ttfast.sim import market
from ttfast.sim.pricing import RISK_FREE_RATE, parse_option_symbol
from ttfast.sim.rest import wire
from ttfast.sim.rest.fixtures import CRYPTOS, EQUITIES, FUTURE_OPTIONS, FUTURES
from ttfast.sim.rest.lifecycle import lifecycle_of, money, streamer_symbol

__all__ = ["by_type", "dividends", "earnings", "market_data", "public_configuration"]

_TYPES = {
    "equity": "Equity",
    "equity-option": "Equity Option",
    "future": "Future",
    "future-option": "Future Option",
    "cryptocurrency": "Cryptocurrency",
    "index": "Index",
}


def _type_of(raw: str) -> str | None:
    """The API's instrument type from a path segment (``Equity``, ``equity-option``, ...)."""
    k = raw.strip().lower().replace(" ", "-")
    return _TYPES.get(k)


def _known(symbol: str, it: str, request: web.Request) -> bool:
    if it in ("Equity", "Index"):
        return symbol in EQUITIES
    if it == "Future":
        return symbol in FUTURES
    if it == "Future Option":
        return symbol in FUTURE_OPTIONS
    if it == "Cryptocurrency":
        return symbol in CRYPTOS
    return symbol in lifecycle_of(request).state.options or parse_option_symbol(symbol) is not None


def _snapshot(request: web.Request, symbol: str, it: str) -> dict[str, Any]:
    lc = lifecycle_of(request)
    sm = lc.market
    now = sm.now_ms()
    t = wire.at_ms(now)
    today = t.date()
    bid, ask = sm.bid_ask(symbol, streamer_symbol(symbol))
    out: dict[str, Any] = {
        "symbol": symbol,
        "instrument-type": it,
        "updated-at": wire.iso(t),
        "bid": money(_d(bid)),
        "ask": money(_d(ask)),
        "mid": money(_d((bid + ask) / 2)),
        "mark": money(_d((bid + ask) / 2)),
        "close-price-type": "Unknown",
        "summary-date": today.isoformat(),
        "prev-close-date": (today - timedelta(days=1)).isoformat(),
        "prev-close-price-type": "Final",
        "halt-start-time": -1,
        "halt-end-time": -1,
    }
    if parse_option_symbol(symbol) is None:
        key = sm.key(streamer_symbol(symbol))
        keys = np.array([key], dtype=np.uint64)
        tick = sm.source.tick_ms
        _, _, bs, as_, *_ = market.quote_values(keys, now, tick)
        price, _, vol, _, tt = market.trade_values(keys, now, tick)
        op, hi, lo, prev = market.day_summary(keys, now, tick)
        out.update({
            "bid-size": str(float(bs[0])), "ask-size": str(float(as_[0])),
            "last": money(_d(float(price[0]))), "last-mkt": money(_d(float(price[0]))),
            "open": money(_d(float(op[0]))), "day-open": money(_d(float(op[0]))),
            "day-high-price": money(_d(float(hi[0]))), "day-low-price": money(_d(float(lo[0]))),
            "prev-close": money(_d(float(prev[0]))), "prev-day-close": money(_d(float(prev[0]))),
            "volume": str(float(vol[0])), "last-trade-time": tt,
            "beta": "1.0",
        })  # fmt: skip
    else:
        out.update({"bid-size": "10.0", "ask-size": "10.0", "open-interest": "1000.0"})
    return out


def _d(x: float) -> Decimal:
    return Decimal(str(round(x, 4)))


async def market_data(request: web.Request) -> web.Response:
    it = _type_of(request.match_info["instrument_type"])
    sym = request.match_info["symbol"]
    if it is None or not _known(sym, it, request):
        wire.not_found(f"No market data for {request.match_info['instrument_type']} {sym}")
    return wire.ok(request, _snapshot(request, sym, it))


async def by_type(request: web.Request) -> web.Response:
    asked = [
        (sym.strip(), it)
        for raw, it in _TYPES.items()
        for arg in request.query.getall(raw, []) + request.query.getall(raw + "[]", [])
        for sym in arg.split(",")
    ]
    if len(asked) > 100:
        return wire.error(400, "too_many_symbols", "at most 100 symbols in total")
    items = [_snapshot(request, sym, it) for sym, it in asked if sym and _known(sym, it, request)]
    return wire.items(request, items)


def _seeded(symbol: str, salt: str) -> int:
    h = hashlib.blake2b(f"{salt}\x00{symbol}".encode(), digest_size=4).digest()
    return int.from_bytes(h, "little")


def _quarters(until: date, n: int, day: int) -> list[date]:
    out = []
    y, m = until.year, until.month
    for _ in range(n):
        m -= 3
        if m <= 0:
            m += 12
            y -= 1
        out.append(date(y, m, day))
    return out


async def dividends(request: web.Request) -> web.Response:
    sym = request.match_info["symbol"]
    if sym not in EQUITIES or EQUITIES[sym]["is-index"]:
        return wire.items(request, [])
    h = _seeded(sym, "div")
    amount = money(_d(0.1 + (h % 90) / 100))
    today = datetime.now(UTC).date()
    rows = [{"occurred-date": d.isoformat(), "amount": amount} for d in _quarters(today, 8, 10)]
    return wire.items(request, rows)


async def earnings(request: web.Request) -> web.Response:
    sym = request.match_info["symbol"]
    if sym not in EQUITIES or EQUITIES[sym]["is-index"] or EQUITIES[sym]["is-etf"]:
        return wire.items(request, [])
    start = request.query.get("start-date")
    try:
        since = date.fromisoformat(start) if start else date.min
    except ValueError:
        return wire.error(400, "invalid_params", "start-date must be YYYY-MM-DD")
    h = _seeded(sym, "eps")
    today = datetime.now(UTC).date()
    rows = [
        {"occurred-date": d.isoformat(), "eps": money(_d(0.5 + ((h >> i) % 300) / 100))}
        for i, d in enumerate(_quarters(today, 12, 25))
        if d >= since
    ]
    return wire.items(request, rows)


async def public_configuration(request: web.Request) -> web.Response:
    return wire.ok(request, {"risk-free-rate": str(RISK_FREE_RATE)})
