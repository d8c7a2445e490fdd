"""Every REST example body (tests/data/rest_examples) decodes into our lenient models."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttfast.errors import ApiError, AuthError, ResponseDecodeError
from ttfast.rest import TastytradeClient
from ttfast.rest import models as m
from ttfast.rest.client import parse_error

DATA = Path(__file__).parent.parent / "data" / "rest_examples"


def load(name: str) -> tuple[dict[str, Any], bytes]:
    """(provenance, body bytes) of one example file (line 1 = provenance JSON)."""
    text = (DATA / name).read_text()
    head, _, body = text.partition("\n")
    return json.loads(head), body.encode()


def data_of(name: str) -> Any:
    _, body = load(name)
    return m.json_decoder.decode(body)["data"]


# (file, model, is_list)
RESPONSES: list[tuple[str, type[m.ApiModel], bool]] = [
    ("accounts_balances.GET.response.docs.json", m.Balance, False),
    ("accounts_positions.GET.response.docs.json", m.Position, True),
    ("accounts_transactions.GET.response.docs.json", m.Transaction, True),
    ("accounts_transactions_total_fees.GET.response.docs.json", m.TotalFees, False),
    ("accounts_orders.POST.response.routed.docs.json", m.OrderResponse, False),
    ("accounts_orders_dry_run.POST.response.json", m.OrderResponse, False),
    ("accounts_orders_live.GET.response.json", m.Order, True),
    ("api_quote_tokens.GET.response.docs.json", m.QuoteToken, False),
    ("instruments_cryptocurrencies.GET.response.docs.json", m.Cryptocurrency, True),
    ("instruments_equities.GET.response.docs.json", m.Equity, True),
    ("instruments_equity_options_symbol.GET.response.docs.json", m.EquityOption, False),
    ("instruments_future_options_symbol.GET.response.docs.json", m.FutureOption, False),
    ("instruments_futures.GET.response.docs.json", m.Future, True),
    ("option_chains_nested.GET.response.docs.json", m.NestedOptionChain, True),
]


def test_every_response_example_is_covered() -> None:
    covered = {f for f, _, _ in RESPONSES} | {"customers_me_accounts.GET.response.data.json"}
    responses = {
        p.name
        for p in DATA.glob("*.json")
        if load(p.name)[0]["kind"].startswith("response") and "quantity_decimal" not in p.name
    }
    assert responses <= covered, responses - covered


@pytest.mark.parametrize(("name", "model", "is_list"), RESPONSES, ids=[r[0] for r in RESPONSES])
def test_example_decodes(name: str, model: type[m.ApiModel], is_list: bool) -> None:
    data = data_of(name)
    raws = data["items"] if is_list else [data]
    assert raws
    for raw in raws:
        obj = m.convert(raw, model)
        assert obj.raw == raw  # raw always reachable, identical to the server's object
        # every modelled field that the server sent is populated (nothing silently dropped)
        for f in msgspec.structs.fields(obj):
            if f.encode_name in raw and raw[f.encode_name] is not None:
                assert getattr(obj, f.name) is not None, (name, f.encode_name)


def test_accounts_capture() -> None:
    _, body = load("customers_me_accounts.GET.response.data.json")
    data = m.json_decoder.decode(body)  # this capture is the content of "data" only
    items = [m.convert(i, m.AccountAuthority) for i in data["items"]]
    assert items[0].account is not None
    assert items[0].account.account_number == "REDACTED"
    assert items[0].account.is_closed is False
    assert items[0].account.raw is not None and "nickname" in items[0].account.raw


def test_account_number_is_required() -> None:
    """Every account call takes the number, so an account without one is a decode error (a
    ResponseDecodeError from the client), never an Account whose number is None."""
    assert m.convert({"account-number": "5WT01"}, m.Account).account_number == "5WT01"
    with pytest.raises(msgspec.ValidationError, match="account-number"):
        m.convert({"nickname": "x"}, m.Account)
    items = [{"account": {"account-number": "5WT01"}}, {"account": {"nickname": "x"}}]
    r = TastytradeClient._decode(200, json.dumps({"data": {"items": items}}).encode(), "/p")
    with pytest.raises(ResponseDecodeError, match="account-number"):
        TastytradeClient._items(r, m.AccountAuthority, "/p")


def test_balance_values_are_exact_decimals() -> None:
    b = m.convert(data_of("accounts_balances.GET.response.docs.json"), m.Balance)
    assert b.cash_balance == Decimal("7218.997")
    assert b.maintenance_excess == Decimal("22828.52392233")
    assert b.snapshot_date == date(2023, 7, 30)
    assert isinstance(b.updated_at, datetime)
    assert m.signed(b.pending_cash, b.pending_cash_effect) == Decimal("0.0")


def test_positions_quantity_string_and_int() -> None:
    p = m.convert(data_of("accounts_positions.GET.response.docs.json")["items"][0], m.Position)
    assert p.quantity == Decimal(100) and p.multiplier == Decimal(1)
    # the same field as a JSON number (QC sandbox fixture style) decodes the same way
    raw = dict(p.raw or {})
    raw["quantity"] = 100
    assert m.convert(raw, m.Position).quantity == Decimal(100)


def test_float_numbers_become_exact_decimals() -> None:
    raw = m.json_decoder.decode(b'{"price": 0.1, "size": "3", "updated-at": 1688584052750}')
    o = m.convert(raw, m.Order)
    assert o.price == Decimal("0.1")  # from the text, not float(0.1)
    assert o.size == Decimal(3)
    assert o.updated_at == 1688584052750


def test_dry_run_order_has_no_id_and_epoch_zero() -> None:
    r = m.convert(data_of("accounts_orders_dry_run.POST.response.json"), m.OrderResponse)
    assert r.order is not None and r.order.id is None and r.order.updated_at == 0
    assert r.order.legs is not None and len(r.order.legs) == 2
    assert r.buying_power_effect is not None
    assert r.buying_power_effect.change_in_buying_power == Decimal("102.302")
    assert m.signed(
        r.buying_power_effect.change_in_buying_power,
        r.buying_power_effect.change_in_buying_power_effect,
    ) == Decimal("-102.302")
    assert r.fee_calculation is not None and r.fee_calculation.total_fees == Decimal("2.302")
    # nested models carry their own raw
    assert r.order.legs[0].raw is not None and r.order.legs[0].raw["symbol"].startswith("SPY")


def test_unknown_fields_ignored_and_everything_optional() -> None:
    o = m.convert({"brand-new-field": {"x": 1}, "id": "42"}, m.Order)
    assert o.id == 42 and o.status is None
    assert o.raw is not None and o.raw["brand-new-field"] == {"x": 1}
    assert m.convert({}, m.Balance).cash_balance is None


def test_impossible_value_raises_validation_error() -> None:
    with pytest.raises(msgspec.ValidationError):
        m.convert({"price": "not-a-number-at-all"}, m.Order)


def test_quote_token_repr_hides_token() -> None:
    q = m.convert(
        {"token": "SECRET-QT", "dxlink-url": "wss://x/realtime", "level": "api"}, m.QuoteToken
    )
    assert "SECRET-QT" not in repr(q)
    assert "SECRET-QT" not in repr(q.raw)


def test_nested_chain_structure() -> None:
    chain = m.convert(
        data_of("option_chains_nested.GET.response.docs.json")["items"][0], m.NestedOptionChain
    )
    assert chain.expirations is not None
    strike = chain.expirations[0].strikes[0]  # type: ignore[index]
    assert strike.strike_price == Decimal("370.0")
    assert strike.call_streamer_symbol == ".SPY230706C370"


ERRORS = [
    ("error.401.token_invalid.response.reconstructed.json", 401, AuthError, "token_invalid", ()),
    ("error.406.version_not_supported.response.json", 406, ApiError, 406, ()),
    (
        "error.422.preflight_check_failure.cant_buy_for_credit.response.json",
        422,
        ApiError,
        "preflight_check_failure",
        ("cant_buy_for_credit",),
    ),
    ("error.not_permitted.response.json", 403, AuthError, "not_permitted", ()),
    (
        "error.preflight_check_failure.gtc_market.response.json",
        422,
        ApiError,
        "preflight_check_failure",
        ("gtc_market_orders_not_supported",),
    ),
]


@pytest.mark.parametrize(("name", "status", "cls", "code", "codes"), ERRORS)
def test_error_examples_parse(
    name: str, status: int, cls: type[ApiError], code: object, codes: tuple[str, ...]
) -> None:
    _, body = load(name)
    err = parse_error(status, body, "/accounts/5WT00000/orders")
    assert type(err) is cls
    assert err.status == status and err.code == code and err.codes == codes
    assert err.path == "/accounts/5WT00000/orders"
    assert str(code) in str(err)


def test_error_domain_reason_and_oauth_shapes() -> None:
    body = b'{"error": {"code": "x", "message": "y", "errors": [{"domain": "d", "reason": "r"}]}}'
    assert parse_error(400, body, "/p").errors == (("d", "r"),)
    e = parse_error(
        400,
        b'{"error_code": "invalid_request", "error_description": "User is not a customer"}',
        "/oauth/token",
    )
    assert e.code == "invalid_request" and "not a customer" in e.message
    e = parse_error(401, b'{"error": "invalid_grant", "error_description": "nope"}', "/t")
    assert isinstance(e, AuthError) and e.code == "invalid_grant"
    e = parse_error(502, b"<html>bad gateway</html>", "/t")
    assert e.status == 502 and e.code is None and "non-JSON" in e.message


@given(
    st.decimals(
        allow_nan=False,
        allow_infinity=False,
        places=6,
        min_value=Decimal("-1e12"),
        max_value=Decimal("1e12"),
    )
)
def test_decimal_fields_accept_number_or_string(d: Decimal) -> None:
    """A money field decodes to the same exact Decimal whether sent as a JSON number or string."""
    text = format(d, "f")
    as_num = m.convert(m.json_decoder.decode(f'{{"cash-balance": {text}}}'.encode()), m.Balance)
    as_str = m.convert(m.json_decoder.decode(f'{{"cash-balance": "{text}"}}'.encode()), m.Balance)
    assert as_num.cash_balance == as_str.cash_balance == d
