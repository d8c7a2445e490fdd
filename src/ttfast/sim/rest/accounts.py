"""Customer and account endpoints of the local REST server: ``/customers/me``, the account list,
balances, positions, paginated transactions, total fees and trading status.

:func:`account_of` validates the ``{account}`` path segment for every ``/accounts/...`` handler
(orders included).
"""

from __future__ import annotations

from aiohttp import web

from ttfast.sim.rest import wire
from ttfast.sim.rest.fixtures import (
    CUSTOMER,
    seed_account,
    seed_trading_status,
)
from ttfast.sim.rest.lifecycle import lifecycle_of, money
from ttfast.sim.rest.state import state_of

__all__ = [
    "account_of",
    "balances",
    "customer",
    "get_account",
    "list_accounts",
    "positions",
    "total_fees",
    "trading_status",
    "transactions",
]


def account_of(request: web.Request) -> str:
    """The ``{account}`` of the path; 404 ``record_not_found`` unless the state has it."""
    n = request.match_info["account"]
    if n not in state_of(request).account_numbers:
        wire.not_found(f"Account {n} not found")
    return n


async def customer(request: web.Request) -> web.Response:
    return wire.ok(request, CUSTOMER)


async def list_accounts(request: web.Request) -> web.Response:
    st = state_of(request)
    return wire.items(
        request,
        [
            {"account": seed_account(n, f"sim {i}"), "authority-level": "owner"}
            for i, n in enumerate(st.account_numbers)
        ],
    )


async def get_account(request: web.Request) -> web.Response:
    n = account_of(request)
    return wire.ok(request, seed_account(n, "sim"))


async def balances(request: web.Request) -> web.Response:
    n = account_of(request)
    cur = request.match_info.get("currency", "USD")
    if cur != "USD":
        return wire.error(404, "record_not_found", f"no {cur} balance")
    return wire.ok(request, state_of(request).balances[n])


async def positions(request: web.Request) -> web.Response:
    n = account_of(request)
    q = request.query
    pos = list(state_of(request).positions[n].values())
    unders = q.getall("underlying-symbol[]", [])
    if unders:
        pos = [p for p in pos if p["underlying-symbol"] in unders]
    if "symbol" in q:
        pos = [p for p in pos if p["symbol"] == q["symbol"]]
    if "instrument-type" in q:
        pos = [p for p in pos if p["instrument-type"] == q["instrument-type"]]
    if q.get("include-closed-positions", "false").lower() != "true":
        pos = [p for p in pos if p.get("quantity-direction") != "Zero"]
    marks = q.get("include-marks", "false").lower() == "true"
    lc = lifecycle_of(request)
    out = []
    for p in pos:
        p = {k: v for k, v in p.items() if k not in ("mark", "mark-price")}
        if marks:  # marked now, from the simulated market
            p["mark"] = p["mark-price"] = money(lc.mark(p["symbol"], p.get("instrument-type")))
        out.append(p)
    return wire.items(request, out)


async def transactions(request: web.Request) -> web.Response:
    n = account_of(request)
    return wire.paged(request, state_of(request).transactions[n], 250)


async def total_fees(request: web.Request) -> web.Response:
    account_of(request)
    return wire.ok(request, {"total-fees": "0.0", "total-fees-effect": "None"})


async def trading_status(request: web.Request) -> web.Response:
    return wire.ok(request, seed_trading_status(account_of(request)))
