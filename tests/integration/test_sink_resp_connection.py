"""The Redis sink's own RESP connection (an asyncio.Protocol): the paths a normal round does
not take -- a round larger than the socket buffers (writing paused and resumed), a server
that never answers (the round's timer), a server that says more than it was asked, and the
same rounds on uvloop."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis.asyncio as aioredis
import uvloop
from tests.servers import RedisServer

from ttfast.sinks.redis import RedisProtocolError, RedisSink, _RespConnection


class _Silent:
    """A server that accepts, reads, never answers (or sends `extra` once, unasked)."""

    def __init__(self, extra: bytes = b"") -> None:
        self.extra = extra
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.srv = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.srv.sockets[0].getsockname()[1]}/0"

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.writers.append(w)
        if self.extra:
            w.write(self.extra)
        with contextlib.suppress(Exception):
            while await r.read(1 << 16):
                pass

    async def stop(self) -> None:
        self.srv.close()
        for w in self.writers:
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()
        await self.srv.wait_closed()


async def test_round_larger_than_the_socket_buffers(redis_srv: RedisServer) -> None:
    sink = RedisSink(redis_srv.url, max_commands=1024)
    await sink.start()
    big = b"x" * 100_000
    for i in range(300):  # 30 MB in one round: the transport pauses writing at least once
        sink.publish(b"ch", big)
        sink.set_snapshot(b"snapshot:K%d" % (i % 7), b"%d" % i)
    assert await sink.flush(30.0)
    assert sink.stats.published == 300 and sink.stats.snapshots == 7
    assert sink.stats.failures == 0 and sink.backlog == 0
    r = aioredis.Redis.from_url(redis_srv.url)
    assert await r.get("snapshot:K6") == b"293"
    await r.aclose()
    await sink.close()


async def test_no_reply_times_out_and_is_retried() -> None:
    srv = _Silent()
    url = await srv.start()
    sink = RedisSink(url, socket_timeout=0.2, backoff_initial=0.05, backoff_max=0.05)
    await sink.start()
    sink.publish(b"ch", b"1")
    await asyncio.sleep(0.7)
    assert sink.stats.failures >= 2  # each attempt timed out, reconnected, tried again
    assert sink.stats.published == 0 and sink.backlog == 1  # kept, not lost
    await sink.close(timeout=0.1)
    assert sink.stats.dropped == 1
    await srv.stop()


async def test_unasked_reply_data_is_a_protocol_error() -> None:
    srv = _Silent(extra=b"+OK\r\n")
    url = await srv.start()
    conn = await _RespConnection.open(url, 1.0)
    await asyncio.sleep(0.05)  # the unasked line arrives while no round is in flight
    with pytest.raises(RedisProtocolError):
        await conn.roundtrip(b"*1\r\n$4\r\nPING\r\n", 1)
    conn.close()
    await srv.stop()


def test_rounds_on_uvloop(redis_srv: RedisServer) -> None:
    """The worker runs on uvloop (whose transports call connection_made later and write a
    list of buffers with one writev)."""

    async def main() -> tuple[int, int, list[tuple[int, bytes]]]:
        sink = RedisSink(redis_srv.url, max_commands=64)
        await sink.start()
        for i in range(1000):
            sink.publish(b"ch", b"%d" % i)
            sink.set_snapshot(b"snapshot:U", b"%d" % i)
        assert await sink.flush(10.0)
        conn = await _RespConnection.open(redis_srv.url, 1.0)
        errors = await conn.roundtrip(
            [b"*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n", b"*1\r\n$3\r\nFOO\r\n"], 2
        )
        conn.close()
        await sink.close()
        await asyncio.sleep(0.01)  # uvloop closes transports on a later iteration
        return sink.stats.published, sink.stats.snapshots, errors

    published, snaps, errors = uvloop.run(main())
    assert published == 1000 and snaps >= 1
    assert len(errors) == 1 and errors[0][0] == 1 and errors[0][1].startswith(b"ERR")
