"""Streaming technical indicators (EMA, WMA, HMA, MACD), bit-exact with TA-Lib 0.8.

Streaming objects: ``update(x)`` commits a closed bar, ``revise(x)`` returns the value of the
still-forming bar without changing any state, ``value`` / ``ready`` / ``count`` describe the
committed state; ``reset()`` and ``rebuild(closes_or_candle_series)`` (after a correction of an
older bar). ``update``/``revise`` raise ``ValueError`` for NaN or infinite input.

Batch twins (``ema``, ``wma``, ``hma``, ``macd``) return float64 arrays, NaN where not ready;
non-finite inputs are skipped (NaN output at that position, state unchanged), counted in
``nan_skipped_total()`` and logged on the ``ttfast.indicators`` logger.

Colours follow TradingView: ``Macd.hist_color`` / ``Macd.color_for(hist)`` and ``Hma.direction``
/ ``Hma.direction_for(value)``. The implementation is compiled (``ttfast._core.indicators``).
"""

from __future__ import annotations

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
    cpu_has_fma,
    ema,
    fma_mode,
    hma,
    macd,
    nan_skipped_total,
    set_fma_mode,
    wma,
)

__all__ = [
    "HIST_COLORS",
    "HMA_DOWN_COLOR",
    "HMA_UP_COLOR",
    "MACD_LINE_COLOR",
    "SIGNAL_LINE_COLOR",
    "Ema",
    "Hma",
    "Macd",
    "Wma",
    "cpu_has_fma",
    "ema",
    "fma_mode",
    "hma",
    "macd",
    "nan_skipped_total",
    "set_fma_mode",
    "wma",
]
