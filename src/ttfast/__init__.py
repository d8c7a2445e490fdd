"""ttfast: a fast Python engine for tastytrade market data (dxLink) and trading API.

Hot paths (frame decoding, candle storage, indicators, line protocol) are compiled Cython in
``ttfast._core``; this package is the small typed public API over them.
"""

from ttfast._version import __version__
from ttfast.errors import (
    ApiConnectionError,
    ApiError,
    AuthError,
    OrderOutcomeUnknown,
    OrderValidationError,
    RateLimitedError,
    ResponseDecodeError,
    TtfastError,
)

__all__ = [
    "ApiConnectionError",
    "ApiError",
    "AuthError",
    "OrderOutcomeUnknown",
    "OrderValidationError",
    "RateLimitedError",
    "ResponseDecodeError",
    "TtfastError",
    "__version__",
]
