"""ttfast.edge's sans-IO parts: the hub's fan-out and flow control (fake transports, a fake
clock) and the closed-bar history (the real compiled pipeline as the oracle: a history bar
says exactly what the final delta of the same bar says)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from ttfast._core import CandleStore, IndicatorPipeline
from ttfast.edge.history import BarHistory, HistoryOp, history_ops, snapshot_meta
from ttfast.edge.hub import CLOSE_SLOW, Hub, HubLimits, candle_time, ws_frame


class FakeTransport:
    """Collects writes; `buffered` is what the kernel has not taken yet (set by the test)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.buffered = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(p) for p in frames(b"".join(self.writes))]


def frames(data: bytes) -> list[bytes]:
    """Payloads of unmasked server text frames."""
    out, i = [], 0
    while i < len(data):
        assert data[i] == 0x81
        n = data[i + 1]
        i += 2
        if n == 126:
            n = int.from_bytes(data[i : i + 2], "big")
            i += 2
        elif n == 127:
            n = int.from_bytes(data[i : i + 8], "big")
            i += 8
        out.append(data[i : i + n])
        i += n
    return out


def delta(name: str, t: int, seq: int, final: bool = False) -> bytes:
    return (
        f'{{"type":"delta","symbol":"{name}","period":"5m","candle":{{"time":{t},"open":1.0,'
        f'"high":1.0,"low":1.0,"close":{seq}.0,"volume":1.0}},"macd":{{}},"hma":{{}},'
        f'"final":{"true" if final else "false"}}}'
    ).encode()


def snapshot(name: str, t: int) -> bytes:
    return (
        f'{{"type":"snapshot","symbol":"{name}","period":"5m","last_candle":{{"time":{t},'
        f'"open":1.0}},"bars":1}}'
    ).encode()


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make(**limits: Any) -> tuple[Hub, Clock]:
    clock = Clock()
    return Hub(HubLimits(**limits), clock=clock), clock


def test_frames_for_every_length_class() -> None:
    for n in (0, 125, 126, 65535, 65536, 70000):
        p = b"x" * n
        assert frames(ws_frame(p)) == [p]
    assert candle_time(delta("SPY", 123, 1)) == 123
    assert candle_time(snapshot("SPY", 456)) == 456
    assert candle_time(b'{"type":"x"}') is None


def test_snapshot_first_then_deltas_in_order_one_write_per_batch() -> None:
    hub, _ = make()
    hub.set_snapshots([("SPY", snapshot("SPY", 100))])
    t = FakeTransport()
    kicks: list[tuple[int, str]] = []
    c = hub.add_client(t, lambda code, why: kicks.append((code, why)))
    assert hub.subscribe(c, "SPY")
    assert hub.subscribe(c, "QQQ")  # no snapshot yet: nothing sent, still subscribed
    hub.publish(
        [("SPY", delta("SPY", 100, i), False) for i in range(5)]
        + [("QQQ", delta("QQQ", 100, 9, True), True), ("AAPL", delta("AAPL", 1, 1), False)]
    )
    msgs = t.messages()
    assert [m["type"] for m in msgs] == ["snapshot"] + ["delta"] * 6
    assert [m["candle"]["close"] for m in msgs[1:]] == [0, 1, 2, 3, 4, 9]
    assert msgs[-1]["final"] is True and msgs[-1]["symbol"] == "QQQ"
    assert len(t.writes) == 2  # the snapshot, then the whole batch in one write
    assert hub.stats.messages_sent == 7 and hub.stats.deltas_in == 7 and not kicks
    hub.unsubscribe(c, "SPY")
    hub.publish([("SPY", delta("SPY", 100, 7), False)])
    assert len(t.messages()) == 7
    hub.remove_client(c)
    assert hub.clients == 0 and hub.subscribers("QQQ") == 0


def test_behind_client_is_conflated_and_catches_up_in_order() -> None:
    hub, _ = make(high_water=1000, low_water=100, max_pending=100)
    slow, fast = FakeTransport(), FakeTransport()
    cs = hub.add_client(slow, lambda *a: None)
    cf = hub.add_client(fast, lambda *a: None)
    for c in (cs, cf):
        hub.subscribe(c, "SPY")
        hub.subscribe(c, "QQQ")
    slow.buffered = 5000  # the kernel stopped taking this client's data
    hub.publish([("SPY", delta("SPY", 100, 0), False)])
    assert hub.behind == 1
    batch = [
        ("SPY", delta("SPY", 100, 1), False),
        ("QQQ", delta("QQQ", 100, 2), False),
        ("SPY", delta("SPY", 100, 3), False),
        ("SPY", delta("SPY", 100, 4, True), True),  # final: kept, and later forming stays after it
        ("SPY", delta("SPY", 200, 5), False),
        ("SPY", delta("SPY", 200, 6), False),
        ("QQQ", delta("QQQ", 100, 7), False),
    ]
    hub.publish(batch)
    assert len(slow.writes) == 1  # only the first batch went out
    assert hub.stats.conflated == 3  # SPY 1 by 3, SPY 5 by 6, QQQ 2 by 7
    slow.buffered = 50  # drained below low_water: the queue goes out at the next look
    hub.pump()
    got = [(m["symbol"], m["candle"]["close"], m["final"]) for m in slow.messages()]
    assert got == [
        ("SPY", 0, False),
        ("SPY", 3, False),
        ("QQQ", 7, False),
        ("SPY", 4, True),
        ("SPY", 6, False),
    ]
    assert hub.behind == 0
    # the fast client never waited and got everything
    assert [m["candle"]["close"] for m in fast.messages()] == list(range(8))
    hub.publish([("SPY", delta("SPY", 200, 8), False)])  # caught up: direct again
    assert slow.messages()[-1]["candle"]["close"] == 8


def test_client_over_max_pending_is_disconnected_and_counted() -> None:
    hub, _ = make(high_water=10, low_water=0, max_pending=5)
    t = FakeTransport()
    kicks: list[tuple[int, str]] = []
    c = hub.add_client(t, lambda code, why: kicks.append((code, why)))
    hub.subscribe(c, "SPY")
    t.buffered = 100
    hub.publish([("SPY", delta("SPY", 1, 0), False)])
    for i in range(1, 20):  # final bars are never conflated: the queue grows
        hub.publish([("SPY", delta("SPY", i, i), True)])
    assert kicks == [(CLOSE_SLOW, "slow consumer")]
    assert hub.stats.slow_disconnects == 1 and hub.clients == 0
    assert hub.stats.dropped == 6  # the queue (5 + the one over the limit) at the disconnect
    assert c.closed and hub.subscribers("SPY") == 0


def test_client_behind_too_long_is_disconnected() -> None:
    hub, clock = make(high_water=10, low_water=0, max_pending=1000, max_behind=5.0)
    t = FakeTransport()
    kicks: list[int] = []
    c = hub.add_client(t, lambda code, why: kicks.append(code))
    hub.subscribe(c, "SPY")
    t.buffered = 100
    hub.publish([("SPY", delta("SPY", 1, 0), False)])
    clock.t = 4.0
    hub.publish([("SPY", delta("SPY", 1, 1), False)])
    hub.pump()
    assert not kicks
    clock.t = 5.5
    hub.pump()
    assert kicks == [CLOSE_SLOW] and hub.stats.slow_disconnects == 1 and c.closed


def test_hold_then_release_sends_snapshot_then_newer_deltas() -> None:
    hub, _ = make()
    t = FakeTransport()
    c = hub.add_client(t, lambda *a: None)
    assert hub.subscribe(c, "SPY", hold=True)
    hub.publish(
        [
            ("SPY", delta("SPY", 100, 1), False),  # older than the snapshot: dropped
            ("SPY", delta("SPY", 100, 2, True), True),  # final: always kept
            ("SPY", delta("SPY", 200, 3), False),
        ]
    )
    assert t.writes == []
    assert hub.release(c, "SPY", snapshot("SPY", 200))
    got = [(m["type"], m.get("candle", {}).get("close")) for m in t.messages()]
    assert got == [("snapshot", None), ("delta", 2), ("delta", 3)]
    assert hub.subscribe(c, "NOPE", hold=True)
    assert not hub.release(c, "NOPE", None)  # no snapshot: not subscribed
    assert hub.subscriptions(c) == ["SPY"]


def test_subscription_limit_and_closing_transport() -> None:
    hub, _ = make(max_symbols=2)
    t = FakeTransport()
    c = hub.add_client(t, lambda *a: None)
    assert hub.subscribe(c, "A") and hub.subscribe(c, "B") and not hub.subscribe(c, "C")
    t.closing = True
    hub.publish([("A", delta("A", 1, 1), False)])
    assert hub.stats.dropped == 1 and hub.stats.messages_sent == 0


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        HubLimits(high_water=10, low_water=20)
    with pytest.raises(ValueError):
        HubLimits(max_pending=0)


# -- history ---------------------------------------------------------------------------------


def _bars(n: int, seed: int = 1) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    t = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 300_000
    return t, close


def test_history_bars_say_what_the_final_deltas_say() -> None:
    store = CandleStore(4096)
    pipe = IndicatorPipeline(publish_raw=False, period="5m")
    t, close = _bars(60)
    finals: dict[int, dict[str, Any]] = {}
    hist = BarHistory(cap=1000)
    for i in range(60):
        c = float(close[i])
        out = pipe.process(store.apply_bar("SPY{=5m}", int(t[i]), c, c + 1, c - 1, c, 100.0 + i))
        for _ch, payload in out.publishes:
            d = json.loads(payload)
            if d["final"]:
                finals[d["candle"]["time"]] = d
        hist.apply(history_ops(out, 1000))
    bars = [json.loads(b) for b in hist.last("SPY", 5000) or []]
    assert len(bars) == 59  # every bar but the forming one
    assert hist.meta("SPY") == ("SPY", "5m")
    for b in bars:
        d = finals[b["time"]]
        assert {k: b[k] for k in ("time", "open", "high", "low", "close", "volume")} == d["candle"]
        assert b["macd"] == d["macd"] and b["hma"] == d["hma"]
    assert bars[-1]["macd"]["color"] is not None and bars[0]["macd"]["value"] is None
    assert [b["time"] for b in bars] == sorted(b["time"] for b in bars)


def test_bar_history_replaces_ranges_and_caps() -> None:
    h = BarHistory(cap=4)

    def op(lo: int, hi: int | None, times: list[int], tag: str) -> HistoryOp:
        return HistoryOp("X", "X", "5m", lo, hi, [(t, f"{tag}{t}".encode()) for t in times])

    h.apply([op(1, 3, [1, 2, 3], "a")])
    h.apply([op(4, 4, [4], "a")])
    assert h.last("X", 10) == [b"a1", b"a2", b"a3", b"a4"]
    h.apply([op(2, None, [2, 3], "b")])  # a rebuild from 2: 4 is gone
    assert h.last("X", 10) == [b"a1", b"b2", b"b3"]
    h.apply([op(4, 6, [4, 5, 6], "c")])
    assert h.last("X", 10) == [b"b3", b"c4", b"c5", b"c6"]  # capped at 4
    assert h.last("X", 2) == [b"c5", b"c6"] and h.last("Y", 2) is None
    assert snapshot_meta(snapshot("SPY", 1), "SPY") == ("SPY", "5m")
    assert snapshot_meta(b"nonsense", "Q") == ("Q", None)
