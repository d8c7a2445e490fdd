"""Feed generation of the local dxLink server: what goes into FEED_CONFIG and FEED_DATA.

A :class:`FeedGenerator` belongs to one connection and works on its :class:`FeedChannel` s: it
turns subscriptions into rows of Java-formatted values (Quote, Trade/TradeETH, Summary, Profile,
Greeks, TheoPrice, Underlying, TimeAndSale, Candle) computed by :mod:`ttfast.sim.market` at the
clock's time (options -- Quote, Greeks, TheoPrice -- by Black–Scholes on their underlying's path
with the sim's volatility, :mod:`ttfast.sim.pricing`), keeps the
per-channel field layouts and announces them (lazy, eager, late, absent, reordered), formats
rows as COMPACT or FULL, splits them into frames (by rows and by bytes: no frame over
``max_data_frame_bytes``, 64 KiB by default), sends newest-first candle snapshots
(0x04 ... 0x08, 0x0E when empty, 0x10 SNIP when capped), live forming-bar updates and the
one-shot candle faults (TX correction, REMOVE, second snapshot). Rows are built by string joins
with cached Java-formatted numbers (no per-event dict + ``json.dumps``).

It never parses client messages, keeps no timers and owns no socket: the connection
(:mod:`ttfast.sim.dxlink_server`) decides when to flush and carries every frame out through its
:class:`FeedConnection` methods, which also apply the connection's fault switches.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ttfast._core import REMOVE_EVENT, SNAPSHOT_BEGIN, SNAPSHOT_END, SNAPSHOT_SNIP, TX_PENDING
from ttfast.dxlink.fields import EVENT_FIELDS as DXLINK_EVENT_FIELDS
from ttfast.sim import market
from ttfast.sim.javafmt import json_double
from ttfast.sim.pricing import (
    RISK_FREE_RATE,
    SIM_VOLATILITY,
    OptionSymbol,
    SimMarket,
    parse_option_symbol,
)

if TYPE_CHECKING:
    from ttfast.sim.dxlink_server import DxLinkServer, Faults

__all__ = [
    "EVENT_FIELDS",
    "FeedChannel",
    "FeedConnection",
    "FeedGenerator",
    "corrected_bar",
]

#: Known dxLink field names per event type (the one catalogue, shared with the client), plus
#: dxFeed's ``Underlying.optionVolume`` (call + put volume), which the tastytrade SDK requests:
#: dropping it would shift the SDK's positional decoding.
EVENT_FIELDS = dict(DXLINK_EVENT_FIELDS)
if "optionVolume" not in EVENT_FIELDS["Underlying"]:
    _u = list(EVENT_FIELDS["Underlying"])
    _u.insert(_u.index("putVolume") + 1, "optionVolume")
    EVENT_FIELDS["Underlying"] = tuple(_u)

_TICKER_TYPES = frozenset(
    {"Quote", "Trade", "TradeETH", "Summary", "Profile", "Greeks", "TheoPrice", "Underlying"}
)
_STREAM_TYPES = frozenset({"TimeAndSale"})
_HISTORY_TYPES = frozenset({"Candle"})
_FIELD_POS = {t: {f: i for i, f in enumerate(fs)} for t, fs in EVENT_FIELDS.items()}


def corrected_bar(row: dict[str, Any]) -> dict[str, Any]:
    """The corrected version of a bar sent by ``Faults.tx_correction_after_s``."""
    out = dict(row)
    out["volume"] = row["volume"] + 100.0
    out["askVolume"] = row["askVolume"] + 100.0
    out["count"] = row["count"] + 1
    return out


_JSON_STR_CACHE: dict[str, str] = {}


def _js(s: str) -> str:
    r = _JSON_STR_CACHE.get(s)
    if r is None:
        r = json.dumps(s)
        if len(_JSON_STR_CACHE) < 100_000:
            _JSON_STR_CACHE[s] = r
    return r


def _jd_list(a: Iterable[float]) -> list[str]:
    return [json_double(x) for x in a]


_NAN = '"NaN"'


@functools.lru_cache(maxsize=100_000)
def _option(symbol: str) -> OptionSymbol | None:
    """The option a streamer symbol names (``None`` if it is none), parsed once per symbol: the
    Quote and Greeks rows ask on every flush."""
    return parse_option_symbol(symbol)


def _frame_overhead(channel: int, etype: str, fmt: str) -> int:
    """Bytes of a FEED_DATA frame around its rows: the envelope (as ``_Conn.send_data`` writes
    it) and, in COMPACT, the ``"Type",[...]`` group."""
    env = len(f'{{"type":"FEED_DATA","channel":{channel},"data":[]}}')
    return env if fmt == "FULL" else env + len(_js(etype)) + 3


def _kind(etype: str) -> str:
    if etype in _HISTORY_TYPES:
        return "history"
    if etype in _STREAM_TYPES:
        return "stream"
    return "ticker"


@dataclass
class _CandleSub:
    symbol: str
    from_time: int
    spec: market.CandleSpec | None
    key: int
    live: bool = True
    last_bar_time: int = -1
    last_row: str = ""
    snapshot_at: float = 0.0  # loop time of the (last) snapshot
    bars_at_snapshot: list[dict[str, Any]] = field(default_factory=list)  # newest first
    done: set[str] = field(default_factory=set)  # one-shot faults already applied


class FeedChannel:
    """One open FEED channel: its negotiated setup (contract, format, aggregation period,
    accepted fields) and its feed state (layouts announced, subscriptions, last rows sent)."""

    def __init__(self, cid: int, contract: str, params: dict[str, Any], agg: float) -> None:
        self.id = cid
        self.contract = contract
        self.params = params
        self.fmt = "COMPACT"
        self.agg = agg
        self.accept: dict[str, list[str]] = {}
        self.layouts: dict[str, tuple[str, ...]] = {}
        self.announced: set[str] = set()
        self.ticker: dict[str, dict[str, str]] = {}  # type -> symbol -> last row
        self.stream: dict[str, dict[str, int]] = {}  # type -> symbol -> last tick sent
        self.candles: dict[str, _CandleSub] = {}
        self.other: set[tuple[str, str]] = set()  # subscribed, but not simulated
        self.next_flush = 0.0

    def accept_fields(self, etype: str, fields: list[str]) -> None:
        """FEED_SETUP asked for ``fields`` of ``etype``: its layout is computed (and announced)
        again."""
        self.accept[etype] = fields
        self.layouts.pop(etype, None)
        self.announced.discard(etype)

    def reset(self) -> None:
        self.ticker.clear()
        self.stream.clear()
        self.candles.clear()
        self.other.clear()

    def remove(self, etype: str, symbol: str) -> None:
        self.ticker.get(etype, {}).pop(symbol, None)
        self.stream.get(etype, {}).pop(symbol, None)
        self.other.discard((etype, symbol))
        if etype == "Candle":
            self.candles.pop(symbol, None)

    def subscriptions(self) -> set[tuple[str, str]]:
        out = {(t, s) for t, d in self.ticker.items() for s in d}
        out |= {(t, s) for t, d in self.stream.items() for s in d}
        out |= {("Candle", s) for s in self.candles}
        return out | self.other


class FeedConnection(Protocol):
    """What a :class:`FeedGenerator` needs from its connection."""

    server: DxLinkServer
    loop: asyncio.AbstractEventLoop

    @property
    def faults(self) -> Faults: ...

    def send_text(self, text: str) -> None: ...

    def send_data(self, ch: FeedChannel, body: str) -> None:
        """Send ``body`` (the inside of ``data: [...]``) as one FEED_DATA frame on ``ch``."""

    def error(self, channel: int, code: str, message: str) -> None: ...


class FeedGenerator:
    """The market data of one connection: subscriptions in, FEED_CONFIG / FEED_DATA out."""

    def __init__(self, conn: FeedConnection) -> None:
        self._conn = conn
        self.server = conn.server
        self.pricing = SimMarket(conn.server)  # options: Black–Scholes on the underlying's path

    @property
    def faults(self) -> Faults:
        return self._conn.faults  # read on every use: tests replace a connection's faults

    # -------------------------------------------------------------------- subscriptions
    def add(self, ch: FeedChannel, entries: list[tuple[str, str, Any]]) -> None:
        """Subscribe ``(type, symbol, fromTime)`` entries; new TICKER symbols and candle
        snapshots go out at once."""
        new_ticker: list[tuple[str, str]] = []
        for t, s, ft in entries:
            if t not in EVENT_FIELDS:
                self.server.unknown_types += 1
                continue
            kind = _kind(t)
            if kind == "history":
                self._add_candle(ch, s, ft)
            elif kind == "stream":
                ch.stream.setdefault(t, {})[s] = -1
            elif t in _TICKER_TYPES:
                d = ch.ticker.setdefault(t, {})
                if s not in d:
                    d[s] = ""
                    new_ticker.append((t, s))
            else:
                ch.other.add((t, s))
        if new_ticker:
            # TICKER: the current state of each new symbol goes out at once
            self._flush_ticker(ch, only=new_ticker)

    def flush(self, ch: FeedChannel) -> None:
        """Send what changed on ``ch`` since its last flush (its aggregation period is due)."""
        if ch.ticker:
            self._flush_ticker(ch)
        if ch.stream:
            self._flush_stream(ch)
        if ch.candles:
            self._flush_candles(ch)

    # -------------------------------------------------------------------- layouts
    def answer_feed_setup(self, ch: FeedChannel) -> None:
        """The FEED_CONFIG answering a FEED_SETUP (with ``eventFields`` only in eager mode)."""
        eager: dict[str, tuple[str, ...]] | None = None
        if self.faults.event_fields == "eager" and ch.accept:
            eager = {}
            for t in ch.accept:
                ch.layouts[t] = self._effective_fields(ch, t)
                ch.announced.add(t)
                eager[t] = ch.layouts[t]
        self._feed_config(ch, eager)

    def _effective_fields(self, ch: FeedChannel, etype: str) -> tuple[str, ...]:
        known = _FIELD_POS[etype]
        dropped = self.faults.drop_fields.get(etype, frozenset())
        req = ch.accept.get(etype)
        if req is None:
            fields: Iterable[str] = EVENT_FIELDS[etype]
        elif self.faults.event_fields == "reordered":
            rs = set(req)
            fields = [f for f in EVENT_FIELDS[etype] if f in rs]
        else:
            fields = req
        out: list[str] = []
        for f in fields:
            if f in known and f not in dropped and f not in out:
                out.append(f)
        if not out:
            out = ["eventSymbol"]
        return tuple(out)

    def _feed_config(self, ch: FeedChannel, fields: dict[str, tuple[str, ...]] | None) -> None:
        agg = ch.agg
        parts = [
            f'{{"type":"FEED_CONFIG","channel":{ch.id},"dataFormat":"{ch.fmt}",'
            f'"aggregationPeriod":{json.dumps(int(agg) if agg.is_integer() else agg)}'
        ]
        if fields:
            parts.append(',"eventFields":' + json.dumps({t: list(v) for t, v in fields.items()},
                                                        separators=(",", ":")))  # fmt: skip
        parts.append("}")
        self._conn.send_text("".join(parts))

    def _layout(self, ch: FeedChannel, etype: str) -> tuple[str, ...]:
        lay = ch.layouts.get(etype)
        if lay is None:
            lay = ch.layouts[etype] = self._effective_fields(ch, etype)
        return lay

    def _announce_before(self, ch: FeedChannel, etypes: Iterable[str]) -> list[str]:
        """Announce layouts due before data; returns the types to announce after data."""
        mode = self.faults.event_fields
        late: list[str] = []
        due: dict[str, tuple[str, ...]] = {}
        for t in etypes:
            if t in ch.announced:
                continue
            ch.announced.add(t)
            lay = self._layout(ch, t)
            if mode == "absent":
                continue
            if mode == "late":
                late.append(t)
            else:
                due[t] = lay
        if due:
            self._feed_config(ch, due)
        return late

    def _announce_after(self, ch: FeedChannel, late: list[str]) -> None:
        if late:
            self._feed_config(ch, {t: self._layout(ch, t) for t in late})

    # -------------------------------------------------------------------- rows
    def _rows(self, etype: str, symbols: list[str], now: int) -> list[tuple[str, ...]]:
        srv = self.server
        keys = np.array([srv.key(s) for s in symbols], dtype=np.uint64)
        n = len(symbols)
        sv = self.faults.special_values
        et = _js(etype)
        syms = [_js(s) for s in symbols]
        if etype == "Quote":
            bid, ask, bs, as_, bex, aex, qt = market.quote_values(keys, now, srv.tick_ms)
            qts = str(qt)
            bidl, askl = bid.tolist(), ask.tolist()
            listed = srv.listed_options
            for i, s in enumerate(symbols):  # options quote around their theo price
                opt = _option(s) or srv.listed_options.get(s) or listed.get(s)
                if opt is not None:
                    bidl[i], askl[i] = self.pricing.option_quote(opt, now)
            bids, asks = _jd_list(bidl), _jd_list(askl)
            if sv:
                bss, ass = ['"Infinity"'] * n, ['"-Infinity"'] * n
                bexs = aexs = ['"\\u0000"'] * n
            else:
                bss, ass = _jd_list(bs.tolist()), _jd_list(as_.tolist())
                bexs, aexs = [_js(x) for x in bex.tolist()], [_js(x) for x in aex.tolist()]
            return [
                (et, syms[i], "0", "0", "0", qts, bexs[i], bids[i], bss[i], qts, aexs[i],
                 asks[i], ass[i])
                for i in range(n)
            ]  # fmt: skip
        if etype in ("Trade", "TradeETH"):
            price, size, dv, chg, tt = market.trade_values(keys, now, srv.tick_ms)
            prev, _, _, _, _ = market.trade_values(keys, tt - 1, srv.tick_ms)
            tts, day = str(tt), str(tt // market.DAY_MS)
            pl, sl, dl, cl = price.tolist(), size.tolist(), dv.tolist(), chg.tolist()
            prl = prev.tolist()
            eth = "true" if etype == "TradeETH" else "false"
            return [
                (et, syms[i], "0", tts, "0", "0", '"Q"', json_double(pl[i]), json_double(cl[i]),
                 json_double(sl[i]), day, json_double(dl[i]),
                 _NAN if sv else json_double(round(dl[i] * pl[i], 2)),
                 '"UP"' if pl[i] > prl[i] else ('"DOWN"' if pl[i] < prl[i] else '"ZERO"'), eth)
                for i in range(n)
            ]  # fmt: skip
        if etype == "Summary":
            day0 = (now // market.DAY_MS) * market.DAY_MS
            oa, ha, la, pa = market.day_summary(keys, now, srv.tick_ms)
            o, hi, lo, prev_close = oa.tolist(), ha.tolist(), la.tolist(), pa.tolist()
            rate = (50.0 + (keys % np.uint64(500)).astype(np.float64)).tolist()
            d, pd = str(day0 // market.DAY_MS), str(day0 // market.DAY_MS - 1)
            return [
                (et, syms[i], "0", d, json_double(o[i]), json_double(hi[i]), json_double(lo[i]),
                 _NAN, '"REGULAR"', pd, json_double(prev_close[i]), '"FINAL"',
                 json_double(math.floor(rate[i] * 86400.0)), "0")
                for i in range(n)
            ]  # fmt: skip
        if etype == "Profile":
            base = [market.base_price(srv.seed, s) for s in symbols]
            return [
                (et, syms[i], "0", "null" if sv else _js(f"{symbols[i]} (simulated)"),
                 '"INACTIVE"', '"ACTIVE"', "null", "0", "0", _NAN, _NAN,
                 json_double(round(base[i] * 1.6, 2)), json_double(round(base[i] * 0.6, 2)),
                 json_double(1.0), _NAN, json_double(4.0), _NAN, "0",
                 json_double(1.0e9), json_double(9.0e8))
                for i in range(n)
            ]  # fmt: skip
        tt = market.tick_time(now, srv.tick_ms)
        idx, tts = str(market.candle_index(tt)), str(tt)
        if etype in ("Greeks", "TheoPrice"):
            # Black–Scholes on the underlying's path with the sim's volatility; a symbol that
            # is not an option is priced as an at-the-money 30-day call on itself
            out: list[tuple[str, ...]] = []
            for i, s in enumerate(symbols):
                opt = _option(s)
                if opt is None:
                    k = round(self.pricing.underlying_mid(s, now), 2)
                    exp = datetime.fromtimestamp(tt / 1000 + 30 * 86_400, UTC).date()
                    opt = OptionSymbol(s, exp, True, k)
                g = self.pricing.option_greeks(opt, now)
                jd = json_double
                if etype == "Greeks":
                    out.append((et, syms[i], "0", "0", idx, tts, "0", jd(round(g.price, 4)),
                                jd(SIM_VOLATILITY), jd(round(g.delta, 6)), jd(round(g.gamma, 6)),
                                jd(round(g.theta, 6)), jd(round(g.rho, 6)),
                                jd(round(g.vega, 6))))  # fmt: skip
                else:
                    und = round(self.pricing.underlying_mid(opt.underlying, now), 4)
                    out.append((et, syms[i], "0", "0", idx, tts, "0", jd(round(g.price, 4)),
                                jd(und), jd(round(g.delta, 6)), jd(round(g.gamma, 6)),
                                jd(0.0), jd(RISK_FREE_RATE)))  # fmt: skip
            return out
        if etype == "Underlying":
            # the sim's volatility (front/back months around it) and seeded option volumes
            h = (keys % np.uint64(1_000_003)).tolist()
            rows: list[tuple[str, ...]] = []
            for i in range(n):
                calls = 1000.0 + h[i] % 9000 + (tt // 60_000) % 500
                puts = 800.0 + (h[i] // 7) % 9000 + (tt // 60_000) % 400
                rows.append((et, syms[i], "0", "0", idx, tts, "0", json_double(SIM_VOLATILITY),
                             json_double(round(SIM_VOLATILITY * 1.05, 4)),
                             json_double(round(SIM_VOLATILITY * 0.95, 4)), json_double(calls),
                             json_double(puts), json_double(calls + puts),
                             json_double(round(puts / calls, 6))))  # fmt: skip
            return rows
        raise KeyError(etype)

    def _tas_rows(self, symbols: list[str], from_tick: int, to_tick: int) -> list[tuple[str, ...]]:
        """TimeAndSale rows of ``symbols`` for market ticks ``from_tick < k <= to_tick`` (one
        trade per symbol and tick), tick-major. One vectorised price evaluation per call."""
        srv = self.server
        ticks = np.arange(from_tick + 1, to_tick + 1, dtype=np.int64)
        if ticks.size == 0 or not symbols:
            return []
        ns = len(symbols)
        t = np.repeat(ticks * srv.tick_ms, ns)
        keys = np.tile(np.array([srv.key(x) for x in symbols], dtype=np.uint64), ticks.size)
        price = np.round(market.mid_price(keys, t), 2).tolist()
        sv = self.faults.special_values
        syms = [_js(x) for x in symbols]
        exch = '"\\u0000"' if sv else '"Q"'
        cond = "null" if sv else '""'
        out: list[tuple[str, ...]] = []
        j = 0
        for k in ticks.tolist():
            tm = k * srv.tick_ms
            seq = k % 1000
            idx, tms, seqs = str(market.candle_index(tm, seq)), str(tm), str(seq)
            size = json_double(100.0 * (1 + k % 7))
            side = '"BUY"' if k % 2 else '"SELL"'
            for sym in syms:
                p = price[j]
                j += 1
                out.append((
                    '"TimeAndSale"', sym, "0", "0", idx, tms, "0", seqs, exch, json_double(p),
                    size, json_double(round(p - 0.01, 2)), json_double(round(p + 0.01, 2)), cond,
                    '"\\u0000"', side, "false", "false", "true", '"NEW"', "null", "null",
                ))  # fmt: skip
        return out

    def _candle_row(self, sym: str, bar: dict[str, Any], flags: int) -> tuple[str, ...]:
        return (
            '"Candle"', _js(sym), "0", str(flags), str(bar["index"]), str(bar["time"]), "0",
            str(bar["count"]), json_double(bar["open"]), json_double(bar["high"]),
            json_double(bar["low"]), json_double(bar["close"]), json_double(bar["volume"]),
            json_double(bar["vwap"]), json_double(bar["bidVolume"]),
            json_double(bar["askVolume"]), _NAN, _NAN,
        )  # fmt: skip

    def _candle_rows_desc(self, sym: str, bars: market.CandleBars) -> list[tuple[str, ...]]:
        """Rows of all ``bars`` newest first, first row flagged SNAPSHOT_BEGIN (column-wise
        formatting: one ``map`` per column instead of a call per value)."""
        n = len(bars)
        jd = json_double

        def col(a: Any) -> list[str]:
            return list(map(jd, a[::-1].tolist()))

        times = bars.time[::-1].tolist()
        idx = [str(market.candle_index(t)) for t in times]
        flags = ["0"] * n
        flags[0] = str(SNAPSHOT_BEGIN)
        const = [_js(sym)] * n
        return list(
            zip(
                ['"Candle"'] * n, const, ["0"] * n, flags, idx, list(map(str, times)), ["0"] * n,
                list(map(str, bars.count[::-1].tolist())), col(bars.open), col(bars.high),
                col(bars.low), col(bars.close), col(bars.volume), col(bars.vwap),
                col(bars.bid_volume), col(bars.ask_volume), [_NAN] * n, [_NAN] * n,
                strict=True,
            )
        )  # fmt: skip

    def _placeholder(self, sym: str, t: int, flags: int) -> tuple[str, ...]:
        return ('"Candle"', _js(sym), "0", str(flags), str(market.candle_index(t)), str(t), "0",
                "0", *([_NAN] * 10))  # fmt: skip

    # -------------------------------------------------------------------- frames
    def _format(self, ch: FeedChannel, etype: str, rows: list[tuple[str, ...]]) -> list[str]:
        lay = self._layout(ch, etype)
        pos = _FIELD_POS[etype]
        idx = [pos[f] for f in lay]
        if ch.fmt == "FULL":
            names = [f'"{f}":' for f in lay]
            if "eventType" not in lay:
                names.insert(0, '"eventType":')
                idx.insert(0, 0)
            return ["{" + ",".join([n + r[i] for n, i in zip(names, idx, strict=True)]) + "}"
                    for r in rows]  # fmt: skip
        if len(idx) == 1:
            i0 = idx[0]
            return [r[i0] for r in rows]
        g = itemgetter(*idx)
        return [",".join(g(r)) for r in rows]

    def _group(self, ch: FeedChannel, etype: str, formatted: list[str]) -> str:
        if ch.fmt == "FULL":
            return ",".join(formatted)
        return f'"{etype}",[{",".join(formatted)}]'

    def _send_rows(self, ch: FeedChannel, etype: str, formatted: list[str], step: int) -> None:
        """Send formatted rows of one type in as few FEED_DATA frames as fit: at most ``step``
        rows and ``server.max_data_frame_bytes`` bytes per frame (rows are ASCII: ``json.dumps``
        escapes the rest, so characters are bytes)."""
        budget = self.server.max_data_frame_bytes - _frame_overhead(ch.id, etype, ch.fmt)
        send = self._conn.send_data
        chunk: list[str] = []
        size = 0
        for r in formatted:
            n = len(r) + (1 if chunk else 0)
            if chunk and (len(chunk) >= step or size + n > budget):
                send(ch, self._group(ch, etype, chunk))
                chunk, size, n = [], 0, len(r)
            chunk.append(r)
            size += n
        if chunk:
            send(ch, self._group(ch, etype, chunk))

    def _emit(self, ch: FeedChannel, groups: list[tuple[str, list[tuple[str, ...]]]]) -> None:
        """Send rows of one or more types (frames split at ``server.max_rows_per_frame`` rows
        and ``server.max_data_frame_bytes`` bytes)."""
        groups = [(t, r) for t, r in groups if r]
        if not groups:
            return
        late = self._announce_before(ch, [t for t, _ in groups])
        step = self.server.max_rows_per_frame
        if self.faults.multi_type_frames and len(groups) > 1 and ch.fmt == "COMPACT":
            body = ",".join(self._group(ch, t, self._format(ch, t, r)) for t, r in groups)
            if len(body) + _frame_overhead(ch.id, "", "FULL") <= self.server.max_data_frame_bytes:
                self._conn.send_data(ch, body)
                self._announce_after(ch, late)
                return
        for t, rows in groups:
            self._send_rows(ch, t, self._format(ch, t, rows), step)
        self._announce_after(ch, late)

    # -------------------------------------------------------------------- TICKER / STREAM
    def _flush_ticker(self, ch: FeedChannel, only: list[tuple[str, str]] | None = None) -> None:
        now = self.server.clock.now_ms()
        groups: list[tuple[str, list[tuple[str, ...]]]] = []
        if only is not None:
            by_type: dict[str, list[str]] = {}
            for t, s in only:
                by_type.setdefault(t, []).append(s)
            items = list(by_type.items())
        else:
            items = [(t, list(d)) for t, d in ch.ticker.items() if d]
        for t, syms in items:
            rows = self._rows(t, syms, now)
            last = ch.ticker[t]
            changed = []
            for s, r in zip(syms, rows, strict=True):
                key = ",".join(r[1:])
                if last.get(s) != key:
                    last[s] = key
                    changed.append(r)
            groups.append((t, changed))
        self._emit(ch, groups)

    def _flush_stream(self, ch: FeedChannel) -> None:
        now = self.server.clock.now_ms()
        tick = now // self.server.tick_ms
        for t, d in ch.stream.items():
            by_start: dict[int, list[str]] = {}
            for s, last in d.items():
                start = tick - 1 if last < 0 else max(last, tick - 1000)
                if start < tick:
                    by_start.setdefault(start, []).append(s)
                d[s] = tick
            rows: list[tuple[str, ...]] = []
            for start, syms in by_start.items():
                rows.extend(self._tas_rows(syms, start, tick))
            self._emit(ch, [(t, rows)])

    # -------------------------------------------------------------------- Candle (HISTORY)
    def _add_candle(self, ch: FeedChannel, sym: str, from_time: Any) -> None:
        if not isinstance(from_time, int) or isinstance(from_time, bool):
            from_time = 0 if from_time is None else from_time
            if isinstance(from_time, float) and math.isfinite(from_time):
                from_time = int(from_time)
            elif not isinstance(from_time, int):
                self._conn.error(ch.id, "INVALID_MESSAGE", "fromTime must be an integer (epoch ms)")
                return
        spec = market.parse_candle_symbol(sym)
        key = self.server.key(spec.base) if spec is not None else 0
        sub = _CandleSub(sym, from_time, spec, key)
        ch.candles[sym] = sub
        empty_only = self.faults.candles_auto_empty and ch.contract == "AUTO"
        if empty_only or spec is None:
            sub.live = False
        self._snapshot(ch, sub, empty=empty_only or spec is None or self.faults.empty_snapshot)

    def _snapshot(self, ch: FeedChannel, sub: _CandleSub, empty: bool = False) -> None:
        now = self.server.clock.now_ms()
        sub.snapshot_at = self._conn.loop.time()
        sym = sub.symbol
        rows: list[tuple[str, ...]] = []
        bars_desc: list[dict[str, Any]] = []
        truncated = False
        bars = market.candle_bars(0, 60_000, np.zeros(0, dtype=np.int64), 0)
        if not empty and sub.spec is not None:
            cap = self.faults.snip_rows or self.server.max_snapshot_rows
            bars, truncated = market.candle_bars_between(
                sub.key, sub.spec.period_ms, sub.from_time, now, cap, self.server.history_start_ms
            )
            n = len(bars)
            # keep a few newest bars as dicts (fault injection works on them)
            bars_desc = [bars.row(i) for i in range(n - 1, max(-1, n - 9), -1)]
            if n:
                rows = self._candle_rows_desc(sym, bars)
        sub.bars_at_snapshot = bars_desc
        if sub.spec is not None:
            sub.last_bar_time = market.align_bar_start(now, sub.spec.period_ms)
        if not rows:
            rows.append(self._placeholder(sym, sub.from_time, 0x0E))
            sub.last_row = ""
        else:
            last_time = int(bars.time[0])
            flags = SNAPSHOT_SNIP if truncated else 0
            if not truncated and last_time == sub.from_time:
                flags = SNAPSHOT_END
            if flags:
                f0 = int(rows[-1][3]) | flags
                rows[-1] = (*rows[-1][:3], str(f0), *rows[-1][4:])
            if not truncated and last_time != sub.from_time:
                rows.append(self._placeholder(sym, sub.from_time, SNAPSHOT_END | REMOVE_EVENT))
            newest = bars_desc[0]
            sub.last_bar_time = int(newest["time"])
            sub.last_row = ",".join(self._candle_row(sym, newest, 0)[3:])
        late = self._announce_before(ch, ["Candle"])
        self._send_rows(ch, "Candle", self._format(ch, "Candle", rows),
                        self.server.snapshot_chunk_rows)  # fmt: skip
        self._announce_after(ch, late)

    def _flush_candles(self, ch: FeedChannel) -> None:
        now = self.server.clock.now_ms()
        lt = self._conn.loop.time()
        fa = self.faults
        rows: list[tuple[str, ...]] = []
        for sub in list(ch.candles.values()):
            if not sub.live or sub.spec is None:
                continue
            p = sub.spec.period_ms
            cur = market.align_bar_start(now, p)
            start = max(sub.last_bar_time, sub.from_time, self.server.history_start_ms)
            start = market.align_bar_start(start, p)
            if start < sub.from_time:
                start += p
            if cur >= start:
                n = min((cur - start) // p + 1, 1000)
                starts = cur - np.arange(n - 1, -1, -1, dtype=np.int64) * p
                bars = market.candle_bars(sub.key, p, starts, now)
                for i in range(len(bars)):
                    bar = bars.row(i)
                    row = self._candle_row(sub.symbol, bar, 0)
                    body = ",".join(row[3:])
                    if bar["time"] == sub.last_bar_time and body == sub.last_row:
                        continue
                    rows.append(row)
                    sub.last_bar_time, sub.last_row = int(bar["time"]), body
            rows.extend(self._candle_faults(sub, lt))
        if rows:
            self._emit(ch, [("Candle", rows)])
        for sub in list(ch.candles.values()):
            f2 = fa.second_snapshot_after_s
            if f2 is not None and "snap2" not in sub.done and lt - sub.snapshot_at >= f2:
                sub.done.add("snap2")
                sub.done.update({"tx", "remove"})
                self._snapshot(ch, sub)

    def _candle_faults(self, sub: _CandleSub, lt: float) -> list[tuple[str, ...]]:
        fa = self.faults
        out: list[tuple[str, ...]] = []
        el = lt - sub.snapshot_at
        bars = sub.bars_at_snapshot
        tx_s = fa.tx_correction_after_s
        if tx_s is not None and "tx" not in sub.done and len(bars) >= 4 and el >= tx_s:
            sub.done.add("tx")
            out.append(self._candle_row(sub.symbol, corrected_bar(bars[2]), TX_PENDING))
            out.append(self._candle_row(sub.symbol, corrected_bar(bars[3]), 0))
        rm_s = fa.remove_bar_after_s
        if rm_s is not None and "remove" not in sub.done and len(bars) >= 3 and el >= rm_s:
            sub.done.add("remove")
            out.append(self._placeholder(sub.symbol, int(bars[2]["time"]), REMOVE_EVENT))
        return out
