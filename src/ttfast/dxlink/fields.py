"""The dxLink event field catalogue (spec dxlink.md §5): every known field name per event type,
in Java's canonical order with ``eventType`` first.

Pure data, shared by the client (the fields it requests by default) and the local server (the
fields it knows; unknown requested names are dropped, as tastytrade's server does). Column
dtypes live with the decoder (``ttfast._core.field_kinds``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["CANDLE_FIELDS", "EVENT_FIELDS"]

_FIELDS: dict[str, tuple[str, ...]] = {
    "Quote": (
        "eventType", "eventSymbol", "eventTime", "sequence", "timeNanoPart", "bidTime",
        "bidExchangeCode", "bidPrice", "bidSize", "askTime", "askExchangeCode", "askPrice",
        "askSize",
    ),
    "Trade": (
        "eventType", "eventSymbol", "eventTime", "time", "timeNanoPart", "sequence",
        "exchangeCode", "price", "change", "size", "dayId", "dayVolume", "dayTurnover",
        "tickDirection", "extendedTradingHours",
    ),
    "Summary": (
        "eventType", "eventSymbol", "eventTime", "dayId", "dayOpenPrice", "dayHighPrice",
        "dayLowPrice", "dayClosePrice", "dayClosePriceType", "prevDayId", "prevDayClosePrice",
        "prevDayClosePriceType", "prevDayVolume", "openInterest",
    ),
    "Profile": (
        "eventType", "eventSymbol", "eventTime", "description", "shortSaleRestriction",
        "tradingStatus", "statusReason", "haltStartTime", "haltEndTime", "highLimitPrice",
        "lowLimitPrice", "high52WeekPrice", "low52WeekPrice", "beta", "earningsPerShare",
        "dividendFrequency", "exDividendAmount", "exDividendDayId", "shares", "freeFloat",
    ),
    "Greeks": (
        "eventType", "eventSymbol", "eventTime", "eventFlags", "index", "time", "sequence",
        "price", "volatility", "delta", "gamma", "theta", "rho", "vega",
    ),
    "TheoPrice": (
        "eventType", "eventSymbol", "eventTime", "eventFlags", "index", "time", "sequence",
        "price", "underlyingPrice", "delta", "gamma", "dividend", "interest",
    ),
    "Underlying": (
        "eventType", "eventSymbol", "eventTime", "eventFlags", "index", "time", "sequence",
        "volatility", "frontVolatility", "backVolatility", "callVolume", "putVolume",
        "putCallRatio",
    ),
    "TimeAndSale": (
        "eventType", "eventSymbol", "eventTime", "eventFlags", "index", "time", "timeNanoPart",
        "sequence", "exchangeCode", "price", "size", "bidPrice", "askPrice",
        "exchangeSaleConditions", "tradeThroughExempt", "aggressorSide", "spreadLeg",
        "extendedTradingHours", "validTick", "type", "buyer", "seller",
    ),
    "Series": (
        "eventType", "eventSymbol", "eventTime", "eventFlags", "index", "time", "sequence",
        "expiration", "volatility", "callVolume", "putVolume", "putCallRatio", "forwardPrice",
        "dividend", "interest",
    ),
    "Candle": (
        "eventType", "eventSymbol", "eventTime", "eventFlags", "index", "time", "sequence",
        "count", "open", "high", "low", "close", "volume", "vwap", "bidVolume", "askVolume",
        "impVolatility", "openInterest",
    ),
}  # fmt: skip
_FIELDS["TradeETH"] = _FIELDS["Trade"]

#: Read-only view: event type -> field names.
EVENT_FIELDS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(_FIELDS)
#: Candle fields (``vwap`` in lower case: the upper-case ``VWAP`` of the schema is not served).
CANDLE_FIELDS: Final[tuple[str, ...]] = _FIELDS["Candle"]
