"""Orders on the local REST server: place (and dry-run), read, search, replace and cancel single
orders; complex orders (OCO, OTO, OTOCO, PAIRS) placed, read and cancelled as a group.

Server-side preflight checks mirror the documented 422 failures. Placed orders go ``Live``
(complex members ``Contingent`` under a trigger); cancel moves them to ``Cancelled``. Fills,
triggers and expiry are :mod:`ttfast.sim.rest.lifecycle`'s: every handler that stores or changes
an order reports it there (market orders fill before the response is written).
``SimState.orders_accepted`` counts every stored order.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from ttfast.sim.rest import wire
from ttfast.sim.rest.accounts import account_of
from ttfast.sim.rest.lifecycle import BUYS, TERMINAL, lifecycle_of, members
from ttfast.sim.rest.state import SimState, state_of

__all__ = [
    "complex_history",
    "delete_complex",
    "delete_order",
    "get_complex",
    "get_order",
    "live_complex",
    "live_orders",
    "place",
    "place_complex",
    "replace_order",
    "search_orders",
]

log = logging.getLogger("ttfast.sim.rest")

_SELLS = {"Sell to Open", "Sell to Close", "Sell"}


def _preflight(o: Any) -> list[dict[str, str]]:
    """Server-side checks mirroring the documented 422 preflight failures."""
    if not isinstance(o, dict):
        return [{"code": "invalid_order", "message": "order must be an object"}]
    errs: list[dict[str, str]] = []
    legs = o.get("legs")
    if not isinstance(legs, list) or not legs or not all(isinstance(x, dict) for x in legs):
        return [{"code": "invalid_legs", "message": "An order needs at least one leg."}]
    ot, tif = o.get("order-type"), o.get("time-in-force")
    if not ot or not tif:
        errs.append({"code": "invalid_order", "message": "order-type and time-in-force required"})
    actions = {x.get("action") for x in legs}
    effect = o.get("price-effect") or o.get("value-effect")
    if effect == "Credit" and actions <= BUYS:
        errs.append({"code": "cant_buy_for_credit", "message": "You cannot buy for a credit."})
    if effect == "Debit" and actions <= _SELLS:
        errs.append({"code": "cant_sell_for_debit", "message": "You cannot sell for a debit."})
    if ot == "Market" and tif in ("GTC", "GTD"):
        errs.append(
            {
                "code": "gtc_market_orders_not_supported",
                "message": "GTC/GTD Market orders are not supported.",
            }
        )
    if ot in ("Limit", "Stop Limit") and wire.dec(o.get("price")) is None:
        errs.append({"code": "price_required", "message": "A price is required."})
    if ot in ("Stop", "Stop Limit") and wire.dec(o.get("stop-trigger")) is None:
        errs.append({"code": "stop_trigger_required", "message": "A stop trigger is required."})
    if o.get("price") is not None and o.get("value") is not None:
        errs.append({"code": "price_and_value", "message": "Price and value are exclusive."})
    if tif == "GTD" and not o.get("gtc-date"):
        errs.append({"code": "gtc_date_required", "message": "GTD orders need a gtc-date."})
    return errs


def _underlying(leg: dict[str, Any]) -> tuple[str, str]:
    sym = str(leg.get("symbol", ""))
    it = str(leg.get("instrument-type", "Equity"))
    if it == "Equity Option":
        return sym[:6].strip() or sym, "Equity"
    if it == "Future Option":
        return sym.split(" ")[0].lstrip("."), "Future"
    return sym, it


def _num(x: Any) -> Any:
    d = wire.dec(x)
    if d is None:
        return None
    return int(d) if d == d.to_integral_value() else str(d)


def _market_now(request: web.Request) -> datetime:
    """The market clock's now: every timestamp of an order (received, live, cancelled, filled,
    expired) is on it, so they stay in order with a manual or a sped-up clock."""
    return wire.at_ms(lifecycle_of(request).market.now_ms())


def _make_order(
    st: SimState,
    account: str,
    o: dict[str, Any],
    dry_run: bool,
    now: datetime,
    status: str = "Live",
) -> dict[str, Any]:
    legs = []
    for x in o["legs"]:
        q = _num(x.get("quantity"))
        legs.append(
            {
                "instrument-type": x.get("instrument-type"),
                "symbol": x.get("symbol"),
                "quantity": q,
                "remaining-quantity": q,
                "action": x.get("action"),
                "fills": [],
            }
        )
    und, und_type = _underlying(o["legs"][0])
    sizes = [leg["quantity"] for leg in legs if isinstance(leg["quantity"], int)]
    order: dict[str, Any] = {
        "account-number": account,
        "time-in-force": o.get("time-in-force"),
        "order-type": o.get("order-type"),
        "size": min(sizes) if sizes else 1,
        "underlying-symbol": und,
        "underlying-instrument-type": und_type,
        "status": "Received" if dry_run else status,
        "cancellable": True,
        "editable": True,
        "edited": False,
        "received-at": wire.iso(now),
        "updated-at": 0 if dry_run else wire.epoch_ms(now),
        "legs": legs,
    }
    if not dry_run:
        order["id"] = st.next_id()
        order["live-at"] = wire.iso(now)
    for k in ("price", "stop-trigger", "value"):
        if o.get(k) is not None:
            d = wire.dec(o[k])
            order[k] = str(d) if d is not None else o[k]
    for k in (
        "price-effect",
        "value-effect",
        "gtc-date",
        "external-identifier",
        "source",
        "partition-key",
    ):
        if o.get(k) is not None:
            order[k] = o[k]
    return order


def _bpe(o: dict[str, Any]) -> dict[str, Any]:
    price = wire.dec(o.get("price") or o.get("value") or o.get("stop-trigger")) or Decimal(0)
    mult = 100 if any(leg.get("instrument-type") == "Equity Option" for leg in o["legs"]) else 1
    size = Decimal(o.get("size") or 1)
    impact = (price * size * mult).quantize(Decimal("0.001"))
    eff = o.get("price-effect") or o.get("value-effect") or "Debit"
    cur = Decimal("45657.048")
    new = cur - impact if eff == "Debit" else cur
    return {
        "change-in-margin-requirement": str(impact),
        "change-in-margin-requirement-effect": eff,
        "change-in-buying-power": str(impact),
        "change-in-buying-power-effect": eff,
        "current-buying-power": str(cur),
        "current-buying-power-effect": "Credit",
        "new-buying-power": str(new),
        "new-buying-power-effect": "Credit",
        "isolated-order-margin-requirement": str(impact),
        "isolated-order-margin-requirement-effect": eff,
        "is-spread": len(o["legs"]) > 1,
        "impact": str(impact),
        "effect": eff,
    }


_FEES = {
    "regulatory-fees": "0.02",
    "regulatory-fees-effect": "Debit",
    "clearing-fees": "0.08",
    "clearing-fees-effect": "Debit",
    "commission": "1.0",
    "commission-effect": "Debit",
    "proprietary-index-option-fees": "0.0",
    "proprietary-index-option-fees-effect": "None",
    "total-fees": "1.1",
    "total-fees-effect": "Debit",
}


def _preflight_error(errs: list[dict[str, str]]) -> web.Response:
    return wire.error(422, "preflight_check_failure", "One or more preflight checks failed", errs)


async def place(request: web.Request) -> web.Response:
    st = state_of(request)
    n = account_of(request)
    dry = request.path.endswith("/dry-run")
    o = await wire.json_body(request)
    errs = _preflight(o)
    if errs:
        return _preflight_error(errs)
    order = _make_order(st, n, o, dry, _market_now(request))
    if not dry:
        st.orders[order["id"]] = order
        st.orders_accepted += 1
        log.info("sim order %d accepted (%s)", order["id"], order.get("external-identifier"))
        await lifecycle_of(request).placed([order])
    data = {
        "order": order,
        "warnings": [],
        "buying-power-effect": _bpe(order),
        "fee-calculation": _FEES,
    }
    return wire.ok(request, data, status=200 if dry else 201)


def _lookup(
    request: web.Request, n: str, table: dict[int, dict[str, Any]], what: str
) -> dict[str, Any]:
    """The ``{order_id}`` of the path in ``table`` if it belongs to account ``n``; else 404."""
    try:
        oid = int(request.match_info["order_id"])
    except ValueError:
        oid = -1
    o = table.get(oid)
    if o is None or o["account-number"] != n:
        wire.not_found(f"{what} not found")
    return o


def _find(request: web.Request, n: str) -> dict[str, Any]:
    return _lookup(request, n, state_of(request).orders, "Order")


def _cancel(o: dict[str, Any], now: datetime) -> None:
    o.update(
        {
            "status": "Cancelled",
            "cancellable": False,
            "editable": False,
            "cancelled-at": wire.iso(now),
            "terminal-at": wire.iso(now),
            "updated-at": wire.epoch_ms(now),
        }
    )


async def get_order(request: web.Request) -> web.Response:
    return wire.ok(request, _find(request, account_of(request)))


async def delete_order(request: web.Request) -> web.Response:
    n = account_of(request)
    o = _find(request, n)
    if o["status"] in TERMINAL or o.get("complex-order-id"):
        code = "order_not_cancellable" if o["status"] in TERMINAL else "cancel_complex_order"
        return wire.error(422, code, f"order {o['id']} cannot be cancelled here ({o['status']})")
    _cancel(o, _market_now(request))
    await lifecycle_of(request).changed([o])
    return wire.ok(request, o)


async def replace_order(request: web.Request) -> web.Response:
    st = state_of(request)
    n = account_of(request)
    old = _find(request, n)
    if old["status"] in TERMINAL:
        return wire.error(422, "order_not_editable", f"order {old['id']} is {old['status']}")
    body = await wire.json_body(request)
    if not isinstance(body, dict):
        return wire.error(400, "invalid_order", "body must be an object")
    merged = {k: old.get(k) for k in ("time-in-force", "order-type", "gtc-date")}
    merged["legs"] = [
        {k: leg[k] for k in ("instrument-type", "symbol", "quantity", "action")}
        for leg in old["legs"]
    ]
    merged.update({k: v for k, v in body.items() if k != "legs"})
    errs = _preflight(merged)
    if errs:
        return _preflight_error(errs)
    now = _market_now(request)
    new = _make_order(st, n, merged, dry_run=False, now=now)
    new["replaces-order-id"] = old["id"]
    _cancel(old, now)
    old["replacing-order-id"] = new["id"]
    st.orders[new["id"]] = new
    st.orders_accepted += 1
    await lifecycle_of(request).changed([old])
    await lifecycle_of(request).placed([new])
    return wire.ok(request, new)


async def live_orders(request: web.Request) -> web.Response:
    n = account_of(request)
    return wire.items(
        request, [o for o in state_of(request).orders.values() if o["account-number"] == n]
    )


async def search_orders(request: web.Request) -> web.Response:
    n = account_of(request)
    q = request.query
    statuses = set(q.getall("status[]", []))
    und = q.get("underlying-symbol")
    items = [
        o
        for o in state_of(request).orders.values()
        if o["account-number"] == n
        and (not statuses or o["status"] in statuses)
        and (not und or o["underlying-symbol"] == und)
    ]
    items.sort(key=lambda o: o["id"], reverse=q.get("sort", "Desc") != "Asc")
    return wire.paged(request, items, 10)


async def place_complex(request: web.Request) -> web.Response:
    st = state_of(request)
    n = account_of(request)
    dry = request.path.endswith("/dry-run")
    c = await wire.json_body(request)
    if not isinstance(c, dict) or c.get("type") not in ("OCO", "OTO", "OTOCO", "PAIRS"):
        return wire.error(400, "invalid_complex_order", "type must be OCO, OTO, OTOCO or PAIRS")
    orders = c.get("orders")
    trig = c.get("trigger-order")
    if not isinstance(orders, list) or not orders:
        return wire.error(400, "invalid_complex_order", "orders[] required")
    if (c["type"] in ("OTO", "OTOCO")) != (trig is not None):
        return wire.error(400, "invalid_complex_order", f"{c['type']}: trigger-order mismatch")
    errs = [e for o in ([trig] if trig else []) + orders for e in _preflight(o)]
    if errs:
        return _preflight_error(errs)
    contingent = "Contingent" if trig else "Live"
    cid = None if dry else st.next_id()
    now = _market_now(request)
    made_trig = _make_order(st, n, trig, dry, now) if trig else None
    made = [_make_order(st, n, o, dry, now, status=contingent) for o in orders]
    cx: dict[str, Any] = {
        "account-number": n,
        "type": c["type"],
        "orders": made,
        "related-orders": [],
    }
    if made_trig is not None:
        cx["trigger-order"] = made_trig
    if cid is not None:
        cx["id"] = cid
        for o in members(cx):
            o["complex-order-id"] = cid
            st.orders[o["id"]] = o
            st.orders_accepted += 1
        st.complex_orders[cid] = cx
        await lifecycle_of(request).complex_placed(cx)
    data = {
        "complex-order": cx,
        "warnings": [],
        "buying-power-effect": _bpe(made_trig or made[0]),
        "fee-calculation": _FEES,
    }
    return wire.ok(request, data, status=200 if dry else 201)


def _find_complex(request: web.Request, n: str) -> dict[str, Any]:
    return _lookup(request, n, state_of(request).complex_orders, "Complex order")


async def get_complex(request: web.Request) -> web.Response:
    return wire.ok(request, _find_complex(request, account_of(request)))


async def live_complex(request: web.Request) -> web.Response:
    n = account_of(request)
    return wire.items(
        request, [c for c in state_of(request).complex_orders.values() if c["account-number"] == n]
    )


async def delete_complex(request: web.Request) -> web.Response:
    cx = _find_complex(request, account_of(request))
    changed = [o for o in members(cx) if o["status"] not in TERMINAL]
    now = _market_now(request)
    for o in changed:
        _cancel(o, now)
    cx["terminal-at"] = wire.iso(now)
    await lifecycle_of(request).changed(changed, cx)
    return wire.ok(request, cx)


async def complex_history(request: web.Request) -> web.Response:
    """``GET /accounts/{n}/complex-orders``: every complex order, newest first, paginated."""
    n = account_of(request)
    rows = [c for c in state_of(request).complex_orders.values() if c["account-number"] == n]
    rows.sort(key=lambda c: c["id"], reverse=request.query.get("sort", "Desc") != "Asc")
    return wire.paged(request, rows, 10)
