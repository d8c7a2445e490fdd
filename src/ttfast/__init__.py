"""ttfast: a fast Python engine for tastytrade market data (dxLink) and trading API.

Hot paths (frame decoding, candle storage, indicators, line protocol) are compiled Cython in
``ttfast._core``; this package is the small typed public API over them.

Decoding, candles, indicators and errors import eagerly (numpy + the compiled core). The
streamer (picows) and the REST client (aiohttp) load on first attribute access, so
``import ttfast`` for decoding or indicators never imports a network library.
"""

from typing import TYPE_CHECKING

from ttfast._core import EventBatch, FeedDecoder, message_type
from ttfast._util import lazy_exports
from ttfast._version import __version__
from ttfast.batch import Batch, ColumnBatch
from ttfast.candles import CandleSeries, CandleStore, Changes, normalize_candle_symbol
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

if TYPE_CHECKING:
    from ttfast.account import AccountStreamer, OrderTracker
    from ttfast.dxlink import ConnectionEvent, DxLinkStreamer, StreamState
    from ttfast.rest import FileTokenStore, OAuthSession, TastytradeClient

__all__ = [
    "AccountStreamer",
    "ApiConnectionError",
    "ApiError",
    "AuthError",
    "Batch",
    "CandleSeries",
    "CandleStore",
    "Changes",
    "ColumnBatch",
    "ConnectionEvent",
    "DecodeError",
    "DxLinkStreamer",
    "Ema",
    "EventBatch",
    "FeedDecoder",
    "FileTokenStore",
    "Hma",
    "Macd",
    "OAuthSession",
    "OrderOutcomeUnknown",
    "OrderTracker",
    "OrderValidationError",
    "RateLimitedError",
    "ResponseDecodeError",
    "StreamState",
    "TastytradeClient",
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

#: Public names whose module imports a network library, loaded on first access.
_LAZY = {
    "AccountStreamer": "ttfast.account",
    "OrderTracker": "ttfast.account",
    "ConnectionEvent": "ttfast.dxlink",
    "DxLinkStreamer": "ttfast.dxlink",
    "StreamState": "ttfast.dxlink",
    "FileTokenStore": "ttfast.rest",
    "OAuthSession": "ttfast.rest",
    "TastytradeClient": "ttfast.rest",
}

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
