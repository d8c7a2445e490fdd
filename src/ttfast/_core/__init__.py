"""The only door to ttfast's compiled modules.

Public modules import compiled code from here, never from ``ttfast._core.<module>`` .so files
directly. Input validation that must happen before a C loop lives in the compiled modules
themselves (they raise clear Python exceptions); this package only re-exports.
"""

from ttfast._core import candles, feed, indicators, lineproto, numparse, pipeline, resp
from ttfast._core.candles import (
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
from ttfast._core.feed import (
    REMOVE_EVENT,
    SNAPSHOT_BEGIN,
    SNAPSHOT_END,
    SNAPSHOT_MODE,
    SNAPSHOT_SNIP,
    TX_PENDING,
    EventBatch,
    FeedDecoder,
    field_kinds,
    message_type,
)
from ttfast._core.indicators import (
    HIST_COLORS,
    HMA_DOWN_COLOR,
    HMA_UP_COLOR,
    MACD_LINE_COLOR,
    SIGNAL_LINE_COLOR,
    Ema,
    Hma,
    Macd,
    Wma,
    ema,
    hma,
    macd,
    wma,
)
from ttfast._core.lineproto import LineEncoder
from ttfast._core.numparse import to_double, to_int64
from ttfast._core.pipeline import (
    COLUMN_CLOSE,
    COLUMN_COUNT,
    COLUMN_HIGH,
    COLUMN_HIST,
    COLUMN_HMA,
    COLUMN_LOW,
    COLUMN_MACD,
    COLUMN_OPEN,
    COLUMN_SIGNAL,
    COLUMN_VOLUME,
    COLUMNS,
    DELTA_CHANNEL_PREFIX,
    KIND_FINAL,
    KIND_FORMING,
    KIND_HISTORY,
    RAW_CHANNEL_PREFIX,
    SNAPSHOT_KEY_PREFIX,
    IndicatorPipeline,
    PipelineOutput,
)
from ttfast._core.resp import pack_command

__all__ = [
    "CHANGE_APPENDED",
    "CHANGE_CORRECTED",
    "CHANGE_EVICTED",
    "CHANGE_REMOVED",
    "CHANGE_REVISED_LAST",
    "CHANGE_SNAPSHOT",
    "COLUMNS",
    "COLUMN_CLOSE",
    "COLUMN_COUNT",
    "COLUMN_HIGH",
    "COLUMN_HIST",
    "COLUMN_HMA",
    "COLUMN_LOW",
    "COLUMN_MACD",
    "COLUMN_OPEN",
    "COLUMN_SIGNAL",
    "COLUMN_VOLUME",
    "DELTA_CHANNEL_PREFIX",
    "HIST_COLORS",
    "HMA_DOWN_COLOR",
    "HMA_UP_COLOR",
    "KIND_FINAL",
    "KIND_FORMING",
    "KIND_HISTORY",
    "MACD_LINE_COLOR",
    "RAW_CHANNEL_PREFIX",
    "REMOVE_EVENT",
    "SIGNAL_LINE_COLOR",
    "SNAPSHOT_BEGIN",
    "SNAPSHOT_END",
    "SNAPSHOT_KEY_PREFIX",
    "SNAPSHOT_MODE",
    "SNAPSHOT_SNIP",
    "TX_PENDING",
    "CandleBar",
    "CandleSeries",
    "CandleStore",
    "Changes",
    "Ema",
    "EventBatch",
    "FeedDecoder",
    "Hma",
    "IndicatorPipeline",
    "LineEncoder",
    "Macd",
    "PipelineOutput",
    "SymbolChange",
    "Wma",
    "candle_index",
    "candle_time",
    "candles",
    "compiled_modules",
    "ema",
    "feed",
    "field_kinds",
    "hma",
    "indicators",
    "lineproto",
    "macd",
    "message_type",
    "numparse",
    "pack_command",
    "pipeline",
    "resp",
    "to_double",
    "to_int64",
    "wma",
]


def compiled_modules() -> dict[str, str]:
    """Map each compiled module name to the path of its shared object (for `ttfast doctor`)."""
    import sys

    out: dict[str, str] = {}
    for name, mod in sorted(sys.modules.items()):
        if name.startswith("ttfast._core.") and mod is not None:
            path = getattr(mod, "__file__", None) or ""
            if path.endswith(".so") or path.endswith(".pyd"):
                out[name] = path
    return out
