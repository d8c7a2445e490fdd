"""Redis sink: pipelined PUBLISH / SET with a bounded backlog that survives Redis restarts.

The producer (the worker's batch loop) calls `publish()` / `set_snapshot()`, which only queue
and never block or raise. A single flusher task sends everything queued as one pipelined write
per round (at most `max_commands` commands), so there is one network round trip per loop
iteration, not per message.

Why not redis-py's pipeline: building each command through redis-py costs ~9 us (measured
~110k commands/s at best on these machines, and the worker's Redis path was bound by it). The
sink only ever sends PUBLISH and SET, whose RESP encoding is a few bytes around the payload,
and whose replies are single lines (``:n``, ``+OK`` or ``-ERR ...``); so it packs RESP itself
and counts reply lines on its own asyncio connection. redis-py remains the client for
everything else (the redis source, tests).

When Redis is down or restarting, the flusher (the `BatchingSink` loop) reconnects with
exponential backoff while the worker keeps running. Meanwhile at most `max_backlog` publishes
are kept (the oldest are dropped and counted in `stats.dropped`); snapshots are one per symbol,
the latest always wins (an overwritten snapshot is not a loss: SET keeps only the last value
anyway). What a failed round had taken is put back in front of the queue, so delivery is
at-least-once.

`backlog` is every command not yet acknowledged: queued, plus the round in flight
(`in_flight`). For publishes, ``enqueued == published + dropped + rejected_publishes +`` the
publishes in `backlog` at all times; a command Redis answers with an error counts as rejected,
never as published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ttfast._core import pack_command
from ttfast._util import redact_url
from ttfast.sinks._base import BatchingSink

log = logging.getLogger("ttfast.sinks.redis")


@dataclass
class RedisSinkStats:
    enqueued: int = 0  # publishes accepted (= published + dropped + rejected_publishes + backlog)
    published: int = 0  # PUBLISH commands acknowledged by Redis
    snapshots: int = 0  # SET snapshot commands acknowledged
    dropped: int = 0  # publishes dropped from a full backlog, or unacknowledged at close
    reconnects: int = 0  # successful rounds after a failure
    failures: int = 0  # failed rounds (connection/timeout errors), retried
    rejected: int = 0  # commands Redis answered with an error (not retried), SET + PUBLISH
    rejected_publishes: int = 0  # the PUBLISH part of `rejected`
    flushes: int = 0  # pipelines executed
    connected: bool = False


class RedisSink(BatchingSink):
    """Batched PUBLISH/SET to one Redis, robust to Redis going away.

    ``sink = RedisSink("redis://127.0.0.1:6379/0"); await sink.start(); sink.publish(ch, data);
    ...; await sink.close()``.
    """

    kind = "redis"
    _sender_name = "flusher"
    _unit = "commands"

    def __init__(
        self,
        url: str,
        *,
        max_backlog: int = 100_000,
        max_commands: int = 1024,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        socket_timeout: float = 2.0,
    ) -> None:
        if max_backlog < 1 or max_commands < 1:
            raise ValueError("max_backlog and max_commands must be >= 1")
        super().__init__(url, log, backoff_initial=backoff_initial, backoff_max=backoff_max)
        self.max_backlog = max_backlog
        self.max_commands = max_commands
        self.stats = RedisSinkStats()
        self.socket_timeout = socket_timeout
        self._conn: _RespConnection | None = None
        self._pubs: deque[tuple[bytes, bytes]] = deque()
        self._snaps: dict[bytes, bytes] = {}
        self._inflight_pubs = 0  # commands of the round awaiting Redis's replies
        self._inflight_snaps = 0
        self._packer = _Packer()

    def __repr__(self) -> str:
        return f"<RedisSink {redact_url(self.url)} backlog={self.backlog}>"

    @property
    def backlog(self) -> int:
        """Commands not yet acknowledged: queued, plus the round in flight (`in_flight`)."""
        return len(self._pubs) + len(self._snaps) + self._inflight_pubs + self._inflight_snaps

    @property
    def in_flight(self) -> int:
        """Commands sent (or being sent) whose replies have not arrived yet."""
        return self._inflight_pubs + self._inflight_snaps

    def _log_dropped(self) -> None:
        self._limiter.log(
            "dropped",
            logging.WARNING,
            "redis %s: backlog full (max_backlog=%d), oldest publishes dropped (%d in all)",
            redact_url(self.url),
            self.max_backlog,
            self.stats.dropped,
        )

    # -- producer side (never blocks, never raises on Redis trouble) ---------------------------
    def publish(self, channel: bytes, payload: bytes) -> None:
        self.stats.enqueued += 1
        if len(self._pubs) >= self.max_backlog:
            self._pubs.popleft()
            self.stats.dropped += 1
            self._log_dropped()
        self._pubs.append((channel, payload))
        self._idle.clear()
        self._wake.set()

    def publish_many(self, items: list[tuple[bytes, bytes]]) -> None:
        self.stats.enqueued += len(items)
        over = len(self._pubs) + len(items) - self.max_backlog
        if over > 0:
            from_queue = min(over, len(self._pubs))
            for _ in range(from_queue):
                self._pubs.popleft()
            self.stats.dropped += over
            self._log_dropped()
            if over > from_queue:
                items = items[over - from_queue :]
        self._pubs.extend(items)
        if items:
            self._idle.clear()
            self._wake.set()

    def set_snapshot(self, key: bytes, payload: bytes) -> None:
        self._snaps[key] = payload
        self._idle.clear()
        self._wake.set()

    def set_snapshots(self, items: list[tuple[bytes, bytes]]) -> None:
        """`set_snapshot` for each (key, payload), in order (one call per batch)."""
        if items:
            self._snaps.update(items)
            self._idle.clear()
            self._wake.set()

    # -- lifecycle (BatchingSink hooks) --------------------------------------------------------
    def _has_work(self) -> bool:
        return bool(self._pubs or self._snaps)

    def _unsent(self) -> int:
        return self.backlog

    async def _shutdown(self) -> None:
        lost = len(self._pubs) + self._inflight_pubs  # in flight: only if the task died
        self._inflight_pubs = self._inflight_snaps = 0
        if lost or self._snaps:
            self.stats.dropped += lost
            log.warning(
                "redis %s: closing with %d publishes and %d snapshots unsent",
                redact_url(self.url),
                lost,
                len(self._snaps),
            )
            self._pubs.clear()
            self._snaps.clear()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- flusher -----------------------------------------------------------------------------
    def _take(self) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
        budget = self.max_commands
        q = self._snaps
        if len(q) <= budget:  # the usual case: everything queued fits in one round
            snaps = list(q.items())
            q.clear()
        else:
            snaps = []
            while len(snaps) < budget:
                key = next(iter(q))
                snaps.append((key, q.pop(key)))
        budget -= len(snaps)
        d = self._pubs
        if len(d) <= budget:
            pubs = list(d)
            d.clear()
        else:
            pubs = [d.popleft() for _ in range(budget)]
        return pubs, snaps

    def _put_back(self, pubs: list[tuple[bytes, bytes]], snaps: list[tuple[bytes, bytes]]) -> None:
        for key, payload in snaps:
            self._snaps.setdefault(key, payload)  # a newer snapshot queued meanwhile wins
        room = self.max_backlog - len(self._pubs)
        if len(pubs) > room:
            self.stats.dropped += len(pubs) - room
            self._log_dropped()
            pubs = pubs[len(pubs) - room :] if room > 0 else []
        self._pubs.extendleft(reversed(pubs))

    def _recovered(self, failed: int) -> None:
        self.stats.reconnects += 1
        log.info("redis %s reconnected", redact_url(self.url))

    async def _send(self) -> bool:
        """One pipelined round; False (what it had taken is queued again) when Redis is
        unreachable."""
        pubs, snaps = self._take()
        self._inflight_pubs, self._inflight_snaps = len(pubs), len(snaps)
        parts = self._packer.pack(snaps, pubs)
        try:
            if self._conn is None:
                self._conn = await _RespConnection.open(self.url, self.socket_timeout)
            errors = await self._conn.roundtrip(parts, len(snaps) + len(pubs))
        except asyncio.CancelledError:  # closing mid-round: what was in flight is lost
            self.stats.dropped += len(pubs)
            self._inflight_pubs = self._inflight_snaps = 0
            raise
        except (OSError, EOFError, TimeoutError, RedisProtocolError) as exc:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._inflight_pubs = self._inflight_snaps = 0
            self._put_back(pubs, snaps)
            self.stats.failures += 1
            self.stats.connected = False
            if not self._failing:
                log.warning(
                    "redis %s unavailable (%s: %s); retrying with backoff",
                    redact_url(self.url),
                    type(exc).__name__,
                    exc,
                )
            return False
        self.stats.connected = True
        self._inflight_pubs = self._inflight_snaps = 0
        bad_snaps = bad_pubs = 0
        if errors:  # e.g. a key of the wrong type, OOM, NOPERM: not retryable, count + log
            bad_snaps = sum(1 for i, _ in errors if i < len(snaps))
            bad_pubs = len(errors) - bad_snaps
            self.stats.rejected += len(errors)
            self.stats.rejected_publishes += bad_pubs
            self._limiter.log(
                "rejected",
                logging.ERROR,
                "redis %s rejected %d of %d commands: %s (%d rejected in all)",
                redact_url(self.url),
                len(errors),
                len(snaps) + len(pubs),
                errors[0][1].decode(errors="replace"),
                self.stats.rejected,
            )
        self.stats.flushes += 1
        self.stats.published += len(pubs) - bad_pubs
        self.stats.snapshots += len(snaps) - bad_snaps
        return True


async def wait_for_redis(url: str, timeout: float = 5.0) -> bool:
    """True once `url` answers PING (used by tests and the CLI's start-up check)."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                if await client.ping():
                    return True
            except (RedisError, OSError):
                await asyncio.sleep(0.05)
        return False
    finally:
        await client.aclose()


class RedisProtocolError(Exception):
    """The server answered something a PUBLISH/SET/AUTH/SELECT reply cannot be."""


class _RespConnection(asyncio.Protocol):
    """One asyncio connection speaking just enough RESP for the sink (see module docstring).

    A bare `asyncio.Protocol`, not a StreamReader/StreamWriter pair: the replies are counted
    (CRLFs) as they arrive in `data_received` and the round's future is resolved there, so a
    round costs one write and one wake-up of the sender. The timeout is one timer handle per
    round rather than `asyncio.wait_for` around each read and drain (on Python 3.11 every
    `wait_for` runs its awaitable in a new Task: two extra tasks and loop iterations per round,
    measured in bench/bench_latency.py). TCP_NODELAY is set explicitly (asyncio and uvloop set
    it on TCP sockets already; a transport that does not would add Nagle's delay to a round
    whose previous reply is still being read).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._lines = 0  # CRLFs in _buf
        self._want = 0  # replies the round in flight waits for
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None  # set while writing is paused
        self._lost: BaseException | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses: no isinstance check)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._lines += data.count(b"\r\n")
        w = self._waiter
        if w is not None and self._lines >= self._want and not w.done():
            w.set_result(None)
        elif w is None and self._buf:  # nothing was asked: the server is not speaking RESP
            self._fail(RedisProtocolError("unexpected reply data"))

    def eof_received(self) -> bool | None:
        self._fail(EOFError("redis closed the connection"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc if exc is not None else EOFError("redis closed the connection"))

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        d, self._drained = self._drained, None
        if d is not None and not d.done():
            d.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self._lost is None:
            self._lost = exc
        _raise_in(exc, self._waiter, self._drained)

    # -- the sink's side ---------------------------------------------------------------------
    @classmethod
    async def open(cls, url: str, timeout: float) -> _RespConnection:
        u = urllib.parse.urlsplit(url)
        conn = cls(timeout)
        transport = await asyncio.wait_for(_connect(url, lambda: conn), timeout)
        if u.scheme == "unix":
            db = urllib.parse.parse_qs(u.query).get("db", ["0"])[0]
        else:
            db = (u.path or "/0").lstrip("/") or "0"
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # uvloop may call connection_made after create_connection has returned
        conn.transport = cast(asyncio.Transport, transport)
        setup: list[bytes] = []
        if u.password:
            setup.append(_auth_command(url))
        if db != "0":
            setup.append(pack_command((b"SELECT", db.encode())))
        if setup:
            errors = await conn.roundtrip(b"".join(setup), len(setup))
            if errors:
                conn.close()
                # never echo the AUTH arguments; the server's message does not contain them
                raise RedisProtocolError(errors[0][1].decode(errors="replace"))
        return conn

    async def roundtrip(self, data: bytes | list[bytes], n: int) -> list[tuple[int, bytes]]:
        """Send `data` (n commands with one-line replies; bytes, or a list of buffers written
        with one ``writelines``); return the error replies as (index of the command,
        message)."""
        if self._lost is not None:
            raise self._lost
        t = self.transport
        assert t is not None and self._waiter is None
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        self._want = n
        timer = loop.call_later(self.timeout, self._timed_out, waiter)
        try:
            if isinstance(data, list):
                t.writelines(data)
            else:
                t.write(data)
            if self._drained is not None:  # the socket buffer is full: wait for room
                await self._drained
            if self._lines < n:
                await waiter
        finally:
            timer.cancel()
            self._waiter = None
        buf = self._buf
        if self._lines != n:
            raise RedisProtocolError("unexpected extra reply data")
        self._buf = bytearray()
        self._lines = 0
        if b"-" not in buf:
            return []
        lines = bytes(buf).split(b"\r\n")[:n]
        return [(i, ln[1:]) for i, ln in enumerate(lines) if ln[:1] not in (b":", b"+")]

    def _timed_out(self, waiter: asyncio.Future[None]) -> None:
        _raise_in(
            TimeoutError(f"no reply from redis within {self.timeout:g}s"), waiter, self._drained
        )

    def close(self) -> None:
        if self._lost is None:
            self._lost = EOFError("connection closed")
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.close()


class _Packer:
    """RESP for SET key payload / PUBLISH channel payload, as a list of buffers for one
    ``writelines``: the command head up to the payload's length is cached per key/channel
    (the same symbols come back every batch) and the length line per length, so a command
    is four references and no formatting: ~0.1 us instead of ~0.2 us for a `%`-formatted
    copy of the payload, and the payloads are not copied again by a join (uvloop writes the
    list with one writev)."""

    MAX_CACHED = 1 << 16  # entries per cache (cleared when full: a bound, not an LRU)

    def __init__(self) -> None:
        self._set: dict[bytes, bytes] = {}
        self._pub: dict[bytes, bytes] = {}
        self._len: dict[int, bytes] = {}

    def _head(self, cache: dict[bytes, bytes], verb: bytes, key: bytes) -> bytes:
        if len(cache) >= self.MAX_CACHED:
            cache.clear()
        h = cache[key] = b"*3\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$" % (len(verb), verb, len(key), key)
        return h

    def _length(self, n: int) -> bytes:
        if len(self._len) >= self.MAX_CACHED:
            self._len.clear()
        b = self._len[n] = b"%d\r\n" % n
        return b

    def pack(
        self, snaps: list[tuple[bytes, bytes]], pubs: list[tuple[bytes, bytes]]
    ) -> list[bytes]:
        parts: list[bytes] = []
        add = parts.extend
        lens = self._len
        for cache, verb, items in ((self._set, b"SET", snaps), (self._pub, b"PUBLISH", pubs)):
            for key, payload in items:
                n = len(payload)
                add(
                    (
                        cache.get(key) or self._head(cache, verb, key),
                        lens.get(n) or self._length(n),
                        payload,
                        b"\r\n",
                    )
                )
        return parts


def _raise_in(exc: BaseException, *futures: asyncio.Future[None] | None) -> None:
    """Fail the futures the round may be awaiting (at most one of them is awaited: the others'
    exception is marked retrieved so that asyncio does not log it as lost)."""
    for f in futures:
        if f is not None and not f.done():
            f.set_exception(exc)
            f.exception()


async def _connect(url: str, factory: Callable[[], asyncio.Protocol]) -> asyncio.BaseTransport:
    """Open a connection to the server of a ``redis://``, ``rediss://`` (TLS) or ``unix://``
    url, with `factory`'s protocol; ValueError for any other scheme."""
    u = urllib.parse.urlsplit(url)
    loop = asyncio.get_running_loop()
    if u.scheme == "unix":
        transport, _ = await loop.create_unix_connection(factory, u.path)
    elif u.scheme in ("redis", "rediss"):
        ctx = ssl.create_default_context() if u.scheme == "rediss" else None
        transport, _ = await loop.create_connection(
            factory, u.hostname or "127.0.0.1", u.port or 6379, ssl=ctx
        )
    else:
        raise ValueError(f"unsupported redis url scheme {u.scheme!r}")
    return transport


def _auth_command(url: str) -> bytes:
    """``AUTH [user] password`` for the credentials in `url`, b"" when it has no password."""
    u = urllib.parse.urlsplit(url)
    if not u.password:
        return b""
    pw = urllib.parse.unquote(u.password).encode()
    user = urllib.parse.unquote(u.username or "").encode()
    return pack_command((b"AUTH", user, pw) if user else (b"AUTH", pw))
