"""RedisSink against a real redis-server: batching, snapshots, restart survival, drop counts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from tests.servers import RedisServer

from ttfast._util import redact_url
from ttfast.sinks.redis import RedisSink


async def test_publish_and_snapshot_roundtrip(redis_srv: RedisServer) -> None:
    reader = aioredis.Redis.from_url(redis_srv.url)
    ps = reader.pubsub()
    await ps.psubscribe("analytics:delta:*")
    await ps.get_message(timeout=1.0)  # psubscribe confirmation
    sink = RedisSink(redis_srv.url, max_commands=64)
    await sink.start()
    for i in range(500):
        sink.publish(b"analytics:delta:SPY", b'{"i":%d}' % i)
    sink.set_snapshot(b"snapshot:SPY", b'{"v":1}')
    sink.set_snapshot(b"snapshot:SPY", b'{"v":2}')  # latest wins
    assert await sink.flush(5.0)
    got = []
    while len(got) < 500:
        msg = await ps.get_message(ignore_subscribe_messages=True, timeout=2.0)
        assert msg is not None, f"only {len(got)} messages arrived"
        got.append(msg["data"])
    assert got == [b'{"i":%d}' % i for i in range(500)]
    assert await reader.get("snapshot:SPY") == b'{"v":2}'
    assert sink.stats.published == 500 and sink.stats.snapshots == 1
    assert sink.stats.flushes >= 500 // 64  # batched: at most 64 commands per pipeline
    assert sink.stats.dropped == 0
    await sink.close()
    await ps.aclose()
    await reader.aclose()


async def test_survives_restart_with_bounded_backlog(redis_srv: RedisServer) -> None:
    sink = RedisSink(
        redis_srv.url, max_backlog=100, backoff_initial=0.02, backoff_max=0.1, socket_timeout=0.5
    )
    await sink.start()
    sink.set_snapshot(b"snapshot:A", b"1")
    assert await sink.flush(5.0)
    redis_srv.kill()
    for i in range(250):
        sink.publish(b"ch", b"%d" % i)
        sink.set_snapshot(b"snapshot:A", b"v%d" % i)
    await asyncio.sleep(0.3)  # flusher fails and backs off meanwhile
    assert sink.stats.failures >= 1
    assert sink.backlog <= 101
    # 250 queued into a 100-deep backlog: exactly 150 dropped (the oldest), counted
    assert sink.stats.dropped == 150
    redis_srv.start()  # fresh server on the same port (empty dataset)
    reader = aioredis.Redis.from_url(redis_srv.url)
    assert await sink.flush(10.0)
    assert sink.stats.reconnects >= 1
    assert sink.stats.published == 100
    assert await reader.get("snapshot:A") == b"v249"
    await sink.close()
    await reader.aclose()


async def test_close_flushes_and_counts_unsent(redis_srv: RedisServer) -> None:
    sink = RedisSink(redis_srv.url, backoff_initial=0.02, socket_timeout=0.3)
    await sink.start()
    redis_srv.kill()
    for i in range(10):
        sink.publish(b"ch", b"%d" % i)
    await sink.close(timeout=0.3)
    assert sink.stats.dropped == 10
    assert sink.backlog == 0
    assert await sink.flush(0.1)  # nothing left to wait for: the unsent are counted dropped


def test_redact_url() -> None:
    assert redact_url("redis://user:s3cret@host:6379/0?token=x") == "redis://user:***@host:6379/0"
    assert "s3cret" not in repr(RedisSink("redis://:s3cret@127.0.0.1:1/0"))


async def test_password_db_and_rejections(redis_srv: RedisServer) -> None:
    admin = aioredis.Redis.from_url(redis_srv.url)
    await admin.config_set("requirepass", "s3cret")
    url = f"redis://:s3cret@127.0.0.1:{redis_srv.port}/3"
    sink = RedisSink(url)
    await sink.start()
    sink.set_snapshot(b"snapshot:X", b"1")
    assert await sink.flush(5.0)
    reader = aioredis.Redis.from_url(url)
    assert await reader.get("snapshot:X") == b"1"
    # out of memory: Redis refuses the SET; counted as rejected, not retried forever
    await reader.config_set("maxmemory", "1")
    await reader.config_set("maxmemory-policy", "noeviction")
    sink.set_snapshot(b"snapshot:Y", b"2")
    sink.publish(b"ch", b"still fine")
    assert await sink.flush(5.0)
    assert sink.stats.rejected == 1 and sink.stats.published == 1
    await reader.config_set("maxmemory", "0")
    await sink.close()
    await reader.aclose()
    await admin.aclose()


async def test_wrong_password_is_retried_not_fatal(
    redis_srv: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    admin = aioredis.Redis.from_url(redis_srv.url)
    await admin.config_set("requirepass", "right")
    sink = RedisSink(f"redis://:wrong@127.0.0.1:{redis_srv.port}/0", backoff_initial=0.01)
    await sink.start()
    sink.publish(b"ch", b"x")
    assert not await sink.flush(0.3)
    assert sink.stats.failures >= 1
    await sink.close(timeout=0.1)
    assert "wrong" not in caplog.text  # the password never reaches the log
    assert sink.stats.dropped == 1
    await admin.aclose()


async def _wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def test_backlog_counts_commands_in_flight(redis_srv: RedisServer) -> None:
    """Issue 13 #13: commands sent but not yet acknowledged are part of `backlog`."""
    admin = aioredis.Redis.from_url(redis_srv.url)
    sink = RedisSink(redis_srv.url, max_commands=1024, socket_timeout=30.0)
    await sink.start()
    sink.publish(b"ch", b"warm-up")
    assert await sink.flush(5.0)  # connected
    # the server holds write commands (PUBLISH and SET included) until CLIENT UNPAUSE
    await admin.execute_command("CLIENT", "PAUSE", "30000", "WRITE")
    try:
        for i in range(1500):
            sink.publish(b"ch", b"%d" % i)
        sink.set_snapshot(b"snapshot:A", b"1")
        await _wait_for(lambda: sink.in_flight > 0)
        assert sink.in_flight == 1024  # one round: the snapshot and 1,023 publishes
        for _ in range(10):  # while Redis sits on them, nothing is acknowledged
            assert sink.backlog == 1501
            s = sink.stats
            assert s.enqueued == s.published + s.dropped + s.rejected + sink.backlog - 1
            await asyncio.sleep(0.01)
        assert f"backlog={sink.backlog}" in repr(sink)
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
    assert await sink.flush(10.0)
    assert sink.backlog == 0 and sink.in_flight == 0
    assert sink.stats.published == 1501 and sink.stats.snapshots == 1
    await sink.close()
    await admin.aclose()


async def test_rejected_publish_is_not_counted_published(redis_srv: RedisServer) -> None:
    """A PUBLISH refused by Redis (ACL NOPERM) counts as rejected only, never as published."""
    admin = aioredis.Redis.from_url(redis_srv.url)
    await admin.execute_command(
        "ACL", "SETUSER", "pubber", "on", ">pub-pw", "~snapshot:*", "&allowed:*", "+@all"
    )
    sink = RedisSink(f"redis://pubber:pub-pw@127.0.0.1:{redis_srv.port}/0")
    await sink.start()
    for i in range(5):
        sink.publish(b"allowed:x" if i % 2 == 0 else b"denied:x", b"%d" % i)
    sink.set_snapshot(b"other:key", b"1")  # ~snapshot:* only: refused
    sink.set_snapshot(b"snapshot:ok", b"1")
    assert await sink.flush(5.0)
    await sink.close()
    s = sink.stats
    assert s.published == 3 and s.snapshots == 1 and s.rejected == 3
    assert s.enqueued == s.published + s.dropped + s.rejected_publishes + sink.backlog
    assert await admin.get("snapshot:ok") == b"1"
    await admin.aclose()


async def test_drops_are_logged_rate_limited(
    redis_srv: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    sink = RedisSink(redis_srv.url, max_backlog=10, backoff_initial=0.02, socket_timeout=0.3)
    await sink.start()
    redis_srv.kill()
    for i in range(1000):
        sink.publish(b"ch", b"%d" % i)
    sink.publish_many([(b"ch", b"x")] * 100)
    await sink.close(timeout=0.2)
    assert sink.stats.dropped == 1100
    drops = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert 1 <= len(drops) <= 3  # logged, but not once per message
