"""``ttfast-worker --role ingest``: the source into partition streams (package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from typing import Any

from ttfast._core import Changes, PipelineOutput
from ttfast._retry import Backoff
from ttfast.sinks import LogLimiter
from ttfast.worker.app import Worker
from ttfast.worker.config import WorkerConfig
from ttfast.worker.scaleout.common import (
    connect,
    encode_entry,
    partition_of,
    redact,
    run_round,
    stream_key,
)

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

    def on_changes(self, changes: Changes) -> PipelineOutput:
        t0 = time.perf_counter_ns()
        for ch in changes:
            self._queue.append((partition_of(ch.symbol, self.partitions), encode_entry(ch)))
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

    def status_line(self) -> str:
        return (
            f"{super().status_line()} | ingest appended {self.appended} "
            f"queued {len(self._queue)} failures {self.failures} rejected {self.rejected}"
        )

    async def run(self) -> int:
        client = connect(self.url)
        flusher = asyncio.create_task(self._flusher(client), name="ttfast-ingest-flusher")
        log.info(
            "ingest: %d partitions on %s (MAXLEN ~%d)",
            self.partitions,
            redact(self.url),
            self.maxlen,
        )
        try:
            rc = await super().run()
            deadline = time.monotonic() + 10.0  # flush what the source delivered
            while self._queue and time.monotonic() < deadline and not flusher.done():
                await asyncio.sleep(0.02)
            if self._queue:
                log.warning("ingest: %d entries not appended at exit", len(self._queue))
            return rc
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await flusher
            with contextlib.suppress(Exception):
                await client.aclose()
