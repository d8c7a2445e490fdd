"""AccountStreamer against a §7 account-stream server on loopback plus the local REST server.

The stream server here (:class:`LoopbackAccountStream`) speaks spec §7 as its documented frames
show: ``connect`` first (``auth-token`` must be ``Bearer <a token the REST server granted and
that has not expired>``, checked on every message), acks echo ``request-id``, heartbeats before
connect and subscriptions before the connect ack are errors, notifications are
``{"type", "data", "timestamp"}``. It can refuse connections (HTTP 503), drop them without a
close frame, stall (read, never answer) and reject auth. Orders live in the REST server's state,
so "a fill while disconnected" is a change to that state the stream never pushes: only the
streamer's REST re-hydration can find it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from ttfast.account import (
    AccountEvent,
    AccountStreamer,
    AccountStreamState,
    Notification,
    OrderNotFilled,
    OrderTracker,
)
from ttfast.errors import OrderOutcomeUnknown
from ttfast.rest import TastytradeClient
from ttfast.rest import orders as ob
from ttfast.rest.models import Balance, Order, Position
from ttfast.rest.session import OAuthSession
from ttfast.sim import RestSimServer
from ttfast.sim.rest.state import SimState

ACCT = "5WT00000"

pytestmark = pytest.mark.timeout(120)


class LoopbackAccountStream:
    """A minimal spec §7 account-stream server over a REST sim's state (see module doc)."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.accepting = True
        self.stall = False
        self.reject_auth = 0  # reject this many connects (then accept)
        self.connects = 0
        self.requests: list[dict[str, Any]] = []
        self.live: dict[web.WebSocketResponse, web.Request] = {}
        self.subscribed: set[web.WebSocketResponse] = set()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> LoopbackAccountStream:
        app = web.Application()
        app.router.add_get("/", self._handler)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{sock.getsockname()[1]}/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.drop_all()
        assert self._runner is not None
        await self._runner.cleanup()

    def _valid(self, msg: dict[str, Any]) -> bool:
        tok = msg.get("auth-token", "")
        if not isinstance(tok, str) or not tok.startswith("Bearer "):
            return False
        exp = self.state.tokens.get(tok[7:])
        return exp is not None and time.time() < exp

    async def _handler(self, request: web.Request) -> web.StreamResponse:
        if not self.accepting:
            return web.Response(status=503)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.live[ws] = request
        sid = secrets.token_hex(4)
        connected = False
        try:
            async for m in ws:
                if m.type is not WSMsgType.TEXT:
                    continue
                if self.stall:
                    continue
                msg = json.loads(m.data)
                self.requests.append(msg)
                action, rid = msg.get("action"), msg.get("request-id")
                base = {"action": action, "web-socket-session-id": sid, "request-id": rid}
                if not self._valid(msg) or (action == "connect" and self.reject_auth):
                    if action == "connect" and self.reject_auth:
                        self.reject_auth -= 1
                    await ws.send_json({**base, "status": "error", "message": "invalid token"})
                    continue
                if action == "connect":
                    connected = True
                    self.connects += 1
                    self.subscribed.add(ws)
                    await ws.send_json({**base, "status": "ok", "value": msg["value"]})
                elif not connected:
                    err = "not implemented" if action == "heartbeat" else "connect-not-completed"
                    await ws.send_json({**base, "status": "error", "message": err})
                else:
                    await ws.send_json({**base, "status": "ok"})
        finally:
            self.live.pop(ws, None)
            self.subscribed.discard(ws)
        return ws

    async def push(self, type_: str, data: Any, *, batched: bool = False) -> None:
        note = {"type": type_, "data": data, "timestamp": int(time.time() * 1000)}
        body = {"results": [note]} if batched else note
        for ws in list(self.subscribed):
            if not ws.closed:
                await ws.send_json(body)

    def drop_all(self) -> None:
        """Close every connection at the TCP level (no close frame): a network failure."""
        for request in list(self.live.values()):
            if request.transport is not None:
                request.transport.close()


def fill(state: SimState, oid: int, qty: int | None = None) -> dict[str, Any]:
    """Fill (all or ``qty`` more of) a resting order in the REST server's state."""
    o = state.orders[oid]
    leg = o["legs"][0]
    q = leg["remaining-quantity"] if qty is None else qty
    leg["remaining-quantity"] -= q
    leg["fills"].append(
        {
            "fill-id": f"F{oid}-{len(leg['fills'])}",
            "quantity": q,
            "fill-price": "100.5",
            "filled-at": "2026-12-01T15:00:00.000+00:00",
            "destination-venue": "SIM",
        }
    )
    now_ms = int(time.time() * 1000)
    o["updated-at"] = now_ms
    if leg["remaining-quantity"] == 0:
        o.update(status="Filled", cancellable=False, editable=False)
        o["terminal-at"] = "2026-12-01T15:00:00.000+00:00"
    return o


@pytest.fixture
async def env() -> AsyncIterator[tuple[RestSimServer, LoopbackAccountStream, TastytradeClient]]:
    async with RestSimServer() as rest, LoopbackAccountStream(rest.state) as stream:
        client = TastytradeClient(OAuthSession("cs", "rt", base_url=rest.base_url))
        async with client:
            yield rest, stream, client


def order(ext: str | None = None, qty: int = 10) -> ob.OrderRequest:
    o = ob.limit_order(ob.leg("AAPL", qty, ob.OrderAction.BUY_TO_OPEN), "-1.00")  # never crosses
    return o.with_external_identifier(ext) if ext else o


def streamer(client: TastytradeClient, url: str, **kw: Any) -> AccountStreamer:
    kw.setdefault("heartbeat_interval", 0.5)
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_max", 0.05)
    return AccountStreamer(client, [ACCT], url=url, **kw)


async def until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


async def test_no_fill_missed_across_20_forced_disconnects(env: Any) -> None:
    rest, server, client = env
    ids = [(await client.place_order(ACCT, order(f"bot-{i}"))).order.id for i in range(20)]
    filled: Counter[int] = Counter()
    sources: Counter[str] = Counter()

    def on_order(o: Order) -> None:
        if o.status == "Filled" and o.id is not None:
            filled[o.id] += 1

    s = streamer(client, server.url, on_order=on_order)
    s.add_notification_callback(lambda n: sources.update([n.source]))
    tracker = OrderTracker(s)
    async with s:
        tracked = [tracker.track(i) for i in ids]
        assert all(t.status == "Live" for t in tracked)  # the snapshot read at connect
        for k, oid in enumerate(ids):
            before = server.connects
            if k % 2:  # filled on the stream, then the connection drops: delivered once
                await server.push("Order", fill(rest.state, oid))
                await until(lambda oid=oid: filled[oid] == 1)
                server.drop_all()
            else:  # filled while the client is disconnected: only REST can tell
                server.accepting = False
                server.drop_all()
                await until(lambda: not s.connected)
                fill(rest.state, oid)
                server.accepting = True
            await until(lambda before=before: server.connects > before)
            done = await tracker.filled(oid, timeout=20)
            assert done.status == "Filled"
            await s.wait_ready()
        assert s.stats.reconnects >= 20
        assert server.connects >= 21
    assert filled == dict.fromkeys(ids, 1)  # every fill exactly once
    assert all(t.is_filled and t.filled_quantity == 10 for t in tracked)
    assert s.stats.rehydrated_changes >= 10
    assert sources["rehydrate"] >= 10 and sources["stream"] == 10
    assert s.state is AccountStreamState.CLOSED


async def test_async_for_callbacks_and_batched_frames(env: Any) -> None:
    _rest, server, client = env
    got: list[Notification] = []
    positions: list[Position] = []
    balances: list[Balance] = []
    s = streamer(client, server.url, on_position=positions.append, on_balance=balances.append)
    async with s:
        snapshot = {n.type for n in _drain(s)}  # the first REST read, as "snapshot"
        assert snapshot == {"Order", "CurrentPosition", "AccountBalance"} or snapshot == {
            "CurrentPosition",
            "AccountBalance",
        }
        msft = {"account-number": ACCT, "symbol": "MSFT", "quantity": "5"}
        await server.push("CurrentPosition", msft)
        await server.push("AccountBalance", {"account-number": ACCT, "cash-balance": "1.5"},
                          batched=True)  # fmt: skip
        await server.push("QuoteAlert", {"symbol": "SPY"})
        async for note in s:
            got.append(note)
            if len(got) == 3:
                break
    assert [n.type for n in got] == ["CurrentPosition", "AccountBalance", "QuoteAlert"]
    assert isinstance(got[0].data, Position) and got[0].data.quantity == Decimal(5)
    assert got[1].data.cash_balance == Decimal("1.5")
    assert got[2].data == {"symbol": "SPY"} and s.stats.unknown_types == {"QuoteAlert": 1}
    assert positions[-1].symbol == "MSFT" and balances[-1].cash_balance == Decimal("1.5")
    assert s.positions[(ACCT, "MSFT")].quantity == 5
    assert [n async for n in s] == []  # closed: iteration ends


def _drain(s: AccountStreamer) -> list[Notification]:
    out = list(s._buf)
    s._buf.clear()
    return out


async def test_auth_rejection_gets_a_fresh_token_and_reconnects(env: Any) -> None:
    _rest, server, client = env
    server.reject_auth = 2
    events: list[AccountEvent] = []
    s = streamer(client, server.url, on_event=events.append)
    async with s:
        assert s.connected
    kinds = [e.kind for e in events]
    assert kinds.count("auth_rejected") == 2
    assert client.session.refresh_count == 3  # a new token after each rejection
    assert all("Bearer" not in e.detail for e in events)


async def test_stalled_server_trips_the_watchdog(env: Any) -> None:
    _rest, server, client = env
    events: list[AccountEvent] = []
    s = streamer(client, server.url, heartbeat_interval=0.05, on_event=events.append)
    async with s:
        server.stall = True
        await until(lambda: any(e.kind == "watchdog" for e in events))
        server.stall = False
        await until(lambda: s.stats.reconnects >= 1 and s.connected)


async def test_every_message_carries_a_token_the_server_still_accepts(env: Any) -> None:
    """Tokens live 1.5 s; the session refreshes 1 s before expiry; heartbeats every 0.1 s
    for three token lifetimes: the server never sees an expired token."""
    rest, server, client = env
    rest.state.token_ttl = 1.5
    client.session.refresh_margin = 1.0
    events: list[AccountEvent] = []
    s = streamer(client, server.url, heartbeat_interval=0.1, on_event=events.append)
    async with s:
        await until(lambda: client.session.refresh_count >= 4)
        assert s.stats.heartbeats_sent >= 5
    assert not [e for e in events if e.kind in ("auth_rejected", "disconnected") and
                e.detail != "closed by user"]  # fmt: skip
    tokens = {m["auth-token"] for m in server.requests}
    assert len(tokens) >= 3


async def test_subscriptions_are_sent_after_connect_and_replayed(env: Any) -> None:
    _rest, server, client = env
    s = streamer(client, server.url, quote_alerts=True)
    async with s:
        s.subscribe_public_watchlists()
        await until(lambda: sum(m["action"] == "public-watchlists-subscribe"
                                for m in server.requests) == 1)  # fmt: skip
        server.drop_all()
        await until(lambda: server.connects == 2)
        await until(lambda: sum(m["action"] == "public-watchlists-subscribe"
                                for m in server.requests) == 2)  # fmt: skip
    actions = [m["action"] for m in server.requests]
    assert actions[0] == "connect" and actions[1] == "quote-alerts-subscribe"
    assert actions.count("quote-alerts-subscribe") == 2


async def test_tracker_partial_fills_then_filled(env: Any) -> None:
    rest, server, client = env
    oid = (await client.place_order(ACCT, order("partial"))).order.id
    s = streamer(client, server.url)
    async with s:
        t = OrderTracker(s).track("partial")  # by external identifier
        assert t.order_id == oid and t.status == "Live"
        await server.push("Order", fill(rest.state, oid, 4))
        await t.changed(timeout=10)
        assert t.filled_quantity == 4 and t.remaining_quantity == 6 and not t.is_done
        await server.push("Order", fill(rest.state, oid, 6))
        done = await t.filled(timeout=10)
    assert done.status == "Filled" and t.filled_quantity == 10
    assert [f.quantity for f in t.fills] == [4, 6]
    assert t.history == ["Live", "Filled"]


async def test_tracker_after_order_outcome_unknown(env: Any) -> None:
    rest, server, client = env
    s = streamer(client, server.url)
    async with s:
        tracker = OrderTracker(s)
        rest.add_fault("drop", method="POST", path=r"/orders$", after_handler=True)
        with pytest.raises(OrderOutcomeUnknown) as ei:
            await client.place_order(ACCT, order("lost-answer"))
        t = await tracker.resolve(ei.value, ACCT)
        assert t is not None and t.external_identifier == "lost-answer"
        oid = t.order_id
        assert oid is not None and t.status == "Live"
        await server.push("Order", fill(rest.state, oid))
        assert (await tracker.filled(oid, timeout=10)).id == oid
        # an order that was never created resolves to None (placing it again is safe)
        rest.add_fault("status", method="POST", path=r"/orders$", status=503)
        with pytest.raises(OrderOutcomeUnknown) as ei:
            await client.place_order(ACCT, order("never-made"))
        assert await tracker.resolve(ei.value, ACCT) is None


async def test_tracker_raises_when_cancelled(env: Any) -> None:
    rest, server, client = env
    oid = (await client.place_order(ACCT, order("to-cancel"))).order.id
    s = streamer(client, server.url)
    async with s:
        tracker = OrderTracker(s)
        waiting = asyncio.ensure_future(tracker.filled(oid, timeout=10))
        cancelled = await client.cancel_order(ACCT, oid)
        assert cancelled is not None
        await server.push("Order", rest.state.orders[oid])
        with pytest.raises(OrderNotFilled) as ei:
            await waiting
        assert ei.value.status == "Cancelled"
