"""RedisSink against a real redis-server: batching, snapshots, restart survival, drop counts."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from tests.servers import RedisServer

from ttfast.sinks import redact_url
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
