"""Every fault switch of the local dxLink server (``ttfast.sim.Faults``) and what a client sees."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from dxsim_testclient import CANDLE_FIELDS, SETUP, Client, Closed, ManualClock, decode_compact

from ttfast.sim import DxLinkServer, Faults, corrected_bar
from ttfast.sim import market as mk

T0 = 1_750_000_123_456
SEED = 21
QF = ["eventSymbol", "bidPrice", "askPrice", "bidSize", "askSize"]


async def _start(faults: Faults, **kw: Any) -> DxLinkServer:
    kw.setdefault("clock", ManualClock(T0))
    srv = DxLinkServer(seed=SEED, faults=faults, **kw)
    await srv.start()
    return srv


async def _quotes_client(srv: DxLinkServer, agg: float = 0.0) -> Client:
    c = await Client.connect(srv.url)
    await c.handshake()
    await c.open_feed(1, fields={"Quote": QF}, agg=agg)
    c.subscribe(1, {"type": "Quote", "symbol": "AAPL"})
    return c


# ------------------------------------------------------------------------------ connection faults


async def test_silent_socket_sends_nothing_and_stays_open() -> None:
    srv = await _start(Faults(silent_after_s=0.3), clock=None, tick_ms=10, keepalive_interval=0.05)
    c = await _quotes_client(srv)
    before = await c.drain(0.25)
    assert any(m["type"] == "FEED_DATA" for m in before)
    await asyncio.sleep(0.1)
    while not c.l.q.empty():
        c.l.q.get_nowait()
    c.send({"type": "KEEPALIVE", "channel": 0})
    assert await c.drain(0.5) == []  # no data, no keepalive, no close
    assert not c.l.disconnected.is_set()
    await c.close()
    await srv.stop()


@pytest.mark.parametrize("code", [1000, None])
async def test_close_after_seconds(code: int | None) -> None:
    srv = await _start(Faults(close_after_s=0.2, close_code=code))
    c = await _quotes_client(srv)
    await asyncio.wait_for(c.l.disconnected.wait(), 2)
    assert c.l.close_code == code  # None: TCP dropped without a close frame
    await srv.stop()


async def test_close_after_n_frames() -> None:
    srv = await _start(Faults(close_after_frames=3), clock=None, tick_ms=10)
    c = await _quotes_client(srv)
    msgs = await c.drain(2.0)
    assert sum(m["type"] == "FEED_DATA" for m in msgs) == 3
    assert c.l.disconnected.is_set() and c.l.close_code == 1000
    await srv.stop()


async def test_restart_1012() -> None:
    srv = await _start(Faults(restart_after_s=0.1))
    c = await _quotes_client(srv)
    await asyncio.wait_for(c.l.disconnected.wait(), 2)
    assert c.l.close_code == 1012
    await srv.stop()


@pytest.mark.parametrize("close", [False, True])
async def test_reject_auth(close: bool) -> None:
    srv = await _start(Faults(reject_auth=True, reject_auth_close=close))
    c = await Client.connect(srv.url)
    c.send(SETUP)
    await c.recv()
    assert (await c.recv())["state"] == "UNAUTHORIZED"
    c.send({"type": "AUTH", "channel": 0, "token": "good-token"})
    assert await c.recv() == {"type": "AUTH_STATE", "channel": 0, "state": "UNAUTHORIZED"}
    if close:
        await asyncio.wait_for(c.l.disconnected.wait(), 2)
    else:
        c.send({"type": "CHANNEL_REQUEST", "channel": 1, "service": "FEED", "parameters": {}})
        assert (await c.recv())["message"] == "AUTH step missing"
        await c.close()
    await srv.stop()


# ------------------------------------------------------------------------------ layout faults


async def _first_messages(faults: Faults, n: int) -> list[dict[str, Any]]:
    srv = await _start(faults)
    c = await Client.connect(srv.url)
    await c.handshake()
    c.send(
        {
            "type": "CHANNEL_REQUEST",
            "channel": 1,
            "service": "FEED",
            "parameters": {"contract": "AUTO"},
        }
    )
    await c.recv_type("CHANNEL_OPENED")
    c.send({"type": "FEED_SETUP", "channel": 1, "acceptAggregationPeriod": 0,
            "acceptDataFormat": "COMPACT", "acceptEventFields": {"Quote": QF}})  # fmt: skip
    c.subscribe(1, {"type": "Quote", "symbol": "AAPL"})
    out = [await c.recv() for _ in range(n)]
    extra = await c.drain(0.1)
    await c.close()
    await srv.stop()
    return out + extra


async def test_event_fields_modes() -> None:
    lazy = await _first_messages(Faults(), 3)
    assert [m["type"] for m in lazy] == ["FEED_CONFIG", "FEED_CONFIG", "FEED_DATA"]
    assert "eventFields" not in lazy[0] and lazy[1]["eventFields"] == {"Quote": QF}

    eager = await _first_messages(Faults(event_fields="eager"), 2)
    assert [m["type"] for m in eager] == ["FEED_CONFIG", "FEED_DATA"]
    assert eager[0]["eventFields"] == {"Quote": QF}

    late = await _first_messages(Faults(event_fields="late"), 3)
    assert [m["type"] for m in late] == ["FEED_CONFIG", "FEED_DATA", "FEED_CONFIG"]
    assert late[2]["eventFields"] == {"Quote": QF}

    absent = await _first_messages(Faults(event_fields="absent"), 2)
    assert [m["type"] for m in absent] == ["FEED_CONFIG", "FEED_DATA"]
    assert not any("eventFields" in m for m in absent)
    assert len(absent[1]["data"][1]) == len(QF)  # data still in the requested order

    reord = await _first_messages(Faults(event_fields="reordered"), 3)
    java = ["eventSymbol", "bidPrice", "bidSize", "askPrice", "askSize"]
    assert reord[1]["eventFields"] == {"Quote": java}
    ev = decode_compact(reord[2]["data"], reord[1]["eventFields"])[0]
    assert ev["bidPrice"] < ev["askPrice"] and ev["bidSize"] >= 100.0


async def test_dropped_field_shrinks_layout() -> None:
    msgs = await _first_messages(Faults(drop_fields={"Quote": frozenset({"bidSize"})}), 3)
    lay = msgs[1]["eventFields"]["Quote"]
    assert lay == ["eventSymbol", "bidPrice", "askPrice", "askSize"]
    assert len(msgs[2]["data"][1]) == 4


async def test_multi_type_frames() -> None:
    srv = await _start(Faults(multi_type_frames=True), clock=None, tick_ms=10)
    c = await Client.connect(srv.url)
    await c.handshake()
    await c.open_feed(1, fields={"Quote": QF, "Trade": ["eventSymbol", "price", "size"]}, agg=0.05)
    c.subscribe(1, {"type": "Quote", "symbol": "AAPL"})
    await c.recv_type("FEED_DATA")
    c.subscribe(1, {"type": "Trade", "symbol": "AAPL"})
    msgs = await c.drain(0.5)
    multi = [m for m in msgs if m["type"] == "FEED_DATA" and len(m["data"]) == 4]
    assert multi, msgs
    assert multi[0]["data"][0] == "Quote" and multi[0]["data"][2] == "Trade"
    await c.close()
    await srv.stop()


async def test_special_values() -> None:
    srv = await _start(Faults(special_values=True), record_sent=True)
    c = await Client.connect(srv.url)
    await c.handshake()
    await c.open_feed(
        1,
        fields={
            "Quote": ["eventSymbol", "bidSize", "askSize", "bidExchangeCode"],
            "Profile": ["eventSymbol", "description", "statusReason"],
        },
    )
    c.subscribe(1, {"type": "Quote", "symbol": "SPX"}, {"type": "Profile", "symbol": "SPX"})
    await c.drain(0.2)
    raw = " ".join(c.l.raw)
    assert '"Infinity"' in raw and '"-Infinity"' in raw and '"\\u0000"' in raw and "null" in raw
    data = [m for m in c.log if m["type"] == "FEED_DATA"]
    q = next(m for m in data if m["data"][0] == "Quote")["data"][1]
    assert q == ["SPX", "Infinity", "-Infinity", "\x00"]
    p = next(m for m in data if m["data"][0] == "Profile")["data"][1]
    assert p == ["SPX", None, None]
    await c.close()
    await srv.stop()


async def test_subscription_rate_limit() -> None:
    srv = await _start(Faults(subscription_rate_limit=2))
    c = await Client.connect(srv.url)
    await c.handshake()
    await c.open_feed(1, contract="HISTORY")
    for i in range(3):
        c.subscribe(1, {"type": "Candle", "symbol": f"S{i}{{=1m}}", "fromTime": T0 - 120_000})
    err = await c.recv_type("ERROR")
    assert err == {"type": "ERROR", "channel": 1, "error": "BAD_ACTION",
                   "message": "Your subscription rate is too high"}  # fmt: skip
    assert {s for _, _, s in srv.connections[0].subscriptions()} == {"S0{=1m}", "S1{=1m}"}
    await c.close()
    await srv.stop()


# ------------------------------------------------------------------------------ candle faults


def _series(events: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """dxFeed's AbstractIndexedEventModel algorithm (spec §6.6): the client-visible bars."""
    pending: list[dict[str, Any]] = []
    in_snap = done = False
    bars: dict[int, dict[str, Any]] = {}
    for e in events:
        f = e["eventFlags"]
        if f & 0x04:
            in_snap, done = True, False
            pending.clear()
        if in_snap and f & 0x18:
            in_snap, done = False, True
        if f & 0x01 or in_snap:
            pending.append(e)
            continue
        if done:
            bars.clear()
            done = False
        for x in [*pending, e]:
            if x["eventFlags"] & 0x02:
                bars.pop(x["index"], None)
            else:
                bars[x["index"]] = x
        pending.clear()
    return bars


async def _candle_stream(
    faults: Faults,
    n_events: int,
    contract: str = "HISTORY",
    linger: float = 0.1,
    **kw: Any,
) -> list[dict[str, Any]]:
    """Candle events until ``n_events`` arrived (max 5 s), plus whatever comes within ``linger``."""
    srv = await _start(faults, **kw)
    c = await Client.connect(srv.url)
    await c.handshake()
    await c.open_feed(1, contract=contract, fields={"Candle": CANDLE_FIELDS})
    c.subscribe(1, {"type": "Candle", "symbol": "AAPL{=1m}", "fromTime": T0 - 10 * 60_000 - 7})
    out: list[dict[str, Any]] = []

    async def take(timeout: float) -> None:
        m = await c.recv(timeout)
        if m["type"] == "FEED_DATA":
            out.extend(decode_compact(m["data"], {"Candle": CANDLE_FIELDS}))

    async with asyncio.timeout(5):
        while len(out) < n_events:
            await take(5)
    with contextlib.suppress(TimeoutError, Closed):
        while True:
            await take(linger)
    await c.close()
    await srv.stop()
    return out


def _snapshot_bars() -> list[dict[str, Any]]:
    bars, _ = mk.candle_bars_between(mk.symbol_key(SEED, "AAPL"), 60_000, T0 - 10 * 60_000 - 7, T0)
    return [bars.row(i) for i in range(len(bars) - 1, -1, -1)]


async def test_tx_pending_correction() -> None:
    evs = await _candle_stream(Faults(tx_correction_after_s=0.05), len(_snapshot_bars()) + 1 + 2)
    snap = _snapshot_bars()
    tail = evs[len(snap) + 1 :]
    assert [e["eventFlags"] for e in tail] == [0x01, 0x00]
    for e, b in zip(tail, (corrected_bar(snap[2]), corrected_bar(snap[3])), strict=True):
        assert all(e[k] == v for k, v in b.items())
    series = _series(evs)
    assert len(series) == len(snap)
    assert series[snap[2]["index"]]["volume"] == snap[2]["volume"] + 100.0
    assert series[snap[3]["index"]]["count"] == snap[3]["count"] + 1
    assert series[snap[1]["index"]]["volume"] == snap[1]["volume"]


async def test_remove_bar() -> None:
    evs = await _candle_stream(Faults(remove_bar_after_s=0.05), len(_snapshot_bars()) + 1 + 1)
    snap = _snapshot_bars()
    (rm,) = evs[len(snap) + 1 :]
    assert rm["eventFlags"] == 0x02 and rm["index"] == snap[2]["index"]
    series = _series(evs)
    assert snap[2]["index"] not in series and len(series) == len(snap) - 1


async def test_second_snapshot() -> None:
    evs = await _candle_stream(
        Faults(second_snapshot_after_s=0.05), 2 * (len(_snapshot_bars()) + 1)
    )
    flags = [e["eventFlags"] for e in evs]
    assert flags.count(0x04) == 2 and flags.count(0x0A) == 2
    n = len(_snapshot_bars()) + 1
    assert repr(evs[:n]) == repr(evs[n : 2 * n])  # clock stands still: identical replay
    assert len(_series(evs)) == n - 1


async def test_snip_and_empty_snapshot_faults() -> None:
    evs = await _candle_stream(Faults(snip_rows=4), 4)
    assert [e["eventFlags"] for e in evs] == [0x04, 0, 0, 0x10]
    evs = await _candle_stream(Faults(empty_snapshot=True), 2)
    assert evs[0]["eventFlags"] == 0x0E and evs[0]["time"] == T0 - 10 * 60_000 - 7
    # history is withheld, but the forming bar still arrives as a live update (flags 0)
    assert [(e["eventFlags"], e["time"]) for e in evs[1:]] == [(0, mk.align_bar_start(T0, 60_000))]


async def test_candles_on_auto_give_empty_snapshot_mode() -> None:
    clock = ManualClock(T0)
    f = Faults(candles_auto_empty=True)
    evs = await _candle_stream(f, 1, contract="AUTO", linger=0.2, clock=clock)
    assert [e["eventFlags"] for e in evs] == [0x0E]
    evs = await _candle_stream(f, 2, contract="HISTORY", linger=0.2, clock=clock)
    assert evs[0]["eventFlags"] == 0x04 and evs[-1]["eventFlags"] == 0x0A


async def test_closed_connection_stops_data() -> None:
    srv = await _start(Faults(close_after_frames=1))
    c = await _quotes_client(srv)
    with pytest.raises(Closed):
        for _ in range(10):
            await c.recv()
    await asyncio.sleep(0.05)
    assert srv.connections == []
    await srv.stop()
