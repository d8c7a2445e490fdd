"""TastytradeClient + OAuthSession against the local REST server (real sockets, loopback).

Covers the token lifecycle (expiry, single-flight under concurrency, refresh failures, 401),
order safety (no resend after an ambiguous failure: the server counts orders), GET retries,
pagination, instruments, quote tokens and secret hygiene (reprs + every captured log line).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ttfast.errors import (
    ApiConnectionError,
    ApiError,
    AuthError,
    OrderOutcomeUnknown,
    RateLimitedError,
    ResponseDecodeError,
)
from ttfast.rest import TastytradeClient
from ttfast.rest import orders as o
from ttfast.rest.session import AccessToken, FileTokenStore, OAuthSession
from ttfast.sim import RestSimServer
from ttfast.sim.pricing import ManualClock, StandaloneMarket

ACCT = "5WT00000"
SECRET = "cs-SUPERSECRET-4b1d"
REFRESH = "rt-SUPERSECRET-9f2e"
BAD_REFRESH = "rt-WRONG-7c3a"
DXLINK = "ws://127.0.0.1:9/realtime"
MARKET = StandaloneMarket(seed=0, clock=ManualClock(1_750_000_123_456))


@pytest.fixture
async def server() -> AsyncIterator[RestSimServer]:
    # market on a manual clock: AAPL trades at 304.22/304.24, nothing moves by itself
    srv = RestSimServer(DXLINK, credentials=(SECRET, REFRESH), market=MARKET, tick_interval=None)
    await srv.start()
    yield srv
    await srv.stop()


def make_client(srv: RestSimServer, **kw: Any) -> TastytradeClient:
    skw = {
        k: kw.pop(k)
        for k in list(kw)
        if k in ("refresh_margin", "refresh_attempts", "token_store", "request_timeout")
    }
    skw.setdefault("refresh_backoff", 0.01)
    sess = OAuthSession(SECRET, REFRESH, base_url=srv.base_url, **skw)
    kw.setdefault("retry_backoff", 0.01)
    return TastytradeClient(sess, **kw)


@pytest.fixture
async def client(server: RestSimServer) -> AsyncIterator[TastytradeClient]:
    c = make_client(server)
    async with c:
        yield c


def buy_aapl(**kw: Any) -> o.OrderRequest:
    return o.limit_order(o.leg("AAPL", 1, "Buy to Open"), -100.5, **kw)


# --- session / tokens ---------------------------------------------------------------------------


async def test_headers_and_token_flow() -> None:
    seen: list[dict[str, str]] = []

    @aiohttp.web.middleware
    async def spy(request: aiohttp.web.Request, handler: Any) -> Any:
        seen.append({"path": request.path, **dict(request.headers)})
        return await handler(request)

    srv = RestSimServer(DXLINK, credentials=(SECRET, REFRESH))
    srv.app.middlewares.append(spy)  # innermost: sees requests that passed the UA/auth checks
    await srv.start()
    try:
        async with make_client(srv) as c:
            await c.get_accounts()
    finally:
        await srv.stop()
    tok_req, get_req = seen[0], seen[1]
    assert tok_req["path"] == "/oauth/token" and "Authorization" not in tok_req
    assert tok_req["User-Agent"].startswith("ttfast/")
    assert get_req["Authorization"].startswith("Bearer sim-at-")
    assert get_req["User-Agent"].startswith("ttfast/")
    assert get_req["Accept-Version"] == "20251101"


async def test_sandbox_sends_no_accept_version_and_from_env(
    server: RestSimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASTYTRADE_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("TASTYTRADE_REFRESH_TOKEN", REFRESH)
    monkeypatch.setenv("TASTYTRADE_ENV", "sandbox")
    monkeypatch.setenv("TASTYTRADE_BASE_URL", server.base_url)
    s = OAuthSession.from_env()
    assert s.env == "sandbox" and s.accept_version is None and s.base_url == server.base_url
    async with TastytradeClient(s) as c:
        assert (await c.get_trading_status(ACCT)).options_level == "No Restrictions"
    monkeypatch.delenv("TASTYTRADE_REFRESH_TOKEN")
    with pytest.raises(AuthError, match="TASTYTRADE_REFRESH_TOKEN"):
        OAuthSession.from_env()


async def test_server_enforces_expiry_and_user_agent(server: RestSimServer) -> None:
    server.state.token_ttl = 1.0
    async with aiohttp.ClientSession() as h:
        r = await h.post(
            server.base_url + "/oauth/token",
            json={"grant_type": "refresh_token", "refresh_token": REFRESH, "client_secret": SECRET},
        )
        tok = (await r.json())["access_token"]
        hdr = {"Authorization": f"Bearer {tok}"}
        r = await h.get(server.base_url + "/customers/me", headers=hdr)
        assert r.status == 200
        await asyncio.sleep(1.05)
        r = await h.get(server.base_url + "/customers/me", headers=hdr)
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "token_invalid"
        r = await h.get(server.base_url + "/customers/me", headers={**hdr, "User-Agent": "nothing"})
        assert r.status == 401


async def test_concurrent_calls_at_expiry_refresh_exactly_once(server: RestSimServer) -> None:
    server.state.token_ttl = 1.0
    async with make_client(server, refresh_margin=0.6) as c:
        await c.get_trading_status(ACCT)
        assert server.state.token_grants == 1
        await asyncio.sleep(0.5)  # now inside the refresh margin
        server.state.token_ttl = 60.0  # the next token stays fresh however slow the machine is
        res = await asyncio.gather(*(c.get_trading_status(ACCT) for _ in range(100)))
        assert len(res) == 100 and all(r.account_number == ACCT for r in res)
        assert server.state.token_grants == 2
        assert c.session.refresh_count == 2


async def test_401_on_get_refreshes_once_and_retries(server: RestSimServer) -> None:
    async with make_client(server) as c:
        c.session.set_token(AccessToken("revoked-token", time.time() + 3600))
        assert (await c.get_balances(ACCT)).cash_balance == Decimal("7218.997")
        assert server.state.token_grants == 1
        # a persistent 401 is not looped on: one refresh, then AuthError
        server.add_fault(
            "status",
            status=401,
            count=2,
            path="/balances",
            body={
                "error": {
                    "code": "token_invalid",
                    "message": "This token is invalid or has expired",
                }
            },
        )
        with pytest.raises(AuthError) as ei:
            await c.get_balances(ACCT)
        assert ei.value.code == "token_invalid"
        assert server.state.token_grants == 2


async def test_refresh_retries_transient_failures(
    server: RestSimServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "ttfast")
    server.add_fault("status", status=503, count=2, path="^/oauth/token$")
    async with make_client(server) as c:
        await c.get_customer()
    assert server.state.token_grants == 1
    assert server.state.requests["POST /oauth/token"] == 3
    assert sum("token refresh attempt" in r.message for r in caplog.records) == 2


async def test_refresh_gives_up_after_bounded_attempts(server: RestSimServer) -> None:
    server.add_fault("drop", count=-1, path="^/oauth/token$")
    async with make_client(server, refresh_attempts=3) as c:
        with pytest.raises(AuthError) as ei:
            await c.get_customer()
    assert ei.value.code == "connection_error"
    assert server.state.requests["POST /oauth/token"] == 3


async def test_refresh_definitive_rejection_is_not_retried(server: RestSimServer) -> None:
    sess = OAuthSession(SECRET, "wrong-refresh-token", base_url=server.base_url)
    async with TastytradeClient(sess) as c:
        with pytest.raises(AuthError) as ei:
            await c.get_customer()
    assert ei.value.status == 401 and ei.value.code == "invalid_grant"
    assert server.state.requests["POST /oauth/token"] == 1


async def test_refresh_error_code_shape(server: RestSimServer) -> None:
    server.add_fault(
        "status",
        status=400,
        path="^/oauth/token$",
        body={
            "error_code": "invalid_request",
            "error_description": "User is not a TastyTrade customer",
        },
    )
    async with make_client(server) as c:
        with pytest.raises(AuthError) as ei:
            await c.get_customer()
    assert ei.value.code == "invalid_request"
    assert "not a TastyTrade customer" in str(ei.value)


async def test_refresh_malformed_token_body_retried(server: RestSimServer) -> None:
    server.add_fault("status", status=200, path="^/oauth/token$", body={"token": "nope"})
    async with make_client(server) as c:
        await c.get_customer()
    assert server.state.requests["POST /oauth/token"] == 2


async def test_token_store_shares_token_between_sessions(
    server: RestSimServer, tmp_path: Path
) -> None:
    store = FileTokenStore(tmp_path / "tok.json")
    async with make_client(server, token_store=store) as c1:
        await c1.get_customer()
    assert (tmp_path / "tok.json").stat().st_mode & 0o777 == 0o600
    async with make_client(server, token_store=store) as c2:  # "another process"
        await c2.get_customer()
        assert c2.session.refresh_count == 0
    assert server.state.token_grants == 1
    # a stored token the server rejects is not reloaded from the store after the 401
    await store.save(AccessToken("revoked-elsewhere", time.time() + 3600))
    async with make_client(server, token_store=store) as c3:
        await c3.get_customer()
        assert c3.session.refresh_count == 1
    assert server.state.token_grants == 2


# --- secrets ------------------------------------------------------------------------------------


async def test_no_secret_in_logs_or_reprs(
    server: RestSimServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.state.token_ttl = 0.5
    texts: list[str] = []
    async with make_client(server, refresh_margin=0.2) as c:
        await c.get_accounts()
        await asyncio.sleep(0.35)
        await c.get_accounts()  # refresh
        c.session.set_token(AccessToken("revoked", time.time() + 100))
        await c.get_customer()  # 401 → refresh
        server.add_fault("status", status=503, path="^/oauth/token$")
        await c.session.refresh(force=True)
        server.add_fault("drop", method="POST", path="/orders$", after_handler=True)
        with pytest.raises(OrderOutcomeUnknown) as ei:
            await c.place_order(ACCT, buy_aapl())
        texts += [str(ei.value), repr(ei.value)]
        _url, qtok = await c.quote_token_provider()()
        qt = await c.get_quote_token()
        texts += [repr(c), repr(c.session), repr(c.session.token), repr(qt), str(qt)]
    bad = OAuthSession(SECRET, BAD_REFRESH, base_url=server.base_url)
    async with bad:
        with pytest.raises(AuthError) as ae:
            await bad.access_token()
    texts += [str(ae.value), repr(ae.value), repr(bad)]
    secrets = [SECRET, REFRESH, BAD_REFRESH, qtok, *server.state.tokens]
    assert len(server.state.tokens) >= 3
    haystack = "\n".join(texts + [r.getMessage() for r in caplog.records] + [caplog.text])
    for s in secrets:
        assert s not in haystack, f"secret leaked: {s[:6]}..."
    assert any(r.name.startswith("ttfast") for r in caplog.records)


# --- orders -------------------------------------------------------------------------------------


async def test_order_lifecycle(client: TastytradeClient, server: RestSimServer) -> None:
    dry = await client.dry_run_order(ACCT, buy_aapl())
    assert dry.order is not None and dry.order.id is None and dry.order.status == "Received"
    assert dry.buying_power_effect is not None and dry.buying_power_effect.effect == "Debit"
    assert server.state.orders_accepted == 0

    placed = await client.place_order(ACCT, buy_aapl(external_identifier="my-tag-1"))
    order = placed.order
    assert order is not None and order.id is not None
    assert order.external_identifier == "my-tag-1" and order.status == "Live"
    assert order.price == Decimal("100.5") and order.price_effect == "Debit"
    assert isinstance(order.updated_at, int)  # epoch ms, as the API does for orders
    auto = await client.place_order(ACCT, buy_aapl())
    assert auto.order is not None and (auto.order.external_identifier or "").startswith("ttf-")

    live = await client.get_live_orders(ACCT)
    assert {x.id for x in live} == {order.id, auto.order.id}
    assert (await client.get_order(ACCT, order.id)).status == "Live"

    new = await client.replace_order(ACCT, order.id, buy_aapl(external_identifier="my-tag-2"))
    assert new.id != order.id and new.price == Decimal("100.5")
    assert new.replaces_order_id == order.id
    assert (await client.get_order(ACCT, order.id)).status == "Cancelled"

    cancelled = await client.cancel_order(ACCT, new.id)  # type: ignore[arg-type]
    assert cancelled is not None and cancelled.status == "Cancelled"
    found = await client.find_order_by_external_id(ACCT, "my-tag-2")
    assert found is not None and found.id == new.id and found.status == "Cancelled"
    assert await client.find_order_by_external_id(ACCT, "never-sent") is None
    hist = await client.search_orders(ACCT, per_page=1)
    assert len(hist) == 3  # three pages of one
    assert [x.id for x in await client.search_orders(ACCT, status=["Live"])] == [auto.order.id]
    with pytest.raises(ApiError) as ei:
        await client.cancel_order(ACCT, new.id)  # type: ignore[arg-type]
    assert ei.value.status == 422
    with pytest.raises(ApiError) as ei:
        await client.get_order(ACCT, 999)
    assert ei.value.status == 404 and ei.value.code == "record_not_found"


async def test_client_validation_happens_before_sending(
    client: TastytradeClient, server: RestSimServer
) -> None:
    bad = o.market_order(o.leg("AAPL", 1, "Buy to Open"), time_in_force="GTC", validate=False)
    with pytest.raises(ValueError, match="gtc_market"):
        await client.place_order(ACCT, bad)
    assert server.state.requests["POST /accounts/5WT00000/orders"] == 0


async def test_preflight_422_exposes_nested_codes(
    client: TastytradeClient, server: RestSimServer
) -> None:
    server.add_fault(
        "status",
        status=422,
        path="/orders$",
        body={
            "error": {
                "code": "preflight_check_failure",
                "message": "One or more preflight checks failed",
                "errors": [
                    {"code": "margin_check_failed", "message": "Not enough buying power"},
                    {"code": "closing_only", "message": "Closing only"},
                ],
            }
        },
    )
    with pytest.raises(ApiError) as ei:
        await client.place_order(ACCT, buy_aapl())
    assert not isinstance(ei.value, OrderOutcomeUnknown)
    assert ei.value.code == "preflight_check_failure"
    assert ei.value.codes == ("margin_check_failed", "closing_only")
    assert ei.value.path == f"/accounts/{ACCT}/orders"


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        ({"kind": "drop"}, "ServerDisconnectedError"),
        ({"kind": "status", "status": 500}, "HTTP 500"),
        ({"kind": "status", "status": 502}, "HTTP 502"),
        ({"kind": "hang", "seconds": 10.0}, "Timeout"),
        ({"kind": "malformed"}, "malformed"),
    ],
)
async def test_ambiguous_order_failure_is_never_resent(
    server: RestSimServer, fault: dict[str, Any], cause: str
) -> None:
    server.add_fault(method="POST", path="/orders$", after_handler=True, **fault)
    async with make_client(server, order_timeout=1.0, max_retries=5) as c:
        await c.get_accounts()  # warm the pool: the POST goes over a reused keep-alive socket
        with pytest.raises(OrderOutcomeUnknown) as ei:
            await c.place_order(ACCT, buy_aapl())
        err = ei.value
        assert cause in err.cause and err.external_identifier
        assert server.state.requests[f"POST /accounts/{ACCT}/orders"] == 1
        assert server.state.orders_accepted == 1  # the server did take it: exactly once
        found = await c.find_order_by_external_id(ACCT, err.external_identifier)
        assert found is not None and found.status == "Live"


async def test_401_on_order_is_ambiguous_and_not_resent(server: RestSimServer) -> None:
    async with make_client(server) as c:
        await c.get_accounts()
        c.session.set_token(AccessToken("revoked", time.time() + 3600))
        with pytest.raises(OrderOutcomeUnknown) as ei:
            await c.place_order(ACCT, buy_aapl())
        assert ei.value.status == 401
        assert server.state.requests[f"POST /accounts/{ACCT}/orders"] == 1
        assert server.state.orders_accepted == 0
        # the next call refreshes the token by itself
        assert await c.find_order_by_external_id(ACCT, ei.value.external_identifier or "") is None


async def test_cancel_and_replace_never_resent_on_dropped_connection(
    server: RestSimServer,
) -> None:
    async with make_client(server) as c:
        placed = await c.place_order(ACCT, buy_aapl())
        oid = placed.order.id  # type: ignore[union-attr]
        path = f"/accounts/{ACCT}/orders/{oid}"
        server.add_fault("drop", method="DELETE", path=path, after_handler=True)
        with pytest.raises(OrderOutcomeUnknown):
            await c.cancel_order(ACCT, oid)  # type: ignore[arg-type]
        assert server.state.requests[f"DELETE {path}"] == 1
        assert (await c.get_order(ACCT, oid)).status == "Cancelled"  # type: ignore[arg-type]
        placed = await c.place_order(ACCT, buy_aapl())
        oid = placed.order.id  # type: ignore[union-attr]
        path = f"/accounts/{ACCT}/orders/{oid}"
        server.add_fault("drop", method="PUT", path=path, after_handler=True)
        with pytest.raises(OrderOutcomeUnknown):
            await c.replace_order(ACCT, oid, buy_aapl())  # type: ignore[arg-type]
        assert server.state.requests[f"PUT {path}"] == 1


async def test_connection_refused_means_not_sent() -> None:
    sess = OAuthSession(SECRET, REFRESH, base_url="http://127.0.0.1:9", refresh_attempts=1)
    sess.set_token(AccessToken("t", time.time() + 3600))
    async with TastytradeClient(sess) as c:
        with pytest.raises(ApiConnectionError) as ei:
            await c.place_order(ACCT, buy_aapl())
    assert not isinstance(ei.value, OrderOutcomeUnknown)


async def test_complex_orders(client: TastytradeClient, server: RestSimServer) -> None:
    sell = o.leg("AAPL", 100, "Sell to Close")
    tp = o.limit_order(sell, 198.68, time_in_force="GTC")
    sl = o.stop_order(sell, 143.06, time_in_force="GTC")
    trig = o.limit_order(o.leg("AAPL", 100, "Buy to Open"), -157.97)
    dry = await client.dry_run_complex_order(ACCT, o.otoco(trig, tp, sl))
    assert dry.complex_order is not None and dry.complex_order.id is None
    res = await client.place_complex_order(ACCT, o.otoco(trig, tp, sl))
    cx = res.complex_order
    assert cx is not None and cx.id is not None and cx.type == "OTOCO"
    assert cx.trigger_order is not None and cx.trigger_order.status == "Live"
    assert [x.status for x in cx.orders or []] == ["Contingent", "Contingent"]
    assert all((x.external_identifier or "").startswith("ttf-") for x in cx.orders or [])
    assert server.state.orders_accepted == 3
    assert (await client.get_complex_order(ACCT, cx.id)).type == "OTOCO"
    assert [x.id for x in await client.get_live_complex_orders(ACCT)] == [cx.id]
    # (the OTOCO's take-profit at 198.68 would fill at once as an OCO member: AAPL is at 304)
    tp2 = o.limit_order(sell, 398.68, time_in_force="GTC")
    oco = await client.place_complex_order(ACCT, o.oco(tp2, sl))
    assert [x.status for x in oco.complex_order.orders or []] == ["Live", "Live"]  # type: ignore[union-attr]
    # an ambiguous complex placement is resolvable through its member's external-identifier
    server.add_fault("drop", method="POST", path="/complex-orders$", after_handler=True)
    with pytest.raises(OrderOutcomeUnknown) as ei:
        await client.place_complex_order(ACCT, o.otoco(trig, tp, sl))
    assert server.state.requests[f"POST /accounts/{ACCT}/complex-orders"] == 3
    member = await client.find_order_by_external_id(ACCT, ei.value.external_identifier or "")
    assert member is not None and member.complex_order_id is not None
    done = await client.cancel_complex_order(ACCT, cx.id)
    assert done is not None
    statuses = [x.status for x in [done.trigger_order, *(done.orders or [])] if x]
    assert statuses == ["Cancelled"] * 3


# --- GET retries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 503, "count": 2},
        {"kind": "status", "status": 429, "count": 1},
        {"kind": "malformed", "count": 1},
        {"kind": "drop", "count": 2},
        {"kind": "hang", "seconds": 10.0, "count": 1},
    ],
)
async def test_get_retries_transient_failures(server: RestSimServer, fault: dict[str, Any]) -> None:
    server.add_fault(method="GET", path="/positions$", **fault)
    async with make_client(server, request_timeout=1.0) as c:
        pos = await c.get_positions(ACCT)
    assert [p.symbol for p in pos] == ["AAPL", "SPY   261218C00600000"]
    assert server.state.requests[f"GET /accounts/{ACCT}/positions"] == 1 + fault["count"]


async def test_get_retries_are_bounded(client: TastytradeClient, server: RestSimServer) -> None:
    server.add_fault("status", status=500, count=-1, path="/positions$")
    with pytest.raises(ApiError) as ei:
        await client.get_positions(ACCT)
    assert ei.value.status == 500
    assert server.state.requests[f"GET /accounts/{ACCT}/positions"] == 1 + client.max_retries
    server.clear_faults()
    server.add_fault("status", status=429, count=-1, path="/positions$")
    with pytest.raises(RateLimitedError):
        await client.get_positions(ACCT)
    server.clear_faults()
    server.add_fault("malformed", count=-1, path="/positions$")
    with pytest.raises(ResponseDecodeError):
        await client.get_positions(ACCT)


async def test_4xx_get_not_retried(client: TastytradeClient, server: RestSimServer) -> None:
    with pytest.raises(ApiError) as ei:
        await client.get_equity("NOPE")
    assert ei.value.status == 404
    assert server.state.requests["GET /instruments/equities/NOPE"] == 1


# --- reads ---------------------------------------------------------------------------------------


async def test_account_reads(client: TastytradeClient, server: RestSimServer) -> None:
    accts = await client.get_accounts()
    assert [a.account_number for a in accts] == ["5WT00000", "5WT00001"]
    assert (await client.get_account(ACCT)).margin_or_cash == "Margin"
    assert (await client.get_customer()).first_name == "Sim"
    bal = await client.get_balances(ACCT)
    assert bal.net_liquidating_value == Decimal("32520.734") and bal.raw is not None
    tx = await client.get_transactions(ACCT, per_page=3)
    assert len(tx) == 7 and len({t.id for t in tx}) == 7
    assert server.state.requests[f"GET /accounts/{ACCT}/transactions"] == 3
    assert (await client.get_total_fees(ACCT)).total_fees == Decimal(0)
    assert (await client.get_balances(ACCT, currency=None)).currency == "USD"
    pos = await client.get_positions(ACCT, underlying_symbol=["SPY"])
    assert [p.symbol for p in pos] == ["SPY   261218C00600000"]
    assert pos[0].quantity == 2 and pos[0].multiplier == 100


async def test_instruments(client: TastytradeClient) -> None:
    eqs = await client.get_equities(["AAPL", "SPY"])
    assert [e.symbol for e in eqs] == ["AAPL", "SPY"]
    assert eqs[0].tick_sizes is not None and eqs[0].tick_sizes[0].value == Decimal("0.0001")
    chain = (await client.get_nested_option_chain("SPY"))[0]
    strike = chain.expirations[0].strikes[0]  # type: ignore[index]
    assert strike.call is not None and strike.call.startswith("SPY   ")
    opt = await client.get_equity_option(strike.call)  # spaces → %20
    assert opt.streamer_symbol == strike.call_streamer_symbol
    assert (await client.get_future("/ESZ6")).streamer_symbol == "/ESZ26:XCME"
    assert [f.symbol for f in await client.get_futures(product_codes=["ES"])] == ["/ESZ6"]
    fo = await client.get_future_option("./ESZ6 E4AZ6 261218P6000")
    assert fo.strike_price == Decimal(6000)
    assert (await client.get_cryptocurrency("BTC/USD")).streamer_symbol == "BTC/USD:CXTALP"
    assert len(await client.get_cryptocurrencies()) == 2
    mm = await client.get_market_metrics(["AAPL", "SPY"])
    assert [x.symbol for x in mm] == ["AAPL", "SPY"] and mm[0].liquidity_rating == 4
    assert mm[0].market_cap == Decimal("2500000000000.0")  # a JSON float, exact Decimal
    assert [r.symbol for r in await client.symbol_search("SP")] == ["SPY", "SPX"]


async def test_quote_token_provider_caches(client: TastytradeClient, server: RestSimServer) -> None:
    provider = client.quote_token_provider()
    got = await asyncio.gather(*(provider() for _ in range(10)))
    assert set(got) == {(DXLINK, server.state.quote_token)}
    assert server.state.requests["GET /api-quote-tokens"] == 1
    client._quote_token_expiry = time.time() + 5  # near expiry → refetched
    await provider()
    assert server.state.requests["GET /api-quote-tokens"] == 2


async def test_admin_fault_endpoint(server: RestSimServer) -> None:
    async with aiohttp.ClientSession() as h:
        r = await h.post(
            server.base_url + "/_sim/faults",
            json={"kind": "status", "status": 503, "path": "/positions"},
        )
        assert r.status == 201
        r = await h.get(server.base_url + "/_sim/state")
        st = json.loads(await r.text())
        assert st["faults"][0]["status"] == 503
        await h.delete(server.base_url + "/_sim/faults")
    assert server.state.faults == []


async def test_latency_switch(server: RestSimServer) -> None:
    async with make_client(server) as c:
        await c.get_accounts()
        server.add_fault("latency", seconds=0.3, path="/positions$")
        t0 = time.perf_counter()
        await c.get_positions(ACCT)
        assert time.perf_counter() - t0 >= 0.3
        server.state.latency = 0.2  # global latency
        t0 = time.perf_counter()
        await c.get_positions(ACCT)
        assert time.perf_counter() - t0 >= 0.2
