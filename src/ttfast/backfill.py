"""``ttfast backfill``: past candles from dxLink into InfluxDB (v2 or 1.x / Telegraf).

For each symbol, one Candle subscription from a start time (dxLink's ``fromTime``; dxLink has
no end time: the snapshot runs from the start to now, newest first, and ``--to`` is applied
here). The snapshot is applied to a `CandleStore` (its eventFlags semantics: removals,
transactions, SNAPSHOT_END/SNIP), then the closed bars in [from, to] are encoded by the
compiled `LineEncoder` (measurement ``candle``, tags ``symbol`` and ``period``, exactly what the
worker writes) and written through the same sinks as the worker, `batch_rows` at a time, each
batch acknowledged before the next: the progress line counts acknowledged bars.

Resumable: before subscribing, the database is asked for the newest stored bar of the symbol
in [from, to] (`ttfast.warm`: InfluxQL on 1.x, Flux on v2); the subscription starts at that
bar (written again: the last batch may have been cut short). Idempotent: a bar is a point with
the bar's start time, so writing it again overwrites the same point. A database that cannot
be asked (Telegraf's listener, a server without Flux) is backfilled from ``--from``.

A server that truncates the snapshot (SNAPSHOT_SNIP: it sends at most so many bars) leaves the
bars before the oldest one it sent unreachable; that is reported, per symbol.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from ttfast.symbols import normalize_period

if TYPE_CHECKING:  # the compiled core loads on use: `ttfast doctor` must run without it
    from ttfast._core import Changes
    from ttfast.sinks.telegraf import TelegrafSink
    from ttfast.warm import HistoryReader

__all__ = ["BackfillResult", "Progress", "SymbolResult", "backfill", "parse_time", "period_ms"]

log = logging.getLogger("ttfast.backfill")

_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
_CAPACITY_MAX = 1 << 22  # bars of one symbol held at once (32 MB of columns)


def period_ms(period: str) -> int:
    """Length of a time-based candle period in ms (``5m`` -> 300000); ValueError otherwise."""
    p = normalize_period(period)
    i = 0
    while i < len(p) and (p[i].isdigit() or p[i] == "."):
        i += 1
    unit = p[i:]
    if unit not in _UNIT_MS:
        raise ValueError(f"backfill needs a time-based period (s, m, h, d, w), got {period!r}")
    ms = round(float(p[:i] or 1) * _UNIT_MS[unit])
    if ms <= 0:
        raise ValueError(f"period {period!r} is shorter than a millisecond")
    return ms


def parse_time(s: str) -> int:
    """Epoch ms of ``2026-01-01``, ``2026-01-01T09:30``, ``...Z``/``+02:00`` (UTC unless an
    offset is given) or a number of epoch milliseconds."""
    s = s.strip()
    if s.isdigit():
        return int(s)
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a date/time: {s!r} (e.g. 2026-01-01 or 2026-01-01T09:30Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _fmt_secs(s: float) -> str:
    if not math.isfinite(s):
        return "--:--"
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


@dataclass
class Progress:
    """The progress line: bars done / expected, rate, ETA (at most every `interval` s; on a
    terminal it redraws one line, else it prints lines)."""

    stream: TextIO | None = field(default_factory=lambda: sys.stderr)
    interval: float = 0.5
    total: int = 0  # expected bars to write (refined as snapshots arrive)
    done: int = 0  # bars acknowledged by the database
    symbol: str = ""
    started: float = field(default_factory=time.monotonic)
    _last: float = 0.0

    def line(self) -> str:
        el = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / el
        left = max(self.total - self.done, 0)
        eta = left / rate if rate > 0 else math.inf
        pct = 100.0 * self.done / self.total if self.total else 100.0
        width = 24
        fill = min(width, int(width * pct / 100))
        return (
            f"[{'#' * fill}{'.' * (width - fill)}] {pct:5.1f}% bars {self.done:,}/{self.total:,} "
            f"| {rate:,.0f} bars/s | ETA {_fmt_secs(eta)} | {self.symbol}"
        )

    def show(self, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        tty = self.stream.isatty()
        end = "\x1b[K" if tty else "\n"
        print(("\r" if tty else "") + self.line(), end=end, file=self.stream, flush=True)

    def finish(self) -> None:
        self.show(force=True)
        if self.stream is not None and self.stream.isatty():
            print(file=self.stream)


@dataclass
class SymbolResult:
    symbol: str
    start_ms: int  # where the subscription started (--from, or the last stored bar)
    resumed: bool  # start_ms came from the database
    written: int = 0  # bars acknowledged
    first_ms: int | None = None  # oldest bar written
    last_ms: int | None = None  # newest bar written
    truncated_before: int | None = None  # snapshot snipped: nothing older than this was sent
    error: str = ""


@dataclass
class BackfillResult:
    symbols: list[SymbolResult]
    lines_sent: int
    lines_rejected: int
    lines_dropped: int

    @property
    def ok(self) -> bool:
        return (
            not self.lines_rejected
            and not self.lines_dropped
            and not any(s.error for s in self.symbols)
        )


class _Snapshots:
    """Which candle symbols' snapshots have completed (from the streamer's changes)."""

    def __init__(self) -> None:
        self.done: dict[str, asyncio.Event] = {}

    def expect(self, cs: str) -> asyncio.Event:
        ev = self.done[cs] = asyncio.Event()
        return ev

    def on_changes(self, changes: Changes) -> None:
        for ch in changes:
            ev = self.done.get(ch.symbol)
            if ev is not None and ch.snapshot and not ch.series.in_snapshot:
                ev.set()


async def backfill(
    symbols: Sequence[str],
    period: str,
    start_ms: int,
    stop_ms: int | None,
    *,
    sink: TelegrafSink,
    reader: HistoryReader | None,
    dxlink_url: str | None,
    token_provider: Callable[[], Awaitable[tuple[str, str]]],
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    batch_rows: int = 5000,
    snapshot_timeout: float = 120.0,
    progress: Progress | None = None,
) -> BackfillResult:
    """Backfill `symbols` (see the module docstring); `sink` is started here, and it and
    `reader` are closed at the end. Returns what was written per symbol and the sink's
    counters."""
    period_ms(period)  # ValueError before anything is opened
    prog = progress if progress is not None else Progress(stream=None)
    now = now_ms()
    stop = now if stop_ms is None else stop_ms
    if stop < start_ms:
        raise ValueError("--to is before --from")
    try:
        return await _backfill(
            symbols, period, start_ms, stop, now, sink, reader, dxlink_url, token_provider,
            now_ms, batch_rows, snapshot_timeout, prog,
        )  # fmt: skip
    finally:
        if reader is not None:
            await reader.close()


async def _backfill(
    symbols: Sequence[str],
    period: str,
    start_ms: int,
    stop: int,
    now: int,
    sink: TelegrafSink,
    reader: HistoryReader | None,
    dxlink_url: str | None,
    token_provider: Callable[[], Awaitable[tuple[str, str]]],
    now_ms: Callable[[], int],
    batch_rows: int,
    snapshot_timeout: float,
    prog: Progress,
) -> BackfillResult:
    from ttfast._core import CandleStore, LineEncoder, pipeline
    from ttfast.dxlink import DxLinkStreamer
    from ttfast.dxlink.protocol import build_candle_symbol
    from ttfast.sinks.telegraf import CANDLE_FIELDS
    from ttfast.warm import HistoryUnavailable

    pms = period_ms(period)
    display = pipeline.display_period(normalize_period(period))
    results: list[SymbolResult] = []
    # where each symbol starts: the newest stored bar in [from, to], else --from
    for sym in symbols:
        begin, resumed = start_ms, False
        if reader is not None:
            try:
                last = await reader.last_time(sym, display, start_ms, stop)
            except HistoryUnavailable as exc:
                log.warning("%s: cannot read what is stored (%s); starting at --from", sym, exc)
                reader = None
                last = None
            if last is not None:
                begin, resumed = max(start_ms, last), True
        results.append(SymbolResult(sym, begin, resumed))
        prog.total += max(0, (min(stop, now) - begin) // pms + 1)
    prog.show(force=True)

    snaps = _Snapshots()
    # the snapshot runs from the start to now (dxLink has no end time): all of it must fit
    longest = max((now - r.start_ms) // pms + 2 for r in results) if results else 16
    store = CandleStore(int(min(max(16, longest + 64), _CAPACITY_MAX)))
    streamer = DxLinkStreamer(
        dxlink_url,
        token_provider,
        candle_store=store,
        on_candle_changes=snaps.on_changes,
        candle_contract="HISTORY",
        aggregation_period=0.1,
    )
    encoder = LineEncoder("candle", ("symbol", "period"), CANDLE_FIELDS)
    await sink.start()
    try:
        await streamer.open()
        for res in results:
            prog.symbol = res.symbol
            cs = build_candle_symbol(res.symbol, normalize_period(period))
            done = snaps.expect(cs)
            streamer.subscribe_candles([res.symbol], normalize_period(period), res.start_ms)
            try:
                await asyncio.wait_for(done.wait(), snapshot_timeout)
            except TimeoutError:
                res.error = f"no complete candle snapshot within {snapshot_timeout:g}s"
                log.error("%s: %s", res.symbol, res.error)
                streamer.unsubscribe("Candle", [cs])
                continue
            streamer.unsubscribe("Candle", [cs])
            series = store[cs]
            times = np.asarray(series.time)
            if series.snip and len(times):
                res.truncated_before = int(times[0])
                log.warning(
                    "%s: the server truncated the snapshot at %d bars: nothing before %s",
                    res.symbol,
                    len(times),
                    datetime.fromtimestamp(times[0] / 1000, UTC).isoformat(),
                )
            # closed bars in [start, stop]: a bar still forming at `now` is not history yet
            now = now_ms()
            sel = np.flatnonzero((times >= res.start_ms) & (times <= stop) & (times + pms <= now))
            cols = [np.asarray(getattr(series, f))[sel] for f in CANDLE_FIELDS]
            t_ns = times[sel] * 1_000_000
            expected = max(0, (min(stop, now) - res.start_ms) // pms + 1)
            prog.total += len(sel) - expected  # the estimate becomes the count
            for lo in range(0, len(sel), batch_rows):
                hi = min(lo + batch_rows, len(sel))
                before = sink.stats.lines_sent
                w0 = encoder.rows_written
                body = encoder.encode(
                    t_ns[lo:hi], (res.symbol, display), tuple(c[lo:hi] for c in cols)
                )
                sink.write_lines(body, encoder.rows_written - w0)
                if not await sink.flush(None):
                    break
                sent = sink.stats.lines_sent - before
                res.written += sent
                prog.done += sent
                prog.show()
            if len(sel):
                res.first_ms, res.last_ms = int(times[sel[0]]), int(times[sel[-1]])
            store.discard(cs)
            prog.show(force=True)
    finally:
        await streamer.close()
        await sink.close()
    prog.finish()
    st = sink.stats
    return BackfillResult(results, st.lines_sent, st.lines_rejected, st.lines_dropped)


# -- the command ------------------------------------------------------------------------------
def add_backfill_arguments(p: argparse.ArgumentParser) -> None:
    """The ``ttfast backfill`` options (an argparse parser)."""
    import os

    env = os.environ
    p.add_argument("--symbols", required=True, help="comma-separated symbols, e.g. SPY,QQQ")
    p.add_argument("--period", default="5m", help="candle period: s, m, h, d, w (default 5m)")
    p.add_argument(
        "--from", dest="start", required=True, help="first bar: 2026-01-01[T09:30][Z] (UTC)"
    )
    p.add_argument("--to", dest="stop", default=None, help="last bar (default: now)")
    p.add_argument("--influx", default=None, help="InfluxDB v2 http(s)://host:port")
    p.add_argument("--influx-org", default=env.get("TTFAST_INFLUX_ORG", ""))
    p.add_argument("--influx-bucket", default=env.get("TTFAST_INFLUX_BUCKET", ""))
    p.add_argument(
        "--influx-token-env",
        default="INFLUX_TOKEN",
        metavar="NAME",
        help="environment variable holding the v2 token (default INFLUX_TOKEN)",
    )
    p.add_argument("--influx-token", dest="influx_token_argv", help=argparse.SUPPRESS)
    p.add_argument("--telegraf", default=None, help="InfluxDB 1.x (or Telegraf) http://host:port")
    p.add_argument("--telegraf-db", default=env.get("TTFAST_TELEGRAF_DB", "ttfast"))
    p.add_argument(
        "--source",
        choices=("sim", "dxlink"),
        default=None,
        help="dxlink (with TASTYTRADE_* env; the default when they are set) or sim "
        "(the local simulated market, in-process)",
    )
    p.add_argument("--dxlink-url", default=None, help=argparse.SUPPRESS)  # tests: a sim server
    p.add_argument("--sim-seed", type=int, default=7)
    p.add_argument("--batch-rows", type=int, default=5000, help="bars per write (default 5000)")
    p.add_argument("--no-resume", action="store_true", help="do not ask what is stored")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def run_backfill(args: argparse.Namespace) -> int:
    """``ttfast backfill`` from parsed arguments; the exit status."""
    import os

    from ttfast._run import run as run_loop
    from ttfast.worker.config import have_credentials

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    logging.getLogger("picows").setLevel(logging.WARNING)  # a line per connection

    def fail(msg: str) -> int:
        print(f"ttfast backfill: error: {msg}", file=sys.stderr)
        return 2

    if args.influx_token_argv is not None:
        return fail(
            "the InfluxDB token is not taken on the command line: set it in the environment "
            "($INFLUX_TOKEN, or the variable --influx-token-env names)"
        )
    if bool(args.influx) == bool(args.telegraf):
        return fail("give exactly one of --influx URL (v2) or --telegraf URL (1.x)")
    if args.influx and not (args.influx_org and args.influx_bucket):
        return fail("--influx needs --influx-org and --influx-bucket")
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    if not symbols:
        return fail("no symbols")
    try:
        period_ms(args.period)
        start = parse_time(args.start)
        stop = parse_time(args.stop) if args.stop else None
    except ValueError as exc:
        return fail(str(exc))
    if args.batch_rows < 1:
        return fail("--batch-rows must be >= 1")
    source = args.source or ("dxlink" if have_credentials() else "sim")

    async def main() -> BackfillResult:
        from ttfast.sinks.influx import InfluxV2Sink
        from ttfast.sinks.telegraf import TelegrafSink
        from ttfast.warm import FluxReader, InfluxQLReader

        reader: HistoryReader | None
        sink: TelegrafSink
        if args.influx:
            token = os.environ.get(args.influx_token_env, "")
            sink = InfluxV2Sink(
                args.influx, org=args.influx_org, bucket=args.influx_bucket, token=token
            )
            reader = FluxReader(
                args.influx, org=args.influx_org, bucket=args.influx_bucket, token=token
            )
        else:
            sink = TelegrafSink(args.telegraf, database=args.telegraf_db)
            reader = InfluxQLReader(args.telegraf, args.telegraf_db)
        progress = Progress(stream=None if args.quiet else sys.stderr)
        server: Any = None
        session: Any = None
        try:
            now = lambda: int(time.time() * 1000)  # noqa: E731
            provider: Callable[[], Awaitable[tuple[str, str]]]
            if args.dxlink_url or source == "sim":
                url = args.dxlink_url
                if url is None:
                    from ttfast.sim import DxLinkServer

                    # in-process: no snapshot cap (a real server sends at most so many bars)
                    server = DxLinkServer(seed=args.sim_seed, max_snapshot_rows=_CAPACITY_MAX)
                    url = await server.start()
                    now = lambda: int(server.clock.now_ms())  # noqa: E731
                sim_url: str = url

                async def sim_provider() -> tuple[str, str]:
                    return sim_url, "sim-token"

                dxlink_url: str | None = sim_url
                provider = sim_provider
            else:
                from ttfast.rest import OAuthSession, TastytradeClient

                session = OAuthSession.from_env()
                dxlink_url = None
                provider = TastytradeClient(session).quote_token_provider()
            return await backfill(
                symbols,
                args.period,
                start,
                stop,
                sink=sink,
                reader=None if args.no_resume else reader,
                dxlink_url=dxlink_url,
                token_provider=provider,
                now_ms=now,
                batch_rows=args.batch_rows,
                progress=progress,
            )
        finally:
            await reader.close()
            if server is not None:
                await server.stop()
            if session is not None:
                await session.close()

    try:
        result = run_loop(main())
    except KeyboardInterrupt:
        print("\nttfast backfill: interrupted; run it again to resume", file=sys.stderr)
        return 130
    for r in result.symbols:
        span = (
            f"{_iso(r.first_ms)} .. {_iso(r.last_ms)}" if r.first_ms is not None else "nothing new"
        )
        extra = f" (resumed at {_iso(r.start_ms)})" if r.resumed else ""
        if r.truncated_before is not None:
            extra += f" (server sent nothing before {_iso(r.truncated_before)})"
        if r.error:
            extra += f" ERROR: {r.error}"
        print(f"{r.symbol}: {r.written:,} bars {span}{extra}", file=sys.stderr)
    print(
        f"written {result.lines_sent:,} rejected {result.lines_rejected:,} "
        f"dropped {result.lines_dropped:,}",
        file=sys.stderr,
    )
    return 0 if result.ok else 1


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%MZ")
