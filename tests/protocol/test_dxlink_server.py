"""Baseline behaviour of the local dxLink server (``ttfast.sim``): handshake, strict order, exact
errors, FEED_CONFIG/eventFields, COMPACT/FULL, Java numbers, conflation, candles, keepalive, 1009.

Expected messages are the protocol facts (tastytrade/dxFeed captures and spec examples); expected
data are recomputed from the pure functions of ``ttfast.sim.market``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hypothesis as hyp
import hypothesis.strategies as st
import numpy as np
import pytest
from dxsim_testclient import (
    CANDLE_FIELDS,
    SETUP,
    Client,
    Closed,
    ManualClock,
    decode_compact,
    isnan,
)

from ttfast.sim import DxLinkServer, Faults, SimClock, java_double, json_double
from ttfast.sim import market as mk
from ttfast.sim.pricing import (
    RISK_FREE_RATE,
    SIM_VOLATILITY,
    SimMarket,
    black_scholes,
    parse_option_symbol,
)

T0 = 1_750_000_123_456  # a fixed market instant (mid-bar for 5m bars)
SEED = 11


@pytest.fixture
async def server() -> AsyncIterator[DxLinkServer]:
    srv = DxLinkServer(seed=SEED, clock=ManualClock(T0), record_sent=True)
    await srv.start()
    yield srv
    await srv.stop()


async def _client(srv: DxLinkServer) -> Client:
    return await Client.connect(srv.url)


# ------------------------------------------------------------------------------ numbers


def test_java_double_matches_real_java() -> None:
    path = Path(__file__).parent.parent / "data" / "java_double_tostring.txt"
    n = 0
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        h, expect = line.split()
        x = struct.unpack(">d", bytes.fromhex(h))[0]
        assert java_double(x) == expect, (x, expect)
        n += 1
    assert n > 500


def test_java_double_examples_and_json_specials() -> None:
    assert [java_double(x) for x in (100.0, 559.36, 13743299.0, 1e-4, 0.001, 1e7, -0.0)] == [
        "100.0",
        "559.36",
        "1.3743299E7",
        "1.0E-4",
        "0.001",
        "1.0E7",
        "-0.0",
    ]
    assert json_double(math.nan) == '"NaN"'
    assert json_double(math.inf) == '"Infinity"'
    assert json_double(-math.inf) == '"-Infinity"'
    assert json_double(4.3020691e7) == "4.3020691E7"


# ------------------------------------------------------------------------------ handshake


async def test_handshake_exact_messages(server: DxLinkServer) -> None:
    c = await _client(server)
    c.send(SETUP)
    m = await c.recv()
    assert m == {
        "type": "SETUP",
        "channel": 0,
        "keepaliveTimeout": 60,
        "acceptKeepaliveTimeout": 60,
        "version": "1.0-1.2.1-20240722-153442",
    }
    assert await c.recv() == {"type": "AUTH_STATE", "channel": 0, "state": "UNAUTHORIZED"}
    c.send({"type": "AUTH", "channel": 0, "token": "any"})
    m = await c.recv()
    assert m["type"] == "AUTH_STATE" and m["state"] == "AUTHORIZED" and m["userId"]
    c.send(
        {
            "type": "CHANNEL_REQUEST",
            "channel": 3,
            "service": "FEED",
            "parameters": {"contract": "AUTO"},
        }
    )
    assert await c.recv() == {
        "type": "CHANNEL_OPENED",
        "channel": 3,
        "service": "FEED",
        "parameters": {"contract": "AUTO", "subFormat": "LIST"},
    }
    c.send(
        {
            "type": "FEED_SETUP",
            "channel": 3,
            "acceptAggregationPeriod": 0.1,
            "acceptDataFormat": "COMPACT",
        }
    )
    assert await c.recv() == {
        "type": "FEED_CONFIG",
        "channel": 3,
        "dataFormat": "COMPACT",
        "aggregationPeriod": 0.1,
    }
    c.send({"type": "CHANNEL_CANCEL", "channel": 3})
    assert await c.recv() == {"type": "CHANNEL_CLOSED", "channel": 3}
    # type and channel are the first two keys of every server message
    for raw in c.l.raw:
        assert re.match(r'^\{"type":"[A-Z_]+","channel":\d+[,}]', raw), raw
    await c.close()


async def test_empty_token_rejected_and_auth_optional() -> None:
    async with DxLinkServer() as srv:
        c = await Client.connect(srv.url)
        c.send(SETUP)
        await c.recv()
        await c.recv()
        c.send({"type": "AUTH", "channel": 0, "token": ""})
        assert (await c.recv())["state"] == "UNAUTHORIZED"
        await c.close()
    async with DxLinkServer(require_auth=False) as srv:
        c = await Client.connect(srv.url)
        c.send(SETUP)
        await c.recv()
        assert (await c.recv())["state"] == "AUTHORIZED"
        await c.close()


async def test_order_enforcement_exact_errors(server: DxLinkServer) -> None:
    c = await _client(server)
    req = {
        "type": "CHANNEL_REQUEST",
        "channel": 1,
        "service": "FEED",
        "parameters": {"contract": "AUTO"},
    }
    c.send(req)
    m = await c.recv()
    assert (m["type"], m["error"], m["message"]) == ("ERROR", "BAD_ACTION", "SETUP step missing")
    c.send(SETUP)
    await c.recv()
    await c.recv()
    for early in (
        req,
        {"type": "FEED_SETUP", "channel": 1},
        {"type": "FEED_SUBSCRIPTION", "channel": 1, "add": []},
    ):
        c.send(early)
        assert await c.recv() == {
            "type": "ERROR",
            "channel": 0,
            "error": "BAD_ACTION",
            "message": "AUTH step missing",
        }
    c.send({"type": "AUTH", "channel": 0, "token": "t"})
    assert (await c.recv())["state"] == "AUTHORIZED"
    c.send({**req, "channel": 2})
    assert await c.recv() == {
        "type": "ERROR",
        "channel": 0,
        "error": "BAD_ACTION",
        "message": "Protocol violation with an even channel usage.",
    }
    c.send(b"{not json")
    assert await c.recv() == {
        "type": "ERROR",
        "channel": 0,
        "error": "INVALID_MESSAGE",
        "message": "The message is not valid JSON.",
    }
    c.send({"type": "FEED_SETUP", "channel": 5})
    m = await c.recv()
    assert m["type"] == "ERROR" and m["channel"] == 5 and m["error"] == "BAD_ACTION"
    # nothing above opened a channel
    assert server.connections[0].channels == {}
    await c.close()


# ------------------------------------------------------------------------------ feed config / data

QUOTE_REQ = ["eventType", "eventSymbol", "bidPrice", "askPrice", "bidSize", "askSize", "bidTime"]


async def test_lazy_event_fields_unknown_dropped_and_quote_values(server: DxLinkServer) -> None:
    c = await _client(server)
    await c.handshake()
    cfg = await c.open_feed(1, fields={"Quote": ["VWAP", *QUOTE_REQ, "bogus"]}, agg=0.05)
    assert "eventFields" not in cfg
    syms = ["AAPL", "SPY", "/ESZ26:XCME", ".AAPL261218C200"]
    c.subscribe(1, *({"type": "Quote", "symbol": s} for s in syms))
    cfg2 = await c.recv()
    # the layout arrives lazily, before the first data, in the requested order minus unknowns
    assert cfg2["type"] == "FEED_CONFIG" and cfg2["eventFields"] == {"Quote": QUOTE_REQ}
    data = await c.recv()
    assert data["type"] == "FEED_DATA" and data["channel"] == 1
    evs = decode_compact(data["data"], cfg2["eventFields"])
    assert sorted(e["eventSymbol"] for e in evs) == sorted(syms)
    keys = np.array([mk.symbol_key(SEED, e["eventSymbol"]) for e in evs], dtype=np.uint64)
    bid, ask, bs, as_, _, _, qt = mk.quote_values(keys, T0, server.tick_ms)
    pricing = SimMarket(server)
    for i, e in enumerate(evs):
        assert e["eventType"] == "Quote"
        assert e["bidTime"] == qt
        opt = parse_option_symbol(e["eventSymbol"])
        if opt is not None:  # options quote around their Black–Scholes price
            bid[i], ask[i] = pricing.option_quote(opt, T0)
        assert (e["bidPrice"], e["askPrice"]) == (bid[i], ask[i])
        assert (e["bidSize"], e["askSize"]) == (bs[i], as_[i])
        assert e["bidPrice"] < e["askPrice"]
    # Java formatting on the wire: every double has a '.0' or an exponent
    raw = next(r for r in c.l.raw if r.startswith('{"type":"FEED_DATA"'))
    for e in evs:
        assert f'"{e["eventSymbol"]}",{java_double(e["bidPrice"])},' in raw
        assert java_double(e["bidSize"]).endswith(".0")
    # no further data while the market clock stands still (conflation: unchanged rows)
    assert [m for m in await c.drain(0.15) if m["type"] == "FEED_DATA"] == []
    await c.close()


async def test_full_format_and_default_fields(server: DxLinkServer) -> None:
    c = await _client(server)
    await c.handshake()
    cfg = await c.open_feed(1, fmt="FULL")
    assert cfg["dataFormat"] == "FULL"
    c.subscribe(1, {"type": "Trade", "symbol": "SPY"})
    cfg2 = await c.recv()
    assert cfg2["eventFields"]["Trade"][:2] == ["eventType", "eventSymbol"]
    data = await c.recv()
    (ev,) = data["data"]
    assert next(iter(ev)) == "eventType" and ev["eventType"] == "Trade"
    assert set(ev) == set(cfg2["eventFields"]["Trade"])
    keys = np.array([mk.symbol_key(SEED, "SPY")], dtype=np.uint64)
    price, size, dv, _chg, tt = mk.trade_values(keys, T0, server.tick_ms)
    assert (ev["price"], ev["size"], ev["dayVolume"], ev["time"]) == (price[0], size[0], dv[0], tt)
    assert ev["dayId"] == T0 // mk.DAY_MS
    await c.close()


GREEKS_FIELDS = ["eventType", "eventSymbol", "time", "price", "volatility", "delta", "gamma",
                 "theta", "rho", "vega"]  # fmt: skip
THEO_FIELDS = ["eventType", "eventSymbol", "price", "underlyingPrice", "delta", "gamma",
               "interest"]  # fmt: skip
UNDERLYING_FIELDS = ["eventType", "eventSymbol", "volatility", "frontVolatility",
                     "backVolatility", "callVolume", "putVolume", "putCallRatio"]  # fmt: skip


async def test_greeks_and_theo_prices_per_option_from_black_scholes(server: DxLinkServer) -> None:
    c = await _client(server)
    await c.handshake()
    fields = {"Greeks": GREEKS_FIELDS, "TheoPrice": THEO_FIELDS, "Underlying": UNDERLYING_FIELDS}
    await c.open_feed(1, fields=fields, agg=0.05)
    opts = [".SPY260619C150", ".SPY260619P150", ".SPY260619C250", ".AAPL251219P400"]
    c.subscribe(1, *({"type": "Greeks", "symbol": s} for s in opts))
    c.subscribe(1, *({"type": "TheoPrice", "symbol": s} for s in opts))
    c.subscribe(1, {"type": "Underlying", "symbol": "SPY"})
    got: dict[str, dict[str, dict[str, Any]]] = {}
    while sum(len(v) for v in got.values()) < 2 * len(opts) + 1:
        m = await c.recv()
        if m["type"] == "FEED_DATA":
            for e in decode_compact(m["data"], fields):
                got.setdefault(e["eventType"], {})[e["eventSymbol"]] = e
    tt = mk.tick_time(T0, server.tick_ms)
    for s in opts:
        opt = parse_option_symbol(s)
        assert opt is not None
        spot = float(mk.mid_price(mk.symbol_key(SEED, opt.underlying), tt)[0])
        want = black_scholes(spot, opt.strike, (opt.expires_ms() - tt) / (365 * mk.DAY_MS),
                             RISK_FREE_RATE, SIM_VOLATILITY, opt.call)  # fmt: skip
        g, th = got["Greeks"][s], got["TheoPrice"][s]
        assert g["time"] == tt and g["volatility"] == SIM_VOLATILITY
        assert g["price"] == round(want.price, 4) == th["price"]
        assert g["delta"] == round(want.delta, 6) == th["delta"]
        assert (g["gamma"], g["theta"], g["vega"], g["rho"]) == tuple(
            round(x, 6) for x in (want.gamma, want.theta, want.vega, want.rho)
        )
        assert th["underlyingPrice"] == round(spot, 4) and th["interest"] == RISK_FREE_RATE
    # every option has its own numbers; calls and puts obey put-call parity's signs
    assert len({got["Greeks"][s]["price"] for s in opts}) == len(opts)
    assert got["Greeks"][opts[0]]["delta"] > 0 > got["Greeks"][opts[1]]["delta"]
    u = got["Underlying"]["SPY"]
    assert u["volatility"] == SIM_VOLATILITY and u["callVolume"] > 0 and u["putVolume"] > 0
    assert u["putCallRatio"] == round(u["putVolume"] / u["callVolume"], 6)
    await c.close()


async def test_future_options_quote_as_the_rest_side_prices_them(server: DxLinkServer) -> None:
    """A future option's streamer symbol (``./E4AZ26P6000:XCME``) names neither its expiry day
    nor its future: the REST side lists it (`RestSimServer` given this server as its market),
    and both sides then price it by the same Black–Scholes on the /ES future's path."""
    from ttfast.sim.rest import RestSimServer
    from ttfast.sim.rest.lifecycle import future_streamer_map

    RestSimServer(server.url, market=server)  # lists its future options on this market
    streamer, rest_symbol = "./E4AZ26P6000:XCME", "./ESZ6 E4AZ6 261218P6000"
    opt = server.listed_options[streamer]
    assert (opt.underlying, opt.expiry.isoformat(), opt.call, opt.strike) == (
        "/ESZ26:XCME", "2026-12-18", False, 6000.0,
    )  # fmt: skip
    c = await _client(server)
    await c.handshake()
    cfg = await c.open_feed(1, fields={"Quote": QUOTE_REQ}, agg=0.05)
    assert cfg["type"] == "FEED_CONFIG"
    c.subscribe(1, {"type": "Quote", "symbol": streamer})
    got: dict[str, Any] = {}
    while not got:
        m = await c.recv()
        if m["type"] == "FEED_DATA":
            (got,) = decode_compact(m["data"], {"Quote": QUOTE_REQ})
    rest = SimMarket(server, future_streamer_map())
    assert (got["bidPrice"], got["askPrice"]) == rest.bid_ask(rest_symbol)
    await c.close()


async def test_ticker_conflation_by_aggregation_period() -> None:
    # real-time clock, 10 ms market ticks: every symbol changes at every tick
    async with DxLinkServer(seed=3, tick_ms=10) as srv:
        gaps = {}
        for agg in (0.25, 0.02):
            c = await Client.connect(srv.url)
            await c.handshake()
            await c.open_feed(1, fields={"Quote": ["eventSymbol", "bidPrice", "askPrice"]}, agg=agg)
            c.subscribe(1, *({"type": "Quote", "symbol": f"S{i}"} for i in range(20)))
            frames = []
            async with asyncio.timeout(10):
                while len(frames) < 5:
                    m = await c.recv_type("FEED_DATA")
                    frames.append((c.l.arrivals[len(c.log) - 1], m))
            for _, f in frames:
                syms = f["data"][1][0::3]
                assert len(syms) == len(set(syms)), "a symbol twice in one conflated frame"
            t = [a for a, _ in frames[1:]]  # frames[0]: the initial state right on subscribe
            gaps[agg] = [b - a for a, b in itertools.pairwise(t)]
            await c.close()
        # never more often than the aggregation period (a little timer jitter allowed)
        assert min(gaps[0.25]) >= 0.2, gaps
        assert sorted(gaps[0.02])[1] < 0.2, gaps


async def test_time_and_sale_stream_sends_every_trade() -> None:
    clock = ManualClock(T0)
    async with DxLinkServer(seed=4, clock=clock, tick_ms=100) as srv:
        c = await Client.connect(srv.url)
        await c.handshake()
        await c.open_feed(
            1, contract="STREAM", fields={"TimeAndSale": ["eventSymbol", "time", "price", "index"]}
        )
        c.subscribe(1, {"type": "TimeAndSale", "symbol": "AAPL"})
        await c.recv_type("FEED_DATA")
        clock.t += 1000  # 10 ticks later
        m = await c.recv_type("FEED_DATA")
        evs = decode_compact(m["data"], {"TimeAndSale": ["eventSymbol", "time", "price", "index"]})
        assert len(evs) == 10
        times = [e["time"] for e in evs]
        assert times == sorted(times) and len(set(times)) == 10
        for e in evs:
            assert mk.index_time(e["index"]) == e["time"]
            k = mk.symbol_key(4, "AAPL")
            assert e["price"] == float(np.round(mk.mid_price(k, e["time"]), 2)[0])
        await c.close()


# ------------------------------------------------------------------------------ candles


async def _candles(c: Client, ch: int, symbol: str, from_time: int) -> list[dict[str, Any]]:
    c.subscribe(ch, {"type": "Candle", "symbol": symbol, "fromTime": from_time})
    evs: list[dict[str, Any]] = []
    while True:
        m = await c.recv_type("FEED_DATA")
        evs += decode_compact(m["data"], {"Candle": CANDLE_FIELDS})
        if evs[-1]["eventFlags"] & 0x18:
            return evs


def _expected(symbol: str, from_time: int, now: int, limit: int = 10_000) -> list[dict[str, Any]]:
    spec = mk.parse_candle_symbol(symbol)
    assert spec is not None
    bars, _ = mk.candle_bars_between(
        mk.symbol_key(SEED, spec.base), spec.period_ms, from_time, now, limit
    )
    return [bars.row(i) for i in range(len(bars) - 1, -1, -1)]


def _same_bar(ev: dict[str, Any], bar: dict[str, Any]) -> None:
    for k, v in bar.items():
        assert ev[k] == v, (k, ev[k], v)


async def test_candle_snapshot_newest_first_with_remove_marker(server: DxLinkServer) -> None:
    c = await _client(server)
    await c.handshake()
    await c.open_feed(3, contract="HISTORY", fields={"Candle": CANDLE_FIELDS})
    sym = "AAPL{=5m}"
    from_time = T0 - 3_600_000  # not on a bar boundary
    evs = await _candles(c, 3, sym, from_time)
    exp = _expected(sym, from_time, T0)
    assert len(exp) == 12 and len(evs) == 13
    assert [e["eventFlags"] for e in evs] == [0x04] + [0] * 11 + [0x0A]
    for e, b in zip(evs, exp, strict=False):
        _same_bar(e, b)
        assert e["eventSymbol"] == sym and e["sequence"] == 0
        assert e["index"] == mk.candle_index(e["time"])
    assert [e["time"] for e in evs[:-1]] == sorted((e["time"] for e in evs[:-1]), reverse=True)
    end = evs[-1]
    assert end["time"] == from_time and end["index"] == mk.candle_index(from_time)
    assert all(isnan(end[f]) for f in ("open", "high", "low", "close", "volume", "vwap"))
    # the newest bar is the forming one: open at its start, only elapsed samples counted
    assert evs[0]["time"] == mk.align_bar_start(T0, 300_000)
    await c.close()


async def test_candle_snapshot_from_bar_start_and_empty(server: DxLinkServer) -> None:
    c = await _client(server)
    await c.handshake()
    await c.open_feed(1, contract="HISTORY", fields={"Candle": CANDLE_FIELDS})
    start = mk.align_bar_start(T0, 60_000) - 5 * 60_000
    evs = await _candles(c, 1, "SPY{=1m}", start)
    assert [e["eventFlags"] for e in evs] == [0x04, 0, 0, 0, 0, 0x08]  # real bar at fromTime ends
    assert evs[-1]["time"] == start
    # fromTime inside the forming bar -> no bar with time >= fromTime -> single 0x0E row
    evs = await _candles(c, 1, "SPY{=1h}", T0 - 1)
    assert len(evs) == 1 and evs[0]["eventFlags"] == 0x0E and evs[0]["time"] == T0 - 1
    # unsupported period (tick candles) -> empty snapshot too
    evs = await _candles(c, 1, "SPY", T0 - 10_000)
    assert [e["eventFlags"] for e in evs] == [0x0E]
    await c.close()


async def test_candle_snip_cap_and_frame_split() -> None:
    async with DxLinkServer(
        seed=SEED, clock=ManualClock(T0), max_snapshot_rows=50, snapshot_chunk_rows=20
    ) as srv:
        c = await Client.connect(srv.url)
        await c.handshake()
        await c.open_feed(1, contract="HISTORY", fields={"Candle": CANDLE_FIELDS})
        c.subscribe(1, {"type": "Candle", "symbol": "AAPL{=1m}", "fromTime": 1_000_000_000})
        frames = []
        evs: list[dict[str, Any]] = []
        while not evs or not evs[-1]["eventFlags"] & 0x18:
            m = await c.recv_type("FEED_DATA")
            frames.append(m)
            evs += decode_compact(m["data"], {"Candle": CANDLE_FIELDS})
        assert [len(decode_compact(f["data"], {"Candle": CANDLE_FIELDS})) for f in frames] == [
            20,
            20,
            10,
        ]
        assert [e["eventFlags"] for e in evs] == [0x04] + [0] * 48 + [0x10]
        for e, b in zip(evs, _expected("AAPL{=1m}", 1_000_000_000, T0, 50), strict=True):
            _same_bar(e, b)
        await c.close()


@pytest.mark.parametrize("fmt", ["COMPACT", "FULL"])
async def test_frames_split_by_bytes(fmt: str) -> None:
    """No FEED_DATA frame exceeds ``max_data_frame_bytes``, whatever the row limits allow; the
    rows arrive complete and in order."""
    limit = 3000
    async with DxLinkServer(
        seed=SEED, clock=ManualClock(T0), max_snapshot_rows=200, max_data_frame_bytes=limit,
        record_sent=True,
    ) as srv:  # fmt: skip
        c = await Client.connect(srv.url)
        await c.handshake()
        await c.open_feed(1, contract="HISTORY", fields={"Candle": CANDLE_FIELDS}, fmt=fmt)
        c.subscribe(1, {"type": "Candle", "symbol": "AAPL{=1m}", "fromTime": 1_000_000_000})
        n = 0
        while n < 200:
            m = await c.recv_type("FEED_DATA")
            n += len(m["data"]) if fmt == "FULL" else len(m["data"][1]) // len(CANDLE_FIELDS)
        sizes = [len(t.encode()) for t in srv.connections[0].sent if '"FEED_DATA"' in t]
        assert n == 200 and max(sizes) <= limit and len(sizes) >= 200 * 100 // limit
        await c.close()


async def test_live_forming_bar_updates_same_index_then_new_bar() -> None:
    clock = ManualClock(mk.align_bar_start(T0, 60_000) + 1_000)
    async with DxLinkServer(seed=SEED, clock=clock) as srv:
        c = await Client.connect(srv.url)
        await c.handshake()
        await c.open_feed(1, contract="HISTORY", fields={"Candle": CANDLE_FIELDS}, agg=0.0)
        sym = "AAPL{=1m}"
        bar0 = mk.align_bar_start(clock.t, 60_000)
        evs = await _candles(c, 1, sym, bar0 - 120_000)
        assert evs[0]["time"] == bar0
        clock.t = bar0 + 40_000  # same bar, more samples elapsed
        m = await c.recv_type("FEED_DATA")
        (upd,) = decode_compact(m["data"], {"Candle": CANDLE_FIELDS})
        assert upd["eventFlags"] == 0 and upd["index"] == evs[0]["index"]
        assert upd["count"] > evs[0]["count"]
        _same_bar(upd, _expected(sym, bar0, clock.t)[0])
        clock.t = bar0 + 60_000 + 10_000  # next bar started
        m = await c.recv_type("FEED_DATA")
        ups = decode_compact(m["data"], {"Candle": CANDLE_FIELDS})
        # final version of the old bar (if it changed) then the new bar, ascending, flags 0
        assert ups[-1]["time"] == bar0 + 60_000 and ups[-1]["eventFlags"] == 0
        exp = _expected(sym, bar0, clock.t)
        _same_bar(ups[-1], exp[0])
        if len(ups) == 2:
            _same_bar(ups[0], exp[1])
        # nothing changes while time stands still
        assert [m for m in await c.drain(0.1) if m["type"] == "FEED_DATA"] == []
        await c.close()


def test_market_candles_are_consistent() -> None:
    k = mk.symbol_key(1, "X")
    p = 300_000
    b0 = mk.align_bar_start(T0, p)
    starts = np.array([b0 - p, b0], dtype=np.int64)
    final = mk.candle_bars(k, p, starts, b0 + p - 1)
    early = mk.candle_bars(k, p, starts, b0)
    assert final.row(0) == early.row(0)  # a past bar never changes
    assert early.count[1] < final.count[1]
    for i in range(2):
        assert final.low[i] <= min(final.open[i], final.close[i])
        assert final.high[i] >= max(final.open[i], final.close[i])
        assert final.low[i] <= final.vwap[i] <= final.high[i]
        assert final.bid_volume[i] + final.ask_volume[i] == final.volume[i]
    # deterministic per seed, different across seeds
    assert mk.candle_bars(k, p, starts, b0).row(1) == early.row(1)
    other = mk.candle_bars(mk.symbol_key(2, "X"), p, starts, b0)
    assert other.row(1) != early.row(1)
    assert mk.parse_candle_symbol("AAPL{=d}").period_ms == mk.DAY_MS  # type: ignore[union-attr]
    assert mk.parse_candle_symbol("AAPL{=2w,tho=true}").period_ms == 14 * mk.DAY_MS  # type: ignore[union-attr]
    assert mk.parse_candle_symbol("AAPL{=5m,price=mark}").base == "AAPL"  # type: ignore[union-attr]
    assert mk.parse_candle_symbol("AAPL{=mo}") is None
    assert mk.align_bar_start(1_750_000_000_000, 7 * mk.DAY_MS) % mk.DAY_MS == 0
    assert (mk.align_bar_start(1_750_000_000_000, 7 * mk.DAY_MS) // mk.DAY_MS + 3) % 7 == 0


# ------------------------------------------------------------------------------ subscriptions


async def test_remove_reset_and_cancel(server: DxLinkServer) -> None:
    c = await _client(server)
    await c.handshake()
    await c.open_feed(1)
    c.subscribe(
        1,
        {"type": "Quote", "symbol": "A"},
        {"type": "Quote", "symbol": "B"},
        {"type": "Candle", "symbol": "A{=1m}", "fromTime": T0 - 60_000},
    )
    await c.drain(0.1)
    conn = server.connections[0]
    assert conn.subscriptions() == {(1, "Quote", "A"), (1, "Quote", "B"), (1, "Candle", "A{=1m}")}
    c.send(
        {
            "type": "FEED_SUBSCRIPTION",
            "channel": 1,
            "remove": [
                {"type": "Quote", "symbol": "A"},
                {"type": "Candle", "symbol": "A{=1m}", "fromTime": 0},
            ],
        }
    )
    await c.drain(0.05)
    assert conn.subscriptions() == {(1, "Quote", "B")}
    c.send(
        {
            "type": "FEED_SUBSCRIPTION",
            "channel": 1,
            "reset": True,
            "add": [{"type": "Quote", "symbol": "C"}],
        }
    )
    await c.drain(0.05)
    assert conn.subscriptions() == {(1, "Quote", "C")}
    c.send({"type": "CHANNEL_CANCEL", "channel": 1})
    assert (await c.recv_type("CHANNEL_CLOSED"))["channel"] == 1
    assert conn.subscriptions() == set()
    await c.close()


# ------------------------------------------------------------------------------ keepalive / limits


async def test_keepalive_sent_when_idle_and_timeout_error_then_close() -> None:
    async with DxLinkServer(keepalive_timeout=0.5, keepalive_interval=0.1) as srv:
        c = await Client.connect(srv.url)
        c.send(SETUP)
        setup = await c.recv()
        assert setup["keepaliveTimeout"] == 0.5
        await c.recv()
        msgs = await c.drain(0.3)
        assert {"type": "KEEPALIVE", "channel": 0} in msgs
        # keep talking: no timeout
        for _ in range(4):
            c.send({"type": "KEEPALIVE", "channel": 0})
            await asyncio.sleep(0.2)
        assert not c.l.disconnected.is_set()
        msgs = await c.drain(1.0)
        assert {
            "type": "ERROR",
            "channel": 0,
            "error": "TIMEOUT",
            "message": "The timeout has been reached. The message was last received 0.5 "
            "seconds ago.",
        } in msgs
        await asyncio.wait_for(c.l.disconnected.wait(), 1.0)
        assert c.l.close_code == 1000


async def test_oversized_frame_closes_1009(server: DxLinkServer) -> None:
    c = await _client(server)
    await c.handshake()
    await c.open_feed(1)
    big = {
        "type": "FEED_SUBSCRIPTION",
        "channel": 1,
        "add": [{"type": "TimeAndSale", "symbol": f"SYM{i:05d}"} for i in range(3000)],
    }
    c.send(big)
    with pytest.raises(Closed):
        while True:
            await c.recv()
    assert c.l.close_code == 1009
    # a chunked subscription of the same symbols is fine
    c2 = await _client(server)
    await c2.handshake()
    await c2.open_feed(1)
    for i in range(0, 3000, 150):
        c2.subscribe(1, *big["add"][i : i + 150])
    await c2.drain(0.1)
    assert len(server.connections[-1].subscriptions()) == 3000
    await c2.close()


async def test_faults_can_depend_on_connection_number() -> None:
    faults = {1: Faults(restart_after_s=0.05)}
    async with DxLinkServer(faults=lambda n: faults.get(n, Faults())) as srv:
        c1 = await Client.connect(srv.url)
        await asyncio.wait_for(c1.l.disconnected.wait(), 2)
        assert c1.l.close_code == 1012
        c2 = await Client.connect(srv.url)
        await c2.handshake()
        await asyncio.sleep(0.1)
        assert not c2.l.disconnected.is_set()
        assert srv.connection_count == 2
        await c2.close()


# ------------------------------------------------------------------------------ ttfast sim runner


async def test_sim_cli_serves_rest_and_dxlink_until_interrupted() -> None:
    import signal
    import sys

    import aiohttp

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ttfast.sim.cli",
        "--dxlink-port",
        "0",
        "--rest-port",
        "0",
        "--seed",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            dx_line = (await proc.stdout.readline()).decode()
            rest_line = (await proc.stdout.readline()).decode()
        dx_url = dx_line.split()[-1]
        rest_url = rest_line.split()[3]
        assert dx_url.startswith("ws://127.0.0.1:") and rest_url.startswith("http://127.0.0.1:")
        hdr = {"User-Agent": "ttfast-test/1.0"}
        async with aiohttp.ClientSession(headers=hdr) as http:
            r = await http.post(
                f"{rest_url}/oauth/token",
                json={"grant_type": "refresh_token", "client_secret": "s", "refresh_token": "r"},
            )
            tok = (await r.json())["access_token"]
            r = await http.get(
                f"{rest_url}/api-quote-tokens", headers={"Authorization": f"Bearer {tok}"}
            )
            qt = (await r.json())["data"]
        assert qt["dxlink-url"] == dx_url
        c = await Client.connect(qt["dxlink-url"])
        await c.handshake(qt["token"])
        await c.open_feed(1, fields={"Quote": ["eventSymbol", "bidPrice"]})
        c.subscribe(1, {"type": "Quote", "symbol": "AAPL"})
        m = await c.recv_type("FEED_DATA", timeout=5)
        assert m["data"][1][0] == "AAPL"
        await c.close()
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            rc = await proc.wait()
    assert rc == 0


async def test_slow_reader_backpressure_pauses_flushes() -> None:
    async with DxLinkServer(seed=1, tick_ms=10) as srv:
        c = await Client.connect(srv.url)
        await c.handshake()
        await c.open_feed(1, fields={"Quote": ["eventSymbol", "bidPrice", "bidSize"]})
        for i in range(0, 3000, 300):
            c.subscribe(1, *({"type": "Quote", "symbol": f"S{j}"} for j in range(i, i + 300)))
        await c.recv_type("FEED_DATA")
        conn = srv.connections[0]
        # small kernel buffers on both ends so the server's write buffer fills quickly
        for tr in (c.tr, conn.transport):
            assert tr is not None
            sock = tr.underlying_transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.tr.underlying_transport.pause_reading()  # stop reading: the server's buffer fills up
        async with asyncio.timeout(10):
            while not conn.paused:
                await asyncio.sleep(0.02)
        sent = srv.frames_sent
        await asyncio.sleep(0.3)
        assert srv.frames_sent == sent  # nothing queued while paused (rows conflate instead)
        c.tr.underlying_transport.resume_reading()
        async with asyncio.timeout(10):
            while conn.paused or srv.frames_sent == sent:
                await asyncio.sleep(0.02)
        assert conn.paused_count >= 1
        await c.close()


def _java_oracle(x: float) -> str:
    """Obviously-right (slow) Java Double.toString via Decimal and the shortest repr digits."""
    from decimal import Decimal

    d = Decimal(repr(x))
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    sci = len("".join(map(str, digits)).lstrip("0")) + exp - 1 if d != 0 else 0
    ds = ds.lstrip("0") or "0"
    s = "-" if sign else ""
    if x == 0:
        return s + "0.0"
    if len(ds) == 1:  # Java picks the closest 2-digit decimal (differs only for subnormals)
        m, _, e = f"{abs(x):.1e}".partition("e")
        ds, sci = m.replace(".", "").rstrip("0") or "0", int(e)
    if 1e-3 <= abs(x) < 1e7:
        q = Decimal(int(ds)).scaleb(sci - len(ds) + 1)
        txt = format(q, "f")
        return s + (txt if "." in txt else txt + ".0")
    return f"{s}{ds[0]}.{ds[1:] or '0'}E{sci}"


@hyp.settings(max_examples=300, deadline=None)
@hyp.given(st.floats(allow_nan=False, allow_infinity=False))
def test_java_double_property(x: float) -> None:
    s = java_double(x)
    assert float(s) == x and s == _java_oracle(x)
    assert re.fullmatch(r"-?\d+\.\d+(E-?\d+)?", s)
    if s.endswith(".0") and "E" not in s:
        assert x.is_integer()
    assert json_double(x) == s


async def test_drop_connections_and_runtime_fault_change() -> None:
    async with DxLinkServer() as srv:
        c = await Client.connect(srv.url)
        await c.handshake()
        assert srv.drop_connections(1012) == 1
        await asyncio.wait_for(c.l.disconnected.wait(), 2)
        assert c.l.close_code == 1012
        c = await Client.connect(srv.url)
        await c.handshake()
        srv.connections[0].faults = Faults(close_after_s=0.0, close_code=1011)
        await asyncio.wait_for(c.l.disconnected.wait(), 2)
        assert c.l.close_code == 1011


async def test_single_row_snapshots_carry_begin_and_end_together() -> None:
    clock = ManualClock(T0)
    async with DxLinkServer(seed=SEED, clock=clock, max_snapshot_rows=1) as srv:
        c = await Client.connect(srv.url)
        await c.handshake()
        await c.open_feed(1, contract="HISTORY", fields={"Candle": CANDLE_FIELDS})
        evs = await _candles(c, 1, "AAPL{=1m}", T0 - 3_600_000)  # capped at one row
        assert [e["eventFlags"] for e in evs] == [0x04 | 0x10]
        bar = mk.align_bar_start(T0, 60_000)
        evs = await _candles(c, 1, "SPY{=1m}", bar)  # only the forming bar, exactly at fromTime
        assert [(e["eventFlags"], e["time"]) for e in evs] == [(0x04 | 0x08, bar)]
        await c.close()


async def test_accelerated_clock_rolls_bars() -> None:
    clock = SimClock(start_ms=T0, time_scale=600.0)  # a 1-minute bar every 0.1 s
    async with DxLinkServer(seed=SEED, clock=clock) as srv:
        c = await Client.connect(srv.url)
        await c.handshake()
        await c.open_feed(1, contract="HISTORY", fields={"Candle": CANDLE_FIELDS}, agg=0.02)
        snap = await _candles(c, 1, "AAPL{=1m}", T0 - 300_000)
        live = []
        for m in await c.drain(0.6):
            if m["type"] == "FEED_DATA":
                live += decode_compact(m["data"], {"Candle": CANDLE_FIELDS})
        times = sorted({e["time"] for e in live})
        assert len(times) >= 3 and times[0] >= snap[0]["time"]
        assert all(b - a == 60_000 for a, b in itertools.pairwise(times))
        assert all(e["eventFlags"] == 0 for e in live)
        # every bar that is complete by now was last sent in its final form
        now = clock.now_ms()
        last = {e["time"]: e for e in live}
        for t in times[:-2]:
            bar = _expected("AAPL{=1m}", t, now)[-1]
            assert bar["time"] == t
            _same_bar(last[t], bar)
        await c.close()


async def test_shorter_aggregation_period_applies_at_once() -> None:
    async with DxLinkServer(seed=2, tick_ms=10, default_aggregation=5.0) as srv:
        c = await Client.connect(srv.url)
        await c.handshake()
        c.send({"type": "CHANNEL_REQUEST", "channel": 1, "service": "FEED", "parameters": {}})
        await c.recv_type("CHANNEL_OPENED")
        await asyncio.sleep(0.1)  # the channel ticks with the 5 s default meanwhile
        c.send(
            {
                "type": "FEED_SETUP",
                "channel": 1,
                "acceptAggregationPeriod": 0.02,
                "acceptEventFields": {"Quote": ["eventSymbol", "bidSize"]},
            }
        )
        await c.recv_type("FEED_CONFIG")
        c.subscribe(1, {"type": "Quote", "symbol": "AAPL"})
        frames = [m for m in await c.drain(0.5) if m["type"] == "FEED_DATA"]
        assert len(frames) >= 4  # initial state + updates every ~20 ms, not after 5 s
        await c.close()


async def test_summary_and_profile_rows(server: DxLinkServer) -> None:
    c = await _client(server)
    await c.handshake()
    sf = [
        "eventSymbol",
        "dayId",
        "dayOpenPrice",
        "dayHighPrice",
        "dayLowPrice",
        "prevDayClosePrice",
        "dayClosePrice",
        "prevDayId",
    ]
    await c.open_feed(1, fields={"Summary": sf, "Profile": ["eventSymbol", "description"]})
    c.subscribe(1, {"type": "Summary", "symbol": "AAPL"}, {"type": "Summary", "symbol": "QQQ"})
    cfg = await c.recv_type("FEED_CONFIG")
    evs = decode_compact((await c.recv_type("FEED_DATA"))["data"], cfg["eventFields"])
    keys = np.array([mk.symbol_key(SEED, e["eventSymbol"]) for e in evs], dtype=np.uint64)
    o, hi, lo, pc = mk.day_summary(keys, T0, server.tick_ms)
    day0 = T0 // mk.DAY_MS * mk.DAY_MS
    for i, e in enumerate(evs):
        assert (e["dayOpenPrice"], e["dayHighPrice"], e["dayLowPrice"]) == (o[i], hi[i], lo[i])
        assert e["prevDayClosePrice"] == pc[i] and isnan(e["dayClosePrice"])
        assert e["dayId"] == T0 // mk.DAY_MS and e["prevDayId"] == e["dayId"] - 1
        assert lo[i] <= o[i] <= hi[i]
        assert o[i] == float(np.round(mk.mid_price(int(keys[i]), day0), 2)[0])
    c.subscribe(1, {"type": "Profile", "symbol": "AAPL"})
    cfg = await c.recv_type("FEED_CONFIG")
    m = await c.recv_type("FEED_DATA")
    assert m["data"] == ["Profile", ["AAPL", "AAPL (simulated)"]]
    await c.close()


def test_sim_candle_index_is_a_java_long_after_2038() -> None:
    """dxFeed prints the index as a signed Java long: bars from 2**31 s on are negative, and
    ttfast's decoder (int64 index column) and candle store order them after older bars."""
    from ttfast import CandleStore
    from ttfast._core import candle_time

    before, after = (2**31 - 300) * 1000, (2**31 + 300) * 1000
    assert mk.candle_index(before) > 0 > mk.candle_index(after)
    assert mk.index_time(mk.candle_index(after)) == after
    assert mk.index_time(mk.candle_index(after) + (1 << 64)) == after
    assert candle_time(mk.candle_index(after)) == after
    store = CandleStore(8)
    for t, c in ((before, 1.0), (after, 2.0)):
        store.apply_bar("X{=5m}", t, c, c, c, c, 1.0)
    assert store["X{=5m}"].last.close == 2.0
