"""``ttfast-worker --role ingest``: the source into partition streams (package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import time
import uuid
from collections import deque
from typing import Any

from ttfast._core import Changes, PipelineOutput
from ttfast._retry import Backoff
from ttfast.sinks import LogLimiter
from ttfast.symbols import build_candle_symbol
from ttfast.worker.app import Worker
from ttfast.worker.config import WorkerConfig
from ttfast.worker.scaleout.common import (
    ACQUIRE_SCRIPT,
    INGEST_EPOCH_KEY,
    INGEST_LEASE_KEY,
    RELEASE_SCRIPT,
    RENEW_SCRIPT,
    connect,
    deployment_partitions,
    encode_entry,
    partition_of,
    redact,
    run_round,
    stream_key,
    unless_stopped,
)
from ttfast.worker.scaleout.resp import RespCluster
from ttfast.worker.scaleout.state import ckpt_key

__all__ = ["IngestWorker"]

log = logging.getLogger("ttfast.worker.scaleout")


class IngestWorker(Worker):
    """The worker's source and store; every store change → its partition's stream."""

    def __init__(self, cfg: WorkerConfig) -> None:
        assert cfg.redis_url is not None
        inner = dataclasses.replace(
            cfg,
            redis_url=None,
            telegraf_url=None,
            influx_url=None,
            serve=None,
            history_bars=0,
            print_table=False,
        )
        super().__init__(inner)
        self.url = cfg.redis_url
        self.partitions = cfg.partitions
        self.maxlen = cfg.stream_maxlen
        self.durable = cfg.durable
        self.durable_timeout_ms = cfg.durable_timeout_ms
        self._queue: deque[tuple[int, dict[bytes, bytes]]] = deque()
        self._wake = asyncio.Event()
        self.appended = 0  # entries acknowledged by Redis
        self.failures = 0  # rounds resent (connection trouble, redirects, WAIT short)
        self.rejected = 0  # appends Redis answered with an error
        self._limiter = LogLimiter(log)
        self.ttl_ms = cfg.lease_ms
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.epoch = 0  # our leader epoch (fencing token), once we lead
        self._lease_until = 0.0  # monotonic: our lease is surely ours until then
        self._merge: set[str] = set()  # candle symbols resubscribed from the streams' last bar
        self.resumed = 0  # symbols resubscribed from their last bar in the streams
        self.lease_lost = False
        self._seqs: dict[int, int] = {}  # partition -> entries numbered (per epoch)
        self.reacquired = 0  # leases found expired (nobody else leading) and taken again

    def on_changes(self, changes: Changes) -> PipelineOutput:
        t0 = time.perf_counter_ns()
        ep, merge, seqs = self.epoch, self._merge, self._seqs
        for ch in changes:
            p = partition_of(ch.symbol, self.partitions)
            e = encode_entry(ch, epoch=ep, merge=ch.symbol in merge)
            seqs[p] = n = seqs.get(p, 0) + 1
            e[b"n"] = b"%d" % n
            self._queue.append((p, e))
        if len(changes):
            self._wake.set()
        self.stats.batches += 1
        self.stats.rows += len(changes)
        self.stats.process_ns += time.perf_counter_ns() - t0
        self.stats.last_batch_at = time.monotonic()
        return None  # type: ignore[return-value]

    def _xadd(self, p: int, fields: dict[bytes, bytes]) -> tuple[Any, ...]:
        args: list[Any] = ["XADD", stream_key(p), "MAXLEN", "~", self.maxlen, "*"]
        for k, v in fields.items():
            args += (k, v)
        return tuple(args)

    async def _flusher(self, client: Any) -> None:
        backoff = Backoff(0.05, 2.0, jitter="none")
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            if time.monotonic() >= self._lease_until:  # not sure we still lead: hold
                if self.lease_lost:
                    return
                await asyncio.sleep(0.02)
                continue
            n = min(len(self._queue), 1000)
            cmds = [self._xadd(p, fields) for p, fields in (self._queue[i] for i in range(n))]
            try:
                res = await run_round(
                    client, cmds, durable=self.durable, timeout_ms=self.durable_timeout_ms
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # retried as a whole: entries are idempotent upserts
                self.failures += 1
                self._limiter.log(
                    "xadd", logging.WARNING, "ingest: XADD round failed (%r); retrying", exc
                )
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            bad = [r for r in res if isinstance(r, Exception)]
            if bad:  # Redis refused these (a key of another type?): counted, never retried
                self.rejected += len(bad)
                self._limiter.log("rejected", logging.ERROR, "ingest: Redis rejected %r", bad[0])
            for _ in range(n):
                self._queue.popleft()
            self.appended += n - len(bad)

    # -- leadership --------------------------------------------------------------------------
    async def _take(self, client: Any) -> int:
        """Take the lease if it is free: our new epoch, 0 if another holds it or Redis did not
        answer (logged)."""
        try:
            return int(
                await client.eval(
                    ACQUIRE_SCRIPT, 2, INGEST_LEASE_KEY, INGEST_EPOCH_KEY, self.id, self.ttl_ms
                )
            )
        except Exception as exc:
            self._limiter.log("lease", logging.WARNING, "ingest: lease round failed: %r", exc)
            return 0

    async def _acquire(self, client: Any) -> bool:
        """Stand by until we hold the ingest lease (True) or are stopped (False)."""
        every = self.ttl_ms / 4000
        said = False
        while not self.stopping:
            t0 = time.monotonic()
            ep = await self._take(client)
            if ep:
                self.epoch = ep
                self._lease_until = t0 + self.ttl_ms / 1000
                log.info("ingest %s: leading (epoch %d)", self.id, ep)
                return True
            if not said:
                said = True
                with contextlib.suppress(Exception):
                    other = await client.get(INGEST_LEASE_KEY)
                    log.info("ingest %s: standby (leader %r)", self.id, other)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopped(), every)
        return False

    async def _renew(self, client: Any) -> None:
        """Every quarter TTL: extend our lease if it is still ours; lost → stop appending at
        once (the queue is dropped: the new leader resubscribes from the streams) and stop."""
        every = self.ttl_ms / 4000
        while not self.stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopped(), every)
            if self.stopping:
                return
            t0 = time.monotonic()
            try:
                ok = await client.eval(RENEW_SCRIPT, 1, INGEST_LEASE_KEY, self.id, self.ttl_ms)
            except Exception as exc:  # unknown: appends hold once the TTL may have run out
                self._limiter.log("lease", logging.WARNING, "ingest: lease renewal failed: %r", exc)
                continue
            if ok:
                self._lease_until = t0 + self.ttl_ms / 1000
                continue
            # gone: expired while Redis could not be reached (a failover of its primary takes
            # about as long as the lease)? If nobody took it, take it again with a new epoch:
            # the appends were held meanwhile, and ours come in order (older epochs first)
            ep = await self._take(client)
            if ep:
                self.epoch = ep
                self._seqs.clear()  # numbered per epoch
                self._lease_until = t0 + self.ttl_ms / 1000
                self.reacquired += 1
                log.warning(
                    "ingest %s: the lease had expired (Redis unreachable?); taken again, epoch %d",
                    self.id,
                    ep,
                )
                continue
            self.lease_lost = True
            self._lease_until = 0.0
            log.error(
                "ingest %s: lease lost (another ingest leads now); %d queued entries dropped, "
                "stopping",
                self.id,
                len(self._queue),
            )
            self._queue.clear()
            self._wake.set()
            self.stop()
            return

    async def _resume_points(self, client: Any) -> None:
        """Find each configured symbol's newest bar in the streams (a previous leader's
        appends; for a symbol trimmed from its stream, in the compute workers' checkpoint
        ``{p<n>}:ckpt``): the source subscribes those symbols from that bar (`warm_start_ms`, the
        worker's resume path) and their full entries are merges (``k=m``), so the compute
        workers keep the older bars and the gap is filled from the candle snapshot."""
        period = self.cfg.period
        start = int(time.time() * 1000) - int(self.cfg.history_days * 86_400_000)
        want: dict[int, dict[str, str]] = {}
        for sym in self.cfg.symbols:
            try:
                cs = build_candle_symbol(sym, period)
            except ValueError:
                continue
            want.setdefault(partition_of(cs, self.partitions), {})[cs] = sym
        for p, names in want.items():
            found: dict[str, int] = {}
            hi: Any = "+"
            scanned = 0
            while len(found) < len(names) and scanned < self.maxlen + 1000:
                chunk = await client.xrevrange(stream_key(p), max=hi, min="-", count=1000)
                if not chunk:
                    break
                scanned += len(chunk)
                for _id, fields in chunk:
                    cs = (fields.get(b"s") or b"").decode(errors="replace")
                    if cs in names and cs not in found:
                        t = fields.get(b"t") or b""
                        if len(t) >= 8 and len(t) % 8 == 0:
                            found[cs] = int.from_bytes(t[-8:], "little", signed=True)
                last_id = chunk[-1][0]
                hi = b"(" + (last_id if isinstance(last_id, bytes) else last_id.encode())
                if len(chunk) < 1000:
                    break
            if len(found) < len(names):  # trimmed from the stream: the state checkpoint has it
                ck = await client.hgetall(ckpt_key(p))
                for k, v in ck.items():
                    k = k.decode() if isinstance(k, bytes) else k
                    if k.startswith("t:") and k[2:] in names and k[2:] not in found:
                        found[k[2:]] = int(v)
            for cs, last in found.items():
                if last >= start:  # else: too old to merge into: a full snapshot replaces
                    self.warm_start_ms[names[cs]] = last
                    self._merge.add(cs)
        self.resumed = len(self._merge)
        if self._merge:
            log.info(
                "ingest %s: %d symbols resubscribed from their last bar in the streams",
                self.id,
                self.resumed,
            )

    def status_line(self) -> str:
        return (
            f"{super().status_line()} | ingest epoch {self.epoch} appended {self.appended} "
            f"queued {len(self._queue)} failures {self.failures} rejected {self.rejected} "
            f"resumed {self.resumed}"
        )

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # while standing by (run() has its own)
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        client = connect(self.url)
        flusher: asyncio.Task[None] | None = None
        writer: Any = client
        renew: asyncio.Task[None] | None = None
        log.info(
            "ingest %s: %d partitions on %s (MAXLEN ~%d, lease %d ms)",
            self.id,
            self.partitions,
            redact(self.url),
            self.maxlen,
            self.ttl_ms,
        )
        try:
            stored = await unless_stopped(
                deployment_partitions(client, self.partitions), self._stop
            )
            if stored is None:
                return 0
            if stored != self.partitions:
                log.error(
                    "ingest: this Redis holds a scale-out deployment with --partitions %d, "
                    "not %d (docs/scale-out.md)",
                    stored,
                    self.partitions,
                )
                return 2
            if not await self._acquire(client):
                return 0
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            renew = asyncio.create_task(self._renew(client), name="ttfast-ingest-lease")
            try:
                await self._resume_points(client)
            except Exception as exc:  # then every symbol starts from --history-days
                log.warning("ingest: reading the streams' last bars failed: %r", exc)
            # the appends: packed by hand (resp.py) unless --cluster-client redis-py
            if self.cfg.cluster_client == "resp":
                writer = RespCluster(self.url)
            flusher = asyncio.create_task(self._flusher(writer), name="ttfast-ingest-flusher")
            rc = await super().run()
            deadline = time.monotonic() + 10.0  # flush what the source delivered
            while self._queue and time.monotonic() < deadline and not flusher.done():
                await asyncio.sleep(0.02)
            if self._queue:
                log.warning("ingest: %d entries not appended at exit", len(self._queue))
            return 3 if self.lease_lost else rc
        finally:
            for t in (flusher, renew):
                if t is not None:
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
            if self.epoch and not self.lease_lost:  # a standby takes over at once
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        client.eval(RELEASE_SCRIPT, 1, INGEST_LEASE_KEY, self.id), 2
                    )
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            if writer is not client:
                with contextlib.suppress(Exception):
                    await writer.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()
