"""What the local REST server knows: :class:`SimState` (accounts, orders, tokens, counters) and
its fault switches (:class:`Fault`). Tests mutate both freely; handlers reach the state of their
app through :func:`state_of`.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from aiohttp import web

from ttfast.sim.rest.fixtures import build_chain, seed_balance, seed_positions, seed_transactions

__all__ = ["FAULT_KINDS", "STATE_KEY", "Fault", "FaultKind", "SimState", "state_of"]

FaultKind = Literal["latency", "hang", "status", "malformed", "drop"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)


@dataclass
class Fault:
    """One fault switch. Matched against each request (first match wins, ``count`` consumed).

    kind: ``latency`` (sleep ``seconds`` then serve), ``hang`` (sleep ``seconds`` before
    answering: provokes client timeouts), ``status`` (answer ``status`` with ``body`` or a
    standard error body), ``malformed`` (200 with truncated JSON), ``drop`` (close the
    connection without an answer). ``after_handler``: run the real handler first (the order is
    accepted/stored), then misbehave. ``count``: times to fire (-1 = forever). ``method`` /
    ``path`` (regex, searched) restrict the requests it applies to.
    """

    kind: FaultKind
    count: int = 1
    method: str | None = None
    path: str | None = None
    status: int = 503
    seconds: float = 0.0
    after_handler: bool = False
    body: Any = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")

    def matches(self, request: web.Request) -> bool:
        if self.count == 0:
            return False
        if self.method and request.method.upper() != self.method.upper():
            return False
        return not (self.path and not re.search(self.path, request.path))


@dataclass
class SimState:
    """Everything the server knows; mutate freely from tests."""

    account_numbers: tuple[str, ...] = ("5WT00000", "5WT00001")
    token_ttl: float = 900.0
    credentials: tuple[str, str] | None = None
    dxlink_url: str = "ws://127.0.0.1:0/realtime"
    quote_token: str = field(default_factory=lambda: "sim-quote-" + secrets.token_hex(8))
    latency: float = 0.0
    faults: list[Fault] = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    complex_orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    transactions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: account -> symbol -> position (the seeded ones, then whatever fills made)
    positions: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: account -> the USD balance (recomputed on every fill)
    balances: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: quantity above which an order fills in parts (at most this much per market tick)
    partial_fill_above: int = 500
    #: accepted order POSTs (placed orders, complex members included, dry-runs excluded)
    orders_accepted: int = 0
    token_grants: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100001))

    def __post_init__(self) -> None:
        for n in self.account_numbers:
            self.transactions.setdefault(n, seed_transactions(n, 7))
            self.positions.setdefault(n, {p["symbol"]: p for p in seed_positions(n)})
            self.balances.setdefault(n, seed_balance(n))
        self.chains: dict[str, dict[str, Any]] = {}
        self.options: dict[str, dict[str, Any]] = {}
        for root, center in (("SPY", 600), ("AAPL", 250)):
            chain, opts = build_chain(root, center)
            self.chains[root] = chain
            self.options.update(opts)

    def next_id(self) -> int:
        return next(self._ids)

    def summary(self) -> dict[str, Any]:
        return {
            "orders_accepted": self.orders_accepted,
            "token_grants": self.token_grants,
            "orders": len(self.orders),
            "complex_orders": len(self.complex_orders),
            "requests": dict(self.requests),
            "faults": [asdict(f) for f in self.faults],
        }


STATE_KEY = web.AppKey("ttfast_sim_state", SimState)


def state_of(request: web.Request) -> SimState:
    st: SimState = request.app[STATE_KEY]
    return st
