"""The fast list decoding path (models.convert_list + generated raw walkers) vs the oracle."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from bench import datagen
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.oracles import models as oracle

from ttfast.errors import ResponseDecodeError
from ttfast.rest import TastytradeClient
from ttfast.rest import models as m

DATA = Path(__file__).parent.parent / "data" / "rest_examples"


def body_of(name: str) -> bytes:
    return (DATA / name).read_text().partition("\n")[2].encode()


def assert_same(ours: Any, theirs: Any, raw: Any) -> None:
    """Same field values, and ``.raw`` is the very JSON object on every model, at every depth."""
    assert type(ours) is type(theirs)
    if isinstance(ours, list):
        assert len(ours) == len(theirs)
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(a, b, raw[i] if isinstance(raw, list) else None)
        return
    if isinstance(ours, dict):
        assert ours.keys() == theirs.keys()
        for k in ours:
            assert_same(ours[k], theirs[k], raw.get(k) if isinstance(raw, dict) else None)
        return
    if not isinstance(ours, m.ApiModel):
        assert ours == theirs
        return
    assert ours.raw == theirs.raw == raw
    if type(ours) is not m.QuoteToken:
        assert ours.raw is raw  # not a copy
    for f in msgspec.structs.fields(ours):
        if f.name != "raw":
            sub = raw.get(f.encode_name) if isinstance(raw, dict) else None
            assert_same(getattr(ours, f.name), getattr(theirs, f.name), sub)


LISTS = [
    ("accounts_positions.GET.response.docs.json", m.Position),
    ("accounts_transactions.GET.response.docs.json", m.Transaction),
    ("accounts_orders_live.GET.response.json", m.Order),
    ("instruments_equities.GET.response.docs.json", m.Equity),
    ("instruments_futures.GET.response.docs.json", m.Future),
    ("option_chains_nested.GET.response.docs.json", m.NestedOptionChain),
]


@pytest.mark.parametrize(("name", "model"), LISTS, ids=[n for n, _ in LISTS])
def test_examples_match_oracle(name: str, model: type[m.ApiModel]) -> None:
    items = m.json_decoder.decode(body_of(name))["data"]["items"]
    assert_same(m.convert_list(items, model), oracle.convert_list(items, model), items)


@pytest.mark.parametrize(
    ("body", "model"),
    [
        (datagen.rest_live_orders_body(40), m.Order),
        (datagen.rest_positions_body(40), m.Position),
        (datagen.rest_nested_chain_body(3, 7), m.NestedOptionChain),
    ],
    ids=["orders", "positions", "chain"],
)
def test_bench_bodies_match_oracle(body: bytes, model: type[m.ApiModel]) -> None:
    items = m.json_decoder.decode(body)["data"]["items"]
    assert_same(m.convert_list(items, model), oracle.convert_list(items, model), items)


def test_single_object_responses_match_oracle() -> None:
    for name, model in [
        ("accounts_orders_dry_run.POST.response.json", m.OrderResponse),
        ("accounts_orders.POST.response.routed.docs.json", m.OrderResponse),
        ("api_quote_tokens.GET.response.docs.json", m.QuoteToken),
        ("accounts_balances.GET.response.docs.json", m.Balance),
    ]:
        data = m.json_decoder.decode(body_of(name))["data"]
        assert_same(m.convert(data, model), oracle.convert(data, model), data)


def test_fills_and_single_nested_models_get_raw() -> None:
    fill = {"fill-id": "f1", "quantity": "1", "fill-price": 1.05, "extra": [1]}
    leg = {"symbol": "SPY", "quantity": 2, "fills": [fill, {**fill, "fill-id": "f2"}]}
    order = {"id": 7, "legs": [leg, {"symbol": "QQQ", "fills": None}], "new-field": True}
    resp = {"order": order, "warnings": [{"code": "w"}], "buying-power-effect": {"impact": "1"}}
    r = m.convert(resp, m.OrderResponse)
    assert r.raw is resp and r.order is not None and r.order.raw is order
    assert r.order.legs is not None and r.order.legs[0].fills is not None
    assert [f.raw for f in r.order.legs[0].fills] == [fill, {**fill, "fill-id": "f2"}]
    assert r.order.legs[0].fills[0].fill_price == Decimal("1.05")
    assert r.order.legs[1].raw == {"symbol": "QQQ", "fills": None}
    assert r.warnings is not None and r.warnings[0].raw == {"code": "w"}
    assert r.buying_power_effect is not None and r.buying_power_effect.raw == {"impact": "1"}
    [c] = m.convert_list(
        [{"complex-order": {"orders": [order], "trigger-order": order}}], m.ComplexOrderResponse
    )
    assert c.complex_order is not None and c.complex_order.trigger_order is not None
    assert c.complex_order.trigger_order.raw is order
    assert c.complex_order.orders is not None and c.complex_order.orders[0].legs is not None
    assert c.complex_order.orders[0].legs[0].fills[0].raw is fill  # type: ignore[index]


def test_quote_token_raw_hidden_in_lists_too() -> None:
    [q] = m.convert_list([{"token": "SECRET-QT", "dxlink-url": "wss://x"}], m.QuoteToken)
    assert q.raw == {"token": "SECRET-QT", "dxlink-url": "wss://x"}
    assert "SECRET-QT" not in repr(q) and "SECRET-QT" not in repr(q.raw)
    assert "SECRET-QT" not in repr([q])


class Node(m.ApiModel):
    """A self-nesting model (user-defined models may be recursive) with an exotic field shape."""

    name: str | None = None
    children: list[Node] | None = None
    parent: Node | None = None
    by_key: dict[str, Node] | None = None
    kids: list[Node] = msgspec.field(default_factory=list)  # not optional
    either: Node | list[Node] | None = None  # a union of shapes: generic walk


def test_recursive_and_exotic_models() -> None:
    leaf = {"name": "leaf"}
    tree = {
        "name": "root",
        "children": [{"name": "a", "children": [leaf]}, {"name": "b", "parent": leaf}],
        "by-key": {"x": {"name": "x", "children": [leaf]}},
        "kids": [{"name": "k", "kids": [leaf]}],
        "either": [leaf, {"name": "e", "either": leaf}],
    }
    [ours] = m.convert_list([tree], Node)
    assert_same(ours, oracle.convert(tree, Node), tree)
    assert ours.children is not None and ours.children[0].children is not None
    assert ours.children[0].children[0].raw is leaf
    assert ours.by_key is not None and ours.by_key["x"].raw is tree["by-key"]["x"]  # type: ignore[index]
    assert ours.kids[0].raw is tree["kids"][0] and ours.kids[0].kids[0].raw is leaf  # type: ignore[index]
    assert isinstance(ours.either, list) and isinstance(ours.either[1].either, Node)
    assert ours.either[0].raw is leaf and ours.either[1].either.raw is leaf


def test_empty_and_non_dict_items() -> None:
    assert m.convert_list([], m.Order) == []
    with pytest.raises(msgspec.ValidationError, match=r"\$\[1\]"):
        m.convert_list([{"id": 1}, None], m.Order)
    with pytest.raises(msgspec.ValidationError, match=r"\$\[0\]\.price"):
        m.convert_list([{"price": "not-a-number"}], m.Order)


def test_client_items_error_names_the_bad_item() -> None:
    items = [{"id": 1, "price": "1.5"}, {"id": 2, "price": "not-a-number"}]
    body = json.dumps({"data": {"items": items}}).encode()
    r = TastytradeClient._decode(200, body, "/p")
    with pytest.raises(ResponseDecodeError) as ei:
        TastytradeClient._items(r, m.Order, "/p")
    assert ei.value.code == "unexpected_shape" and "Order" in str(ei.value)
    assert ei.value.raw == items[1]  # type: ignore[attr-defined]
    empty = TastytradeClient._decode(200, b'{"data": {"items": []}}', "/p")
    assert TastytradeClient._items(empty, m.Order, "/p") == []


money = st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-1e9, max_value=1e9)
fills = st.lists(
    st.fixed_dictionaries(
        {"fill-id": st.text(max_size=5), "quantity": money.map(str)},
        optional={"fill-price": money.map(lambda d: format(d, "f")), "junk": st.integers()},
    ),
    max_size=2,
)
legs = st.lists(
    st.fixed_dictionaries(
        {"symbol": st.text(max_size=8)},
        optional={"quantity": money.map(str), "fills": st.none() | fills, "x-new": st.booleans()},
    ),
    max_size=4,
)
orders = st.fixed_dictionaries(
    {"id": st.integers(0, 2**40)},
    optional={
        "price": money.map(str),
        "legs": st.none() | legs,
        "status": st.sampled_from(["Live", "Filled", "Some New Status"]),
        "updated-at": st.integers(0, 2**45),
        "unknown-object": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    },
)


@settings(max_examples=60, deadline=None)
@given(st.lists(orders, max_size=6))
def test_convert_list_matches_oracle(items: list[dict[str, Any]]) -> None:
    raws = m.json_decoder.decode(json.dumps(items).encode())  # through JSON, as from the server
    assert_same(m.convert_list(raws, m.Order), oracle.convert_list(raws, m.Order), raws)
