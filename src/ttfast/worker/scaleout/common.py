"""What the scale-out roles share: key names, partitioning, the Redis (Cluster) client, the
stream entry codec and the lease scripts (see the package docstring and docs/scale-out.md)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from ttfast._retry import Backoff
from ttfast._util import redact_url

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

__all__ = [
    "GROUP",
    "MEMBERS_KEY",
    "command_key",
    "connect",
    "decode_entry",
    "deployment_partitions",
    "encode_entry",
    "entry_meta",
    "fence_key",
    "fenced",
    "lease_key",
    "partition_channel",
    "partition_fence_key",
    "partition_of",
    "redact",
    "run_round",
    "split_partition_message",
    "stream_key",
    "unless_stopped",
]

log = logging.getLogger("ttfast.worker.scaleout")

GROUP = "compute"
MEMBERS_KEY = "{ttfast}:members"  # sorted set: compute worker id -> heartbeat expiry (ms)
PARTITIONS_KEY = "{ttfast}:partitions"  # the deployment's P, set by its first process
INGEST_LEASE_KEY = "{ttfast}:ingest"  # the leading ingest's id, with a TTL (--lease-ms)
INGEST_EPOCH_KEY = "{ttfast}:ingest:epoch"  # INCR on every new leader: its fencing token

# KEYS = (lease, epoch), ARGV = (owner, ttl ms): take a free lease and a new epoch at once
ACQUIRE_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
"""

# KEYS[1] = lease, ARGV = (owner, ttl ms): extend the lease only if we still own it
RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS[1] = lease, ARGV[1] = owner: give the lease up only if we still own it
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS = (lease, fence), ARGV = (owner, ttl ms): take a free partition lease and a new fencing
# token at once. The token is max(the last one + 1, the node's clock in ms): a failover that
# lost the last token (not yet replicated) still gives the next owner a larger one, unless the
# two nodes' clocks differ by more than the time between the two leases.
ACQUIRE_FENCED_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local now = redis.call('TIME')
  local t = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local f = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
  if t > f then f = t end
  redis.call('SET', KEYS[2], string.format('%d', f))
  return f
end
return 0
"""

# KEYS[1] = a fence, KEYS[2] = the key the commands write (KEYS[1]'s slot), ARGV[1] = the
# writer's fencing token, then the commands as (argc, arg...)*: run them unless a newer token
# has written here (-1, nothing written); the fence keeps the newest token that wrote.
FENCE_SCRIPT = """
local t = tonumber(ARGV[1])
local f = tonumber(redis.call('GET', KEYS[1]) or '0')
if t < f then return -1 end
if t > f then redis.call('SET', KEYS[1], ARGV[1]) end
local i, n = 2, #ARGV
while i <= n do
  local argc = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + argc))
  i = i + argc + 1
end
return 1
"""
FENCE_SHA = hashlib.sha1(FENCE_SCRIPT.encode()).hexdigest()
SCRIPTS = {FENCE_SHA: FENCE_SCRIPT}  # sha -> body: what a NOSCRIPT reply loads (`run_round`)


def partition_fence_key(p: int) -> str:
    """Partition `p`'s fencing token: a larger one on every new lease of it
    (`ACQUIRE_FENCED_SCRIPT`)."""
    return f"{{p{p}}}:fence"


_SLOT_TAGS: dict[int, bytes] = {}
_next_tag = 0


def _slot_tag(slot: int) -> bytes:
    """A short hash tag of `slot` (found by counting; all 16384 within ~200k tries)."""
    global _next_tag
    from redis.crc import key_slot

    while slot not in _SLOT_TAGS:
        tag = b"f%d" % _next_tag
        _next_tag += 1
        _SLOT_TAGS.setdefault(key_slot(tag), tag)
    return _SLOT_TAGS[slot]


def fence_key(key: str | bytes) -> bytes:
    """The fence of an output key (``snapshot:<name>``, ``history:<name>``): a key of its own
    on `key`'s slot (a script may only touch one slot), so that a deposed compute worker's late
    round cannot overwrite what the partition's new owner wrote. Its hash tag is what Redis
    hashes of `key` (the ``{...}`` part, or the whole key), or a tag of the same slot when that
    holds a ``}``."""
    k = key.encode() if isinstance(key, str) else key
    s = k.find(b"{")
    if s >= 0:
        e = k.find(b"}", s + 1)
        if e > s + 1:
            return b"{" + k[s + 1 : e] + b"}:fence:" + k
    if k and b"}" not in k:
        return b"{" + k + b"}:fence:" + k
    from redis.crc import key_slot

    return b"{" + _slot_tag(key_slot(k)) + b"}:fence:" + k


def fenced(
    fence: str | bytes, key: str | bytes, token: int, cmds: list[tuple[Any, ...]]
) -> tuple[Any, ...]:
    """One command running `cmds` (all on `key`'s slot) if no newer token than `token` wrote
    behind `fence`: replies 1, or -1 when fenced off (nothing written)."""
    args: list[Any] = ["EVALSHA", FENCE_SHA, 2, fence, key, token]
    for c in cmds:
        args.append(len(c))
        args.extend(c)
    return tuple(args)


def command_key(cmd: tuple[Any, ...]) -> Any:
    """The key a command is routed by: its first key (``EVALSHA sha numkeys key ...``)."""
    return cmd[3] if cmd[0] in ("EVALSHA", "EVAL") else cmd[1]


async def deployment_partitions(client: Any, partitions: int, *, claim: bool = True) -> int:
    """The deployment's partition count (``{ttfast}:partitions``), set to `partitions` by the
    first process that asks (`claim`); a process given another ``--partitions`` must not run
    (its symbols would land in other streams than the others read). Retries while Redis does
    not answer; raises only CancelledError."""
    backoff = Backoff(0.05, 2.0, jitter="none")
    while True:
        try:
            if claim:
                await client.set(PARTITIONS_KEY, partitions, nx=True)
            v = await client.get(PARTITIONS_KEY)
            return partitions if v is None else int(v)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("scale-out: reading %s failed (%r); retrying", PARTITIONS_KEY, exc)
            await asyncio.sleep(backoff.next_delay())


async def unless_stopped(coro: Any, stop: asyncio.Event) -> Any:
    """`coro`'s result, or None once `stop` is set first."""
    task = asyncio.ensure_future(coro)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


def partition_of(candle_symbol: str, partitions: int) -> int:
    """The partition of a candle symbol (``SPY{=5m}``): crc32 mod P, stable across processes
    and Python versions (not ``hash()``)."""
    return zlib.crc32(candle_symbol.encode()) % partitions


def stream_key(p: int) -> str:
    """The partition's stream; the hash tag ``{p<n>}`` keeps all its keys on one slot."""
    return f"{{p{p}}}:candles"


def partition_channel(p: int) -> bytes:
    """The sharded pub/sub channel carrying every delta of partition `p` as ``<name> <payload>``
    (the payload of ``analytics:delta:<name>``): sharded pub/sub has no pattern subscribe, so
    one process follows all symbols with P ``SSUBSCRIBE``s (the edge does); ``{p<n>}`` puts it
    on the partition's slot."""
    return f"analytics:delta:{{p{p}}}".encode()


def split_partition_message(msg: bytes) -> tuple[bytes, bytes]:
    """``<name> <payload>`` of a `partition_channel` message → (name, payload); ValueError if
    it has no name."""
    name, sep, payload = msg.partition(b" ")
    if not sep or not name:
        raise ValueError("partition channel message without a name")
    return name, payload


def lease_key(p: int) -> str:
    return f"{{p{p}}}:lease"


CLUSTER_SCHEME = "redis+cluster://"


def redact(url: str) -> str:
    """`url` for logs: a ``redis+cluster://`` URL's user and password become ``***``."""
    if url.startswith(CLUSTER_SCHEME):
        rest = url[len(CLUSTER_SCHEME) :].split("?", 1)[0]
        if "@" in rest:
            rest = "***@" + rest.rpartition("@")[2]
        return CLUSTER_SCHEME + rest
    return redact_url(url)


def connect(url: str) -> Redis | RedisCluster:
    """redis-py's asyncio client for ``redis+cluster://[user:password@]h:p,h:p``
    (`RedisCluster`, the nodes as startup nodes) or a plain ``redis://`` URL (one server)."""
    if url.startswith(CLUSTER_SCHEME):
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        from ttfast.worker.scaleout.resp import parse_cluster_url

        hosts, user, password = parse_cluster_url(url)
        return RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in hosts],
            username=user,
            password=password,
            socket_timeout=5.0,
            socket_connect_timeout=2.0,
        )
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=2.0)


def stream_id(entry_id: bytes | str) -> tuple[int, int]:
    s = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = s.partition("-")
    return int(ms), int(seq or 0)


# -- entries -------------------------------------------------------------------------------


def encode_entry(ch: Any, *, epoch: int = 0, merge: bool = False) -> dict[bytes, bytes]:
    """One stream entry of one `SymbolChange`: the whole series (``k=s``, or ``k=m`` with
    `merge`: the series from its first bar on, older bars kept) when its history changed,
    else the bars from ``ch.first`` on (``k=u``); time as int64, the five fields as float64
    (bit-exact); ``e`` the ingest leader's epoch (its fencing token)."""
    s = ch.series
    n = len(s)
    full = bool(ch.history_changed)
    first = 0 if full else max(0, min(int(ch.first), n - 1))
    if full or n - first > 8:
        t = np.asarray(s.time, dtype=np.int64)[first:]
        v = np.stack([np.asarray(getattr(s, f), dtype=np.float64)[first:] for f in FIELDS], 1)
    else:
        bars = [s[i] for i in range(first, n)]
        t = np.array([b.time for b in bars], dtype=np.int64)
        v = np.array([[getattr(b, f) for f in FIELDS] for b in bars], dtype=np.float64)
    return {
        b"s": ch.symbol.encode(),
        b"k": (b"m" if merge else b"s") if full else b"u",
        b"e": b"%d" % epoch,
        b"t": t.tobytes(),
        b"v": np.ascontiguousarray(v).tobytes(),
    }


FIELDS = ("open", "high", "low", "close", "volume")


def decode_entry(fields: dict[bytes, bytes]) -> tuple[str, bool, Any, Any]:
    """(candle symbol, full series (``k=s`` or ``k=m``)?, times int64[n], values
    float64[n, 5]); KeyError/ValueError when malformed."""
    t = np.frombuffer(fields[b"t"], dtype=np.int64)
    v = np.frombuffer(fields[b"v"], dtype=np.float64).reshape(len(t), 5)
    k = fields[b"k"]
    if k not in (b"s", b"m", b"u"):
        raise ValueError(f"entry kind {k!r}")
    return fields[b"s"].decode(), k != b"u", t, v


def entry_meta(fields: dict[bytes, bytes]) -> tuple[bytes, int]:
    """(kind ``s``/``m``/``u``, leader epoch; 0 for entries written without one)."""
    return fields.get(b"k", b""), int(fields.get(b"e", b"0"))


# -- one round of commands ----------------------------------------------------------------------


async def load_scripts(client: Any, res: list[Any]) -> None:
    """A ``NOSCRIPT`` reply in `res` (a node that never saw the script, such as a replica
    promoted since, or a restarted node): load the scripts on every primary, and the round is
    sent again (`RoundNotDone`)."""
    from redis.exceptions import NoScriptError

    missing = [
        r
        for r in res
        if isinstance(r, NoScriptError)  # (redis-py drops the code from the message)
        or (isinstance(r, Exception) and str(r).startswith("NOSCRIPT"))
    ]
    if not missing:
        return
    for body in SCRIPTS.values():
        await client.script_load(body)
    raise RoundNotDone(f"{len(missing)} scripts not loaded on a node (now loaded)")


class RoundNotDone(Exception):
    """The round must be sent again whole (a redirect, a cluster in failover, or fewer replicas
    than ``--durable`` acknowledged it in time). Safe: every command of a round is idempotent."""


async def run_round(
    client: Any, cmds: list[tuple[Any, ...]], *, durable: int = 0, timeout_ms: int = 1000
) -> list[Any]:
    """Send `cmds` (each ``(name, key, *args)``) in one pipeline; their replies, in order.

    A reply Redis gave as an error (``ResponseError``) is returned in place (the caller counts
    it); connection trouble raises (redis-py's errors), and so does `RoundNotDone`.

    ``durable=n``: the round counts as written only when ``n`` replicas have it. After each
    node's commands, ``WAIT n timeout_ms`` goes on **that node's connection** (WAIT covers the
    writes of its own connection only, so it rides in the node's batch of the cluster
    pipeline). Redirects are then not followed inside the round (a redirected command would
    run on another connection, outside the WAIT): a ``MOVED`` refreshes the slot map, an
    ``ASK`` (a slot half-way through a migration) or ``TRYAGAIN``/``CLUSTERDOWN`` waits, and
    the whole round is sent again (`RoundNotDone`)."""
    from redis.asyncio.cluster import RedisCluster

    from ttfast.worker.scaleout.resp import RespCluster

    if isinstance(client, RespCluster):  # the hand-packed write path: the same contract
        return await client.round(cmds, durable=durable, timeout_ms=timeout_ms)
    from redis.exceptions import (
        AskError,
        ClusterDownError,
        MovedError,
        ResponseError,
        TryAgainError,
    )

    cluster = isinstance(client, RedisCluster)
    pipe = client.pipeline(transaction=False)
    for c in cmds:
        pipe.execute_command(*c)
    n_wait = 0
    if durable > 0:
        if cluster:
            await client.initialize()  # (cheap once done) the slot map
            nodes: dict[str, Any] = {}
            for c in cmds:
                node = client.get_node_from_key(command_key(c))
                nodes.setdefault(node.name, node)
            for node in nodes.values():
                pipe.execute_command("WAIT", durable, timeout_ms, target_nodes=node)
            n_wait = len(nodes)
        else:
            pipe.execute_command("WAIT", durable, timeout_ms)
            n_wait = 1
    if cluster:
        res = await pipe.execute(raise_on_error=False, allow_redirections=durable <= 0)
    else:
        res = await pipe.execute(raise_on_error=False)
    res = list(res)
    # a connection lost under a node's batch leaves its error in the results of the commands
    # not answered: connection trouble, never a reply (the round is resent, not counted)
    lost = [r for r in res if isinstance(r, Exception) and not isinstance(r, ResponseError)]
    if lost:
        raise RoundNotDone(f"{len(lost)} commands not answered: {lost[0]!r}")
    redirected = [r for r in res if isinstance(r, (AskError, TryAgainError, ClusterDownError))]
    if redirected:
        if cluster and any(isinstance(r, MovedError) for r in redirected):
            await client.nodes_manager.initialize()
        raise RoundNotDone(f"{len(redirected)} commands redirected or refused: {redirected[0]!r}")
    await load_scripts(client, res)
    if n_wait:
        acks = res[len(res) - n_wait :]
        short = [a for a in acks if isinstance(a, Exception) or int(a) < durable]
        if short:
            raise RoundNotDone(f"WAIT {durable}: a node replied {short[0]!r}")
        res = res[: len(res) - n_wait]
    return res
