"""Customer and account endpoints of the local REST server: ``/customers/me``, the account list,
balances, positions, paginated transactions, total fees and trading status.

:func:`account_of` validates the ``{account}`` path segment for every ``/accounts/...`` handler
(orders included).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

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
    "balance_snapshots",
    "balances",
    "customer",
    "get_account",
    "list_accounts",
    "margin_requirements",
    "net_liq_history",
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
            p["mark"] = p["mark-price"] = money(lc.mark(p["symbol"]))
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


_SNAPSHOT_KEYS = (
    "account-number", "currency", "cash-balance", "long-equity-value", "short-equity-value",
    "long-derivative-value", "short-derivative-value", "long-futures-value",
    "short-futures-value", "long-futures-derivative-value", "short-futures-derivative-value",
    "long-margineable-value", "short-margineable-value", "margin-equity", "equity-buying-power",
    "derivative-buying-power", "day-trading-buying-power", "futures-margin-requirement",
    "available-trading-funds", "maintenance-requirement", "maintenance-call-value",
    "reg-t-call-value", "day-trading-call-value", "day-equity-call-value",
    "net-liquidating-value", "cash-available-to-withdraw", "day-trade-excess", "pending-cash",
    "pending-cash-effect", "long-cryptocurrency-value", "short-cryptocurrency-value",
)  # fmt: skip


def _day(s: str | None) -> date | None:
    try:
        return date.fromisoformat(s) if s else None
    except ValueError:
        return None


async def balance_snapshots(request: web.Request) -> web.Response:
    """One snapshot per day (``start-date``..``end-date``, default the last 5 days, or just
    ``snapshot-date``): today's balance, net liq drifting back in time by a seeded walk."""
    n = account_of(request)
    q = request.query
    bal = state_of(request).balances[n]
    today = datetime.now(UTC).date()
    snap = _day(q.get("snapshot-date"))
    end = snap or _day(q.get("end-date")) or today
    start = snap or _day(q.get("start-date")) or end - timedelta(days=4)
    tod = q.get("time-of-day", "EOD")
    rows: list[dict[str, Any]] = []
    d = end
    while d >= start and len(rows) < 3660:
        drift = Decimal(1) + Decimal((d - today).days) / Decimal(1000)
        row = {k: bal[k] for k in _SNAPSHOT_KEYS if k in bal}
        for k in ("net-liquidating-value", "margin-equity"):
            row[k] = money(Decimal(bal[k]) * drift)
        row["snapshot-date"] = d.isoformat()
        row["time-of-day"] = tod
        rows.append(row)
        d -= timedelta(days=1)
    return wire.paged(request, rows, 10)


_TIME_BACK = {"1d": 1, "1m": 30, "3m": 91, "6m": 182, "1y": 365, "all": 730}


async def net_liq_history(request: web.Request) -> web.Response:
    """Daily OHLC of net liq (``time-back`` or ``start-time``), ending at today's value."""
    n = account_of(request)
    q = request.query
    nlv = Decimal(state_of(request).balances[n]["net-liquidating-value"])
    today = datetime.now(UTC).date()
    if "start-time" in q:
        st = _day(q["start-time"][:10])
        if st is None:
            return wire.error(400, "invalid_params", "start-time must be a date-time")
        days = max(1, (today - st).days)
    elif q.get("time-back") in _TIME_BACK:
        days = _TIME_BACK[q["time-back"]]
    else:
        return wire.error(400, "invalid_params", "time-back or start-time is required")
    rows = []
    for i in range(days, -1, -1):
        d = today - timedelta(days=i)
        base = nlv * (Decimal(1) - Decimal(i) / Decimal(2000))
        o, c = base, base * Decimal("1.001")
        hi, lo = max(o, c) * Decimal("1.002"), min(o, c) * Decimal("0.998")
        z = "0.0"
        rows.append({
            "open": money(o), "high": money(hi), "low": money(lo), "close": money(c),
            "pending-cash-open": z, "pending-cash-high": z, "pending-cash-low": z,
            "pending-cash-close": z, "total-open": money(o), "total-high": money(hi),
            "total-low": money(lo), "total-close": money(c),
            "time": f"{d.isoformat()} 20:00:00+00",
        })  # fmt: skip
    return wire.items(request, rows)


async def margin_requirements(request: web.Request) -> web.Response:
    """The margin report: the balance's totals and one group per position underlying."""
    n = account_of(request)
    st = state_of(request)
    bal = st.balances[n]
    lc = lifecycle_of(request)
    groups: dict[str, Decimal] = {}
    for p in st.positions[n].values():
        qty = Decimal(str(p["quantity"]))
        if qty == 0:
            continue
        v = qty * lc.mark(p["symbol"]) * Decimal(p["multiplier"])
        rate = Decimal("0.25") if p.get("quantity-direction") == "Long" else Decimal("0.30")
        groups[p["underlying-symbol"]] = groups.get(p["underlying-symbol"], Decimal(0)) + v * rate
    excess = bal.get("maintenance-excess", "0.0")
    report = {
        "account-number": n,
        "description": "Total",
        "margin-calculation-type": "Reg T",
        "option-level": "No Restrictions",
        "margin-requirement": bal["maintenance-requirement"],
        "margin-requirement-effect": "Debit",
        "maintenance-requirement": bal["maintenance-requirement"],
        "maintenance-requirement-effect": "Debit",
        "margin-equity": bal["margin-equity"],
        "margin-equity-effect": "Credit",
        "option-buying-power": bal["derivative-buying-power"],
        "option-buying-power-effect": "Credit",
        "reg-t-margin-requirement": bal.get("reg-t-margin-requirement", "0.0"),
        "reg-t-margin-requirement-effect": "Debit",
        "reg-t-option-buying-power": bal["derivative-buying-power"],
        "reg-t-option-buying-power-effect": "Credit",
        "maintenance-excess": excess,
        "maintenance-excess-effect": "Credit",
        "last-state-timestamp": int(datetime.now(UTC).timestamp() * 1000),
        "groups": [
            {
                "description": und,
                "code": und,
                "underlying-symbol": und,
                "underlying-type": "Equity",
                "expected-price-range-up-percent": "0.15",
                "expected-price-range-down-percent": "-0.15",
                "buying-power": money(req),
                "buying-power-effect": "Debit",
                "margin-calculation-type": "Reg T",
                "margin-requirement": money(req),
                "margin-requirement-effect": "Debit",
                "maintenance-requirement": money(req),
                "maintenance-requirement-effect": "Debit",
            }
            for und, req in sorted(groups.items())
        ],
    }
    return wire.ok(request, report)
