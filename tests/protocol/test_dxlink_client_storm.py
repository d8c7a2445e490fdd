"""Reconnect storm: 100 forced disconnects of mixed kinds while streaming.

Two local servers share one seed and one manual market clock: the "stormy" one breaks every
connection (close after N frames / N seconds, TCP drop, 1012 restart, silent socket, ERROR
TIMEOUT), the calm one never does. After 100 recoveries every subscription must be restored on
the stormy server and the candle series of the stormy client must equal the calm client's,
bar for bar, although the stormy one resumed from its last known bar each time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from ttfast.dxlink.streamer import ConnectionEvent, DxLinkStreamer
from ttfast.sim.dxlink_server import DxLinkServer, Faults
from ttfast.sim.pricing import ManualClock

T0 = 1_767_000_000_000 - 1_767_000_000_000 % 60_000 + 25_000
START = T0 - 25_000 - 60 * 60_000
STORM = 100

OPTS: dict[str, Any] = dict(
    aggregation_period=0.05,
    keepalive_interval=0.05,
    receive_timeout=0.15,
    handshake_timeout=1.0,
    backoff_base=0.002,
    backoff_max=0.02,
    candle_pace=0.001,
    connect_timeout=5.0,
)


def storm_fault_plan(storm: int) -> Callable[[int], Faults]:
    """Faults of connection n (1-based) of the stormy server: a mixed fault for n <= storm,
    calm after (also used by the soak run, bench/soak/storm.py)."""

    def faults(n: int) -> Faults:
        if n > storm:
            return Faults()
        k = n % 6
        if k == 0:
            return Faults(close_after_frames=2 + n % 5)
        # timed faults fire 0.1 s after connect: well after the handshake (a few ms here), so
        # they hit a streaming connection even on a starved CI machine
        if k == 1:
            return Faults(close_after_s=0.1 + (n % 3) * 0.02)
        if k == 2:
            return Faults(close_after_s=0.1, close_code=None)  # TCP drop, no close frame
        if k == 3:
            return Faults(restart_after_s=0.1)  # 1012
        if k == 4:
            return Faults(silent_after_s=0.1)  # watchdog must notice
        return Faults()  # ERROR TIMEOUT injected by the driver loop

    return faults


storm_faults = storm_fault_plan(STORM)


async def drive_storm(
    stormy: DxLinkServer,
    clock: ManualClock,
    storm: int,
    hang_s: float,
    progress: Callable[[int], None] | None = None,
) -> tuple[set[int], float, bool]:
    """Run the storm until the stormy server has seen its first calm connection (storm + 1):
    inject ERROR TIMEOUT on every connection n % 6 == 5 and move the market clock on.

    Returns (connections that got ERROR TIMEOUT, seconds taken, hung: gave up after hang_s).
    `progress(disconnects so far)` is called every 10 s (used by the soak run).
    """
    t_start = last_report = time.monotonic()
    injected: set[int] = set()
    loop = asyncio.get_running_loop()
    last_tick = 0
    while stormy.connection_count <= storm:
        conns = stormy.connections
        c = conns[-1] if conns else None
        if (
            c is not None
            and c.number % 6 == 5
            and c.number not in injected
            and c.authorized
            and loop.time() - c.t_connect > 0.03
        ):
            injected.add(c.number)
            c.error(0, "TIMEOUT", "The timeout has been reached.")  # and stays open
        n = stormy.connection_count
        if n // 4 > last_tick:
            last_tick = n // 4
            clock.t += 60_000  # market time moves on during the storm
        else:
            # ... and keeps ticking in between (100 ms market ticks). A frozen market
            # sends no data frames, so a "close after N data frames" connection that
            # already had its snapshots would stay healthy forever and the storm would
            # stall: this was the intermittent hang seen before.
            clock.t += 100
        await asyncio.sleep(0.005)
        now = time.monotonic()
        if progress is not None and now - last_report > 10:
            last_report = now
            progress(n - 1)
        if now - t_start > hang_s:
            return injected, now - t_start, True
    return injected, time.monotonic() - t_start, False


async def until(cond: Any, timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.003)


@pytest.mark.storm
@pytest.mark.slow  # ~10 s on a quiet 2-core machine, ~45 s when 6 builds share it
async def test_reconnect_storm_100() -> None:
    clock = ManualClock(T0)
    kw = dict(
        seed=11, clock=clock, default_aggregation=0.05, keepalive_interval=0.05, poll_interval=0.01
    )
    stormy = DxLinkServer(faults=storm_faults, **kw)
    calm = DxLinkServer(**kw)
    await stormy.start()
    await calm.start()

    async def tp_storm() -> tuple[str, str]:
        return stormy.url, "t"

    async def tp_calm() -> tuple[str, str]:
        return calm.url, "t"

    events: list[ConnectionEvent] = []
    a = DxLinkStreamer(None, tp_storm, on_event=events.append, **OPTS)
    b = DxLinkStreamer(None, tp_calm, **OPTS)
    symbols = ["SPY", "QQQ", "AAPL"]
    try:
        async with a, b:
            for s in (a, b):
                s.subscribe("Quote", symbols)
                s.subscribe("Trade", ["SPY"])
                cs = s.subscribe_candles(symbols, "1m", start=START)
            injected, storm_s, hung = await drive_storm(stormy, clock, STORM, hang_s=300)
            assert not hung, "storm hung"  # a hang guard, not a timing claim
            # the 101st connection is calm: everything must come back
            await until(lambda: a.connected, 10, "final connect")
            want = {(1, "Quote", s) for s in symbols} | {(1, "Trade", "SPY")}
            want |= {(3, "Candle", c) for c in cs}

            def restored() -> bool:
                conns = stormy.connections
                return bool(conns) and conns[-1].subscriptions() == want

            await until(restored, 10, "subscriptions restored")
            clock.t += 60_000
            await asyncio.sleep(0.3)  # let both settle on the same final market state

            bars = (clock.t - START) // 60_000 + 1

            def same() -> bool:  # both complete up to the newest (forming) bar, and equal
                for c in cs:
                    sa, sb = a.candles.get(c), b.candles.get(c)
                    if sa is None or sb is None or not sa.ready or not sb.ready:
                        return False
                    if len(sa) != bars or len(sb) != bars:
                        return False
                    ca, cb = sa.columns(), sb.columns()
                    for k in ("time", "open", "high", "low", "close", "volume", "count"):
                        if not np.array_equal(ca[k], cb[k], equal_nan=True):
                            return False
                return True

            try:
                await until(same, 10, "stormy series == calm series")
            except AssertionError:
                for c in cs:
                    sa, sb = a.candles[c], b.candles[c]
                    ta, tb = sa.time.tolist(), sb.time.tolist()
                    diff = [
                        (x, y)
                        for x, y in zip(sa, sb, strict=False)
                        if not np.array_equal(np.array(x[:7]), np.array(y[:7]), equal_nan=True)
                    ]
                    print(c, len(ta), len(tb), set(ta) ^ set(tb), diff[:3], sa, sb)
                raise
            for c in cs:
                assert int(a.candles[c].time[0]) == START
            # >= : under heavy load a handshake may also time out and count as a reconnect
            assert a.stats.reconnects >= STORM
            disc = [e for e in events if e.kind == "disconnected"]
            assert len(disc) >= STORM
            # faults are timed to hit while streaming; on a starved CPU some land mid-handshake
            # (87 of 100 connected once while 3 other builds shared the 2 cores)
            assert sum(e.kind == "connected" for e in events) >= 0.8 * STORM
            assert any(e.close_code == 1012 for e in disc)
            assert sum(e.kind == "watchdog" for e in events) >= STORM // 6 - 1
            assert len(injected) == (STORM + 1) // 6
            assert a.stats.decode_errors == 0
            # once a symbol's history is known, reconnects ask only for recent bars: never the
            # whole hour again (a full fromTime is legitimate only before the first snapshot)
            resumed_from: dict[str, int] = {}
            for n, m in stormy.received:
                if m["type"] != "FEED_SUBSCRIPTION":
                    continue
                for e in m.get("add", []):
                    if e["type"] == "Candle":
                        if e["symbol"] in resumed_from:
                            assert e["fromTime"] > START, (n, e)
                        if e["fromTime"] > START:
                            resumed_from[e["symbol"]] = e["fromTime"]
            # every symbol resumes once its history is known; on a starved CPU a symbol's first
            # snapshot may not complete before the next fault, so only "some" is certain here
            assert resumed_from and set(resumed_from) <= set(cs)
            print(f"storm: {STORM} disconnects in {storm_s:.1f} s")  # a report, not a claim
    finally:
        await stormy.stop()
        await calm.stop()
