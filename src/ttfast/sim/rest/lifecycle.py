"""The order lifecycle of the local REST server: orders fill against the simulated market the
local dxLink server streams (same seed, same clock, same prices), and every change updates
positions, balances and transactions and is pushed on the account streamer.

Rules (deterministic: decisions read only the market clock and the stored orders):

* A leg buys at the ask and sells at the bid (:class:`~ttfast.sim.pricing.SimMarket`; options
  at their Black–Scholes theo price +- a half spread). A multi-leg order's net price per unit is
  the ratio-weighted sum (debit positive).
* Market orders fill at once (in the placing request). Limit orders fill when the net price
  crosses (a debit <= the limit, a credit >= the limit); Stop orders trigger when a buy's price
  rises to the stop (a sell's falls to it), then fill as Market; Stop Limit orders then rest as
  a limit.
* Orders of more than ``SimState.partial_fill_above`` units fill in parts: at most that many
  units per market evaluation (one at placement, then one per :meth:`OrderLifecycle.tick`); the
  order stays ``Live`` with ``remaining-quantity`` going down until ``Filled``.
* Cancel and replace are the REST handlers'; they report here to push the change.
* OCO: the first fill of one member cancels the others. OTO/OTOCO: when the trigger order is
  filled its contingent orders go ``Live`` (OTOCO's two then behave as an OCO).
* ``Day`` orders expire at the first session close (21:00 UTC) after they were placed (market
  time), ``GTD`` orders at the close of their ``gtc-date``.
* A fill adds a ``Trade`` transaction, moves the position (average open price on additions,
  realized gain on reductions, ``Zero`` when flat) and recomputes the balance (cash, marked long
  and short values, net liq, a simplified maintenance requirement and buying power).

:meth:`OrderLifecycle.tick` evaluates every working order once; :meth:`OrderLifecycle.run` calls
it periodically inside the server (tests with a manual clock call ``tick`` themselves).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from ttfast.sim import market
from ttfast.sim.pricing import OptionSymbol, SimMarket, parse_option_symbol
from ttfast.sim.rest import wire
from ttfast.sim.rest.account_stream import AccountStreamHub
from ttfast.sim.rest.fixtures import CRYPTOS, FUTURE_OPTIONS, FUTURES
from ttfast.sim.rest.state import SimState

__all__ = [
    "BUYS",
    "LIFECYCLE_KEY",
    "SESSION_CLOSE_UTC_MS",
    "TERMINAL",
    "OrderLifecycle",
    "future_streamer_map",
    "lifecycle_of",
    "listed_future_options",
    "members",
    "money",
    "multiplier",
    "streamer_symbol",
]

log = logging.getLogger("ttfast.sim.rest.lifecycle")

#: the regular session closes at 21:00 UTC (16:00 New York in winter)
SESSION_CLOSE_UTC_MS = 21 * 3_600_000
TERMINAL = frozenset({"Filled", "Cancelled", "Rejected", "Expired", "Removed", "Partially Removed"})
#: leg actions that buy (at the ask); the others sell
BUYS = frozenset({"Buy to Open", "Buy to Close", "Buy"})
_D0 = Decimal(0)


def money(d: Decimal) -> str:
    """The API's money strings: up to 3 decimals, at least one (``100.0``, ``7218.997``)."""
    s = format(d.quantize(Decimal("0.001")), "f").rstrip("0")
    return s + "0" if s.endswith(".") else s


def _qty(d: Decimal) -> int | str:
    return int(d) if d == d.to_integral_value() else format(d.normalize(), "f")


def streamer_symbol(symbol: str) -> str:
    """The dxLink symbol whose path prices a REST symbol (futures and crypto are mapped)."""
    if symbol in FUTURES:
        return str(FUTURES[symbol]["streamer-symbol"])
    if symbol in CRYPTOS:
        return str(CRYPTOS[symbol]["streamer-symbol"])
    return symbol


def multiplier(symbol: str, instrument_type: str | None) -> Decimal:
    if instrument_type == "Equity Option":
        return Decimal(100)
    if instrument_type == "Future" and symbol in FUTURES:
        return Decimal(str(FUTURES[symbol]["notional-multiplier"]))
    if instrument_type == "Future Option":
        return Decimal(50)
    return Decimal(1)


def future_streamer_map() -> dict[str, str]:
    return {k: str(v["streamer-symbol"]) for k, v in FUTURES.items()}


def listed_future_options() -> dict[str, OptionSymbol]:
    """The listed future options by streamer symbol, parsed from their REST symbols (which
    carry the expiry and the future)."""
    fut = future_streamer_map()
    out: dict[str, OptionSymbol] = {}
    for sym, o in FUTURE_OPTIONS.items():
        opt = parse_option_symbol(sym, fut)
        if opt is not None:
            out[str(o["streamer-symbol"])] = opt
    return out


def members(cx: dict[str, Any]) -> list[dict[str, Any]]:
    """A complex order's orders: the trigger order (if any) first."""
    trig = cx.get("trigger-order")
    return ([trig] if trig is not None else []) + list(cx["orders"])


def _copy(x: Any) -> Any:
    return json.loads(json.dumps(x))


class OrderLifecycle:
    """Fills, triggers and expiry of a :class:`SimState`'s orders; pushes every change."""

    def __init__(
        self,
        state: SimState,
        sim_market: SimMarket,
        hub: AccountStreamHub,
        *,
        interval: float = 0.1,
    ) -> None:
        self.state = state
        self.market = sim_market
        self.hub = hub
        self.interval = interval
        #: market time (epoch ms) each order went live
        self.live_since: dict[int, int] = {}
        #: stop orders whose trigger was reached
        self.triggered: set[int] = set()
        self.fills = 0
        self._fill_ids = 0
        self._lock = asyncio.Lock()

    # ---------------------------------------------------------------------------- prices
    def leg_price(self, leg: dict[str, Any]) -> Decimal:
        """What one unit of the leg trades at now (buy: ask, sell: bid)."""
        sym = str(leg.get("symbol"))
        bid, ask = self.market.bid_ask(sym, streamer_symbol(sym))
        return Decimal(str(ask if leg.get("action") in BUYS else bid))

    def mark(self, symbol: str) -> Decimal:
        return Decimal(str(self.market.mark(symbol, streamer_symbol(symbol))))

    def _units(self, o: dict[str, Any]) -> tuple[Decimal, list[Decimal]]:
        """``(remaining units, leg ratios)``: a leg's quantity is its ratio times the units."""
        legs = o["legs"]
        size = Decimal(str(o.get("size") or 1))
        ratios = []
        for leg in legs:
            q = wire.dec(leg.get("quantity"))
            ratios.append((q / size) if q is not None and size else Decimal(1))
        rem0 = wire.dec(legs[0].get("remaining-quantity"))
        if rem0 is None:  # notional order: no quantity, worth "value"
            return Decimal(1), ratios
        return rem0 / ratios[0], ratios

    def _net(self, o: dict[str, Any], ratios: list[Decimal]) -> tuple[Decimal, list[Decimal]]:
        prices = [self.leg_price(leg) for leg in o["legs"]]
        net = _D0
        for leg, r, p in zip(o["legs"], ratios, prices, strict=True):
            net += r * p if leg.get("action") in BUYS else -r * p
        return net, prices

    def _marketable(self, o: dict[str, Any], net: Decimal) -> bool:
        ot = o.get("order-type")
        buying = o["legs"][0].get("action") in BUYS
        if ot in ("Stop", "Stop Limit") and o["id"] not in self.triggered:
            stop = wire.dec(o.get("stop-trigger"))
            px = abs(net)
            if stop is None or not (px >= stop if buying else px <= stop):
                return False
            self.triggered.add(o["id"])
        if ot in ("Market", "Stop", "Notional Market"):
            return True
        limit = wire.dec(o.get("price"))
        if limit is None:
            return False
        eff = o.get("price-effect") or ("Debit" if buying else "Credit")
        return net <= limit if eff == "Debit" else -net >= limit

    # ---------------------------------------------------------------------------- events
    async def placed(self, orders: list[dict[str, Any]]) -> None:
        """Orders were stored: push them, then fill what is marketable at once."""
        now = self.market.now_ms()
        for o in orders:
            if o["status"] == "Live":
                self.live_since[o["id"]] = now
        for o in orders:
            await self._push(o["account-number"], [("Order", o)])
        for o in orders:
            if o["status"] == "Live":
                await self._evaluate(o, now)

    async def changed(self, orders: list[dict[str, Any]], cx: dict[str, Any] | None = None) -> None:
        """Orders changed in a handler (cancel, replace): push them (and their complex)."""
        for o in orders:
            notes: list[tuple[str, dict[str, Any]]] = [("Order", o)]
            await self._push(o["account-number"], notes)
        if cx is not None:
            await self._push(cx["account-number"], [("ComplexOrder", cx)])

    async def complex_placed(self, cx: dict[str, Any]) -> None:
        await self._push(cx["account-number"], [("ComplexOrder", cx)])
        await self.placed(members(cx))

    async def tick(self) -> None:
        """Evaluate every working order once at the market's current time."""
        async with self._lock:
            now = self.market.now_ms()
            for o in list(self.state.orders.values()):
                if o["status"] in TERMINAL or "id" not in o:
                    continue
                if self._expired(o, now):
                    self._terminate(o, "Expired", now)
                    await self._push(o["account-number"], [("Order", o)])
                    continue
                if o["status"] == "Live":
                    await self._evaluate(o, now)

    async def run(self) -> None:
        """Call :meth:`tick` every ``interval`` seconds (until cancelled)."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except Exception:  # a sim bug must not stop the market; logged
                log.exception("sim lifecycle tick failed")

    # ---------------------------------------------------------------------------- internals
    def _expired(self, o: dict[str, Any], now: int) -> bool:
        tif = o.get("time-in-force")
        if tif == "Day":
            since = self.live_since.get(o["id"])
            if since is None:
                self.live_since[o["id"]] = since = now
            day0 = (since // market.DAY_MS) * market.DAY_MS
            close = day0 + SESSION_CLOSE_UTC_MS
            if since >= close:
                close += market.DAY_MS
            return now >= close
        if tif == "GTD" and o.get("gtc-date"):
            try:
                d = date.fromisoformat(str(o["gtc-date"]))
            except ValueError:
                return False
            close = wire.epoch_ms(datetime(d.year, d.month, d.day, tzinfo=UTC))
            return now >= close + SESSION_CLOSE_UTC_MS
        return False

    def _terminate(self, o: dict[str, Any], status: str, now: int) -> None:
        t = wire.at_ms(now)
        o.update({"status": status, "cancellable": False, "editable": False,
                  "terminal-at": wire.iso(t), "updated-at": now})  # fmt: skip

    async def _evaluate(self, o: dict[str, Any], now: int) -> None:
        units, ratios = self._units(o)
        if units <= 0:
            return
        net, prices = self._net(o, ratios)
        if not self._marketable(o, net):
            return
        cap = Decimal(self.state.partial_fill_above)
        chunk = units if units <= cap else cap
        await self._fill(o, chunk, ratios, prices, now)

    async def _fill(
        self,
        o: dict[str, Any],
        units: Decimal,
        ratios: list[Decimal],
        prices: list[Decimal],
        now: int,
    ) -> None:
        acct = o["account-number"]
        t = wire.at_ms(now)
        notes: list[tuple[str, dict[str, Any]]] = []
        for leg, r, p in zip(o["legs"], ratios, prices, strict=True):
            rem = wire.dec(leg.get("remaining-quantity"))
            if rem is None:  # notional: the quantity the value buys
                val = wire.dec(o.get("value")) or _D0
                q = (val / p).quantize(Decimal("0.00001")) if p else _D0
                leg["quantity"] = _qty(q)
                rem = q
            q = min(rem, units * r)
            self._fill_ids += 1
            self.fills += 1
            leg["fills"].append({
                "ext-group-fill-id": str(o["id"]),
                "ext-exec-id": f"SIM{self._fill_ids:08d}",
                "fill-id": f"sim_{o['id']}_{self._fill_ids}",
                "quantity": _qty(q),
                "fill-price": money(p),
                "filled-at": wire.iso(t),
                "destination-venue": "SIM_MARKET",
            })  # fmt: skip
            leg["remaining-quantity"] = _qty(rem - q)
            pos = self._move_position(acct, leg, q, p, t, o.get("underlying-symbol"))
            self._add_transaction(acct, o, leg, q, p, t)
            notes.append(("CurrentPosition", pos))
        o["updated-at"] = now
        done = all(wire.dec(leg.get("remaining-quantity")) == 0 for leg in o["legs"])
        if done:
            self._terminate(o, "Filled", now)
        else:
            o["editable"] = False
        bal = self._recompute_balance(acct, t)
        await self._push(acct, [("Order", o), *notes, ("AccountBalance", bal)])
        await self._after_fill(o, done, now)

    async def _after_fill(self, o: dict[str, Any], done: bool, now: int) -> None:
        cid = o.get("complex-order-id")
        cx = self.state.complex_orders.get(cid) if cid is not None else None
        if cx is None:
            return
        acct = cx["account-number"]
        trig = cx.get("trigger-order")
        if trig is not None and trig is o:
            if not done:
                return
            activated = [m for m in cx["orders"] if m["status"] == "Contingent"]
            for m in activated:
                m["status"] = "Live"
                m["updated-at"] = now
                self.live_since[m["id"]] = now
            await self._push(acct, [("ComplexOrder", cx), *[("Order", m) for m in activated]])
            for m in activated:
                if m["status"] == "Live":
                    await self._evaluate(m, now)
            return
        if cx["type"] in ("OCO", "OTOCO"):
            cancelled = [m for m in cx["orders"] if m is not o and m["status"] not in TERMINAL]
            for m in cancelled:
                self._terminate(m, "Cancelled", now)
                m["cancelled-at"] = m["terminal-at"]
            if cancelled:
                await self._push(acct, [("Order", m) for m in cancelled])
        if all(m["status"] in TERMINAL for m in members(cx)):
            cx["terminal-at"] = wire.iso(wire.at_ms(now))
        await self._push(acct, [("ComplexOrder", cx)])

    def _move_position(
        self, acct: str, leg: dict[str, Any], q: Decimal, p: Decimal, t: datetime,
        underlying: str | None,
    ) -> dict[str, Any]:  # fmt: skip
        sym = str(leg["symbol"])
        it = leg.get("instrument-type") or "Equity"
        book = self.state.positions[acct]
        pos = book.get(sym)
        mult = multiplier(sym, it)
        if pos is None:
            pos = book[sym] = {
                "account-number": acct,
                "symbol": sym,
                "instrument-type": it,
                "underlying-symbol": underlying or sym,
                "quantity": 0,
                "quantity-direction": "Zero",
                "close-price": money(p),
                "average-open-price": "0.0",
                "average-daily-market-close-price": money(p),
                "multiplier": int(mult),
                "cost-effect": "None",
                "is-suppressed": False,
                "is-frozen": False,
                "restricted-quantity": "0.0",
                "realized-day-gain": "0.0",
                "realized-day-gain-effect": "None",
                "realized-today": "0.0",
                "realized-today-effect": "None",
                "created-at": wire.iso(t),
            }
        old = wire.dec(pos["quantity"]) or _D0
        if pos.get("quantity-direction") == "Short":
            old = -old
        avg = wire.dec(pos.get("average-open-price")) or _D0
        delta = q if leg.get("action") in BUYS else -q
        new = old + delta
        realized = wire.dec(pos.get("realized-today")) or _D0
        if pos.get("realized-today-effect") == "Debit":
            realized = -realized
        if old == 0 or (old > 0) == (delta > 0):  # opening or adding
            avg = (avg * abs(old) + p * abs(delta)) / abs(new) if new else _D0
        else:  # reducing (maybe through zero)
            closed = min(abs(delta), abs(old))
            sign = 1 if old > 0 else -1
            realized += (p - avg) * closed * mult * sign
            if abs(delta) > abs(old):
                avg = p
            elif new == 0:
                avg = _D0
        pos["quantity"] = _qty(abs(new))
        pos["quantity-direction"] = "Long" if new > 0 else ("Short" if new < 0 else "Zero")
        pos["cost-effect"] = "Debit" if new > 0 else ("Credit" if new < 0 else "None")
        pos["average-open-price"] = money(avg)
        r_eff = "Credit" if realized > 0 else ("Debit" if realized < 0 else "None")
        for k in ("realized-today", "realized-day-gain"):
            pos[k] = money(abs(realized))
            pos[k + "-effect"] = r_eff
        m = self.mark(sym)
        pos["mark"] = pos["mark-price"] = money(m)
        pos["updated-at"] = wire.iso(t)
        return pos

    def _add_transaction(
        self, acct: str, o: dict[str, Any], leg: dict[str, Any], q: Decimal, p: Decimal,
        t: datetime,
    ) -> None:  # fmt: skip
        sym = str(leg["symbol"])
        it = leg.get("instrument-type") or "Equity"
        value = q * p * multiplier(sym, it)
        eff = "Debit" if leg.get("action") in BUYS else "Credit"
        action = str(leg.get("action"))
        self.state.transactions[acct].insert(0, {
            "id": 252_650_000 + self.fills,  # after the seeded ones; order ids stay untouched
            "account-number": acct,
            "order-id": o["id"],
            "symbol": sym,
            "instrument-type": it,
            "underlying-symbol": o.get("underlying-symbol", sym),
            "transaction-type": "Trade",
            "transaction-sub-type": action,
            "description": f"{'Bought' if eff == 'Debit' else 'Sold'} {_qty(q)} {sym} @ {p}",
            "action": action,
            "quantity": money(q),
            "price": money(p),
            "executed-at": wire.iso(t),
            "transaction-date": t.date().isoformat(),
            "value": money(value),
            "value-effect": eff,
            "net-value": money(value),
            "net-value-effect": eff,
            "commission": "0.0",
            "commission-effect": "None",
            "clearing-fees": "0.0",
            "clearing-fees-effect": "None",
            "regulatory-fees": "0.0",
            "regulatory-fees-effect": "None",
            "proprietary-index-option-fees": "0.0",
            "proprietary-index-option-fees-effect": "None",
            "is-estimated-fee": False,
            "ext-exec-id": f"SIM{self._fill_ids:08d}",
            "ext-group-fill-id": str(o["id"]),
            "leg-count": len(o["legs"]),
        })  # fmt: skip
        bal = self.state.balances[acct]
        cash = wire.dec(bal.get("cash-balance")) or _D0
        bal["cash-balance"] = money(cash - value if eff == "Debit" else cash + value)

    def _recompute_balance(self, acct: str, t: datetime) -> dict[str, Any]:
        """Marked values, net liq, a simplified maintenance requirement and buying power."""
        bal = self.state.balances[acct]
        cash = wire.dec(bal.get("cash-balance")) or _D0
        vals = {k: _D0 for k in ("equity", "derivative", "futures", "cryptocurrency")}
        short = dict(vals)
        for pos in self.state.positions[acct].values():
            q = wire.dec(pos["quantity"]) or _D0
            if q == 0:
                continue
            it = pos.get("instrument-type")
            kind = {"Equity": "equity", "Cryptocurrency": "cryptocurrency", "Future": "futures"}
            k = kind.get(str(it), "derivative")
            v = q * self.mark(pos["symbol"]) * Decimal(pos.get("multiplier") or 1)
            (short if pos.get("quantity-direction") == "Short" else vals)[k] += v
        long_total = sum(vals.values(), _D0)
        short_total = sum(short.values(), _D0)
        nlv = cash + long_total - short_total
        maint = (vals["equity"] * Decimal("0.25") + short["equity"] * Decimal("0.30")
                 + short["derivative"] * Decimal("0.20")
                 + (vals["futures"] + short["futures"]) * Decimal("0.10"))  # fmt: skip
        excess = max(_D0, nlv - maint)
        for k in vals:
            bal[f"long-{k}-value"] = money(vals[k])
            bal[f"short-{k}-value"] = money(short[k])
        bal.update({
            "long-margineable-value": money(vals["equity"]),
            "short-margineable-value": money(short["equity"]),
            "net-liquidating-value": money(nlv),
            "margin-equity": money(nlv),
            "maintenance-requirement": money(maint),
            "reg-t-margin-requirement": money(maint),
            "maintenance-excess": money(excess),
            "equity-buying-power": money(2 * excess),
            "derivative-buying-power": money(excess),
            "day-trading-buying-power": money(4 * excess),
            "available-trading-funds": money(excess),
            "cash-available-to-withdraw": money(max(_D0, min(cash, excess))),
            "day-trade-excess": money(excess),
            "used-derivative-buying-power": money(maint),
            "updated-at": wire.iso(t),
        })  # fmt: skip
        return bal

    async def _push(self, account: str, notes: list[tuple[str, dict[str, Any]]]) -> None:
        await self.hub.publish(account, [(k, _copy(v)) for k, v in notes])


LIFECYCLE_KEY = web.AppKey("ttfast_sim_lifecycle", OrderLifecycle)


def lifecycle_of(request: web.Request) -> OrderLifecycle:
    lc: OrderLifecycle = request.app[LIFECYCLE_KEY]
    return lc
