"""The edge fed from a Redis Cluster (``ttfast-edge --redis redis+cluster://h:p,h:p``): the
scale-out compute workers' deltas on their partitions' sharded channels, snapshot/history
reads and symbol discovery through redis-py's `RedisCluster`, resubscription on failover.

Sharded pub/sub has no pattern subscribe, so the compute workers publish every delta a second
time on its partition's channel ``analytics:delta:{p<n>}`` as ``<name> <payload>``
(`ttfast.worker.scaleout.common.partition_channel`). This feed holds P ``SSUBSCRIBE``s, however
many symbols there are, over ONE connection per primary that owns one of those slots. Each
connection is a plain asyncio protocol parsing RESP with hiredis (as `RedisFeed`): every chunk
the socket delivers becomes one `Hub.publish` batch, in order, no coroutine per message. Why not
redis-py's ``ClusterPubSub``: its messages come one coroutine and one dict each, polled node by
node, and it moves shard subscriptions only when a command of the cluster client happens to
refresh the slot map; here a lost connection, a ``sunsubscribe`` pushed by a node (its slot
moved away) or a ``-MOVED`` reply re-reads the slot map at once.

Failover / resharding: the connection to a dead primary ends; `/healthz` says degraded (redis
``"partial"``, or ``"down"`` when no partition is subscribed), the other shards keep flowing,
and the slot map is re-read (``CLUSTER SLOTS`` from any reachable node) with
`ttfast._retry.Backoff` until the partition's slot has a reachable primary (the promoted
replica), which is then subscribed; the symbols seen on those partitions get a fresh snapshot
(deltas were missed meanwhile). The slot map is also re-read every ``topology_interval`` (a
manual failover or a migration that sent no ``sunsubscribe``). A silent connection (no reply
to PING for 3 intervals) counts as lost.

May touch: its Redis Cluster connections and the hub it feeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, cast

import hiredis

from ttfast._core import DELTA_CHANNEL_PREFIX, SNAPSHOT_KEY_PREFIX, pack_command
from ttfast._retry import Backoff
from ttfast.edge.history import HISTORY_KEY_PREFIX
from ttfast.edge.hub import FINAL_TAIL, Hub
from ttfast.edge.redis_feed import FeedBase, SubscriptionProtocol
from ttfast.worker.scaleout.common import (
    CLUSTER_SCHEME,
    connect,
    partition_channel,
    redact,
    split_partition_message,
)

__all__ = ["ClusterFeed"]

log = logging.getLogger("ttfast.edge.redis")


class _ShardSub(SubscriptionProtocol):
    """The connection to one primary: its partition channels, ``smessage`` in, `Hub.publish`
    batches out. `channels` are those the node confirmed (``ssubscribe``) and has not taken
    back (``sunsubscribe``)."""

    def __init__(self, feed: ClusterFeed, node: str, hello: bytes) -> None:
        super().__init__(hello)
        self.feed = feed
        self.node = node  # "host:port"
        self.channels: set[bytes] = set()
        self.leaving: set[bytes] = set()  # SUNSUBSCRIBEs we sent, not yet confirmed
        self.errors: list[str] = []  # error replies since the last `want`
        self.settled = asyncio.Event()  # set at every (un)subscribe reply, error or loss
        # `subscribed` is not awaited here: retrieve its exception so none is reported as lost
        self.subscribed.add_done_callback(lambda f: f.cancelled() or f.exception())

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.settled.set()
        self.feed._changed_soon()

    @property
    def alive(self) -> bool:
        return not self.lost.done() and self.transport is not None

    async def want(self, channels: set[bytes], timeout: float) -> None:
        """Subscribe exactly `channels` on this connection; returns once the node confirmed
        them. Raises ConnectionError on an error reply (``-MOVED``: the slot map is stale) or
        loss, TimeoutError after `timeout`."""
        if not self.alive or self.transport is None:
            raise ConnectionError(f"{self.node}: connection lost")
        self.errors.clear()
        out = [pack_command((b"SSUBSCRIBE", ch)) for ch in sorted(channels - self.channels)]
        for ch in sorted(self.channels - channels):
            self.leaving.add(ch)
            out.append(pack_command((b"SUNSUBSCRIBE", ch)))
        if out:
            self.transport.write(b"".join(out))
        deadline = time.monotonic() + timeout
        while self.channels != channels or self.leaving:
            if self.errors:
                raise ConnectionError(f"{self.node} refused a subscription: {self.errors[0]}")
            if not self.alive:
                raise ConnectionError(f"{self.node}: connection lost")
            self.settled.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.node}: no subscription reply in {timeout}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.settled.wait(), left)

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        reader = self.reader
        feed = self.feed
        names = feed._name_of
        items: list[tuple[str, bytes, bool]] = []
        try:
            reader.feed(data)
            while (msg := reader.gets()) is not False:
                if type(msg) is list and len(msg) == 3 and msg[0] == b"smessage":
                    try:
                        raw, payload = split_partition_message(msg[2])
                    except ValueError:
                        feed._bad_message(msg[1], msg[2])
                        continue
                    name = names.get(raw)
                    if name is None:
                        name = feed._resolve(raw, msg[1])
                    if name and payload:
                        items.append((name, payload, payload.endswith(FINAL_TAIL)))
                    else:
                        feed._bad_message(msg[1], msg[2])
                elif type(msg) is list and len(msg) == 3 and msg[0] == b"ssubscribe":
                    self.channels.add(msg[1])
                    self.settled.set()
                    if not self.subscribed.done():
                        self.subscribed.set_result(None)
                elif type(msg) is list and len(msg) == 3 and msg[0] == b"sunsubscribe":
                    self.channels.discard(msg[1])
                    self.settled.set()
                    if msg[1] in self.leaving:
                        self.leaving.discard(msg[1])
                    else:  # the node gave the slot up (migrated, or it became a replica)
                        feed._changed_soon()
                elif isinstance(msg, hiredis.ReplyError):
                    self.errors.append(str(msg))
                    self.settled.set()
                    feed._changed_soon()
                # +OK (AUTH), ["pong", ""]: nothing to do
        except Exception as exc:
            feed._warn.log("protocol", logging.WARNING, "redis %s subscription: %s", self.node, exc)
            self.abort()
            return
        finally:
            if items:
                feed._publish(items)


class ClusterFeed(FeedBase):
    """Feeds `hub` from the partition channels of a Redis Cluster and answers the app's reads
    through the cluster (module docstring). `url` is ``redis+cluster://[user:pass@]h:p,...``;
    `partitions` must be the compute workers' ``--partitions``."""

    def __init__(
        self,
        url: str,
        hub: Hub,
        *,
        partitions: int = 16,
        delta_prefix: str = DELTA_CHANNEL_PREFIX,
        snapshot_prefix: str = SNAPSHOT_KEY_PREFIX,
        history_prefix: str = HISTORY_KEY_PREFIX,
        max_symbols: int = 100_000,
        ping_interval: float = 5.0,
        scan_interval: float = 30.0,
        topology_interval: float = 5.0,
        connect_timeout: float = 2.0,
        backoff: Backoff | None = None,
    ) -> None:
        if not url.startswith(CLUSTER_SCHEME):
            raise ValueError("a cluster url starts with " + CLUSTER_SCHEME)
        if not 1 <= partitions <= 16384:
            raise ValueError("partitions must be in 1..16384")
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
        self.partitions = partitions
        self.topology_interval = topology_interval
        self.channels = {partition_channel(p) for p in range(partitions)}
        self._r = connect(url)
        kw = self._r.get_connection_kwargs()
        user, password = kw.get("username"), kw.get("password")
        auth = [x.encode() for x in (user, password) if x] if password else []
        self._hello = pack_command((b"AUTH", *auth)) if auth else b""
        self._subs: dict[str, _ShardSub] = {}  # "host:port" of a primary -> its connection
        self._name_of: dict[bytes, str] = {}  # name as sent -> name ("" invalid)
        self._channel_of: dict[str, bytes] = {}  # name -> the partition channel it came on
        self._ever: set[bytes] = set()  # channels subscribed at least once
        self._changed: asyncio.Event | None = None
        self.topology_reads = 0  # slot map reads (CLUSTER SLOTS)

    def __repr__(self) -> str:
        return f"<ClusterFeed {redact(self.url)} {self.state}>"

    # -- state ---------------------------------------------------------------------------------
    def subscribed(self) -> set[bytes]:
        """The partition channels subscribed now (on live connections)."""
        out: set[bytes] = set()
        for s in self._subs.values():
            if s.alive:
                out |= s.channels & self.channels
        return out

    @property
    def state(self) -> str:
        """``"up"`` with every partition subscribed, ``"partial"`` with some, else ``"down"``."""
        if self._up:
            return "up"
        return "partial" if self._readable() else "down"

    def _readable(self) -> bool:
        return any(s.alive and s.channels for s in self._subs.values())

    def _changed_soon(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _resolve(self, raw: bytes, channel: bytes) -> str:
        """The symbol name of a partition message's `raw` name ("" when invalid; cached)."""
        name = self._check_name(raw, raw, "name")
        if len(self._name_of) >= 2 * self.max_symbols:
            self._name_of.clear()
            self._channel_of.clear()
        self._name_of[raw] = name
        if name:
            self._channel_of[name] = channel
        return name

    def _bad_message(self, channel: bytes, msg: bytes) -> None:
        self.stats.bad_messages += 1
        self._warn.log(
            "message", logging.WARNING, "skipping a malformed delta on %r: %r", channel, msg[:80]
        )

    async def _mget(self, keys: list[str]) -> list[Any]:
        return cast(list[Any], await self._r.mget_nonatomic(keys))

    # -- the subscriptions ---------------------------------------------------------------------
    def _set_up(self, up: bool) -> None:
        if up and not self._up:
            self.stats.connects += 1
            log.info(
                "redis cluster %s: subscribed to %d partition channels on %d primaries",
                redact(self.url),
                len(self.channels),
                sum(1 for s in self._subs.values() if s.alive),
            )
        elif not up and self._up:
            self.stats.disconnects += 1
        self._up = up

    async def _run(self) -> None:
        self._changed = asyncio.Event()
        while True:
            try:
                await self._reconcile()
                self.backoff.reset()
                self._warn.reset("down")
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._set_up(False)
                self._warn.log(
                    "down",
                    logging.WARNING,
                    "redis cluster %s: %d of %d partition channels subscribed (%s: %s); "
                    "retrying with backoff",
                    redact(self.url),
                    len(self.subscribed()),
                    len(self.channels),
                    type(exc).__name__,
                    exc,
                )
                await asyncio.sleep(self.backoff.next_delay())

    async def _refresh(self) -> None:
        """The slot map, read again from a reachable node."""
        self.topology_reads += 1
        await self._r.initialize()  # the first time: nodes, slots and the command table
        await self._r.nodes_manager.initialize()

    async def _reconcile(self) -> None:
        """One subscription per partition channel, on the connection to its slot's primary."""
        assert self._changed is not None
        self._changed.clear()
        before = self.subscribed()
        if before != self.channels:
            self._set_up(False)  # at once: a connection to a slow or dead host may hang below
        await asyncio.wait_for(self._refresh(), 2 * self.connect_timeout)
        plan: dict[str, tuple[str, int, set[bytes]]] = {}
        for ch in self.channels:
            node = self._r.get_node_from_key(ch)
            plan.setdefault(node.name, (node.host, node.port, set()))[2].add(ch)
        for name, sub in list(self._subs.items()):
            if not sub.alive or name not in plan:
                sub.abort()
                del self._subs[name]
        got = await asyncio.gather(
            *(self._ensure(name, host, port, chans) for name, (host, port, chans) in plan.items()),
            return_exceptions=True,
        )
        now = self.subscribed()
        back = (now - before) & self._ever
        self._ever |= now
        if back:  # deltas of these partitions were missed: fresh snapshots
            seen = self._channel_of
            self._start_resync({n for n in self.hub.watched() if n not in seen or seen[n] in back})
        errors = [e for e in got if isinstance(e, BaseException)]
        if errors:
            raise errors[0]
        if now != self.channels:  # (a race with a node's reply; the next round settles it)
            raise ConnectionError(f"{len(self.channels - now)} partition channels unsubscribed")
        self._set_up(True)
        self._start_scans()

    async def _ensure(self, name: str, host: str, port: int, channels: set[bytes]) -> None:
        sub = self._subs.get(name)
        if sub is None:
            sub = _ShardSub(self, name, self._hello)
            loop = asyncio.get_running_loop()
            try:
                await asyncio.wait_for(
                    loop.create_connection(lambda: sub, host, port), self.connect_timeout
                )
            except BaseException:
                sub.abort()
                raise
            self._subs[name] = sub
        await sub.want(channels, self.connect_timeout)

    async def _watch(self) -> None:
        """Until a connection is lost, a node gave a channel up or refused one, or it is time
        to re-read the slot map; PINGs every connection every `ping_interval`."""
        assert self._changed is not None
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            topology_at = time.monotonic() + self.topology_interval
            while not self._changed.is_set():
                await asyncio.wait([changed], timeout=self.ping_interval)
                now = time.monotonic()
                for sub in self._subs.values():
                    if not sub.alive or sub.transport is None:
                        return
                    if now - sub.last_rx > 3 * self.ping_interval:
                        sub.abort()
                        raise TimeoutError(f"no reply from {sub.node} for 3 ping intervals")
                    sub.transport.write(pack_command((b"PING",)))
                if now >= topology_at:
                    return
        finally:
            changed.cancel()

    async def _close_subscriptions(self) -> None:
        for sub in self._subs.values():
            sub.abort()
        self._subs.clear()

    def metrics(self) -> list[tuple[str, str, str, float]]:
        return [
            *super().metrics(),
            ("redis_partitions", "gauge", "partition channels", len(self.channels)),
            (
                "redis_partitions_subscribed",
                "gauge",
                "partition channels subscribed now",
                len(self.subscribed()),
            ),
            (
                "redis_shard_connections",
                "gauge",
                "connections to primaries",
                sum(1 for s in self._subs.values() if s.alive),
            ),
            ("redis_topology_reads_total", "counter", "slot map reads", self.topology_reads),
        ]
