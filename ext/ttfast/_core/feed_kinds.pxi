# Part of ttfast._core.feed, included by feed.pyx (not compiled on its own; see
# ext/README.md). The field kind table: dxLink field name -> column kind (spec
# dxlink.md §4.3, §5), the ONLY place that says it; and what an absent value reads as, per kind.

# Column kind of a field unknown to the table: decided per group (numbers -> float64, else object).
DEF KIND_INFER = 4

# Field kind table: the ONE place that maps dxLink field names to column kinds (spec §4.3, §5).
# (event type or NULL for "any type", field name, kind). A typed entry wins over the generic one.
# D = double -> float64; L/I = long/int -> int64; B = bool; S/C/E = string/char/enum -> object.

cdef struct FieldKind:
    const char* etype
    const char* name
    int kind

cdef FieldKind[96] _FIELD_TABLE
cdef int _FIELD_COUNT = 0

cdef void _fk(const char* etype, const char* name, int kind) noexcept:
    global _FIELD_COUNT
    _FIELD_TABLE[_FIELD_COUNT].etype = etype
    _FIELD_TABLE[_FIELD_COUNT].name = name
    _FIELD_TABLE[_FIELD_COUNT].kind = kind
    _FIELD_COUNT += 1

# common to all events
_fk(NULL, b"eventType", COL_OBJECT)
_fk(NULL, b"eventSymbol", COL_OBJECT)
_fk(NULL, b"eventTime", COL_INT64)
_fk(NULL, b"eventFlags", COL_INT64)
_fk(NULL, b"index", COL_INT64)
_fk(NULL, b"time", COL_INT64)
_fk(NULL, b"timeNanoPart", COL_INT64)
_fk(NULL, b"sequence", COL_INT64)
# Quote
_fk(NULL, b"bidTime", COL_INT64)
_fk(NULL, b"bidExchangeCode", COL_OBJECT)
_fk(NULL, b"bidPrice", COL_DOUBLE)
_fk(NULL, b"bidSize", COL_DOUBLE)
_fk(NULL, b"askTime", COL_INT64)
_fk(NULL, b"askExchangeCode", COL_OBJECT)
_fk(NULL, b"askPrice", COL_DOUBLE)
_fk(NULL, b"askSize", COL_DOUBLE)
# Trade / TradeETH
_fk(NULL, b"exchangeCode", COL_OBJECT)
_fk(NULL, b"price", COL_DOUBLE)
_fk(NULL, b"change", COL_DOUBLE)
_fk(NULL, b"size", COL_DOUBLE)
_fk(NULL, b"dayId", COL_INT64)
_fk(NULL, b"dayVolume", COL_DOUBLE)
_fk(NULL, b"dayTurnover", COL_DOUBLE)
_fk(NULL, b"tickDirection", COL_OBJECT)
_fk(NULL, b"extendedTradingHours", COL_BOOL)
# Summary (openInterest is a Java long in Summary, a double in Candle)
_fk(NULL, b"dayOpenPrice", COL_DOUBLE)
_fk(NULL, b"dayHighPrice", COL_DOUBLE)
_fk(NULL, b"dayLowPrice", COL_DOUBLE)
_fk(NULL, b"dayClosePrice", COL_DOUBLE)
_fk(NULL, b"dayClosePriceType", COL_OBJECT)
_fk(NULL, b"prevDayId", COL_INT64)
_fk(NULL, b"prevDayClosePrice", COL_DOUBLE)
_fk(NULL, b"prevDayClosePriceType", COL_OBJECT)
_fk(NULL, b"prevDayVolume", COL_DOUBLE)
_fk(b"Summary", b"openInterest", COL_INT64)
_fk(NULL, b"openInterest", COL_DOUBLE)
# Profile
_fk(NULL, b"description", COL_OBJECT)
_fk(NULL, b"shortSaleRestriction", COL_OBJECT)
_fk(NULL, b"tradingStatus", COL_OBJECT)
_fk(NULL, b"statusReason", COL_OBJECT)
_fk(NULL, b"haltStartTime", COL_INT64)
_fk(NULL, b"haltEndTime", COL_INT64)
_fk(NULL, b"highLimitPrice", COL_DOUBLE)
_fk(NULL, b"lowLimitPrice", COL_DOUBLE)
_fk(NULL, b"high52WeekPrice", COL_DOUBLE)
_fk(NULL, b"low52WeekPrice", COL_DOUBLE)
_fk(NULL, b"beta", COL_DOUBLE)
_fk(NULL, b"earningsPerShare", COL_DOUBLE)
_fk(NULL, b"dividendFrequency", COL_DOUBLE)
_fk(NULL, b"exDividendAmount", COL_DOUBLE)
_fk(NULL, b"exDividendDayId", COL_INT64)
_fk(NULL, b"shares", COL_DOUBLE)
_fk(NULL, b"freeFloat", COL_DOUBLE)
# Greeks / TheoPrice / Underlying / Series
_fk(NULL, b"volatility", COL_DOUBLE)
_fk(NULL, b"delta", COL_DOUBLE)
_fk(NULL, b"gamma", COL_DOUBLE)
_fk(NULL, b"theta", COL_DOUBLE)
_fk(NULL, b"rho", COL_DOUBLE)
_fk(NULL, b"vega", COL_DOUBLE)
_fk(NULL, b"underlyingPrice", COL_DOUBLE)
_fk(NULL, b"dividend", COL_DOUBLE)
_fk(NULL, b"interest", COL_DOUBLE)
_fk(NULL, b"frontVolatility", COL_DOUBLE)
_fk(NULL, b"backVolatility", COL_DOUBLE)
_fk(NULL, b"callVolume", COL_DOUBLE)
_fk(NULL, b"putVolume", COL_DOUBLE)
_fk(NULL, b"putCallRatio", COL_DOUBLE)
_fk(NULL, b"optionVolume", COL_DOUBLE)   # requested by TW; whether served is UNVERIFIED
_fk(NULL, b"expiration", COL_INT64)
_fk(NULL, b"forwardPrice", COL_DOUBLE)
# TimeAndSale
_fk(NULL, b"exchangeSaleConditions", COL_OBJECT)
_fk(NULL, b"tradeThroughExempt", COL_OBJECT)
_fk(NULL, b"aggressorSide", COL_OBJECT)
_fk(NULL, b"spreadLeg", COL_BOOL)
_fk(NULL, b"validTick", COL_BOOL)
_fk(NULL, b"type", COL_OBJECT)
_fk(NULL, b"buyer", COL_OBJECT)
_fk(NULL, b"seller", COL_OBJECT)
# Candle
_fk(NULL, b"count", COL_INT64)
_fk(NULL, b"open", COL_DOUBLE)
_fk(NULL, b"high", COL_DOUBLE)
_fk(NULL, b"low", COL_DOUBLE)
_fk(NULL, b"close", COL_DOUBLE)
_fk(NULL, b"volume", COL_DOUBLE)
_fk(NULL, b"vwap", COL_DOUBLE)
_fk(NULL, b"bidVolume", COL_DOUBLE)
_fk(NULL, b"askVolume", COL_DOUBLE)
_fk(NULL, b"impVolatility", COL_DOUBLE)


cdef int _field_kind(bytes etype, bytes name) noexcept:
    """Column kind of `name` in events of type `etype` (KIND_INFER when unknown)."""
    cdef int i
    cdef int generic = KIND_INFER
    cdef const char* e = etype
    cdef const char* n = name
    for i in range(_FIELD_COUNT):
        if _cstr_eq(_FIELD_TABLE[i].name, n, len(name)):
            if _FIELD_TABLE[i].etype == NULL:
                generic = _FIELD_TABLE[i].kind
            elif _cstr_eq(_FIELD_TABLE[i].etype, e, len(etype)):
                return _FIELD_TABLE[i].kind
    return generic


cdef bint _cstr_eq(const char* z, const char* s, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    for i in range(n):
        if z[i] != s[i] or z[i] == 0:
            return False
    return z[n] == 0


_KIND_NAMES = {COL_DOUBLE: "float64", COL_INT64: "int64", COL_BOOL: "bool",
               COL_OBJECT: "object"}


def field_kinds(str event_type=None):
    """The field -> dtype table (``"float64"``, ``"int64"``, ``"bool"``, ``"object"``).

    With `event_type`, the kinds that apply to that type (e.g. Summary's int64 openInterest).
    Fields not listed are inferred per group (numbers -> float64, anything else -> object).
    """
    out = {}
    cdef int i
    for i in range(_FIELD_COUNT):
        name = (<bytes>_FIELD_TABLE[i].name).decode()
        if _FIELD_TABLE[i].etype == NULL:
            out.setdefault(name, _KIND_NAMES[_FIELD_TABLE[i].kind])
    if event_type is not None:
        for i in range(_FIELD_COUNT):
            if _FIELD_TABLE[i].etype != NULL and \
                    (<bytes>_FIELD_TABLE[i].etype).decode() == event_type:
                out[(<bytes>_FIELD_TABLE[i].name).decode()] = \
                    _KIND_NAMES[_FIELD_TABLE[i].kind]
    return out


# ---------------------------------------------------------------------------------------------
# What an absent value reads as, per column kind: the ONE place that says it.
#
# A value is absent when a FULL-format event lacks the key (TAG_MISSING). In string columns and
# columns of unknown kind, JSON null (TAG_NULL) reads the same; float64/int64/bool columns never
# hold null (the parser rejects it as a semantic error), so only TAG_MISSING is tested there.
#
#   float64 -> NaN     int64 -> 0 (int64 has no NaN)     bool -> False     object (str) -> None
#   unknown kind: NaN when the column reads as float64, None when it reads as object
#
# Every read of a parsed value goes through these: the numpy columns (EventBatch._build and its
# _fill_* helpers, _materialize) and EventBatch.to_dicts.

DEF ABSENT_I64 = 0


cdef inline double _absent_f64() noexcept nogil:
    return NAN


cdef inline double _f64_at(const int64_t* slots, const uint8_t* tags,
                           Py_ssize_t s) noexcept nogil:
    return (<const double*>slots)[s] if tags[s] != TAG_MISSING else _absent_f64()


cdef inline int64_t _i64_at(const int64_t* slots, const uint8_t* tags,
                            Py_ssize_t s) noexcept nogil:
    return slots[s] if tags[s] != TAG_MISSING else ABSENT_I64


cdef inline bint _bool_at(const uint8_t* tags, Py_ssize_t s) noexcept nogil:
    return tags[s] == TAG_TRUE           # TAG_FALSE and absent read as False


cdef inline bint _absent_obj(uint8_t t) noexcept nogil:
    """True when an object-column value reads as None."""
    return t == TAG_NULL or t == TAG_MISSING
