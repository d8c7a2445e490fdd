"""OrderTracker and the streamer's kept state / re-hydration diff, without a socket.

Notifications are handed to the (never opened) streamer's delivery path, as its frame handler
and its REST re-hydration do.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from ttfast.account import AccountStreamer, Notification, OrderNotFilled, OrderTracker
from ttfast.account.streamer import default_streamer_url
from ttfast.rest.models import Balance, Order, Position, convert
from ttfast.rest.session import OAuthSession

ACCT = "5WT00000"


def mk_order(oid: int, status: str, filled: int = 0, qty: int = 10, **kw: Any) -> Order:
    fills = [{"fill-id": f"f{oid}-{i}", "quantity": 1, "fill-price": "1.5"} for i in range(filled)]
    raw = {
        "id": oid,
        "account-number": ACCT,
        "status": status,
        "legs": [
            {
                "symbol": "AAPL",
                "quantity": qty,
                "remaining-quantity": qty - filled,
                "action": "Buy to Open",
                "fills": fills,
            }
        ],
        **kw,
    }
    return convert(raw, Order)


def streamer() -> AccountStreamer:
    return AccountStreamer(OAuthSession("cs", "rt", base_url="http://127.0.0.1:9"), [ACCT])


def deliver(s: AccountStreamer, o: Any, type_: str = "Order", source: str = "stream") -> None:
    s._deliver(Notification(type_, o, 1, source))


async def test_statuses_partial_fills_and_filled() -> None:
    s = streamer()
    t = OrderTracker(s).track(7)
    assert t.status is None and not t.is_done
    for st in ("Received", "Routed", "In Flight", "Live"):
        deliver(s, mk_order(7, st))
    deliver(s, mk_order(7, "Live", filled=3))
    deliver(s, mk_order(7, "Live", filled=3))  # a duplicate: no new fill
    assert t.filled_quantity == 3 and t.remaining_quantity == 7 and len(t.fills) == 3
    waiter = asyncio.ensure_future(t.filled(timeout=5))
    await asyncio.sleep(0)
    assert not waiter.done()
    deliver(s, mk_order(7, "Filled", filled=10))
    order = await waiter
    assert order.status == "Filled" and t.filled_quantity == 10 and len(t.fills) == 10
    assert t.history == ["Received", "Routed", "In Flight", "Live", "Filled"]
    deliver(s, mk_order(7, "Live", filled=3))  # stale after terminal: ignored
    assert t.status == "Filled"


@pytest.mark.parametrize("status", ["Cancelled", "Rejected", "Expired"])
async def test_other_terminal_statuses_raise_from_filled(status: str) -> None:
    s = streamer()
    tracker = OrderTracker(s)
    deliver(s, mk_order(8, "Live", filled=2))
    deliver(s, mk_order(8, status, filled=2))
    assert (await tracker.done(8, timeout=5)).status == status
    with pytest.raises(OrderNotFilled) as ei:
        await tracker.filled(8, timeout=5)
    assert ei.value.order.id == 8 and ei.value.status == status
    assert tracker.track(8).filled_quantity == 2  # a partial fill before the end is kept


async def test_by_external_identifier_then_by_id() -> None:
    s = streamer()
    tracker = OrderTracker(s)
    t = tracker.track(external_identifier="bot-1")
    deliver(s, mk_order(9, "Live", **{"external-identifier": "bot-1"}))
    assert t.order_id == 9
    assert tracker.track(9) is t and tracker.track("bot-1") is t
    deliver(s, mk_order(9, "Filled", filled=10))  # no tag on this update: matched by id
    assert (await tracker.filled("bot-1", timeout=1)).id == 9


async def test_known_orders_seed_a_new_track_and_timeouts() -> None:
    s = streamer()
    deliver(s, mk_order(10, "Filled", filled=10))
    tracker = OrderTracker(s)
    assert (await tracker.filled(10, timeout=1)).status == "Filled"  # already over
    with pytest.raises(TimeoutError):
        await tracker.filled(11, timeout=0.01)
    with pytest.raises(ValueError):
        tracker.track()


async def test_cancel_replace_is_followed() -> None:
    s = streamer()
    tracker = OrderTracker(s)
    t = tracker.track(20)
    deliver(s, mk_order(20, "Live"))
    deliver(s, mk_order(21, "Live", **{"replaces-order-id": 20}))
    deliver(s, mk_order(20, "Cancelled", **{"replacing-order-id": 21}))
    assert not t.is_done and t.order_id == 21 and "Replaced" in t.history
    deliver(s, mk_order(21, "Filled", filled=10))
    assert (await t.filled(timeout=1)).id == 21


def test_rehydration_delivers_only_changes_and_never_regresses() -> None:
    s = streamer()
    got: list[Notification] = []
    s.add_notification_callback(got.append)
    pos = convert({"account-number": ACCT, "symbol": "AAPL", "quantity": "5"}, Position)
    bal = convert({"account-number": ACCT, "cash-balance": "10"}, Balance)
    n = s._apply_snapshot(
        ACCT, [mk_order(1, "Live"), mk_order(2, "Filled", 10)], [pos], bal, "snapshot"
    )
    assert n == 4 and {x.source for x in got} == {"snapshot"}
    got.clear()
    # the same state again: nothing to deliver
    assert (
        s._apply_snapshot(
            ACCT, [mk_order(1, "Live"), mk_order(2, "Filled", 10)], [pos], bal, "rehydrate"
        )
        == 0
    )
    # order 1 filled, order 2 reads older (Live) than known (Filled), the position closed
    n = s._apply_snapshot(
        ACCT, [mk_order(1, "Filled", 10), mk_order(2, "Live")], [], bal, "rehydrate"
    )
    assert n == 2
    assert [(x.type, x.source) for x in got] == [
        ("Order", "rehydrate"),
        ("CurrentPosition", "rehydrate"),
    ]
    assert got[1].data.quantity == Decimal(0) and (ACCT, "AAPL") not in s.positions
    assert s.orders[2].status == "Filled"
    # what the stream updated during a read is not overwritten by the read
    got.clear()
    s._touched = set()
    deliver(s, mk_order(3, "Filled", 10))
    got.clear()
    s._apply_snapshot(ACCT, [mk_order(3, "Live")], [], bal, "rehydrate")
    assert got == [] and s.orders[3].status == "Filled"


def test_callbacks_are_isolated_and_counted() -> None:
    s = streamer()

    def boom(o: Order) -> None:
        raise RuntimeError("user bug")

    seen: list[Order] = []
    s.add_order_callback(boom)
    s.add_order_callback(seen.append)
    deliver(s, mk_order(1, "Live"))
    assert s.stats.callback_errors == 1 and len(seen) == 1


def test_repr_never_shows_a_token() -> None:
    s = streamer()
    s._token = "at-SECRET"
    assert "SECRET" not in repr(s)
    assert s.url == "ws://127.0.0.1:9/account-streamer"  # the sim's path next to its REST port


@pytest.mark.parametrize(
    ("base", "env", "url"),
    [
        ("https://api.tastyworks.com", "production", "wss://streamer.tastyworks.com"),
        ("https://api.cert.tastyworks.com/", "sandbox", "wss://streamer.cert.tastyworks.com"),
        ("http://127.0.0.1:8080", "production", "ws://127.0.0.1:8080/account-streamer"),
        ("https://proxy.example:8443", "production", "wss://proxy.example:8443/account-streamer"),
        ("nonsense", "sandbox", "wss://streamer.cert.tastyworks.com"),
    ],
)
def test_default_streamer_url(base: str, env: str, url: str) -> None:
    assert default_streamer_url(base, env) == url
