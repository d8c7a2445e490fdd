"""``ttfast-worker --role compute``: N processes share the partitions (package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import signal
import socket
import sys
import time
import uuid
import zlib
from typing import Any, cast

import numpy as np
from redis.exceptions import ResponseError

from ttfast._core import (
    DELTA_CHANNEL_PREFIX,
    CandleStore,
    IndicatorPipeline,
    PipelineOutput,
    pipeline,
)
from ttfast._retry import Backoff
from ttfast.batch import ColumnBatch
from ttfast.edge.history import HISTORY_KEY_PREFIX, history_ops
from ttfast.sinks import LogLimiter
from ttfast.symbols import normalize_period
from ttfast.warm import Bars, snapshot_batch
from ttfast.worker.config import WorkerConfig
from ttfast.worker.points import PointsOutput
from ttfast.worker.scaleout.common import (
    ACQUIRE_FENCED_SCRIPT,
    FIELDS,
    GROUP,
    MEMBERS_KEY,
    RELEASE_SCRIPT,
    RENEW_SCRIPT,
    SCRIPTS,
    RoundNotDone,
    connect,
    decode_entry,
    deployment_partitions,
    entry_meta,
    fence_key,
    fenced,
    lease_key,
    partition_channel,
    partition_fence_key,
    redact,
    run_round,
    stream_id,
    stream_key,
    unless_stopped,
)
from ttfast.worker.scaleout.resp import RespCluster
from ttfast.worker.scaleout.state import StateLog, ckpt_key, decode_log, log_key, syms_key

__all__ = ["ComputeStats", "ComputeWorker"]

log = logging.getLogger("ttfast.worker.scaleout")


@dataclasses.dataclass
class ComputeStats:
    entries: int = 0  # entries acknowledged (XACK) after their outputs
    replayed: int = 0  # entries replayed to rebuild state on taking a partition
    claimed: int = 0  # pending entries claimed from a previous owner
    takeovers: int = 0  # partitions acquired
    lost: int = 0  # leases lost (not renewed in time)
    released: int = 0  # partitions given up to balance
    commands: int = 0  # output commands acknowledged
    rejected: int = 0  # output commands Redis answered with an error
    write_failures: int = 0  # output rounds retried
    bad_entries: int = 0  # stream entries that do not decode (skipped, logged)
    fenced: int = 0  # entries of a deposed ingest leader, after a newer one's (skipped)
    restored: int = 0  # symbols rebuilt from a state log on taking a partition
    bad_logs: int = 0  # state logs that did not decode (symbol skipped, logged)
    bad_rows: int = 0  # points the line-protocol encoder refused (skipped, logged)
    points_late: int = 0  # commits that went on before the points were acknowledged
    missing: int = 0  # entries the ingest numbered that never arrived (MAXLEN, refused)
    stale_writes: int = 0  # fenced scripts refused: a newer owner of the partition wrote


class LeaseLost(Exception):
    """The partition's lease was lost: its round must not be written."""


class ComputeWorker:
    """Owns a share of the partitions and computes their symbols (see the module docstring)."""

    def __init__(self, cfg: WorkerConfig) -> None:
        assert cfg.redis_url is not None
        period = normalize_period(cfg.period)
        self.cfg = cfg
        self.url = cfg.redis_url
        self.partitions = cfg.partitions
        self.ttl_ms = cfg.lease_ms
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.store = CandleStore(cfg.capacity, max_symbols=cfg.max_symbols)
        self.pipeline = IndicatorPipeline(
            publish_raw=False, period=period, max_symbols=cfg.max_symbols
        )
        self.history_cap = cfg.history_bars
        # --telegraf / --influx: the single worker's points, written at least once (see _commit)
        self.points = PointsOutput(
            cfg, pipeline.display_period(period), lambda detail: self._bad_row(detail)
        )
        self.stats = ComputeStats()
        self.owned: dict[int, asyncio.Task[None]] = {}  # partitions we hold the lease of
        self._live: dict[int, asyncio.Task[None]] = {}  # their tasks, until they ended
        self._releasing: dict[int, asyncio.Task[None]] = {}  # given up: lease kept until it ends
        self.symbols: dict[int, set[str]] = {}
        self.epochs: dict[int, int] = {}  # partition -> newest ingest leader epoch seen
        self.applied: dict[int, list[dict[bytes, bytes]]] = {}  # entries not yet in the log
        self.state = StateLog()
        self.seqs: dict[int, tuple[int, int]] = {}  # partition -> (epoch, last entry number)
        self._lost: set[asyncio.Task[None]] = set()  # tasks whose lease was found lost
        self.tokens: dict[int, int] = {}  # partition -> fencing token of our lease on it
        self._stop = asyncio.Event()
        self._limiter = LogLimiter(log)
        self.client: Any = None
        self.writer: Any = None  # the client of the output rounds (see run)
        self.lease_client: Any = None  # (`_leases`)

    def stop(self) -> None:
        self._stop.set()

    # -- applying entries -------------------------------------------------------------------
    def apply(self, p: int, entries: list[tuple[Any, dict[bytes, bytes]]]) -> list[PipelineOutput]:
        """Entries (in stream order) → store → pipeline; the outputs, in order."""

        outs: list[PipelineOutput] = []
        seg: list[tuple[str, Any, Any]] = []
        syms = self.symbols.setdefault(p, set())
        applied = self.applied.setdefault(p, [])  # for the state log (`state.StateLog`)

        def flush_seg() -> None:
            if not seg:
                return
            names = [s for s, t, _ in seg for _ in range(len(t))]
            t = np.concatenate([t for _, t, _ in seg])
            v = np.concatenate([v for _, _, v in seg])
            cols: dict[str, Any] = {
                "eventSymbol": names,
                "time": t,
                "eventFlags": np.zeros(len(t), dtype=np.int64),
            }
            for k, f in enumerate(FIELDS):
                cols[f] = v[:, k].copy()
            outs.append(self.pipeline.process(self.store.apply(ColumnBatch("Candle", cols))))
            seg.clear()

        for _id, fields in entries:
            try:
                sym, full, t, v = decode_entry(fields)
                kind, epoch = entry_meta(fields)
                seq = int(fields.get(b"n", b"0") or 0)
            except (KeyError, ValueError, UnicodeDecodeError) as exc:
                self.stats.bad_entries += 1
                self._limiter.log("entry", logging.WARNING, "compute: bad entry skipped: %r", exc)
                continue
            # fencing: once an entry of a newer ingest leader is in the partition, a deposed
            # leader's late appends are skipped (deterministic: the stream's order decides)
            newest = self.epochs.get(p, 0)
            if epoch < newest:
                self.stats.fenced += 1
                continue
            self.epochs[p] = epoch
            if seq:  # the ingest numbers its entries per partition and epoch: a gap is a loss
                last_epoch, last_seq = self.seqs.get(p, (-1, 0))
                if epoch != last_epoch:  # a leader numbers from 1
                    last_seq = 0
                if seq > last_seq:
                    if seq > last_seq + 1:
                        self._missing(p, seq - last_seq - 1, last_seq)
                    self.seqs[p] = (epoch, seq)
            if not len(t):
                continue
            applied.append(fields)
            syms.add(sym)
            s = self.store.get(sym)
            if full:
                flush_seg()
                bars = Bars(t.copy(), *(v[:, k].copy() for k in range(5)))
                if kind == b"m":  # a new ingest leader's bars from its resubscription on
                    self.store.resume(sym)  # merge; nothing stored: the snapshot replaces
                outs.append(self.pipeline.process(self.store.apply(snapshot_batch(sym, bars))))
                if kind == b"m":
                    self.store.cancel_resume(sym)  # (resume mode lasts until ended)
            elif s is None or not s.ready:  # no snapshot retained: the first bar starts it
                flush_seg()
                o, h, lo, c, vol = (float(x) for x in v[0])
                outs.append(
                    self.pipeline.process(self.store.apply_bar(sym, int(t[0]), o, h, lo, c, vol))
                )
                if len(t) > 1:
                    seg.append((sym, t[1:], v[1:]))
            else:
                seg.append((sym, t, v))
        flush_seg()
        return outs

    # -- writing outputs ----------------------------------------------------------------------
    def _commands(self, outs: list[PipelineOutput], p: int) -> list[tuple[Any, ...]]:

        snaps: dict[bytes, bytes] = {}
        cmds: list[tuple[Any, ...]] = []
        hist: dict[Any, list[tuple[Any, ...]]] = {}  # history key -> its commands, in order
        pch = partition_channel(p)  # the edge's one subscription per partition
        cut = len(DELTA_CHANNEL_PREFIX)
        for out in outs:
            if out.n == 0:
                continue
            for ch, payload in out.publishes:
                cmds.append(("SPUBLISH", ch, payload))
                cmds.append(("SPUBLISH", pch, ch[cut:] + b" " + payload))
            snaps.update(out.snapshots)
            if self.history_cap > 0:
                for op in history_ops(out, self.history_cap):
                    key = HISTORY_KEY_PREFIX + op.name
                    hi = "+inf" if op.hi is None else op.hi
                    ops = hist.setdefault(key, [])
                    ops.append(("ZREMRANGEBYSCORE", key, op.lo, hi))
                    args: list[Any] = ["ZADD", key]
                    for t, bar in op.bars:
                        args += [t, bar]
                    ops.append(tuple(args))
                    ops.append(("ZREMRANGEBYRANK", key, 0, -(self.history_cap + 1)))
        # the stored outputs are fenced by the partition's lease token (see `fenced`); the
        # deltas are not (pub/sub keeps nothing a late round could overwrite)
        token = self.tokens.get(p, 0)
        cmds.extend(fenced(fence_key(k), k, token, ops) for k, ops in hist.items())
        cmds.extend(fenced(fence_key(k), k, token, [("SET", k, v)]) for k, v in snaps.items())
        return cmds

    def _partition_round(self, p: int, cmds: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """`cmds` (all on partition `p`'s slot: its logs, checkpoint and stream) as fenced
        scripts of up to 1000 commands: a deposed owner's late commit writes nothing."""
        token = self.tokens.get(p, 0)
        fence, key = partition_fence_key(p), stream_key(p)
        return [fenced(fence, key, token, cmds[i : i + 1000]) for i in range(0, len(cmds), 1000)]

    def _check_fenced(self, p: int, cmds: list[tuple[Any, ...]], res: list[Any]) -> None:
        """A fenced script of `cmds` refused (-1): a newer owner of `p` wrote; this task is
        deposed."""
        n = sum(1 for c, r in zip(cmds, res, strict=True) if r == -1 and c[0] == "EVALSHA")
        if n:
            self.stats.stale_writes += n
            log.warning(
                "compute %s: partition %d: %d writes refused, a newer owner has written "
                "(this worker was paused past its lease); the partition is given up",
                self.id,
                p,
                n,
            )
            self._lost.add(cast(asyncio.Task[None], asyncio.current_task()))
            raise LeaseLost

    async def write(self, outs: list[PipelineOutput], p: int) -> None:
        """Write the outputs of partition `p`; returns once Redis acknowledged every command
        (with ``--durable N``: once N replicas have them too). Connection trouble and
        `RoundNotDone` resend the round with backoff; a command Redis answers with an error is
        counted (`rejected`) and logged."""
        cmds = self._commands(outs, p)
        self._check_fenced(p, cmds, await self._send(cmds))
        if self.points.active:
            for out in outs:
                self.points.emit(out)

    def _bad_row(self, detail: str) -> None:
        self.stats.bad_rows += 1
        self._limiter.log("row", logging.WARNING, "compute: point skipped: %s", detail)

    async def _commit(self, p: int, last_id: bytes | str, acks: list[Any]) -> None:
        """After the outputs of the entries up to `last_id` are acknowledged: bring the
        partition's state log up to it, trim the stream to it, acknowledge `acks`: one round on
        the stream's node, in that order (a prefix of it never holds a checkpoint without the
        log records before it, nor an XACK without the checkpoint).

        With ``--telegraf`` / ``--influx``, the entries' points are first flushed: acknowledged
        by the database before the entries are (at least once; InfluxDB keeps one point per
        series and time, so a repeat is harmless). While a sink is failing the commit does not
        wait for it: its bounded buffer holds the points and counts what it must drop, as in
        the single-process worker, rather than holding every partition's outputs back."""
        healthy = self.points.active and not any(s.failing for s in self.points.sinks)
        if healthy and not await self.points.flush(self.cfg.points_flush_timeout):
            self.stats.points_late += 1
        cmds = self.state.commands(
            p,
            self.applied.pop(p, []),
            last_id,
            self.epochs.get(p, 0),
            self.store.get,
            seq=self.seqs.get(p, (0, 0))[1],
        )
        cmds.append(("XTRIM", stream_key(p), "MINID", "~", last_id))
        for i in range(0, len(acks), 1000):
            cmds.append(("XACK", stream_key(p), GROUP, *acks[i : i + 1000]))
        fenced_cmds = self._partition_round(p, cmds)
        self._check_fenced(p, fenced_cmds, await self._send(fenced_cmds))

    async def _send(self, cmds: list[tuple[Any, ...]]) -> list[Any]:
        """One or more rounds of `cmds`; see `write`. Their replies, in order."""
        backoff = Backoff(0.05, 2.0, jitter="none")
        replies: list[Any] = []
        for i in range(0, len(cmds), 2000):
            chunk = cmds[i : i + 2000]
            while True:
                self._check_lease()
                try:
                    res = await run_round(
                        self.writer,
                        chunk,
                        durable=self.cfg.durable,
                        timeout_ms=self.cfg.durable_timeout_ms,
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.stats.write_failures += 1
                    self._limiter.log(
                        "write", logging.WARNING, "compute: output round failed (%r); retrying", exc
                    )
                    await asyncio.sleep(backoff.next_delay())
                    continue
                bad = [r for r in res if isinstance(r, Exception)]
                if any(not isinstance(r, ResponseError) for r in bad):
                    self.stats.write_failures += 1
                    await asyncio.sleep(backoff.next_delay())
                    continue
                if bad:
                    self.stats.rejected += len(bad)
                    self._limiter.log(
                        "rejected", logging.ERROR, "compute: Redis rejected %r", bad[0]
                    )
                self.stats.commands += len(chunk) - len(bad)
                replies += res
                break
        return replies

    # -- a partition --------------------------------------------------------------------------
    async def _partition(self, p: int) -> None:
        c = self.client
        key = stream_key(p)
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
            await c.xgroup_create(key, GROUP, id="0", mkstream=True)
        # take over: rebuild from the state log, claim every pending entry, replay the stream
        # from the log's checkpoint up to the last delivered entry
        start: Any = "-"
        ck = await c.hgetall(ckpt_key(p))
        ck_id = ck.get(b"id") or ck.get("id")
        if ck_id:
            await self._load_state(p)
            self.epochs[p] = max(self.epochs.get(p, 0), int(ck.get(b"epoch") or 0))
            if ck.get(b"seq"):
                self.seqs[p] = (self.epochs[p], int(ck[b"seq"]))
            start = b"(" + (ck_id if isinstance(ck_id, bytes) else ck_id.encode())
        last = b"0-0"
        for g in await c.xinfo_groups(key):
            name = g.get("name")
            if name in (GROUP, GROUP.encode()):
                last = g.get("last-delivered-id") or b"0-0"
        claimed: list[Any] = []
        cursor: Any = "0-0"
        while True:
            res = await c.xautoclaim(key, GROUP, self.id, 0, start_id=cursor, count=1000)
            cursor, entries = res[0], res[1]
            claimed += [e[0] for e in entries]
            if len(res) > 2:
                claimed += list(res[2])  # deleted by trimming: nothing to replay, ack
            if stream_id(cursor) == (0, 0):
                break
        first_pending = min((stream_id(i) for i in claimed), default=None)
        self.stats.claimed += len(claimed)
        while stream_id(last) != (0, 0) and self._holds(p):
            chunk = await c.xrange(key, min=start, max=last, count=1000)
            if not chunk:
                break
            self.stats.replayed += len(chunk)
            if first_pending is None:
                self.apply(p, chunk)
            else:
                k = next((j for j, e in enumerate(chunk) if stream_id(e[0]) >= first_pending), None)
                if k is None:
                    self.apply(p, chunk)
                else:
                    self.apply(p, chunk[:k])
                    await self.write(self.apply(p, chunk[k:]), p)
            await self._commit(p, chunk[-1][0], [])
            start = b"(" + (
                chunk[-1][0] if isinstance(chunk[-1][0], bytes) else chunk[-1][0].encode()
            )
            if len(chunk) < 1000:
                break
        if claimed and self._holds(p):
            n = len(claimed)
            acks = [("XACK", key, GROUP, *claimed[i : i + 1000]) for i in range(0, n, 1000)]
            fenced_acks = self._partition_round(p, acks)
            self._check_fenced(p, fenced_acks, await self._send(fenced_acks))
            log.info(
                "compute %s: partition %d: %d pending entries claimed", self.id, p, len(claimed)
            )
        while self._holds(p):
            if isinstance(self.writer, RespCluster):  # hand-packed, hiredis-parsed
                entries = await self.writer.xreadgroup(key, GROUP, self.id, 500, 200)
            else:
                got = await c.xreadgroup(GROUP, self.id, {key: ">"}, count=500, block=200)
                if not got:
                    continue
                entries = got[0][1] if isinstance(got, list) else next(iter(got.values()))[0]
            if not entries:
                continue
            await self.write(self.apply(p, entries), p)
            await self._commit(p, entries[-1][0], [e[0] for e in entries])
            self.stats.entries += len(entries)

    def _missing(self, p: int, n: int, after: int) -> None:
        self.stats.missing += n
        log.error(
            "compute %s: partition %d: %d entries after #%d never arrived (trimmed by "
            "--stream-maxlen before any compute worker read them, or refused by Redis): their "
            "bars are missing until their symbols' next snapshot",
            self.id,
            p,
            n,
            after,
        )

    async def _load_state(self, p: int) -> None:
        """Rebuild partition `p`'s series from its state log (no outputs: those were written
        before the checkpoint was)."""
        c = self.client
        members = sorted(
            m.decode() if isinstance(m, bytes) else m for m in await c.smembers(syms_key(p))
        )
        for i in range(0, len(members), 200):
            part = members[i : i + 200]
            pipe = c.pipeline(transaction=False)
            for cs in part:
                pipe.get(log_key(p, cs))
            blobs = await pipe.execute()
            for cs, blob in zip(part, blobs, strict=True):
                if blob is None:
                    continue
                try:
                    fields = decode_log(cs, blob)
                except ValueError as exc:
                    self.stats.bad_logs += 1
                    log.error("compute %s: partition %d: %s; symbol skipped", self.id, p, exc)
                    continue
                self.apply(p, [(b"0-0", f) for f in fields])
                self.state.loaded(p, cs, len(blob))
                self.stats.restored += 1
        self.applied.pop(p, None)  # they are the log

    def _check_lease(self) -> None:
        """Raise `LeaseLost` in a partition task whose lease was found lost: another worker
        may own the partition now, and a late round (one retried through a failover) would
        overwrite its newer outputs (``ZREMRANGEBYSCORE`` of the history included). Its
        entries stay pending for the new owner."""
        if asyncio.current_task() in self._lost:
            raise LeaseLost

    def _holds(self, p: int) -> bool:
        """Is the calling partition task still the one of a partition we hold?"""
        return self.owned.get(p) is asyncio.current_task() and not self._stop.is_set()

    async def _run_partition(self, p: int) -> None:
        try:
            await self._partition(p)
        except asyncio.CancelledError:
            raise
        except LeaseLost:
            log.warning("compute %s: partition %d: round dropped (lease lost)", self.id, p)
        except Exception as exc:
            if _redis_trouble(exc):  # `_leases` starts it over, lease kept
                self._limiter.log(
                    f"partition {p}",
                    logging.WARNING,
                    "compute %s: partition %d: %r; starting it over",
                    self.id,
                    p,
                    exc,
                )
            else:
                log.error("compute %s: partition %d failed: %r", self.id, p, exc)
            if self._holds(p):  # else dropped: nobody looks at the task any more
                raise
        finally:  # the state of its symbols goes with the task
            if isinstance(self.writer, RespCluster):
                self.writer.close_reader(stream_key(p))
            self._lost.discard(asyncio.current_task())
            self.epochs.pop(p, None)
            self.seqs.pop(p, None)
            self.applied.pop(p, None)
            self.state.forget(p)
            for sym in self.symbols.pop(p, set()):
                self.pipeline.discard(sym)
                self.store.discard(sym)
            if self._live.get(p) is asyncio.current_task():
                del self._live[p]

    def _drop(self, p: int) -> None:
        """Stop working on `p`: its task ends after its current round (between two reads;
        never cancelled mid-command, which could leave a connection mid-reply)."""
        self.owned.pop(p, None)

    async def _ended(self, tasks: list[asyncio.Task[None]], timeout: float = 10.0) -> None:
        """Wait for dropped partition tasks to end; cancel what is still running then."""
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2.0)

    # -- leases -------------------------------------------------------------------------------
    async def _leases(self) -> None:
        c = self.lease_client
        every = self.ttl_ms / 4000
        me = self.id
        offset = zlib.crc32(me.encode()) % self.partitions
        alive = 1
        while not self._stop.is_set():
            # every step on its own: a node down (a failover) fails the steps on its slots,
            # not the renewals of the leases that live elsewhere
            now = int(time.time() * 1000)
            try:
                await c.zadd(MEMBERS_KEY, {me: now + self.ttl_ms})
                await c.zremrangebyscore(MEMBERS_KEY, "-inf", now)
                alive = max(1, int(await c.zcard(MEMBERS_KEY)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # (the last count stands)
                self._limiter.log("lease", logging.WARNING, "compute: heartbeat failed: %r", exc)
            # renewals concurrently: a node that hangs or fails slowly (redis-py retries)
            # does not hold up the leases on the others past their TTL
            await asyncio.gather(
                *(self._renew_releasing(p, t) for p, t in list(self._releasing.items())),
                *(self._renew(p, t) for p, t in list(self.owned.items())),
            )
            target = math.ceil(self.partitions / alive)
            while len(self.owned) > target and not self._stop.is_set():
                p = max(self.owned)
                self._releasing[p] = self.owned[p]
                self._drop(p)  # its task ends after its round; released once it did
            budget = time.monotonic() + every  # then renew first, take more next round
            for i in range(self.partitions):
                if len(self.owned) >= target or time.monotonic() > budget:
                    break
                p = (offset + i) % self.partitions
                if p in self.owned or p in self._live or self._stop.is_set():
                    continue  # (in _live: its previous task has not ended yet)
                try:  # the lease and a new fencing token for its writes, at once
                    got = await c.eval(
                        ACQUIRE_FENCED_SCRIPT,
                        2,
                        lease_key(p),
                        partition_fence_key(p),
                        me,
                        self.ttl_ms,
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._lease_failed(p, exc)
                    continue
                if got:
                    self.tokens[p] = int(got)
                    self.stats.takeovers += 1
                    log.info("compute %s: partition %d acquired", me, p)
                    task = asyncio.create_task(self._run_partition(p), name=f"ttfast-partition-{p}")
                    self.owned[p] = self._live[p] = task
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), every)

    async def _renew_releasing(self, p: int, task: asyncio.Task[None]) -> None:
        """Renew the lease of a partition given up, or release it once its task ended."""
        c, me = self.lease_client, self.id
        try:
            if task.done():  # its last round is acknowledged: nothing pending
                await c.eval(RELEASE_SCRIPT, 1, lease_key(p), me)
                del self._releasing[p]
                self.stats.released += 1
            else:
                await c.eval(RENEW_SCRIPT, 1, lease_key(p), me, self.ttl_ms)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._lease_failed(p, exc)

    async def _renew(self, p: int, task: asyncio.Task[None]) -> None:
        """Renew the lease of an owned partition; a task that ended on Redis trouble is
        started over (lease kept), one that failed otherwise is given up."""
        c, me = self.lease_client, self.id
        try:
            if task.done():
                why = None if task.cancelled() else task.exception()
                if _redis_trouble(why) and not self._stop.is_set():
                    # Redis trouble (a failover, a slot moved): start it over in place,
                    # lease kept (claim, replay, read: as a takeover)
                    task = asyncio.create_task(self._run_partition(p), name=f"ttfast-partition-{p}")
                    self.owned[p] = self._live[p] = task
                else:  # failed: give it up, it is retried by whoever takes it
                    self._drop(p)
                    await c.eval(RELEASE_SCRIPT, 1, lease_key(p), me)
                    return
            renewed = await c.eval(RENEW_SCRIPT, 1, lease_key(p), me, self.ttl_ms)
            if not renewed and self.owned.get(p) is task:
                self.stats.lost += 1
                log.warning("compute %s: lease of partition %d lost", me, p)
                self._lost.add(task)  # its round in flight is not written
                self._drop(p)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # unknown: renewed next round, or found lost then
            self._lease_failed(p, exc)

    def _lease_failed(self, p: int, exc: BaseException) -> None:
        self._limiter.log(
            "lease", logging.WARNING, "compute: lease of partition %d: %r (retried)", p, exc
        )

    def status_line(self) -> str:
        st = self.stats
        return (
            f"compute {self.id} | partitions {sorted(self.owned)} | symbols {len(self.store)} | "
            f"acked {st.entries} replayed {st.replayed} claimed {st.claimed} | "
            f"commands {st.commands} rejected {st.rejected} write failures {st.write_failures} | "
            f"bad entries {st.bad_entries} fenced {st.fenced} restored {st.restored} "
            f"bad logs {st.bad_logs} missing {st.missing} stale writes {st.stale_writes} | "
            f"takeovers {st.takeovers} released {st.released} lost {st.lost}"
            + "".join(
                f" | {name} sent {sk.stats.lines_sent} dropped {sk.stats.lines_dropped}"
                for name, sk in (("telegraf", self.points.telegraf), ("influx", self.points.influx))
                if sk is not None
            )
        )

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        self.client = connect(self.url)
        stored = await unless_stopped(
            deployment_partitions(self.client, self.partitions), self._stop
        )
        if stored != self.partitions:
            if stored is not None:
                log.error(
                    "compute: this Redis holds a scale-out deployment with --partitions %d, "
                    "not %d (docs/scale-out.md)",
                    stored,
                    self.partitions,
                )
            with contextlib.suppress(Exception):
                await self.client.aclose()
            return 0 if stored is None else 2
        # the leases on a client of their own: redis-py answers a node's failure by closing
        # every connection of the client (commands in flight fail), and renewals must not
        # wait for, nor fail with, the partitions' reads and rounds
        self.lease_client = connect(self.url)
        # the output and commit rounds: packed by hand (resp.py) unless --cluster-client redis-py
        self.writer = RespCluster(self.url) if self.cfg.cluster_client == "resp" else self.client
        try:  # the fence script on every primary (else loaded on the first NOSCRIPT reply)
            for body in SCRIPTS.values():
                await asyncio.wait_for(self.writer.script_load(body), 5.0)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:
            log.info("compute %s: scripts not loaded yet (%r)", self.id, exc)
        await self.points.start()
        log.info(
            "compute %s: %d partitions on %s (lease %d ms)",
            self.id,
            self.partitions,
            redact(self.url),
            self.ttl_ms,
        )
        leases = asyncio.create_task(self._leases(), name="ttfast-leases")
        status = asyncio.create_task(self._status(), name="ttfast-status")
        timer = asyncio.create_task(asyncio.sleep(self.cfg.duration)) if self.cfg.duration else None
        try:
            waits: set[asyncio.Future[Any]] = {asyncio.create_task(self._stop.wait()), leases}
            if timer is not None:
                waits.add(timer)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # by flags, not cancellation: a command cancelled mid-reply could leave its
            # connection unusable for the releases below
            self._stop.set()
            for t in (status, timer):
                if t is not None:
                    t.cancel()
            await self._ended([leases], timeout=5.0)
            held = list(self.owned) + list(self._releasing)
            for p in held:
                self._drop(p)
            await self._ended(list(self._live.values()))
            for p in held:  # let the others take over at once rather than after the TTL
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        self.client.eval(RELEASE_SCRIPT, 1, lease_key(p), self.id), 2
                    )
            with contextlib.suppress(Exception):
                await self.points.close()  # (what it cannot send in time is counted dropped)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.zrem(MEMBERS_KEY, self.id), 2)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.aclose(), 5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.lease_client.aclose(), 5)
            if self.writer is not self.client:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.writer.aclose(), 5)
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            if not self.cfg.quiet:
                print(self.status_line(), file=sys.stderr, flush=True)
        return 0

    async def _status(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.status_interval)
            if not self.cfg.quiet:
                print(self.status_line(), file=sys.stderr, flush=True)


def _redis_trouble(exc: BaseException | None) -> bool:
    """Did a partition task end on Redis trouble (connection, failover, redirect, a round
    that must be resent) rather than on a bug?"""
    from redis.exceptions import RedisError

    return isinstance(exc, (RedisError, OSError, RoundNotDone))
