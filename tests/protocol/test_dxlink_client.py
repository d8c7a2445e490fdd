"""DxLinkStreamer against the local dxLink server (ttfast.sim): handshake, faults, consumers.

Every fault switch of the server has a test asserting what the client's user can see.
Timings are ms-scale (keepalive, watchdog, backoff are configurable) so the file stays fast.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest

from ttfast import CandleStore, Changes
from ttfast._core import field_kinds
from ttfast.candles import CHANGE_SNAPSHOT
from ttfast.dxlink.protocol import DEFAULT_EVENT_FIELDS
from ttfast.dxlink.streamer import ConnectionEvent, DxLinkStreamer, StreamState
from ttfast.sim.dxlink_server import DxLinkServer, Faults

FAST = dict(
    aggregation_period=0.02,
    keepalive_interval=0.05,
    receive_timeout=0.5,
    handshake_timeout=1.0,
    backoff_base=0.005,
    backoff_max=0.05,
    candle_pace=0.002,
    connect_timeout=5.0,
)


class Tokens:
    """Token provider that counts calls and hands out numbered tokens."""

    def __init__(self, srv: DxLinkServer) -> None:
        self.srv = srv
        self.calls = 0

    async def __call__(self) -> tuple[str, str]:
        self.calls += 1
        return self.srv.url, f"token-{self.calls}"


@asynccontextmanager
async def pair(
    faults: Faults | Callable[[int], Faults] | None = None,
    *,
    server_kw: dict[str, Any] | None = None,
    **kw: Any,
) -> AsyncIterator[tuple[DxLinkServer, DxLinkStreamer, list[ConnectionEvent], Tokens]]:
    skw: dict[str, Any] = dict(seed=3, default_aggregation=0.02, keepalive_interval=0.05)
    skw.update(server_kw or {})
    srv = DxLinkServer(faults=faults, **skw)
    await srv.start()
    events: list[ConnectionEvent] = []
    tokens = Tokens(srv)
    opts = dict(FAST)
    opts.update(kw)
    s = DxLinkStreamer(None, tokens, on_event=events.append, **opts)
    try:
        async with s:
            yield srv, s, events, tokens
    finally:
        await srv.stop()


async def until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.005)


def kinds(events: list[ConnectionEvent]) -> list[str]:
    return [e.kind for e in events]


def server_subs(srv: DxLinkServer) -> set[tuple[int, str, str]]:
    conns = srv.connections
    return conns[-1].subscriptions() if conns else set()


# --------------------------------------------------------------------------- handshake


async def test_handshake_order_and_messages() -> None:
    async with pair() as (srv, s, events, _):
        s.subscribe("Quote", ["SPY", "AAPL"])
        await until(lambda: len(server_subs(srv)) == 2, what="subscriptions")
        msgs = [m for n, m in srv.received if m["type"] != "KEEPALIVE"]
        assert [m["type"] for m in msgs] == [
            "SETUP",
            "AUTH",
            "CHANNEL_REQUEST",
            "FEED_SETUP",
            "FEED_SUBSCRIPTION",
        ]
        assert msgs[0]["keepaliveTimeout"] == 60 and msgs[0]["channel"] == 0
        assert msgs[1] == {"type": "AUTH", "channel": 0, "token": "token-1"}
        assert msgs[2]["channel"] % 2 == 1
        fs = msgs[3]
        assert fs["acceptDataFormat"] == "COMPACT"
        assert fs["acceptAggregationPeriod"] == 0.02
        assert fs["acceptEventFields"]["Quote"][0] == "eventType"
        assert not [e for c in srv.connections for e in c.errors_sent]
        assert kinds(events)[:2] == ["connecting", "connected"]
        assert s.state is StreamState.CONNECTED
    assert s.state is StreamState.CLOSED
    assert events[-1].kind == "closed"


async def test_quotes_flow_to_callback_listen_and_stats() -> None:
    got: list[Any] = []
    async with pair(on_batch=got.append) as (_srv, s, _, _):
        it = s.listen("Quote")
        s.subscribe("Quote", ["SPY", "AAPL"])
        b = await asyncio.wait_for(it.__anext__(), 5)
        assert b.event_type == "Quote"
        assert set(b["eventSymbol"].tolist()) <= {"SPY", "AAPL"}
        assert b["bidPrice"].dtype.kind == "f"
        await until(lambda: s.stats.events >= 10, what="events")
        assert got and all(x.event_type == "Quote" for x in got)
        st = s.stats
        assert st.frames > 0 and st.bytes > 0 and st.decode_errors == 0
        assert st.last_message_age < 1.0


async def test_keepalive_sent_and_server_timeout_respected() -> None:
    # the server times clients out after 0.3 s of silence: our KEEPALIVEs must prevent it
    async with pair(server_kw=dict(keepalive_timeout=0.3)) as (srv, s, events, _):
        await asyncio.sleep(1.0)
        assert s.stats.keepalives_sent >= 5
        assert srv.connection_count == 1
        assert "disconnected" not in kinds(events)
        assert any(m["type"] == "KEEPALIVE" for _, m in srv.received)


async def test_server_error_timeout_and_unauthorized_reconnect() -> None:
    # the server says TIMEOUT (and does not even close): the client tears down and reconnects
    async with pair() as (srv, s, events, tokens):
        s.subscribe("Quote", ["SPY"])
        await until(lambda: len(server_subs(srv)) == 1)
        srv.connections[0].error(0, "TIMEOUT", "The timeout has been reached.")
        await until(lambda: srv.connection_count == 2 and s.connected, what="reconnect")
        await until(lambda: server_subs(srv) == {(1, "Quote", "SPY")})
        errs = [e for e in events if e.kind == "server_error"]
        assert errs and "TIMEOUT" in errs[0].detail
        assert tokens.calls == 1
        # UNAUTHORIZED (token revoked/expired) -> reconnect with a FRESH token
        srv.connections[-1].error(0, "UNAUTHORIZED", "Token expired")
        await until(lambda: srv.connection_count == 3 and s.connected, what="reconnect 2")
        assert tokens.calls == 2
        # a non-fatal error is visible but keeps the connection
        srv.connections[-1].error(1, "BAD_ACTION", "something odd")
        await until(lambda: "something odd" in events[-1].detail)
        await asyncio.sleep(0.05)
        assert srv.connection_count == 3 and s.connected


async def test_server_timeout_respected_with_short_accept_timeout() -> None:
    # server asks for traffic every 0.2 s: we send KEEPALIVE faster even if configured slower
    async with pair(server_kw=dict(keepalive_timeout=0.2), keepalive_interval=5.0) as (
        srv,
        _s,
        events,
        _,
    ):
        await asyncio.sleep(0.8)
        assert srv.connection_count == 1 and "disconnected" not in kinds(events)


# --------------------------------------------------------------------------- reconnect faults


async def test_silent_socket_watchdog() -> None:
    faults = lambda n: Faults(silent_after_s=0.2) if n == 1 else Faults()  # noqa: E731
    async with pair(faults, receive_timeout=0.3) as (srv, s, events, _):
        s.subscribe("Quote", ["SPY"])
        await until(lambda: srv.connection_count >= 2, what="watchdog reconnect")
        await until(lambda: s.connected)
        assert any(e.kind == "watchdog" and "no message" in e.detail for e in events)
        n = s.stats.events
        await until(lambda: s.stats.events > n, what="data after reconnect")
        assert server_subs(srv) == {(1, "Quote", "SPY")}
        assert s.stats.reconnects == 1


@pytest.mark.parametrize(
    "fault",
    [
        Faults(close_after_s=0.15),
        Faults(close_after_s=0.15, close_code=None),  # TCP drop, no close frame
        Faults(close_after_frames=5),
        Faults(restart_after_s=0.15),  # 1012
    ],
    ids=["close_after_s", "tcp_drop", "close_after_frames", "restart_1012"],
)
async def test_close_kinds_reconnect_and_restore(fault: Faults) -> None:
    faults = lambda n: fault if n == 1 else Faults()  # noqa: E731
    async with pair(faults) as (srv, s, events, tokens):
        s.subscribe("Quote", ["SPY", "QQQ"])
        s.subscribe("Trade", ["SPY"])
        await until(lambda: srv.connection_count >= 2 and s.connected, what="reconnect")
        await until(lambda: len(server_subs(srv)) == 3, what="restored subscriptions")
        assert server_subs(srv) == {(1, "Quote", "SPY"), (1, "Quote", "QQQ"), (1, "Trade", "SPY")}
        disc = [e for e in events if e.kind == "disconnected"]
        assert disc
        if fault.restart_after_s is not None:
            assert disc[0].close_code == 1012
        assert tokens.calls == 1  # token still fresh and accepted: not refetched
        assert s.stats.reconnects >= 1


async def test_reject_auth_fetches_fresh_token() -> None:
    faults = lambda n: Faults(reject_auth=True) if n <= 2 else Faults()  # noqa: E731
    async with pair(faults) as (srv, _s, events, tokens):
        assert srv.connection_count == 3
        assert kinds(events).count("auth_rejected") == 2
        assert tokens.calls == 3  # a new token after each rejection
        auths = [m["token"] for _, m in srv.received if m["type"] == "AUTH"]
        assert auths == ["token-1", "token-2", "token-3"]


async def test_reject_auth_drops_the_rest_clients_cached_quote_token() -> None:
    """Regression: the REST client's quote_token_provider() caches its token for ~24 h, so a
    token dxLink rejected was handed out again on every reconnect; the streamer now drops it
    from the provider's cache (``invalidate``) and the next connection gets a new one."""
    from ttfast.rest import OAuthSession, TastytradeClient
    from ttfast.rest.models import QuoteToken

    faults = lambda n: Faults(reject_auth=True) if n == 1 else Faults()  # noqa: E731
    srv = DxLinkServer(faults=faults, seed=3, default_aggregation=0.02, keepalive_interval=0.05)
    await srv.start()
    client = TastytradeClient(OAuthSession("secret", "refresh", base_url="http://127.0.0.1:9"))
    fetched: list[str] = []

    async def get_quote_token() -> QuoteToken:  # what GET /api-quote-tokens would answer
        fetched.append(f"qt-{len(fetched) + 1}")
        return QuoteToken(token=fetched[-1], dxlink_url=srv.url)

    client.get_quote_token = get_quote_token  # type: ignore[method-assign]
    try:
        provider = client.quote_token_provider()
        async with DxLinkStreamer(None, provider, **FAST) as s:
            await until(lambda: s.connected, what="connected with a new token")
    finally:
        await srv.stop()
        await client.session.close()
    assert fetched == ["qt-1", "qt-2"]
    assert [m["token"] for _, m in srv.received if m["type"] == "AUTH"] == ["qt-1", "qt-2"]


async def test_reject_auth_with_close() -> None:
    faults = lambda n: Faults(reject_auth=True, reject_auth_close=True) if n == 1 else Faults()  # noqa: E731
    async with pair(faults) as (_srv, s, events, tokens):
        assert s.connected and tokens.calls == 2
        assert "auth_rejected" in kinds(events)


async def test_token_refreshed_when_old() -> None:
    async with pair(token_max_age=0.0) as (srv, s, _, tokens):
        srv.connections[0].close(1000)
        await until(lambda: srv.connection_count == 2 and s.connected)
        assert tokens.calls == 2


async def test_gives_up_after_max_attempts_and_listeners_raise() -> None:
    async with DxLinkServer(faults=Faults(reject_auth=True)) as srv:

        async def tp() -> tuple[str, str]:
            return srv.url, "bad"

        s = DxLinkStreamer(None, tp, max_reconnect_attempts=3, **{**FAST, "connect_timeout": 3})
        with pytest.raises(ConnectionError):
            await s.open()
        assert s.state is StreamState.CLOSED
        assert srv.connection_count == 4


async def test_unreachable_server_is_visible() -> None:
    async def tp() -> tuple[str, str]:
        return "ws://127.0.0.1:9/", "t"

    evs: list[ConnectionEvent] = []
    s = DxLinkStreamer(None, tp, on_event=evs.append, **{**FAST, "connect_timeout": 0.3})
    with pytest.raises(TimeoutError):
        await s.open()
    assert "connect_error" in kinds(evs)


async def test_token_provider_error_is_visible() -> None:
    n = 0
    async with DxLinkServer() as srv:

        async def tp() -> tuple[str, str]:
            nonlocal n
            n += 1
            if n == 1:
                raise RuntimeError("REST down")
            return srv.url, "t"

        evs: list[ConnectionEvent] = []
        async with DxLinkStreamer(None, tp, on_event=evs.append, **FAST) as s:
            assert s.connected
        assert next(e for e in evs if e.kind == "token_error").error is not None


# --------------------------------------------------------------------------- decoding faults


@pytest.mark.parametrize("mode", ["lazy", "eager", "late", "absent", "reordered"])
async def test_event_fields_modes(mode: str) -> None:
    async with pair(Faults(event_fields=mode)) as (_srv, s, _, _):  # type: ignore[arg-type]
        it = s.listen("Quote")
        s.subscribe("Quote", ["SPY"])
        b = await asyncio.wait_for(it.__anext__(), 5)
        d = b.to_dicts()[0]
        assert d["eventSymbol"] == "SPY" and d["eventType"] == "Quote"
        assert d["bidPrice"] < d["askPrice"]
        assert s.stats.decode_errors == 0


async def test_dropped_field_is_absent_not_shifted() -> None:
    f = Faults(drop_fields={"Quote": frozenset({"bidSize"})})
    async with pair(f) as (_srv, s, _, _):
        it = s.listen("Quote")
        s.subscribe("Quote", ["SPY"])
        b = await asyncio.wait_for(it.__anext__(), 5)
        assert b.column("bidSize") is None
        assert "bidSize" not in b.fields
        assert b["askPrice"][0] > b["bidPrice"][0] > 0
        assert s.stats.decode_errors == 0


async def test_multi_type_frames() -> None:
    seen: set[str] = set()
    async with pair(Faults(multi_type_frames=True), on_batch=lambda b: seen.add(b.event_type)) as (
        _srv,
        s,
        _,
        _,
    ):
        s.subscribe("Quote", ["SPY"])
        s.subscribe("Trade", ["SPY"])
        s.subscribe("Summary", ["SPY"])
        await until(lambda: seen >= {"Quote", "Trade", "Summary"}, what="all types")
        assert s.stats.decode_errors == 0


async def test_special_values() -> None:
    rows: list[dict[str, Any]] = []
    async with pair(Faults(special_values=True), on_batch=lambda b: rows.extend(b.to_dicts())) as (
        _srv,
        s,
        _,
        _,
    ):
        s.subscribe("Quote", ["SPY", "AAPL"])
        s.subscribe("TimeAndSale", ["SPY"])
        await until(lambda: len(rows) > 20, what="rows")
        assert s.stats.decode_errors == 0
    quotes = [r for r in rows if r["eventType"] == "Quote"]
    assert any(math.isinf(r["bidSize"]) or math.isinf(r["askSize"]) for r in quotes)
    assert any(r["bidExchangeCode"] == "\x00" or r["askExchangeCode"] == "\x00" for r in quotes)


async def test_callback_exception_counted_not_fatal() -> None:
    def bad(_b: Any) -> None:
        raise RuntimeError("user bug")

    async with pair(on_batch=bad) as (srv, s, events, _):
        s.subscribe("Quote", ["SPY"])
        await until(lambda: s.stats.callback_errors >= 3)
        assert s.connected and srv.connection_count == 1
        assert "callback_error" in kinds(events)


# --------------------------------------------------------------------------- listen() buffers


async def test_listen_conflates_ticker_types() -> None:
    async with pair() as (_srv, s, _, _):
        it = s.listen("Quote", maxlen=2)
        s.subscribe("Quote", ["SPY", "AAPL", "QQQ"])
        await until(lambda: it.conflated > 0, what="conflation")
        # latest row per symbol survives; nothing is lost silently
        assert s.stats.conflated == it.conflated
        assert len(it) <= 2
        items = [it._buf.popleft() for _ in range(len(it))]
        merged = items[0]
        syms = merged["eventSymbol"].tolist()
        assert len(syms) == len(set(syms))
        assert it.dropped == 0


async def test_listen_drop_oldest_for_stream_types() -> None:
    async with pair() as (_srv, s, _, _):
        it = s.listen("TimeAndSale", maxlen=3)
        s.subscribe("TimeAndSale", ["SPY"])
        await until(lambda: it.dropped > 0, what="drops")
        assert len(it) == 3
        assert s.stats.drops == it.dropped
        b = await it.__anext__()
        assert b.event_type == "TimeAndSale"


async def test_listen_ends_on_close_and_events_iterator() -> None:
    async with pair() as (_srv, s, _, _):
        it = s.listen("Quote")
        evs: list[str] = []

        async def watch() -> None:
            async for e in s.events():
                evs.append(e.kind)

        w = asyncio.create_task(watch())
        await asyncio.sleep(0.01)
        s.subscribe("Quote", ["SPY"])

        async def consume() -> int:
            n = 0
            async for _b in it:
                n += 1
            return n

        c = asyncio.create_task(consume())
        await until(lambda: s.stats.events > 0)
    assert await asyncio.wait_for(c, 2) >= 1
    await asyncio.wait_for(w, 2)
    assert evs[-1] == "closed"
    assert [b async for b in s.listen("Quote")] == []  # after close: ends, never hangs


async def test_unsubscribe_reaches_server() -> None:
    async with pair() as (srv, s, _, _):
        s.subscribe("Quote", ["SPY", "QQQ"])
        await until(lambda: len(server_subs(srv)) == 2)
        s.unsubscribe("Quote", ["SPY"])
        await until(lambda: server_subs(srv) == {(1, "Quote", "QQQ")})


# --------------------------------------------------------------------------- candles


class ManualClock:
    """Simulated market time that moves only when the test says so."""

    def __init__(self, t: int) -> None:
        self.t = t

    def now_ms(self) -> int:
        return self.t


T0 = 1_767_000_000_000 - 1_767_000_000_000 % 60_000 + 25_000  # mid-bar, minute grid
START = T0 - 25_000 - 30 * 60_000  # on the minute grid


def series_cols(s: DxLinkStreamer, sym: str) -> dict[str, Any]:
    ser = s.candles[sym]
    return {k: ser.columns()[k] for k in ("time", "open", "high", "low", "close", "volume")}


def assert_series_equal(a: dict[str, Any], b: dict[str, Any]) -> None:
    import numpy as np

    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=True), k


async def test_candles_history_channel_snapshot_no_zero_bar() -> None:
    clock = ManualClock(T0)
    async with pair(server_kw=dict(clock=clock)) as (srv, s, events, _):
        (sym,) = s.subscribe_candles(["SPY"], "1m", start=START)
        assert sym == "SPY{=m}"
        await until(lambda: sym in s.candles and s.candles[sym].ready, what="snapshot")
        ser = s.candles[sym]
        t = ser.time
        assert t[0] == START and t[-1] == T0 - 25_000 and len(t) == 31
        assert (t[1:] > t[:-1]).all()
        assert not (ser.close == 0).any() and not np.isnan(ser.close).any()
        sub = [m for _, m in srv.received if m["type"] == "FEED_SUBSCRIPTION" and m["channel"] == 3]
        assert sub[-1]["add"] == [{"type": "Candle", "symbol": sym, "fromTime": START}]
        chreq = [m for _, m in srv.received if m["type"] == "CHANNEL_REQUEST"]
        assert chreq[0]["parameters"] == {"contract": "HISTORY"}
        # live: market time moves, a new bar appears and the previous one is final
        clock.t += 60_000
        await until(lambda: len(s.candles[sym]) == 32, what="new bar")
        assert "empty_snapshot" not in kinds(events)


async def test_candles_period_normalized_and_seconds_rejected() -> None:
    async with pair(server_kw=dict(clock=ManualClock(T0))) as (_srv, s, _, _):
        assert s.subscribe_candles(["SPY"], "1d", start=START) == ["SPY{=d}"]
        with pytest.raises(ValueError, match="seconds"):
            s.subscribe_candles(["SPY"], "5m", start=START // 1000)


async def test_candles_tx_correction_applied_atomically() -> None:
    clock = ManualClock(T0)
    async with pair(Faults(tx_correction_after_s=0.15), server_kw=dict(clock=clock)) as (
        _srv,
        s,
        _,
        _,
    ):
        (sym,) = s.subscribe_candles(["SPY"], "1m", start=START)
        await until(lambda: sym in s.candles and s.candles[sym].ready)
        before = s.candles[sym].volume.copy()
        await until(lambda: not np.array_equal(s.candles[sym].volume, before), what="correction")
        after = s.candles[sym].volume
        n = len(after)
        # 3rd and 4th newest bars corrected (+100 volume), together
        assert after[n - 3] == before[n - 3] + 100 and after[n - 4] == before[n - 4] + 100
        assert np.array_equal(after[: n - 4], before[: n - 4])


async def test_candles_remove_event() -> None:
    async with pair(Faults(remove_bar_after_s=0.15), server_kw=dict(clock=ManualClock(T0))) as (
        _srv,
        s,
        _,
        _,
    ):
        (sym,) = s.subscribe_candles(["SPY"], "1m", start=START)
        await until(lambda: sym in s.candles and s.candles[sym].ready)
        t = s.candles[sym].time.copy()
        await until(lambda: len(s.candles[sym]) == len(t) - 1, what="removal")
        assert int(t[-3]) not in s.candles[sym].time.tolist()


async def test_candles_second_snapshot_replaces_consistently() -> None:
    clock = ManualClock(T0)
    async with pair(Faults(second_snapshot_after_s=0.2), server_kw=dict(clock=clock)) as (
        _srv,
        s,
        _,
        _,
    ):
        (sym,) = s.subscribe_candles(["SPY"], "1m", start=START)
        await until(lambda: sym in s.candles and s.candles[sym].ready)
        first = series_cols(s, sym)
        snaps = s.candles.snapshots
        await until(lambda: s.candles.snapshots > snaps, what="second snapshot")
        assert s.candles[sym].ready
        assert_series_equal(series_cols(s, sym), first)


async def test_candles_snip_visible() -> None:
    async with pair(Faults(snip_rows=10), server_kw=dict(clock=ManualClock(T0))) as (
        _srv,
        s,
        events,
        _,
    ):
        (sym,) = s.subscribe_candles(["SPY"], "1m", start=START)
        await until(lambda: sym in s.candles and s.candles[sym].ready)
        assert s.candles[sym].snip and len(s.candles[sym]) == 10
        assert s.candles[sym].time[-1] == T0 - 25_000  # newest bars kept
        assert "snapshot_snip" in kinds(events)


async def test_candles_empty_snapshot() -> None:
    clock = ManualClock(T0)
    async with pair(Faults(empty_snapshot=True), server_kw=dict(clock=clock)) as (
        _srv,
        s,
        events,
        _,
    ):
        (sym,) = s.subscribe_candles(["SPY"], "1m", start=START)
        await until(lambda: sym in s.candles and s.candles[sym].ready)
        assert "empty_snapshot" in kinds(events)
        # the 0x0E placeholder never becomes a bar; live bars still arrive
        await until(lambda: len(s.candles[sym]) >= 1, what="live bar")
        assert not (s.candles[sym].close == 0).any()
        assert (s.candles[sym].time >= T0 - 25_000).all()


@pytest.mark.parametrize("contract", ["HISTORY", "AUTO"])
async def test_candles_on_auto_give_empty_snapshot(contract: str) -> None:
    async with pair(
        Faults(candles_auto_empty=True),
        server_kw=dict(clock=ManualClock(T0)),
        candle_contract=contract,
    ) as (_srv, s, events, _):
        (sym,) = s.subscribe_candles(["SPY"], "1m", start=START)
        await until(lambda: sym in s.candles and s.candles[sym].ready)
        if contract == "HISTORY":  # our default avoids the I-TW353 trap
            assert len(s.candles[sym]) == 31
            assert "empty_snapshot" not in kinds(events)
        else:  # a user who forces AUTO sees the symptom, not silence
            assert len(s.candles[sym]) == 0
            assert "empty_snapshot" in kinds(events)


async def test_candles_rate_limit_backs_off_and_completes() -> None:
    syms = ["SPY", "QQQ", "AAPL", "MSFT", "NVDA", "TSLA"]
    async with pair(
        Faults(subscription_rate_limit=2),
        server_kw=dict(clock=ManualClock(T0)),
        candle_pace=0.001,
    ) as (_srv, s, events, _):
        cs = s.subscribe_candles(syms, "1m", start=START)
        await until(
            lambda: all(c in s.candles and s.candles[c].ready for c in cs),
            timeout=15,
            what="all candle snapshots",
        )
        assert "rate_limited" in kinds(events)
        assert s.candle_pace > 0.001
        assert all(len(s.candles[c]) == 31 for c in cs)


async def test_candles_resume_from_last_bar_not_full_history() -> None:
    clock = ManualClock(T0)
    async with pair(server_kw=dict(clock=clock)) as (srv, s, _, _):
        (sym,) = s.subscribe_candles(["SPY"], "1m", start=START)
        await until(lambda: sym in s.candles and s.candles[sym].ready)
        clock.t += 3 * 60_000
        await until(lambda: len(s.candles[sym]) == 34)
        last = int(s.candles[sym].time[-1])
        srv.connections[0].close(1012)
        await until(lambda: srv.connection_count == 2 and s.connected)
        clock.t += 60_000
        await until(lambda: len(s.candles[sym]) == 35, what="bar after resume")
        subs = [
            m["add"][0]
            for n, m in srv.received
            if n == 2 and m["type"] == "FEED_SUBSCRIPTION" and "add" in m
        ]
        assert subs == [{"type": "Candle", "symbol": sym, "fromTime": last}]
        assert int(s.candles[sym].time[0]) == START  # history kept, not replaced


async def test_big_subscription_chunked_below_server_frame_limit() -> None:
    # the server closes with 1009 on frames > 8 KiB; 3000 option symbols must still go through
    syms = [f".SPXW260116C{5000 + i}" for i in range(3000)]
    async with pair(
        server_kw=dict(max_frame_size=8192, default_aggregation=1.0),
        aggregation_period=1.0,
        receive_timeout=5.0,
    ) as (srv, s, events, _):
        s.subscribe("Quote", syms)
        await until(lambda: len(server_subs(srv)) == 3000, timeout=15, what="3000 subscriptions")
        assert srv.connection_count == 1, kinds(events)
        assert "disconnected" not in kinds(events)
        sizes = [len(str(m)) for _, m in srv.received if m["type"] == "FEED_SUBSCRIPTION"]
        assert len(sizes) > 10


async def test_null_strings_decode_to_none() -> None:
    rows: list[dict[str, Any]] = []
    async with pair(Faults(special_values=True), on_batch=lambda b: rows.extend(b.to_dicts())) as (
        _srv,
        s,
        _,
        _,
    ):
        s.subscribe("TimeAndSale", ["SPY", "/ESZ26:XCME"])
        await until(lambda: len(rows) > 30, what="rows")
    assert any(r["exchangeSaleConditions"] is None or r["buyer"] is None for r in rows)
    assert s.stats.decode_errors == 0


# --------------------------------------------------------------------------- candle seams


async def test_candle_store_and_changes_callback_see_every_apply_and_the_resume_merge() -> None:
    """``candle_store=`` is the store the streamer applies to; ``on_candle_changes`` gets its
    Changes after every Candle batch; after a reconnect the resumed snapshot merges (no
    SNAPSHOT record, the history stays) because the store was put in resume mode."""
    clock = ManualClock(T0)
    store = CandleStore(capacity=64)
    seen: list[list[tuple[str, int]]] = []
    async with pair(
        server_kw=dict(clock=clock),
        candle_store=store,
        on_candle_changes=lambda ch: seen.append([(c.symbol, c.flags) for c in ch]),
    ) as (srv, s, _, _):
        assert s.candles is store
        (sym,) = s.subscribe_candles(["SPY"], "1m", start=START)
        await until(lambda: sym in store and store[sym].ready, what="snapshot")
        assert any(f & CHANGE_SNAPSHOT for batch in seen for _, f in batch)
        assert not store[sym].resuming
        seen.clear()
        srv.connections[0].close(1012)
        await until(lambda: srv.connection_count == 2 and s.connected, what="reconnect")
        assert store[sym].resuming  # resubscribed from its newest bar
        clock.t += 60_000
        await until(lambda: len(store[sym]) == 32, what="bar after resume")
        assert seen and not any(f & CHANGE_SNAPSHOT for batch in seen for _, f in batch)
        assert int(store[sym].time[0]) == START and store.snapshots == 1


async def test_raising_changes_callback_is_counted_not_fatal() -> None:
    def boom(changes: Changes) -> None:
        raise RuntimeError("injected")

    async with pair(server_kw=dict(clock=ManualClock(T0)), on_candle_changes=boom) as (
        srv,
        s,
        events,
        _,
    ):
        (sym,) = s.subscribe_candles(["SPY"], "1m", start=START)
        await until(lambda: sym in s.candles and s.candles[sym].ready, what="snapshot")
        assert s.stats.callback_errors >= 1 and "callback_error" in kinds(events)
        assert len(s.candles[sym]) == 31 and srv.connection_count == 1


async def test_accept_candle_symbol_screens_rows_before_the_store() -> None:
    asked: list[object] = []

    def accept(sym: object) -> bool:
        asked.append(sym)
        return isinstance(sym, str) and not sym.startswith("BAD")

    got: list[int] = []
    async with pair(
        server_kw=dict(clock=ManualClock(T0)),
        accept_candle_symbol=accept,
        on_batch=lambda b: got.append(len(b)) if b.event_type == "Candle" else None,
    ) as (srv, s, _, _):
        (sym,) = s.subscribe_candles(["SPY"], "1m", start=START)
        await until(lambda: sym in s.candles and s.candles[sym].ready, what="snapshot")
        assert asked == [sym]  # asked once: accepted symbols are remembered
        n = sum(got)
        fields = ",".join(f'"{f}"' for f in ("eventType", "eventSymbol", "time", "close"))
        srv.connections[0].send_text(
            f'{{"type":"FEED_CONFIG","channel":3,"eventFields":{{"Candle":[{fields}]}}}}'
        )
        t = T0 - 25_000
        rows = f'"Candle","BAD{{=m}}",{t},1.0,"Candle","{sym}",{t},7.5,"Candle","BAD{{=m}}",{t},2.0'
        srv.connections[0].send_text(
            f'{{"type":"FEED_DATA","channel":3,"data":["Candle",[{rows}]]}}'
        )
        await until(lambda: sum(got) >= n + 3, what="the injected batch")
        assert asked == [sym, "BAD{=m}", "BAD{=m}"]  # per row of a symbol not accepted
        assert "BAD{=m}" not in s.candles and s.candles[sym].close[-1] == 7.5


async def test_events_on_a_foreign_channel_are_a_decode_error() -> None:
    got: list[str] = []
    async with pair(on_batch=lambda b: got.append(b.event_type)) as (srv, s, events, _):
        s.subscribe("Quote", ["SPY"])
        await until(lambda: "Quote" in got, what="quotes")
        errors = s.stats.decode_errors
        kinds_ = field_kinds("Quote")
        vals = {"object": '"Q"', "bool": "false"}
        row = ",".join(vals.get(kinds_[f], "0") for f in DEFAULT_EVENT_FIELDS["Quote"][2:])
        srv.connections[0].send_text(
            f'{{"type":"FEED_DATA","channel":3,"data":["Quote",["Quote","ZZZ",{row}]]}}'
        )
        await until(lambda: s.stats.decode_errors > errors, what="decode error")
        assert any("Quote events on channel 3" in e.detail for e in events)
        assert s.stats.decode_errors == errors + 1 and srv.connection_count == 1
