"""Order tracker for bots: follow one order from Received to a terminal status over the stream.

What it may touch: an :class:`~ttfast.account.streamer.AccountStreamer` (its order callbacks and
kept ``orders``) and, to resolve an :class:`~ttfast.errors.OrderOutcomeUnknown`, the REST
client's ``find_order_by_external_id`` (GETs). Pure bookkeeping otherwise.

A tracked order is matched by id or by ``external-identifier`` (an order found by its tag is then
followed by id). Statuses go Received -> Routed -> In Flight -> Live -> Filled / Cancelled /
Rejected / Expired (or Removed); a cancel-replace is followed to the replacing order. Fills are
collected once each (by ``fill-id``), so a partial fill is visible before the order is done.
The streamer re-hydrates from REST after every reconnect, so a fill that happened while
disconnected still reaches the tracker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from ttfast.account.streamer import TERMINAL_STATUSES, AccountStreamer
from ttfast.errors import OrderOutcomeUnknown, TtfastError
from ttfast.rest.models import Fill, Order

if TYPE_CHECKING:
    from ttfast.rest.client import TastytradeClient

__all__ = ["OrderNotFilled", "OrderTracker", "TrackedOrder"]


class OrderNotFilled(TtfastError):
    """The order reached a terminal status other than ``Filled`` (``order`` is its last state;
    it may hold partial fills)."""

    def __init__(self, order: Order) -> None:
        super().__init__(f"order {order.id} ended {order.status!r}, not filled")
        self.order = order
        self.status = order.status


class TrackedOrder:
    """One order followed by an :class:`OrderTracker`.

    ``order`` is the latest state (``None`` until the order is seen), ``status`` its status,
    ``history`` every distinct status in the order seen, ``fills`` each fill once (all legs),
    ``filled_quantity`` the smallest filled quantity over the legs (the number of units of a
    1:1 spread filled; an equity order's filled shares).
    """

    def __init__(
        self,
        order_id: int | None,
        external_identifier: str | None,
        on_update: Callable[[TrackedOrder], None] | None = None,
    ) -> None:
        self.order_id = order_id
        self.external_identifier = external_identifier
        self.order: Order | None = None
        self.history: list[str] = []
        self.fills: list[Fill] = []
        self._fill_ids: set[str] = set()
        self._on_update = on_update
        self._done: asyncio.Future[Order] | None = None
        self._changed: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        return (
            f"TrackedOrder(id={self.order_id}, external_identifier={self.external_identifier!r}, "
            f"status={self.status!r}, filled={self.filled_quantity})"
        )

    @property
    def status(self) -> str | None:
        return self.order.status if self.order is not None else None

    @property
    def is_done(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_filled(self) -> bool:
        return self.status == "Filled"

    @property
    def filled_quantity(self) -> Decimal:
        o = self.order
        if o is None or not o.legs:
            return Decimal(0)
        per_leg = []
        for leg in o.legs:
            if leg.quantity is not None and leg.remaining_quantity is not None:
                per_leg.append(leg.quantity - leg.remaining_quantity)
            else:
                per_leg.append(sum((f.quantity or Decimal(0) for f in leg.fills or ()), Decimal(0)))
        return min(per_leg)

    @property
    def remaining_quantity(self) -> Decimal | None:
        o = self.order
        if o is None or not o.legs:
            return None
        rem = [leg.remaining_quantity for leg in o.legs if leg.remaining_quantity is not None]
        return max(rem) if rem else None

    def _future(self) -> asyncio.Future[Order]:
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            if self.order is not None and self.is_done:
                self._done.set_result(self.order)
        return self._done

    def _update(self, order: Order) -> bool:
        """Take a newer state; False if it is stale (a non-terminal state after a terminal
        one) and was ignored."""
        if self.is_done and order.status not in TERMINAL_STATUSES:
            return False
        self.order = order
        if order.id is not None:
            self.order_id = order.id
        if order.external_identifier and not self.external_identifier:
            self.external_identifier = order.external_identifier
        st = order.status
        if st is not None and (not self.history or self.history[-1] != st):
            self.history.append(st)
        for leg in order.legs or ():
            for f in leg.fills or ():
                fid = f.fill_id or f"{leg.symbol}:{f.ext_exec_id}:{f.filled_at}:{f.quantity}"
                if fid not in self._fill_ids:
                    self._fill_ids.add(fid)
                    self.fills.append(f)
        if self.is_done and self._done is not None and not self._done.done():
            self._done.set_result(order)
        waiters, self._changed = self._changed, []
        for w in waiters:
            if not w.done():
                w.set_result(None)
        if self._on_update is not None:
            self._on_update(self)
        return True

    async def done(self, timeout: float | None = None) -> Order:
        """The order once terminal (any terminal status)."""
        return await asyncio.wait_for(asyncio.shield(self._future()), timeout)

    async def filled(self, timeout: float | None = None) -> Order:
        """The order once ``Filled``; :class:`OrderNotFilled` if it ended otherwise."""
        order = await self.done(timeout)
        if order.status != "Filled":
            raise OrderNotFilled(order)
        return order

    async def changed(self, timeout: float | None = None) -> Order | None:
        """Wait for the next update (a status change or a fill) and return the order."""
        fut = asyncio.get_running_loop().create_future()
        self._changed.append(fut)
        await asyncio.wait_for(fut, timeout)
        return self.order


OrderRef = int | str | TrackedOrder | Order


class OrderTracker:
    """Follows orders over an :class:`AccountStreamer`::

        tracker = OrderTracker(stream)
        resp = await client.place_order(acct, order)
        filled = await tracker.filled(resp.order.id, timeout=30)

    A reference is an order id (``int``), an external identifier (``str``), an ``Order`` or a
    :class:`TrackedOrder`. After :class:`~ttfast.errors.OrderOutcomeUnknown`, use
    :meth:`resolve`: it looks the order up by its external identifier (REST) while already
    listening for it on the stream.
    """

    def __init__(self, streamer: AccountStreamer, client: TastytradeClient | None = None) -> None:
        self.streamer = streamer
        self.client = client if client is not None else streamer.client
        self._by_id: dict[int, TrackedOrder] = {}
        self._by_ext: dict[str, TrackedOrder] = {}
        streamer.add_order_callback(self._on_order)

    def close(self) -> None:
        """Stop following (pending waits stay pending)."""
        with contextlib.suppress(ValueError):
            self.streamer.remove_order_callback(self._on_order)

    def __enter__(self) -> OrderTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_order(self, order: Order) -> None:
        t: TrackedOrder | None = None
        if order.id is not None:
            t = self._by_id.get(order.id)
        if t is None and order.external_identifier:
            t = self._by_ext.get(order.external_identifier)
        if t is None:
            return
        if order.id is not None and order.id not in self._by_id:
            self._by_id[order.id] = t
        if order.status == "Cancelled" and order.replacing_order_id is not None:
            # cancel-replace: follow the replacing order (its own updates come by id)
            new_id = order.replacing_order_id
            self._by_id[new_id] = t
            if "Replaced" not in t.history:
                t.history.append("Replaced")
            t.order_id = new_id
            known = self.streamer.orders.get(new_id)
            if known is not None:
                t._update(known)
            return
        if t.order_id is not None and order.id is not None and order.id != t.order_id:
            return  # an older order of a replaced chain
        t._update(order)

    def track(
        self,
        ref: OrderRef | None = None,
        *,
        external_identifier: str | None = None,
        on_update: Callable[[TrackedOrder], None] | None = None,
    ) -> TrackedOrder:
        """Start following an order (idempotent: the same reference gives the same object)."""
        if isinstance(ref, TrackedOrder):
            return ref
        order_id: int | None = None
        seed: Order | None = None
        if isinstance(ref, Order):
            order_id, seed = ref.id, ref
            external_identifier = external_identifier or ref.external_identifier
        elif isinstance(ref, str):
            external_identifier = ref
        elif isinstance(ref, int):
            order_id = ref
        if order_id is None and not external_identifier:
            raise ValueError("an order id or an external identifier is required")
        t = (self._by_id.get(order_id) if order_id is not None else None) or (
            self._by_ext.get(external_identifier) if external_identifier else None
        )
        if t is None:
            t = TrackedOrder(order_id, external_identifier, on_update)
        if order_id is not None:
            self._by_id[order_id] = t
            t.order_id = t.order_id or order_id
        if external_identifier:
            self._by_ext[external_identifier] = t
            t.external_identifier = t.external_identifier or external_identifier
        known = self._known(t)
        if known is not None:
            t._update(known)
        elif seed is not None and t.order is None:
            t._update(seed)
        return t

    def _known(self, t: TrackedOrder) -> Order | None:
        orders = self.streamer.orders
        if t.order_id is not None and t.order_id in orders:
            return orders[t.order_id]
        if t.external_identifier:
            for o in orders.values():
                if o.external_identifier == t.external_identifier:
                    return o
        return None

    def untrack(self, ref: OrderRef) -> None:
        t = self.track(ref)
        for k in [k for k, v in self._by_id.items() if v is t]:
            del self._by_id[k]
        for e in [e for e, v in self._by_ext.items() if v is t]:
            del self._by_ext[e]

    async def filled(self, ref: OrderRef, timeout: float | None = None) -> Order:
        """The order once ``Filled``; :class:`OrderNotFilled` if it ended otherwise,
        ``TimeoutError`` after ``timeout`` seconds."""
        return await self.track(ref).filled(timeout)

    async def done(self, ref: OrderRef, timeout: float | None = None) -> Order:
        """The order once terminal (Filled, Cancelled, Rejected, Expired...)."""
        return await self.track(ref).done(timeout)

    async def resolve(
        self, exc: OrderOutcomeUnknown, account_number: str, *, search_days: int = 2
    ) -> TrackedOrder | None:
        """After ``place_order``/``replace_order`` raised ``exc``: the tracked order if it
        exists (found on the stream or by ``find_order_by_external_id``), else ``None`` (it
        was never created: placing it again is safe)."""
        ext = exc.external_identifier
        if not ext:
            if exc.order_id is None:
                return None
            return self.track(int(exc.order_id))
        t = self.track(external_identifier=ext)  # listen while the lookup runs
        if t.order is not None:
            return t
        found = await self.client.find_order_by_external_id(
            account_number, ext, search_days=search_days
        )
        if found is not None:
            return self.track(found, external_identifier=ext)
        if t.order is not None:  # arrived on the stream during the lookup
            return t
        self.untrack(t)
        return None
