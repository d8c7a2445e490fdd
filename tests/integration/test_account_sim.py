"""ttfast's AccountStreamer against the local sim's own account stream and order lifecycle, under
the sim's stream faults: no fill missed across 20 forced disconnects.

Every round places a market order (the sim fills it in the placing request and pushes Order,
CurrentPosition and AccountBalance to connected sockets) under one of three faults:

* ``drop``: the socket is dropped (TCP, no close frame) and reconnects are refused (auth
  rejected, socket closed) while the order is placed and filled: only REST knows the fill;
* ``stall``: the socket goes silent (no acks, no notifications) while the fill happens; the
  streamer's receive watchdog must notice and reconnect;
* ``close``: the fill arrives on the stream, then the server closes with 1011: the re-hydration
  after the reconnect must not deliver it a second time.

The tracker follows each order by id (never seeded from the REST answer), so a fill counts only
once the stream or the re-hydration delivered it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import pytest

from ttfast.account import AccountEvent, AccountStreamer, OrderTracker
from ttfast.rest import TastytradeClient
from ttfast.rest import orders as ob
from ttfast.rest.models import Order
from ttfast.rest.session import OAuthSession
from ttfast.sim import RestSimServer
from ttfast.sim.rest.account_stream import StreamFaults

ACCT = "5WT00000"

pytestmark = pytest.mark.timeout(180)


async def until(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


async def test_no_fill_missed_across_20_forced_disconnects_under_sim_faults() -> None:
    async with RestSimServer(tick_interval=None) as rest:
        client = TastytradeClient(OAuthSession("cs", "rt", base_url=rest.base_url))
        filled: Counter[int] = Counter()
        events: list[AccountEvent] = []

        def on_order(o: Order) -> None:
            if o.status == "Filled" and o.id is not None:
                filled[o.id] += 1

        s = AccountStreamer(
            client,
            [ACCT],
            url=rest.streamer_url,
            on_order=on_order,
            on_event=events.append,
            heartbeat_interval=0.1,
            receive_timeout=0.5,
            backoff_base=0.01,
            backoff_max=0.05,
        )
        ids: list[int] = []
        kinds: Counter[str] = Counter()
        async with client, s:
            tracker = OrderTracker(s)
            for k in range(20):
                kind = ("drop", "stall", "close")[k % 3]
                kinds[kind] += 1
                before = rest.hub.connection_count
                action = ob.OrderAction.BUY_TO_OPEN if k % 2 == 0 else ob.OrderAction.SELL_TO_CLOSE
                order = ob.market_order(ob.leg("SPY", 1 + k % 2, action))
                if kind == "drop":
                    rest.hub.set_faults(StreamFaults(reject_auth=True, reject_auth_close=True))
                    await rest.hub.drop_connections(None)
                    await until(lambda: not s.connected)
                    oid = (await client.place_order(ACCT, order)).order.id  # type: ignore[union-attr]
                    rest.hub.set_faults(StreamFaults())
                elif kind == "stall":
                    watchdogs = sum(e.kind == "watchdog" for e in events)
                    rest.hub.set_faults(StreamFaults(stall=True))
                    oid = (await client.place_order(ACCT, order)).order.id  # type: ignore[union-attr]
                    await until(lambda w=watchdogs: sum(e.kind == "watchdog" for e in events) > w)
                    rest.hub.set_faults(StreamFaults())
                else:
                    oid = (await client.place_order(ACCT, order)).order.id  # type: ignore[union-attr]
                    await until(lambda oid=oid: filled[oid] == 1)
                    await rest.hub.drop_connections(1011)
                assert oid is not None
                ids.append(oid)
                await until(lambda b=before: rest.hub.connection_count > b)
                done = await tracker.filled(oid, timeout=30)
                assert done.status == "Filled"
                await s.wait_ready()
            # the kept position converges to the server's
            want = rest.state.positions[ACCT]["SPY"]
            await until(lambda: (ACCT, "SPY") in s.positions)
            await until(lambda: s.positions[(ACCT, "SPY")].quantity == Decimal(want["quantity"]))
            assert s.stats.reconnects >= 20
        assert filled == dict.fromkeys(ids, 1)  # every fill, exactly once
        assert kinds == {"drop": 7, "stall": 7, "close": 6}
        assert sum(e.kind == "watchdog" for e in events) >= 7
        assert s.stats.rehydrated_changes >= 14  # the drop and stall rounds' fills


async def test_every_account_by_default_and_batched_frames() -> None:
    """No accounts given: every account of the customer (REST). The sim's hub sends the
    notifications of one change as one {"results": [...]} frame."""
    async with RestSimServer(tick_interval=None) as rest:
        rest.hub.batch = True
        client = TastytradeClient(OAuthSession("cs", "rt", base_url=rest.base_url))
        async with client, AccountStreamer(client, url=rest.streamer_url) as s:
            assert s.accounts == rest.state.account_numbers
            snapshot = len(s._buf)
            frames = s.stats.frames
            order = ob.market_order(ob.leg("SPY", 3, ob.OrderAction.BUY_TO_OPEN))
            oid = (await client.place_order("5WT00001", order)).order.id  # type: ignore[union-attr]
            filled = await OrderTracker(s).filled(oid, timeout=30)
            assert filled.account_number == "5WT00001"
            await until(lambda: ("5WT00001", "SPY") in s.positions)
            notes = list(s._buf)[snapshot:]
            assert {"Order", "CurrentPosition", "AccountBalance"} <= {n.type for n in notes}
            assert all(n.source == "stream" for n in notes)
            assert s.stats.frames - frames < len(notes)  # batched: fewer frames than objects
            assert s.positions[("5WT00001", "SPY")].quantity == 3
