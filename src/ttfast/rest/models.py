"""Typed, lenient msgspec models for tastytrade REST responses.

Rules (spec §3, §9, §11): JSON keys are kebab-case; unknown fields are ignored; nearly every field
is optional (the API drops and adds fields between versions and environments); every decimal
accepts a JSON number *or* a string and becomes ``Decimal`` (JSON floats are parsed straight to
``Decimal`` from their text, never through ``float``); integers accept numeric strings;
timestamps accept ISO-8601 strings or epoch milliseconds (``updated-at: 1688584052750``,
dry-run ``updated-at: 0``). Enumerations are plain ``str`` so a new server value never breaks
decoding. Money keeps the API's unsigned value plus its ``*-effect`` sibling; use
:func:`signed` to get the TW-style signed number (Debit negative).

Every model keeps the server's original object in ``.raw`` (a dict; set on every decoded model,
nested ones included), so a field we do not model is always reachable.

This module may import only msgspec and the stdlib.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

import msgspec

__all__ = [
    "Account",
    "AccountAuthority",
    "ApiModel",
    "Balance",
    "BuyingPowerEffect",
    "ComplexOrder",
    "ComplexOrderResponse",
    "Cryptocurrency",
    "Customer",
    "Equity",
    "EquityOption",
    "FeeCalculation",
    "Fill",
    "Future",
    "FutureOption",
    "MarketMetric",
    "Message",
    "NestedOptionChain",
    "Order",
    "OrderLeg",
    "OrderResponse",
    "Pagination",
    "Position",
    "QuoteToken",
    "SymbolSearchResult",
    "TickSize",
    "TotalFees",
    "TradingStatus",
    "Transaction",
    "convert",
    "convert_list",
    "signed",
]

Timestamp = datetime | int
M = TypeVar("M", bound="ApiModel")


class RawDict(dict[str, Any]):
    """The server's original JSON object; a plain dict whose repr is short (and hides values)."""

    def __repr__(self) -> str:
        return f"<raw: {len(self)} keys>"


class ApiModel(
    msgspec.Struct, rename="kebab", kw_only=True, omit_defaults=True, repr_omit_defaults=True
):
    """Base of all response models. ``raw`` is the server's object (not part of the JSON shape)."""

    raw: dict[str, Any] | None = msgspec.field(default=None, name="__ttfast_raw__")

    def __repr__(self) -> str:  # omit ``raw`` (large) and absent fields
        parts = [
            f"{f}={v!r}"
            for f in self.__struct_fields__
            if f != "raw" and (v := getattr(self, f)) is not None
        ]
        return f"{type(self).__name__}({', '.join(parts)})"


_NESTED: dict[type, tuple[tuple[str, str], ...]] = {}


def _may_nest(tp: Any) -> bool:
    if isinstance(tp, type) and issubclass(tp, ApiModel):
        return True
    return any(_may_nest(a) for a in get_args(tp))


def _nested_fields(cls: type) -> tuple[tuple[str, str], ...]:
    """(attribute, JSON key) of the fields of ``cls`` that can hold models (cached per class)."""
    out = _NESTED.get(cls)
    if out is None:
        out = tuple(
            (f.name, f.encode_name)
            for f in msgspec.structs.fields(cls)
            if f.name != "raw" and _may_nest(f.type)
        )
        _NESTED[cls] = out
    return out


def _attach_raw(obj: ApiModel, raw: dict[str, Any]) -> None:
    """Set ``.raw`` on ``obj`` and, walking in parallel with ``raw``, on every nested model.

    The generic (slow) walk, used only for field shapes the generated walkers do not know."""
    obj.raw = RawDict(raw) if type(obj) in _HIDE_RAW else raw
    try:
        nested = _NESTED[type(obj)]
    except KeyError:
        nested = _nested_fields(type(obj))
    for name, key in nested:
        _attach_value(getattr(obj, name), raw.get(key))


def _attach_value(val: Any, sub: Any) -> None:
    if val is None:
        return
    if type(val) is list:
        if type(sub) is list:
            for o, r in zip(val, sub, strict=False):
                if isinstance(o, ApiModel) and type(r) is dict:
                    _attach_raw(o, r)
    elif isinstance(val, ApiModel):
        if type(sub) is dict:
            _attach_raw(val, sub)
    elif type(val) is dict and type(sub) is dict:  # e.g. dict[str, Model]
        for k, o in val.items():
            r = sub.get(k)
            if isinstance(o, ApiModel) and type(r) is dict:
                _attach_raw(o, r)


# --- raw attachment: one generated walker per model class ---------------------------------------
#
# ``convert_list`` converts a whole list in one ``msgspec.convert`` call, then walks the models and
# the decoded JSON in parallel setting ``.raw`` (nested models included). The walker of a class is
# straight-line Python generated once per class (no per-object dispatch on field types): the walk
# costs about one attribute store per model, where the generic walk above costs ~10x that.

Walker = Callable[[Sequence[Any], Sequence[Any]], None]
_WALKERS: dict[type, Walker] = {}


def _nested_shape(tp: Any) -> tuple[str, type] | None:
    """``("one", cls)`` for ``Model | None``, ``("list", cls)`` for ``list[Model] | None``."""
    if get_origin(tp) in (Union, UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
    else:
        args = [tp]
    if len(args) != 1:
        return None
    (a,) = args
    if isinstance(a, type) and issubclass(a, ApiModel):
        return ("one", a)
    if get_origin(a) is list:
        (item,) = get_args(a) or (None,)
        if isinstance(item, type) and issubclass(item, ApiModel):
            return ("list", item)
    return None


def _walker(cls: type, building: dict[type, list[Walker]] | None = None) -> Walker:
    """``walk(models, raws)``: set ``.raw`` on each model of ``cls`` and its nested models."""
    cached = _WALKERS.get(cls)
    if cached is not None:
        return cached
    if building is None:
        building = {}
    if cls in building:  # a model nesting itself: call the walker being built, once it exists
        cell = building[cls]
        return lambda objs, raws: cell[0](objs, raws)
    building[cls] = cell = []
    ns: dict[str, Any] = {"RawDict": RawDict, "_attach_value": _attach_value}
    src = [
        "def walk(objs, raws):",
        "    for o, r in zip(objs, raws):",
        "        if type(r) is not dict:",
        "            continue",
        "        o.raw = RawDict(r)" if cls in _HIDE_RAW else "        o.raw = r",
    ]
    for f in msgspec.structs.fields(cls):
        if f.name == "raw" or not _may_nest(f.type):
            continue
        shape = _nested_shape(f.type)
        src.append(f"        v = o.{f.name}")
        if shape is None:  # an exotic shape (dict of models, union of models...): generic walk
            src.append(f"        _attach_value(v, r.get({f.encode_name!r}))")
            continue
        kind, sub = shape
        wname = f"w_{f.name}"
        ns[wname] = _walker(sub, building)
        if kind == "list":
            src += [
                "        if v:",
                f"            s = r.get({f.encode_name!r})",
                "            if type(s) is list:",
                f"                {wname}(v, s)",
            ]
        else:
            src += [
                "        if v is not None:",
                f"            s = r.get({f.encode_name!r})",
                "            if type(s) is dict:",
                f"                {wname}((v,), (s,))",
            ]
    exec("\n".join(src), ns)  # generated from our own field names (identifiers) only
    walk: Walker = ns["walk"]
    cell.append(walk)
    _WALKERS[cls] = walk
    return walk


_LIST_TYPES: dict[type, Any] = {}


def convert(raw: Any, model: type[M]) -> M:
    """Convert a decoded JSON object (from ``json_decoder``) into ``model`` leniently.

    Raises ``msgspec.ValidationError`` if a present field has an impossible value.
    """
    obj = msgspec.convert(raw, model, strict=False)
    if type(raw) is dict:
        (_WALKERS.get(model) or _walker(model))((obj,), (raw,))
    return obj


def convert_list(raws: list[Any], model: type[M]) -> list[M]:
    """``[convert(r, model) for r in raws]`` in one msgspec call (the fast path for lists).

    Raises ``msgspec.ValidationError`` (its message names the item: ``$[3].price``) if any item
    has an impossible value.
    """
    lt = _LIST_TYPES.get(model)
    if lt is None:
        lt = _LIST_TYPES[model] = list[model]  # type: ignore[valid-type]
    objs: list[M] = msgspec.convert(raws, lt, strict=False)
    (_WALKERS.get(model) or _walker(model))(objs, raws)
    return objs


#: JSON decoder used for every response: floats become exact ``Decimal`` from their text.
json_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(float_hook=Decimal)


def signed(value: Decimal | None, effect: str | None) -> Decimal | None:
    """Apply a ``*-effect`` sibling: ``Debit`` → negative, ``Credit``/``None`` → as is."""
    if value is None:
        return None
    return -abs(value) if effect == "Debit" else value


# --- customer / accounts ------------------------------------------------------------------------


class Customer(ApiModel):
    id: str | None = None
    external_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    is_professional: bool | None = None
    has_delayed_quotes: bool | None = None
    created_at: datetime | None = None


class Account(ApiModel):
    """An account. ``account_number`` is required (the API always sends it and every account
    call takes it): an account object without one fails to decode (``ResponseDecodeError`` from
    the client) instead of giving an account whose number is ``None``."""

    account_number: str
    nickname: str | None = None
    account_type_name: str | None = None
    margin_or_cash: str | None = None
    is_closed: bool | None = None
    is_test_drive: bool | None = None
    is_futures_approved: bool | None = None
    is_firm_error: bool | None = None
    is_firm_proprietary: bool | None = None
    is_foreign: bool | None = None
    day_trader_status: bool | str | None = None
    investment_objective: str | None = None
    suitable_options_level: str | None = None
    external_id: str | None = None
    opened_at: datetime | None = None
    created_at: datetime | None = None
    closed_at: str | None = None


class AccountAuthority(ApiModel):
    """One item of ``GET /customers/me/accounts``."""

    account: Account | None = None
    authority_level: str | None = None


class TradingStatus(ApiModel):
    account_number: str | None = None
    id: int | None = None
    options_level: str | None = None
    is_closing_only: bool | None = None
    is_closed: bool | None = None
    is_frozen: bool | None = None
    is_futures_enabled: bool | None = None
    is_futures_closing_only: bool | None = None
    is_cryptocurrency_enabled: bool | None = None
    is_in_margin_call: bool | None = None
    is_pattern_day_trader: bool | None = None
    is_portfolio_margin_enabled: bool | None = None
    day_trade_count: int | None = None
    short_calls_enabled: bool | None = None
    fee_schedule_name: str | None = None
    equities_margin_calculation_type: str | None = None
    updated_at: Timestamp | None = None


class Balance(ApiModel):
    account_number: str | None = None
    currency: str | None = None
    cash_balance: Decimal | None = None
    net_liquidating_value: Decimal | None = None
    equity_buying_power: Decimal | None = None
    derivative_buying_power: Decimal | None = None
    day_trading_buying_power: Decimal | None = None
    available_trading_funds: Decimal | None = None
    margin_equity: Decimal | None = None
    maintenance_requirement: Decimal | None = None
    maintenance_excess: Decimal | None = None
    maintenance_call_value: Decimal | None = None
    reg_t_call_value: Decimal | None = None
    reg_t_margin_requirement: Decimal | None = None
    day_trading_call_value: Decimal | None = None
    day_equity_call_value: Decimal | None = None
    futures_margin_requirement: Decimal | None = None
    cash_available_to_withdraw: Decimal | None = None
    day_trade_excess: Decimal | None = None
    pending_cash: Decimal | None = None
    pending_cash_effect: str | None = None
    long_equity_value: Decimal | None = None
    short_equity_value: Decimal | None = None
    long_derivative_value: Decimal | None = None
    short_derivative_value: Decimal | None = None
    long_futures_value: Decimal | None = None
    short_futures_value: Decimal | None = None
    long_futures_derivative_value: Decimal | None = None
    short_futures_derivative_value: Decimal | None = None
    long_margineable_value: Decimal | None = None
    short_margineable_value: Decimal | None = None
    long_cryptocurrency_value: Decimal | None = None
    short_cryptocurrency_value: Decimal | None = None
    cryptocurrency_margin_requirement: Decimal | None = None
    unsettled_cryptocurrency_fiat_amount: Decimal | None = None
    unsettled_cryptocurrency_fiat_effect: str | None = None
    used_derivative_buying_power: Decimal | None = None
    snapshot_date: date | None = None
    updated_at: Timestamp | None = None


class Position(ApiModel):
    account_number: str | None = None
    symbol: str | None = None
    instrument_type: str | None = None
    underlying_symbol: str | None = None
    quantity: Decimal | None = None
    quantity_direction: str | None = None
    close_price: Decimal | None = None
    average_open_price: Decimal | None = None
    average_daily_market_close_price: Decimal | None = None
    average_yearly_market_close_price: Decimal | None = None
    mark: Decimal | None = None
    mark_price: Decimal | None = None
    multiplier: Decimal | None = None
    cost_effect: str | None = None
    is_suppressed: bool | None = None
    is_frozen: bool | None = None
    restricted_quantity: Decimal | None = None
    realized_day_gain: Decimal | None = None
    realized_day_gain_effect: str | None = None
    realized_day_gain_date: date | None = None
    realized_today: Decimal | None = None
    realized_today_effect: str | None = None
    realized_today_date: date | None = None
    expires_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: Timestamp | None = None


class Transaction(ApiModel):
    id: int | None = None
    account_number: str | None = None
    order_id: int | None = None
    symbol: str | None = None
    instrument_type: str | None = None
    underlying_symbol: str | None = None
    transaction_type: str | None = None
    transaction_sub_type: str | None = None
    description: str | None = None
    action: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None
    executed_at: datetime | None = None
    transaction_date: date | None = None
    value: Decimal | None = None
    value_effect: str | None = None
    net_value: Decimal | None = None
    net_value_effect: str | None = None
    commission: Decimal | None = None
    commission_effect: str | None = None
    clearing_fees: Decimal | None = None
    clearing_fees_effect: str | None = None
    regulatory_fees: Decimal | None = None
    regulatory_fees_effect: str | None = None
    proprietary_index_option_fees: Decimal | None = None
    proprietary_index_option_fees_effect: str | None = None
    is_estimated_fee: bool | None = None


class TotalFees(ApiModel):
    total_fees: Decimal | None = None
    total_fees_effect: str | None = None


class Pagination(ApiModel):
    per_page: int | None = None
    page_offset: int | None = None
    item_offset: int | None = None
    total_items: int | None = None
    total_pages: int | None = None
    current_item_count: int | None = None


# --- orders -------------------------------------------------------------------------------------


class Fill(ApiModel):
    fill_id: str | None = None
    quantity: Decimal | None = None
    fill_price: Decimal | None = None
    filled_at: datetime | None = None
    destination_venue: str | None = None
    ext_group_fill_id: str | None = None
    ext_exec_id: str | None = None


class OrderLeg(ApiModel):
    instrument_type: str | None = None
    symbol: str | None = None
    action: str | None = None
    quantity: Decimal | None = None
    remaining_quantity: Decimal | None = None
    fills: list[Fill] | None = None


class Order(ApiModel):
    """A placed order (``id`` set) or a dry-run order (``id`` is ``None``)."""

    id: int | None = None
    account_number: str | None = None
    external_identifier: str | None = None
    time_in_force: str | None = None
    gtc_date: date | None = None
    order_type: str | None = None
    size: Decimal | None = None
    underlying_symbol: str | None = None
    underlying_instrument_type: str | None = None
    price: Decimal | None = None
    price_effect: str | None = None
    value: Decimal | None = None
    value_effect: str | None = None
    stop_trigger: Decimal | None = None
    status: str | None = None
    contingent_status: str | None = None
    confirmation_status: str | None = None
    cancellable: bool | None = None
    editable: bool | None = None
    edited: bool | None = None
    reject_reason: str | None = None
    source: str | None = None
    complex_order_id: int | None = None
    complex_order_tag: str | None = None
    replaces_order_id: int | None = None
    replacing_order_id: int | None = None
    received_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    in_flight_at: Timestamp | None = None
    live_at: Timestamp | None = None
    cancelled_at: Timestamp | None = None
    terminal_at: Timestamp | None = None
    legs: list[OrderLeg] | None = None


class Message(ApiModel):
    code: str | None = None
    message: str | None = None
    preflight_id: str | None = None


class BuyingPowerEffect(ApiModel):
    change_in_margin_requirement: Decimal | None = None
    change_in_margin_requirement_effect: str | None = None
    change_in_buying_power: Decimal | None = None
    change_in_buying_power_effect: str | None = None
    current_buying_power: Decimal | None = None
    current_buying_power_effect: str | None = None
    new_buying_power: Decimal | None = None
    new_buying_power_effect: str | None = None
    isolated_order_margin_requirement: Decimal | None = None
    isolated_order_margin_requirement_effect: str | None = None
    is_spread: bool | None = None
    impact: Decimal | None = None
    effect: str | None = None


class FeeCalculation(ApiModel):
    regulatory_fees: Decimal | None = None
    regulatory_fees_effect: str | None = None
    clearing_fees: Decimal | None = None
    clearing_fees_effect: str | None = None
    commission: Decimal | None = None
    commission_effect: str | None = None
    proprietary_index_option_fees: Decimal | None = None
    proprietary_index_option_fees_effect: str | None = None
    total_fees: Decimal | None = None
    total_fees_effect: str | None = None


class OrderResponse(ApiModel):
    """``data`` of POST ``/orders`` and ``/orders/dry-run``."""

    order: Order | None = None
    buying_power_effect: BuyingPowerEffect | None = None
    fee_calculation: FeeCalculation | None = None
    warnings: list[Message] | None = None
    errors: list[Message] | None = None


class ComplexOrder(ApiModel):
    id: int | None = None
    account_number: str | None = None
    type: str | None = None
    terminal_at: Timestamp | None = None
    trigger_order: Order | None = None
    orders: list[Order] | None = None
    ratio_price_threshold: Decimal | None = None
    ratio_price_comparator: str | None = None


class ComplexOrderResponse(ApiModel):
    complex_order: ComplexOrder | None = None
    buying_power_effect: BuyingPowerEffect | None = None
    fee_calculation: FeeCalculation | None = None
    warnings: list[Message] | None = None
    errors: list[Message] | None = None


# --- instruments --------------------------------------------------------------------------------


class TickSize(ApiModel):
    value: Decimal | None = None
    threshold: Decimal | None = None
    symbol: str | None = None


class Equity(ApiModel):
    id: int | None = None
    symbol: str | None = None
    instrument_type: str | None = None
    cusip: str | None = None
    short_description: str | None = None
    description: str | None = None
    is_index: bool | None = None
    is_etf: bool | None = None
    listed_market: str | None = None
    lendability: str | None = None
    borrow_rate: Decimal | None = None
    market_time_instrument_collection: str | None = None
    is_closing_only: bool | None = None
    is_options_closing_only: bool | None = None
    active: bool | None = None
    is_fractional_quantity_eligible: bool | None = None
    is_illiquid: bool | None = None
    streamer_symbol: str | None = None
    tick_sizes: list[TickSize] | None = None
    option_tick_sizes: list[TickSize] | None = None


class EquityOption(ApiModel):
    symbol: str | None = None
    instrument_type: str | None = None
    active: bool | None = None
    strike_price: Decimal | None = None
    root_symbol: str | None = None
    underlying_symbol: str | None = None
    expiration_date: date | None = None
    exercise_style: str | None = None
    shares_per_contract: int | None = None
    option_type: str | None = None
    option_chain_type: str | None = None
    expiration_type: str | None = None
    settlement_type: str | None = None
    days_to_expiration: int | None = None
    stops_trading_at: datetime | None = None
    expires_at: datetime | None = None
    is_closing_only: bool | None = None
    streamer_symbol: str | None = None


class Future(ApiModel):
    symbol: str | None = None
    product_code: str | None = None
    contract_size: Decimal | None = None
    tick_size: Decimal | None = None
    notional_multiplier: Decimal | None = None
    display_factor: Decimal | None = None
    last_trade_date: date | None = None
    expiration_date: date | None = None
    closing_only_date: date | None = None
    active: bool | None = None
    active_month: bool | None = None
    next_active_month: bool | None = None
    is_closing_only: bool | None = None
    is_tradeable: bool | None = None
    stops_trading_at: datetime | None = None
    expires_at: datetime | None = None
    product_group: str | None = None
    exchange: str | None = None
    roll_target_symbol: str | None = None
    streamer_exchange_code: str | None = None
    streamer_symbol: str | None = None
    tick_sizes: list[TickSize] | None = None
    option_tick_sizes: list[TickSize] | None = None
    spread_tick_sizes: list[TickSize] | None = None


class FutureOption(ApiModel):
    symbol: str | None = None
    underlying_symbol: str | None = None
    product_code: str | None = None
    expiration_date: date | None = None
    root_symbol: str | None = None
    option_root_symbol: str | None = None
    strike_price: Decimal | None = None
    exchange: str | None = None
    exchange_symbol: str | None = None
    streamer_symbol: str | None = None
    option_type: str | None = None
    exercise_style: str | None = None
    multiplier: Decimal | None = None
    notional_value: Decimal | None = None
    display_factor: Decimal | None = None
    settlement_type: str | None = None
    days_to_expiration: int | None = None
    is_closing_only: bool | None = None
    active: bool | None = None
    stops_trading_at: datetime | None = None
    expires_at: datetime | None = None


class Cryptocurrency(ApiModel):
    id: int | None = None
    symbol: str | None = None
    instrument_type: str | None = None
    short_description: str | None = None
    description: str | None = None
    is_closing_only: bool | None = None
    active: bool | None = None
    tick_size: Decimal | None = None
    streamer_symbol: str | None = None


class Strike(ApiModel):
    strike_price: Decimal | None = None
    call: str | None = None
    call_streamer_symbol: str | None = None
    put: str | None = None
    put_streamer_symbol: str | None = None


class Expiration(ApiModel):
    expiration_type: str | None = None
    expiration_date: date | None = None
    days_to_expiration: int | None = None
    settlement_type: str | None = None
    strikes: list[Strike] | None = None


class NestedOptionChain(ApiModel):
    underlying_symbol: str | None = None
    root_symbol: str | None = None
    option_chain_type: str | None = None
    shares_per_contract: int | None = None
    tick_sizes: list[TickSize] | None = None
    expirations: list[Expiration] | None = None


class MarketMetric(ApiModel):
    """One item of ``GET /market-metrics`` (sparse: many fields are often absent)."""

    symbol: str | None = None
    implied_volatility_index: Decimal | None = None
    implied_volatility_index_rank: Decimal | None = None
    implied_volatility_percentile: Decimal | None = None
    implied_volatility_index_5_day_change: Decimal | None = None
    liquidity_rating: int | None = None
    liquidity_rank: Decimal | None = None
    beta: Decimal | None = None
    corr_spy_3month: Decimal | None = None
    market_cap: Decimal | None = None
    historical_volatility_30_day: Decimal | None = None
    dividend_yield: Decimal | None = None
    updated_at: Timestamp | None = None


class SymbolSearchResult(ApiModel):
    symbol: str | None = None
    description: str | None = None


class QuoteToken(ApiModel):
    """``GET /api-quote-tokens``: a dxLink token (lives ~24 h) and the URL to use it on."""

    token: str | None = None
    dxlink_url: str | None = None
    level: str | None = None
    expires_at: Timestamp | None = None

    def __repr__(self) -> str:  # never show the token
        return f"QuoteToken(dxlink_url={self.dxlink_url!r}, level={self.level!r}, token=<hidden>)"


#: models whose ``.raw`` holds a secret: stored as a RawDict (repr hides the values)
_HIDE_RAW: frozenset[type] = frozenset({QuoteToken})
