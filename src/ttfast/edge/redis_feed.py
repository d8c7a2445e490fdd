"""The edge fed from Redis (``ttfast-edge``): ONE ``PSUBSCRIBE analytics:delta:*`` for the whole
process, snapshot/history/symbol reads, reconnects.

The subscription is a plain asyncio protocol parsing RESP with hiredis (redis-py's C parser):
every chunk the socket delivers becomes one `Hub.publish` batch, in order, with no coroutine
per message. Reads (``GET``/``MGET snapshot:<name>``, ``ZRANGE history:<name>``, ``SCAN``) go
through one redis-py client without retries of its own.

Redis down or restarted: clients stay connected; snapshots are served from the last ones read
(the cache), ``/history`` answers 503, `state` is ``"down"`` (``/healthz`` says degraded) and
the subscription is re-established with `ttfast._retry.Backoff` (50 ms doubling to 2 s). Once
it is back, every watched symbol's snapshot is read again and pushed to its subscribers (a
``"snapshot"`` message), so a client that missed deltas meanwhile is current again. A silent
connection (no reply to PING for 3 intervals) counts as lost.

`FeedBase` holds what this feed shares with `ttfast.edge.cluster_feed.ClusterFeed` (the same
Source over a Redis Cluster): the snapshot cache, symbol discovery, reads, resync, metrics
and the hand-off of parsed deltas to the hub.

May touch: its Redis connections and the hub it feeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.parse
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ttfast._core import DELTA_CHANNEL_PREFIX, SNAPSHOT_KEY_PREFIX, pack_command
from ttfast._retry import Backoff
from ttfast._util import redact_url
from ttfast.edge.history import HISTORY_KEY_PREFIX, snapshot_meta
from ttfast.edge.hub import FINAL_TAIL, Hub
from ttfast.sinks import LogLimiter
from ttfast.sinks.redis import _auth_command, _connect
from ttfast.symbols import validate_symbol

__all__ = ["FeedBase", "FeedUnavailable", "RedisFeed", "RedisFeedStats"]

log = logging.getLogger("ttfast.edge.redis")


class FeedUnavailable(Exception):
    """Redis cannot answer now (the app answers 503)."""


@dataclass
class RedisFeedStats:
    deltas: int = 0  # pmessages received
    bad_channels: int = 0  # distinct channels/names that are no valid symbol name
    bad_messages: int = 0  # delta messages skipped for a bad channel, name or framing
    connects: int = 0  # successful subscriptions (the first one included)
    disconnects: int = 0  # subscriptions lost
    read_errors: int = 0  # snapshot/history/scan reads that failed
    publish_errors: int = 0  # batches the hub failed on (a bug guard; logged)
    cache_hits_down: int = 0  # snapshots answered from the cache (Redis down or failing)


class SubscriptionProtocol(asyncio.Protocol):
    """A subscription connection: sends `hello` once connected, parses RESP with hiredis;
    `subscribed` resolves at the first subscription reply, `lost` when the connection ends.
    Subclasses implement ``data_received``."""

    def __init__(self, hello: bytes) -> None:
        self.hello = hello
        self.reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.subscribed: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.last_rx = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass of it
        self.transport.write(self.hello)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(exc or EOFError("redis closed the connection"))
        if not self.lost.done():
            self.lost.set_result(None)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class _PubSub(SubscriptionProtocol):
    """The ``PSUBSCRIBE`` connection: RESP in, `Hub.publish` batches out."""

    def __init__(self, feed: RedisFeed, hello: bytes) -> None:
        super().__init__(hello)
        self.feed = feed

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        reader = self.reader
        feed = self.feed
        names = feed._channel_names
        items: list[tuple[str, bytes, bool]] = []
        try:
            reader.feed(data)
            while (msg := reader.gets()) is not False:
                if type(msg) is list and len(msg) == 4 and msg[0] == b"pmessage":
                    ch, payload = msg[2], msg[3]
                    name = names.get(ch)
                    if name is None:
                        name = feed._resolve(ch)
                    if name:
                        items.append((name, payload, payload.endswith(FINAL_TAIL)))
                    else:
                        feed.stats.bad_messages += 1
                elif type(msg) is list and msg and msg[0] == b"psubscribe":
                    if not self.subscribed.done():
                        self.subscribed.set_result(None)
                elif isinstance(msg, hiredis.ReplyError):
                    raise ConnectionError(f"redis refused the subscription: {msg}")
                # +OK (AUTH), ["pong", ""]: nothing to do
        except Exception as exc:
            if not self.subscribed.done():
                self.subscribed.set_exception(exc)
            else:
                feed._warn.log("protocol", logging.WARNING, "redis subscription: %s", exc)
            if self.transport is not None:
                self.transport.abort()
            return
        finally:
            if items:
                feed._publish(items)


class FeedBase(ABC):
    """What `RedisFeed` and `ttfast.edge.cluster_feed.ClusterFeed` share: symbol names, the
    snapshot cache, reads through the redis-py client `_r`, resync after an outage, symbol
    discovery (``SCAN``), metrics, and the hand-off of parsed deltas to the hub. Subclasses set
    `_r`, run the subscription in `_run` and say whether reads may be tried (`_readable`)."""

    kind = "redis"
    _r: Any  # redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster (reads only)

    def __init__(
        self,
        url: str,
        hub: Hub,
        *,
        delta_prefix: str,
        snapshot_prefix: str,
        history_prefix: str,
        max_symbols: int,
        ping_interval: float,
        scan_interval: float,
        connect_timeout: float,
        backoff: Backoff | None,
    ) -> None:
        self.url = url
        self.hub = hub
        self.delta_prefix = delta_prefix.encode()
        self.snapshot_prefix = snapshot_prefix
        self.history_prefix = history_prefix
        self.max_symbols = max_symbols
        self.ping_interval = ping_interval
        self.scan_interval = scan_interval
        self.connect_timeout = connect_timeout
        self.backoff = backoff or Backoff(0.05, 2.0)
        self.stats = RedisFeedStats()
        self._warn = LogLimiter(log)
        self._up = False
        self._names: set[str] = set()  # known symbol names (scan + deltas + reads)
        self._cache = hub.snapshots  # the last snapshot read per name
        self._task: asyncio.Task[None] | None = None
        self._scan_task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """``"up"`` while the subscription is established, else ``"down"``."""
        return "up" if self._up else "down"

    def redis_state(self) -> str | None:
        return self.state

    def symbols(self) -> list[str]:
        return sorted(self._names)

    def _readable(self) -> bool:
        """Whether reads are worth trying now (else the cache answers at once)."""
        return self._up

    def _check_name(self, raw: bytes, where: bytes, what: str = "channel") -> str:
        """`raw` (the name in `where`) as a symbol name, or "" (counted in ``bad_channels`` and
        logged, rate-limited) when it is none; a valid name is remembered."""
        name = ""
        try:
            cand = raw.decode("ascii")
        except UnicodeDecodeError:
            cand = ""
        if cand and validate_symbol(cand) is None:
            name = cand
            self._remember(name)
        else:
            self.stats.bad_channels += 1
            self._warn.log("channel", logging.WARNING, "skipping deltas on %s %r", what, where)
        return name

    def _remember(self, name: str) -> None:
        if len(self._names) < self.max_symbols:
            self._names.add(name)

    def _publish(self, items: list[tuple[str, bytes, bool]]) -> None:
        """One batch of (name, payload, final) to the hub, in order."""
        self.stats.deltas += len(items)
        try:
            self.hub.publish(items)
        except Exception as exc:  # a bug guard: the subscription must survive
            self.stats.publish_errors += 1
            self._warn.log("publish", logging.ERROR, "edge: fan-out failed: %r", exc)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ttfast-edge-redis")

    @abstractmethod
    async def _run(self) -> None:
        """Hold the subscription(s) until cancelled: connect, subscribe, feed the hub, and
        reconnect with `backoff` (RedisFeed: one PSUBSCRIBE; ClusterFeed: one SSUBSCRIBE
        connection per shard)."""

    async def _close_subscriptions(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Subclasses drop what the cancelled `_run` left open."""

    async def close(self) -> None:
        for t in (self._task, self._scan_task, self._resync_task):
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        self._task = self._scan_task = self._resync_task = None
        self._up = False
        await self._close_subscriptions()
        await self._r.aclose()

    async def wait_up(self, timeout: float) -> bool:
        """True once subscribed (tests, CLI start-up)."""
        deadline = time.monotonic() + timeout
        while not self._up:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def _start_scans(self) -> None:
        if self._scan_task is None or self._scan_task.done():
            self._scan_task = asyncio.create_task(self._scan_loop(), name="ttfast-edge-scan")

    def _start_resync(self, names: set[str] | None = None) -> None:
        """Push fresh snapshots of the watched symbols (of `names` only, when given) to their
        subscribers, in the background."""
        self._resync_task = asyncio.create_task(self._resync(names), name="ttfast-edge-resync")

    async def _resync(self, only: set[str] | None = None) -> None:
        """After an outage: fresh snapshots for every watched symbol, pushed to subscribers."""
        for attempt in range(3):
            names = self.hub.watched()
            if only is not None:
                names = [n for n in names if n in only]
            if not names:
                return
            try:
                snaps = await self._read(names)
            except (RedisError, OSError) as exc:
                self.stats.read_errors += 1
                self._warn.log("resync", logging.WARNING, "redis resync read failed: %s", exc)
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            for name, snap in snaps.items():
                if snap is not None:
                    self.hub.broadcast_snapshot(name, snap)
            return

    async def _scan_loop(self) -> None:
        while self._readable():
            await self._scan()
            await asyncio.sleep(self.scan_interval)

    async def _scan(self) -> None:
        pre = self.snapshot_prefix
        try:
            async for key in self._r.scan_iter(match=pre + "*", count=1000):
                if len(self._names) >= self.max_symbols:
                    break
                try:
                    name = key[len(pre) :].decode("ascii")
                except UnicodeDecodeError:
                    continue
                if validate_symbol(name) is None:
                    self._names.add(name)
        except (RedisError, OSError) as exc:
            self.stats.read_errors += 1
            self._warn.log("scan", logging.WARNING, "redis scan failed: %s", exc)

    # -- reads ---------------------------------------------------------------------------------
    async def snapshots(self, names: list[str]) -> dict[str, bytes | None]:
        """The snapshot of each name: read from Redis (and cached), or from the cache while
        Redis is down."""
        if self._readable():
            try:
                return await self._read(names)
            except (RedisError, OSError) as exc:
                self.stats.read_errors += 1
                self._warn.log("read", logging.WARNING, "redis snapshot read failed: %s", exc)
        self.stats.cache_hits_down += len(names)
        return {n: self._cache.get(n) for n in names}

    async def _mget(self, keys: list[str]) -> list[Any]:
        return cast(list[Any], await self._r.mget(keys))

    async def _read(self, names: list[str]) -> dict[str, bytes | None]:
        vals = await self._mget([self.snapshot_prefix + n for n in names])
        out: dict[str, bytes | None] = {}
        for n, v in zip(names, vals, strict=True):
            if isinstance(v, bytes):
                if n in self._cache or len(self._cache) < self.max_symbols:
                    self._cache[n] = v
                self._remember(n)
                out[n] = v
            else:
                out[n] = None
        return out

    async def history(self, name: str, bars: int) -> tuple[str, str | None, list[bytes]] | None:
        """(symbol, period, newest `bars` closed bars oldest first) or None if unknown.
        Raises FeedUnavailable while Redis is down."""
        if not self._readable():
            raise FeedUnavailable("redis is down")
        try:
            async with self._r.pipeline(transaction=False) as p:
                p.get(self.snapshot_prefix + name)
                p.zrange(self.history_prefix + name, -bars, -1)
                snap, members = await p.execute()
        except (RedisError, OSError) as exc:
            self.stats.read_errors += 1
            self._warn.log("read", logging.WARNING, "redis history read failed: %s", exc)
            raise FeedUnavailable(str(exc)) from None
        if snap is None and not members:
            return None
        symbol, period = snapshot_meta(snap if isinstance(snap, bytes) else None, name)
        return symbol, period, list(members)

    def metrics(self) -> list[tuple[str, str, str, float]]:
        s = self.stats
        return [
            ("redis_up", "gauge", "1 while the Redis subscription is established", self._up),
            ("redis_connects_total", "counter", "Redis subscriptions established", s.connects),
            ("redis_disconnects_total", "counter", "Redis subscriptions lost", s.disconnects),
            ("redis_deltas_total", "counter", "delta messages received from Redis", s.deltas),
            ("redis_bad_channels_total", "counter", "deltas on invalid channels", s.bad_channels),
            ("redis_bad_messages_total", "counter", "delta messages skipped", s.bad_messages),
            ("redis_read_errors_total", "counter", "failed Redis reads", s.read_errors),
        ]


class RedisFeed(FeedBase):
    """Feeds `hub` from Redis and answers the app's reads (module docstring)."""

    def __init__(
        self,
        url: str,
        hub: Hub,
        *,
        delta_prefix: str = DELTA_CHANNEL_PREFIX,
        snapshot_prefix: str = SNAPSHOT_KEY_PREFIX,
        history_prefix: str = HISTORY_KEY_PREFIX,
        max_symbols: int = 100_000,
        ping_interval: float = 5.0,
        scan_interval: float = 30.0,
        connect_timeout: float = 2.0,
        backoff: Backoff | None = None,
    ) -> None:
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"unsupported redis url scheme {u.scheme!r}")
        super().__init__(
            url,
            hub,
            delta_prefix=delta_prefix,
            snapshot_prefix=snapshot_prefix,
            history_prefix=history_prefix,
            max_symbols=max_symbols,
            ping_interval=ping_interval,
            scan_interval=scan_interval,
            connect_timeout=connect_timeout,
            backoff=backoff,
        )
        self._channel_names: dict[bytes, str] = {}  # channel -> name ("" invalid)
        self._r = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 1),  # once: a pooled connection may predate a restart
        )

    def __repr__(self) -> str:
        return f"<RedisFeed {redact_url(self.url)} {self.state}>"

    def _resolve(self, channel: bytes) -> str:
        """The symbol name of a delta channel ("" when invalid; cached either way)."""
        pre = self.delta_prefix
        name = self._check_name(channel[len(pre) :] if channel.startswith(pre) else b"", channel)
        if len(self._channel_names) >= 2 * self.max_symbols:
            self._channel_names.clear()
        self._channel_names[channel] = name
        return name

    # -- the subscription ----------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._warn.log(
                    "down",
                    logging.WARNING,
                    "redis %s unavailable (%s: %s); reconnecting with backoff",
                    redact_url(self.url),
                    type(exc).__name__,
                    exc,
                )
            if self._up:
                self._up = False
                self.stats.disconnects += 1
            await asyncio.sleep(self.backoff.next_delay())

    def _hello(self) -> bytes:
        return _auth_command(self.url) + pack_command((b"PSUBSCRIBE", self.delta_prefix + b"*"))

    async def _session(self) -> None:
        """One subscription, from connect to loss."""
        proto = _PubSub(self, self._hello())
        try:
            await asyncio.wait_for(_connect(self.url, lambda: proto), self.connect_timeout)
            await asyncio.wait_for(asyncio.shield(proto.subscribed), self.connect_timeout)
        except BaseException:
            proto.abort()
            raise
        self._up = True
        self.stats.connects += 1
        self.backoff.reset()
        self._warn.reset("down")
        log.info("redis %s: subscribed to %s*", redact_url(self.url), self.delta_prefix.decode())
        self._start_scans()
        if self.stats.connects > 1:  # back after an outage
            self._start_resync()
        try:
            while not proto.lost.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(proto.lost), self.ping_interval)
                if proto.lost.done() or proto.transport is None:
                    break
                if time.monotonic() - proto.last_rx > 3 * self.ping_interval:
                    raise TimeoutError("no reply from redis for 3 ping intervals")
                proto.transport.write(pack_command((b"PING",)))
        finally:
            proto.abort()
        raise ConnectionError("subscription connection lost")
