"""Candles: the compiled CandleStore and the names around it (spec dxlink.md §6).

`CandleStore` keeps the last N bars per candle symbol consistent under dxFeed's eventFlags
model (snapshots newest-first, TX_PENDING groups, removals, forming-bar updates, and the resume
mode that merges a resubscription's snapshot); it applies any `ttfast.Batch` of Candle events
(the decoder's EventBatch, or a `ttfast.ColumnBatch` for non-dxLink sources).
`normalize_candle_symbol` lives in `ttfast.symbols`, the one candle-symbol parser.
"""

from __future__ import annotations

from ttfast._core import (
    CHANGE_APPENDED,
    CHANGE_CORRECTED,
    CHANGE_EVICTED,
    CHANGE_REMOVED,
    CHANGE_REVISED_LAST,
    CHANGE_SNAPSHOT,
    CandleBar,
    CandleSeries,
    CandleStore,
    Changes,
    SymbolChange,
    candle_index,
    candle_time,
)
from ttfast.symbols import normalize_candle_symbol

__all__ = [
    "CHANGE_APPENDED",
    "CHANGE_CORRECTED",
    "CHANGE_EVICTED",
    "CHANGE_REMOVED",
    "CHANGE_REVISED_LAST",
    "CHANGE_SNAPSHOT",
    "CandleBar",
    "CandleSeries",
    "CandleStore",
    "Changes",
    "SymbolChange",
    "candle_index",
    "candle_time",
    "normalize_candle_symbol",
]
