"""The local account streamer (spec §7) on ``RestSimServer``: the tastytrade SDK's
``AlertStreamer`` (unchanged but for its URLs) receives the fill of a market order it placed;
a raw WebSocket client checks the message shapes against the documented frames
(``tests/data/account_stream/``), the order of actions, batching and the fault switches."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ttfast.sim import RestSimServer
from ttfast.sim.pricing import ManualClock, SimMarket, StandaloneMarket
from ttfast.sim.rest.account_stream import StreamFaults

tastytrade = pytest.importorskip("tastytrade")
tt_session = pytest.importorskip("tastytrade.session")
tt_order = pytest.importorskip("tastytrade.order")

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

DATA = Path(__file__).resolve().parent.parent / "data" / "account_stream"
T0 = 1_750_000_123_456
ACCT = "5WT00000"
UA = {"User-Agent": "ttfast-tests/1.0"}


def _example(name: str) -> Any:
    """A documented frame: the file's first line is its provenance, the rest the frame."""
    text = (DATA / f"account_streamer.{name}.json").read_text()
    return json.loads(text.split("\n", 1)[1])


@pytest.fixture
async def srv() -> AsyncIterator[RestSimServer]:
    s = RestSimServer(
        "ws://127.0.0.1:9/realtime",
        market=StandaloneMarket(seed=3, clock=ManualClock(T0)),
        tick_interval=None,
    )
    await s.start()
    yield s
    await s.stop()


async def _token(http: aiohttp.ClientSession, srv: RestSimServer) -> str:
    body = {"grant_type": "refresh_token", "refresh_token": "r", "client_secret": "s"}
    async with http.post(srv.base_url + "/oauth/token", json=body, headers=UA) as r:
        tok: str = (await r.json())["access_token"]
        return tok


class Raw:
    """A plain WebSocket client of the account streamer."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, token: str) -> None:
        self.ws = ws
        self.token = token
        self.rid = 0

    async def send(self, action: str, value: Any = None, token: str | None = None) -> int:
        self.rid += 1
        m: dict[str, Any] = {"action": action, "auth-token": f"Bearer {token or self.token}",
                             "request-id": self.rid}  # fmt: skip
        if value is not None:
            m["value"] = value
        await self.ws.send_json(m)
        return self.rid

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        m = await self.ws.receive(timeout=timeout)
        assert m.type == aiohttp.WSMsgType.TEXT, m
        out: dict[str, Any] = json.loads(m.data)
        return out


@pytest.fixture
async def raw(srv: RestSimServer) -> AsyncIterator[tuple[Raw, aiohttp.ClientSession]]:
    async with aiohttp.ClientSession() as http:
        tok = await _token(http, srv)
        async with http.ws_connect(srv.streamer_url) as ws:
            yield Raw(ws, tok), http


async def _place(http: aiohttp.ClientSession, srv: RestSimServer, tok: str, order: Any) -> Any:
    hdr = {**UA, "Authorization": f"Bearer {tok}"}
    async with http.post(f"{srv.base_url}/accounts/{ACCT}/orders", json=order, headers=hdr) as r:
        assert r.status == 201, await r.text()
        return (await r.json())["data"]["order"]


MARKET_BUY = {"order-type": "Market", "time-in-force": "Day",
              "legs": [{"instrument-type": "Equity", "symbol": "AAPL", "quantity": 10,
                        "action": "Buy to Open"}]}  # fmt: skip


# ------------------------------------------------------------------------------ the SDK


async def test_sdk_alert_streamer_receives_the_fill_of_its_market_order(
    srv: RestSimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tt_session, "API_URL", srv.base_url)
    _bid, ask = SimMarket(srv.lifecycle.market.source).quote("AAPL")
    async with (
        asyncio.timeout(15),
        tastytrade.Session("any-secret", "any-refresh") as s,
    ):
        acct = await tastytrade.Account.get(s, ACCT)
        streamer = tastytrade.AlertStreamer(s)
        streamer.base_url = srv.streamer_url  # the only change: where the socket goes
        async with streamer:
            await streamer.subscribe_accounts([acct])
            leg = tt_order.Leg(instrument_type=tt_order.InstrumentType.EQUITY, symbol="AAPL",
                               action=tt_order.OrderAction.BUY_TO_OPEN, quantity=10)  # fmt: skip
            order = tt_order.MarketOrder(time_in_force=tt_order.OrderTimeInForce.DAY, legs=[leg])
            placed = await acct.place_order(s, order, dry_run=False)
            async for o in streamer.listen(tt_order.PlacedOrder):
                if o.id == placed.order.id and o.status == tt_order.OrderStatus.FILLED:
                    break
            async for p in streamer.listen(tastytrade.account.CurrentPosition):
                if p.symbol == "AAPL":
                    break
            async for b in streamer.listen(tastytrade.account.AccountBalance):  # noqa: B007
                break
        for q in streamer._queues.values():  # the SDK never closes its memory streams
            q.send_stream.close()
            q.receive_stream.close()
    (fill,) = o.legs[0].fills
    assert fill.quantity == 10 and fill.fill_price == Decimal(str(ask))
    assert o.legs[0].remaining_quantity == 0
    # seeded AAPL: 100 @ 288.7; +10 @ ask
    assert p.quantity == 110
    avg = (Decimal("288.7") * 100 + Decimal(str(ask)) * 10) / 110
    assert p.average_open_price == avg.quantize(Decimal("0.001"))
    assert b.cash_balance == Decimal("7218.997") - 10 * Decimal(str(ask))
    got = (await _sdk_positions(srv, monkeypatch))["AAPL"]
    assert got == 110


async def _sdk_positions(srv: RestSimServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(tt_session, "API_URL", srv.base_url)
    async with tastytrade.Session("any-secret", "any-refresh") as s:
        acct = await tastytrade.Account.get(s, ACCT)
        return {p.symbol: p.quantity for p in await acct.get_positions(s)}


# ------------------------------------------------------------------------------ raw shapes


async def test_connect_and_heartbeat_acks_by_request_id(
    raw: tuple[Raw, aiohttp.ClientSession],
) -> None:
    c, _ = raw
    rid = await c.send("heartbeat")  # before connect: "not implemented"
    err = await c.recv()
    assert err["status"] == "error" and err["request-id"] == rid
    assert err["message"] == "not implemented"
    rid = await c.send("quote-alerts-subscribe")
    err = await c.recv()
    want_err = _example("connect_error.ws_in")
    assert set(want_err) <= set(err) and err["message"] == "connect-not-completed"

    rid = await c.send("connect", [ACCT, "NOPE"])
    ack = await c.recv()
    want = _example("connect_ack.ws_in")
    assert set(want) | {"request-id"} == set(ack)
    assert ack["status"] == "ok" and ack["action"] == "connect" and ack["request-id"] == rid
    assert ack["value"] == [ACCT]  # unknown accounts are left out
    sid = ack["web-socket-session-id"]
    assert isinstance(sid, str) and len(sid) == 8

    rid = await c.send("heartbeat")
    hb = await c.recv()
    want_hb = _example("heartbeat_ack.ws_in")
    assert set(hb) == set(want_hb) and hb["request-id"] == rid
    assert hb["web-socket-session-id"] == sid and hb["action"] == "heartbeat"
    for action in ("public-watchlists-subscribe", "quote-alerts-subscribe"):
        rid = await c.send(action)
        assert (await c.recv()) == {"status": "ok", "action": action,
                                    "web-socket-session-id": sid, "request-id": rid}  # fmt: skip


async def test_connect_accepts_a_bare_account_string(
    raw: tuple[Raw, aiohttp.ClientSession],
) -> None:
    c, _ = raw
    await c.send("connect", ACCT)
    assert (await c.recv())["value"] == [ACCT]


async def test_notifications_are_full_objects(
    srv: RestSimServer, raw: tuple[Raw, aiohttp.ClientSession]
) -> None:
    c, http = raw
    await c.send("connect", [ACCT])
    await c.recv()
    placed = await _place(http, srv, c.token, MARKET_BUY)
    assert placed["status"] == "Filled"  # a market order fills before the response
    msgs = [await c.recv() for _ in range(4)]
    assert [m["type"] for m in msgs] == ["Order", "Order", "CurrentPosition", "AccountBalance"]
    for m in msgs:
        assert set(m) == {"type", "data", "timestamp"} and isinstance(m["timestamp"], int)
    live, filled, pos, bal = (m["data"] for m in msgs)
    assert live["status"] == "Live" and filled["status"] == "Filled"
    want_order = _example("order_notification.ws_in")["data"]
    missing = set(want_order) - set(filled) - {"user-id", "username", "in-flight-at"}
    assert not missing
    assert set(want_order["legs"][0]["fills"][0]) == set(filled["legs"][0]["fills"][0])
    want_pos = _example("current_position_notification.ws_in.derived")["data"]
    assert set(want_pos) <= set(pos)
    want_bal = _example("account_balance_notification.ws_in.derived")["data"]
    assert set(want_bal) <= set(bal)
    assert filled == placed


async def test_batched_results(srv: RestSimServer, raw: tuple[Raw, aiohttp.ClientSession]) -> None:
    c, http = raw
    srv.hub.batch = True
    await c.send("connect", [ACCT])
    await c.recv()
    await _place(http, srv, c.token, MARKET_BUY)
    first = await c.recv()
    assert first["type"] == "Order"  # a change of one object: not batched
    batch = await c.recv()
    assert set(batch) == {"results"}
    assert [m["type"] for m in batch["results"]] == ["Order", "CurrentPosition", "AccountBalance"]


async def test_other_accounts_get_nothing(
    srv: RestSimServer, raw: tuple[Raw, aiohttp.ClientSession]
) -> None:
    c, http = raw
    await c.send("connect", ["5WT00001"])
    await c.recv()
    await _place(http, srv, c.token, MARKET_BUY)
    with pytest.raises(asyncio.TimeoutError):
        await c.ws.receive(timeout=0.3)
    assert len(srv.hub.published) == 4


# ------------------------------------------------------------------------------ auth and faults


async def test_invalid_token_is_rejected(raw: tuple[Raw, aiohttp.ClientSession]) -> None:
    c, _ = raw
    rid = await c.send("connect", [ACCT], token="sim-at-forged")
    err = await c.recv()
    assert err["status"] == "error" and err["message"] == "invalid-auth-token"
    assert err["request-id"] == rid


async def test_fault_reject_auth_closes(
    srv: RestSimServer, raw: tuple[Raw, aiohttp.ClientSession]
) -> None:
    c, _ = raw
    srv.hub.set_faults(StreamFaults(reject_auth=True, reject_auth_close=True))
    await c.send("connect", [ACCT])
    assert (await c.recv())["message"] == "invalid-auth-token"
    m = await c.ws.receive(timeout=5)
    assert m.type == aiohttp.WSMsgType.CLOSE and m.data == 1008


async def test_fault_stall_keeps_the_socket_silent(
    srv: RestSimServer, raw: tuple[Raw, aiohttp.ClientSession]
) -> None:
    c, http = raw
    await c.send("connect", [ACCT])
    await c.recv()
    srv.hub.set_faults(StreamFaults(stall=True))
    await c.send("heartbeat")
    await _place(http, srv, c.token, MARKET_BUY)
    with pytest.raises(asyncio.TimeoutError):
        await c.ws.receive(timeout=0.3)
    assert not c.ws.closed and srv.hub.connections[0].notifications == 4


@pytest.mark.parametrize("code", [1011, None])
async def test_fault_close_after_notifications(
    srv: RestSimServer, raw: tuple[Raw, aiohttp.ClientSession], code: int | None
) -> None:
    c, http = raw
    srv.hub.set_faults(StreamFaults(close_after_notifications=2, close_code=code))
    await c.send("connect", [ACCT])
    await c.recv()
    await _place(http, srv, c.token, MARKET_BUY)
    assert (await c.recv())["type"] == "Order"
    assert (await c.recv())["type"] == "Order"
    m = await c.ws.receive(timeout=5)
    if code is None:
        assert m.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    else:
        assert m.type == aiohttp.WSMsgType.CLOSE and m.data == code


async def test_faults_over_http_and_drop(
    srv: RestSimServer, raw: tuple[Raw, aiohttp.ClientSession]
) -> None:
    c, http = raw
    await c.send("connect", [ACCT])
    await c.recv()
    url = srv.base_url + "/_sim/account-stream/faults"
    async with http.post(url, json={"reject_auth": True}) as r:
        assert r.status == 201 and (await r.json())["reject_auth"] is True
    await c.send("heartbeat")
    assert (await c.recv())["message"] == "invalid-auth-token"
    async with http.post(url, json={"nope": 1}) as r:
        assert r.status == 400
    async with http.delete(url) as r:
        assert (await r.json())["reject_auth"] is False
    await c.send("heartbeat")
    assert (await c.recv())["status"] == "ok"
    async with http.post(srv.base_url + "/_sim/account-stream/drop", json={"code": 1012}) as r:
        assert (await r.json()) == {"dropped": 1}
    m = await c.ws.receive(timeout=5)
    assert m.type == aiohttp.WSMsgType.CLOSE and m.data == 1012


async def test_every_notification_parses_as_the_sdks_models(
    srv: RestSimServer, raw: tuple[Raw, aiohttp.ClientSession]
) -> None:
    """The SDK's AlertStreamer dies on a notification its pydantic models reject: every kind
    the lifecycle publishes (live, partial, filled, cancelled, expired orders, complex orders,
    positions long/short/flat, balances) must parse."""
    from tastytrade.streamer import MAP_ALERTS

    c, http = raw
    srv.state.partial_fill_above = 4
    await c.send("connect", [ACCT])
    await c.recv()
    hdr = {**UA, "Authorization": f"Bearer {c.token}"}
    bid, ask = srv.lifecycle.market.quote("AAPL")
    await _place(http, srv, c.token, {**MARKET_BUY, "legs": [{**MARKET_BUY["legs"][0],
                                                               "quantity": 10}]})  # fmt: skip
    sell = {"order-type": "Market", "time-in-force": "Day",
            "legs": [{"instrument-type": "Equity", "symbol": "AAPL", "quantity": 300,
                      "action": "Sell to Close"}]}  # fmt: skip
    await _place(http, srv, c.token, sell)  # partial fills through zero into a short
    for _ in range(80):
        await srv.lifecycle.tick()
    leg = {"instrument-type": "Equity", "symbol": "AAPL", "quantity": 1}
    otoco = {
        "type": "OTOCO",
        "trigger-order": {"order-type": "Limit", "time-in-force": "Day", "price": str(ask + 1),
                          "price-effect": "Debit", "legs": [{**leg, "action": "Buy to Open"}]},
        "orders": [
            {"order-type": "Limit", "time-in-force": "GTC", "price": str(bid + 90),
             "price-effect": "Credit", "legs": [{**leg, "action": "Sell to Close"}]},
            {"order-type": "Stop", "time-in-force": "GTC", "stop-trigger": str(bid - 90),
             "legs": [{**leg, "action": "Sell to Close"}]},
        ],
    }  # fmt: skip
    url = f"{srv.base_url}/accounts/{ACCT}/complex-orders"
    async with http.post(url, json=otoco, headers=hdr) as r:
        cid = (await r.json())["data"]["complex-order"]["id"]
    async with http.delete(f"{url}/{cid}", headers=hdr) as r:
        assert r.status == 200
    day = {"order-type": "Limit", "time-in-force": "Day", "price": str(ask - 90),
           "price-effect": "Debit", "legs": [{**leg, "action": "Buy to Open"}]}  # fmt: skip
    await _place(http, srv, c.token, day)
    srv.lifecycle.market.source.clock.advance(2 * 86_400_000)  # type: ignore[attr-defined]
    await srv.lifecycle.tick()
    seen: dict[str, set[str]] = {}
    for _, m in srv.hub.published:
        MAP_ALERTS[m["type"]](**m["data"])
        d = m["data"]
        seen.setdefault(m["type"], set()).add(d.get("status") or d.get("quantity-direction", ""))
    assert seen["Order"] >= {"Live", "Filled", "Cancelled", "Expired", "Contingent"}
    assert seen["CurrentPosition"] >= {"Long", "Short"}
    assert "ComplexOrder" in seen and "AccountBalance" in seen


async def test_through_ttfast_sim(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ttfast sim`` (``serve_sim``): the SDK, pointed at its REST URL and account streamer,
    places a market order and receives the fill (that both servers share one market is
    test_sim_lifecycle's ``test_rest_fills_at_the_dxlink_servers_prices``)."""
    from ttfast.sim.cli import serve_sim

    urls: list[str] = []
    ready, stop = asyncio.Event(), asyncio.Event()

    def on_ready(dx_url: str, rest_url: str) -> None:
        urls.extend([dx_url, rest_url])
        ready.set()

    task = asyncio.create_task(serve_sim("127.0.0.1", 0, 0, seed=9, ready=on_ready, stop=stop))
    try:
        async with asyncio.timeout(15):
            await ready.wait()
            monkeypatch.setattr(tt_session, "API_URL", urls[1])
            async with tastytrade.Session("any-secret", "any-refresh") as s:
                acct = await tastytrade.Account.get(s, ACCT)
                streamer = tastytrade.AlertStreamer(s)
                streamer.base_url = "ws" + urls[1][4:] + "/account-streamer"
                async with streamer:
                    await streamer.subscribe_accounts([acct])
                    leg = tt_order.Leg(instrument_type=tt_order.InstrumentType.EQUITY,
                                       symbol="SPY", action=tt_order.OrderAction.BUY_TO_OPEN,
                                       quantity=3)  # fmt: skip
                    order = tt_order.MarketOrder(
                        time_in_force=tt_order.OrderTimeInForce.DAY, legs=[leg]
                    )
                    placed = await acct.place_order(s, order, dry_run=False)
                    async for o in streamer.listen(tt_order.PlacedOrder):
                        if o.id == placed.order.id and o.status == tt_order.OrderStatus.FILLED:
                            break
                for q in streamer._queues.values():
                    q.send_stream.close()
                    q.receive_stream.close()
    finally:
        stop.set()
        await task
    (fill,) = o.legs[0].fills
    assert fill.quantity == 3 and fill.fill_price > 0
