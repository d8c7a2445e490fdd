"""Option prices and the live view of the simulated market, shared by the local dxLink server
(Greeks, TheoPrice, Underlying events) and the local REST server (marks, fills).

* :func:`black_scholes` -- European Black–Scholes price and Greeks (theta per day, vega and rho
  per 1.00 = 100 %, like dxFeed's Greeks event).
* :data:`SIM_VOLATILITY` -- the annualised volatility of :mod:`ttfast.sim.market`'s price paths,
  measured (std of log returns at 1 min, 1 h and 1 day steps over 40 symbols x 2000 steps: 0.65
  at every scale), so option prices agree with the paths they are written on.
* :func:`parse_option_symbol` -- dxLink option streamer symbols (``.SPY260619C600``,
  ``./E4AZ26P6000:XCME``) and OCC symbols (``SPY   260619C00600000``).
* :class:`SimMarket` -- bid/ask/mark of any REST or streamer symbol *now* (the clock of the
  market source, e.g. the running :class:`~ttfast.sim.DxLinkServer`): the same numbers the
  dxLink server sends. Options are priced by Black–Scholes on their underlying's mid.

Pure arithmetic over :mod:`ttfast.sim.market`; no I/O.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

import numpy as np

from ttfast.sim import market

__all__ = [
    "OPTION_EXPIRY_UTC_MS",
    "RISK_FREE_RATE",
    "SIM_VOLATILITY",
    "YEAR_MS",
    "Greeks",
    "ManualClock",
    "MarketSource",
    "OptionSymbol",
    "SimMarket",
    "StandaloneMarket",
    "black_scholes",
    "parse_option_symbol",
]

SIM_VOLATILITY = 0.65
RISK_FREE_RATE = 0.0425
YEAR_MS = 365 * market.DAY_MS
#: options expire at 20:15 UTC of their expiration date (the fixtures' ``expires-at``)
OPTION_EXPIRY_UTC_MS = (20 * 60 + 15) * 60_000
_MIN_T = 60_000 / YEAR_MS  # a minute: keeps d1/d2 finite at expiry


@dataclass(frozen=True, slots=True)
class Greeks:
    price: float
    delta: float
    gamma: float
    theta: float
    vega: float
    rho: float


def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _npdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def black_scholes(s: float, k: float, t_years: float, r: float, sigma: float, call: bool) -> Greeks:
    """Black–Scholes price and Greeks of a European option (no dividends)."""
    t = max(t_years, _MIN_T)
    sq = sigma * math.sqrt(t)
    d1 = (math.log(s / k) + (r + 0.5 * sigma * sigma) * t) / sq
    d2 = d1 - sq
    disc = math.exp(-r * t)
    pdf = _npdf(d1)
    gamma = pdf / (s * sq)
    vega = s * pdf * math.sqrt(t)
    if call:
        price = s * _ncdf(d1) - k * disc * _ncdf(d2)
        delta = _ncdf(d1)
        theta = -s * pdf * sigma / (2 * math.sqrt(t)) - r * k * disc * _ncdf(d2)
        rho = k * t * disc * _ncdf(d2)
    else:
        price = k * disc * _ncdf(-d2) - s * _ncdf(-d1)
        delta = _ncdf(d1) - 1.0
        theta = -s * pdf * sigma / (2 * math.sqrt(t)) + r * k * disc * _ncdf(-d2)
        rho = -k * t * disc * _ncdf(-d2)
    return Greeks(max(price, 0.0), delta, gamma, theta / 365.0, vega, rho)


@dataclass(frozen=True, slots=True)
class OptionSymbol:
    """An option symbol's parts: the underlying's *streamer* symbol, expiry, call/put, strike."""

    underlying: str
    expiry: date
    call: bool
    strike: float

    def expires_ms(self) -> int:
        d = datetime(self.expiry.year, self.expiry.month, self.expiry.day, tzinfo=UTC)
        return int(d.timestamp() * 1000) + OPTION_EXPIRY_UTC_MS


_STREAMER_OPT = re.compile(r"^\.(?P<root>[A-Z0-9/]+?)(?P<ymd>\d{6})(?P<cp>[CP])(?P<k>\d+(?:\.\d+)?)"
                           r"(?P<exch>:[A-Z]+)?$")  # fmt: skip
_OCC = re.compile(r"^(?P<root>[A-Z0-9]{1,6}) *(?P<ymd>\d{6})(?P<cp>[CP])(?P<k>\d{8})$")
_FUT_OPT = re.compile(
    r"^\./(?P<fut>[A-Z0-9]+) +\S+ +(?P<ymd>\d{6})(?P<cp>[CP])(?P<k>\d+(?:\.\d+)?)$"
)


def _ymd(s: str) -> date | None:
    try:
        return date(2000 + int(s[:2]), int(s[2:4]), int(s[4:6]))
    except ValueError:
        return None


def parse_option_symbol(symbol: str, future_streamer: dict[str, str] | None = None) -> (
    OptionSymbol | None
):  # fmt: skip
    """Parse a streamer (``.SPY260619C600``), OCC or future-option symbol; ``None`` otherwise.

    A future option's underlying is the future's streamer symbol from ``future_streamer``
    (``/ESZ6`` -> ``/ESZ26:XCME``) when given. Streamer future options (``./E4AZ26P6000:XCME``)
    have no parseable underlying future; their underlying is the option root itself.
    """
    m = _OCC.match(symbol)
    if m is not None:
        d = _ymd(m["ymd"])
        return None if d is None else OptionSymbol(m["root"], d, m["cp"] == "C", int(m["k"]) / 1000)
    m = _FUT_OPT.match(symbol)
    if m is not None:
        d = _ymd(m["ymd"])
        fut = "/" + m["fut"]
        und = (future_streamer or {}).get(fut, fut)
        return None if d is None else OptionSymbol(und, d, m["cp"] == "C", float(m["k"]))
    m = _STREAMER_OPT.match(symbol)
    if m is not None:
        d = _ymd(m["ymd"])
        return None if d is None else OptionSymbol(m["root"], d, m["cp"] == "C", float(m["k"]))
    return None


class Clock(Protocol):
    """Source of simulated market time (epoch ms)."""

    def now_ms(self) -> int: ...


class MarketSource(Protocol):
    """Where the market lives: a seed, a clock and the tick (a :class:`DxLinkServer` is one)."""

    @property
    def seed(self) -> int: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def tick_ms(self) -> int: ...


class ManualClock:
    """A market clock that moves only when told (``t`` ms; :meth:`advance`): tests."""

    def __init__(self, t_ms: int) -> None:
        self.t = int(t_ms)

    def now_ms(self) -> int:
        return self.t

    def advance(self, ms: int) -> None:
        self.t += int(ms)


@dataclass
class StandaloneMarket:
    """A market source without a dxLink server (a REST server on its own)."""

    seed: int
    clock: Clock
    tick_ms: int = 100


class SimMarket:
    """Bid/ask/mark of symbols at the source's current time, equal to the dxLink server's."""

    def __init__(self, source: MarketSource, future_streamer: dict[str, str] | None = None) -> None:
        self.source = source
        self.future_streamer = dict(future_streamer or {})
        self._keys: dict[tuple[int, str], int] = {}

    def now_ms(self) -> int:
        return self.source.clock.now_ms()

    def key(self, streamer_symbol: str) -> int:
        ck = (self.source.seed, streamer_symbol)
        k = self._keys.get(ck)
        if k is None:
            k = self._keys[ck] = market.symbol_key(*ck)
        return k

    def quote(self, streamer_symbol: str, now_ms: int | None = None) -> tuple[float, float]:
        """``(bid, ask)`` of a non-option streamer symbol (the dxLink Quote)."""
        t = self.now_ms() if now_ms is None else now_ms
        keys = np.array([self.key(streamer_symbol)], dtype=np.uint64)
        bid, ask, *_ = market.quote_values(keys, t, self.source.tick_ms)
        return float(bid[0]), float(ask[0])

    def underlying_mid(self, streamer_symbol: str, now_ms: int | None = None) -> float:
        """Unrounded path mid at the tick (what option prices are written on)."""
        t = self.now_ms() if now_ms is None else now_ms
        tt = market.tick_time(t, self.source.tick_ms)
        return float(market.mid_price(self.key(streamer_symbol), tt)[0])

    def option_greeks(self, opt: OptionSymbol, now_ms: int | None = None) -> Greeks:
        t = self.now_ms() if now_ms is None else now_ms
        s = self.underlying_mid(opt.underlying, t)
        tt = market.tick_time(t, self.source.tick_ms)
        years = (opt.expires_ms() - tt) / YEAR_MS
        return black_scholes(s, opt.strike, years, RISK_FREE_RATE, SIM_VOLATILITY, opt.call)

    def option_quote(self, opt: OptionSymbol, now_ms: int | None = None) -> tuple[float, float]:
        theo = self.option_greeks(opt, now_ms).price
        half = 0.02 if theo < 3.0 else 0.05
        return max(0.0, round(theo - half, 2)), round(theo + half, 2)

    def bid_ask(self, symbol: str, streamer_symbol: str | None = None) -> tuple[float, float]:
        """``(bid, ask)`` of a REST symbol (options by Black–Scholes, the rest from the path
        of ``streamer_symbol``, default the symbol itself)."""
        opt = parse_option_symbol(symbol, self.future_streamer)
        if opt is not None:
            return self.option_quote(opt)
        return self.quote(streamer_symbol or symbol)

    def mark(self, symbol: str, streamer_symbol: str | None = None) -> float:
        bid, ask = self.bid_ask(symbol, streamer_symbol)
        return round((bid + ask) / 2.0, 4)
