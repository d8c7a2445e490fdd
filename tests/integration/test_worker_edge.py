"""Issue 13 #4: nothing a message contains can stop ttfast-worker (real redis-server, influxd).

Every raw candle is validated at the edge: bad ones are counted per reason
(`WorkerStats.malformed_by_reason`), logged (rate-limited) and skipped; the good messages
around them all land in Redis and InfluxDB, and the worker exits 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis
from tests.servers import InfluxServer, RedisServer

from ttfast._core.indicators import macd as batch_macd
from ttfast.worker import Worker, WorkerConfig

T0 = 1_700_000_100_000 - 1_700_000_100_000 % 300_000
P5 = 300_000


async def _run(worker: Worker, feed: Callable[[], Awaitable[None]]) -> int:
    task = asyncio.create_task(worker.run())
    await feed()
    await asyncio.sleep(0.3)
    worker.stop()
    return await asyncio.wait_for(task, 30)


def _candle(t: int, c: float, **kw: Any) -> bytes:
    d: dict[str, Any] = {"time": t, "open": c, "high": c + 1, "low": c - 1, "close": c}
    d["volume"] = 10.0
    d.update(kw)
    return json.dumps(d).encode()


GOOD = "market:CandleEvent:ABC"
# (channel, payload, reason); every reason the worker reports
BAD: list[tuple[str, bytes, str]] = [
    (GOOD, _candle(T0, 1.0, eventSymbol="BAD\nSYM"), "symbol"),  # killed the worker (LineEncoder)
    (GOOD, _candle(T0, 1.0, eventSymbol="BAD\\"), "symbol"),  # ditto (trailing backslash)
    (GOOD, _candle(T0, 1.0, eventSymbol="BAD\r"), "symbol"),
    (GOOD, _candle(T0, 1.0, eventSymbol="X" * 200), "symbol"),
    (GOOD, _candle(T0, 1.0, eventSymbol="SP\u00ddY"), "symbol"),
    (GOOD, _candle(T0, 1.0, eventSymbol="SPY{=5m"), "symbol"),
    (GOOD, _candle(T0, 1.0, eventSymbol="SPY{5m}"), "symbol"),
    (GOOD, _candle(T0, 1.0, eventSymbol=" SPY"), "symbol"),
    ("market:CandleEvent:BAD\r\nX", _candle(T0, 1.0), "symbol"),  # symbol from the channel
    ("market:CandleEvent:", _candle(T0, 1.0), "symbol"),
    (GOOD, _candle(T0, 1.0, eventSymbol=123), "shape"),
    (GOOD, b'{"close": 1.0}', "shape"),
    (GOOD, b"[1, 2]", "shape"),
    (GOOD, b'{"time": "x", "close": 1}', "shape"),
    (GOOD, b'{"time": 1.5, "close": 1}', "shape"),
    (GOOD, _candle(T0, 1.0, volume="NaN"), "shape"),
    (GOOD, b"not json", "json"),
    (GOOD, b"\xff\xfe{", "json"),
    (GOOD, b'{"time": 1, "close": NaN}', "json"),
    (GOOD, _candle(-1, 1.0, eventSymbol="NEG"), "time"),
    (GOOD, _candle(2**62, 1.0, eventSymbol="FAR"), "time"),
    (GOOD, _candle(2**70, 1.0, eventSymbol="HUGE"), "time"),  # OverflowError killed the worker
    (GOOD, b'{"time": 1700000000000, "close": 1e400, "eventSymbol": "INF"}', "number"),
    (GOOD, _candle(T0, 1e300, eventSymbol="BIG"), "number"),
    (GOOD, _candle(T0, 1.0, eventSymbol="SEQ", sequence=2**23), "field"),  # ValueError, exit 1
    (GOOD, _candle(T0, 1.0, eventSymbol="FLG", eventFlags=1 << 40), "field"),
    (GOOD, _candle(T0, 1.0, eventSymbol="CNT", count=-1), "field"),
    (GOOD, _candle(T0, 1.0, eventSymbol="CNT2", count=2**64), "field"),
    (GOOD, b'{"time": 1, "close": 1, "pad": "' + b"x" * 70_000 + b'"}', "too_large"),
]


async def test_bad_messages_never_stop_the_redis_source(
    redis_srv: RedisServer, influx_srv: InfluxServer, caplog: pytest.LogCaptureFixture
) -> None:
    db = "e" + uuid.uuid4().hex[:8]
    influx_srv.create_database(db)
    cfg = WorkerConfig(
        symbols=[],
        source="redis",
        redis_url=redis_srv.url,
        telegraf_url=influx_srv.url,
        telegraf_db=db,
        quiet=True,
    )
    worker = Worker(cfg)
    pub = aioredis.Redis.from_url(redis_srv.url)
    closes = np.round(100 + np.cumsum(np.random.default_rng(4).normal(0, 0.3, 60)), 2)

    async def feed() -> None:
        await asyncio.sleep(0.5)  # let the source subscribe
        k = 0
        for i, c in enumerate(closes):
            await pub.publish(GOOD, _candle(T0 + i * P5, float(c)))
            if i % 2 == 1 and k < len(BAD):
                ch, payload, _ = BAD[k]
                await pub.publish(ch, payload)
                k += 1
        assert k == len(BAD)

    caplog.set_level(logging.WARNING, "ttfast.worker")
    assert await _run(worker, feed) == 0
    want = Counter(reason for _, _, reason in BAD)
    assert dict(worker.stats.malformed_by_reason) == dict(want)
    assert worker.stats.malformed == len(BAD)
    # nothing of a bad message got in; every good message did
    assert worker.store.symbols() == ["ABC{=5m}"]
    assert worker.pipeline.symbols == ["ABC"]
    snap = json.loads(await pub.get("snapshot:ABC"))
    assert snap["bars"] == 60 and snap["last_candle"]["close"] == closes[-1]
    assert snap["macd"]["hist"] == batch_macd(closes)[2][-1]
    assert sorted(await pub.keys("*")) == [b"snapshot:ABC"]
    rows = influx_srv.query(db, "SELECT close FROM candle")
    assert {r["time"] // 1_000_000: r["close"] for r in rows} == {
        T0 + i * P5: float(c) for i, c in enumerate(closes)
    }
    assert worker.telegraf is not None and worker.telegraf.stats.lines_rejected == 0
    # logged, and rate-limited: at most one line per reason here (they all came within 10 s)
    lines = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert 1 <= len(lines) <= len(want), lines
    # and shown in the status line
    line = worker.status_line()
    assert f"malformed {len(BAD)} (" in line and "symbol 10" in line and "too_large 1" in line
    await pub.aclose()


async def test_an_exception_while_handling_a_message_never_ends_the_source(
    redis_srv: RedisServer,
) -> None:
    """Whatever raises for one message (here: an injected failure for symbol BOOM) is counted
    as `error`; the other messages of the same batch and everything after it still land."""
    cfg = WorkerConfig(symbols=[], source="redis", redis_url=redis_srv.url, quiet=True)
    worker = Worker(cfg)
    inner = worker.on_changes

    def flaky(changes: Any) -> Any:
        if any(s.symbol.startswith("BOOM") for s in changes.series):
            raise RuntimeError("injected failure")
        return inner(changes)

    worker.on_changes = flaky  # type: ignore[method-assign]
    pub = aioredis.Redis.from_url(redis_srv.url)
    closes = np.round(50 + np.cumsum(np.random.default_rng(9).normal(0, 0.3, 40)), 2)

    async def feed() -> None:
        await asyncio.sleep(0.5)
        p = pub.pipeline(transaction=False)  # several messages per source batch
        for i, c in enumerate(closes):
            p.publish("market:CandleEvent:ABC", _candle(T0 + i * P5, float(c)))
            if i % 10 == 0:
                p.publish("market:CandleEvent:BOOM", _candle(T0 + i * P5, float(c)))
            p.publish("market:CandleEvent:XYZ", _candle(T0 + i * P5, float(c) + 1))
        await p.execute()

    assert await _run(worker, feed) == 0
    assert worker.stats.malformed_by_reason == {"error": 4}
    for sym, off in (("ABC", 0.0), ("XYZ", 1.0)):
        snap = json.loads(await pub.get(f"snapshot:{sym}"))
        assert snap["bars"] == 40 and snap["last_candle"]["close"] == closes[-1] + off
    assert await pub.get("snapshot:BOOM") is None
    await pub.aclose()
