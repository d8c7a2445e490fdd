"""ttfast.edge fed from a real redis-server (``ttfast-edge``): one pattern subscription for the
whole process, snapshot/history reads, Redis killed and restarted under connected clients, the
worker's ``history:<name>`` sorted sets, and the command line."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from tests.servers import RedisServer

from ttfast.edge.app import EdgeConfig, EdgeServer
from ttfast.edge.history import HistoryOp, RedisHistoryWriter
from ttfast.edge.hub import Hub
from ttfast.edge.redis_feed import RedisFeed

pytestmark = pytest.mark.timeout(180)


def delta(name: str, t: int, seq: int, final: bool = False) -> bytes:
    return (
        f'{{"type":"delta","symbol":"{name}","period":"5m","candle":{{"time":{t},"open":1.0,'
        f'"high":2.0,"low":0.5,"close":{seq}.0,"volume":10.0}},"macd":{{"value":null,'
        f'"signal":null,"hist":null,"color":null}},"hma":{{"value":null,"direction":null,'
        f'"color":null}},"final":{"true" if final else "false"}}}'
    ).encode()


def snapshot(name: str, t: int, bars: int = 3) -> bytes:
    return (
        f'{{"type":"snapshot","symbol":"{name}","period":"5m","last_candle":{{"time":{t},'
        f'"open":1.0,"high":2.0,"low":0.5,"close":1.5,"volume":10.0}},"macd":{{"value":null,'
        f'"signal":null,"hist":null,"color":null}},"hma":{{"value":null,"direction":null,'
        f'"color":null}},"bars":{bars}}}'
    ).encode()


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    out: dict[str, Any] = json.loads(msg.data)
    return out


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as r:
        return r.status, json.loads(await r.read())


async def wait_for(cond: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def r(redis_srv: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_srv.url)
    yield client
    await client.aclose()


async def start(url: str, **cfg: Any) -> tuple[EdgeServer, RedisFeed]:
    c = EdgeConfig(port=0, **cfg)
    hub = Hub(c.limits)
    feed = RedisFeed(url, hub, ping_interval=0.5, scan_interval=0.5, connect_timeout=1.0)
    edge = EdgeServer(feed, hub, c)
    await edge.start()
    assert await feed.wait_up(10)
    return edge, feed


async def test_one_subscription_fans_out_to_every_client(
    redis_srv: RedisServer, r: aioredis.Redis
) -> None:
    await r.set("snapshot:SPY", snapshot("SPY", 1000))
    await r.set("snapshot:QQQ{=1h}", snapshot("QQQ", 1000))
    edge, feed = await start(redis_srv.url)
    try:
        async with aiohttp.ClientSession() as http:
            await wait_for(lambda: feed.symbols() == ["QQQ{=1h}", "SPY"])
            assert (await get(http, edge.url + "symbols"))[1] == {"symbols": ["QQQ{=1h}", "SPY"]}
            status, snap = await get(http, edge.url + "snapshot/QQQ{=1h}")
            assert status == 200 and snap == json.loads(snapshot("QQQ", 1000))
            clients = [await http.ws_connect(edge.url + "ws/SPY") for _ in range(8)]
            multi = await http.ws_connect(edge.url + "ws")
            await multi.send_str('{"subscribe": ["SPY", "QQQ{=1h}"]}')
            assert (await recv(multi))["symbols"] == ["SPY", "QQQ{=1h}"]
            assert {(await recv(multi))["symbol"] for _ in range(2)} == {"SPY", "QQQ"}
            for ws in clients:
                assert (await recv(ws))["type"] == "snapshot"
            # ONE pattern subscription for the whole process, however many clients
            assert await r.execute_command("PUBSUB", "NUMPAT") == 1
            subs = [c for c in await r.client_list() if int(c.get("psub", 0)) > 0]
            assert len(subs) == 1
            n = 300
            async with r.pipeline(transaction=False) as p:
                for i in range(n):
                    p.publish("analytics:delta:SPY", delta("SPY", 1000, i, i % 10 == 9))
                    p.publish("analytics:delta:QQQ{=1h}", delta("QQQ", 1000, i))
                    p.publish("analytics:delta:bad\x01name", delta("X", 1000, i))
                await p.execute()
            for ws in clients:
                got = [await recv(ws) for _ in range(n)]
                assert [m["candle"]["close"] for m in got] == list(range(n))
                assert [m["final"] for m in got] == [i % 10 == 9 for i in range(n)]
            both = [await recv(multi) for _ in range(2 * n)]
            assert sorted(m["candle"]["close"] for m in both if m["symbol"] == "QQQ") == list(
                range(n)
            )
            assert feed.stats.bad_channels == 1  # counted once (cached), skipped always
            assert edge.hub.stats.deltas_in == 2 * n
            for ws in [*clients, multi]:
                await ws.close()
    finally:
        await edge.close()


async def test_redis_killed_and_restarted_under_connected_clients(
    redis_srv: RedisServer, r: aioredis.Redis
) -> None:
    await r.set("snapshot:SPY", snapshot("SPY", 1000))
    await r.zadd("history:SPY", {b'{"time":700,"close":1.0}': 700})
    edge, feed = await start(redis_srv.url)
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(edge.url + "ws/SPY")
            assert (await recv(ws))["type"] == "snapshot"
            status, hist = await get(http, edge.url + "history/SPY?bars=5")
            assert status == 200 and hist["bars"] == [{"time": 700, "close": 1.0}]
            await r.publish("analytics:delta:SPY", delta("SPY", 1000, 1))
            assert (await recv(ws))["candle"]["close"] == 1

            redis_srv.kill()
            await wait_for(lambda: feed.state == "down")
            status, health = await get(http, edge.url + "healthz")
            assert health == {
                "status": "degraded",
                "source": "redis",
                "redis": "down",
                "clients": 1,
                "symbols": 1,
            }
            # the last snapshot is still served; history needs Redis: 503 (JSON)
            status, snap = await get(http, edge.url + "snapshot/SPY")
            assert status == 200 and snap["bars"] == 3
            status, body = await get(http, edge.url + "history/SPY")
            assert status == 503 and "error" in body
            # a new client gets the cached snapshot too
            ws2 = await http.ws_connect(edge.url + "ws/SPY")
            assert (await recv(ws2))["type"] == "snapshot"

            redis_srv.start()  # a fresh, empty server on the same port
            fresh = aioredis.Redis.from_url(redis_srv.url)
            await fresh.set("snapshot:SPY", snapshot("SPY", 2000, bars=4))
            await wait_for(lambda: feed.state == "up", 20)
            # every subscriber is brought up to date with the new snapshot, then deltas resume
            for c in (ws, ws2):
                m = await recv(c)
                assert m["type"] == "snapshot" and m["bars"] == 4
            await fresh.publish("analytics:delta:SPY", delta("SPY", 2000, 2))
            for c in (ws, ws2):
                assert (await recv(c))["candle"]["close"] == 2
            status, health = await get(http, edge.url + "healthz")
            assert health["status"] == "ok" and health["redis"] == "up" and health["clients"] == 2
            status, metrics = await get_text(http, edge.url + "metrics")
            assert "ttfast_edge_redis_up 1" in metrics
            assert re.search(r"ttfast_edge_redis_disconnects_total [1-9]", metrics)
            await fresh.aclose()
            await ws.close()
            await ws2.close()
    finally:
        await edge.close()


async def get_text(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as resp:
        return resp.status, await resp.text()


async def test_history_writer_sorted_sets_replace_cap_and_survive_restarts(
    redis_srv: RedisServer, r: aioredis.Redis
) -> None:
    w = RedisHistoryWriter(redis_srv.url, cap=5, backoff_initial=0.01, backoff_max=0.1)
    await w.start()

    def op(lo: int, hi: int | None, times: list[int], tag: str) -> HistoryOp:
        return HistoryOp("SPY", "SPY", "5m", lo, hi, [(t, f"{tag}{t}".encode()) for t in times])

    try:
        w.write([op(1, 3, [1, 2, 3], "a")])
        w.write([op(4, 4, [4], "a")])
        assert await w.flush(10)
        assert await r.zrange("history:SPY", 0, -1) == [b"a1", b"a2", b"a3", b"a4"]
        w.write([op(2, None, [2, 3], "b")])  # a rebuild from 2 replaces 2.. (4 is gone)
        w.write([op(2, None, [2, 3], "b")])  # sent twice (at-least-once): no duplicates
        assert await w.flush(10)
        assert await r.zrange("history:SPY", 0, -1) == [b"a1", b"b2", b"b3"]
        redis_srv.kill()
        w.write([op(4, 9, [4, 5, 6, 7, 8, 9], "c")])
        await asyncio.sleep(0.3)
        assert w.backlog == 6 and w.stats.failures > 0
        redis_srv.start()
        assert await w.flush(20)
        fresh = aioredis.Redis.from_url(redis_srv.url)
        # capped at the newest 5 (the fresh server lost what the old one had)
        assert await fresh.zrange("history:SPY", 0, -1) == [b"c5", b"c6", b"c7", b"c8", b"c9"]
        await fresh.aclose()
        st = w.stats
        assert st.bars_enqueued == st.bars_written + st.bars_dropped + st.bars_rejected
    finally:
        await w.close()


async def test_worker_history_in_redis_served_by_the_standalone_edge(
    redis_srv: RedisServer, r: aioredis.Redis
) -> None:
    from ttfast.worker import Worker, WorkerConfig

    cfg = WorkerConfig(
        symbols=["SPY"],
        redis_url=redis_srv.url,
        sim_speed=1200.0,
        history_days=1.0,
        history_bars=100,
        duration=3.0,
        quiet=True,
    )
    w = Worker(cfg)
    assert await w.run() == 0
    assert w.edge.history is not None and w.edge.history.stats.bars_written > 100
    members = await r.zrange("history:SPY", 0, -1, withscores=True)
    assert len(members) == 100  # capped
    times = [int(s) for _, s in members]
    assert times == sorted(set(times)) and all(
        json.loads(m)["time"] == t for (m, _), t in zip(members, times, strict=True)
    )
    snap = json.loads(await r.get("snapshot:SPY"))
    assert times[-1] < snap["last_candle"]["time"]  # closed bars only
    edge, _feed = await start(redis_srv.url)
    try:
        async with aiohttp.ClientSession() as http:
            status, hist = await get(http, edge.url + "history/SPY?bars=30")
            assert status == 200 and hist["symbol"] == "SPY" and hist["period"] == "5m"
            assert hist["bars"] == [json.loads(m) for m, _ in members[-30:]]
    finally:
        await edge.close()


def test_ttfast_edge_command(redis_srv: RedisServer) -> None:
    env = dict(os.environ, TTFAST_EDGE_TOKEN="cli-token")
    exe = os.path.join(os.path.dirname(sys.executable), "ttfast-edge")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "ttfast.edge"]
    proc = subprocess.Popen(
        [*cmd, "--redis", redis_srv.url, "--port", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "ttfast-edge exited"
            m = re.search(r"ttfast-edge: (http://\S+)", line)
            url = m.group(1) if m else None
        assert url is not None and "cli-token" not in url

        async def check() -> None:
            # the command runs on uvloop (whose transports are no asyncio.Transport subclasses)
            r = aioredis.Redis.from_url(redis_srv.url)
            await r.set("snapshot:SPY", snapshot("SPY", 1000))
            async with aiohttp.ClientSession() as http:
                assert (await get(http, url + "healthz"))[0] == 200
                assert (await get(http, url + "symbols"))[0] == 401
                status, body = await get(http, url + "snapshot/SPY?token=cli-token")
                assert status == 200 and body["type"] == "snapshot"
                deadline = time.monotonic() + 30
                while (await get(http, url + "healthz"))[1]["redis"] != "up":
                    assert time.monotonic() < deadline, "ttfast-edge never subscribed"
                    await asyncio.sleep(0.05)
                async with http.ws_connect(url + "ws/SPY?token=cli-token") as ws:
                    assert (await recv(ws))["type"] == "snapshot"
                    await r.publish("analytics:delta:SPY", delta("SPY", 1000, 7))
                    assert (await recv(ws))["candle"]["close"] == 7
            await r.aclose()

        asyncio.run(check())
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
