"""REST response decoding: ttfast's msgspec models vs the tastytrade SDK's pydantic models.

Same work on both sides: bytes of a 500-order ``/orders/live`` body → a list of typed orders with
Decimal prices (ours: msgspec JSON decode with exact-Decimal floats + lenient convert + raw
attached; the SDK's: ``json.loads`` + ``PlacedOrder(**item)``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench import datagen
from bench.gatelib import RatioCase
from ttfast import models as m

BODY = datagen.rest_live_orders_body(500)
N = 500


def _ttfast() -> list[m.Order]:
    items = m.json_decoder.decode(BODY)["data"]["items"]
    return [m.convert(i, m.Order) for i in items]


try:
    from tastytrade.order import PlacedOrder

    def _sdk() -> list[Any]:
        return [PlacedOrder(**i) for i in json.loads(BODY)["data"]["items"]]

except ImportError:  # pragma: no cover - the SDK is a test/bench extra
    _sdk = None  # type: ignore[assignment]


def test_same_result() -> None:
    ours = _ttfast()
    assert len(ours) == N and ours[0].price is not None
    if _sdk is not None:
        theirs = _sdk()
        assert [o.id for o in ours] == [o.id for o in theirs]
        assert [abs(o.price) for o in ours] == [abs(o.price) for o in theirs]  # type: ignore[arg-type]


@pytest.mark.benchmark(group="rest-decode")
def test_bench_ttfast_decode_orders(benchmark: pytest.FixtureDef) -> None:  # type: ignore[type-arg]
    benchmark(_ttfast)


@pytest.mark.benchmark(group="rest-decode")
def test_bench_sdk_decode_orders(benchmark: pytest.FixtureDef) -> None:  # type: ignore[type-arg]
    if _sdk is None:
        pytest.skip("tastytrade SDK not installed")
    benchmark(_sdk)


GATE_RATIOS = (
    []
    if _sdk is None
    else [RatioCase("rest.decode_orders.vs_sdk", _ttfast, _sdk, floor=1.3, target=3.0, units=N)]
)
GATE_CALLGRIND: list[Any] = []
