"""``ttfast-worker``: candles in -> MACD(12,26,9) and HMA(20) per symbol -> Redis and Telegraf.

Sources (``--source``):
* ``sim`` (default without credentials): the local dxLink server + seeded market simulator run
  in-process and the real dxLink client connects to it -- the whole pipeline, offline.
* ``dxlink``: a real tastytrade session (OAuth from ``TASTYTRADE_*`` env) -> ``/api-quote-tokens``
  -> the dxLink streamer.
* ``redis``: raw candles published by another process on ``market:CandleEvent:<symbol>``
  (pattern subscription), JSON objects with ``time`` (epoch ms), ``open``..``volume`` and
  optionally ``eventSymbol``, ``eventFlags``, ``sequence``, ``count``. A symbol without a
  period attribute (``SPY``, or only the channel) is taken as the worker's ``--period``.

Bad input never stops the worker: every raw candle (and every new symbol of a dxLink batch) is
validated at the edge; a bad one is skipped, counted per reason (json, shape, symbol, time,
number, field, too_large, error; status line ``malformed N (reason n, ...)``) and logged at most
once per 10 s per reason.

Names: the worker's own period (``--period``) keeps ``snapshot:SPY`` / ``analytics:delta:SPY``;
any other period is named by its full candle symbol (``snapshot:SPY{=1h}``). Payloads carry
``"period"``; Influx points are tagged ``symbol=SPY,period=1h``.

Per batch (never per candle in Python): the batch goes into the ``CandleStore``; the compiled
``IndicatorPipeline`` turns the store's changes into rows and encoded JSON payloads; the sinks
queue them and flush from their own tasks. See README.md, "ttfast-worker".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from ttfast._core import CandleStore, IndicatorPipeline, LineEncoder, PipelineOutput
from ttfast._core.pipeline import normalize_period
from ttfast._util import redact_url
from ttfast.batch import ColumnBatch
from ttfast.sinks.redis import RedisSink
from ttfast.sinks.telegraf import CANDLE_FIELDS, INDICATOR_FIELDS, TelegrafSink

log = logging.getLogger("ttfast.worker")

RAW_PATTERN = "market:CandleEvent:*"
RAW_PREFIX = "market:CandleEvent:"
_HIST_COLORS = ("#26a69a", "#b2dfdb", "#ffcdd2", "#ff5252")

# -- edge validation ------------------------------------------------------------------------
MAX_SYMBOL_LEN = 128  # characters of a (candle) symbol
MAX_MESSAGE_BYTES = 64 * 1024  # one raw candle message
MAX_ABS_VALUE = 1e15  # |open|..|volume|: beyond this the indicators' running sums lose meaning
MAX_TIME_MS = 2**32 * 1000  # bar times in [0, 2**32 s): the range of a dxFeed candle index
MALFORMED_REASONS = ("json", "shape", "symbol", "time", "number", "field", "too_large", "error")
LOG_EVERY = 10.0  # seconds between two log lines about the same kind of bad input

# printable ASCII but space, '"', '\\', '{', '}'; inner spaces allowed (futures options)
_SC = r"!#-\[\]-z|~"
_ATTR = r"[A-Za-z]*=[A-Za-z0-9._-]+"
_SYMBOL_RE = re.compile(rf"[{_SC}](?:[ {_SC}]*[{_SC}])?(?:\{{{_ATTR}(?:,{_ATTR})*\}})?")
# the columns CandleStore.apply() reads (a screened batch keeps these)
_CANDLE_COLUMNS = (
    "eventSymbol",
    "eventFlags",
    "index",
    "time",
    "sequence",
    "count",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "bidVolume",
    "askVolume",
    "impVolatility",
    "openInterest",
)


def validate_symbol(sym: object) -> str | None:
    """None if `sym` is an acceptable (candle) symbol, else why not.

    Accepted: 1..MAX_SYMBOL_LEN printable ASCII characters, no leading/trailing space, no
    ``"``, ``\\``, control or non-ASCII characters, optionally one dxFeed attribute suffix
    ``{=5m,tho=true}`` (``key=value`` pairs, at most one period ``=value``). This keeps every
    name representable in Redis keys, JSON and Influx line protocol.
    """
    if not isinstance(sym, str):
        return f"not a string: {type(sym).__name__}"
    if not sym:
        return "empty symbol"
    if len(sym) > MAX_SYMBOL_LEN:
        return f"symbol longer than {MAX_SYMBOL_LEN} characters"
    if _SYMBOL_RE.fullmatch(sym) is None:
        return f"bad symbol {sym[:40]!r}"
    if sym.count("{=") + sym.count(",=") > 1:
        return f"two periods in {sym!r}"
    return None


def with_period(sym: str, period: str) -> str:
    """`sym` with the period attribute `period` added when it has none (``SPY`` ->
    ``SPY{=5m}``, ``SPY{tho=true}`` -> ``SPY{=5m,tho=true}``)."""
    i = sym.find("{")
    if i < 0:
        return f"{sym}{{={period}}}"
    if "{=" in sym or ",=" in sym:
        return sym
    return f"{sym[: i + 1]}={period},{sym[i + 1 :]}"


class _Bad(Exception):
    """A raw message that is skipped: `reason` is one of MALFORMED_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _RateLimitedLog:
    """At most one warning per key every `interval` seconds; the rest are counted and the
    count is reported with the next line that gets out."""

    def __init__(self, logger: logging.Logger, interval: float = LOG_EVERY) -> None:
        self.log = logger
        self.interval = interval
        self._next: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, key: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next.get(key, 0.0):
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._next[key] = now + self.interval
        n = self._suppressed.pop(key, 0)
        if n:
            msg += " (%d similar suppressed)"
            args = (*args, n)
        self.log.warning(msg, *args)


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
    max_symbols: int = 10_000  # symbols with state (store, pipeline, Redis keys); new ones refused
    idle_discard: float = 0.0  # redis source: forget symbols silent this long (s); 0 = never


@dataclass
class WorkerStats:
    events: int = 0  # raw events received from the source
    batches: int = 0
    rows: int = 0  # indicator rows produced (forming + final + history)
    finals: int = 0  # bars closed and committed
    malformed: int = 0  # messages/rows skipped as bad input (sum of malformed_by_reason)
    malformed_by_reason: dict[str, int] = field(default_factory=dict)  # MALFORMED_REASONS
    symbols_refused: int = 0  # messages/rows of new symbols refused (max_symbols reached)
    symbols_discarded: int = 0  # idle symbols discarded (idle_discard)
    process_ns: int = 0  # time spent in store.apply + pipeline + sink queueing
    last_batch_at: float = 0.0


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


def _make_store(capacity: int, max_symbols: int) -> CandleStore:
    """A CandleStore bounded to `max_symbols` (the worker enforces the bound itself too, so a
    store built without that parameter still works)."""
    cls: Any = CandleStore  # the parameter is new: typed loosely so either stub passes mypy
    try:
        store: CandleStore = cls(capacity, max_symbols=max_symbols)
    except TypeError:
        store = CandleStore(capacity)
    return store


class Worker:
    """The indicator process: a source feeding `on_changes`, the pipeline, the sinks."""

    def __init__(self, cfg: WorkerConfig) -> None:
        period = normalize_period(cfg.period)
        if period is None:
            raise ValueError(f"bad candle period {cfg.period!r}")
        if cfg.max_symbols < 1:
            raise ValueError("max_symbols must be >= 1")
        self.cfg = cfg
        self.stats = WorkerStats()
        self.store = _make_store(cfg.capacity, cfg.max_symbols)
        self.pipeline = IndicatorPipeline(
            publish_raw=cfg.source != "redis", period=cfg.period, max_symbols=cfg.max_symbols
        )
        self._period_attr = period  # dxFeed's form, as in the streamer's SPY{=5m}
        self._warn = _RateLimitedLog(log)
        self._canonical: dict[str, str] = {}  # validated raw symbol -> store symbol
        self._known: set[str] = set()  # store symbols admitted by the dxLink edge
        self._last_seen: dict[str, float] = {}  # store symbol -> monotonic time (idle_discard)
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
        tags = ("symbol", "period")
        self._lp_candle = LineEncoder("candle", tags, CANDLE_FIELDS)
        self._lp_indicators = LineEncoder("indicators", tags, INDICATOR_FIELDS)
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
                    tags = [out.tag_symbols[i] for i in sel]
                    periods = [out.periods[i] for i in sel]
                    cols = out.columns[:, sel]
                    self._write_influx(tags, periods, out.time[sel], cols)
            else:
                self._write_influx(out.tag_symbols, out.periods, out.time, out.columns)
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

    def _write_influx(
        self,
        tags: Sequence[str],
        periods: Sequence[str],
        time_ms: npt.NDArray[np.int64],
        cols: npt.NDArray[np.float64],
    ) -> None:
        """Queue `candle` and `indicators` points tagged symbol=<tag symbol>,period=<period>.

        Encoded here rather than by TelegrafSink.write_rows, whose period tag is one value per
        sink: the rows of one batch can belong to several periods.
        """
        tg = self.telegraf
        assert tg is not None
        enc_c, enc_i = self._lp_candle, self._lp_indicators
        t_ns = np.asarray(time_ms, dtype=np.int64) * 1_000_000
        omitted0 = enc_c.fields_omitted + enc_i.fields_omitted
        written0 = enc_c.rows_written + enc_i.rows_written
        try:
            body = enc_c.encode(t_ns, (tags, periods), tuple(cols[:5]))
            body += enc_i.encode(t_ns, (tags, periods), tuple(cols[5:]))
        except ValueError:  # a tag the edge let through: encode row by row, skip the bad ones
            parts: list[bytes] = []
            for i in range(len(t_ns)):
                try:
                    one = (tags[i : i + 1], periods[i : i + 1])
                    parts.append(enc_c.encode(t_ns[i : i + 1], one, tuple(cols[:5, i : i + 1])))
                    parts.append(enc_i.encode(t_ns[i : i + 1], one, tuple(cols[5:, i : i + 1])))
                except ValueError as exc:
                    self._malformed("error", f"influx row of {tags[i]!r}: {exc}", "pipeline")
            body = b"".join(parts)
        tg.stats.fields_omitted += enc_c.fields_omitted + enc_i.fields_omitted - omitted0
        tg.write_lines(body, enc_c.rows_written + enc_i.rows_written - written0)

    # -- bad input and limits --------------------------------------------------------------
    def _malformed(self, reason: str, detail: str, where: str, n: int = 1) -> None:
        """Count `n` skipped messages/rows under `reason`; log (rate-limited)."""
        st = self.stats
        st.malformed += n
        st.malformed_by_reason[reason] = st.malformed_by_reason.get(reason, 0) + n
        self._warn(
            "malformed:" + reason,
            "%s: malformed input skipped (%s: %s); %d malformed so far",
            where,
            reason,
            detail[:200],
            st.malformed,
        )

    def _refuse(self, sym: str, where: str, n: int = 1) -> None:
        self.stats.symbols_refused += n
        self._warn(
            "limit",
            "%s: symbol limit reached (--max-symbols %d): new symbol %r refused; "
            "%d messages of new symbols refused so far",
            where,
            self.cfg.max_symbols,
            sym,
            self.stats.symbols_refused,
        )

    def _has_room(self, extra: int = 0) -> bool:
        return len(self.store) + extra < self.cfg.max_symbols

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

    def _screen(self, batch: Any) -> Any:
        """The dxLink/sim edge: drop rows whose symbol is invalid or over the symbol limit.

        Symbols seen before are in `_known` (one C-level set check per batch); only a batch
        with a new symbol takes the per-row path.
        """
        syms = batch.column("eventSymbol")
        try:
            if syms is None or self._known.issuperset(syms):
                return batch
        except TypeError:  # an unhashable value in the column: the per-row path sorts it out
            pass
        lst = syms.tolist()
        keep = np.ones(len(lst), dtype=bool)
        verdict: dict[Any, str] = {}
        new = 0
        for i, sym in enumerate(lst):
            if isinstance(sym, str) and sym in self._known:
                continue
            key = sym if isinstance(sym, str) else repr(sym)
            v = verdict.get(key)
            if v is None:
                why = validate_symbol(sym)
                if why is not None:
                    v = why
                elif sym in self.store or self._has_room(new):
                    v = ""
                    new += sym not in self.store
                    self._known.add(sym)
                else:
                    v = "limit"
                verdict[key] = v
            if v == "limit":
                self._refuse(key, "dxlink source")
                keep[i] = False
            elif v:
                self._malformed("symbol", v, "dxlink source")
                keep[i] = False
        if keep.all():
            return batch
        cols = {}
        for name in _CANDLE_COLUMNS:
            col = batch.column(name)
            if col is not None:
                cols[name] = col[keep]
        return ColumnBatch("Candle", cols)

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
                batch = worker._screen(batch)
                ch = self._inner.apply(batch)
                worker.stats.events += len(batch)
                try:
                    worker.on_changes(ch)
                except Exception as exc:  # never raise into the streamer's receive path
                    worker._malformed("error", repr(exc), "dxlink source", max(1, len(ch)))
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
        from ttfast.rest import OAuthSession, TastytradeClient

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
                        try:
                            self.ingest_raw(msgs)
                        except Exception as exc:  # ingest_raw handles its own; belt and braces
                            self._malformed("error", repr(exc), "redis source", len(msgs))
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("redis source: %s; reconnecting in %.2fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()

    def _parse_raw(self, m: dict[str, Any]) -> tuple[str, RawCandle]:
        """Validate one pub/sub message; returns (store symbol, candle) or raises _Bad."""
        data = m.get("data")
        if not isinstance(data, (bytes, str)):
            raise _Bad("shape", f"message data is {type(data).__name__}")
        if len(data) > MAX_MESSAGE_BYTES:
            raise _Bad("too_large", f"{len(data)} bytes > {MAX_MESSAGE_BYTES}")
        try:
            c = _raw_decoder.decode(data)
        except msgspec.ValidationError as exc:
            reason = "number" if "out of range" in str(exc) else "shape"
            raise _Bad(reason, str(exc)) from None
        except msgspec.DecodeError as exc:
            raise _Bad("json", str(exc)) from None
        raw = c.eventSymbol
        if not raw:
            ch = m.get("channel")
            try:
                chs = ch.decode() if isinstance(ch, bytes) else ch
            except UnicodeDecodeError:
                raise _Bad("symbol", f"channel {ch!r} is not UTF-8") from None
            if not isinstance(chs, str) or not chs.startswith(RAW_PREFIX):
                raise _Bad("symbol", f"no eventSymbol and channel {ch!r}")
            raw = chs[len(RAW_PREFIX) :]
        sym = self._canonical.get(raw)
        if sym is None:
            why = validate_symbol(raw)
            if why is not None:
                raise _Bad("symbol", why)
            sym = with_period(raw, self._period_attr)
            if len(self._canonical) >= 4 * self.cfg.max_symbols + 1024:
                self._canonical.clear()
            self._canonical[raw] = sym
        if not 0 <= c.time < MAX_TIME_MS:
            raise _Bad("time", f"time {c.time} outside [0, {MAX_TIME_MS}) ms")
        for x in (c.open, c.high, c.low, c.close, c.volume):
            if x is not None and not abs(x) <= MAX_ABS_VALUE:
                raise _Bad("number", f"value {x!r} not finite or beyond {MAX_ABS_VALUE:g}")
        if not (0 <= c.eventFlags <= 0xFF and 0 <= c.sequence <= 0x3FFFFF and 0 <= c.count < 2**63):
            raise _Bad(
                "field",
                f"eventFlags {c.eventFlags}, sequence {c.sequence} or count {c.count} out of range",
            )
        return sym, c

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
                sym, c = self._parse_raw(m)
            except _Bad as bad:
                self._malformed(bad.reason, bad.detail, "redis source")
                continue
            except Exception as exc:  # a bug guard: nothing in a message may stop the source
                self._malformed("error", repr(exc), "redis source")
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
            self._warn(
                "retry",
                "redis source: a batch of %d messages failed (%r); retrying one by one",
                len(rows),
                exc,
            )
            for row in rows:
                try:
                    self._apply_raw([row])
                except Exception as exc1:
                    self.stats.events -= 1
                    self._malformed("error", f"{row[0]}: {exc1!r}", "redis source")

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
        cols: dict[str, npt.NDArray[Any]] = {
            "eventSymbol": np.array([sym for sym, _ in later], dtype=object),
            "time": np.array([c.time for c in rs], dtype=np.int64),
            "sequence": np.array([c.sequence for c in rs], dtype=np.int64),
            "count": np.array([c.count for c in rs], dtype=np.int64),
            "eventFlags": np.array([c.eventFlags for c in rs], dtype=np.int64),
        }
        for name in ("open", "high", "low", "close", "volume"):
            cols[name] = np.array([_f(getattr(c, name)) for c in rs], dtype=np.float64)
        self.on_changes(self.store.apply(ColumnBatch("Candle", cols)))

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
            f"symbols {self.pipeline.symbol_count}",
        ]
        parts.append(f"loop lag {self.loop_lag * 1000:.1f}ms")
        if s.last_batch_at:
            parts.append(f"last batch {time.monotonic() - s.last_batch_at:.1f}s ago")
        if s.batches:
            parts.append(f"{s.process_ns / s.batches / 1000:.1f}us/batch")
        if s.malformed:
            why = ", ".join(f"{k} {v}" for k, v in sorted(s.malformed_by_reason.items()))
            parts.append(f"malformed {s.malformed} ({why})")
        if s.symbols_refused:
            parts.append(f"refused {s.symbols_refused}")
        if s.symbols_discarded:
            parts.append(f"discarded {s.symbols_discarded}")
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
        help="candle period, e.g. 1m, 5m, 1h, 1d (default: 5m; env TTFAST_PERIOD). Its "
        "candles keep the plain names (snapshot:SPY, analytics:delta:SPY); candles of any other "
        "period (redis source) are named by their candle symbol (snapshot:SPY{=1h}). Payloads "
        'carry "period"; Influx points are tagged symbol and period',
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
        "--max-symbols",
        type=int,
        metavar="N",
        default=env.get("TTFAST_MAX_SYMBOLS", "10000"),
        help="at most N symbols (candle symbols: SPY{=5m} and SPY{=1h} are two) have state "
        "and Redis keys; messages of further new symbols are refused, counted ('refused' in "
        "the status line) and logged (default: 10000; env TTFAST_MAX_SYMBOLS)",
    )
    p.add_argument(
        "--idle-discard",
        type=float,
        metavar="SECONDS",
        default=env.get("TTFAST_IDLE_DISCARD", "0"),
        help="redis source: forget a symbol (its bars and indicator state, not its Redis "
        "snapshot) after SECONDS without a message, freeing its --max-symbols slot; if it "
        "comes back it starts over from that message, so MACD/HMA warm up again "
        "(default: 0 = never; env TTFAST_IDLE_DISCARD)",
    )
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
    for sym in symbols:
        why = validate_symbol(sym)
        if why is not None or "{" in sym:
            p.error(f"--symbols: {why or f'{sym!r} has attributes (give --period instead)'}")
    if normalize_period(a.period) is None:
        p.error(f"--period: bad candle period {a.period!r} (e.g. 1m, 5m, 1h, 1d)")
    if a.max_symbols < 1:
        p.error("--max-symbols must be >= 1")
    if len(symbols) > a.max_symbols and source != "redis":
        p.error(f"--symbols lists {len(symbols)} symbols, more than --max-symbols {a.max_symbols}")
    if not a.idle_discard >= 0 or math.isinf(a.idle_discard):
        p.error("--idle-discard must be a number of seconds >= 0")
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
        max_symbols=a.max_symbols,
        idle_discard=a.idle_discard,
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
