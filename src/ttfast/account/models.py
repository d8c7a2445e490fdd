"""Account-stream notification models (spec §7) that the REST models do not already cover.

The stream pushes full object representations: ``Order`` and ``ComplexOrder`` are the REST
models, ``CurrentPosition`` is the REST ``Position`` and ``AccountBalance`` the REST ``Balance``
(same JSON shapes; the aliases carry the stream's type names). ``ExternalTransaction`` and
``OrderChain`` exist only on the stream; they are lenient like every ``ApiModel`` (unknown fields
ignored, everything optional, ``.raw`` keeps the server's object).

This module may import only msgspec, the stdlib and ``ttfast.rest.models``.
"""

from __future__ import annotations

from decimal import Decimal

from ttfast.rest.models import (
    ApiModel,
    Balance,
    ComplexOrder,
    Order,
    Position,
    Timestamp,
    TradingStatus,
)

__all__ = [
    "AccountBalance",
    "ComplexOrder",
    "CurrentPosition",
    "ExternalTransaction",
    "Order",
    "OrderChain",
    "TradingStatus",
]

#: the stream's ``CurrentPosition`` is the REST position object
CurrentPosition = Position
#: the stream's ``AccountBalance`` is the REST balance object
AccountBalance = Balance


class ExternalTransaction(ApiModel):
    """A deposit/withdrawal (ACH, wire...) as the stream reports it."""

    id: int | None = None
    account_number: str | None = None
    amount: Decimal | None = None
    direction: str | None = None
    funds_available_date: str | None = None
    transfer_method: str | None = None
    state: str | None = None
    is_cancelable: bool | None = None
    is_clearing_accepted: bool | None = None
    banking_date: str | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class OrderChain(ApiModel):
    """A chain of related orders (roll, close...) with its running totals."""

    id: int | None = None
    account_number: str | None = None
    description: str | None = None
    underlying_symbol: str | None = None
    computed_data: dict[str, object] | None = None
    lite_nodes_sizes: int | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
