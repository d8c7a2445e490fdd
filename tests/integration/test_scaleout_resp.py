"""The scale-out write path packed by hand (ttfast.worker.scaleout.resp): the same bytes on the
wire as redis-py's packer, the same replies as redis-py's cluster pipeline, and the cluster's
redirects on a real 6-node cluster: a slot migrated by hand (MOVED, ASK) and a primary killed."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.cluster import ClusterNode, RedisCluster, key_slot
from redis.exceptions import ResponseError
from tests.servers import RedisCluster as ClusterFixture
from tests.servers import redis_server

from ttfast.worker.scaleout.common import RoundNotDone, run_round
from ttfast.worker.scaleout.resp import COALESCE_MAX, RespCluster, pack_command

pytestmark = pytest.mark.timeout(180)


args = st.one_of(
    st.binary(max_size=40),
    st.binary(min_size=5000, max_size=20000),  # (the packer's buffer grows)
    st.text(max_size=20),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(),  # beyond 64 bits too
    st.floats(),  # inf and nan included: repr, as redis-py
)


@given(st.lists(args, min_size=1, max_size=8))
def test_pack_command_is_redis_py_packer(rest: list[object]) -> None:
    """The compiled packer (`ttfast._core.resp`) against its oracle, redis-py's packer."""
    from redis.connection import Connection

    cmd = ["XADD", *rest]  # (redis-py splits a first argument with spaces: a command name)
    expected = b"".join(Connection().pack_command(*cmd))  # (packs; never connects)
    assert pack_command(tuple(cmd)) == expected


@given(st.binary(max_size=40))
def test_buffers_pack_as_their_bytes(b: bytes) -> None:
    want = pack_command(("SET", b"k", b))
    assert pack_command(("SET", b"k", bytearray(b))) == want
    assert pack_command(("SET", b"k", memoryview(b))) == want


def test_bad_arguments_are_refused() -> None:
    for bad in ((b"SET", b"k", True), (b"SET", b"k", None), (b"SET", b"k", [1])):
        with pytest.raises(TypeError):
            pack_command(bad)
    with pytest.raises(ValueError):
        pack_command(())
    with pytest.raises(TypeError):
        pack_command([b"SET", b"k", b"v"])  # type: ignore[arg-type]
    with pytest.raises(UnicodeEncodeError):
        pack_command(("SET", "k", "\ud800"))  # a lone surrogate, as str.encode()


async def test_round_on_one_server_replies_like_redis_py() -> None:
    with redis_server() as srv:
        fast = RespCluster(srv.url)
        cmds = [("SET", "a", 1), ("INCR", "a"), ("HSET", "h", "f", b"\x00\xff"), ("LPUSH", "a", 1)]
        res = await run_round(fast, cmds)
        assert res[:3] == [b"OK", 2, 1] and isinstance(res[3], ResponseError)  # WRONGTYPE
        with pytest.raises(RoundNotDone):  # no replica: WAIT 1 answers 0
            await run_round(fast, [("SET", "b", 1)], durable=1, timeout_ms=50)
        await fast.aclose()


async def test_rounds_of_one_turn_go_out_together() -> None:
    """Rounds asked for in the same event-loop turn are sent as one (one write per node), and
    each caller gets its own replies, error replies in place; a failure reaches them all."""
    with redis_server() as srv:
        fast = RespCluster(srv.url)
        a = [("SET", "a", 1), ("INCR", "a")]
        b = [("SET", "b", "x"), ("INCR", "b"), ("GET", "b")]  # INCR of "x": an error reply
        c = [("INCR", "a")]
        ra, rb, rc = await asyncio.gather(fast.round(a), fast.round(b), fast.round(c))
        assert ra == [b"OK", 2] and rc == [3]
        assert rb[0] == b"OK" and isinstance(rb[1], ResponseError) and rb[2] == b"x"
        assert (fast.rounds, fast.coalesced) == (1, 3)
        assert await fast.round([("GET", "a")]) == [b"3"]  # alone: a round of its own
        assert (fast.rounds, fast.coalesced) == (2, 4)
        big = [("INCR", "n")] * (COALESCE_MAX + 1)  # sent at once, not counted as combined
        small = [("INCR", "m")] * 200
        got = await asyncio.gather(fast.round(big), *(fast.round(small) for _ in range(12)))
        assert got[0] == list(range(1, COALESCE_MAX + 2))
        assert [r[-1] for r in got[1:]] == [200 * (i + 1) for i in range(12)]  # in order
        assert (fast.rounds, fast.coalesced) == (4, 16)  # 12 x 200: two rounds (<= 2000)
        srv.stop()
        got = await asyncio.gather(
            fast.round([("SET", "a", 1)]), fast.round([("SET", "b", 1)]), return_exceptions=True
        )
        assert all(isinstance(g, (ConnectionError, OSError)) for g in got), got
        await fast.aclose()


def _nodes(cluster: ClusterFixture) -> RedisCluster:
    return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in cluster.startup_nodes])


def _migrate_slot(cluster: ClusterFixture, key: bytes, *, finish: bool) -> None:
    """Move `key`'s slot (and the key) to another primary by hand; `finish=False` stops half
    way (the slot MIGRATING / IMPORTING, the key moved: ASK)."""
    r = _nodes(cluster)
    slot = key_slot(key)
    src = r.get_node_from_key(key)
    dst = next(n for n in r.get_primaries() if n.name != src.name)
    src_id = r.cluster_myid(src)
    dst_id = r.cluster_myid(dst)
    r.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id, target_nodes=dst)
    r.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id, target_nodes=src)
    r.execute_command("MIGRATE", dst.host, dst.port, key, 0, 5000, target_nodes=src)
    if finish:
        for n in r.get_primaries():
            r.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id, target_nodes=n)
    r.close()


async def test_cluster_round_follows_moved_and_ask(cluster: ClusterFixture) -> None:
    fast = RespCluster(cluster.url)
    keys = [f"{{p{i}}}:k".encode() for i in range(16)]
    assert await run_round(fast, [("SET", k, b"v0") for k in keys]) == [b"OK"] * 16
    # half way through a migration: the key is on the importing node -> ASK (followed)
    _migrate_slot(cluster, keys[3], finish=False)
    res = await run_round(fast, [("APPEND", k, b"1") for k in keys])
    assert res == [3] * 16
    # durable rounds never follow a redirect: resent whole
    with pytest.raises(RoundNotDone):
        await run_round(fast, [("SET", keys[3], b"x")], durable=1, timeout_ms=500)
    await fast.aclose()
    # a finished migration -> MOVED: followed, and the slot map read again
    fast = RespCluster(cluster.url)
    await fast.refresh()
    _migrate_slot(cluster, keys[5], finish=True)
    before = fast.refreshes
    assert await run_round(fast, [("APPEND", keys[5], b"2")]) == [4]  # "v01" + "2"
    assert fast.redirects >= 1
    assert await run_round(fast, [("APPEND", keys[5], b"3")], durable=1) == [5]
    assert fast.refreshes > before
    r = _nodes(cluster)
    assert r.get(keys[5]) == b"v0123"
    r.close()
    await fast.aclose()


async def test_cluster_round_after_a_primary_dies(cluster: ClusterFixture) -> None:
    fast = RespCluster(cluster.url)
    key = b"{p7}:k"
    assert await run_round(fast, [("SET", key, b"a")], durable=1) == [b"OK"]
    r = _nodes(cluster)
    victim = r.get_node_from_key(key)
    r.close()
    node = next(n for n in cluster.nodes if n.port == victim.port)
    assert node.proc is not None
    node.proc.kill()
    node.proc.wait(10)
    errors = 0
    deadline = time.monotonic() + 30
    while True:  # the caller's retry loop: errors until the replica is promoted
        try:
            res = await run_round(fast, [("APPEND", key, b"b")])
            break
        except (ConnectionError, TimeoutError, RoundNotDone, OSError):
            errors += 1
            assert time.monotonic() < deadline, "no failover in 30 s"
            await asyncio.sleep(0.2)
    assert errors >= 1 and res == [2]  # the acknowledged durable write survived the failover
    # the promoted replica has no replica of its own: a durable round cannot be durable
    with pytest.raises(RoundNotDone):
        await run_round(fast, [("APPEND", key, b"c")], durable=1, timeout_ms=200)
    node.start()  # back, as a replica of the new primary
    deadline = time.monotonic() + 30
    while True:
        try:
            res = await run_round(fast, [("APPEND", key, b"d")], durable=1, timeout_ms=500)
            break
        except RoundNotDone:
            assert time.monotonic() < deadline, "no replica in 30 s"
            await asyncio.sleep(0.2)
    assert res == [4]  # "abc" + "d": the non-durable "c" was written, just not confirmed
    await fast.aclose()
