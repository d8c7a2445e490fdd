"""Order builders and client-side validation for tastytrade order requests (spec §5).

Builders emit exactly the documented JSON (kebab-case keys, unsigned ``price`` + ``price-effect``,
``value`` + ``value-effect``, ``stop-trigger``, ``gtc-date``, ``legs``, ``rules``,
``advanced-instructions``, ``external-identifier``). Decimals go on the wire as strings (exact);
integral quantities as JSON integers, fractional ones as strings (the API accepts both, §9).

Signed-price convenience: pass ``price=-1.25`` (negative = Debit, positive = Credit, the
convention of the tastyware SDK) *or* an unsigned price with ``effect="Debit"|"Credit"``; the
wire form is always unsigned price + effect. Floats are converted through ``str()`` so
``175.25`` stays ``175.25``.

Every builder validates the documented rules (§5.3) and raises
:class:`ttfast.errors.OrderValidationError` listing every problem before anything is sent. Pass
``validate=False`` to build a body the rules reject (e.g. to test server behaviour).

This module may import only msgspec, the stdlib and ``ttfast.errors``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Literal

import msgspec

from ttfast.errors import OrderValidationError

__all__ = [
    "AdvancedInstructions",
    "ComplexOrderRequest",
    "InstrumentType",
    "Leg",
    "OrderAction",
    "OrderCondition",
    "OrderRequest",
    "OrderRules",
    "OrderType",
    "PriceComponent",
    "PriceEffect",
    "TimeInForce",
    "leg",
    "limit_order",
    "market_order",
    "notional_market_order",
    "oco",
    "oto",
    "otoco",
    "stop_limit_order",
    "stop_order",
    "validate_complex_order",
    "validate_order",
]

Number = Decimal | int | float | str


class TimeInForce(StrEnum):
    DAY = "Day"
    GTC = "GTC"
    GTD = "GTD"
    EXT = "Ext"
    EXT_OVERNIGHT = "Ext Overnight"
    GTC_EXT = "GTC Ext"
    GTC_EXT_OVERNIGHT = "GTC Ext Overnight"
    IOC = "IOC"


class OrderType(StrEnum):
    LIMIT = "Limit"
    MARKET = "Market"
    MARKETABLE_LIMIT = "Marketable Limit"
    STOP = "Stop"
    STOP_LIMIT = "Stop Limit"
    NOTIONAL_MARKET = "Notional Market"


class PriceEffect(StrEnum):
    DEBIT = "Debit"
    CREDIT = "Credit"


class InstrumentType(StrEnum):
    EQUITY = "Equity"
    EQUITY_OPTION = "Equity Option"
    FUTURE = "Future"
    FUTURE_OPTION = "Future Option"
    CRYPTOCURRENCY = "Cryptocurrency"


class OrderAction(StrEnum):
    BUY_TO_OPEN = "Buy to Open"
    SELL_TO_OPEN = "Sell to Open"
    BUY_TO_CLOSE = "Buy to Close"
    SELL_TO_CLOSE = "Sell to Close"
    BUY = "Buy"  # futures only
    SELL = "Sell"  # futures only


_BUYS = frozenset({"Buy to Open", "Buy to Close", "Buy"})
_SELLS = frozenset({"Sell to Open", "Sell to Close", "Sell"})
_OPTION_TYPES = frozenset({"Equity Option", "Future Option"})
_SINGLE_LEG_TYPES = frozenset({"Equity", "Future", "Cryptocurrency"})
_EXT_TIFS = frozenset({"Ext", "Ext Overnight", "GTC Ext", "GTC Ext Overnight"})
_GTC_TIFS = frozenset({"GTC", "GTD", "GTC Ext", "GTC Ext Overnight"})


def _dec(x: Number, what: str) -> Decimal:
    if isinstance(x, bool):
        raise OrderValidationError(f"{what}: expected a number, got {x!r}")
    try:
        d = x if isinstance(x, Decimal) else Decimal(str(x))
    except InvalidOperation:
        raise OrderValidationError(f"{what}: not a number: {x!r}") from None
    if not d.is_finite():
        raise OrderValidationError(f"{what}: must be finite, got {x!r}")
    return d


def _qty(x: Number) -> int | Decimal:
    d = _dec(x, "quantity")
    return int(d) if d == d.to_integral_value() else d


class Leg(msgspec.Struct, rename="kebab", omit_defaults=True, kw_only=True):
    """One order leg: instrument-type, symbol, quantity (omit for notional), action."""

    instrument_type: str
    symbol: str
    quantity: int | Decimal | None = None
    action: str


class AdvancedInstructions(msgspec.Struct, rename="kebab", omit_defaults=True, kw_only=True):
    #: reject a "... to Close" without a position instead of silently turning it into an open
    strict_position_effect_validation: bool | None = None


class PriceComponent(msgspec.Struct, rename="kebab", omit_defaults=True, kw_only=True):
    symbol: str
    instrument_type: str
    quantity: int | Decimal
    quantity_direction: Literal["Long", "Short"]


class OrderCondition(msgspec.Struct, rename="kebab", omit_defaults=True, kw_only=True):
    action: Literal["route", "cancel"]
    symbol: str
    instrument_type: str
    indicator: str  # "last", "nat"
    comparator: Literal["gte", "lte"]
    threshold: Decimal
    price_components: list[PriceComponent] | None = None


class OrderRules(msgspec.Struct, rename="kebab", omit_defaults=True, kw_only=True):
    route_after: datetime | None = None
    cancel_at: datetime | None = None
    conditions: list[OrderCondition] | None = None


class OrderRequest(msgspec.Struct, rename="kebab", omit_defaults=True, kw_only=True):
    """Body of ``POST /accounts/{n}/orders`` (also dry-run and each complex-order member)."""

    time_in_force: str
    order_type: str
    gtc_date: date | None = None
    price: Decimal | None = None
    price_effect: str | None = None
    stop_trigger: Decimal | None = None
    value: Decimal | None = None
    value_effect: str | None = None
    source: str | None = None
    external_identifier: str | None = None
    partition_key: str | None = None
    preflight_id: str | None = None
    automated_source: bool | None = None
    advanced_instructions: AdvancedInstructions | None = None
    rules: OrderRules | None = None
    legs: list[Leg]

    def to_dict(self) -> dict[str, Any]:
        """The wire form as a dict (Decimals as strings, absent fields omitted)."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    def validate(self) -> OrderRequest:
        validate_order(self)
        return self

    def with_external_identifier(self, external_identifier: str) -> OrderRequest:
        return msgspec.structs.replace(self, external_identifier=external_identifier)


class ComplexOrderRequest(msgspec.Struct, rename="kebab", omit_defaults=True, kw_only=True):
    """Body of ``POST /accounts/{n}/complex-orders``: ``OCO``, ``OTO`` or ``OTOCO``."""

    type: str
    trigger_order: OrderRequest | None = None
    orders: list[OrderRequest]
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    def all_orders(self) -> list[OrderRequest]:
        return ([self.trigger_order] if self.trigger_order else []) + list(self.orders)


# --- validation ---------------------------------------------------------------------------------


def _problems(o: OrderRequest) -> list[str]:
    p: list[str] = []
    ot, tif = o.order_type, o.time_in_force
    if ot not in OrderType.__members__.values():
        p.append(f"unknown order-type {ot!r}")
    if tif not in TimeInForce.__members__.values():
        p.append(f"unknown time-in-force {tif!r}")
    legs = o.legs
    if not legs:
        p.append("an order needs at least one leg")
    types = {lg.instrument_type for lg in legs}
    for lg in legs:
        if lg.instrument_type not in InstrumentType.__members__.values():
            p.append(f"leg {lg.symbol!r}: unknown instrument-type {lg.instrument_type!r}")
        if lg.action not in _BUYS and lg.action not in _SELLS:
            p.append(f"leg {lg.symbol!r}: unknown action {lg.action!r}")
        elif lg.action in ("Buy", "Sell") and lg.instrument_type not in ("Future", "Future Option"):
            p.append(f"leg {lg.symbol!r}: action {lg.action!r} is for futures only")
        if not lg.symbol:
            p.append("leg with an empty symbol")
        if ot == "Notional Market":
            if lg.quantity is not None:
                p.append(f"leg {lg.symbol!r}: Notional Market legs carry no quantity (use value)")
        elif lg.quantity is None or lg.quantity <= 0:
            p.append(f"leg {lg.symbol!r}: quantity must be > 0")
    symbols = [lg.symbol for lg in legs]
    if len(set(symbols)) != len(symbols):
        p.append("leg symbols must be distinct within an order")
    if types & _OPTION_TYPES:
        if len(legs) > 4:
            p.append(f"at most 4 legs in an option order, got {len(legs)}")
        if sum(1 for lg in legs if lg.instrument_type in _SINGLE_LEG_TYPES) > 1:
            p.append("at most one equity/future leg alongside options")
    elif len(legs) > 1:
        p.append(f"{'/'.join(sorted(types))} orders take exactly 1 leg, got {len(legs)}")
    # price / value / stop-trigger by order type
    needs_price = ot in ("Limit", "Stop Limit", "Marketable Limit")
    if needs_price and o.price is None:
        p.append(f"{ot} orders need a price")
    if not needs_price and o.price is not None:
        p.append(f"{ot} orders take no price")
    if o.price is not None:
        if o.price < 0:
            p.append("wire price must be unsigned (sign goes in price-effect)")
        if o.price_effect not in ("Debit", "Credit"):
            p.append("price-effect must be 'Debit' or 'Credit' when a price is given")
    elif o.price_effect is not None:
        p.append("price-effect given without a price")
    if o.price is not None and o.value is not None:
        p.append("price and value are mutually exclusive")
    if ot in ("Stop", "Stop Limit"):
        if o.stop_trigger is None:
            p.append(f"{ot} orders need a stop-trigger")
        elif o.stop_trigger <= 0:
            p.append("stop-trigger must be > 0")
    elif o.stop_trigger is not None:
        p.append(f"{ot} orders take no stop-trigger")
    if ot == "Notional Market":
        if o.value is None or o.value <= 0:
            p.append("Notional Market orders need a value > 0")
        if o.value_effect not in ("Debit", "Credit"):
            p.append("Notional Market orders need value-effect 'Debit' or 'Credit'")
        if not types <= {"Equity", "Cryptocurrency"}:
            p.append("Notional Market is only for equities and cryptocurrencies")
    elif o.value is not None or o.value_effect is not None:
        p.append(f"{ot} orders take no value/value-effect")
    # buy-for-credit / sell-for-debit when every leg points the same way
    effect = o.price_effect or o.value_effect
    actions = {lg.action for lg in legs}
    if effect == "Credit" and actions and actions <= _BUYS:
        p.append("cannot buy for a credit (cant_buy_for_credit)")
    if effect == "Debit" and actions and actions <= _SELLS:
        p.append("cannot sell for a debit")
    # market / stop constraints
    if ot == "Market":
        if len(legs) != 1:
            p.append("Market orders take exactly 1 leg")
        if tif in _GTC_TIFS:
            p.append("GTC/GTD Market orders are not supported (gtc_market_orders_not_supported)")
    opening = any(lg.action in ("Buy to Open", "Sell to Open") for lg in legs)
    if ot == "Stop" and tif in _GTC_TIFS and opening:
        p.append("GTC/GTD Stop orders are only allowed for closing")
    # time in force
    if tif == "GTD":
        if o.gtc_date is None:
            p.append("GTD orders need a gtc-date")
    elif o.gtc_date is not None:
        p.append("gtc-date is only allowed with time-in-force GTD")
    if tif in _EXT_TIFS and not (len(legs) == 1 and types == {"Equity"}):
        p.append(f"time-in-force {tif!r} is only for single-leg equity orders")
    return p


def validate_order(o: OrderRequest) -> None:
    """Raise :class:`OrderValidationError` listing every documented rule ``o`` violates."""
    p = _problems(o)
    if p:
        raise OrderValidationError("invalid order: " + "; ".join(p))


def validate_complex_order(c: ComplexOrderRequest) -> None:
    """Check the complex-order shape (§5.4) and every member order."""
    p: list[str] = []
    n = len(c.orders)
    if c.type == "OCO":
        if c.trigger_order is not None:
            p.append("OCO takes no trigger-order")
        if n != 2:
            p.append(f"OCO takes exactly 2 orders, got {n}")
    elif c.type == "OTO":
        if c.trigger_order is None:
            p.append("OTO needs a trigger-order")
        if not 1 <= n <= 3:
            p.append(f"OTO takes 1 to 3 orders, got {n}")
    elif c.type == "OTOCO":
        if c.trigger_order is None:
            p.append("OTOCO needs a trigger-order")
        if n != 2:
            p.append(f"OTOCO takes exactly 2 orders, got {n}")
    else:
        p.append(f"unsupported complex order type {c.type!r} (OCO, OTO, OTOCO)")
    for i, o in enumerate(c.all_orders()):
        p.extend(f"order {i}: {msg}" for msg in _problems(o))
    if p:
        raise OrderValidationError("invalid complex order: " + "; ".join(p))


# --- builders -----------------------------------------------------------------------------------


def leg(
    symbol: str,
    quantity: Number | None,
    action: OrderAction | str,
    instrument_type: InstrumentType | str = InstrumentType.EQUITY,
) -> Leg:
    """Build a leg. ``quantity=None`` only for Notional Market orders."""
    return Leg(
        instrument_type=str(instrument_type),
        symbol=symbol,
        quantity=None if quantity is None else _qty(quantity),
        action=str(action),
    )


def _split_sign(x: Number, effect: str | None, what: str) -> tuple[Decimal, str]:
    d = _dec(x, what)
    if effect is not None:
        if effect not in ("Debit", "Credit"):
            raise OrderValidationError(f"{what}-effect must be 'Debit' or 'Credit', got {effect!r}")
        if d < 0:
            raise OrderValidationError(
                f"give either a signed {what} (negative = Debit) or an unsigned {what} with an "
                f"effect, not both ({what}={x!r}, effect={effect!r})"
            )
        return d, str(effect)
    if d == 0:
        raise OrderValidationError(f"a zero {what} needs an explicit effect")
    return abs(d), ("Debit" if d < 0 else "Credit")


def _legs(legs: Leg | Sequence[Leg]) -> list[Leg]:
    return [legs] if isinstance(legs, Leg) else list(legs)


def _common(
    kw: dict[str, Any],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    strict = kw.pop("strict_position_effect", None)
    if strict is not None:
        out["advanced_instructions"] = AdvancedInstructions(
            strict_position_effect_validation=strict
        )
    for k in ("source", "external_identifier", "partition_key", "preflight_id", "rules"):
        v = kw.pop(k, None)
        if v is not None:
            out[k] = v
    if "gtc_date" in kw:
        g = kw.pop("gtc_date")
        if g is not None:
            out["gtc_date"] = g if isinstance(g, date) else date.fromisoformat(str(g))
    if kw:
        raise TypeError(f"unexpected keyword arguments: {sorted(kw)}")
    return out


def _finish(o: OrderRequest, validate: bool) -> OrderRequest:
    if validate:
        validate_order(o)
    return o


def limit_order(
    legs: Leg | Sequence[Leg],
    price: Number,
    effect: PriceEffect | str | None = None,
    *,
    time_in_force: TimeInForce | str = TimeInForce.DAY,
    validate: bool = True,
    **common: Any,
) -> OrderRequest:
    """A Limit order; ``price`` is the net price of the whole order (spread price, not per leg).

    Common keywords (all builders): ``gtc_date``, ``source``, ``external_identifier``,
    ``partition_key``, ``preflight_id``, ``rules`` (:class:`OrderRules`),
    ``strict_position_effect`` (bool → ``advanced-instructions``).
    """
    p, eff = _split_sign(price, None if effect is None else str(effect), "price")
    o = OrderRequest(
        time_in_force=str(time_in_force),
        order_type="Limit",
        price=p,
        price_effect=eff,
        legs=_legs(legs),
        **_common(common),
    )
    return _finish(o, validate)


def market_order(
    legs: Leg | Sequence[Leg],
    *,
    time_in_force: TimeInForce | str = TimeInForce.DAY,
    validate: bool = True,
    **common: Any,
) -> OrderRequest:
    o = OrderRequest(
        time_in_force=str(time_in_force), order_type="Market", legs=_legs(legs), **_common(common)
    )
    return _finish(o, validate)


def stop_order(
    legs: Leg | Sequence[Leg],
    stop_trigger: Number,
    *,
    time_in_force: TimeInForce | str = TimeInForce.DAY,
    validate: bool = True,
    **common: Any,
) -> OrderRequest:
    """A stop-market order (``order-type: Stop``)."""
    o = OrderRequest(
        time_in_force=str(time_in_force),
        order_type="Stop",
        stop_trigger=_dec(stop_trigger, "stop-trigger"),
        legs=_legs(legs),
        **_common(common),
    )
    return _finish(o, validate)


def stop_limit_order(
    legs: Leg | Sequence[Leg],
    price: Number,
    stop_trigger: Number,
    effect: PriceEffect | str | None = None,
    *,
    time_in_force: TimeInForce | str = TimeInForce.DAY,
    validate: bool = True,
    **common: Any,
) -> OrderRequest:
    p, eff = _split_sign(price, None if effect is None else str(effect), "price")
    o = OrderRequest(
        time_in_force=str(time_in_force),
        order_type="Stop Limit",
        price=p,
        price_effect=eff,
        stop_trigger=_dec(stop_trigger, "stop-trigger"),
        legs=_legs(legs),
        **_common(common),
    )
    return _finish(o, validate)


def notional_market_order(
    legs: Leg | Sequence[Leg],
    value: Number,
    effect: PriceEffect | str | None = None,
    *,
    time_in_force: TimeInForce | str = TimeInForce.DAY,
    validate: bool = True,
    **common: Any,
) -> OrderRequest:
    """A dollar-amount order (crypto, fractional-eligible equities); legs carry no quantity."""
    v, eff = _split_sign(value, None if effect is None else str(effect), "value")
    o = OrderRequest(
        time_in_force=str(time_in_force),
        order_type="Notional Market",
        value=v,
        value_effect=eff,
        legs=_legs(legs),
        **_common(common),
    )
    return _finish(o, validate)


def _complex(c: ComplexOrderRequest, validate: bool) -> ComplexOrderRequest:
    if validate:
        validate_complex_order(c)
    return c


def oco(
    first: OrderRequest,
    second: OrderRequest,
    *,
    source: str | None = None,
    validate: bool = True,
) -> ComplexOrderRequest:
    """One-cancels-other: both orders work; a fill of one cancels the other."""
    return _complex(
        ComplexOrderRequest(type="OCO", orders=[first, second], source=source), validate
    )


def oto(
    trigger: OrderRequest,
    orders: OrderRequest | Sequence[OrderRequest],
    *,
    source: str | None = None,
    validate: bool = True,
) -> ComplexOrderRequest:
    """One-triggers-other(s): 1-3 orders stay Contingent until the trigger fills."""
    lst = [orders] if isinstance(orders, OrderRequest) else list(orders)
    return _complex(
        ComplexOrderRequest(type="OTO", trigger_order=trigger, orders=lst, source=source), validate
    )


def otoco(
    trigger: OrderRequest,
    take_profit: OrderRequest,
    stop_loss: OrderRequest,
    *,
    source: str | None = None,
    validate: bool = True,
) -> ComplexOrderRequest:
    """Trigger, then an OCO pair (typically a take-profit Limit and a Stop/Stop Limit)."""
    c = ComplexOrderRequest(
        type="OTOCO", trigger_order=trigger, orders=[take_profit, stop_loss], source=source
    )
    return _complex(c, validate)
