"""``ttfast-worker``: candles in -> MACD(12,26,9) and HMA(20) per symbol -> Redis and Telegraf.

Sources (``--source``):
* ``sim`` (default without credentials): the local dxLink server + seeded market simulator run
  in-process and the real dxLink client connects to it -- the whole pipeline, offline.
* ``dxlink``: a real tastytrade session (OAuth from ``TASTYTRADE_*`` env) -> ``/api-quote-tokens``
  -> the dxLink streamer.
* ``redis``: raw candles published by another process on ``market:CandleEvent:<symbol>``
  (pattern subscription), JSON objects with ``time`` (epoch ms), ``open``..``volume`` and
  optionally ``eventSymbol``, ``eventFlags``, ``index``, ``sequence``, ``count``.

Per batch (never per candle in Python): the batch goes into the ``CandleStore``; the compiled
``IndicatorPipeline`` turns the store's changes into rows and encoded JSON payloads; the sinks
queue them and flush from their own tasks. See docs/README-worker.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from ttfast._core import CandleStore, IndicatorPipeline, PipelineOutput
from ttfast.sinks import redact_url
from ttfast.sinks.redis import RedisSink
from ttfast.sinks.telegraf import TelegrafSink

log = logging.getLogger("ttfast.worker")

RAW_PATTERN = "market:CandleEvent:*"
_HIST_COLORS = ("#26a69a", "#b2dfdb", "#ffcdd2", "#ff5252")


@dataclass
class WorkerConfig:
    symbols: list[str] = field(default_factory=lambda: ["SPY", "QQQ", "AAPL", "MSFT", "NVDA"])
    period: str = "5m"
    source: str = "sim"
    redis_url: str | None = None
    telegraf_url: str | None = None
    telegraf_db: str = "ttfast"
    telegraf_gzip: bool = False
    telegraf_final_only: bool = False
    history_days: float = 2.0
    capacity: int = 4096
    duration: float | None = None
    status_interval: float = 1.0
    print_table: bool = False
    quiet: bool = False
    sim_seed: int = 7
    sim_speed: float = 60.0
    redis_backlog: int = 100_000


@dataclass
class WorkerStats:
    events: int = 0  # raw events received from the source
    batches: int = 0
    rows: int = 0  # indicator rows produced (forming + final + history)
    finals: int = 0  # bars closed and committed
    malformed: int = 0  # raw candles rejected by the redis source
    process_ns: int = 0  # time spent in store.apply + pipeline + sink queueing
    last_batch_at: float = 0.0


class _Columns:
    """A Candle batch built from raw redis messages (the shape CandleStore.apply() reads)."""

    event_type = "Candle"

    def __init__(self, cols: dict[str, npt.NDArray[Any]]) -> None:
        self._cols = cols
        self.size = len(cols["time"])

    def __len__(self) -> int:
        return self.size

    def column(self, name: str) -> npt.NDArray[Any] | None:
        return self._cols.get(name)


class RawCandle(msgspec.Struct, forbid_unknown_fields=False):
    """One raw candle as published on market:CandleEvent:<symbol> (dxLink field names)."""

    time: int
    close: float | None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    volume: float | None = None
    eventSymbol: str | None = None
    eventFlags: int = 0
    sequence: int = 0
    count: int = 0


_raw_decoder = msgspec.json.Decoder(RawCandle)


def _f(x: float | None) -> float:
    return math.nan if x is None else x


class Worker:
    """The indicator process: a source feeding `on_changes`, the pipeline, the sinks."""

    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self.stats = WorkerStats()
        self.store = CandleStore(cfg.capacity)
        self.pipeline = IndicatorPipeline(publish_raw=cfg.source != "redis")
        self.redis: RedisSink | None = (
            RedisSink(cfg.redis_url, max_backlog=cfg.redis_backlog) if cfg.redis_url else None
        )
        self.telegraf: TelegrafSink | None = (
            TelegrafSink(
                cfg.telegraf_url,
                database=cfg.telegraf_db,
                period=cfg.period,
                gzip=cfg.telegraf_gzip,
            )
            if cfg.telegraf_url
            else None
        )
        self.latest: dict[str, tuple[int, float, float, int, float, int]] = {}
        self.reconnects = 0
        self.loop_lag = 0.0
        self._connected_once = False
        self._stop = asyncio.Event()
        self._started = time.monotonic()

    # -- the per-batch path ------------------------------------------------------------------
    def on_changes(self, changes: Any) -> PipelineOutput:
        """Run the pipeline over one CandleStore.apply() result and queue the sink work."""
        t0 = time.perf_counter_ns()
        out = self.pipeline.process(changes)
        self._emit(out)
        self.stats.batches += 1
        self.stats.rows += out.n
        self.stats.process_ns += time.perf_counter_ns() - t0
        self.stats.last_batch_at = time.monotonic()
        return out

    def _emit(self, out: PipelineOutput) -> None:
        if out.n == 0:
            return
        if self.redis is not None:
            self.redis.publish_many(out.publishes)
            for key, payload in out.snapshots:
                self.redis.set_snapshot(key, payload)
        kind = out.kind
        self.stats.finals += int(np.count_nonzero(kind == 1))
        if self.telegraf is not None:
            if self.cfg.telegraf_final_only:
                sel = np.flatnonzero(kind != 0)
                if len(sel):
                    syms = [out.symbols[i] for i in sel]
                    cols = out.columns[:, sel]
                    self.telegraf.write_rows(syms, out.time[sel], tuple(cols[:5]), tuple(cols[5:]))
            else:
                self.telegraf.write_rows(out.symbols, out.time, out.candle, out.indicators)
        if not self.cfg.print_table:
            return
        # newest row per symbol, for the --print table (per row, so only when asked for)
        cols = out.columns
        for i in np.flatnonzero(kind != 2).tolist():
            self.latest[out.symbols[i]] = (
                int(out.time[i]),
                float(cols[3, i]),
                float(cols[7, i]),
                int(out.color[i]),
                float(cols[8, i]),
                int(out.direction[i]),
            )

    # -- sources -----------------------------------------------------------------------------
    def _tap_store(self, streamer: Any) -> None:
        """Route the streamer's own CandleStore.apply() results through the pipeline.

        The streamer applies each Candle batch to `streamer.candles` (with its reconnect-resume
        logic); we wrap that store so every Changes it returns also reaches `on_changes`.
        """
        worker = self

        class _Tapped:
            def __init__(self, inner: Any) -> None:
                self._inner = inner

            def apply(self, batch: Any) -> Any:
                ch = self._inner.apply(batch)
                worker.stats.events += len(batch)
                worker.on_changes(ch)
                return ch

            def __getattr__(self, name: str) -> Any:
                return getattr(self._inner, name)

            def __getitem__(self, key: str) -> Any:
                return self._inner[key]

            def __contains__(self, key: object) -> bool:
                return key in self._inner

            def __len__(self) -> int:
                return len(self._inner)

        streamer.candles = _Tapped(self.store)

    async def _run_streamer(
        self, url: str | None, provider: Callable[[], Awaitable[tuple[str, str]]]
    ) -> None:
        from ttfast.dxlink.streamer import DxLinkStreamer

        def on_event(ev: Any) -> None:
            kind = getattr(ev, "kind", "")
            if kind == "connected" and self._connected_once:
                self.reconnects += 1
            if kind == "connected":
                self._connected_once = True
            if kind in ("disconnected", "failed", "auth_rejected", "decode_error"):
                log.warning("dxlink %s: %s", kind, getattr(ev, "detail", ""))

        self._connected_once = False
        streamer = DxLinkStreamer(
            url,
            provider,
            candle_capacity=self.cfg.capacity,
            on_event=on_event,
            aggregation_period=0.1,
        )
        self._tap_store(streamer)
        await streamer.open()
        start = int(time.time() * 1000 - self.cfg.history_days * 86_400_000)
        if self.cfg.source == "sim":
            start = self._sim_now() - int(self.cfg.history_days * 86_400_000)
        streamer.subscribe_candles(self.cfg.symbols, self.cfg.period, start)
        try:
            await self._stop.wait()
        finally:
            await streamer.close()

    def _sim_now(self) -> int:
        clock = getattr(self, "_sim_clock", None)
        return int(clock.now_ms()) if clock is not None else int(time.time() * 1000)

    async def _source_sim(self) -> None:
        from ttfast.sim import DxLinkServer, SimClock

        self._sim_clock = SimClock(time_scale=self.cfg.sim_speed)
        server = DxLinkServer(
            seed=self.cfg.sim_seed, clock=self._sim_clock, default_aggregation=0.1
        )
        url = await server.start()
        log.info(
            "sim: local dxLink server on %s (seed %d, %gx speed)",
            url,
            self.cfg.sim_seed,
            self.cfg.sim_speed,
        )

        async def provider() -> tuple[str, str]:
            return url, "sim-token"

        try:
            await self._run_streamer(url, provider)
        finally:
            await server.stop()

    async def _source_dxlink(self) -> None:
        from ttfast.auth import OAuthSession
        from ttfast.rest import TastytradeClient

        session = OAuthSession.from_env()
        client = TastytradeClient(session)
        try:
            await self._run_streamer(None, client.quote_token_provider())
        finally:
            await session.close()

    async def _source_redis(self) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        assert self.cfg.redis_url is not None
        delay = 0.05
        first = True
        while not self._stop.is_set():
            client = aioredis.Redis.from_url(self.cfg.redis_url, socket_connect_timeout=2.0)
            pubsub = client.pubsub()
            try:
                await pubsub.psubscribe(RAW_PATTERN)
                if not first:
                    self.reconnects += 1
                first = False
                delay = 0.05
                log.info(
                    "redis source: subscribed to %s on %s",
                    RAW_PATTERN,
                    redact_url(self.cfg.redis_url),
                )
                while not self._stop.is_set():
                    msgs: list[dict[str, Any]] = []
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
                    while msg is not None and len(msgs) < 4096:
                        msgs.append(msg)
                        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.0)
                    if msgs:
                        self.ingest_raw(msgs)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("redis source: %s; reconnecting in %.2fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()

    def ingest_raw(self, msgs: Sequence[dict[str, Any]]) -> None:
        """Decode a list of pub/sub messages into one Candle batch and run it (redis source)."""
        syms: list[str] = []
        rows: list[RawCandle | None] = []
        for m in msgs:
            try:
                c = _raw_decoder.decode(m["data"])
                sym = c.eventSymbol
                if not sym:
                    ch = m["channel"]
                    sym = (ch.decode() if isinstance(ch, bytes) else ch).split(":", 2)[2]
                if not sym:
                    raise ValueError("empty symbol")
            except (msgspec.DecodeError, ValueError, IndexError, UnicodeDecodeError, KeyError) as e:
                self.stats.malformed += 1
                if self.stats.malformed <= 10 or self.stats.malformed % 1000 == 0:
                    log.warning(
                        "redis source: malformed raw candle #%d skipped (%s)",
                        self.stats.malformed,
                        e,
                    )
                continue
            syms.append(sym)
            rows.append(c)
        if not rows:
            return
        self.stats.events += len(rows)
        # A symbol seen for the first time has no dxLink snapshot: its first bar goes through
        # apply_bar, which marks the series as its own source of truth.
        for i, (sym, row) in enumerate(zip(syms, rows, strict=True)):
            if row is None:
                continue
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
                rows[i] = None
        keep = [i for i, c in enumerate(rows) if c is not None]
        if not keep:
            return
        rs = [c for c in rows if c is not None]
        cols: dict[str, npt.NDArray[Any]] = {
            "eventSymbol": np.array([syms[i] for i in keep], dtype=object),
            "time": np.array([c.time for c in rs], dtype=np.int64),
            "sequence": np.array([c.sequence for c in rs], dtype=np.int64),
            "count": np.array([c.count for c in rs], dtype=np.int64),
            "eventFlags": np.array([c.eventFlags for c in rs], dtype=np.int64),
        }
        for name in ("open", "high", "low", "close", "volume"):
            cols[name] = np.array([_f(getattr(c, name)) for c in rs], dtype=np.float64)
        self.on_changes(self.store.apply(_Columns(cols)))

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        if self.redis is not None:
            await self.redis.start()
        if self.telegraf is not None:
            await self.telegraf.start()
        sources = {
            "sim": self._source_sim,
            "dxlink": self._source_dxlink,
            "redis": self._source_redis,
        }
        src = asyncio.create_task(sources[self.cfg.source](), name="ttfast-source")
        status = asyncio.create_task(self._status_loop(), name="ttfast-status")
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
            for t in (src, status, timer):
                if t is not None:
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
            if self.redis is not None:
                await self.redis.close()
            if self.telegraf is not None:
                await self.telegraf.close()
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
        s = self.stats
        el = max(time.monotonic() - self._started, 1e-9)
        parts = [
            f"{el:6.1f}s",
            f"events {s.events} ({s.events / el:,.0f}/s)",
            f"rows {s.rows} ({s.rows / el:,.0f}/s)",
            f"closed {s.finals}",
            f"symbols {len(self.pipeline.symbols)}",
        ]
        parts.append(f"loop lag {self.loop_lag * 1000:.1f}ms")
        if s.last_batch_at:
            parts.append(f"last batch {time.monotonic() - s.last_batch_at:.1f}s ago")
        if s.batches:
            parts.append(f"{s.process_ns / s.batches / 1000:.1f}us/batch")
        if s.malformed:
            parts.append(f"malformed {s.malformed}")
        if self.redis is not None:
            r = self.redis.stats
            parts.append(
                f"redis {'up' if r.connected else 'DOWN'} pub {r.published} "
                f"backlog {self.redis.backlog} dropped {r.dropped} "
                f"reconnects {r.reconnects}"
            )
        if self.telegraf is not None:
            t = self.telegraf.stats
            parts.append(
                f"telegraf sent {t.lines_sent} backlog {self.telegraf.backlog_lines} "
                f"dropped {t.lines_dropped} rejected {t.lines_rejected}"
            )
        if self.reconnects:
            parts.append(f"source reconnects {self.reconnects}")
        return " | ".join(parts)

    def table(self) -> str:
        rows = [f"{'symbol':<10} {'bar (UTC)':<17} {'close':>12} {'MACD hist':>14}  HMA"]
        for sym in sorted(self.latest):
            t, close, hist, color, hma, direction = self.latest[sym]
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(t / 1000))
            h = "n/a" if math.isnan(hist) else f"{hist:+.5f}"
            h = _ansi(_HIST_COLORS[color], f"{h:>14}") if color >= 0 else f"{h:>14}"
            d = "up" if direction > 0 else "down" if direction < 0 else "-"
            d = _ansi("#01FFFF" if direction > 0 else "#FF66FE", d) if direction else d
            hs = "" if math.isnan(hma) else f" {hma:.4f}"
            rows.append(f"{sym:<10} {when:<17} {close:>12.4f} {h}  {d}{hs}")
        return "\n".join(rows)

    async def _status_loop(self) -> None:
        tty = sys.stderr.isatty()
        while True:
            t = time.monotonic()
            await asyncio.sleep(self.cfg.status_interval)
            # how late the loop woke us: every frame waits at least this long to be processed
            self.loop_lag = max(0.0, time.monotonic() - t - self.cfg.status_interval)
            if self.cfg.quiet:
                continue
            if self.cfg.print_table:
                clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
                print(clear + self.table() + "\n" + self.status_line(), flush=True)
            elif tty:
                print("\r" + self.status_line() + "\x1b[K", end="", file=sys.stderr, flush=True)
            else:
                print(self.status_line(), file=sys.stderr, flush=True)


def _ansi(hex_color: str, text: str) -> str:
    if not sys.stdout.isatty() or os.environ.get("NO_COLOR"):
        return text
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"\x1b[38;2;{r};{g};{b}m{text}\x1b[0m"


def _have_credentials() -> bool:
    return bool(
        os.environ.get("TASTYTRADE_CLIENT_SECRET") and os.environ.get("TASTYTRADE_REFRESH_TOKEN")
    )


def parse_args(argv: Sequence[str] | None = None) -> WorkerConfig:
    env = os.environ
    p = argparse.ArgumentParser(
        prog="ttfast-worker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--symbols",
        default=env.get("TTFAST_SYMBOLS", "SPY,QQQ,AAPL,MSFT,NVDA"),
        help="comma-separated symbols (env TTFAST_SYMBOLS)",
    )
    p.add_argument(
        "--period",
        default=env.get("TTFAST_PERIOD", "5m"),
        help="candle period, e.g. 1m, 5m, 1h, 1d (env TTFAST_PERIOD)",
    )
    p.add_argument(
        "--source",
        choices=("sim", "dxlink", "redis"),
        default=env.get("TTFAST_SOURCE"),
        help="sim (default without credentials), dxlink (with TASTYTRADE_* env), "
        "redis (raw candles on market:CandleEvent:*)",
    )
    p.add_argument(
        "--redis",
        default=env.get("TTFAST_REDIS_URL"),
        help="redis://host:port/db for snapshots/deltas (env TTFAST_REDIS_URL)",
    )
    p.add_argument(
        "--telegraf",
        default=env.get("TTFAST_TELEGRAF_URL"),
        help="http://host:port (influxdb_listener or InfluxDB 1.x /write) or "
        "udp://host:port (env TTFAST_TELEGRAF_URL)",
    )
    p.add_argument("--telegraf-db", default=env.get("TTFAST_TELEGRAF_DB", "ttfast"))
    p.add_argument("--telegraf-gzip", action="store_true")
    p.add_argument(
        "--telegraf-final-only",
        action="store_true",
        help="write only closed bars (and rebuilt history), not forming-bar updates",
    )
    p.add_argument(
        "--history-days", type=float, default=2.0, help="candle history requested at start (days)"
    )
    p.add_argument("--capacity", type=int, default=4096, help="bars kept per symbol")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (flush and exit 0)",
    )
    p.add_argument("--status-interval", type=float, default=1.0)
    p.add_argument(
        "--print",
        dest="print_table",
        action="store_true",
        help="live table: close, MACD hist (colour), HMA direction per symbol",
    )
    p.add_argument("--quiet", action="store_true", help="no status output")
    p.add_argument("--sim-seed", type=int, default=7)
    p.add_argument(
        "--sim-speed",
        type=float,
        default=60.0,
        help="simulated seconds per real second (sim source)",
    )
    p.add_argument("--log-level", default=env.get("TTFAST_LOG_LEVEL", "INFO"))
    a = p.parse_args(argv)
    logging.basicConfig(
        level=a.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    source = a.source or ("dxlink" if _have_credentials() else "sim")
    if source == "redis" and not a.redis:
        p.error("--source redis needs --redis URL")
    symbols = [s.strip() for s in a.symbols.split(",") if s.strip()]
    if not symbols and source != "redis":
        p.error("no symbols")
    return WorkerConfig(
        symbols=symbols,
        period=a.period,
        source=source,
        redis_url=a.redis,
        telegraf_url=a.telegraf,
        telegraf_db=a.telegraf_db,
        telegraf_gzip=a.telegraf_gzip,
        telegraf_final_only=a.telegraf_final_only,
        history_days=a.history_days,
        capacity=a.capacity,
        duration=a.duration,
        status_interval=a.status_interval,
        print_table=a.print_table,
        quiet=a.quiet,
        sim_seed=a.sim_seed,
        sim_speed=a.sim_speed,
    )


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    log.info(
        "ttfast-worker: source=%s symbols=%s period=%s redis=%s telegraf=%s",
        cfg.source,
        ",".join(cfg.symbols),
        cfg.period,
        redact_url(cfg.redis_url) if cfg.redis_url else "-",
        redact_url(cfg.telegraf_url) if cfg.telegraf_url else "-",
    )
    try:
        import uvloop

        runner: Callable[..., int] = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        return runner(Worker(cfg).run())
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
