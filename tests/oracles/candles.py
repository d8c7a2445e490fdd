"""Pure-Python oracle of ttfast's CandleStore: spec dxlink.md §6.6 written literally.

The only additions to the spec's pseudo-code are the store's documented extras:
* capacity: `bars` is a bounded map; inserting a NEW index into a full map evicts the smallest
  index (or drops the new bar if it is the smallest); a completed snapshot is applied to an empty
  bounded map in arrival order (the spec's `bars.clear()` then `for x in pending + [e]`).
* `ready` (False from SNAPSHOT_BEGIN until the snapshot is visible, True after; apply_bar sets
  it when no snapshot is streaming), `snip` (the event that ended the snapshot had SNIP set).
* bounds: held TX_PENDING events outside a snapshot are at most `capacity` per symbol (the
  oldest gives way, counted in `pending_dropped`); at most `max_symbols` symbols (rows of a
  refused new symbol are skipped: `rows_refused`, and each call counts each refused symbol once:
  `symbols_refused`); `discard` forgets a symbol.
* bad rows (`valid_row`) are skipped and counted in `rejected`, as are rows without a str symbol.
* the index is an unsigned 64-bit number (plain Python ints here), so bars order by time from
  1970-01-01 up to 2106-02-07, past the signed 2038 overflow.
* Change records, per symbol per call, defined in ttfast/_core/candles.pyi.
* resume mode (`resume`, `cancel_resume`): a snapshot that begins in it merges when it completes
  instead of replacing: the bars from the index of the row that ended it on that the snapshot
  does not hold are removed, then its bars (built exactly like a replacing snapshot's) are
  written over the stored ones, oldest first, like live events; `ready` stays True.
Slow on purpose (dicts, sorting, min()); obviously right is the point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

TX_PENDING, REMOVE_EVENT, SNAPSHOT_BEGIN, SNAPSHOT_END, SNAPSHOT_SNIP = 1, 2, 4, 8, 16
SNAPSHOT, REVISED_LAST, APPENDED, CORRECTED, REMOVED, EVICTED = 1, 2, 4, 8, 16, 32

DOUBLE_FIELDS = (
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
SERIES_DOUBLES = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "bid_volume",
    "ask_volume",
    "imp_volatility",
    "open_interest",
)


MAX_SEQUENCE = (1 << 22) - 1
TIME_LIMIT = (1 << 32) * 1000  # first time (ms) whose seconds no longer fit the index
MAX_FLAGS = (1 << 31) - 1  # eventFlags is a Java int; negative values are garbage


def index_of(time_ms: int, sequence: int = 0) -> int:
    """Spec §6.4 (the unsigned index)."""
    return ((time_ms // 1000) << 32) | ((time_ms % 1000) << 22) | sequence


def valid_row(flags: int, time: int | None = None, sequence: int | None = None) -> bool:
    """A row the store applies: eventFlags in [0, 2**31); when its index is derived from time and
    sequence (no index column), time in [0, 2**32 * 1000) and sequence in [0, 2**22)."""
    if not 0 <= flags <= MAX_FLAGS:
        return False
    if time is not None and not 0 <= time < TIME_LIMIT:
        return False
    return sequence is None or 0 <= sequence <= MAX_SEQUENCE


def time_of(index: int) -> int:
    return (index >> 32) * 1000 + ((index >> 22) & 0x3FF)


@dataclass
class Event:
    symbol: Any
    flags: int
    index: int
    time: int
    count: int = 0
    doubles: tuple[float, ...] = (math.nan,) * 10
    sequence: int | None = None  # sent in the sequence column when there is no index column

    def seq(self) -> int:
        return self.index & MAX_SEQUENCE if self.sequence is None else self.sequence


@dataclass
class Record:
    base_last: int | None
    flags: int = 0
    removed: int = 0
    evicted: int = 0
    min_touched: int | None = None
    all_touched: bool = False


@dataclass
class OracleSeries:
    capacity: int
    bars: dict[int, Event] = field(default_factory=dict)
    pending: list[Event] = field(default_factory=list)
    in_snapshot: bool = False
    snapshot_done: bool = False
    ready: bool = False
    snip: bool = False
    snip_pending: bool = False
    resume: bool = False  # resume mode: a snapshot that begins merges
    merging: bool = False  # the snapshot being received began in resume mode
    merge_lo: int = 0  # index of the row that ended it

    def building(self) -> bool:
        return self.in_snapshot or self.snapshot_done

    def sorted_bars(self) -> list[Event]:
        return [self.bars[k] for k in sorted(self.bars)]


def bounded_write(bars: dict[int, Event], capacity: int, e: Event) -> tuple[str, int]:
    """Insert/replace by index with eager eviction; returns (outcome, evicted)."""
    if e.index in bars:
        bars[e.index] = e
        return "replaced", 0
    if len(bars) >= capacity:
        smallest = min(bars)
        if e.index < smallest:
            return "dropped", 1
        del bars[smallest]
        bars[e.index] = e
        return "inserted", 1
    bars[e.index] = e
    return "inserted", 0


class OracleStore:
    def __init__(self, capacity: int = 4096, max_symbols: int = 10_000) -> None:
        self.capacity = capacity
        self.max_symbols = max_symbols
        self.series: dict[str, OracleSeries] = {}
        self.events = self.evicted = self.removed = self.rejected = self.snapshots = 0
        self.pending_dropped = self.symbols_refused = self.rows_refused = 0
        self._records: dict[str, Record] = {}

    # -- change tracking
    def _track(self, sym: str) -> Record:
        if sym not in self._records:
            bars = self.series[sym].bars
            self._records[sym] = Record(base_last=max(bars) if bars else None)
        return self._records[sym]

    def _visible(self, sym: str, x: Event) -> None:
        s, rec = self.series[sym], self._records[sym]
        if x.flags & REMOVE_EVENT:
            if x.index in s.bars:
                del s.bars[x.index]
                rec.removed += 1
                self.removed += 1
                rec.min_touched = (
                    x.index if rec.min_touched is None else min(rec.min_touched, x.index)
                )
            return
        outcome, ev = bounded_write(s.bars, s.capacity, x)
        rec.evicted += ev
        self.evicted += ev
        if outcome == "dropped":
            return
        if rec.base_last is not None:
            if x.index == rec.base_last:
                rec.flags |= REVISED_LAST
            elif x.index < rec.base_last:
                rec.flags |= CORRECTED
        rec.min_touched = x.index if rec.min_touched is None else min(rec.min_touched, x.index)

    # -- spec §6.6, literally
    def _on_event(self, sym: str, e: Event) -> None:
        s = self.series[sym]
        tx = e.flags & TX_PENDING
        if e.flags & SNAPSHOT_BEGIN:
            s.in_snapshot = True
            s.snapshot_done = False
            s.pending.clear()
            s.merging = s.resume
            if not s.merging:
                s.ready = False
        if s.in_snapshot and e.flags & (SNAPSHOT_END | SNAPSHOT_SNIP):
            s.in_snapshot = False
            s.snapshot_done = True
            s.snip_pending = bool(e.flags & SNAPSHOT_SNIP)
            s.merge_lo = e.index
        if tx or s.in_snapshot:
            if not s.building() and len(s.pending) >= s.capacity:
                del s.pending[0]  # a held transaction keeps its newest `capacity` events
                self.pending_dropped += 1
            s.pending.append(e)
            return
        rec = self._track(sym)
        if s.snapshot_done:
            fresh: dict[int, Event] = {}
            removed = evicted = 0
            for x in [*s.pending, e]:
                if x.flags & REMOVE_EVENT:
                    if x.index in fresh:
                        del fresh[x.index]
                        removed += 1
                else:
                    evicted += bounded_write(fresh, s.capacity, x)[1]
            if s.merging:
                self._merge(sym, fresh, evicted)
                return
            s.bars = fresh
            s.pending.clear()
            s.snapshot_done = False
            s.ready = True
            s.snip = s.snip_pending
            rec.flags |= SNAPSHOT
            rec.base_last = None
            rec.all_touched = True
            rec.removed += removed
            rec.evicted += evicted
            self.removed += removed
            self.evicted += evicted
            self.snapshots += 1
            return
        for x in [*s.pending, e]:
            self._visible(sym, x)
        s.pending.clear()

    def _merge(self, sym: str, fresh: dict[int, Event], evicted: int) -> None:
        """A completed resume-mode snapshot `fresh` merges into the stored bars."""
        s, rec = self.series[sym], self._records[sym]
        for k in sorted(s.bars):
            if k >= s.merge_lo and k not in fresh:
                del s.bars[k]
                rec.removed += 1
                self.removed += 1
                rec.min_touched = k if rec.min_touched is None else min(rec.min_touched, k)
        rec.evicted += evicted
        self.evicted += evicted
        for k in sorted(fresh):
            self._visible(sym, fresh[k])
        s.pending.clear()
        s.snapshot_done = False
        s.merging = False
        s.ready = True

    def _finish(self) -> list[tuple[str, tuple[int, int, int, int, int]]]:
        out = []
        for sym, rec in self._records.items():
            keys = sorted(self.series[sym].bars)
            if rec.base_last is None:
                appended = len(keys)
            else:
                appended = sum(1 for k in keys if k > rec.base_last)
            if rec.all_touched:
                first = 0
            elif rec.min_touched is not None:
                first = sum(1 for k in keys if k < rec.min_touched)
            else:
                first = len(keys)
            flags = rec.flags
            flags |= APPENDED if appended else 0
            flags |= REMOVED if rec.removed else 0
            flags |= EVICTED if rec.evicted else 0
            if flags:
                out.append((sym, (flags, appended, rec.removed, rec.evicted, first)))
        self._records = {}
        return out

    # -- public surface mirroring CandleStore
    def apply_events(
        self, events: list[Event], *, derived_index: bool = False
    ) -> list[tuple[str, tuple[int, int, int, int, int]]]:
        """Apply rows in order; `derived_index`: the batch has no index column, so the index is
        computed from time and sequence (and those must be in range)."""
        refused: set[str] = set()
        for e in events:
            if derived_index:
                if not valid_row(e.flags, e.time, e.seq()):
                    self.rejected += 1
                    continue
                e = Event(e.symbol, e.flags, index_of(e.time, e.seq()), e.time, e.count, e.doubles)
            elif not valid_row(e.flags):
                self.rejected += 1
                continue
            if not isinstance(e.symbol, str) or not e.symbol:
                self.rejected += 1
                continue
            if e.symbol not in self.series:
                if len(self.series) >= self.max_symbols:
                    self.rows_refused += 1
                    if e.symbol not in refused:
                        refused.add(e.symbol)
                        self.symbols_refused += 1
                    continue
                self.series[e.symbol] = OracleSeries(self.capacity)
            self._on_event(e.symbol, e)
            self.events += 1
        return self._finish()

    def apply_bar(
        self, symbol: str, time: int, o: float, h: float, lo: float, c: float, v: float
    ) -> list[tuple[str, tuple[int, int, int, int, int]]]:
        d = (o, h, lo, c, v) + (math.nan,) * 5
        out = self.apply_events([Event(symbol, 0, index_of(time), time, 0, d)])
        s = self.series.get(symbol)
        if s is not None and not s.building():
            s.ready = True
        return out

    def resume(self, symbol: str) -> int | None:
        s = self.series.get(symbol)
        if s is None:
            return None
        s.resume = s.ready and bool(s.bars)
        return s.bars[max(s.bars)].time if s.resume else None

    def cancel_resume(self, symbol: str) -> None:
        s = self.series.get(symbol)
        if s is not None:
            s.resume = False

    def discard(self, symbol: str) -> bool:
        return self.series.pop(symbol, None) is not None

    def columns(self, symbol: str) -> dict[str, list[Any]]:
        bars = self.series[symbol].sorted_bars()
        cols: dict[str, list[Any]] = {
            "index": [b.index for b in bars],
            "time": [b.time for b in bars],
            "count": [b.count for b in bars],
        }
        for j, name in enumerate(SERIES_DOUBLES):
            cols[name] = [b.doubles[j] for b in bars]
        return cols

    def pending_count(self, symbol: str) -> int:
        return len(self.series[symbol].pending)


def events_to_columns(
    events: list[Event],
    *,
    with_index: bool = True,
    with_time: bool = True,
    with_flags: bool = True,
    with_count: bool = True,
    doubles: tuple[str, ...] = DOUBLE_FIELDS,
) -> dict[str, list[Any]]:
    """Columns of a Candle batch carrying these events (absent columns left out)."""
    cols: dict[str, list[Any]] = {"eventSymbol": [e.symbol for e in events]}
    if with_flags:
        cols["eventFlags"] = [e.flags for e in events]
    if with_index:
        cols["index"] = [e.index for e in events]
    if with_time:
        cols["time"] = [e.time for e in events]
    if not with_index:
        cols["sequence"] = [e.seq() for e in events]
    if with_count:
        cols["count"] = [e.count for e in events]
    for j, name in enumerate(DOUBLE_FIELDS):
        if name in doubles:
            cols[name] = [e.doubles[j] for e in events]
    return cols
