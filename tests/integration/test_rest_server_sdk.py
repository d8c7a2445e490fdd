"""Conformance: the independent tastytrade SDK (tastyware, PyPI ``tastytrade``) works against our
local REST server with only its base URL pointed at it. If the SDK's pydantic models accept our
bodies and its calls find our routes, the server is shaped like the real API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from ttfast.rest import orders as o
from ttfast.sim import RestSimServer
from ttfast.sim.pricing import ManualClock, StandaloneMarket

tastytrade = pytest.importorskip("tastytrade")
tt_session = pytest.importorskip("tastytrade.session")
tt_order = pytest.importorskip("tastytrade.order")

# httpx2 (the SDK's HTTP client) deprecates the SDK's own `data=` upload; not our concern.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
async def sdk_session(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[object, RestSimServer]]:
    # the market on a manual clock: quotes and marks are exact (AAPL 304.22/304.24)
    market = StandaloneMarket(seed=0, clock=ManualClock(1_750_000_123_456))
    srv = RestSimServer("ws://127.0.0.1:9/realtime", market=market, tick_interval=None)
    await srv.start()
    monkeypatch.setattr(tt_session, "API_URL", srv.base_url)  # the only change to the SDK
    try:
        async with tastytrade.Session("any-client-secret", "any-refresh-token") as s:
            yield s, srv
    finally:
        await srv.stop()


async def test_sdk_account_reads(sdk_session: tuple[object, RestSimServer]) -> None:
    s, srv = sdk_session
    Account = tastytrade.Account
    accounts = await Account.get(s)
    assert [a.account_number for a in accounts] == ["5WT00000", "5WT00001"]
    a = await Account.get(s, "5WT00000")
    bal = await a.get_balances(s)
    assert bal.cash_balance == Decimal("7218.997")
    positions = await a.get_positions(s)
    assert {p.symbol for p in positions} == {"AAPL", "SPY   261218C00600000"}
    status = await a.get_trading_status(s)
    assert status.options_level == "No Restrictions"
    history = await a.get_history(s, per_page=3, page_offset=None)  # all pages
    assert len(history) == 7
    assert srv.state.requests["GET /accounts/5WT00000/transactions"] == 3
    assert (await s.get_customer()).first_name == "Sim"  # type: ignore[attr-defined]
    assert srv.state.token_grants == 1


async def test_sdk_order_flow(sdk_session: tuple[object, RestSimServer]) -> None:
    s, srv = sdk_session
    a = (await tastytrade.Account.get(s))[0]
    leg = tt_order.Leg(
        instrument_type=tt_order.InstrumentType.EQUITY,
        symbol="AAPL",
        action=tt_order.OrderAction.BUY_TO_OPEN,
        quantity=1,
    )
    order = tt_order.LimitOrder(legs=[leg], price=Decimal("-100.5"), external_identifier="sdk-1")
    dry = await a.place_order(s, order, dry_run=True)
    assert dry.order.status == tt_order.OrderStatus.RECEIVED
    assert srv.state.orders_accepted == 0
    placed = await a.place_order(s, order, dry_run=False)
    assert placed.order.price == Decimal("-100.5")  # SDK re-signs: Debit → negative
    assert placed.buying_power_effect.impact == Decimal("100.500")
    live = await a.get_live_orders(s)
    assert [o.id for o in live] == [placed.order.id]
    await a.delete_order(s, placed.order.id)
    got = await a.get_order(s, placed.order.id)
    assert got.status == tt_order.OrderStatus.CANCELLED
    assert srv.state.orders_accepted == 1


def _sdk_otoco() -> object:
    buy = tt_order.Leg(
        instrument_type=tt_order.InstrumentType.EQUITY,
        symbol="AAPL",
        action=tt_order.OrderAction.BUY_TO_OPEN,
        quantity=100,
    )
    sell = tt_order.Leg(
        instrument_type=tt_order.InstrumentType.EQUITY,
        symbol="AAPL",
        action=tt_order.OrderAction.SELL_TO_CLOSE,
        quantity=100,
    )
    return tt_order.OTOCOOrder(
        trigger_order=tt_order.LimitOrder(legs=[buy], price=Decimal("-157.97")),
        take_profit=tt_order.LimitOrder(legs=[sell], price=Decimal("198.68"), time_in_force="GTC"),
        stop_loss=tt_order.StopOrder(
            legs=[sell], stop_trigger=Decimal("143.06"), time_in_force="GTC"
        ),
    )


def _strip(x: Any) -> Any:
    """Drop the SDK-only fields (its `source` tag, paper-API `behavior`)."""
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in ("source", "behavior")}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def test_our_builders_emit_the_sdk_wire_form() -> None:
    """An independent encoder (the SDK's pydantic models) produces the same JSON as ours."""
    ours = o.otoco(
        o.limit_order(o.leg("AAPL", 100, "Buy to Open"), "-157.97"),
        o.limit_order(o.leg("AAPL", 100, "Sell to Close"), "198.68", time_in_force="GTC"),
        o.stop_order(o.leg("AAPL", 100, "Sell to Close"), "143.06", time_in_force="GTC"),
    )
    theirs = json.loads(_sdk_otoco().model_dump_json(exclude_none=True, by_alias=True))  # type: ignore[attr-defined]
    assert json.loads(ours.to_json()) == _strip(theirs)


async def test_sdk_complex_order_flow(sdk_session: tuple[object, RestSimServer]) -> None:
    s, srv = sdk_session
    a = (await tastytrade.Account.get(s))[0]
    dry = await a.place_complex_order(s, _sdk_otoco(), dry_run=True)
    assert type(dry.complex_order).__name__ == "UnplacedComplexOrder"
    placed = await a.place_complex_order(s, _sdk_otoco(), dry_run=False)
    cx = placed.complex_order
    assert type(cx).__name__ == "PlacedOTOCOOrder"
    assert [x.status for x in cx.orders] == [tt_order.OrderStatus.CONTINGENT] * 2
    assert [c.id for c in await a.get_live_complex_orders(s)] == [cx.id]
    await a.delete_complex_order(s, cx.id)
    got = await a.get_complex_order(s, cx.id)
    assert got.trigger_order.status == tt_order.OrderStatus.CANCELLED
    assert srv.state.orders_accepted == 3


# --- issue 16: every SDK call a new user tries works against `ttfast sim` ------------------------


async def test_sdk_chains_and_instruments(sdk_session: tuple[object, RestSimServer]) -> None:
    from tastytrade import instruments as ti

    s, _ = sdk_session
    chain = await ti.get_option_chain(s, "SPY")
    assert len(chain) == 3 and all(len(v) == 10 for v in chain.values())
    opt = next(iter(chain.values()))[0]
    assert opt.underlying_symbol == "SPY" and opt.streamer_symbol.startswith(".SPY")
    fchain = await ti.get_future_option_chain(s, "/ES")
    assert sum(len(v) for v in fchain.values()) == 10
    nested = await ti.NestedFutureOptionChain.get(s, "/ES")
    assert [f.symbol for f in nested.futures] == ["/ESZ6"]
    strikes = nested.option_chains[0].expirations[0].strikes
    assert [k.strike_price for k in strikes] == [Decimal(k) for k in range(5900, 6101, 50)]
    active = await ti.Equity.get_active_equities(s)
    assert {e.symbol for e in active} == {"AAPL", "SPY", "SPX", "META", "TSLA"}
    precisions = await ti.get_quantity_decimal_precisions(s)
    assert {p.instrument_type for p in precisions} == {"Cryptocurrency", "Equity"}
    btc = await ti.Cryptocurrency.get(s, "BTC/USD")
    assert btc.destination_venue_symbols[0].symbol == "BTC"
    assert len(await ti.Cryptocurrency.get(s)) == 2


async def test_sdk_account_history_and_margin(sdk_session: tuple[object, RestSimServer]) -> None:
    s, srv = sdk_session
    a = await tastytrade.Account.get(s, "5WT00000")
    snaps = await a.get_balance_snapshots(s)
    assert len(snaps) == 5 and snaps[0].cash_balance == Decimal("7218.997")
    hist = await a.get_net_liquidating_value_history(s, time_back="1m")
    assert len(hist) == 31 and hist[-1].close > hist[0].open
    margin = await a.get_margin_requirements(s)
    assert margin.account_number == "5WT00000"
    assert {g.code for g in margin.groups} == {"AAPL", "SPY"}  # type: ignore[union-attr]
    assert await a.get_complex_order_history(s) == []
    positions = await a.get_positions(s, include_marks=True)
    assert all(p.mark is not None and p.mark_price is not None for p in positions)
    aapl = next(p for p in positions if p.symbol == "AAPL")
    assert aapl.mark == Decimal(str(srv.lifecycle.market.mark("AAPL"))).quantize(Decimal("0.001"))


async def test_sdk_market_data_metrics_and_session(
    sdk_session: tuple[object, RestSimServer],
) -> None:
    from tastytrade import market_data, metrics
    from tastytrade.order import InstrumentType

    s, srv = sdk_session
    md = await market_data.get_market_data(s, "AAPL", InstrumentType.EQUITY)
    bid, ask = srv.lifecycle.market.quote("AAPL")
    assert md.symbol == "AAPL" and md.bid is not None and md.ask is not None
    assert (md.bid, md.ask) == (Decimal(str(bid)), Decimal(str(ask)))
    assert md.mark == ((md.bid + md.ask) / 2).quantize(Decimal("0.001"))
    many = await market_data.get_market_data_by_type(
        s, equities=["AAPL", "SPY"], futures=["/ESZ6"], cryptocurrencies=["BTC/USD"]
    )
    assert [m.symbol for m in many] == ["AAPL", "SPY", "/ESZ6", "BTC/USD"]
    btc = await market_data.get_market_data(s, "BTC/USD", InstrumentType.CRYPTOCURRENCY)
    assert btc.symbol == "BTC/USD"
    divs = await metrics.get_dividends(s, "AAPL")
    assert len(divs) == 8 and all(d.amount > 0 for d in divs)
    earn = await metrics.get_earnings(s, "AAPL", date(2000, 1, 1))
    assert len(earn) == 12
    assert await metrics.get_risk_free_rate(s) == Decimal("0.0425")
    assert await s.validate() is True


async def test_unknown_routes_answer_json_errors(sdk_session: tuple[object, RestSimServer]) -> None:
    import aiohttp

    _, srv = sdk_session
    async with aiohttp.ClientSession() as http:
        grant = {"grant_type": "refresh_token", "refresh_token": "r", "client_secret": "s"}
        async with http.post(srv.base_url + "/oauth/token", json=grant,
                             headers={"User-Agent": "t/1"}) as r:  # fmt: skip
            hdr = {
                "User-Agent": "t/1",
                "Authorization": f"Bearer {(await r.json())['access_token']}",
            }
        async with http.get(srv.base_url + "/no/such/route", headers=hdr) as r:
            assert r.status == 404 and r.content_type == "application/json"
            assert (await r.json())["error"]["code"] == "not_found"
        async with http.patch(srv.base_url + "/customers/me", headers=hdr) as r:
            assert r.status == 405 and r.content_type == "application/json"
            assert (await r.json())["error"]["code"] == "method_not_allowed"
            assert "GET" in r.headers["Allow"]
        async with http.get(srv.base_url + "/margin-requirements-public-configuration",
                            headers={"User-Agent": "t/1"}) as r:  # fmt: skip
            assert r.status == 200  # public: no token
