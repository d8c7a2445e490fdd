"""Order builders emit exactly the documented request bodies; client-side validation (§5.3)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttfast.errors import OrderValidationError
from ttfast.rest import orders as o

DATA = Path(__file__).parent.parent / "data" / "rest_examples"


def example(name: str) -> dict[str, Any]:
    text = (DATA / name).read_text()
    body: dict[str, Any] = json.loads(text.partition("\n")[2])
    return body


def norm(x: Any) -> Any:
    """Numbers and numeric strings compare by exact decimal value; everything else as is."""
    if isinstance(x, dict):
        return {k: norm(v) for k, v in x.items()}
    if isinstance(x, list):
        return [norm(v) for v in x]
    if isinstance(x, bool):
        return x
    if isinstance(x, int | float):
        return Decimal(str(x))
    if isinstance(x, str):
        try:
            return Decimal(x)
        except ArithmeticError:
            return x
    return x


def same(built: o.OrderRequest | o.ComplexOrderRequest, name: str) -> None:
    got = json.loads(built.to_json())
    want = example(name)
    assert norm(got) == norm(want)
    assert set(got) == set(want)  # field for field, nothing extra


AAPL = "AAPL"


def test_equity_limit_external_identifier() -> None:
    built = o.limit_order(
        o.leg(AAPL, 100, o.OrderAction.BUY_TO_OPEN),
        "175.25",
        "Debit",
        source="my-api-code",
        external_identifier="aapl-buy-2026-06-09-0001",
    )
    same(built, "accounts_orders.POST.request.equity_limit_external_identifier.json")
    wire = json.loads(built.to_json())
    assert wire["price"] == "175.25" and wire["legs"][0]["quantity"] == 100


def test_signed_price_convenience_is_unsigned_on_the_wire() -> None:
    a = o.limit_order(o.leg(AAPL, 100, "Buy to Open"), Decimal("-175.25"))
    b = o.limit_order(o.leg(AAPL, 100, "Buy to Open"), 175.25, o.PriceEffect.DEBIT)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict()["price"] == "175.25" and a.to_dict()["price-effect"] == "Debit"
    with pytest.raises(OrderValidationError, match="signed"):
        o.limit_order(o.leg(AAPL, 1, "Buy to Open"), -1, "Debit")


def test_gtc_closing_limit() -> None:
    built = o.limit_order(o.leg(AAPL, 1, "Sell to Close"), 150.25, time_in_force="GTC")
    same(built, "accounts_orders.POST.request.equity_limit_gtc_closing.json")


def test_strict_position_effect() -> None:
    built = o.limit_order(
        o.leg("META", 100, "Sell to Close"), 175.25, "Credit", strict_position_effect=True
    )
    same(built, "accounts_orders.POST.request.equity_limit_strict_position.json")


def test_market_and_fractional_market() -> None:
    same(
        o.market_order(o.leg(AAPL, 1, "Buy to Open")),
        "accounts_orders.POST.request.equity_market.json",
    )
    frac = o.market_order(o.leg(AAPL, 0.5, "Buy to Open"))
    same(frac, "accounts_orders.POST.request.equity_fractional_market.json")
    assert frac.to_dict()["legs"][0]["quantity"] == "0.5"  # exact, as a string


def test_notional_equity_and_crypto() -> None:
    same(
        o.notional_market_order(o.leg(AAPL, None, "Buy to Open"), -10),
        "accounts_orders.POST.request.equity_notional.json",
    )
    crypto = o.leg("BTC/USD", None, "Buy to Open", o.InstrumentType.CRYPTOCURRENCY)
    same(
        o.notional_market_order(crypto, 10.0, "Debit", time_in_force="GTC"),
        "accounts_orders.POST.request.crypto_notional.json",
    )


def test_stop_closing_gtc() -> None:
    same(
        o.stop_order(o.leg(AAPL, 100, "Sell to Close"), 105, time_in_force="GTC"),
        "accounts_orders.POST.request.equity_stop_closing.json",
    )


def test_future_limit_short() -> None:
    same(
        o.limit_order(o.leg("/CLZ2", 1, "Sell to Open", "Future"), 90.03),
        "accounts_orders.POST.request.future_limit_short.json",
    )


def test_option_spreads() -> None:
    opt = o.InstrumentType.EQUITY_OPTION
    spread = o.limit_order(
        [
            o.leg("AAPL 221118C00155000", 1, "Sell to Open", opt),
            o.leg("AAPL 221118C00157500", 1, "Buy to Open", opt),
        ],
        0.85,
    )
    same(spread, "accounts_orders.POST.request.option_bear_call_spread.json")
    condor = o.limit_order(
        [
            o.leg("TSLA 230714P00210000", "1", "Buy to Open", opt),
            o.leg("TSLA 230714P00215000", "1", "Sell to Open", opt),
            o.leg("TSLA 230714C00282500", "1", "Sell to Open", opt),
            o.leg("TSLA 230714C00290000", "1", "Buy to Open", opt),
        ],
        "1.51",
        "Credit",
        source="my-api-code",
    )
    same(condor, "accounts_orders.POST.request.option_iron_condor.json")


def test_gtd_example_is_a_docs_bug_we_reject() -> None:
    leg = o.leg(AAPL, 1, "Buy to Open")
    with pytest.raises(OrderValidationError, match="cant_buy_for_credit"):
        o.limit_order(leg, 0.85, "Credit", time_in_force="GTD", gtc_date="2022-12-01")
    built = o.limit_order(
        leg, 0.85, "Credit", time_in_force="GTD", gtc_date=date(2022, 12, 1), validate=False
    )
    same(built, "accounts_orders.POST.request.equity_gtd.json")
    ok = o.limit_order(leg, 0.85, "Debit", time_in_force="GTD", gtc_date="2022-12-01")
    assert ok.to_dict()["gtc-date"] == "2022-12-01"


def _sell_100(order_type: str) -> o.Leg:
    return o.leg(AAPL, 100, "Sell to Close")


def test_complex_oco_and_otoco() -> None:
    tp = o.limit_order(_sell_100("Limit"), 198.68, time_in_force="GTC")
    sl = o.stop_order(_sell_100("Stop"), 143.06, time_in_force="GTC")
    same(o.oco(tp, sl), "accounts_complex_orders.POST.request.oco.json")
    trig = o.limit_order(o.leg(AAPL, 100, "Buy to Open"), -157.97)
    same(o.otoco(trig, tp, sl), "accounts_complex_orders.POST.request.otoco.json")
    oto = o.oto(trig, [tp])
    assert oto.to_dict()["type"] == "OTO" and len(oto.orders) == 1


def test_complex_shape_validation() -> None:
    tp = o.limit_order(_sell_100("Limit"), 198.68, time_in_force="GTC")
    trig = o.limit_order(o.leg(AAPL, 100, "Buy to Open"), -157.97)
    with pytest.raises(OrderValidationError, match="OTO takes 1 to 3"):
        o.oto(trig, [tp, tp, tp, tp])
    with pytest.raises(OrderValidationError, match="OCO takes no trigger"):
        o.validate_complex_order(
            o.ComplexOrderRequest(type="OCO", trigger_order=trig, orders=[tp, tp])
        )
    with pytest.raises(OrderValidationError, match="unsupported complex"):
        o.validate_complex_order(o.ComplexOrderRequest(type="BLAST", orders=[tp]))


# --- validation rules (§5.3) ---------------------------------------------------------------------

OPT = "Equity Option"


def _bad(**kw: Any) -> o.OrderRequest:
    base: dict[str, Any] = {
        "time_in_force": "Day",
        "order_type": "Limit",
        "price": Decimal("1"),
        "price_effect": "Debit",
        "legs": [o.leg(AAPL, 1, "Buy to Open")],
    }
    base.update(kw)
    return o.OrderRequest(**base)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"legs": []}, "at least one leg"),
        (
            {"legs": [o.leg(AAPL, 1, "Buy to Open"), o.leg("MSFT", 1, "Buy to Open")]},
            "exactly 1 leg",
        ),
        ({"legs": [o.leg(f"X{i}", 1, "Buy to Open", OPT) for i in range(5)]}, "at most 4 legs"),
        (
            {"legs": [o.leg("X", 1, "Buy to Open", OPT), o.leg("X", 1, "Sell to Open", OPT)]},
            "distinct",
        ),
        ({"price": None}, "need a price"),
        ({"price_effect": None}, "price-effect must be"),
        ({"price": Decimal("-1")}, "unsigned"),
        ({"value": Decimal("5"), "value_effect": "Debit"}, "mutually exclusive"),
        ({"order_type": "Market"}, "take no price"),
        (
            {"order_type": "Market", "price": None, "price_effect": None, "time_in_force": "GTC"},
            "gtc_market_orders_not_supported",
        ),
        ({"order_type": "Stop", "price": None, "price_effect": None}, "need a stop-trigger"),
        (
            {
                "order_type": "Stop",
                "price": None,
                "price_effect": None,
                "stop_trigger": Decimal(5),
                "time_in_force": "GTC",
            },
            "only allowed for closing",
        ),
        ({"order_type": "Stop Limit"}, "need a stop-trigger"),
        ({"stop_trigger": Decimal(5)}, "take no stop-trigger"),
        ({"time_in_force": "GTD"}, "need a gtc-date"),
        ({"gtc_date": date(2030, 1, 1)}, "only allowed with time-in-force GTD"),
        (
            {"time_in_force": "Ext", "legs": [o.leg("X", 1, "Buy to Open", OPT)]},
            "single-leg equity",
        ),
        ({"legs": [o.leg(AAPL, 0, "Buy to Open")]}, "quantity must be > 0"),
        ({"legs": [o.leg(AAPL, 1, "Buy")]}, "futures only"),
        ({"legs": [o.leg(AAPL, 1, "Hodl")]}, "unknown action"),
        ({"order_type": "Stop Market"}, "unknown order-type"),
        ({"price_effect": "Credit"}, "cant_buy_for_credit"),
        ({"legs": [o.leg(AAPL, 1, "Sell to Close")]}, "sell for a debit"),
        (
            {
                "order_type": "Notional Market",
                "price": None,
                "price_effect": None,
                "value": Decimal(10),
                "value_effect": "Debit",
            },
            "carry no quantity",
        ),
        (
            {
                "order_type": "Notional Market",
                "price": None,
                "price_effect": None,
                "legs": [o.leg(AAPL, None, "Buy to Open")],
            },
            "need a value",
        ),
    ],
)
def test_validation_rejects(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(OrderValidationError, match=match):
        o.validate_order(_bad(**kw))


def test_validation_accepts_valid_shapes() -> None:
    o.validate_order(_bad())
    # buy-write: stock + option in one order is fine
    o.validate_order(
        _bad(
            legs=[
                o.leg(AAPL, 100, "Buy to Open"),
                o.leg("AAPL 261218C00300000", 1, "Sell to Open", OPT),
            ]
        )
    )
    # spreads may be debit or credit whatever the leg directions
    o.validate_order(
        _bad(
            price_effect="Credit",
            legs=[o.leg("A", 1, "Buy to Open", OPT), o.leg("B", 1, "Sell to Open", OPT)],
        )
    )
    o.validate_order(_bad(time_in_force="Ext"))


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(OrderValidationError) as ei:
        o.validate_order(_bad(price=None, time_in_force="GTD", stop_trigger=Decimal(1)))
    msg = str(ei.value)
    assert "need a price" in msg and "gtc-date" in msg and "stop-trigger" in msg
    assert isinstance(ei.value, ValueError)


def test_bad_numbers() -> None:
    with pytest.raises(OrderValidationError, match="not a number"):
        o.limit_order(o.leg(AAPL, 1, "Buy to Open"), "abc")
    with pytest.raises(OrderValidationError, match="finite"):
        o.limit_order(o.leg(AAPL, 1, "Buy to Open"), float("nan"))
    with pytest.raises(OrderValidationError, match="zero"):
        o.limit_order(o.leg(AAPL, 1, "Buy to Open"), 0)
    with pytest.raises(TypeError, match="unexpected"):
        o.limit_order(o.leg(AAPL, 1, "Buy to Open"), -1, bogus=1)


# --- properties ----------------------------------------------------------------------------------


prices = st.decimals(
    min_value=Decimal("-100000"), max_value=Decimal("100000"), places=4, allow_nan=False
).filter(lambda d: d != 0)


@given(prices)
def test_signed_price_wire_form_property(p: Decimal) -> None:
    """Any signed price → unsigned exact wire price + the matching effect; and back."""
    built = o.limit_order(
        [o.leg("A", 1, "Buy to Open", OPT), o.leg("B", 1, "Sell to Open", OPT)], p
    )
    wire = json.loads(built.to_json())
    assert Decimal(wire["price"]) == abs(p)
    assert wire["price-effect"] == ("Debit" if p < 0 else "Credit")
    explicit = o.limit_order(
        [o.leg("A", 1, "Buy to Open", OPT), o.leg("B", 1, "Sell to Open", OPT)],
        abs(p),
        wire["price-effect"],
    )
    assert explicit.to_json() == built.to_json()


@given(st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("1e6"), places=4))
def test_quantity_wire_form_property(q: Decimal) -> None:
    wire = o.leg("AAPL", q, "Buy to Open").quantity
    assert Decimal(str(wire)) == q
    assert isinstance(wire, int) == (q == q.to_integral_value())


def test_rules_and_advanced_instructions_wire_form() -> None:
    from datetime import UTC, datetime

    rules = o.OrderRules(
        route_after=datetime(2026, 6, 9, 14, 30, tzinfo=UTC),
        conditions=[
            o.OrderCondition(
                action="route",
                symbol="SPY",
                instrument_type="Equity",
                indicator="last",
                comparator="gte",
                threshold=Decimal("600.5"),
                price_components=[
                    o.PriceComponent(
                        symbol="SPY",
                        instrument_type="Equity",
                        quantity=1,
                        quantity_direction="Long",
                    )
                ],
            )
        ],
    )
    built = o.limit_order(
        o.leg(AAPL, 1, "Buy to Open"),
        -1,
        rules=rules,
        strict_position_effect=False,
        partition_key="pk-1",
    )
    wire = json.loads(built.to_json())
    assert wire["advanced-instructions"] == {"strict-position-effect-validation": False}
    assert wire["partition-key"] == "pk-1"
    assert wire["rules"] == {
        "route-after": "2026-06-09T14:30:00Z",
        "conditions": [
            {
                "action": "route",
                "symbol": "SPY",
                "instrument-type": "Equity",
                "indicator": "last",
                "comparator": "gte",
                "threshold": "600.5",
                "price-components": [
                    {
                        "symbol": "SPY",
                        "instrument-type": "Equity",
                        "quantity": 1,
                        "quantity-direction": "Long",
                    }
                ],
            }
        ],
    }
