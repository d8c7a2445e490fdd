"""Part (b): a reconnect storm of mixed faults, candle series compared with a fault-free twin.

The approach of tests/protocol/test_dxlink_client_storm.py, with the number of disconnects as
a parameter: a "stormy" and a "calm" local DxLinkServer share one seed and one manual market
clock; the stormy one breaks connection n with fault n % 6 (close after N frames, close after
N s, TCP drop without close frame, 1012 restart, silent socket for the watchdog, ERROR TIMEOUT
injected on an open connection); connection storm+1 is calm. Afterwards every subscription
must be back on the stormy server and the stormy client's candle series must equal the calm
client's bar for bar, although it resumed from its last known bar after each disconnect.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from tests.protocol.test_dxlink_client_storm import (
    OPTS,
    START,
    T0,
    ManualClock,
    drive_storm,
    storm_fault_plan,
)

from bench.soak.common import Row, log

SYMBOLS = ["SPY", "QQQ", "AAPL"]
COLS = ("time", "open", "high", "low", "close", "volume", "count")


def _rows(series: Any) -> dict[int, tuple[float, ...]]:
    cols = series.columns()
    n = len(cols["time"])
    out: dict[int, tuple[float, ...]] = {}
    for i in range(n):
        out[int(cols["time"][i])] = tuple(float(cols[k][i]) for k in COLS[1:] if k in cols)
    return out


def _same_value(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def compare(sa: Any, sb: Any) -> tuple[int, int, list[str]]:
    """(bars compared, bars differing, examples) between two CandleSeries, aligned on time."""
    ra, rb = _rows(sa), _rows(sb)
    times = sorted(set(ra) | set(rb))
    bad = 0
    ex: list[str] = []
    for t in times:
        a, b = ra.get(t), rb.get(t)
        if a is None or b is None or not all(_same_value(x, y) for x, y in zip(a, b, strict=True)):
            bad += 1
            if len(ex) < 3:
                ex.append(f"t={t}: stormy {a} calm {b}")
    return len(times), bad, ex


async def _storm(storm: int, hang_s: float) -> dict[str, Any]:
    from ttfast.dxlink.streamer import ConnectionEvent, DxLinkStreamer
    from ttfast.sim.dxlink_server import DxLinkServer

    clock = ManualClock(T0)
    kw: dict[str, Any] = dict(
        seed=11, clock=clock, default_aggregation=0.05, keepalive_interval=0.05, poll_interval=0.01
    )
    stormy = DxLinkServer(faults=storm_fault_plan(storm), **kw)
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
    res: dict[str, Any] = {"storm": storm, "hung": False, "restored": False, "settled": False}
    try:
        async with a, b:
            cs: list[str] = []
            for s in (a, b):
                s.subscribe("Quote", SYMBOLS)
                s.subscribe("Trade", ["SPY"])
                cs = s.subscribe_candles(SYMBOLS, "1m", start=START)
            injected, res["storm_s"], res["hung"] = await drive_storm(
                stormy,
                clock,
                storm,
                hang_s,
                progress=lambda n: log(f"storm: {n}/{storm} disconnects so far"),
            )
            res["injected"] = len(injected)
            want = {(1, "Quote", s) for s in SYMBOLS} | {(1, "Trade", "SPY")}
            want |= {(3, "Candle", c) for c in cs}

            async def until(cond: Any, timeout: float) -> bool:
                t0 = time.monotonic()
                while not cond():
                    if time.monotonic() - t0 > timeout:
                        return False
                    await asyncio.sleep(0.01)
                return True

            await until(lambda: a.connected, 20)

            def restored() -> bool:
                conns = stormy.connections
                return bool(conns) and conns[-1].subscriptions() == want

            res["restored"] = await until(restored, 20)
            clock.t += 60_000
            await asyncio.sleep(0.3)
            bars = (clock.t - START) // 60_000 + 1

            def same() -> bool:
                for c in cs:
                    sa, sb = a.candles.get(c), b.candles.get(c)
                    if sa is None or sb is None or not sa.ready or not sb.ready:
                        return False
                    if len(sa) != bars or len(sb) != bars:
                        return False
                    if compare(sa, sb)[1]:
                        return False
                return True

            res["settled"] = await until(same, 20)
            per: dict[str, Any] = {}
            for c in cs:
                sa, sb = a.candles.get(c), b.candles.get(c)
                if sa is None or sb is None:
                    why = f"missing series: stormy {sa is not None} calm {sb is not None}"
                    per[c] = (0, 1, [why])
                else:
                    per[c] = compare(sa, sb)
            res["series"] = per
            res["bars_expected"] = bars * len(cs)
            res["first_bar_ok"] = all(
                a.candles.get(c) is not None and int(a.candles[c].time[0]) == START for c in cs
            )
            res["reconnects"] = a.stats.reconnects
            res["decode_errors"] = a.stats.decode_errors
            res["disconnected"] = sum(e.kind == "disconnected" for e in events)
            res["connected"] = sum(e.kind == "connected" for e in events)
            res["watchdog"] = sum(e.kind == "watchdog" for e in events)
            res["close_1012"] = sum(
                e.kind == "disconnected" and e.close_code == 1012 for e in events
            )
            # resubscriptions: connections after the first whose FEED_SUBSCRIPTION adds covered
            # every subscription (Quote x3, Trade, Candle x3)
            adds: dict[int, set[tuple[str, str]]] = {}
            for n, m in stormy.received:
                if m.get("type") == "FEED_SUBSCRIPTION":
                    for e in m.get("add", []) or []:
                        adds.setdefault(n, set()).add((e.get("type"), e.get("symbol")))
            full = {(t, s) for _, t, s in want}
            res["resubscribed"] = sum(1 for n, s in adds.items() if n > 1 and full <= s)
            res["authorized_conns"] = stormy.connection_count
    finally:
        await stormy.stop()
        await calm.stop()
    return res


def run(storm: int, hang_s: float = 600.0) -> dict[str, Any]:
    logging.getLogger("ttfast").setLevel(logging.ERROR)
    return asyncio.run(_storm(storm, hang_s))


def rows(res: dict[str, Any]) -> list[Row]:
    storm = res["storm"]
    disc, conn = res.get("disconnected", 0), res.get("connected", 0)
    series = res.get("series", {})
    compared = sum(v[0] for v in series.values())
    differing = sum(v[1] for v in series.values())
    ex = [f"{k}: {e}" for k, v in series.items() for e in v[2]][:2]
    ok_storm = not res["hung"] and disc >= storm and res["restored"]
    out = [
        Row(
            "storm",
            "forced disconnects, mixed kinds",
            f"{storm} ({res.get('storm_s', 0):.1f} s)",
            f"disconnects {disc}; recoveries {max(0, conn - 1)}; client reconnects "
            f"{res.get('reconnects', 'n/a')}; watchdog {res.get('watchdog', 0)}; 1012 "
            f"{res.get('close_1012', 0)}; ERROR TIMEOUT {res.get('injected', 0)}; "
            f"full resubscriptions {res.get('resubscribed', 0)}; final subscriptions "
            f"{'restored' if res['restored'] else 'NOT restored'}"
            + ("; HUNG" if res["hung"] else ""),
            ok_storm,
        ),
        Row(
            "storm",
            "candles vs fault-free twin",
            f"{len(series)} series",
            f"bars compared {compared:,} (expected {res.get('bars_expected', 'n/a')}); "
            f"bars differing {differing}; first bar = start "
            f"{'yes' if res.get('first_bar_ok') else 'NO'}; decode errors "
            f"{res.get('decode_errors', 'n/a')}" + "".join(f"; {e}" for e in ex),
            bool(series)
            and differing == 0
            and compared == res.get("bars_expected")
            and bool(res.get("first_bar_ok"))
            and res.get("decode_errors") == 0,
        ),
    ]
    return out
