"""Seeded market simulator behind the local dxLink server (``ttfast.sim``).

Everything here is a *pure function* of ``(seed, symbol, time)``: the server and the tests call the
same functions, so a test can compute exactly which quotes/candles the server must have sent
without talking to it. No state, no I/O, no clock.

Price model: for each symbol a log-price path ``log p(t) = log base + sum_k a_k * n_k(t)`` where
``n_k`` is linearly interpolated hash noise on a lattice of spacing ``2**k`` seconds
(k = 0..25) and ``a_k`` grows like ``sqrt(2**k)`` -- a multi-scale approximation of a random walk
whose value at any instant costs O(26) and needs no sequential state (so a 5-minute candle from
2015 and the live quote "now" come from the same path). Noise uses splitmix64 on uint64 numpy
arrays (wrap-around arithmetic; never numpy scalars, which would warn on overflow).

* Quotes/trades change at discrete market ticks of ``tick_ms`` (default 100 ms).
* A candle of period P starting at ``b`` is built from ``CANDLE_SAMPLES`` (8) sub-samples at
  ``b + j*P//8``; a sample is part of the bar once ``now >= b + j*P//8``, so the forming bar only
  changes at those instants and its final state equals the historical bar. Prices are rounded to
  cents; sample volumes are whole shares.
* Sessions are ignored (24 h market); ``tho=true`` / ``price=`` / ``a=`` attributes are accepted
  and do not change the data. Supported periods: ``s, m, h, d, w`` with an optional (possibly
  fractional) multiplier; days start 00:00 UTC, weeks on Monday 00:00 UTC. Other candle types
  (tick ``t``, ``mo``, ``y``, volume/price bars) are not simulated (:func:`parse_candle_symbol`
  returns ``None``; the server answers them with an empty snapshot).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "CANDLE_SAMPLES",
    "DAY_MS",
    "HISTORY_START_MS",
    "CandleBars",
    "CandleSpec",
    "align_bar_start",
    "base_price",
    "candle_bars",
    "candle_bars_between",
    "candle_index",
    "day_summary",
    "index_time",
    "mid_price",
    "mid_price_at",
    "parse_candle_symbol",
    "quote_values",
    "symbol_key",
    "tick_time",
    "trade_values",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
_MONDAY_OFFSET_MS = 4 * DAY_MS  # 1970-01-05 was a Monday
HISTORY_START_MS = 946_684_800_000  # 2000-01-01T00:00Z: no simulated bars before this
CANDLE_SAMPLES = 8
_LEVELS = 26
_VOL = 1.0e-4  # per sqrt(second), per level
_M64 = (1 << 64) - 1


def symbol_key(seed: int, symbol: str) -> int:
    """Stable 64-bit key of ``(seed, symbol)`` (blake2b; independent of PYTHONHASHSEED)."""
    h = hashlib.blake2b(f"{seed}\x00{symbol}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little")


def _mix(x: U64) -> U64:
    """splitmix64 finalizer, elementwise on uint64 arrays (wrap-around)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash(key: U64, a: I64, salt: int) -> U64:
    """Hash of (key, integer a, salt) -> uint64 array."""
    s = np.uint64((salt * 0x632BE59BD9B4E019 + 0x1234567) & _M64)
    return _mix(key ^ _mix(a.astype(np.uint64) ^ s))


def _unit(h: U64) -> F64:
    """uint64 hash -> float in [0, 1)."""
    # via int64: numpy's uint64 -> float64 cast is a slow scalar loop
    return (h >> np.uint64(11)).astype(np.int64).astype(np.float64) * (1.0 / 9007199254740992.0)


def _keys(key: int | U64, shape: tuple[int, ...]) -> U64:
    if isinstance(key, int):
        return np.full(shape, key & _M64, dtype=np.uint64)
    return np.broadcast_to(np.asarray(key, dtype=np.uint64), shape).copy()


def base_price(seed: int, symbol: str) -> float:
    """The symbol's reference price (10.00 .. 500.00), i.e. the path's centre."""
    k = symbol_key(seed, symbol)
    u = float(_unit(_hash(np.array([k], dtype=np.uint64), np.array([0], dtype=np.int64), 1))[0])
    return round(10.0 + 490.0 * u, 2)


def _base_from_keys(keys: U64) -> F64:
    u = _unit(_hash(keys, np.zeros(keys.shape, dtype=np.int64), 1))
    return np.round(10.0 + 490.0 * u, 2)


_SPAN = [float(1 << k) for k in range(_LEVELS)]
_AMP = [_VOL * math.sqrt(1 << k) for k in range(_LEVELS)]
_CHUNK = 65_536


def _ab(keys: U64, ii: I64, level: int) -> tuple[F64, F64]:
    a = _unit(_hash(keys, ii, 100 + level)) * 2.0 - 1.0
    b = _unit(_hash(keys, ii + 1, 100 + level)) * 2.0 - 1.0
    return a, b


def _mid_chunk(keys: U64, t: I64) -> F64:
    ts = t.astype(np.float64) / 1000.0
    logp = np.zeros(t.shape, dtype=np.float64)
    for k in range(_LEVELS):
        x = ts / _SPAN[k]
        i = np.floor(x)
        f = x - i
        a, b = _ab(keys, i.astype(np.int64), k)
        logp += _AMP[k] * (a + (b - a) * f)
    return np.asarray(_base_from_keys(keys) * np.exp(logp), dtype=np.float64)


def mid_price(key: int | U64, t_ms: I64 | int) -> F64:
    """Unrounded mid price of the path(s) ``key`` at epoch-ms time(s) ``t_ms`` (broadcast)."""
    t = np.atleast_1d(np.asarray(t_ms, dtype=np.int64))
    keys = _keys(key, t.shape) if isinstance(key, int) else np.asarray(key, dtype=np.uint64)
    t, keys = np.broadcast_arrays(t, keys)
    shape = t.shape
    t = np.ascontiguousarray(t).reshape(-1)
    keys = np.ascontiguousarray(keys).reshape(-1)
    if t.size <= _CHUNK:
        return _mid_chunk(keys, t).reshape(shape)
    out = np.empty(t.size, dtype=np.float64)
    for j in range(0, t.size, _CHUNK):
        out[j : j + _CHUNK] = _mid_chunk(keys[j : j + _CHUNK], t[j : j + _CHUNK])
    return out.reshape(shape)


_AB_CACHE: dict[tuple[int, int, int, int], tuple[F64, F64]] = {}


def mid_price_at(keys: U64, t_ms: int) -> F64:
    """:func:`mid_price` of many keys at one instant, bit-identical to it but memoising the
    per-level lattice values (coarse levels change rarely), so the live server's per-tick cost
    is a few array ops per level instead of two hashes per level."""
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    n = keys.shape[0]
    tok = hash(keys.tobytes())
    ts = float(np.float64(t_ms)) / 1000.0
    logp = np.zeros(n, dtype=np.float64)
    if len(_AB_CACHE) > 4096:
        _AB_CACHE.clear()
    for k in range(_LEVELS):
        x = ts / _SPAN[k]
        i = math.floor(x)
        f = x - i
        ck = (tok, n, k, i)
        ab = _AB_CACHE.get(ck)
        if ab is None:
            ab = _AB_CACHE[ck] = _ab(keys, np.full(n, i, dtype=np.int64), k)
        a, b = ab
        logp += _AMP[k] * (a + (b - a) * f)
    return np.asarray(_base_from_keys(keys) * np.exp(logp), dtype=np.float64)


def tick_time(t_ms: int, tick_ms: int) -> int:
    """Start of the market tick containing ``t_ms`` (quotes/trades change only at ticks)."""
    return (t_ms // tick_ms) * tick_ms


def candle_index(time_ms: int, sequence: int = 0) -> int:
    """dxFeed time-series index: ``(secs << 32) | (millis << 22) | sequence`` (spec §6.4), as
    the Java ``long`` dxFeed prints: negative for bars from 2038-01-19 03:14:08 UTC on."""
    v = ((time_ms // 1000) << 32) | ((time_ms % 1000) << 22) | sequence
    return v - (1 << 64) if v >= 1 << 63 else v


def index_time(index: int) -> int:
    """Inverse of :func:`candle_index` (time part); accepts the signed or the unsigned form."""
    index &= (1 << 64) - 1
    return (index >> 32) * 1000 + ((index >> 22) & 0x3FF)


# ------------------------------------------------------------------------------ quotes / trades

_EXCH = np.array(list("QPZKNX"))


def quote_values(
    keys: U64, t_ms: int, tick_ms: int = 100
) -> tuple[F64, F64, F64, F64, npt.NDArray[np.str_], npt.NDArray[np.str_], int]:
    """Quote state of many symbols at time ``t_ms``: ``(bid, ask, bidSize, askSize,
    bidExchangeCode, askExchangeCode, quote_time)``. ``quote_time`` is the tick start."""
    tt = tick_time(t_ms, tick_ms)
    n = keys.shape[0]
    t_arr = np.full(n, tt, dtype=np.int64)
    mid = mid_price_at(keys, tt)
    tick_no = t_arr // tick_ms
    h = _hash(keys, tick_no, 7)
    spread = 0.01 * (1 + (h % np.uint64(5)).astype(np.float64))
    bid = np.round(mid - spread / 2.0, 2)
    ask = np.round(bid + spread, 2)
    h2 = _hash(keys, tick_no, 8)
    bid_size = 100.0 * (1 + (h2 % np.uint64(20)).astype(np.float64))
    ask_size = 100.0 * (1 + ((h2 >> np.uint64(20)) % np.uint64(20)).astype(np.float64))
    bex = _EXCH[(h2 >> np.uint64(40)) % np.uint64(6)]
    aex = _EXCH[(h2 >> np.uint64(48)) % np.uint64(6)]
    return bid, ask, bid_size, ask_size, bex, aex, tt


def trade_values(keys: U64, t_ms: int, tick_ms: int = 100) -> tuple[F64, F64, F64, F64, int]:
    """Last trade of many symbols at ``t_ms``: ``(price, size, dayVolume, change, trade_time)``.

    ``dayVolume`` grows linearly through the UTC day at a per-symbol rate; ``change`` is against
    the previous day's close (the path's price at the last ms of the previous day, cent-rounded).
    """
    tt = tick_time(t_ms, tick_ms)
    n = keys.shape[0]
    t_arr = np.full(n, tt, dtype=np.int64)
    price = np.round(mid_price_at(keys, tt), 2)
    h = _hash(keys, t_arr // tick_ms, 9)
    size = 100.0 * (1 + (h % np.uint64(10)).astype(np.float64))
    rate = 50.0 + (keys % np.uint64(500)).astype(np.float64)
    day_start = (tt // DAY_MS) * DAY_MS
    day_volume = np.floor(rate * ((tt - day_start) / 1000.0))
    prev_close = np.round(mid_price_at(keys, day_start - 1), 2)
    change = np.round(price - prev_close, 2)
    return price, size, day_volume, change, tt


SUMMARY_GRID_MS = 900_000  # day high/low are sampled every 15 minutes (+ the current tick)
_GRID_CACHE: dict[tuple[int, int, int], F64] = {}


def day_summary(keys: U64, t_ms: int, tick_ms: int = 100) -> tuple[F64, F64, F64, F64]:
    """``(dayOpen, dayHigh, dayLow, prevDayClose)`` of many symbols at ``t_ms`` (cent-rounded).

    Open = price at 00:00 UTC; high/low over the 15-minute grid of the day so far and the
    current tick; previous close = price at the last ms of the previous day.
    """
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    tt = tick_time(t_ms, tick_ms)
    day0 = (tt // DAY_MS) * DAY_MS
    tok = hash(keys.tobytes())
    if len(_GRID_CACHE) > 8192:
        _GRID_CACHE.clear()

    def at(t: int) -> F64:
        ck = (tok, keys.shape[0], t)
        v = _GRID_CACHE.get(ck)
        if v is None:
            v = _GRID_CACHE[ck] = np.round(mid_price_at(keys, t), 2)
        return v

    grid = [at(t) for t in range(day0, tt + 1, SUMMARY_GRID_MS)]
    cur = np.round(mid_price_at(keys, tt), 2)
    allp = np.vstack([*grid, cur])
    return grid[0], allp.max(axis=0), allp.min(axis=0), at(day0 - 1)


# ------------------------------------------------------------------------------ candles

_CANDLE_RE = re.compile(r"^(?P<base>[^{]+)(?:\{(?P<attrs>[^}]*)\})?$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": WEEK_MS}


@dataclass(frozen=True, slots=True)
class CandleSpec:
    """A parsed candle symbol: the base (streamer) symbol and the bar period in ms."""

    symbol: str
    base: str
    period_ms: int
    attrs: tuple[tuple[str, str], ...]


def parse_candle_symbol(symbol: str) -> CandleSpec | None:
    """Parse ``BASE{=[n]unit[,k=v...]}``; ``None`` for unsupported / malformed periods."""
    m = _CANDLE_RE.match(symbol)
    if m is None:
        return None
    base = m.group("base")
    attrs_s = m.group("attrs")
    if base.count("&"):
        base = base.split("&", 1)[0]
    if not attrs_s:
        return None  # no period = tick candles: not simulated
    period: str | None = None
    attrs: list[tuple[str, str]] = []
    for part in attrs_s.split(","):
        k, eq, v = part.partition("=")
        if not eq:
            return None
        if k == "":
            period = v
        else:
            attrs.append((k, v))
    if period is None:
        return None
    pm = re.fullmatch(r"(\d+(?:\.\d+)?)?([a-zA-Z]+)", period)
    if pm is None:
        return None
    unit = pm.group(2)
    if unit not in _UNIT_MS:
        return None
    mult = float(pm.group(1)) if pm.group(1) else 1.0
    period_ms = round(mult * _UNIT_MS[unit])
    if period_ms <= 0:
        return None
    return CandleSpec(symbol, base, period_ms, tuple(attrs))


def align_bar_start(t_ms: int, period_ms: int) -> int:
    """Start of the bar containing ``t_ms`` (weeks of 7 days start on Monday 00:00 UTC)."""
    off = _MONDAY_OFFSET_MS if period_ms % WEEK_MS == 0 else 0
    return ((t_ms - off) // period_ms) * period_ms + off


@dataclass(frozen=True, slots=True)
class CandleBars:
    """Columns of consecutive bars, oldest first (``time`` = bar start, ms)."""

    time: I64
    count: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    vwap: F64
    bid_volume: F64
    ask_volume: F64

    def __len__(self) -> int:
        return int(self.time.shape[0])

    def row(self, i: int) -> dict[str, float | int]:
        """Bar ``i`` as a dict keyed by dxLink field names (index included)."""
        t = int(self.time[i])
        return {
            "time": t,
            "index": candle_index(t),
            "count": int(self.count[i]),
            "open": float(self.open[i]),
            "high": float(self.high[i]),
            "low": float(self.low[i]),
            "close": float(self.close[i]),
            "volume": float(self.volume[i]),
            "vwap": float(self.vwap[i]),
            "bidVolume": float(self.bid_volume[i]),
            "askVolume": float(self.ask_volume[i]),
        }


def candle_bars(key: int, period_ms: int, starts: I64, now_ms: int) -> CandleBars:
    """Bars starting at ``starts`` (ascending bar starts) as they look at time ``now_ms``.

    A bar whose start is after ``now_ms`` must not be requested. Bars fully in the past are
    final; the bar containing ``now_ms`` is the forming bar (only its elapsed samples count).
    """
    starts = np.asarray(starts, dtype=np.int64)
    n = starts.shape[0]
    if n and int(starts[-1]) > now_ms:
        raise ValueError("bar starts after now")
    step = period_ms // CANDLE_SAMPLES
    offs = np.arange(CANDLE_SAMPLES, dtype=np.int64) * step
    ts = starts[:, None] + offs[None, :]
    keys = np.full(ts.shape, key & _M64, dtype=np.uint64)
    flat_t = ts.reshape(-1)
    flat_k = keys.reshape(-1)
    p = np.round(mid_price(flat_k, flat_t), 2).reshape(ts.shape)
    h = _hash(flat_k, flat_t, 11).reshape(ts.shape)
    v = 100.0 * (1 + (h % np.uint64(50)).astype(np.float64))
    c = (1 + (h >> np.uint64(32)) % np.uint64(9)).astype(np.int64)
    bid_share = ((h >> np.uint64(16)) % np.uint64(101)).astype(np.float64)
    bv = np.floor(v * bid_share / 100.0)
    av = v - bv
    mask = ts <= now_ms
    nsamp = mask.sum(axis=1)
    last = np.maximum(nsamp - 1, 0)
    rows = np.arange(n)
    pm_hi = np.where(mask, p, -np.inf)
    pm_lo = np.where(mask, p, np.inf)
    vz = np.where(mask, v, 0.0)
    vol = vz.sum(axis=1)
    pv = (np.where(mask, p, 0.0) * vz).sum(axis=1)
    return CandleBars(
        time=starts.copy(),
        count=np.where(mask, c, 0).sum(axis=1).astype(np.int64),
        open=p[:, 0].copy(),
        high=pm_hi.max(axis=1) if n else np.zeros(0),
        low=pm_lo.min(axis=1) if n else np.zeros(0),
        close=p[rows, last],
        volume=vol,
        vwap=pv / np.where(vol > 0, vol, 1.0),
        bid_volume=np.where(mask, bv, 0.0).sum(axis=1),
        ask_volume=np.where(mask, av, 0.0).sum(axis=1),
    )


def candle_bars_between(
    key: int,
    period_ms: int,
    from_ms: int,
    now_ms: int,
    limit: int | None = None,
    history_start_ms: int = HISTORY_START_MS,
) -> tuple[CandleBars, bool]:
    """All bars with ``from_ms <= time <= now_ms`` (and ``>= history_start_ms``), oldest first.

    With ``limit``, only the newest ``limit`` bars are built and the second result says the
    range was truncated (the server then flags SNAPSHOT_SNIP).
    """
    lo = max(from_ms, history_start_ms)
    first = align_bar_start(lo, period_ms)
    if first < lo:
        first += period_ms
    last = align_bar_start(now_ms, period_ms)
    if last < first:
        return candle_bars(key, period_ms, np.zeros(0, dtype=np.int64), now_ms), False
    n = (last - first) // period_ms + 1
    truncated = limit is not None and n > limit
    if limit is not None and truncated:
        first = last - (limit - 1) * period_ms
        n = limit
    starts = first + np.arange(n, dtype=np.int64) * period_ms
    return candle_bars(key, period_ms, starts, now_ms), truncated
