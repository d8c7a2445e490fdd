"""The order lifecycle of the local REST server (``ttfast.sim.rest.lifecycle``): fills against the
seeded market on a manual clock (the dxLink server's market when given one), partial fills,
cancel/replace, OCO/OTO/OTOCO triggers, Day/GTD expiry, and what fills do to positions, balances
and transactions. Expected prices are recomputed from ``ttfast.sim.market`` / ``pricing``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import numpy as np
import pytest

from ttfast.sim import DxLinkServer, RestSimServer
from ttfast.sim import market as mk
from ttfast.sim.pricing import ManualClock, SimMarket, StandaloneMarket, parse_option_symbol
from ttfast.sim.rest.lifecycle import SESSION_CLOSE_UTC_MS

T0 = 1_750_000_123_456  # 2025-06-15T15:08:43Z, before the session close
SEED = 3
A = "/accounts/5WT00000"
UA = {"User-Agent": "ttfast-tests/1.0"}


class Sim:
    """A REST sim on a manual market clock plus an HTTP client with a token."""

    def __init__(self, srv: RestSimServer, http: aiohttp.ClientSession, clock: ManualClock) -> None:
        self.srv = srv
        self.http = http
        self.clock = clock
        self.hdr: dict[str, str] = dict(UA)
        self.market = srv.lifecycle.market

    async def login(self) -> None:
        body = {"grant_type": "refresh_token", "refresh_token": "r", "client_secret": "s"}
        async with self.http.post(self.srv.base_url + "/oauth/token", json=body, headers=UA) as r:
            self.hdr["Authorization"] = "Bearer " + (await r.json())["access_token"]

    async def req(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        url = self.srv.base_url + path
        async with self.http.request(method, url, json=body, headers=self.hdr) as r:
            assert r.status == status, await r.text()
            body = await r.json()
            return body["data"] if r.status < 300 else body

    async def place(self, order: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = (await self.req("POST", A + "/orders", order, 201))["order"]
        return out

    async def order(self, oid: int) -> dict[str, Any]:
        out: dict[str, Any] = await self.req("GET", f"{A}/orders/{oid}")
        return out

    async def position(self, symbol: str) -> dict[str, Any] | None:
        items = (await self.req("GET", A + "/positions?include-closed-positions=true"))["items"]
        return next((p for p in items if p["symbol"] == symbol), None)

    async def step(self, ms: int) -> None:
        self.clock.advance(ms)
        await self.srv.lifecycle.tick()

    def quote(self, symbol: str, at: int | None = None) -> tuple[Decimal, Decimal]:
        bid, ask = self.market.quote(symbol, at)
        return Decimal(str(bid)), Decimal(str(ask))


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    clock = ManualClock(T0)
    srv = RestSimServer(
        "ws://127.0.0.1:9/realtime",
        market=StandaloneMarket(seed=SEED, clock=clock),
        tick_interval=None,
    )
    await srv.start()
    async with aiohttp.ClientSession() as http:
        s = Sim(srv, http, clock)
        await s.login()
        yield s
    await srv.stop()


def _order(
    otype: str, action: str, qty: int, symbol: str = "META", tif: str = "Day", **kw: Any
) -> dict[str, Any]:
    it = "Equity Option" if " " in symbol else "Equity"
    o: dict[str, Any] = {"order-type": otype, "time-in-force": tif,
                         "legs": [{"instrument-type": it, "symbol": symbol, "quantity": qty,
                                   "action": action}]}  # fmt: skip
    o.update(kw)
    return o


def _fills(o: dict[str, Any]) -> list[tuple[int, Decimal]]:
    return [(f["quantity"], Decimal(f["fill-price"])) for f in o["legs"][0]["fills"]]


# ------------------------------------------------------------------------------ fills


async def test_market_orders_fill_at_once_at_the_ask_and_the_bid(sim: Sim) -> None:
    _, ask = sim.quote("META")
    bal0 = await sim.req("GET", A + "/balances")
    buy = await sim.place(_order("Market", "Buy to Open", 10))
    assert buy["status"] == "Filled" and _fills(buy) == [(10, ask)]
    assert buy["legs"][0]["remaining-quantity"] == 0 and not buy["cancellable"]
    pos = await sim.position("META")
    assert pos is not None and pos["quantity"] == 10 and pos["quantity-direction"] == "Long"
    assert Decimal(pos["average-open-price"]) == ask and pos["multiplier"] == 1
    bal = await sim.req("GET", A + "/balances")
    cash = Decimal(bal0["cash-balance"]) - 10 * ask
    assert Decimal(bal["cash-balance"]) == cash
    # net liq = cash + the marked long values (the seeded AAPL and SPY call are marked too)
    longs = Decimal(bal["long-equity-value"]) + Decimal(bal["long-derivative-value"])
    assert Decimal(bal["net-liquidating-value"]) == cash + longs
    assert Decimal(bal["equity-buying-power"]) > 0
    tx = (await sim.req("GET", A + "/transactions"))["items"][0]
    assert tx["transaction-type"] == "Trade" and tx["order-id"] == buy["id"]
    assert (tx["action"], Decimal(tx["price"]), Decimal(tx["value"]), tx["value-effect"]) == (
        "Buy to Open", ask, 10 * ask, "Debit")  # fmt: skip

    sim.clock.advance(60_000)
    bid2, _ = sim.quote("META")
    sell = await sim.place(_order("Market", "Sell to Close", 4))
    assert _fills(sell) == [(4, bid2)]
    pos = await sim.position("META")
    assert pos is not None and pos["quantity"] == 6
    assert Decimal(pos["average-open-price"]) == ask  # reductions keep the average
    gain = (bid2 - ask) * 4
    assert Decimal(pos["realized-today"]) == abs(gain)
    assert pos["realized-today-effect"] == ("Credit" if gain > 0 else "Debit")
    await sim.place(_order("Market", "Sell to Close", 6))
    pos = await sim.position("META")
    assert pos is not None and pos["quantity"] == 0 and pos["quantity-direction"] == "Zero"
    items = (await sim.req("GET", A + "/positions"))["items"]
    assert "META" not in {p["symbol"] for p in items}  # closed positions only on request


async def test_limit_order_fills_when_the_market_crosses(sim: Sim) -> None:
    step = 10_000
    asks = [sim.quote("META", T0 + k * step)[1] for k in range(200)]
    limit = min(asks[1:])
    assert asks[0] > limit
    first = next(k for k in range(1, 200) if asks[k] <= limit)
    o = await sim.place(_order("Limit", "Buy to Open", 5, price=str(limit), **{
        "price-effect": "Debit"}))  # fmt: skip
    assert o["status"] == "Live" and not o["legs"][0]["fills"]
    for _ in range(first - 1):
        await sim.step(step)
    assert (await sim.order(o["id"]))["status"] == "Live"
    await sim.step(step)
    got = await sim.order(o["id"])
    assert got["status"] == "Filled" and _fills(got) == [(5, asks[first])]


async def test_stop_order_triggers_then_fills_at_market(sim: Sim) -> None:
    step = 10_000
    bids = [sim.quote("META", T0 + k * step)[0] for k in range(200)]
    stop = min(bids[1:]) + Decimal("0.01")
    assert bids[0] > stop
    first = next(k for k in range(1, 200) if bids[k] <= stop)
    o = await sim.place(_order("Stop", "Sell to Open", 3, **{"stop-trigger": str(stop)}))
    for _ in range(first - 1):
        await sim.step(step)
    assert (await sim.order(o["id"]))["status"] == "Live"
    await sim.step(step)
    got = await sim.order(o["id"])
    assert got["status"] == "Filled" and _fills(got) == [(3, bids[first])]
    pos = await sim.position("META")
    assert pos is not None and pos["quantity-direction"] == "Short" and pos["quantity"] == 3


async def test_large_orders_fill_in_parts(sim: Sim) -> None:
    sim.srv.state.partial_fill_above = 100
    o = await sim.place(_order("Market", "Buy to Open", 250))
    assert o["status"] == "Live" and o["legs"][0]["remaining-quantity"] == 150
    assert [q for q, _ in _fills(o)] == [100]
    await sim.step(1000)
    o = await sim.order(o["id"])
    assert o["status"] == "Live" and o["legs"][0]["remaining-quantity"] == 50
    await sim.step(1000)
    o = await sim.order(o["id"])
    assert o["status"] == "Filled" and [q for q, _ in _fills(o)] == [100, 100, 50]
    pos = await sim.position("META")
    assert pos is not None and pos["quantity"] == 250
    prices = [p for _, p in _fills(o)]
    avg = (prices[0] * 100 + prices[1] * 100 + prices[2] * 50) / 250
    assert Decimal(pos["average-open-price"]) == avg.quantize(Decimal("0.001"))


async def test_option_orders_fill_at_black_scholes_prices(sim: Sim) -> None:
    chain = (await sim.req("GET", "/option-chains/SPY/nested"))["items"][0]
    occ = chain["expirations"][0]["strikes"][2]["call"]
    opt = parse_option_symbol(occ)
    assert opt is not None and opt.underlying == "SPY"
    _, ask = sim.market.option_quote(opt)
    o = await sim.place(_order("Market", "Buy to Open", 2, symbol=occ))
    assert _fills(o) == [(2, Decimal(str(ask)))]
    pos = await sim.position(occ)
    assert pos is not None and pos["multiplier"] == 100 and pos["underlying-symbol"] == "SPY"


# ------------------------------------------------------------------------------ cancel / replace


async def test_cancel_and_replace(sim: Sim) -> None:
    _, ask = sim.quote("META")
    far = str(ask - 5)
    o = await sim.place(_order("Limit", "Buy to Open", 1, price=far, **{"price-effect": "Debit"}))
    new = await sim.req("PUT", f"{A}/orders/{o['id']}", {"price": str(ask + 1)})
    assert new["status"] == "Filled" and new["replaces-order-id"] == o["id"]
    assert _fills(new) == [(1, ask)]  # a marketable limit fills at the market
    old = await sim.order(o["id"])
    assert old["status"] == "Cancelled" and old["replacing-order-id"] == new["id"]
    o2 = await sim.place(_order("Limit", "Buy to Open", 1, price=far, **{"price-effect": "Debit"}))
    assert (await sim.req("DELETE", f"{A}/orders/{o2['id']}"))["status"] == "Cancelled"
    await sim.req("DELETE", f"{A}/orders/{new['id']}", status=422)  # filled: not cancellable


# ------------------------------------------------------------------------------ complex orders


async def test_oco_first_fill_cancels_the_other(sim: Sim) -> None:
    await sim.place(_order("Market", "Buy to Open", 10))
    bid, _ = sim.quote("META")
    tp = _order("Limit", "Sell to Close", 10, tif="GTC", price=str(bid + 50),
                **{"price-effect": "Credit"})  # fmt: skip
    sl = _order("Stop", "Sell to Close", 10, tif="GTC", **{"stop-trigger": str(bid + 1)})
    cx = (await sim.req("POST", A + "/complex-orders", {"type": "OCO", "orders": [tp, sl]},
                        201))["complex-order"]  # fmt: skip
    # a sell stop above the bid is reached at once: the stop fills, the take-profit is cancelled
    tp_o, sl_o = cx["orders"]
    assert sl_o["status"] == "Filled" and tp_o["status"] == "Cancelled"
    assert "terminal-at" in (await sim.req("GET", f"{A}/complex-orders/{cx['id']}"))


async def test_otoco_trigger_fill_activates_an_oco(sim: Sim) -> None:
    _, ask = sim.quote("META")
    trig = _order("Limit", "Buy to Open", 10, price=str(ask + 1), **{"price-effect": "Debit"})
    tp = _order("Limit", "Sell to Close", 10, tif="GTC", price=str(ask + 50),
                **{"price-effect": "Credit"})  # fmt: skip
    sl = _order("Stop", "Sell to Close", 10, tif="GTC", **{"stop-trigger": str(ask - 50)})
    body = {"type": "OTOCO", "trigger-order": trig, "orders": [tp, sl]}
    cx = (await sim.req("POST", A + "/complex-orders", body, 201))["complex-order"]
    assert cx["trigger-order"]["status"] == "Filled"
    assert [o["status"] for o in cx["orders"]] == ["Live", "Live"]
    # the two rest as an OCO; the group is cancelled with the complex id
    got = await sim.req("DELETE", f"{A}/complex-orders/{cx['id']}")
    assert [o["status"] for o in got["orders"]] == ["Cancelled", "Cancelled"]


async def test_oto_contingent_until_the_trigger_fills(sim: Sim) -> None:
    step = 10_000
    asks = [sim.quote("META", T0 + k * step)[1] for k in range(200)]
    limit = min(asks[1:])
    first = next(k for k in range(1, 200) if asks[k] <= limit)
    trig = _order("Limit", "Buy to Open", 10, price=str(limit), **{"price-effect": "Debit"})
    child = _order("Market", "Sell to Close", 10)
    body = {"type": "OTO", "trigger-order": trig, "orders": [child]}
    cx = (await sim.req("POST", A + "/complex-orders", body, 201))["complex-order"]
    assert cx["trigger-order"]["status"] == "Live" and cx["orders"][0]["status"] == "Contingent"
    for _ in range(first - 1):
        await sim.step(step)
    cx = await sim.req("GET", f"{A}/complex-orders/{cx['id']}")
    assert cx["orders"][0]["status"] == "Contingent"
    await sim.step(step)
    cx = await sim.req("GET", f"{A}/complex-orders/{cx['id']}")
    assert cx["trigger-order"]["status"] == "Filled"
    bid_then, _ = sim.quote("META")
    assert cx["orders"][0]["status"] == "Filled" and _fills(cx["orders"][0]) == [(10, bid_then)]
    pos = await sim.position("META")
    assert pos is not None and pos["quantity"] == 0


# ------------------------------------------------------------------------------ expiry


async def test_day_orders_expire_at_the_session_close(sim: Sim) -> None:
    _, ask = sim.quote("META")
    far = {"price": str(ask - 20), "price-effect": "Debit"}
    day = await sim.place(_order("Limit", "Buy to Open", 1, **far))
    gtc = await sim.place(_order("Limit", "Buy to Open", 1, tif="GTC", **far))
    close = (T0 // mk.DAY_MS) * mk.DAY_MS + SESSION_CLOSE_UTC_MS
    sim.clock.t = close - 1
    await sim.srv.lifecycle.tick()
    assert (await sim.order(day["id"]))["status"] == "Live"
    sim.clock.t = close
    await sim.srv.lifecycle.tick()
    assert (await sim.order(day["id"]))["status"] == "Expired"
    assert (await sim.order(gtc["id"]))["status"] != "Expired"


async def test_gtd_orders_expire_at_the_close_of_their_date(sim: Sim) -> None:
    _, ask = sim.quote("META")
    o = await sim.place(_order("Limit", "Buy to Open", 1, tif="GTD", price=str(ask - 20),
                               **{"price-effect": "Debit", "gtc-date": "2025-06-17"}))  # fmt: skip
    sim.clock.t = 1_750_190_400_000 - 1  # 2025-06-17T20:00Z
    await sim.srv.lifecycle.tick()
    assert (await sim.order(o["id"]))["status"] != "Expired"
    sim.clock.t = 1_750_194_000_000  # 21:00Z
    await sim.srv.lifecycle.tick()
    assert (await sim.order(o["id"]))["status"] == "Expired"


# ------------------------------------------------------------------------------ one market


async def test_rest_fills_at_the_dxlink_servers_prices() -> None:
    """``ttfast sim`` hands its DxLinkServer to the REST server: fills are at the quotes the
    dxLink stream sends for the same instant."""
    clock = ManualClock(T0)
    async with DxLinkServer(seed=SEED, clock=clock) as dx:
        srv = RestSimServer(dx.url, market=dx, tick_interval=None)
        await srv.start()
        try:
            async with aiohttp.ClientSession() as http:
                s = Sim(srv, http, clock)
                await s.login()
                o = await s.place(_order("Market", "Buy to Open", 1, symbol="TSLA"))
        finally:
            await srv.stop()
    keys = np.array([mk.symbol_key(SEED, "TSLA")], dtype=np.uint64)
    _, ask, *_ = mk.quote_values(keys, T0, dx.tick_ms)
    assert _fills(o) == [(1, Decimal(str(float(ask[0]))))]
    assert SimMarket(dx).quote("TSLA") == sim_quote(SEED, "TSLA", T0)


def sim_quote(seed: int, symbol: str, t: int) -> tuple[float, float]:
    keys = np.array([mk.symbol_key(seed, symbol)], dtype=np.uint64)
    bid, ask, *_ = mk.quote_values(keys, t, 100)
    return float(bid[0]), float(ask[0])


async def test_order_timestamps_are_on_the_market_clock(sim: Sim) -> None:
    """received-at, live-at, cancelled-at and filled-at all come from the market clock (a manual
    one here, far from the wall clock), so they are in order."""
    from datetime import datetime

    def ms(s: str) -> int:
        return int(datetime.fromisoformat(s).timestamp() * 1000)

    _, ask = sim.quote("META")
    o = await sim.place(_order("Limit", "Buy to Open", 1, price=str(ask - 5),
                               **{"price-effect": "Debit"}))  # fmt: skip
    assert ms(o["received-at"]) == ms(o["live-at"]) == T0 and o["updated-at"] == T0
    await sim.step(5_000)
    got = await sim.req("DELETE", f"{A}/orders/{o['id']}")
    assert ms(got["cancelled-at"]) == ms(got["terminal-at"]) == T0 + 5_000
    f = await sim.place(_order("Market", "Buy to Open", 1))
    assert ms(f["received-at"]) == T0 + 5_000 <= ms(f["legs"][0]["fills"][0]["filled-at"])
