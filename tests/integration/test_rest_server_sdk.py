"""Conformance: the independent tastytrade SDK (tastyware, PyPI ``tastytrade``) works against our
local REST server with only its base URL pointed at it. If the SDK's pydantic models accept our
bodies and its calls find our routes, the server is shaped like the real API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from ttfast.rest import orders as o
from ttfast.sim import RestSimServer

tastytrade = pytest.importorskip("tastytrade")
tt_session = pytest.importorskip("tastytrade.session")
tt_order = pytest.importorskip("tastytrade.order")

# httpx2 (the SDK's HTTP client) deprecates the SDK's own `data=` upload; not our concern.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
async def sdk_session(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[object, RestSimServer]]:
    srv = RestSimServer("ws://127.0.0.1:9/realtime")
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
