"""Instruments and market data on the local REST server: equities, equity options, futures,
future options, cryptocurrencies, nested option chains, market metrics, symbol search and
``/api-quote-tokens`` (which hands out the local dxLink URL).

Read-only: the tables come from :mod:`ttfast.sim.rest.fixtures` (option chains and options from
the state, built when it was created).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from ttfast.sim.rest import wire
from ttfast.sim.rest.fixtures import (
    CRYPTOS,
    EQUITIES,
    FUTURE_OPTIONS,
    FUTURES,
    QUANTITY_PRECISIONS,
    future_option_chain_nested,
)
from ttfast.sim.rest.state import state_of

__all__ = [
    "active_equities",
    "crypto",
    "cryptos",
    "equities",
    "equity",
    "equity_option",
    "flat_chain",
    "future",
    "future_option",
    "future_option_chain",
    "future_option_chain_nested_handler",
    "futures",
    "market_metrics",
    "nested_chain",
    "quantity_precisions",
    "quote_token",
    "symbol_search",
]


def _lookup(table: dict[str, dict[str, Any]], key: str, what: str) -> dict[str, Any]:
    v = table.get(key)
    if v is None:
        wire.not_found(f"{what} {key} not found")
    return v


async def equities(request: web.Request) -> web.Response:
    syms = request.query.getall("symbol[]", []) or request.query.getall("symbol", [])
    items = [EQUITIES[s] for s in syms if s in EQUITIES] if syms else list(EQUITIES.values())
    return wire.items(request, items)


async def equity(request: web.Request) -> web.Response:
    return wire.ok(request, _lookup(EQUITIES, request.match_info["symbol"], "Equity"))


async def equity_option(request: web.Request) -> web.Response:
    sym = request.match_info["symbol"]
    opts = state_of(request).options
    if sym not in opts:  # accept the unpadded OCC form too
        root, _, rest = sym.partition(" ")
        sym = f"{root:<6}{rest.strip()}"
    return wire.ok(request, _lookup(opts, sym, "Equity option"))


async def futures(request: web.Request) -> web.Response:
    syms = request.query.getall("symbol[]", [])
    codes = request.query.getall("product-code[]", [])
    items = [
        f
        for f in FUTURES.values()
        if (not syms or f["symbol"] in syms or f["symbol"].lstrip("/") in syms)
        and (not codes or f["product-code"] in codes)
    ]
    return wire.items(request, items)


async def future(request: web.Request) -> web.Response:
    symbol = "/" + request.match_info["symbol"].lstrip("/")
    return wire.ok(request, _lookup(FUTURES, symbol, "Future"))


async def future_option(request: web.Request) -> web.Response:
    return wire.ok(request, _lookup(FUTURE_OPTIONS, request.match_info["symbol"], "Future option"))


async def cryptos(request: web.Request) -> web.Response:
    syms = request.query.getall("symbol[]", [])
    return wire.items(request, [c for c in CRYPTOS.values() if not syms or c["symbol"] in syms])


async def crypto(request: web.Request) -> web.Response:
    return wire.ok(request, _lookup(CRYPTOS, request.match_info["symbol"], "Cryptocurrency"))


async def nested_chain(request: web.Request) -> web.Response:
    chain = _lookup(state_of(request).chains, request.match_info["symbol"], "Option chain")
    return wire.items(request, [chain])


async def market_metrics(request: web.Request) -> web.Response:
    syms = [s for s in request.query.get("symbols", "").split(",") if s]
    items = []
    for i, s in enumerate(syms):
        items.append(
            {
                "symbol": s,
                "implied-volatility-index": f"0.{21 + i}",
                "implied-volatility-index-rank": f"0.{30 + i}",
                "implied-volatility-percentile": "0.5",
                "liquidity-rating": 4,
                "beta": "1.05",
                "market-cap": 2.5e12,
                "updated-at": wire.iso(wire.now()),
            }
        )
    return wire.items(request, items)


async def symbol_search(request: web.Request) -> web.Response:
    prefix = request.match_info["prefix"].upper()
    return wire.items(
        request,
        [
            {"symbol": e["symbol"], "description": e["description"]}
            for e in EQUITIES.values()
            if e["symbol"].startswith(prefix)
        ],
    )


async def quote_token(request: web.Request) -> web.Response:
    st = state_of(request)
    return wire.ok(
        request,
        {
            "token": st.quote_token,
            "dxlink-url": st.dxlink_url,
            "level": "api",
            "expires-at": wire.iso(wire.now() + timedelta(hours=24)),
        },
    )


async def active_equities(request: web.Request) -> web.Response:
    """``/instruments/equities/active``: every active equity, paginated (1000 per page)."""
    rows = [e for e in EQUITIES.values() if e["active"]]
    if "lendability" in request.query:
        rows = [e for e in rows if e["lendability"] == request.query["lendability"]]
    return wire.paged(request, rows, 1000)


async def flat_chain(request: web.Request) -> web.Response:
    """``/option-chains/{symbol}``: every option instrument of the underlying."""
    root = request.match_info["symbol"]
    opts = [o for o in state_of(request).options.values() if o["underlying-symbol"] == root]
    if not opts:
        wire.not_found(f"Option chain {root} not found")
    return wire.items(request, opts)


def _future_code(request: web.Request) -> str:
    return request.match_info["symbol"].lstrip("/")


async def future_option_chain(request: web.Request) -> web.Response:
    """``/futures-option-chains/{product code}``: every future option of the product."""
    code = _future_code(request)
    opts = [o for o in FUTURE_OPTIONS.values() if o["product-code"] == code]
    if not opts:
        wire.not_found(f"Futures option chain {code} not found")
    return wire.items(request, opts)


async def future_option_chain_nested_handler(request: web.Request) -> web.Response:
    code = _future_code(request)
    chain = future_option_chain_nested(code)
    if chain is None:
        wire.not_found(f"Futures option chain {code} not found")
    return wire.ok(request, chain)


async def quantity_precisions(request: web.Request) -> web.Response:
    return wire.items(request, QUANTITY_PRECISIONS)
