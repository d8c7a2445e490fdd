"""Ring-buffered candle store following dxFeed's eventFlags model (spec dxlink.md §6.6).

Reading `Changes` (one `SymbolChange` per symbol whose visible bars changed in one call)::

    changes = store.apply(batch)
    for ch in changes:
        s = ch.series                     # the live CandleSeries (== store[ch.symbol])
        if ch.history_changed:            # SNAPSHOT, CORRECTED or REMOVED
            rebuild(s, start=ch.first)    # bars at positions < ch.first are unchanged
            continue
        if ch.revised_last:               # the previous last (forming) bar was rewritten;
            revise(s[len(s) - 1 - ch.appended])  # it sits just before the appended bars
        for k in range(len(s) - ch.appended, len(s)):
            append(s[k])                  # appending means the bar before is now final

Example: a store holding bars at 10:00 and 10:05 (forming) gets a batch with two updates of
10:05 and a first update of 10:10 -> one record with flags REVISED_LAST|APPENDED,
appended=1, first=1 (position of 10:05). `evicted` counts bars dropped at the old end by the
capacity (positions shift by that much; `first` is already a position in the new series).

Definitions (per call, per symbol; "previous last" = the newest bar before the call):
* SNAPSHOT: a snapshot became visible and replaced the series; then appended == len(series)
  and first == 0.
* REVISED_LAST: a bar was written with the previous last bar's index.
* APPENDED / appended: number of bars now newer than the previous last bar.
* CORRECTED: a bar older than the previous last bar was written (replaced or inserted).
* REMOVED / removed: bars deleted by REMOVE_EVENT (removals of absent bars do not count).
* EVICTED / evicted: bars dropped because the series was at capacity (including a new bar that
  was older than every stored bar of a full series).
* first: position (0 = oldest) of the oldest written/removed index in the final series.

The dxFeed index is unsigned 64-bit: its top 32 bits (seconds) pass 2**31 on 2038-01-19, so
indices of later bars exceed 2**63 (a Java long shows them negative); bars stay in time order
from 1970-01-01 to 2106-02-07 (times in [0, 2**32 * 1000) ms).
"""

from collections.abc import Iterator
from typing import Any, NamedTuple, final

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

from ttfast.batch import Batch

CHANGE_SNAPSHOT: int
CHANGE_REVISED_LAST: int
CHANGE_APPENDED: int
CHANGE_CORRECTED: int
CHANGE_REMOVED: int
CHANGE_EVICTED: int

class CandleBar(NamedTuple):
    """One bar of a CandleSeries (NaN where the feed did not send a value)."""

    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    count: int  # type: ignore[assignment]  # the dxFeed field name shadows tuple.count
    vwap: float
    bid_volume: float
    ask_volume: float
    imp_volatility: float
    open_interest: float
    index: int  # type: ignore[assignment]  # the dxFeed field name shadows tuple.index

def candle_index(time_ms: int, sequence: int = 0) -> int:
    """dxFeed Candle index (unsigned, < 2**64) of a bar starting at `time_ms` (epoch ms) with
    `sequence`; ValueError unless 0 <= time_ms < 2**32 * 1000 and 0 <= sequence < 2**22."""

def candle_time(index: int) -> int:
    """Bar start time (epoch ms) encoded in a dxFeed Candle index (unsigned or its signed
    64-bit form); ValueError outside [-2**63, 2**64)."""

@final
class CandleSeries:
    """The bars of one candle symbol, oldest→newest; a live view owned by a CandleStore.

    Columns are fresh numpy copies taken at access time (they never change under you).
    """

    @property
    def symbol(self) -> str: ...
    @property
    def capacity(self) -> int: ...
    @property
    def ready(self) -> bool:
        """A snapshot completed (or apply_bar fed the series) and no new one is streaming in."""
    @property
    def snip(self) -> bool:
        """The last completed snapshot was truncated by the server (SNAPSHOT_SNIP)."""
    @property
    def in_snapshot(self) -> bool:
        """Between SNAPSHOT_BEGIN and the snapshot becoming visible."""
    @property
    def resuming(self) -> bool:
        """In resume mode (CandleStore.resume): a snapshot that begins merges."""
    @property
    def pending(self) -> int:
        """Received events not visible yet (snapshot in progress or TX_PENDING group)."""
    @property
    def last(self) -> CandleBar | None:
        """The newest (usually still forming) bar, or None when empty."""
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...
    def __getitem__(self, i: int) -> CandleBar: ...
    def __iter__(self) -> Iterator[CandleBar]: ...
    def position(self, time_ms: int) -> int:
        """Position of the bar starting at time_ms, or -1."""
    @property
    def time(self) -> npt.NDArray[np.int64]: ...
    @property
    def index(self) -> npt.NDArray[np.uint64]:
        """The dxFeed indices (unsigned: past 2038 they exceed 2**63)."""
    @property
    def count(self) -> npt.NDArray[np.int64]: ...
    @property
    def open(self) -> npt.NDArray[np.float64]: ...
    @property
    def high(self) -> npt.NDArray[np.float64]: ...
    @property
    def low(self) -> npt.NDArray[np.float64]: ...
    @property
    def close(self) -> npt.NDArray[np.float64]: ...
    @property
    def volume(self) -> npt.NDArray[np.float64]: ...
    @property
    def vwap(self) -> npt.NDArray[np.float64]: ...
    @property
    def bid_volume(self) -> npt.NDArray[np.float64]: ...
    @property
    def ask_volume(self) -> npt.NDArray[np.float64]: ...
    @property
    def imp_volatility(self) -> npt.NDArray[np.float64]: ...
    @property
    def open_interest(self) -> npt.NDArray[np.float64]: ...
    def columns(self) -> dict[str, npt.NDArray[Any]]: ...

@disjoint_base
class SymbolChange:
    """What one apply()/apply_bar() call changed for one symbol (see the module docstring)."""

    @property
    def symbol(self) -> str: ...
    @property
    def series(self) -> CandleSeries: ...
    @property
    def flags(self) -> int: ...
    @property
    def appended(self) -> int: ...
    @property
    def removed(self) -> int: ...
    @property
    def evicted(self) -> int: ...
    @property
    def first(self) -> int: ...
    @property
    def snapshot(self) -> bool: ...
    @property
    def revised_last(self) -> bool: ...
    @property
    def corrected(self) -> bool: ...
    @property
    def history_changed(self) -> bool:
        """SNAPSHOT, CORRECTED or REMOVED: recompute from `first`."""
    def as_tuple(self) -> tuple[int, int, int, int, int]:
        """(flags, appended, removed, evicted, first)."""

@final
class Changes:
    """Per-symbol summary of one CandleStore call, in first-touched symbol order."""

    @property
    def series(self) -> list[CandleSeries]: ...
    @property
    def symbols(self) -> list[str]: ...
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...
    def __iter__(self) -> Iterator[SymbolChange]: ...
    def __contains__(self, symbol: object, /) -> bool: ...
    def __getitem__(self, key: int | str) -> SymbolChange: ...
    def get(self, symbol: str, default: SymbolChange | None = None) -> SymbolChange | None: ...

@final
class CandleStore:
    """Per-symbol fixed-capacity candle series built from dxLink Candle batches (spec §6.6).

    Memory is bounded: `capacity` bars (and as many held TX_PENDING events) per symbol, at most
    `max_symbols` symbols (new ones beyond are refused and counted; discard() frees a slot).
    """

    def __new__(cls, capacity: int = 4096, *, max_symbols: int = 10000) -> CandleStore: ...
    @property
    def capacity(self) -> int: ...
    @property
    def max_symbols(self) -> int: ...
    @property
    def events(self) -> int: ...
    @property
    def evicted(self) -> int: ...
    @property
    def removed(self) -> int: ...
    @property
    def rejected(self) -> int: ...
    @property
    def snapshots(self) -> int: ...
    @property
    def pending_dropped(self) -> int:
        """Held TX_PENDING events dropped because a symbol's hold had `capacity` events."""
    @property
    def symbols_refused(self) -> int:
        """New symbols refused at max_symbols (each call counts a refused symbol once)."""
    @property
    def rows_refused(self) -> int:
        """Rows skipped because their symbol was refused."""
    def apply(self, batch: Batch) -> Changes:
        """Apply a Candle batch in order (its length is its eventSymbol column's). Rows are
        skipped and counted in `rejected` when the symbol is not a non-empty str, eventFlags is
        not in [0, 2**31), or (no index column) sequence is not in [0, 2**22) or time not in
        [0, 2**32 * 1000); in `rows_refused` when their new symbol is refused at max_symbols.
        The other rows are applied. ValueError when the batch is not a Candle batch, has no
        eventSymbol column, neither index nor time, or a column of another length."""
    def apply_bar(
        self,
        symbol: str,
        time: int,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        *,
        count: int = 0,
        vwap: float = ...,
        sequence: int = 0,
    ) -> Changes:
        """One bar from a non-dxLink source (as a flags-0 event); marks the series ready.

        ValueError for an empty symbol, time outside [0, 2**32 * 1000) or sequence outside
        [0, 2**22); a new symbol refused at max_symbols changes nothing (counted).
        """
    def __getitem__(self, symbol: str, /) -> CandleSeries: ...
    def get(self, symbol: str, default: CandleSeries | None = None) -> CandleSeries | None: ...
    def __contains__(self, symbol: object, /) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[str]: ...
    def symbols(self) -> list[str]: ...
    def resume(self, symbol: str) -> int | None:
        """Prepare `symbol` to be resubscribed from its newest bar (after a reconnect).

        Returns that bar's start time (epoch ms), the fromTime to subscribe with, and puts the
        series in resume mode: a snapshot that begins from now on covers only [that time, now]
        and MERGES into the series instead of replacing it. When it completes, the stored bars
        from its END/SNIP row's index on that it does not hold are removed, its bars are
        written over the stored ones by index and older bars stay; Changes reports that like
        live events (REVISED_LAST, APPENDED, CORRECTED, REMOVED, EVICTED), never SNAPSHOT, and
        the series stays `ready`. Returns None and ends resume mode when there is nothing to
        resume from (unknown symbol, not `ready`, no bars): the next snapshot replaces.
        """
    def cancel_resume(self, symbol: str) -> None:
        """End resume mode: the next snapshot replaces the series again (a snapshot already
        being received keeps the mode it began in)."""
    def discard(self, symbol: str) -> bool:
        """Forget a symbol (frees its memory and its max_symbols slot); True if it was there."""
    def stats(self) -> dict[str, int]:
        """symbols, events, evicted, removed, rejected, snapshots, pending_dropped,
        symbols_refused, rows_refused."""
