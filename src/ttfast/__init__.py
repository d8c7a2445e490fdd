"""ttfast: a fast Python engine for tastytrade market data (dxLink) and trading API.

Hot paths (frame decoding, candle storage, indicators, line protocol) are compiled Cython in
``ttfast._core``; this package is the small typed public API over them.
"""

from ttfast._core import EventBatch, FeedDecoder, message_type
from ttfast._version import __version__
from ttfast.candles import CandleSeries, CandleStore, Changes, normalize_candle_symbol
from ttfast.dxlink import ConnectionEvent, DxLinkStreamer, StreamState
from ttfast.errors import (
    ApiConnectionError,
    ApiError,
    AuthError,
    DecodeError,
    OrderOutcomeUnknown,
    OrderValidationError,
    RateLimitedError,
    ResponseDecodeError,
    TtfastError,
)
from ttfast.indicators import Ema, Hma, Macd, Wma, ema, hma, macd, wma

__all__ = [
    "ApiConnectionError",
    "ApiError",
    "AuthError",
    "CandleSeries",
    "CandleStore",
    "Changes",
    "ConnectionEvent",
    "DecodeError",
    "DxLinkStreamer",
    "Ema",
    "EventBatch",
    "FeedDecoder",
    "Hma",
    "Macd",
    "OrderOutcomeUnknown",
    "OrderValidationError",
    "RateLimitedError",
    "ResponseDecodeError",
    "StreamState",
    "TtfastError",
    "Wma",
    "__version__",
    "ema",
    "hma",
    "macd",
    "message_type",
    "normalize_candle_symbol",
    "wma",
]
