"""ttfast: a fast Python engine for tastytrade market data (dxLink) and trading API.

Hot paths (frame decoding, candle storage, indicators, line protocol) are compiled Cython in
``ttfast._core``; this package is the small typed public API over them.
"""

from ttfast._version import __version__
from ttfast.candles import CandleSeries, CandleStore, Changes, normalize_candle_symbol

__all__ = ["CandleSeries", "CandleStore", "Changes", "__version__", "normalize_candle_symbol"]
