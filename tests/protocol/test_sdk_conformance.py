"""Conformance against an independent client: the tastytrade SDK's ``DXLinkStreamer``.

The SDK (tastyware/tastytrade, third-party) is used unchanged; only its REST base URL is pointed
at our local REST server, whose ``/api-quote-tokens`` hands out our local dxLink URL. The SDK then
does its own OAuth refresh, token fetch, SETUP/AUTH, one AUTO channel per event type, COMPACT
FEED_SETUP with its own field lists, and decodes by its requested field order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest
from dxsim_testclient import ManualClock

from ttfast.sim import DxLinkServer
from ttfast.sim import market as mk

tastytrade = pytest.importorskip("tastytrade")
rest_server = pytest.importorskip("ttfast.sim.rest")

T0 = 1_750_000_123_456
SEED = 5


def _close_streams(streamer: object) -> None:
    """The SDK never closes its anyio memory streams (ResourceWarning at GC); close them."""
    for st in [*streamer._send.values(), *streamer._recv.values()]:  # type: ignore[attr-defined]
        st.close()


@pytest.fixture
async def sdk_session() -> AsyncIterator[tuple[DxLinkServer, object]]:
    dx = DxLinkServer(seed=SEED, clock=ManualClock(T0))
    dx_url = await dx.start()
    rest = rest_server.RestSimServer(dx_url)
    base = await rest.start()
    session = tastytrade.Session("sim-secret", "sim-refresh-token")
    session._client.base_url = base  # the only change: where the SDK's REST calls go
    try:
        yield dx, session
    finally:
        await session._client.aclose()
        await rest.stop()
        await dx.stop()


async def test_sdk_streamer_receives_quotes(sdk_session: tuple[DxLinkServer, object]) -> None:
    from tastytrade.dxfeed import Quote

    dx, session = sdk_session
    syms = ["AAPL", "SPY", "/ESZ26:XCME"]
    async with asyncio.timeout(10), tastytrade.DXLinkStreamer(session) as streamer:
        await streamer.subscribe(Quote, syms)
        got = {}
        while len(got) < len(syms):
            q = await streamer.get_event(Quote)
            got[q.event_symbol] = q
    _close_streams(streamer)
    keys = np.array([mk.symbol_key(SEED, s) for s in syms], dtype=np.uint64)
    bid, ask, bs, as_, bex, aex, qt = mk.quote_values(keys, T0, dx.tick_ms)
    for i, s in enumerate(syms):
        q = got[s]
        assert q.bid_price == Decimal(str(bid[i])) and q.ask_price == Decimal(str(ask[i]))
        assert q.bid_size == Decimal(str(bs[i])) and q.ask_size == Decimal(str(as_[i]))
        assert q.bid_time == qt and q.bid_exchange_code == bex[i]
        assert q.ask_exchange_code == aex[i]
    # the SDK followed the order the server enforces: no ERROR was ever sent to it
    types = [m["type"] for _, m in dx.received if m["type"] != "KEEPALIVE"]
    assert types[:2] == ["SETUP", "AUTH"] and "FEED_SUBSCRIPTION" in types
    assert not dx.errors_sent and dx.internal_errors == 0


async def test_sdk_streamer_receives_candle_history(
    sdk_session: tuple[DxLinkServer, object],
) -> None:
    from tastytrade.dxfeed import Candle

    dx, session = sdk_session
    start = mk.align_bar_start(T0, 300_000) - 6 * 300_000 + 1  # not on a bar boundary
    async with asyncio.timeout(10), tastytrade.DXLinkStreamer(session) as streamer:
        await streamer.subscribe_candle(
            ["AAPL"], "5m", start_time=datetime.fromtimestamp(start / 1000, UTC)
        )
        candles = []
        while not candles or not (candles[-1].snapshot_end or candles[-1].snapshot_snip):
            candles.append(await streamer.get_event(Candle))
    _close_streams(streamer)
    # TW sends AAPL{=5m,tho=true}; the server echoes the subscribed symbol verbatim
    assert {c.event_symbol for c in candles} == {"AAPL{=5m,tho=true}"}
    assert candles[0].snapshot_begin and candles[-1].remove and candles[-1].snapshot_end
    assert candles[-1].time == start
    real = candles[:-1]
    bars, _ = mk.candle_bars_between(mk.symbol_key(SEED, "AAPL"), 300_000, start, T0)
    assert len(real) == len(bars) == 6
    for c, i in zip(real, range(len(bars) - 1, -1, -1), strict=True):
        b = bars.row(i)
        assert (c.time, c.index, c.count) == (b["time"], b["index"], b["count"])
        assert (c.open, c.high, c.low, c.close) == tuple(
            Decimal(str(b[k])) for k in ("open", "high", "low", "close")
        )
        assert c.volume == Decimal(str(b["volume"]))
    assert not dx.errors_sent


async def test_sdk_default_candle_start_fits_its_frame_limit(
    sdk_session: tuple[DxLinkServer, object],
) -> None:
    """The SDK's default ``start_time`` (2001-09-09) asks for ~25 years of 1m bars: the capped
    snapshot (``max_snapshot_rows``) goes out in frames of at most 64 KiB, which the SDK's
    WebSocket client accepts (it closes with 1009 on anything larger)."""
    from tastytrade.dxfeed import Candle

    dx, session = sdk_session
    dx.record_sent = True
    async with asyncio.timeout(20), tastytrade.DXLinkStreamer(session) as streamer:
        await streamer.subscribe_candle(["SPY"], "1m")
        candles = []
        while not candles or not (candles[-1].snapshot_end or candles[-1].snapshot_snip):
            candles.append(await streamer.get_event(Candle))
        sizes = [len(t.encode()) for c in dx.connections for t in c.sent]
    _close_streams(streamer)
    assert len(candles) == dx.max_snapshot_rows and candles[-1].snapshot_snip
    assert candles[0].snapshot_begin and candles[0].time == mk.align_bar_start(T0, 60_000)
    assert max(sizes) <= 64 * 1024 and len(sizes) > dx.max_snapshot_rows // 500
    assert not dx.errors_sent and dx.internal_errors == 0


async def test_sdk_streamer_receives_greeks_theo_prices_and_underlying(
    sdk_session: tuple[DxLinkServer, object],
) -> None:
    from tastytrade.dxfeed import Greeks, TheoPrice, Underlying

    from ttfast.sim.pricing import SimMarket, parse_option_symbol

    dx, session = sdk_session
    opts = [".SPY260619C450", ".SPY260619P450"]
    async with asyncio.timeout(10), tastytrade.DXLinkStreamer(session) as streamer:
        await streamer.subscribe(Greeks, opts)
        await streamer.subscribe(TheoPrice, opts)
        await streamer.subscribe(Underlying, ["SPY"])
        greeks = {g.event_symbol: g for g in [await streamer.get_event(Greeks) for _ in opts]}
        theo = {t.event_symbol: t for t in [await streamer.get_event(TheoPrice) for _ in opts]}
        und = await streamer.get_event(Underlying)
    _close_streams(streamer)
    pricing = SimMarket(dx)
    for s in opts:
        opt = parse_option_symbol(s)
        assert opt is not None
        want = pricing.option_greeks(opt, T0)
        assert greeks[s].price == theo[s].price == Decimal(str(round(want.price, 4)))
        assert greeks[s].delta == Decimal(str(round(want.delta, 6)))
    assert greeks[opts[0]].delta > 0 > greeks[opts[1]].delta
    assert und.event_symbol == "SPY" and und.volatility == Decimal("0.65")
    assert not dx.errors_sent
