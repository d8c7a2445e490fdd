"""The scale-out roles' write path: rounds of commands packed as RESP by hand and sent per
node over plain asyncio connections, with Redis Cluster routing (slot map from ``CLUSTER
SLOTS``, ``MOVED`` / ``ASK`` redirects, a fresh map after a failover or a slot migration).

Why not redis-py's cluster pipeline for these rounds: it costs ~17 µs of CPU per command, the
compute role sends 4-5 commands per stream entry, and that made a compute worker use 8-12x the
single-process worker's CPU per event (bench/bench_scaleout.py, docs/scale-out.md
*Figures*). Packing a command here (`ttfast._core.resp.pack_command`, compiled) costs
0.1-0.6 µs; the replies are parsed by hiredis (redis-py's own C parser). Reads and leases
stay on redis-py (a few per round); the fenced output and commit scripts (``EVALSHA``) are
routed by their first key.

Rounds asked for in the same event-loop turn are sent together (`RespCluster.round`).

`RespCluster.round` has `common.run_round`'s contract: the replies in order, an error reply as
a `redis.exceptions.ResponseError` in place, connection trouble raised (`ConnectionError`,
`TimeoutError`), and `RoundNotDone` when the round must be resent whole. ``durable=n``: a ``WAIT
n timeout`` ends each node's batch on that node's connection, and redirects are not followed
inside the round (see `run_round`). Without it, ``MOVED`` is followed (the map is read again)
and ``ASK`` is answered with ``ASKING`` + the command on the importing node, up to 5 hops.

May touch: the Redis nodes named by the URL and those the cluster points it to.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from typing import Any, cast
from urllib.parse import unquote

import hiredis
import redis.exceptions
from redis.crc import key_slot
from redis.exceptions import ResponseError

from ttfast._core import pack_command
from ttfast.worker.scaleout.common import CLUSTER_SCHEME, RoundNotDone, command_key, load_scripts

__all__ = ["RespCluster", "RespConnectionError", "RespTimeoutError", "pack_command"]


class RespConnectionError(redis.exceptions.ConnectionError, ConnectionError):
    """A connection failed or was lost (both redis-py's and the builtin kind, so either
    ``except`` catches it)."""


class RespTimeoutError(redis.exceptions.TimeoutError, TimeoutError):
    """No reply in time (the connection is dropped: its replies can no longer be matched)."""


_SLOTS = 16384


class _Node(asyncio.Protocol):
    """One connection: requests are written whole, replies are parsed by hiredis as they
    arrive and handed, in order, to the futures of the requests that wait for them."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[tuple[int, list[Any], asyncio.Future[list[Any]]]] = deque()
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.reader.feed(data)
            while True:
                r = self.reader.gets()
                if r is False:
                    return
                if not self.waiting:
                    raise RespConnectionError("redis: a reply nobody asked for")
                n, got, fut = self.waiting[0]
                got.append(r)
                if len(got) == n:
                    self.waiting.popleft()
                    if not fut.done():
                        fut.set_result(got)
        except Exception as exc:  # a protocol error: the connection is unusable
            self._fail(RespConnectionError(f"redis: bad reply stream: {exc!r}"))
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        why = f"redis connection lost: {exc!r}" if exc else "redis closed the connection"
        self._fail(RespConnectionError(why))

    def _fail(self, exc: BaseException) -> None:
        if self.lost is None:
            self.lost = exc
        while self.waiting:
            _n, _got, fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(exc)

    def request(self, data: bytes, n: int) -> asyncio.Future[list[Any]]:
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if self.lost is not None or self.transport is None:
            fut.set_exception(self.lost or RespConnectionError("redis: not connected"))
            return fut
        self.waiting.append((n, [], fut))
        self.transport.write(data)
        return fut

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self._fail(RespConnectionError("redis connection closed"))


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], str | None, str | None]:
    """(startup nodes, username, password) of ``redis+cluster://[user:pw@]h:p,h:p`` or of a
    plain ``redis://[user:pw@]h:p`` URL (one node)."""
    from urllib.parse import urlsplit

    if url.startswith(CLUSTER_SCHEME):
        rest = url[len(CLUSTER_SCHEME) :].split("?", 1)[0].split("/", 1)[0]
        auth, _, hosts = rest.rpartition("@")
        user, _, password = auth.partition(":")
        nodes = []
        for part in hosts.split(","):
            host, _, port = part.strip().rpartition(":")
            nodes.append((host.strip("[]") or "127.0.0.1", int(port)))
        return nodes, unquote(user) or None, unquote(password) or None
    u = urlsplit(url)
    if u.scheme != "redis":
        raise ValueError(f"the fast write path speaks redis:// and redis+cluster:// only: {url!r}")
    if (u.path or "/0").lstrip("/") not in ("", "0"):
        raise ValueError("the fast write path uses database 0 only")
    return (
        [(u.hostname or "127.0.0.1", u.port or 6379)],
        unquote(u.username or "") or None,
        unquote(u.password or "") or None,
    )


COALESCE_MAX = 256  # rounds of more commands are sent alone
COALESCE_BATCH = 2000  # commands per combined round (more start another)


class RespCluster:
    """Rounds of write commands over a Redis Cluster (or one server); see the module."""

    def __init__(self, url: str, timeout: float = 5.0, *, coalesce: bool = True) -> None:
        self.cluster = url.startswith(CLUSTER_SCHEME)
        self.startup, self.username, self.password = parse_cluster_url(url)
        self.timeout = timeout
        self._slots: list[tuple[str, int]] | None = None if self.cluster else [self.startup[0]]
        self._nodes: dict[tuple[str, int], _Node] = {}
        self._opening: dict[tuple[str, int], asyncio.Task[_Node]] = {}
        self.refreshes = 0
        self.redirects = 0
        self._slot_of: dict[Any, int] = {}  # key -> its slot (crc16 once per key)
        self._readers: dict[str, tuple[tuple[str, int], _Node]] = {}  # stream -> its reader
        self.coalesce = coalesce
        self._batches: dict[tuple[int, int], list[Any]] = {}  # (durable, timeout) -> [n, rounds]
        self._flushing: set[asyncio.Task[None]] = set()
        self.rounds = 0  # rounds sent (coalesced)
        self.coalesced = 0  # callers' rounds in them

    # -- connections ---------------------------------------------------------------------------
    async def _open(self, addr: tuple[str, int]) -> _Node:
        loop = asyncio.get_running_loop()
        node = _Node()
        transport, _ = await asyncio.wait_for(
            loop.create_connection(lambda: node, addr[0], addr[1]), self.timeout
        )
        node.transport = transport  # (uvloop may call connection_made after the return)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.password:
            auth = (
                ("AUTH", self.username, self.password)
                if self.username
                else (
                    "AUTH",
                    self.password,
                )
            )
            (r,) = await asyncio.wait_for(node.request(pack_command(auth), 1), self.timeout)
            if isinstance(r, ResponseError):
                node.close()
                # (the server's message, never the password)
                raise RespConnectionError(f"redis AUTH refused: {str(r)[:80]}")
        return node

    async def _node(self, addr: tuple[str, int]) -> _Node:
        node = self._nodes.get(addr)
        if node is not None and node.lost is None:
            return node
        task = self._opening.get(addr)
        if task is None:
            task = self._opening[addr] = asyncio.ensure_future(self._open(addr))
        try:
            node = await asyncio.shield(task)
        finally:
            if task.done():
                self._opening.pop(addr, None)
        self._nodes[addr] = node
        return node

    def _drop(self, addr: tuple[str, int]) -> None:
        node = self._nodes.pop(addr, None)
        if node is not None:
            node.close()

    async def refresh(self) -> None:
        """Read the slot map (``CLUSTER SLOTS``) from the first node that answers: the ones
        in use, then the startup nodes."""
        if not self.cluster:
            return
        known = list(dict.fromkeys([*(self._slots or []), *self.startup]))
        last: BaseException | None = None
        for addr in known:
            try:
                node = await self._node(addr)
                (r,) = await asyncio.wait_for(
                    node.request(pack_command(("CLUSTER", "SLOTS")), 1), self.timeout
                )
            except (OSError, ConnectionError, TimeoutError) as exc:
                last = exc
                self._drop(addr)
                continue
            if isinstance(r, ResponseError) or not r:
                last = RespConnectionError(f"CLUSTER SLOTS from {addr}: {r!r}")
                continue
            table: list[tuple[str, int] | None] = [None] * _SLOTS
            for start, end, primary, *_replicas in r:
                host = primary[0].decode() if isinstance(primary[0], bytes) else primary[0]
                target = (host or addr[0], int(primary[1]))
                for s in range(int(start), int(end) + 1):
                    table[s] = target
            if any(t is None for t in table):
                last = RespConnectionError(f"the cluster does not cover every slot ({addr})")
                continue
            self._slots = cast(list[tuple[str, int]], table)
            self.refreshes += 1
            for a in [a for a in self._nodes if a not in set(self._slots)]:
                self._drop(a)  # (a node no longer primary of any slot)
            return
        raise RespConnectionError(f"no cluster node gave a slot map: {last!r}")

    async def script_load(self, body: str) -> None:
        """``SCRIPT LOAD body`` on every primary (a NOSCRIPT reply, see `common.load_scripts`)."""
        if self._slots is None:
            await self.refresh()
        assert self._slots is not None
        for addr in dict.fromkeys(self._slots):
            node = await self._node(addr)
            (r,) = await asyncio.wait_for(
                node.request(pack_command(("SCRIPT", "LOAD", body)), 1), self.timeout
            )
            if isinstance(r, ResponseError):
                raise r

    # -- blocking reads -------------------------------------------------------------------------
    async def xreadgroup(
        self, key: str, group: str, consumer: str, count: int, block_ms: int
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """``XREADGROUP GROUP g c COUNT n BLOCK ms STREAMS key >`` on a connection of its own
        (a blocked read holds its connection); the new entries as (id, fields). A ``MOVED``
        reads the slot map again and asks the new owner; connection trouble raises."""
        cmd = pack_command(
            ("XREADGROUP", "GROUP", group, consumer, "COUNT", count, "BLOCK", block_ms,
             "STREAMS", key, ">")
        )  # fmt: skip
        for _hop in range(3):
            if self._slots is None:
                await self.refresh()
            assert self._slots is not None
            addr = self._slots[key_slot(key.encode())] if self.cluster else self._slots[0]
            reader = self._readers.get(key)
            if reader is None or reader[0] != addr or reader[1].lost is not None:
                if reader is not None:
                    reader[1].close()
                reader = (addr, await self._open(addr))
                self._readers[key] = reader
            try:
                (r,) = await asyncio.wait_for(
                    reader[1].request(cmd, 1), block_ms / 1000 + self.timeout
                )
            except (OSError, ConnectionError, TimeoutError):
                self.close_reader(key)
                if self.cluster:
                    self._slots = None
                raise
            if isinstance(r, ResponseError):
                if str(r).startswith(("MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN")):
                    self.redirects += 1
                    self._slots = None
                    self.close_reader(key)
                    await asyncio.sleep(0.05)
                    continue
                raise r
            if not r:
                return []
            (_key, entries), *_ = r
            return [(eid, dict(zip(f[::2], f[1::2], strict=True))) for eid, f in entries]
        raise RespConnectionError(f"XREADGROUP {key}: redirected 3 times")

    def close_reader(self, key: str) -> None:
        reader = self._readers.pop(key, None)
        if reader is not None:
            reader[1].close()

    async def aclose(self) -> None:
        for k in list(self._readers):
            self.close_reader(k)
        for a in list(self._nodes):
            self._drop(a)
        for t in self._opening.values():
            t.cancel()
        self._opening.clear()
        await asyncio.sleep(0)  # the transports close their sockets on the next loop turn

    # -- rounds --------------------------------------------------------------------------------
    async def round(
        self, cmds: list[tuple[Any, ...]], *, durable: int = 0, timeout_ms: int = 1000
    ) -> list[Any]:
        """`cmds` in one round (the contract of `common.run_round`). Small rounds (up to
        `COALESCE_MAX` commands) asked for in the same event-loop turn (the partitions of a
        compute worker whose reads returned together) go out as one, of up to
        `COALESCE_BATCH` commands: one write and one reply batch per node, one ``WAIT`` per
        node covering them all; each caller gets its own replies, or the round's exception."""
        if not self.coalesce or len(cmds) > COALESCE_MAX:  # (a big round gains nothing)
            return await self._round(cmds, durable, timeout_ms)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Any]] = loop.create_future()
        key = (durable, timeout_ms)
        batch = self._batches.get(key)
        if batch is None or batch[0] + len(cmds) > COALESCE_BATCH:
            batch = self._batches[key] = [0, []]
            task = loop.create_task(self._flush(key, batch))  # after this turn's other callers
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        batch[0] += len(cmds)
        batch[1].append((cmds, fut))
        return await fut

    async def _flush(self, key: tuple[int, int], batch: list[Any]) -> None:
        if self._batches.get(key) is batch:
            del self._batches[key]
        parts: list[tuple[list[tuple[Any, ...]], asyncio.Future[list[Any]]]] = batch[1]
        self.rounds += 1
        self.coalesced += len(parts)
        cmds = parts[0][0] if len(parts) == 1 else [c for part, _f in parts for c in part]
        try:
            res = await self._round(cmds, *key)
        except asyncio.CancelledError:
            for _c, f in parts:
                f.cancel()
            raise
        except BaseException as exc:
            for _c, f in parts:
                if not f.done():
                    f.set_exception(exc)
            return
        i = 0
        for part, f in parts:
            if not f.done():
                f.set_result(res[i : i + len(part)])
            i += len(part)

    async def _round(self, cmds: list[tuple[Any, ...]], durable: int, timeout_ms: int) -> list[Any]:
        if self._slots is None:
            await self.refresh()
        slots = self._slots
        assert slots is not None
        packed = [pack_command(c) for c in cmds]
        groups: dict[tuple[str, int], list[int]] = {}
        if self.cluster:
            cache = self._slot_of
            for i, c in enumerate(cmds):
                k = command_key(c)
                slot = cache.get(k)
                if slot is None:
                    slot = cache[k] = key_slot(k if isinstance(k, bytes) else str(k).encode())
                    if len(cache) > 200_000:  # (keys are symbols' names: bounded in practice)
                        cache.clear()
                groups.setdefault(slots[slot], []).append(i)
        else:
            groups[slots[0]] = list(range(len(cmds)))
        wait = pack_command(("WAIT", durable, timeout_ms)) if durable > 0 else b""
        futs: dict[tuple[str, int], asyncio.Future[list[Any]]] = {}
        try:
            for addr, idx in groups.items():
                node = await self._node(addr)
                futs[addr] = node.request(
                    b"".join([packed[i] for i in idx]) + wait, len(idx) + (1 if wait else 0)
                )
            budget = self.timeout + (timeout_ms / 1000 if durable > 0 else 0)
            _done, pending = await asyncio.wait(futs.values(), timeout=budget)
        except (OSError, ConnectionError, TimeoutError):
            self._slots = self._slots if not self.cluster else None  # read the map again
            for addr in groups:
                if addr not in futs or (futs[addr].done() and futs[addr].exception()):
                    self._drop(addr)
            raise
        if pending:
            for addr, f in futs.items():
                if f in pending:
                    self._drop(addr)  # its replies can no longer be matched
            if self.cluster:
                self._slots = None
            raise RespTimeoutError(f"redis: no reply within {budget:.1f}s")
        res: list[Any] = [None] * len(cmds)
        short: list[Any] = []
        for addr, idx in groups.items():
            f = futs[addr]
            exc = f.exception()
            if exc is not None:
                self._drop(addr)
                if self.cluster:
                    self._slots = None
                raise exc
            got = f.result()
            for i, r in zip(idx, got, strict=False):
                res[i] = r
            if wait:
                ack = got[-1]
                if isinstance(ack, ResponseError) or int(ack) < durable:
                    short.append(ack)
        await self._redirects(cmds, packed, res, durable > 0)
        await load_scripts(self, res)
        if short:
            raise RoundNotDone(f"WAIT {durable}: a node replied {short[0]!r}")
        return res

    async def _redirects(
        self, cmds: list[tuple[Any, ...]], packed: list[bytes], res: list[Any], durable: bool
    ) -> None:
        """Follow MOVED/ASK in `res` (in place), or raise RoundNotDone (see the module)."""
        for _hop in range(5):
            todo = [
                i
                for i, r in enumerate(res)
                if isinstance(r, ResponseError)
                and str(r).startswith(("MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN"))
            ]
            if not todo:
                return
            self.redirects += len(todo)
            if any(str(res[i]).startswith("MOVED ") for i in todo):
                self._slots = None  # read the map again before the next round
            if durable or any(str(res[i]).startswith(("TRYAGAIN", "CLUSTERDOWN")) for i in todo):
                raise RoundNotDone(f"{len(todo)} commands redirected or refused: {res[todo[0]]!r}")
            futs: list[tuple[int, asyncio.Future[list[Any]]]] = []
            for i in todo:
                kind, _slot, where = str(res[i]).split(" ", 2)
                host, _, port = where.rpartition(":")
                node = await self._node((host, int(port)))
                if kind == "ASK":
                    futs.append((i, node.request(pack_command(("ASKING",)) + packed[i], 2)))
                else:
                    futs.append((i, node.request(packed[i], 1)))
            for i, f in futs:
                got = await asyncio.wait_for(f, self.timeout)
                res[i] = got[-1]
        raise RoundNotDone("redirected more than 5 times")
