"""The worker process: the candle store, the compiled pipeline and the sinks, fed per batch.

Per batch (never per candle in Python): the batch goes into the ``CandleStore``; the compiled
``IndicatorPipeline`` turns the store's changes into rows and encoded JSON payloads; the sinks
queue them and flush from their own tasks. `Worker` also keeps the edge accounting (bad input
counted per reason and logged rate-limited, the symbol limit, idle discard); its sources are in
`ttfast.worker.sources`, what it shows in `ttfast.worker.status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ttfast._core import (
    COLUMN_CLOSE,
    COLUMN_HIST,
    COLUMN_HMA,
    KIND_FINAL,
    KIND_HISTORY,
    CandleStore,
    Changes,
    IndicatorPipeline,
    PipelineOutput,
    pipeline,
)
from ttfast._run import run as run_loop
from ttfast._util import redact_url
from ttfast.batch import ColumnBatch
from ttfast.edge.embed import WorkerEdge, parse_hostport
from ttfast.sinks import LogLimiter
from ttfast.sinks.redis import RedisSink
from ttfast.sinks.telegraf import CANDLE_FIELDS
from ttfast.symbols import normalize_period, validate_symbol
from ttfast.worker.config import LOG_EVERY, WorkerConfig, parse_args
from ttfast.worker.points import PointsOutput
from ttfast.worker.sources import BadMessage, RawCandle, RawCandleParser, run_source
from ttfast.worker.status import WorkerStats, status_line, status_loop, table

if TYPE_CHECKING:
    from ttfast.dxlink import DxLinkStreamer

__all__ = ["Worker", "main"]

log = logging.getLogger("ttfast.worker")


def _f(x: float | None) -> float:
    return math.nan if x is None else x


class Worker:
    """The indicator process: a source feeding `on_changes`, the pipeline, the sinks."""

    def __init__(self, cfg: WorkerConfig) -> None:
        try:
            period = normalize_period(cfg.period)
        except ValueError as exc:
            raise ValueError(f"bad candle period {cfg.period!r}: {exc}") from None
        if cfg.max_symbols < 1:
            raise ValueError("max_symbols must be >= 1")
        self.cfg = cfg
        self.stats = WorkerStats()
        self.store = CandleStore(cfg.capacity, max_symbols=cfg.max_symbols)
        self.pipeline = IndicatorPipeline(
            publish_raw=cfg.source != "redis", period=period, max_symbols=cfg.max_symbols
        )
        self._parser = RawCandleParser(period, cfg.max_symbols)  # dxFeed's form: SPY{=5m}
        self._warn = LogLimiter(log, LOG_EVERY)
        self._known: set[str] = set()  # store symbols admitted by the dxLink edge
        self._last_seen: dict[str, float] = {}  # store symbol -> monotonic time (idle_discard)
        self._store_events = 0  # store.events at the last streamer batch
        self.redis: RedisSink | None = (
            RedisSink(cfg.redis_url, max_backlog=cfg.redis_backlog) if cfg.redis_url else None
        )
        # history:<name> in Redis, and the chart/API server in-process (--serve)
        self.edge = WorkerEdge(
            redis_url=cfg.redis_url,
            history_bars=cfg.history_bars,
            serve=parse_hostport(cfg.serve) if cfg.serve else None,
            token=os.environ.get("TTFAST_EDGE_TOKEN") or None,
            delta_prefix=self.pipeline.delta_prefix,
            snapshot_prefix=self.pipeline.snapshot_prefix,
        )
        self.points = PointsOutput(
            cfg,
            pipeline.display_period(period),
            lambda detail: self.count_malformed("error", detail, "pipeline"),
        )
        self.telegraf = self.points.telegraf
        self.influx = self.points.influx
        self.latest: dict[str, tuple[int, float, float, int, float, int]] = {}
        self.warm_start_ms: dict[str, int] = {}  # symbol -> newest stored bar (warm start)
        self._warming = False  # seeding from the database: do not write it back there
        self.reconnects = 0
        self.loop_lag = 0.0
        self._stop = asyncio.Event()
        self.started = time.monotonic()

    # -- the per-batch path ------------------------------------------------------------------
    def on_changes(self, changes: Changes) -> PipelineOutput:
        """Run the pipeline over one CandleStore.apply() result and queue the sink work."""
        t0 = time.perf_counter_ns()
        out = self.pipeline.process(changes)
        self._emit(out)
        self.stats.batches += 1
        self.stats.rows += out.n
        self.stats.process_ns += time.perf_counter_ns() - t0
        self.stats.last_batch_at = time.monotonic()
        return out

    def on_stream_changes(self, changes: Changes) -> None:
        """The streamer's ``on_candle_changes``: every Candle batch it applied to our store.

        Never raises into the streamer's receive path: a failure is counted (``error``).
        """
        events = self.store.events
        self.stats.events += events - self._store_events
        self._store_events = events
        try:
            self.on_changes(changes)
        except Exception as exc:
            self.count_malformed("error", repr(exc), "dxlink source", max(1, len(changes)))

    def _emit(self, out: PipelineOutput) -> None:
        if out.n == 0:
            return
        if self.redis is not None:
            self.redis.publish_many(out.publishes)
            self.redis.set_snapshots(out.snapshots)
        if self.edge.active:
            self.edge.on_output(out)
        kind = out.kind
        self.stats.finals += int(np.count_nonzero(kind == KIND_FINAL))
        if self.points.active and not self._warming:
            self.points.emit(out)
        if not self.cfg.print_table:
            return
        # newest row per symbol, for the --print table (per row, so only when asked for)
        cols = out.columns
        for i in np.flatnonzero(kind != KIND_HISTORY).tolist():
            self.latest[out.symbols[i]] = (
                int(out.time[i]),
                float(cols[COLUMN_CLOSE, i]),
                float(cols[COLUMN_HIST, i]),
                int(out.color[i]),
                float(cols[COLUMN_HMA, i]),
                int(out.direction[i]),
            )

    # -- warm start (--warm-from influx|redis) -------------------------------------------------
    async def warm_start(self) -> int:
        """Seed the store and the indicators from the newest `warm_bars` stored bars of each
        symbol (influx: Flux on --influx, else InfluxQL on --telegraf; redis: history:<name>);
        returns how many symbols were seeded. The seeded rows go to Redis (snapshots) but not
        back to the database. A store that cannot be read leaves the worker cold (logged)."""
        from ttfast.symbols import build_candle_symbol
        from ttfast.warm import (
            FluxReader,
            HistoryUnavailable,
            InfluxQLReader,
            RedisHistoryReader,
            snapshot_batch,
        )
        from ttfast.warm import warm_bars as read_bars

        cfg = self.cfg
        period = normalize_period(cfg.period)
        reader: FluxReader | InfluxQLReader | RedisHistoryReader
        if cfg.warm_from == "redis" and cfg.redis_url:
            reader = RedisHistoryReader(cfg.redis_url)
        elif cfg.influx_url:
            reader = FluxReader(
                cfg.influx_url,
                org=cfg.influx_org,
                bucket=cfg.influx_bucket,
                token=os.environ.get(cfg.influx_token_env, ""),
            )
        elif cfg.telegraf_url and cfg.telegraf_url.startswith("http"):
            reader = InfluxQLReader(cfg.telegraf_url, cfg.telegraf_db)
        else:
            log.warning("warm start: no --influx or http --telegraf to read from; starting cold")
            return 0
        try:
            got = await read_bars(
                reader, cfg.symbols, pipeline.display_period(period), cfg.warm_bars
            )
        except HistoryUnavailable as exc:
            log.warning("warm start: %s; starting cold", exc)
            return 0
        finally:
            await reader.close()
        self._warming = True
        try:
            for sym, bars in got.items():
                cs = build_candle_symbol(sym, period)
                self._known.add(cs)
                self.on_changes(self.store.apply(snapshot_batch(cs, bars)))
                self.warm_start_ms[sym] = int(bars.time[-1])
        finally:
            self._warming = False
        log.info(
            "warm start: %d of %d symbols seeded from %s (up to %d bars each)",
            len(got),
            len(cfg.symbols),
            reader,
            cfg.warm_bars,
        )
        return len(got)

    def subscribe_candles(self, streamer: DxLinkStreamer, start_ms: int) -> None:
        """Subscribe the configured symbols' candles: a warm-started symbol from its newest
        stored bar only, merged into the seeded series (the store's resume mode), the others
        from `start_ms`."""
        cfg = self.cfg
        cold = [s for s in cfg.symbols if s not in self.warm_start_ms]
        if cold:
            streamer.subscribe_candles(cold, cfg.period, start_ms)
        for sym, last in self.warm_start_ms.items():
            (cs,) = streamer.subscribe_candles([sym], cfg.period, last)
            # subscribe_candles ended resume mode ("a new start replaces"); the snapshot cannot
            # arrive before this returns to the loop, so it merges into the seeded bars
            self.store.resume(cs)

    # -- bad input and limits --------------------------------------------------------------
    def count_malformed(self, reason: str, detail: str, where: str, n: int = 1) -> None:
        """Count `n` skipped messages/rows under `reason`; log (rate-limited)."""
        st = self.stats
        st.malformed += n
        st.malformed_by_reason[reason] = st.malformed_by_reason.get(reason, 0) + n
        self._warn.log(
            "malformed:" + reason,
            logging.WARNING,
            "%s: malformed input skipped (%s: %s); %d malformed so far",
            where,
            reason,
            detail[:200],
            st.malformed,
        )

    def _refuse(self, sym: str, where: str, n: int = 1) -> None:
        self.stats.symbols_refused += n
        self._warn.log(
            "limit",
            logging.WARNING,
            "%s: symbol limit reached (--max-symbols %d): new symbol %r refused; "
            "%d messages of new symbols refused so far",
            where,
            self.cfg.max_symbols,
            sym,
            self.stats.symbols_refused,
        )

    def _has_room(self, extra: int = 0) -> bool:
        return len(self.store) + extra < self.cfg.max_symbols

    def admit_symbol(self, sym: object) -> bool:
        """The dxLink/sim edge (the streamer's ``accept_candle_symbol``): may a Candle row of a
        symbol the streamer has not accepted yet reach the store? Invalid symbols are counted
        (``symbol``), new ones beyond max_symbols refused and counted; asked once per row."""
        why = validate_symbol(sym)
        if why is not None:
            self.count_malformed("symbol", why, "dxlink source")
            return False
        assert isinstance(sym, str)
        if sym in self._known:
            return True
        if sym not in self.store and len(self._known) >= self.cfg.max_symbols:
            self._refuse(sym, "dxlink source")
            return False
        self._known.add(sym)
        return True

    def discard_idle(self, before: float) -> int:
        """Forget (store + pipeline state) every symbol last seen before `before` (monotonic);
        their Redis snapshots stay. Returns how many were discarded."""
        idle = [s for s, t in self._last_seen.items() if t < before]
        for sym in idle:
            del self._last_seen[sym]
            name = self.pipeline.name_for(sym)[0]
            self.pipeline.discard(sym)
            self.store.discard(sym)
            self._known.discard(sym)
            self.latest.pop(name, None)
        if idle:
            self.stats.symbols_discarded += len(idle)
            log.info(
                "discarded %d idle symbol(s) (no message for %gs), e.g. %r; %d discarded so far",
                len(idle),
                self.cfg.idle_discard,
                idle[0],
                self.stats.symbols_discarded,
            )
        return len(idle)

    async def _idle_loop(self) -> None:
        every = max(0.05, min(self.cfg.idle_discard / 4, 5.0))
        while True:
            await asyncio.sleep(every)
            self.discard_idle(time.monotonic() - self.cfg.idle_discard)

    # -- raw candles (the Redis source) ------------------------------------------------------
    def ingest_raw(self, msgs: Sequence[dict[str, Any]]) -> None:
        """Validate pub/sub messages and run the good ones as one Candle batch (redis source).

        Bad messages are counted per reason and skipped; messages of new symbols beyond
        max_symbols are refused and counted. If handling the batch raises anyway, its messages
        are retried one by one so that only the culprit is lost (counted as `error`).
        """
        rows: list[tuple[str, RawCandle]] = []
        track = self.cfg.idle_discard > 0
        now = time.monotonic()
        store = self.store
        new: set[str] = set()  # new symbols admitted in this batch (not in the store yet)
        for m in msgs:
            try:
                sym, c = self._parser.parse(m)
            except BadMessage as bad:
                self.count_malformed(bad.reason, bad.detail, "redis source")
                continue
            except Exception as exc:  # a bug guard: nothing in a message may stop the source
                self.count_malformed("error", repr(exc), "redis source")
                continue
            if sym not in store and sym not in new:
                if not self._has_room(len(new)):
                    self._refuse(sym, "redis source")
                    continue
                new.add(sym)
            if track:
                self._last_seen[sym] = now
            rows.append((sym, c))
        if not rows:
            return
        self.stats.events += len(rows)
        try:
            self._apply_raw(rows)
        except Exception as exc:
            self._warn.log(
                "retry",
                logging.WARNING,
                "redis source: a batch of %d messages failed (%r); retrying one by one",
                len(rows),
                exc,
            )
            for row in rows:
                try:
                    self._apply_raw([row])
                except Exception as exc1:
                    self.stats.events -= 1
                    self.count_malformed("error", f"{row[0]}: {exc1!r}", "redis source")

    def _apply_raw(self, rows: list[tuple[str, RawCandle]]) -> None:
        # A symbol seen for the first time has no dxLink snapshot: its first bar goes through
        # apply_bar, which marks the series as its own source of truth.
        later: list[tuple[str, RawCandle]] = []
        for sym, row in rows:
            s = self.store.get(sym)
            if s is None or not s.ready:
                self.on_changes(
                    self.store.apply_bar(
                        sym,
                        row.time,
                        _f(row.open),
                        _f(row.high),
                        _f(row.low),
                        _f(row.close),
                        _f(row.volume),
                        count=row.count,
                        sequence=row.sequence,
                    )
                )
            else:
                later.append((sym, row))
        if not later:
            return
        rs = [c for _, c in later]
        cols: dict[str, Any] = {
            "eventSymbol": [sym for sym, _ in later],
            "time": [c.time for c in rs],
            "sequence": [c.sequence for c in rs],
            "count": [c.count for c in rs],
            "eventFlags": [c.eventFlags for c in rs],
        }
        for name in CANDLE_FIELDS:
            cols[name] = [_f(getattr(c, name)) for c in rs]
        self.on_changes(self.store.apply(ColumnBatch("Candle", cols)))

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def stopped(self) -> None:
        """Return once stop() was called."""
        await self._stop.wait()

    async def run(self) -> int:
        try:
            url = await self.edge.start(optional=self.cfg.serve_auto)
        except OSError as exc:
            log.error("--serve %s: cannot listen: %s", self.cfg.serve, exc)
            await self.edge.close()
            return 1
        if url:
            print(f"chart: {url}", file=sys.stderr, flush=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        if self.redis is not None:
            await self.redis.start()
        await self.points.start()
        if self.cfg.warm_from is not None:
            await self.warm_start()
        # Start-up's objects (modules, warm history) leave every later collection: a full
        # collection of this heap took 20-45 ms (bench/bench_latency.py), a stall of every
        # frame in flight; frozen, the collector only walks what the stream allocates.
        gc.collect()
        gc.freeze()
        src = asyncio.create_task(run_source(self), name="ttfast-source")
        status = asyncio.create_task(status_loop(self), name="ttfast-status")
        idle = (
            asyncio.create_task(self._idle_loop(), name="ttfast-idle-discard")
            if self.cfg.idle_discard > 0 and self.cfg.source == "redis"
            else None
        )
        timer = (
            asyncio.create_task(self._stop_after(self.cfg.duration)) if self.cfg.duration else None
        )
        rc = 0
        try:
            done, _ = await asyncio.wait(
                {src, asyncio.create_task(self._stop.wait())}, return_when=asyncio.FIRST_COMPLETED
            )
            if src in done and src.exception() is not None:
                log.error("source %s failed: %s", self.cfg.source, src.exception())
                rc = 1
        finally:
            self._stop.set()
            for t in (src, status, idle, timer):
                if t is not None:
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
            if self.redis is not None:
                await self.redis.close()
            await self.points.close()
            await self.edge.close()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            if not self.cfg.quiet:
                print("\n" + self.status_line(), file=sys.stderr)
        return rc

    async def _stop_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._stop.set()

    # -- status ------------------------------------------------------------------------------
    def status_line(self) -> str:
        return status_line(self)

    def table(self) -> str:
        return table(self)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    log.info(
        "ttfast-worker: source=%s symbols=%s period=%s redis=%s telegraf=%s influx=%s",
        cfg.source,
        ",".join(cfg.symbols),
        cfg.period,
        redact_url(cfg.redis_url) if cfg.redis_url else "-",
        redact_url(cfg.telegraf_url) if cfg.telegraf_url else "-",
        redact_url(cfg.influx_url) if cfg.influx_url else "-",
    )
    try:
        if cfg.role != "single":  # scale-out over Redis (Cluster): docs/scale-out.md
            from ttfast.worker.scaleout import run_role

            return run_loop(run_role(cfg))
        return run_loop(Worker(cfg).run())
    except KeyboardInterrupt:
        return 0
