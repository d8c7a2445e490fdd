"""The local REST server assembled: the route table, :func:`create_rest_app` (an aiohttp
application over a :class:`~ttfast.sim.rest.state.SimState`, with its account streamer and order
lifecycle) and :class:`RestSimServer`, which owns a state and serves it on a port.

The market the orders fill against is a :class:`~ttfast.sim.pricing.MarketSource`: pass the
running :class:`~ttfast.sim.DxLinkServer` (``ttfast sim`` does) so REST marks and fills use the
same seed, clock and prices as the dxLink stream; without one a standalone market (seed 0, the
wall clock) is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ttfast.sim.pricing import MarketSource, SimMarket, StandaloneMarket
from ttfast.sim.rest import accounts, instruments, market_data, orders
from ttfast.sim.rest.account_stream import (
    STREAM_PATH,
    AccountStreamHub,
    StreamFaults,
    faults_from_json,
    faults_to_json,
)
from ttfast.sim.rest.auth import auth_middleware, oauth_token, token_valid, validate_session
from ttfast.sim.rest.faults import add_fault, clear_faults, fault_middleware, sim_state
from ttfast.sim.rest.lifecycle import (
    LIFECYCLE_KEY,
    OrderLifecycle,
    future_streamer_map,
    listed_future_options,
)
from ttfast.sim.rest.state import STATE_KEY, Fault, FaultKind, SimState
from ttfast.sim.rest.wire import Handler, error, json_body

__all__ = ["ROUTES", "RestSimServer", "create_rest_app"]

log = logging.getLogger("ttfast.sim.rest")

_A = "/accounts/{account}"
_EVENTS = "/market-metrics/historic-corporate-events"
#: Every endpoint as ``(method, path, handler)``, registered in this order.
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("POST", "/oauth/token", oauth_token),
    ("POST", "/sessions/validate", validate_session),
    ("GET", "/customers/me", accounts.customer),
    ("GET", "/customers/me/accounts", accounts.list_accounts),
    ("GET", "/customers/me/accounts/{account}", accounts.get_account),
    ("GET", _A + "/balances", accounts.balances),
    ("GET", _A + "/balances/{currency}", accounts.balances),
    ("GET", _A + "/positions", accounts.positions),
    ("GET", _A + "/transactions", accounts.transactions),
    ("GET", _A + "/transactions/total-fees", accounts.total_fees),
    ("GET", _A + "/trading-status", accounts.trading_status),
    ("GET", _A + "/balance-snapshots", accounts.balance_snapshots),
    ("GET", _A + "/net-liq/history", accounts.net_liq_history),
    ("GET", "/margin/accounts/{account}/requirements", accounts.margin_requirements),
    ("POST", _A + "/orders", orders.place),
    ("POST", _A + "/orders/dry-run", orders.place),
    ("GET", _A + "/orders", orders.search_orders),
    ("GET", _A + "/orders/live", orders.live_orders),
    ("GET", _A + "/orders/{order_id}", orders.get_order),
    ("PUT", _A + "/orders/{order_id}", orders.replace_order),
    ("DELETE", _A + "/orders/{order_id}", orders.delete_order),
    ("POST", _A + "/complex-orders", orders.place_complex),
    ("GET", _A + "/complex-orders", orders.complex_history),
    ("POST", _A + "/complex-orders/dry-run", orders.place_complex),
    ("GET", _A + "/complex-orders/live", orders.live_complex),
    ("GET", _A + "/complex-orders/{order_id}", orders.get_complex),
    ("DELETE", _A + "/complex-orders/{order_id}", orders.delete_complex),
    ("GET", "/instruments/equities", instruments.equities),
    ("GET", "/instruments/equities/active", instruments.active_equities),
    ("GET", "/instruments/equities/{symbol}", instruments.equity),
    ("GET", "/instruments/equity-options/{symbol}", instruments.equity_option),
    ("GET", "/instruments/futures", instruments.futures),
    ("GET", "/instruments/futures/{symbol}", instruments.future),
    ("GET", "/instruments/future-options/{symbol}", instruments.future_option),
    ("GET", "/instruments/cryptocurrencies", instruments.cryptos),
    ("GET", "/instruments/cryptocurrencies/{symbol}", instruments.crypto),
    ("GET", "/instruments/quantity-decimal-precisions", instruments.quantity_precisions),
    ("GET", "/option-chains/{symbol}/nested", instruments.nested_chain),
    ("GET", "/option-chains/{symbol}", instruments.flat_chain),
    (
        "GET",
        "/futures-option-chains/{symbol}/nested",
        instruments.future_option_chain_nested_handler,
    ),
    ("GET", "/futures-option-chains/{symbol}", instruments.future_option_chain),
    ("GET", "/market-metrics", instruments.market_metrics),
    ("GET", _EVENTS + "/dividends/{symbol}", market_data.dividends),
    ("GET", _EVENTS + "/earnings-reports/{symbol}", market_data.earnings),
    ("GET", "/market-data/by-type", market_data.by_type),
    ("GET", "/market-data/{instrument_type}/{symbol:.+}", market_data.market_data),
    ("GET", "/margin-requirements-public-configuration", market_data.public_configuration),
    ("GET", "/symbols/search/{prefix}", instruments.symbol_search),
    ("GET", "/api-quote-tokens", instruments.quote_token),
    ("GET", "/_sim/state", sim_state),
    ("POST", "/_sim/faults", add_fault),
    ("DELETE", "/_sim/faults", clear_faults),
)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The router's plain-text 404/405 answered like the API: a JSON error envelope."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status not in (404, 405):
            raise
        if exc.status == 404:
            return error(404, "not_found", f"No route for {request.method} {request.path}")
        resp = error(405, "method_not_allowed", f"{request.method} is not allowed here")
        allow = exc.headers.get("Allow")
        if allow:
            resp.headers["Allow"] = allow
        return resp


HUB_KEY = web.AppKey("ttfast_sim_account_stream", AccountStreamHub)


async def _stream(request: web.Request) -> web.StreamResponse:
    return await request.app[HUB_KEY].handle(request)


async def _set_stream_faults(request: web.Request) -> web.Response:
    try:
        f = faults_from_json(await json_body(request))
    except TypeError as exc:
        return error(400, "invalid_fault", str(exc))
    request.app[HUB_KEY].set_faults(f)
    return web.json_response(faults_to_json(f), status=201)


async def _clear_stream_faults(request: web.Request) -> web.Response:
    f = StreamFaults()
    request.app[HUB_KEY].set_faults(f)
    return web.json_response(faults_to_json(f))


async def _drop_stream(request: web.Request) -> web.Response:
    body = await json_body(request) if request.can_read_body else {}
    code = body.get("code", 1011) if isinstance(body, dict) else 1011
    n = await request.app[HUB_KEY].drop_connections(code)
    return web.json_response({"dropped": n})


async def _tick(request: web.Request) -> web.Response:
    await request.app[LIFECYCLE_KEY].tick()
    return web.json_response({"fills": request.app[LIFECYCLE_KEY].fills})


_SIM_ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", STREAM_PATH, _stream),
    ("POST", "/_sim/account-stream/faults", _set_stream_faults),
    ("DELETE", "/_sim/account-stream/faults", _clear_stream_faults),
    ("POST", "/_sim/account-stream/drop", _drop_stream),
    ("POST", "/_sim/tick", _tick),
)


def create_rest_app(
    dxlink_url: str = "ws://127.0.0.1:0/realtime",
    *,
    state: SimState | None = None,
    token_ttl: float = 900.0,
    latency: float = 0.0,
    faults: list[Fault] | None = None,
    credentials: tuple[str, str] | None = None,
    market: MarketSource | None = None,
    tick_interval: float | None = 0.1,
    stream_faults: StreamFaults | None = None,
    stream_idle_timeout: float = 60.0,
) -> web.Application:
    """The aiohttp application. ``state`` (or the other keywords to build one) holds the data;
    orders fill against ``market``; ``tick_interval`` (seconds, ``None`` = never: tests call
    ``/_sim/tick`` or the lifecycle's ``tick()``) paces limit/stop/partial fills and expiry;
    ``stream_faults`` / ``stream_idle_timeout`` configure the account streamer."""
    st = state or SimState(
        token_ttl=token_ttl, credentials=credentials, dxlink_url=dxlink_url, latency=latency
    )
    if faults:
        st.faults.extend(faults)
    if market is None:
        from ttfast.sim.dxlink_server import SimClock

        market = StandaloneMarket(seed=0, clock=SimClock())
    hub = AccountStreamHub(
        lambda tok: token_valid(st, tok),
        lambda: st.account_numbers,
        faults=stream_faults,
        idle_timeout=stream_idle_timeout,
    )
    listed = getattr(market, "listed_options", None)
    if listed is not None:  # the dxLink side prices the listed future options like this side
        listed.update(listed_future_options())
    lifecycle = OrderLifecycle(st, SimMarket(market, future_streamer_map()), hub,
                               interval=tick_interval or 0.1)  # fmt: skip
    app = web.Application(middlewares=[json_errors, fault_middleware, auth_middleware])
    app[STATE_KEY] = st
    app[HUB_KEY] = hub
    app[LIFECYCLE_KEY] = lifecycle
    r = app.router
    for method, path, h in ROUTES + _SIM_ROUTES:
        r.add_route(method, path, h)

    async def background(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(lifecycle.run()) if tick_interval is not None else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await hub.close_all()

    app.cleanup_ctx.append(background)
    return app


class RestSimServer:
    """Owns a :class:`SimState` and serves it; ``await start()`` returns the base URL."""

    def __init__(
        self,
        dxlink_url: str = "ws://127.0.0.1:0/realtime",
        *,
        token_ttl: float = 900.0,
        latency: float = 0.0,
        credentials: tuple[str, str] | None = None,
        account_numbers: tuple[str, ...] = ("5WT00000", "5WT00001"),
        market: MarketSource | None = None,
        tick_interval: float | None = 0.1,
        stream_faults: StreamFaults | None = None,
        stream_idle_timeout: float = 60.0,
    ) -> None:
        self.state = SimState(
            account_numbers=account_numbers,
            token_ttl=token_ttl,
            credentials=credentials,
            dxlink_url=dxlink_url,
            latency=latency,
        )
        self.app = create_rest_app(
            dxlink_url,
            state=self.state,
            market=market,
            tick_interval=tick_interval,
            stream_faults=stream_faults,
            stream_idle_timeout=stream_idle_timeout,
        )
        #: the account streamer (its connections, ``publish``, ``set_faults``, ``batch``)
        self.hub = self.app[HUB_KEY]
        #: fills, triggers and expiry (``await lifecycle.tick()`` with a manual clock)
        self.lifecycle = self.app[LIFECYCLE_KEY]
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    @property
    def streamer_url(self) -> str:
        """The account streamer's ``ws://`` URL (``""`` until started)."""
        if not self.base_url:
            return ""
        return "ws" + self.base_url[len("http") :] + STREAM_PATH

    def add_fault(self, kind: FaultKind, **kw: Any) -> Fault:
        """Add a :class:`Fault` (keywords as its fields); returns it (``count`` is live)."""
        f = Fault(kind=kind, **kw)
        self.state.faults.append(f)
        return f

    def clear_faults(self) -> None:
        self.state.faults.clear()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(
            self.app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        sock = server.sockets[0]  # type: ignore[attr-defined]
        h, p = sock.getsockname()[:2]
        self.base_url = f"http://{h}:{p}"
        log.info("REST sim listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> RestSimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
