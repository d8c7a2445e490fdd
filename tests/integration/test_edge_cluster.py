"""ttfast-edge reading a real 6-node Redis Cluster (`ClusterFeed`, issue 18): one sharded
subscription per partition channel ``analytics:delta:{p<n>}`` (``<name> <payload>``), reads
through the cluster, the scale-out workers end to end, and a primary killed (``kill -9``) under
connected clients."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.integration.scaleout_helpers import spawn_worker, tails
from tests.integration.test_edge_redis import delta, get, recv, snapshot, wait_for
from tests.servers import RedisCluster, clean_env, stop_cli, ttfast_script

from ttfast.edge.app import EdgeConfig, EdgeServer
from ttfast.edge.cluster_feed import ClusterFeed
from ttfast.edge.hub import Hub
from ttfast.worker.scaleout.common import connect, partition_channel, partition_of

P = 16

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
async def rc(cluster: RedisCluster) -> AsyncIterator[Any]:
    client = connect(cluster.url)
    yield client
    await client.aclose()


async def start(url: str, **kw: Any) -> tuple[EdgeServer, ClusterFeed]:
    c = EdgeConfig(port=0)
    hub = Hub(c.limits)
    feed = ClusterFeed(
        url,
        hub,
        partitions=P,
        ping_interval=0.5,
        scan_interval=0.5,
        topology_interval=1.0,
        connect_timeout=1.0,
        **kw,
    )
    edge = EdgeServer(feed, hub, c)
    await edge.start()
    assert await feed.wait_up(20)
    return edge, feed


def part(name: str) -> int:
    """The partition the workers put `name` (a 5m symbol) in."""
    return partition_of(f"{name}{{=5m}}", P)


def symbols_on_every_shard(cluster: RedisCluster, per_shard: int = 2) -> dict[str, int]:
    """Symbol names, `per_shard` on each primary (by their partition channel's slot): name ->
    the port of that primary."""
    out: dict[str, int] = {}
    count: dict[int, int] = defaultdict(int)
    for i in range(500):
        name = f"S{i:03d}"
        port = cluster.primary_of(partition_channel(part(name)).decode()).port
        if count[port] < per_shard:
            count[port] += 1
            out[name] = port
        if len(count) == 3 and all(v == per_shard for v in count.values()):
            return out
    raise AssertionError(f"symbols not spread over 3 primaries: {dict(count)}")


def message(name: str, payload: bytes) -> tuple[bytes, bytes]:
    """(channel, message) as a compute worker SPUBLISHes it."""
    return partition_channel(part(name)), name.encode() + b" " + payload


async def spublish(rc: Any, msgs: list[tuple[bytes, bytes]]) -> None:
    pipe = rc.pipeline()
    for ch, msg in msgs:
        pipe.execute_command("SPUBLISH", ch, msg)
    await pipe.execute()


async def test_partition_channels_on_every_shard_fan_out(cluster: RedisCluster, rc: Any) -> None:
    syms = symbols_on_every_shard(cluster)
    names = sorted(syms)
    for n in names:
        await rc.set(f"snapshot:{n}", snapshot(n, 1000))
    await rc.zadd(f"history:{names[0]}", {b'{"time":700,"close":1.0}': 700})
    edge, feed = await start(cluster.url)
    try:
        # P subscriptions, one per partition channel, over one connection per primary
        for p in range(P):
            ch = partition_channel(p).decode()
            out = cluster.primary_of(ch).command("pubsub", "shardnumsub", ch).split()
            assert out == [ch, "1"], out
        assert feed.subscribed() == {partition_channel(p) for p in range(P)}
        async with aiohttp.ClientSession() as http:
            await wait_for(lambda: feed.symbols() == names)  # SCAN over all three primaries
            assert (await get(http, edge.url + "symbols"))[1] == {"symbols": names}
            status, snap = await get(http, edge.url + f"snapshot/{names[3]}")
            assert status == 200 and snap == json.loads(snapshot(names[3], 1000))
            status, hist = await get(http, edge.url + f"history/{names[0]}?bars=5")
            assert status == 200 and hist["bars"] == [{"time": 700, "close": 1.0}]
            status, health = await get(http, edge.url + "healthz")
            assert health["status"] == "ok" and health["redis"] == "up"
            async with http.get(edge.url + "metrics") as resp:
                text = await resp.text()
            assert f"ttfast_edge_redis_partitions_subscribed {P}" in text
            assert "ttfast_edge_redis_shard_connections 3" in text

            ws = await http.ws_connect(edge.url + "ws")
            await ws.send_str(json.dumps({"subscribe": names}))
            assert (await recv(ws))["symbols"] == names
            assert {(await recv(ws))["symbol"] for _ in names} == set(names)
            n = 100
            msgs: list[tuple[bytes, bytes]] = []
            for i in range(n):
                for name in names:
                    msgs.append(message(name, delta(name, 1000, i, i % 10 == 9)))
                if i % 25 == 0:  # malformed ones, on a channel of each shard
                    msgs += [
                        (partition_channel(0), b"no-separator"),
                        (partition_channel(1), b" " + delta("X", 1000, i)),  # no name
                        (partition_channel(2), b"bad\x01name " + delta("X", 1000, i)),
                        (partition_channel(3), names[0].encode() + b" "),  # no payload
                    ]
            await spublish(rc, msgs)
            got: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for _ in range(n * len(names)):
                m = await recv(ws)
                got[m["symbol"]].append(m)
            for name in names:
                assert [m["candle"]["close"] for m in got[name]] == list(range(n))
                assert [m["final"] for m in got[name]] == [i % 10 == 9 for i in range(n)]
            assert feed.stats.bad_messages == 16  # every one counted and skipped
            assert feed.stats.bad_channels == 1  # the invalid name, counted once (cached)
            assert edge.hub.stats.deltas_in == n * len(names)
            await ws.close()
    finally:
        await edge.close()


async def test_scaleout_workers_to_ws_clients(
    cluster: RedisCluster, rc: Any, tmp_path: Path
) -> None:
    syms = ["SPY", "QQQ", "AAPL", "MSFT"]
    await rc.initialize()  # (the slot map: ClusterPubSub needs it)
    ref = rc.pubsub()  # what the compute worker SPUBLISHes per symbol
    await ref.ssubscribe(*(f"analytics:delta:{s}" for s in syms))
    published: dict[str, list[str]] = defaultdict(list)

    async def collect() -> None:
        while True:
            m = await ref.get_sharded_message(ignore_subscribe_messages=True, timeout=0.0)
            if m is None:
                await asyncio.sleep(0.002)
            elif m["type"] in ("smessage", b"smessage"):
                ch = m["channel"].decode() if isinstance(m["channel"], bytes) else m["channel"]
                published[ch.rpartition(":")[2]].append(m["data"].decode())

    collector = asyncio.create_task(collect())
    common = ["--redis", cluster.url, "--partitions", str(P), "--status-interval", "1"]
    logs = [tmp_path / "compute.log", tmp_path / "ingest.log", tmp_path / "edge.log"]
    procs = [spawn_worker(["--role", "compute", *common], logs[0])]
    procs.append(
        spawn_worker(
            ["--role", "ingest", *common, "--symbols", ",".join(syms), "--sim-speed", "600",
             "--history-days", "1", "--no-serve", "--no-print"],
            logs[1],
        )
    )  # fmt: skip
    edge_log = open(logs[2], "w+")  # noqa: SIM115 (read back below)
    edge = subprocess.Popen(
        [*ttfast_script("ttfast-edge", "ttfast.edge"), "--redis", cluster.url,
         "--partitions", str(P), "--port", "0"],
        stdout=subprocess.DEVNULL, stderr=edge_log, text=True, env=clean_env(),
    )  # fmt: skip
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None:
            assert time.monotonic() < deadline and edge.poll() is None, tails(logs)
            m = re.search(r"ttfast-edge: (http://\S+)", logs[2].read_text())
            url = m.group(1) if m else None
            await asyncio.sleep(0.1)
        assert url is not None
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 90
            while (await get(http, url + "symbols"))[1]["symbols"] != sorted(syms) or (
                await get(http, url + "healthz")
            )[1]["status"] != "ok":
                assert time.monotonic() < deadline, "no snapshots\n" + tails(logs)
                await asyncio.sleep(0.2)
            for s in syms:
                status, snap = await get(http, url + f"snapshot/{s}")
                assert status == 200 and snap["type"] == "snapshot" and snap["symbol"] == s
            ws = await http.ws_connect(url + "ws")
            await ws.send_str(json.dumps({"subscribe": syms}))
            assert (await recv(ws))["type"] == "subscribed"
            got: dict[str, list[str]] = defaultdict(list)
            finals = 0
            t_end = time.monotonic() + 6
            while time.monotonic() < t_end:
                msg = await ws.receive(timeout=10)
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                d = json.loads(msg.data)
                if d["type"] == "delta":
                    got[d["symbol"]].append(msg.data)
                    finals += d["final"]
            await ws.close()
        # the reference subscriber catches up with what the edge delivered
        await wait_for(lambda: all(got[s] and got[s][-1] in published[s] for s in syms), 30)
        for s in syms:
            ws_deltas, sent = got[s], published[s]
            assert len(ws_deltas) >= 10, (s, len(ws_deltas), tails(logs))
            # the edge's deltas are the per-symbol channel's messages, byte for byte, in order
            starts = [i for i, x in enumerate(sent) if x == ws_deltas[0]]
            assert any(sent[i : i + len(ws_deltas)] == ws_deltas for i in starts), s
        assert finals > 0
    finally:
        collector.cancel()
        await ref.aclose()
        stop_cli(edge)
        edge_log.close()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    assert edge.returncode == 0, logs[2].read_text()


async def test_primary_killed_edge_follows_the_promoted_replica(
    cluster: RedisCluster, rc: Any
) -> None:
    syms = symbols_on_every_shard(cluster, per_shard=1)
    by_port = {port: name for name, port in syms.items()}
    for n in syms:
        await rc.set(f"snapshot:{n}", snapshot(n, 1000))
    victim = cluster.primary_of(partition_channel(part(next(iter(syms)))).decode())
    x = by_port[victim.port]  # on the shard that fails over
    y = next(n for n in syms if n != x)  # on another shard
    edge, feed = await start(cluster.url)
    seq = {n: 0 for n in syms}
    pubs = {n: connect(cluster.url) for n in syms}  # one each: a stuck one delays no other

    async def publish(n: str) -> None:  # every 20 ms a delta, through the failover
        while True:
            try:
                await spublish(pubs[n], [message(n, delta(n, 1000, seq[n] + 1))])
                seq[n] += 1
            except Exception:
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.02)

    got: list[tuple[float, dict[str, Any]]] = []

    async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            got.append((time.monotonic(), json.loads(msg.data)))

    publishers = [asyncio.create_task(publish(n)) for n in syms]
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(edge.url + "ws")
            await ws.send_str(json.dumps({"subscribe": [x, y]}))
            reader = asyncio.create_task(read(ws))

            def deltas(name: str, after: float = 0.0, before: float = 1e300) -> list[int]:
                return [
                    int(m["candle"]["close"])
                    for t, m in got
                    if after < t < before and m["type"] == "delta" and m["symbol"] == name
                ]

            await wait_for(lambda: deltas(x) and deltas(y))
            t_kill = time.monotonic()
            victim.kill()  # SIGKILL
            statuses: list[str] = []
            deadline = time.monotonic() + 60
            while True:
                statuses.append((await get(http, edge.url + "healthz"))[1]["status"])
                if "degraded" in statuses and statuses[-1] == "ok":
                    break
                assert time.monotonic() < deadline, (statuses[-5:], feed.state)
                await asyncio.sleep(0.05)
            t_ok = time.monotonic()
            assert feed.state == "up" and feed.stats.disconnects >= 1
            assert cluster.primary_of(partition_channel(part(x)).decode()) is not victim
            mark = seq[x]
            await wait_for(lambda: any(v > mark for v in deltas(x, t_ok)), 20)
            # the other shards kept flowing meanwhile; the failed-over symbol got a fresh
            # snapshot (its deltas in between were missed), the others did not
            assert deltas(y, t_kill, t_ok)
            resynced = {m["symbol"] for t, m in got if t > t_kill and m["type"] == "snapshot"}
            assert resynced == {x}
            reader.cancel()
            await ws.close()
    finally:
        for t in publishers:
            t.cancel()
        await asyncio.gather(*publishers, return_exceptions=True)
        for c in pubs.values():
            await c.aclose()
        await edge.close()


async def test_partition_slot_moved_to_another_primary(cluster: RedisCluster, rc: Any) -> None:
    syms = symbols_on_every_shard(cluster, per_shard=1)
    for n in syms:
        await rc.set(f"snapshot:{n}", snapshot(n, 1000))
    x = next(iter(syms))
    ch = partition_channel(part(x)).decode()
    src = cluster.primary_of(ch)
    dst = cluster.primary_of(partition_channel(part(next(n for n in syms if n != x))).decode())
    assert dst is not src
    edge, feed = await start(cluster.url)
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(edge.url + f"ws/{x}")
            assert (await recv(ws))["type"] == "snapshot"
            await spublish(rc, [message(x, delta(x, 1000, 1))])
            assert (await recv(ws))["candle"]["close"] == 1
            # move the channel's slot (no keys in it) from src to dst, as a reshard does
            slot = cluster.nodes[0].command("cluster", "keyslot", ch).strip()
            src_id, dst_id = (n.command("cluster", "myid").strip() for n in (src, dst))
            dst.command("cluster", "setslot", slot, "importing", src_id)
            src.command("cluster", "setslot", slot, "migrating", dst_id)
            dst.command("cluster", "setslot", slot, "node", dst_id)
            src.command("cluster", "setslot", slot, "node", dst_id)

            def moved() -> bool:
                return (
                    dst.command("pubsub", "shardnumsub", ch).split() == [ch, "1"]
                    and src.command("pubsub", "shardnumsub", ch).split() == [ch, "0"]
                    and feed.state == "up"
                )

            await wait_for(moved, 30)
            for i in range(2, 5):
                await spublish(rc, [message(x, delta(x, 1000, i))])  # (redis-py follows MOVED)
            got = [await recv(ws) for _ in range(4)]
            # a fresh snapshot after the move (deltas may have been missed), and the deltas
            assert [m["type"] for m in got].count("snapshot") == 1
            assert [m["candle"]["close"] for m in got if m["type"] == "delta"] == [2, 3, 4]
            await ws.close()
    finally:
        await edge.close()
