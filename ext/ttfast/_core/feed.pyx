# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""dxLink FEED_DATA decoder: one frame (bytes/str) -> typed columns per event group.

What it does: parses the whole FEED_DATA message in one C pass (COMPACT ``["Type", [v...]]``
groups and FULL ``{...}`` objects), validating it as strict JSON (RFC 8259, UTF-8), and stores
every value in an 8-byte slot (double / int64 / reference into the frame bytes) plus a tag byte.
No Python object is created per value at decode time: numpy columns (and the str objects of
string columns) are built lazily, once, when a column is first asked for.

What it may touch: numpy, ``ttfast._core.numparse`` / ``common`` (cimports), and the leaf
module ``ttfast.errors`` (dependency-free exception classes). Nothing else of the shell.

The field kind table (dxLink field name -> column dtype, spec dxlink.md §5) lives ONLY here:
``_FIELD_TABLE`` below.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_CheckExact
from cpython.unicode cimport PyUnicode_CheckExact
from cpython.object cimport PyTypeObject
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t
from libc.stdlib cimport malloc, realloc, free, calloc
from libc.string cimport memcmp, memcpy, memset, memchr
from libc.math cimport NAN, INFINITY
cimport cython
cimport numpy as cnp
import numpy as np
import array as _array
import json
import logging

from ttfast._core.numparse cimport (scan_number, parse_double, parse_int64, NP_OK,
                                     fast_double, fast_int64)
from ttfast._core.common cimport COL_DOUBLE, COL_INT64, COL_BOOL, COL_OBJECT

from ttfast.errors import DecodeError

cnp.import_array()

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    object PyUnicode_FromKindAndData(int kind, const void* buf, Py_ssize_t size)
    Py_ssize_t PyUnicode_GET_LENGTH(PyObject* o)
    void* PyUnicode_DATA(PyObject* o)
    int PyUnicode_IS_COMPACT_ASCII(PyObject* o)
    object PyBytes_FromStringAndSize(const char* v, Py_ssize_t n)

__all__ = ["EventBatch", "FeedDecoder", "field_kinds", "message_type"]

_log = logging.getLogger("ttfast.feed")

# Column kind of a field unknown to the table: decided per group (numbers -> float64, else object).
DEF KIND_INFER = 4

# Slot tags (one byte per parsed value).
DEF TAG_F64 = 0       # slot holds a double
DEF TAG_I64 = 1       # slot holds an int64
DEF TAG_TRUE = 2
DEF TAG_FALSE = 3
DEF TAG_NULL = 4
DEF TAG_MISSING = 5   # FULL format: key absent from this event
DEF TAG_STR = 6       # slot = ref to string content: ASCII, no escapes
DEF TAG_STRU = 7      # slot = ref to string content with escapes and/or non-ASCII (validated)
DEF TAG_NUMI = 8      # slot = ref to an integer token (unknown-field columns only)
DEF TAG_NUMF = 9      # slot = ref to a non-integer number token (unknown-field columns only)
DEF TAG_RAW = 10      # slot = ref to a nested array/object (unknown-field columns only)

# Return codes of the value parsers.
DEF OK = 0
DEF SEMANTIC = 1      # well-formed JSON, wrong for the layout: the group can be skipped
DEF SYNTAX = 2        # not JSON: the frame cannot be trusted past this point

DEF MAX_DEPTH = 256
DEF CACHE_SIZE = 1024
DEF CACHE_MAXLEN = 48
DEF NOGIL_BYTES = 65536

# ---------------------------------------------------------------------------------------------
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
# Low-level JSON scanning (no Python objects, nogil).

cdef struct Parser:
    const unsigned char* base
    const unsigned char* p
    const unsigned char* end
    const char* err          # static reason of the first error
    Py_ssize_t erroff        # byte offset of that error
    Py_ssize_t errcol        # column / event of a semantic error (-1 when not applicable)
    Py_ssize_t errrow

# 1 for bytes that end the fast scan of a string: '"', '\\', control chars, non-ASCII
cdef uint8_t[256] _STR_SPECIAL
cdef int _i
for _i in range(256):
    _STR_SPECIAL[_i] = 1 if (_i < 0x20 or _i == 0x22 or _i == 0x5C or _i >= 0x80) else 0


cdef inline int _fail(Parser* ps, const unsigned char* at, const char* why, int code) noexcept nogil:
    if ps.err == NULL:
        ps.err = why
        ps.erroff = at - ps.base
    return code


cdef inline void _ws(Parser* ps) noexcept nogil:
    cdef const unsigned char* q = ps.p
    while q < ps.end and (q[0] == 0x20 or q[0] == 0x0A or q[0] == 0x0D or q[0] == 0x09):
        q += 1
    ps.p = q


cdef inline int _hexval(unsigned char c) noexcept nogil:
    if c >= c'0' and c <= c'9':
        return c - c'0'
    if c >= c'a' and c <= c'f':
        return c - c'a' + 10
    if c >= c'A' and c <= c'F':
        return c - c'A' + 10
    return -1


cdef inline Py_ssize_t _utf8_len(const unsigned char* q, const unsigned char* end) noexcept nogil:
    """Length of the strict UTF-8 sequence at q (lead byte >= 0x80), 0 when invalid."""
    cdef unsigned char c = q[0]
    cdef unsigned char lo = 0x80
    cdef unsigned char hi = 0xBF
    cdef Py_ssize_t n, i
    if c >= 0xC2 and c <= 0xDF:
        n = 2
    elif c >= 0xE0 and c <= 0xEF:
        n = 3
        if c == 0xE0:
            lo = 0xA0
        elif c == 0xED:
            hi = 0x9F      # no encoded surrogates
    elif c >= 0xF0 and c <= 0xF4:
        n = 4
        if c == 0xF0:
            lo = 0x90
        elif c == 0xF4:
            hi = 0x8F
    else:
        return 0
    if end - q < n:
        return 0
    if q[1] < lo or q[1] > hi:
        return 0
    for i in range(2, n):
        if q[i] < 0x80 or q[i] > 0xBF:
            return 0
    return n


cdef inline int _scan_string(Parser* ps, Py_ssize_t* start, Py_ssize_t* length,
                             bint* plain) noexcept nogil:
    """ps.p at an opening quote: validate the string, give its content span, move past it."""
    cdef const unsigned char* q = ps.p + 1
    cdef const unsigned char* end = ps.end
    cdef unsigned char c
    cdef Py_ssize_t n
    plain[0] = True
    start[0] = q - ps.base
    while True:
        while q < end and not _STR_SPECIAL[q[0]]:
            q += 1
        if q >= end:
            return _fail(ps, ps.p, "unterminated string", SYNTAX)
        c = q[0]
        if c == 0x22:
            break
        if c < 0x20:
            return _fail(ps, q, "control character in string", SYNTAX)
        plain[0] = False
        if c == 0x5C:
            q += 1
            if q >= end:
                return _fail(ps, ps.p, "unterminated string", SYNTAX)
            c = q[0]
            if c == c'"' or c == c'\\' or c == c'/' or c == c'b' or c == c'f' or c == c'n' \
                    or c == c'r' or c == c't':
                q += 1
            elif c == c'u':
                if end - q < 5 or _hexval(q[1]) < 0 or _hexval(q[2]) < 0 or \
                        _hexval(q[3]) < 0 or _hexval(q[4]) < 0:
                    return _fail(ps, q - 1, "invalid \\u escape in string", SYNTAX)
                q += 5
            else:
                return _fail(ps, q - 1, "invalid escape in string", SYNTAX)
        else:
            n = _utf8_len(q, end)
            if n == 0:
                return _fail(ps, q, "invalid UTF-8 in string", SYNTAX)
            q += n
    length[0] = (q - ps.base) - start[0]
    ps.p = q + 1
    return OK


cdef inline bint _lit(Parser* ps, const char* word, Py_ssize_t n) noexcept nogil:
    if ps.end - ps.p >= n and memcmp(ps.p, word, n) == 0:
        ps.p += n
        return True
    return False


cdef int _skip_value(Parser* ps, int depth) noexcept nogil:
    """Validate and skip any JSON value at ps.p (whitespace already skipped)."""
    cdef Py_ssize_t st, ln
    cdef bint plain, isint
    cdef const unsigned char* q = ps.p
    cdef unsigned char c
    cdef int rc
    if q >= ps.end:
        return _fail(ps, q, "unexpected end of frame", SYNTAX)
    c = q[0]
    if c == 0x22:
        return _scan_string(ps, &st, &ln, &plain)
    if c == c'-' or (c >= c'0' and c <= c'9'):
        if scan_number(<const char*>q, <const char*>ps.end, &ln, &isint) != NP_OK:
            return _fail(ps, q, "invalid number", SYNTAX)
        ps.p = q + ln
        return OK
    if c == c't':
        return OK if _lit(ps, b"true", 4) else _fail(ps, q, "invalid literal", SYNTAX)
    if c == c'f':
        return OK if _lit(ps, b"false", 5) else _fail(ps, q, "invalid literal", SYNTAX)
    if c == c'n':
        return OK if _lit(ps, b"null", 4) else _fail(ps, q, "invalid literal", SYNTAX)
    if c == c'[' or c == c'{':
        if depth >= MAX_DEPTH:
            return _fail(ps, q, "nesting too deep", SYNTAX)
        ps.p += 1
        _ws(ps)
        if ps.p < ps.end and ps.p[0] == (c'}' if c == c'{' else c']'):
            ps.p += 1
            return OK
        while True:
            _ws(ps)
            if c == c'{':
                if ps.p >= ps.end or ps.p[0] != 0x22:
                    return _fail(ps, ps.p, "expected a string key", SYNTAX)
                rc = _scan_string(ps, &st, &ln, &plain)
                if rc != OK:
                    return rc
                _ws(ps)
                if ps.p >= ps.end or ps.p[0] != c':':
                    return _fail(ps, ps.p, "expected ':'", SYNTAX)
                ps.p += 1
                _ws(ps)
            rc = _skip_value(ps, depth + 1)
            if rc != OK:
                return rc
            _ws(ps)
            if ps.p >= ps.end:
                return _fail(ps, ps.p, "unexpected end of frame", SYNTAX)
            if ps.p[0] == c',':
                ps.p += 1
                continue
            if ps.p[0] == (c'}' if c == c'{' else c']'):
                ps.p += 1
                return OK
            return _fail(ps, ps.p, "expected ',' or a closing bracket", SYNTAX)
    return _fail(ps, q, "unexpected character", SYNTAX)


cdef inline int64_t _ref(Py_ssize_t start, Py_ssize_t length) noexcept nogil:
    return (<int64_t>start << 32) | <int64_t>length


cdef inline Py_ssize_t _rstart(int64_t r) noexcept nogil:
    return <Py_ssize_t>(<uint64_t>r >> 32)


cdef inline Py_ssize_t _rlen(int64_t r) noexcept nogil:
    return <Py_ssize_t>(<uint64_t>r & <uint64_t>0xFFFFFFFFu)


cdef inline int _special_double(const unsigned char* s, Py_ssize_t n, double* out) noexcept nogil:
    if n == 3 and memcmp(s, b"NaN", 3) == 0:
        out[0] = NAN
        return 1
    if n == 8 and memcmp(s, b"Infinity", 8) == 0:
        out[0] = INFINITY
        return 1
    if n == 9 and memcmp(s, b"-Infinity", 9) == 0:
        out[0] = -INFINITY
        return 1
    return 0


cdef int _take_value(Parser* ps, int kind, int64_t* slot, uint8_t* tag) noexcept nogil:
    """Consume one value at ps.p (ws skipped) and store it for a column of `kind`."""
    cdef const unsigned char* q = ps.p
    cdef Py_ssize_t st, ln, ln2
    cdef bint plain, isint
    cdef unsigned char c
    cdef double d
    cdef int64_t v
    cdef int rc
    if q >= ps.end:
        return _fail(ps, q, "unexpected end of frame", SYNTAX)
    c = q[0]
    if c == 0x22:
        rc = _scan_string(ps, &st, &ln, &plain)
        if rc != OK:
            return rc
        if kind == COL_OBJECT or kind == KIND_INFER:
            slot[0] = _ref(st, ln)
            tag[0] = TAG_STR if plain else TAG_STRU
            return OK
        if kind == COL_DOUBLE:
            if plain and _special_double(ps.base + st, ln, &d):
                (<double*>slot)[0] = d
                tag[0] = TAG_F64
                return OK
            return _fail(ps, q, "string in a float64 column (only \"NaN\", \"Infinity\", "
                         "\"-Infinity\" are allowed)", SEMANTIC)
        if kind == COL_INT64:
            # a quoted integer ("123") is accepted: whether dxLink ever quotes longs is UNVERIFIED
            if plain and ln > 0 and scan_number(<const char*>ps.base + st,
                                                <const char*>ps.base + st + ln,
                                                &ln2, &isint) == NP_OK \
                    and isint and ln2 == ln \
                    and parse_int64(<const char*>ps.base + st, ln, &v) == NP_OK:
                slot[0] = v
                tag[0] = TAG_I64
                return OK
            return _fail(ps, q, "string in an int64 column", SEMANTIC)
        return _fail(ps, q, "string in a bool column", SEMANTIC)
    if c == c'-' or (c >= c'0' and c <= c'9'):
        if scan_number(<const char*>q, <const char*>ps.end, &ln, &isint) != NP_OK:
            return _fail(ps, q, "invalid number", SYNTAX)
        ps.p = q + ln
        if kind == COL_DOUBLE:
            if parse_double(<const char*>q, ln, &d) != NP_OK:
                return _fail(ps, q, "number out of memory", SEMANTIC)
            (<double*>slot)[0] = d
            tag[0] = TAG_F64
            return OK
        if kind == COL_INT64:
            if not isint:
                return _fail(ps, q, "non-integer number in an int64 column", SEMANTIC)
            if parse_int64(<const char*>q, ln, &v) != NP_OK:
                return _fail(ps, q, "integer out of int64 range", SEMANTIC)
            slot[0] = v
            tag[0] = TAG_I64
            return OK
        if kind == KIND_INFER:
            slot[0] = _ref(q - ps.base, ln)
            tag[0] = TAG_NUMI if isint else TAG_NUMF
            return OK
        if kind == COL_BOOL:
            return _fail(ps, q, "number in a bool column", SEMANTIC)
        return _fail(ps, q, "number in a string column", SEMANTIC)
    if c == c't' or c == c'f':
        if not (_lit(ps, b"true", 4) if c == c't' else _lit(ps, b"false", 5)):
            return _fail(ps, q, "invalid literal", SYNTAX)
        if kind == COL_BOOL or kind == KIND_INFER:
            tag[0] = TAG_TRUE if c == c't' else TAG_FALSE
            slot[0] = 1 if c == c't' else 0
            return OK
        return _fail(ps, q, "boolean in a non-bool column", SEMANTIC)
    if c == c'n':
        if not _lit(ps, b"null", 4):
            return _fail(ps, q, "invalid literal", SYNTAX)
        if kind == COL_OBJECT or kind == KIND_INFER:
            tag[0] = TAG_NULL
            slot[0] = 0
            return OK
        return _fail(ps, q, "null in a numeric/bool column", SEMANTIC)
    if c == c'[' or c == c'{':
        rc = _skip_value(ps, 1)
        if rc != OK:
            return rc
        if kind == KIND_INFER:
            slot[0] = _ref(q - ps.base, ps.p - q)
            tag[0] = TAG_RAW
            return OK
        return _fail(ps, q, "nested array/object as a field value", SEMANTIC)
    return _fail(ps, q, "unexpected character", SYNTAX)


cdef int _grow(_FrameData fd, Py_ssize_t need) noexcept nogil:
    """Make room for `need` more slots; 0 on success, -1 when out of memory."""
    cdef Py_ssize_t cap
    cdef int64_t* s
    cdef uint8_t* t
    if fd.nslots + need <= fd.cap:
        return 0
    cap = fd.cap * 2
    if cap < fd.nslots + need:
        cap = fd.nslots + need
    s = <int64_t*>realloc(fd.slots, cap * sizeof(int64_t))
    if s == NULL:
        return -1
    fd.slots = s
    t = <uint8_t*>realloc(fd.tags, cap)
    if t == NULL:
        return -1
    fd.tags = t
    fd.cap = cap
    return 0


cdef inline const unsigned char* _skip_ws(const unsigned char* q,
                                          const unsigned char* end) noexcept nogil:
    while q < end and (q[0] == 0x20 or q[0] == 0x0A or q[0] == 0x0D or q[0] == 0x09):
        q += 1
    return q


cdef int _parse_compact(Parser* ps, _FrameData fd, const uint8_t* kinds, Py_ssize_t nf,
                        Py_ssize_t* count) noexcept nogil:
    """ps.p at '[' of a COMPACT value array: store every value (row-major) after fd.nslots.

    Returns OK, SEMANTIC (array fully consumed, first error recorded) or SYNTAX.
    The values are committed to fd only by the caller (fd.nslots is not advanced here).

    The scan position lives in a local (ps.p is synced around the out-of-line parsers), so the
    compiler keeps it in a register despite the byte stores to the tags. The frame is a bytes
    object, so ``end[0]`` is a readable NUL: the fast paths may look at ``p[0]`` with p == end
    (NUL matches none of them) and the string scan stops there (NUL is a control character).
    """
    cdef Py_ssize_t k = 0
    cdef Py_ssize_t col = 0
    cdef Py_ssize_t room
    cdef int rc
    cdef int bad = 0
    cdef int kind
    cdef int64_t* slots
    cdef uint8_t* tags
    cdef const unsigned char* p
    cdef const unsigned char* end = ps.end
    cdef const unsigned char* r
    cdef const unsigned char* after = NULL
    cdef unsigned char c
    p = _skip_ws(ps.p + 1, end)
    if p < end and p[0] == c']':
        ps.p = p + 1
        count[0] = 0
        return OK
    slots = fd.slots + fd.nslots
    tags = fd.tags + fd.nslots
    room = fd.cap - fd.nslots
    while True:
        if p[0] <= 0x20:
            p = _skip_ws(p, end)
        if bad:
            ps.p = p
            rc = _skip_value(ps, 1)
            p = ps.p
        else:
            if k >= room:
                if _grow(fd, k + 1) != 0:
                    ps.p = p
                    return _fail(ps, p, "out of memory", SYNTAX)
                slots = fd.slots + fd.nslots
                tags = fd.tags + fd.nslots
                room = fd.cap - fd.nslots
            kind = kinds[col] if nf > 0 else KIND_INFER
            rc = -1
            c = p[0]
            if kind == COL_DOUBLE:
                if c != 0x22:
                    if fast_double(p, end, <double*>(slots + k), &after):
                        tags[k] = TAG_F64
                        p = after
                        rc = OK
                elif end - p >= 5 and memcmp(p, b'"NaN"', 5) == 0:
                    (<double*>(slots + k))[0] = NAN
                    tags[k] = TAG_F64
                    p += 5
                    rc = OK
            elif kind == COL_INT64:
                if c != 0x22 and fast_int64(p, end, slots + k, &after):
                    tags[k] = TAG_I64
                    p = after
                    rc = OK
            elif c == 0x22 and (kind == COL_OBJECT or kind == KIND_INFER):
                r = p + 1
                while not _STR_SPECIAL[r[0]]:       # stops at the NUL at end at the latest
                    r += 1
                if r < end and r[0] == 0x22:
                    slots[k] = _ref(p + 1 - ps.base, r - p - 1)
                    tags[k] = TAG_STR
                    p = r + 1
                    rc = OK
            if rc == -1:
                ps.p = p
                rc = _take_value(ps, kind, slots + k, tags + k)
                p = ps.p
            if rc == SEMANTIC:
                bad = 1
                ps.errcol = col
                ps.errrow = k // nf if nf > 0 else 0
        if rc == SYNTAX:
            return SYNTAX
        k += 1
        col += 1
        if col == nf:
            col = 0
        if p[0] <= 0x20:
            p = _skip_ws(p, end)
        if p >= end:
            ps.p = p
            return _fail(ps, p, "unexpected end of frame", SYNTAX)
        if p[0] == c',':
            p += 1
            continue
        if p[0] == c']':
            p += 1
            break
        ps.p = p
        return _fail(ps, p, "expected ',' or ']'", SYNTAX)
    ps.p = p
    count[0] = k
    return SEMANTIC if bad else OK


# ---------------------------------------------------------------------------------------------
# Python-level objects

# one-character ASCII strings (exchange codes, ...): no hashing, no lookup
cdef PyObject* _CHAR1[128]
cdef list _CHAR1_KEEP = [chr(_i) for _i in range(128)]
for _i in range(128):
    _CHAR1[_i] = <PyObject*>_CHAR1_KEEP[_i]


cdef class _StrCache:
    """Direct-mapped cache of short ASCII str objects keyed by their bytes (symbols repeat)."""

    # (no __cinit__: Cython's generated tp_new argument handling trips UBSan's
    # pointer-overflow check; the decoder allocates the table through _alloc())
    cdef int _alloc(self) except -1:
        self._slots = <void**>calloc(CACHE_SIZE, sizeof(void*))
        if self._slots == NULL:
            raise MemoryError()
        self._mask = CACHE_SIZE - 1
        return 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self._slots != NULL:
            for i in range(CACHE_SIZE):
                Py_XDECREF(<PyObject*>self._slots[i])
            free(self._slots)

    cdef object get(self, const unsigned char* s, Py_ssize_t n):
        cdef uint32_t h = 2166136261u
        cdef Py_ssize_t i
        cdef PyObject* o
        if n == 1 and s[0] < 128:
            return <object>_CHAR1[s[0]]
        if n > CACHE_MAXLEN:
            return PyUnicode_FromKindAndData(1, s, n)
        for i in range(n):
            h = (h ^ s[i]) * 16777619u
        h ^= <uint32_t>n
        o = <PyObject*>self._slots[h & self._mask]
        if o != NULL and PyUnicode_GET_LENGTH(o) == n and \
                memcmp(PyUnicode_DATA(o), s, n) == 0:
            return <object>o
        r = PyUnicode_FromKindAndData(1, s, n)
        Py_INCREF(r)
        Py_XDECREF(o)
        self._slots[h & self._mask] = <void*>r
        return r


cdef inline void _put_utf8(unsigned char** w, uint32_t cp) noexcept nogil:
    cdef unsigned char* o = w[0]
    if cp < 0x80:
        o[0] = <unsigned char>cp
        w[0] = o + 1
    elif cp < 0x800:
        o[0] = <unsigned char>(0xC0 | (cp >> 6))
        o[1] = <unsigned char>(0x80 | (cp & 0x3F))
        w[0] = o + 2
    elif cp < 0x10000:
        o[0] = <unsigned char>(0xE0 | (cp >> 12))
        o[1] = <unsigned char>(0x80 | ((cp >> 6) & 0x3F))
        o[2] = <unsigned char>(0x80 | (cp & 0x3F))
        w[0] = o + 3
    else:
        o[0] = <unsigned char>(0xF0 | (cp >> 18))
        o[1] = <unsigned char>(0x80 | ((cp >> 12) & 0x3F))
        o[2] = <unsigned char>(0x80 | ((cp >> 6) & 0x3F))
        o[3] = <unsigned char>(0x80 | (cp & 0x3F))
        w[0] = o + 4


cdef inline uint32_t _hex4(const unsigned char* s) noexcept nogil:
    return <uint32_t>((_hexval(s[0]) << 12) | (_hexval(s[1]) << 8) | (_hexval(s[2]) << 4)
                      | _hexval(s[3]))


cdef object _decode_str(const unsigned char* s, Py_ssize_t n):
    """Python str of a validated JSON string content (escapes like json.loads, incl. lone
    surrogates, which json.loads keeps)."""
    cdef const unsigned char* q = s
    cdef const unsigned char* end = s + n
    cdef unsigned char* buf
    cdef unsigned char* w
    cdef uint32_t cp, lo
    cdef unsigned char c
    if memchr(s, 0x5C, <size_t>n) == NULL:
        return PyUnicode_DecodeUTF8(<const char*>s, n, NULL)
    buf = <unsigned char*>malloc(n + 1)
    if buf == NULL:
        raise MemoryError()
    w = buf
    try:
        while q < end:
            c = q[0]
            if c != 0x5C:
                w[0] = c
                w += 1
                q += 1
                continue
            c = q[1]
            q += 2
            if c == c'u':
                cp = _hex4(q)
                q += 4
                if 0xD800 <= cp <= 0xDBFF and end - q >= 6 and q[0] == 0x5C and q[1] == c'u':
                    lo = _hex4(q + 2)
                    if 0xDC00 <= lo <= 0xDFFF:
                        cp = 0x10000 + (((cp - 0xD800) << 10) | (lo - 0xDC00))
                        q += 6
                _put_utf8(&w, cp)
            elif c == c'n':
                w[0] = 0x0A
                w += 1
            elif c == c't':
                w[0] = 0x09
                w += 1
            elif c == c'r':
                w[0] = 0x0D
                w += 1
            elif c == c'b':
                w[0] = 0x08
                w += 1
            elif c == c'f':
                w[0] = 0x0C
                w += 1
            else:            # " \ /
                w[0] = c
                w += 1
        return PyUnicode_DecodeUTF8(<const char*>buf, w - buf, "surrogatepass")
    finally:
        free(buf)




@cython.no_gc
cdef class _FrameData:
    """Parsed values of one frame; batches of that frame share it (and keep the bytes alive)."""

    def __dealloc__(self):
        free(self.slots)
        free(self.tags)


cdef class _Layout:
    """Field list of one event type with the column kind of each field."""

    def __init__(self, str event_type, fields):
        cdef list fl = []
        cdef bytearray kinds = bytearray()
        cdef bytes et = event_type.encode("utf-8", "surrogatepass")
        self.index = {}
        for f in fields:
            if not isinstance(f, str):
                raise TypeError(f"field names must be str, got {type(f).__name__}")
            if f in self.index:
                raise ValueError(f"duplicate field {f!r} in the {event_type} layout")
            self.index[f] = len(fl)
            fl.append(f)
            kinds.append(_field_kind(et, (<str>f).encode("utf-8", "surrogatepass")))
        self.event_type = event_type
        self.fields = tuple(fl)
        self.type_utf8 = et
        self.kinds = bytes(kinds)
        self.n = len(fl)
        # row of each field in the batch's numeric / object block (-1: built on its own)
        cdef list pos = []
        self.n_num = 0
        self.n_obj = 0
        for k in kinds:
            if k == COL_OBJECT:
                pos.append(self.n_obj)
                self.n_obj += 1
            elif k == KIND_INFER:
                pos.append(-1)
            else:
                pos.append(self.n_num)
                self.n_num += 1
        self.pos = _array.array("i", pos).tobytes()

    def __repr__(self):
        return f"_Layout({self.event_type!r}, {list(self.fields)!r})"


cdef object _materialize(_FrameData fd, _StrCache cache, Py_ssize_t start, Py_ssize_t stride,
                         Py_ssize_t n, int kind, Py_ssize_t j):
    cdef cnp.npy_intp dims = n
    cdef Py_ssize_t i, s, st, ln
    cdef double* dp
    cdef int64_t* ip
    cdef uint8_t* bp
    cdef PyObject** op
    cdef PyObject* old
    cdef uint8_t t
    cdef const int64_t* slots = fd.slots
    cdef const uint8_t* tags = fd.tags
    cdef const unsigned char* base = <const unsigned char*>fd.base
    cdef double d
    cdef bint numeric
    if kind == COL_DOUBLE:
        arr = cnp.PyArray_SimpleNew(1, &dims, cnp.NPY_FLOAT64)
        dp = <double*>cnp.PyArray_DATA(arr)
        s = start + j
        for i in range(n):
            dp[i] = (<const double*>slots)[s] if tags[s] != TAG_MISSING else NAN
            s += stride
        return arr
    if kind == COL_INT64:
        arr = cnp.PyArray_SimpleNew(1, &dims, cnp.NPY_INT64)
        ip = <int64_t*>cnp.PyArray_DATA(arr)
        s = start + j
        for i in range(n):
            ip[i] = slots[s] if tags[s] != TAG_MISSING else 0
            s += stride
        return arr
    if kind == COL_BOOL:
        arr = cnp.PyArray_SimpleNew(1, &dims, cnp.NPY_BOOL)
        bp = <uint8_t*>cnp.PyArray_DATA(arr)
        s = start + j
        for i in range(n):
            bp[i] = 1 if tags[s] == TAG_TRUE else 0
            s += stride
        return arr
    if kind == KIND_INFER:
        numeric = True
        s = start + j
        for i in range(n):
            t = tags[s]
            if t == TAG_STR:
                st = _rstart(slots[s])
                ln = _rlen(slots[s])
                if not _special_double(base + st, ln, &d):
                    numeric = False
                    break
            elif t == TAG_STRU:
                st = _rstart(slots[s])
                ln = _rlen(slots[s])
                if _decode_str(base + st, ln) not in ("NaN", "Infinity", "-Infinity"):
                    numeric = False
                    break
            elif t != TAG_NUMI and t != TAG_NUMF and t != TAG_MISSING:
                numeric = False
                break
            s += stride
        if numeric:
            arr = cnp.PyArray_SimpleNew(1, &dims, cnp.NPY_FLOAT64)
            dp = <double*>cnp.PyArray_DATA(arr)
            s = start + j
            for i in range(n):
                t = tags[s]
                st = _rstart(slots[s])
                ln = _rlen(slots[s])
                if t == TAG_MISSING:
                    dp[i] = NAN
                elif t == TAG_STR:
                    _special_double(base + st, ln, &dp[i])
                elif t == TAG_STRU:
                    dp[i] = float(_decode_str(base + st, ln))
                elif parse_double(<const char*>base + st, ln, &dp[i]) != NP_OK:
                    raise MemoryError()
                s += stride
            return arr
    # object column (strings, or unknown fields holding non-numeric values)
    arr = cnp.PyArray_SimpleNew(1, &dims, cnp.NPY_OBJECT)
    op = <PyObject**>cnp.PyArray_DATA(arr)
    s = start + j
    for i in range(n):
        t = tags[s]
        st = _rstart(slots[s])
        ln = _rlen(slots[s])
        if t == TAG_STR:
            v = cache.get(base + st, ln)
        elif t == TAG_STRU:
            v = _decode_str(base + st, ln)
        elif t == TAG_NULL or t == TAG_MISSING:
            v = None
        elif t == TAG_TRUE:
            v = True
        elif t == TAG_FALSE:
            v = False
        elif t == TAG_NUMI:
            v = int(PyBytes_FromStringAndSize(<const char*>base + st, ln))
        elif t == TAG_NUMF:
            if parse_double(<const char*>base + st, ln, &d) != NP_OK:
                raise MemoryError()
            v = d
        elif t == TAG_RAW:
            v = json.loads(PyBytes_FromStringAndSize(<const char*>base + st, ln))
        elif t == TAG_F64:
            v = (<const double*>slots)[s]
        else:
            v = slots[s]
        old = op[i]
        Py_INCREF(v)
        op[i] = <PyObject*>v
        Py_XDECREF(old)
        s += stride
    return arr


cdef class _Block:
    """Memory shared by several columns of one batch (the columns are numpy views on it).

    ``nobj`` > 0: the block holds that many object references (NULL = not set), released here.
    """

    # (no __cinit__, see _StrCache; blocks are made by _new_block())
    def __dealloc__(self):
        cdef Py_ssize_t i
        cdef PyObject** p = <PyObject**>self.data
        if p != NULL:
            for i in range(self.nobj):
                Py_XDECREF(p[i])
            free(p)
            self.data = NULL


cdef _Block _new_block(Py_ssize_t items, bint objects):
    """A block of `items` 8-byte items; zeroed (NULL references) when it holds `objects`."""
    cdef _Block b = _Block.__new__(_Block)
    cdef size_t nbytes = <size_t>(items if items > 0 else 1) * 8
    b.data = calloc(nbytes, 1) if objects else malloc(nbytes)
    if b.data == NULL:
        raise MemoryError()
    if objects:
        b.nobj = items
    return b


cdef extern from "numpy/arrayobject.h":
    object _PyArray_NewFromDescr "PyArray_NewFromDescr" (
        PyTypeObject* subtype, PyObject* descr, int nd, cnp.npy_intp* dims,
        cnp.npy_intp* strides, void* data, int flags, PyObject* obj)

cdef cnp.dtype _DT_F64 = cnp.PyArray_DescrFromType(cnp.NPY_FLOAT64)
cdef cnp.dtype _DT_I64 = cnp.PyArray_DescrFromType(cnp.NPY_INT64)
cdef cnp.dtype _DT_BOOL = cnp.PyArray_DescrFromType(cnp.NPY_BOOL)
cdef cnp.dtype _DT_OBJ = cnp.PyArray_DescrFromType(cnp.NPY_OBJECT)
cdef PyTypeObject* _NDARRAY = <PyTypeObject*>cnp.ndarray


cdef inline object _view(cnp.dtype dt, void* data, Py_ssize_t n, _Block base):
    """A C-contiguous 1-D array of `n` items of `dt` at `data` (inside `base`, kept alive)."""
    cdef cnp.npy_intp dims = n
    Py_INCREF(dt)                    # PyArray_NewFromDescr steals the descr reference
    arr = _PyArray_NewFromDescr(_NDARRAY, <PyObject*>dt, 1, &dims, NULL, data,
                                cnp.NPY_ARRAY_CARRAY, NULL)
    cnp.set_array_base(<cnp.ndarray>arr, base)
    return arr


cdef inline void _fill_f64(const int64_t* slots, const uint8_t* tags, Py_ssize_t s,
                           Py_ssize_t stride, Py_ssize_t n, double* dp) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dp[i] = (<const double*>slots)[s] if tags[s] != TAG_MISSING else NAN
        s += stride


cdef inline void _fill_i64(const int64_t* slots, const uint8_t* tags, Py_ssize_t s,
                           Py_ssize_t stride, Py_ssize_t n, int64_t* ip) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        ip[i] = slots[s] if tags[s] != TAG_MISSING else 0
        s += stride


cdef inline void _fill_bool(const uint8_t* tags, Py_ssize_t s, Py_ssize_t stride,
                            Py_ssize_t n, uint8_t* bp) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        bp[i] = 1 if tags[s] == TAG_TRUE else 0
        s += stride


cdef inline object _obj_value(_FrameData fd, _StrCache cache, Py_ssize_t s):
    """The Python value (str or None) of slot s of a string/char/enum column."""
    cdef uint8_t t = fd.tags[s]
    cdef const unsigned char* base = <const unsigned char*>fd.base
    if t == TAG_STR:
        return cache.get(base + _rstart(fd.slots[s]), _rlen(fd.slots[s]))
    if t == TAG_STRU:
        return _decode_str(base + _rstart(fd.slots[s]), _rlen(fd.slots[s]))
    if t == TAG_NULL or t == TAG_MISSING:
        return None
    # the parser stores nothing else in a string column
    raise RuntimeError(f"internal error: value tag {t} in a string column")


cdef int _fill_objects(_FrameData fd, _StrCache cache, Py_ssize_t s, Py_ssize_t stride,
                       Py_ssize_t n, PyObject** op) except -1:
    """Python values of a string/char/enum column (str or None) into op[0..n).

    Same mapping as _obj_value, written out: a call per value here cost +5% instructions on
    the decoder.candle100.columns gate case (gcc does not inline _obj_value).
    """
    cdef Py_ssize_t i
    cdef uint8_t t
    cdef PyObject* old
    cdef const int64_t* slots = fd.slots
    cdef const uint8_t* tags = fd.tags
    cdef const unsigned char* base = <const unsigned char*>fd.base
    for i in range(n):
        t = tags[s]
        if t == TAG_STR:
            v = cache.get(base + _rstart(slots[s]), _rlen(slots[s]))
        elif t == TAG_STRU:
            v = _decode_str(base + _rstart(slots[s]), _rlen(slots[s]))
        elif t == TAG_NULL or t == TAG_MISSING:
            v = None
        else:                        # the parser stores nothing else in a string column
            raise RuntimeError(f"internal error: value tag {t} in a string column")
        old = op[i]
        Py_INCREF(v)
        op[i] = <PyObject*>v
        Py_XDECREF(old)
        s += stride
    return 0


@cython.no_gc
cdef class EventBatch:
    """Events of one type from one FEED_DATA group, as typed columns.

    ``batch["bidPrice"]`` / ``batch.column("bidPrice")`` give numpy arrays (float64 for doubles,
    int64 for long/int fields, bool, object for strings/chars/enums). Columns are built on first
    access and cached; treat them as read-only.
    """

    def __len__(self):
        return self.size

    cpdef object column(self, str name):
        cdef object idx = self._layout.index.get(name)
        cdef Py_ssize_t j
        if idx is None:
            return None
        j = <Py_ssize_t>idx
        if self._cols is None:
            self._cols = [None] * self._layout.n
        c = self._cols[j]
        if c is None:
            c = self._build(j)
            self._cols[j] = c
        return c

    cdef object _build(self, Py_ssize_t j):
        """Build column j: a view on the batch's numeric or object block (allocated once, at
        the first column of that block that is asked for), filled from the frame's slots."""
        cdef _Layout lay = self._layout
        cdef int kind = (<const uint8_t*>PyBytes_AS_STRING(lay.kinds))[j]
        cdef Py_ssize_t row = (<const int*>PyBytes_AS_STRING(lay.pos))[j]
        cdef Py_ssize_t n = self.size
        cdef Py_ssize_t stride = lay.n
        cdef Py_ssize_t s = self._start + j
        cdef const int64_t* slots = self._data.slots
        cdef const uint8_t* tags = self._data.tags
        cdef void* dst
        if kind == KIND_INFER or row < 0:
            return _materialize(self._data, self._cache, self._start, stride, n, kind, j)
        if kind == COL_OBJECT:
            if self._oblock is None:
                self._oblock = _new_block(lay.n_obj * n, True)
            dst = <PyObject**>self._oblock.data + row * n
            _fill_objects(self._data, self._cache, s, stride, n, <PyObject**>dst)
            return _view(_DT_OBJ, dst, n, self._oblock)
        if self._nblock is None:
            self._nblock = _new_block(lay.n_num * n, False)
        dst = <int64_t*>self._nblock.data + row * n
        if kind == COL_DOUBLE:
            _fill_f64(slots, tags, s, stride, n, <double*>dst)
            return _view(_DT_F64, dst, n, self._nblock)
        if kind == COL_INT64:
            _fill_i64(slots, tags, s, stride, n, <int64_t*>dst)
            return _view(_DT_I64, dst, n, self._nblock)
        _fill_bool(tags, s, stride, n, <uint8_t*>dst)
        return _view(_DT_BOOL, dst, n, self._nblock)

    def __getitem__(self, str name):
        c = self.column(name)
        if c is None:
            raise KeyError(name)
        return c

    def __contains__(self, name):
        return name in self._layout.index

    @property
    def columns(self):
        """All columns as a dict field -> numpy array (layout order)."""
        return {f: self.column(f) for f in self.fields}

    def to_dicts(self):
        """One dict per event with Python values (float, int, bool, str or None).

        Read straight from the parsed values: no numpy column is built (except for fields of
        unknown type, which go through their column). Values equal ``column(f).tolist()``.
        """
        cdef _Layout lay = self._layout
        cdef Py_ssize_t n = self.size, nf = lay.n, i, j, s
        cdef const uint8_t* kinds = <const uint8_t*>PyBytes_AS_STRING(lay.kinds)
        cdef const int* pos = <const int*>PyBytes_AS_STRING(lay.pos)
        cdef const int64_t* slots = self._data.slots
        cdef const uint8_t* tags = self._data.tags
        cdef tuple fields = lay.fields
        cdef list lists = [None] * nf        # tolist() of the columns of unknown type
        cdef list out = []
        cdef dict d
        cdef int k
        for j in range(nf):
            if kinds[j] == KIND_INFER or pos[j] < 0:
                lists[j] = self.column(fields[j]).tolist()
        for i in range(n):
            d = {}
            s = self._start + i * nf
            for j in range(nf):
                k = kinds[j]
                if lists[j] is not None:
                    v = (<list>lists[j])[i]
                elif k == COL_DOUBLE:
                    v = (<const double*>slots)[s + j] if tags[s + j] != TAG_MISSING else NAN
                elif k == COL_INT64:
                    v = slots[s + j] if tags[s + j] != TAG_MISSING else 0
                elif k == COL_OBJECT:
                    v = _obj_value(self._data, self._cache, s + j)
                else:
                    v = tags[s + j] == TAG_TRUE
                d[<str>fields[j]] = v
            out.append(d)
        return out

    def __repr__(self):
        return f"<EventBatch {self.event_type} x{self.size} fields={list(self.fields)}>"


# ---------------------------------------------------------------------------------------------
# The decoder

cdef object _MSG_TYPES = {}
for _name in ("FEED_DATA", "FEED_CONFIG", "KEEPALIVE", "SETUP", "AUTH_STATE", "AUTH",
              "CHANNEL_OPENED", "CHANNEL_CLOSED", "CHANNEL_REQUEST", "CHANNEL_CANCEL", "ERROR",
              "FEED_SETUP", "FEED_SUBSCRIPTION"):
    _MSG_TYPES[_name.encode()] = _name


cdef object _frame_bytes(object frame):
    """bytes for the frame (zero-copy for bytes; a copy for mutable buffers; UTF-8 of str)."""
    cdef Py_ssize_t n
    cdef const char* s
    if PyBytes_CheckExact(frame):
        return frame
    if PyUnicode_CheckExact(frame) or isinstance(frame, str):
        try:
            s = PyUnicode_AsUTF8AndSize(frame, &n)
        except UnicodeEncodeError as e:
            raise DecodeError(0, f"frame text is not encodable as UTF-8: {e.reason}") from None
        return PyBytes_FromStringAndSize(s, n)
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return bytes(frame)
    raise TypeError(f"frame must be bytes, bytearray, memoryview or str, "
                    f"not {type(frame).__name__}")


def message_type(frame):
    """The ``type`` of a dxLink message without a full parse (e.g. ``"FEED_DATA"``).

    Fast path when ``type`` is the first key (dxLink servers always put it first); otherwise
    the top-level object is scanned. Raises DecodeError when the frame is not a JSON object
    with a string ``type`` (the rest of the message is not validated).
    """
    cdef object b = _frame_bytes(frame)
    cdef Parser ps
    cdef Py_ssize_t st, ln
    cdef bint plain
    cdef bint is_type
    ps.base = <const unsigned char*>PyBytes_AS_STRING(b)
    ps.p = ps.base
    ps.end = ps.base + PyBytes_GET_SIZE(b)
    ps.err = NULL
    _ws(&ps)
    if ps.p >= ps.end or ps.p[0] != c'{':
        raise DecodeError(ps.p - ps.base, "not a JSON object")
    ps.p += 1
    while True:
        _ws(&ps)
        if ps.p >= ps.end or ps.p[0] != 0x22 or _scan_string(&ps, &st, &ln, &plain) != OK:
            break
        if plain:
            is_type = ln == 4 and memcmp(ps.base + st, b"type", 4) == 0
        else:
            is_type = _decode_str(ps.base + st, ln) == "type"
        _ws(&ps)
        if ps.p >= ps.end or ps.p[0] != c':':
            break
        ps.p += 1
        _ws(&ps)
        if is_type:
            if ps.p >= ps.end or ps.p[0] != 0x22 or _scan_string(&ps, &st, &ln, &plain) != OK:
                raise DecodeError(ps.p - ps.base, "message 'type' is not a string")
            key = PyBytes_FromStringAndSize(<const char*>ps.base + st, ln)
            t = _MSG_TYPES.get(key) if plain else None
            return t if t is not None else _decode_str(ps.base + st, ln)
        if _skip_value(&ps, 1) != OK:
            break
        _ws(&ps)
        if ps.p >= ps.end or ps.p[0] != c',':
            break
        ps.p += 1
    raise DecodeError(ps.p - ps.base, "no 'type' key in the message")


cdef class FeedDecoder:
    """Decoder of one dxLink FEED channel's FEED_DATA messages into EventBatch columns.

    Layouts come from the server's FEED_CONFIG (`configure`, merged per event type) and, until
    that arrives, from the requested field lists (`set_fields`). ``on_error="raise"`` (default)
    raises DecodeError on the first problem; ``on_error="skip"`` drops just the bad group
    (counted in `stats`, logged) and keeps the good groups of the frame; a frame that is not
    valid JSON is dropped entirely in skip mode (counted as ``bad_frames``).
    """

    cdef dict _server
    cdef dict _requested
    cdef list _active
    cdef dict _active_by_name
    cdef _StrCache _cache
    cdef bint _skip
    cdef readonly int64_t last_channel
    cdef readonly object data_format
    cdef readonly object aggregation_period
    cdef readonly object last_error
    cdef int64_t _frames, _groups, _events, _bad_groups, _bad_frames

    def __init__(self, *, str on_error="raise"):
        if on_error not in ("raise", "skip"):
            raise ValueError("on_error must be 'raise' or 'skip'")
        self._skip = on_error == "skip"
        self._server = {}
        self._requested = {}
        self._active = []
        self._active_by_name = {}
        self._cache = _StrCache.__new__(_StrCache)
        self._cache._alloc()
        self.last_channel = -1
        self.data_format = None
        self.aggregation_period = None
        self.last_error = None

    @property
    def on_error(self):
        return "skip" if self._skip else "raise"

    @property
    def stats(self):
        """Counters: frames, groups, events decoded; bad_groups, bad_frames dropped (skip mode)."""
        return {"frames": self._frames, "groups": self._groups, "events": self._events,
                "bad_groups": self._bad_groups, "bad_frames": self._bad_frames}

    @property
    def layouts(self):
        """Effective layout per event type: the server's FEED_CONFIG fields, else requested."""
        return {l.event_type: l.fields for l in self._active}

    cdef void _rebuild(self):
        merged = dict(self._requested)
        merged.update(self._server)
        self._active = list(merged.values())
        self._active_by_name = merged

    def set_fields(self, str event_type, fields):
        """Layout to use for `event_type` until the server's FEED_CONFIG gives its own."""
        self._requested[event_type] = _Layout(event_type, list(fields))
        self._rebuild()

    def configure(self, feed_config):
        """Apply a FEED_CONFIG message (bytes, str or already-parsed dict); merges eventFields."""
        if isinstance(feed_config, (bytes, bytearray, memoryview, str)):
            try:
                msg = json.loads(bytes(feed_config) if not isinstance(feed_config, str)
                                 else feed_config)
            except ValueError as e:
                raise DecodeError(getattr(e, "pos", 0) or 0,
                                  f"FEED_CONFIG is not valid JSON: {e}") from None
        else:
            msg = feed_config
        if not isinstance(msg, dict):
            raise DecodeError(0, "FEED_CONFIG must be a JSON object")
        if msg.get("type", "FEED_CONFIG") != "FEED_CONFIG":
            raise DecodeError(0, f"not a FEED_CONFIG message (type {msg.get('type')!r})")
        ef = msg.get("eventFields")
        new = {}
        if ef is not None:
            if not isinstance(ef, dict):
                raise DecodeError(0, "FEED_CONFIG eventFields must be an object")
            for t, fields in ef.items():
                if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
                    raise DecodeError(0, f"FEED_CONFIG eventFields[{t!r}] must be a list of str")
                try:
                    new[t] = _Layout(t, fields)
                except ValueError as e:
                    raise DecodeError(0, f"FEED_CONFIG eventFields: {e}") from None
        if "dataFormat" in msg:
            self.data_format = msg["dataFormat"]
        if "aggregationPeriod" in msg:
            self.aggregation_period = msg["aggregationPeriod"]
        self._server.update(new)
        self._rebuild()

    def reset(self):
        """Forget the server's layouts (after a reconnect); requested layouts are kept."""
        self._server.clear()
        self._rebuild()

    cdef _Layout _find(self, const unsigned char* s, Py_ssize_t n, bint plain):
        cdef _Layout l
        for l in self._active:
            if PyBytes_GET_SIZE(l.type_utf8) == n and \
                    memcmp(PyBytes_AS_STRING(l.type_utf8), s, n) == 0:
                return l
        if not plain:
            return self._active_by_name.get(_decode_str(s, n))
        return None

    cdef EventBatch _batch(self, _Layout lay, _FrameData fd, Py_ssize_t start, Py_ssize_t n):
        cdef EventBatch b = EventBatch.__new__(EventBatch)
        b.event_type = lay.event_type
        b.fields = lay.fields
        b.size = n
        b._data = fd
        b._layout = lay
        b._cache = self._cache
        b._start = start
        return b

    cdef int _bad(self, Parser* ps, str reason, Py_ssize_t offset) except -1:
        """Handle a bad group: raise, or count + log and continue (returns 0)."""
        err = DecodeError(offset, reason)
        self.last_error = err
        if not self._skip:
            raise err
        self._bad_groups += 1
        if self._bad_groups & (self._bad_groups - 1) == 0:   # 1, 2, 4, 8 ... : no log flood
            _log.warning("dropped a bad FEED_DATA group (%d so far): %s", self._bad_groups, err)
        ps.err = NULL
        return 0

    def decode(self, frame):
        """Decode one FEED_DATA message (bytes, bytearray, memoryview or str) to EventBatches.

        One batch per COMPACT ``[type, values]`` group (or per run of same-type FULL objects),
        in frame order. The message's channel is left in `last_channel`.
        """
        return self._decode(frame)[1]

    def decode_message(self, frame):
        """Like `decode`, returning ``(channel, batches)`` (channel -1 when absent)."""
        return self._decode(frame)

    cdef tuple _decode(self, object frame):
        cdef object src = _frame_bytes(frame)
        cdef Parser ps
        cdef _FrameData fd = _FrameData.__new__(_FrameData)
        cdef Py_ssize_t length = PyBytes_GET_SIZE(src)
        cdef Py_ssize_t st, ln, tst = -1, tln = 0
        cdef bint plain, tplain = True
        cdef int have_data = 0
        cdef Py_ssize_t data_off = 0
        cdef list out = []
        cdef int64_t channel = -1
        cdef int rc
        cdef bint isint
        if length >= 0x7FFFFFFF:
            raise DecodeError(0, "frame larger than 2 GiB")
        fd.src = src
        fd.base = PyBytes_AS_STRING(src)
        fd.length = length
        fd.cap = length // 6 + 16         # typical values take >= 6 bytes; grown on demand
        fd.slots = <int64_t*>malloc(fd.cap * sizeof(int64_t))
        fd.tags = <uint8_t*>malloc(fd.cap)
        if fd.slots == NULL or fd.tags == NULL:
            raise MemoryError()
        ps.base = <const unsigned char*>fd.base
        ps.p = ps.base
        ps.end = ps.base + length
        ps.err = NULL
        ps.errcol = -1
        ps.errrow = -1
        self._frames += 1
        try:
            _ws(&ps)
            if ps.p >= ps.end or ps.p[0] != c'{':
                self._syntax(&ps, ps.p, "not a JSON object")
            ps.p += 1
            _ws(&ps)
            if ps.p < ps.end and ps.p[0] == c'}':
                ps.p += 1
            else:
                while True:
                    _ws(&ps)
                    if ps.p >= ps.end or ps.p[0] != 0x22:
                        self._syntax(&ps, ps.p, "expected a string key")
                    if _scan_string(&ps, &st, &ln, &plain) != OK:
                        self._syntax(&ps, ps.p, "")
                    key = _key_id(ps.base + st, ln, plain)
                    _ws(&ps)
                    if ps.p >= ps.end or ps.p[0] != c':':
                        self._syntax(&ps, ps.p, "expected ':'")
                    ps.p += 1
                    _ws(&ps)
                    if key == 1:           # type
                        if ps.p < ps.end and ps.p[0] == 0x22:
                            if _scan_string(&ps, &tst, &tln, &tplain) != OK:
                                self._syntax(&ps, ps.p, "")
                        else:
                            if _skip_value(&ps, 1) != OK:
                                self._syntax(&ps, ps.p, "")
                            tst = -2
                    elif key == 2:         # channel
                        st = ps.p - ps.base
                        if _skip_value(&ps, 1) != OK:
                            self._syntax(&ps, ps.p, "")
                        channel = _channel_of(ps.base + st, (ps.p - ps.base) - st)
                    elif key == 3:         # data (a repeated key: the last one wins)
                        if ps.p < ps.end and ps.p[0] == c'[':
                            out = []
                            fd.nslots = 0
                            self._parse_data(&ps, fd, out)
                            have_data = 1
                        else:
                            data_off = ps.p - ps.base
                            if _skip_value(&ps, 1) != OK:
                                self._syntax(&ps, ps.p, "")
                            out = []
                            fd.nslots = 0
                            have_data = 2
                    else:
                        if _skip_value(&ps, 1) != OK:
                            self._syntax(&ps, ps.p, "")
                    _ws(&ps)
                    if ps.p >= ps.end:
                        self._syntax(&ps, ps.p, "unexpected end of frame")
                    if ps.p[0] == c',':
                        ps.p += 1
                        continue
                    if ps.p[0] == c'}':
                        ps.p += 1
                        break
                    self._syntax(&ps, ps.p, "expected ',' or '}'")
            _ws(&ps)
            if ps.p != ps.end:
                self._syntax(&ps, ps.p, "extra data after the JSON object")
            if tst == -1:
                raise DecodeError(0, "message has no 'type'")
            if tst == -2 or not _is_feed_data(ps.base + tst, tln, tplain):
                raise DecodeError(0, "not a FEED_DATA message")
            if have_data == 0:
                raise DecodeError(0, "FEED_DATA message has no 'data'")
            if have_data == 2:
                raise DecodeError(data_off, "FEED_DATA 'data' is not an array")
        except DecodeError as e:
            self.last_error = e
            if self._skip and e.reason.startswith("invalid JSON"):
                self._bad_frames += 1
                if self._bad_frames & (self._bad_frames - 1) == 0:
                    _log.warning("dropped an invalid FEED_DATA frame (%d so far): %s",
                                 self._bad_frames, e)
                return (channel, [])
            raise
        # give back the unused part of a generous allocation
        if fd.cap - fd.nslots > 4096:
            _shrink(fd)
        self.last_channel = channel
        self._groups += len(out)
        for b in out:
            self._events += (<EventBatch>b).size
        return (channel, out)

    cdef int _syntax(self, Parser* ps, const unsigned char* at, str fallback) except -1:
        cdef Py_ssize_t off = ps.erroff if ps.err != NULL else at - ps.base
        reason = (<bytes>ps.err).decode() if ps.err != NULL else fallback
        raise DecodeError(off, "invalid JSON: " + reason)

    cdef int _parse_data(self, Parser* ps, _FrameData fd, list out) except -1:
        """ps.p at '[' of the data array: parse COMPACT groups and FULL objects into `out`."""
        cdef Py_ssize_t st, ln, count, start, el
        cdef bint plain
        cdef _Layout lay
        cdef int rc
        cdef const unsigned char* gpos
        cdef list run = []            # FULL objects of the current run: (offset, type, keys)
        ps.p += 1
        _ws(ps)
        if ps.p < ps.end and ps.p[0] == c']':
            ps.p += 1
            return 0
        while True:
            _ws(ps)
            gpos = ps.p
            if ps.p < ps.end and ps.p[0] == c'{':
                self._full_object(ps, fd, run, out)
            else:
                if run:
                    self._flush_full(ps, fd, run, out)
                if ps.p < ps.end and ps.p[0] == 0x22:
                    if _scan_string(ps, &st, &ln, &plain) != OK:
                        self._syntax(ps, ps.p, "")
                    _ws(ps)
                    if ps.p < ps.end and ps.p[0] == c']':
                        self._bad(ps, "event type name without a value array", gpos - ps.base)
                    elif ps.p < ps.end and ps.p[0] == c',':
                        ps.p += 1
                        _ws(ps)
                        if ps.p < ps.end and ps.p[0] == c'[':
                            self._compact_group(ps, fd, out, st, ln, plain, gpos)
                        else:
                            el = ps.p - ps.base
                            if _skip_value(ps, 1) != OK:
                                self._syntax(ps, ps.p, "")
                            self._bad(ps, "event type name not followed by a value array", el)
                    else:
                        self._syntax(ps, ps.p, "expected ',' or ']'")
                else:
                    el = ps.p - ps.base
                    if _skip_value(ps, 1) != OK:
                        self._syntax(ps, ps.p, "")
                    self._bad(ps, "unexpected element in FEED_DATA data (expected an event "
                              "type name or an event object)", el)
            _ws(ps)
            if ps.p >= ps.end:
                self._syntax(ps, ps.p, "unexpected end of frame")
            if ps.p[0] == c',':
                ps.p += 1
                continue
            if ps.p[0] == c']':
                ps.p += 1
                break
            self._syntax(ps, ps.p, "expected ',' or ']'")
        if run:
            self._flush_full(ps, fd, run, out)
        return 0

    cdef int _compact_group(self, Parser* ps, _FrameData fd, list out, Py_ssize_t st,
                            Py_ssize_t ln, bint plain, const unsigned char* gpos) except -1:
        cdef _Layout lay = self._find(ps.base + st, ln, plain)
        cdef Py_ssize_t count = 0
        cdef Py_ssize_t vpos = ps.p - ps.base
        cdef int rc
        cdef bint big
        if lay is None:
            name = _decode_str(ps.base + st, ln)
            if _skip_value(ps, 1) != OK:
                self._syntax(ps, ps.p, "")
            self._bad(ps, f"no layout for event type {name!r} (no FEED_CONFIG eventFields and "
                      f"no set_fields for it)", gpos - ps.base)
            return 0
        if lay.n == 0:
            if _skip_value(ps, 1) != OK:
                self._syntax(ps, ps.p, "")
            self._bad(ps, f"the {lay.event_type} layout has no fields", gpos - ps.base)
            return 0
        cdef const uint8_t* kinds = <const uint8_t*>PyBytes_AS_STRING(lay.kinds)
        cdef Py_ssize_t nf = lay.n
        big = fd.length > NOGIL_BYTES
        if big:
            with nogil:
                rc = _parse_compact(ps, fd, kinds, nf, &count)
        else:
            rc = _parse_compact(ps, fd, kinds, nf, &count)
        if rc == SYNTAX:
            self._syntax(ps, ps.p, "")
        if rc == SEMANTIC:
            reason = (<bytes>ps.err).decode()
            self._bad(ps, f"{reason}: column {lay.fields[ps.errcol]!r} of {lay.event_type} "
                      f"event #{ps.errrow}", ps.erroff)
            return 0
        if count % lay.n != 0:
            self._bad(ps, f"{count} values is not a multiple of the {lay.event_type} layout "
                      f"size {lay.n}", vpos)
            return 0
        out.append(self._batch(lay, fd, fd.nslots, count // lay.n))
        fd.nslots += count
        return 0

    # ---- FULL format (objects; slow path, FULL is deprecated by tastytrade) ----

    cdef int _full_object(self, Parser* ps, _FrameData fd, list run, list out) except -1:
        """Pre-scan one FULL event object: validate, find eventType and keys; add to the run."""
        cdef Py_ssize_t opos = ps.p - ps.base
        cdef Py_ssize_t st, ln, vst
        cdef bint plain
        etype = None
        bad_type = False
        keys = []
        ps.p += 1
        _ws(ps)
        if ps.p < ps.end and ps.p[0] == c'}':
            ps.p += 1
        else:
            while True:
                _ws(ps)
                if ps.p >= ps.end or ps.p[0] != 0x22:
                    self._syntax(ps, ps.p, "expected a string key")
                if _scan_string(ps, &st, &ln, &plain) != OK:
                    self._syntax(ps, ps.p, "")
                k = _decode_str(ps.base + st, ln)
                keys.append(k)
                _ws(ps)
                if ps.p >= ps.end or ps.p[0] != c':':
                    self._syntax(ps, ps.p, "expected ':'")
                ps.p += 1
                _ws(ps)
                if k == "eventType":
                    if ps.p < ps.end and ps.p[0] == 0x22:
                        if _scan_string(ps, &st, &ln, &plain) != OK:
                            self._syntax(ps, ps.p, "")
                        etype = _decode_str(ps.base + st, ln)
                        bad_type = False
                    else:
                        bad_type = True
                        if _skip_value(ps, 1) != OK:
                            self._syntax(ps, ps.p, "")
                elif _skip_value(ps, 1) != OK:
                    self._syntax(ps, ps.p, "")
                _ws(ps)
                if ps.p >= ps.end:
                    self._syntax(ps, ps.p, "unexpected end of frame")
                if ps.p[0] == c',':
                    ps.p += 1
                    continue
                if ps.p[0] == c'}':
                    ps.p += 1
                    break
                self._syntax(ps, ps.p, "expected ',' or '}'")
        if etype is None or bad_type:
            if run:
                self._flush_full(ps, fd, run, out)
            self._bad(ps, "FULL event object without a string 'eventType'", opos)
            return 0
        if run and run[0][1] != etype:
            self._flush_full(ps, fd, run, out)
        run.append((opos, etype, keys))
        return 0

    cdef int _flush_full(self, Parser* ps, _FrameData fd, list run, list out) except -1:
        """Parse the values of a run of same-type FULL objects into one batch."""
        cdef const unsigned char* saved = ps.p
        cdef _Layout lay
        cdef Py_ssize_t n = len(run), nf, st, ln, start, row, j
        cdef bint plain
        cdef int rc = OK
        cdef const uint8_t* kinds
        etype = run[0][1]
        offsets = [r[0] for r in run]
        cdef _Layout known = self._active_by_name.get(etype)
        fields = list(known.fields) if known is not None else []
        seen = set(fields)
        for _, _, keys in run:
            for key in keys:
                if key not in seen:
                    seen.add(key)
                    fields.append(key)
        del run[:]
        lay = known if (known is not None and len(fields) == known.n) else _Layout(etype, fields)
        nf = lay.n
        if _grow(fd, n * nf) != 0:
            raise MemoryError()
        start = fd.nslots
        memset(fd.tags + start, TAG_MISSING, n * nf)
        kinds = <const uint8_t*>PyBytes_AS_STRING(lay.kinds)
        errs = {}
        for row in range(n):
            # the object was validated by _full_object: walk it without syntax checks.
            # A repeated key: the last value wins (as in json.loads), so a bad earlier value
            # only counts when no later good value for the same key replaces it.
            ps.p = ps.base + <Py_ssize_t>offsets[row] + 1
            _ws(ps)
            if ps.p[0] == c'}':
                continue
            while True:
                _ws(ps)
                _scan_string(ps, &st, &ln, &plain)
                j = lay.index[_decode_str(ps.base + st, ln)]
                _ws(ps)
                ps.p += 1                     # ':'
                _ws(ps)
                rc = _take_value(ps, kinds[j], fd.slots + start + row * nf + j,
                                 fd.tags + start + row * nf + j)
                if rc == SEMANTIC:
                    errs[j] = ((<bytes>ps.err).decode(), ps.erroff)
                    ps.err = NULL
                    rc = OK
                elif rc == OK:
                    errs.pop(j, None)
                else:
                    break
                _ws(ps)
                if ps.p[0] == c',':
                    ps.p += 1
                    continue
                break
            if rc != OK:
                break
            if errs:
                rc = SEMANTIC
                j = min(errs, key=lambda c: errs[c][1])
                break
        if rc == SYNTAX:   # cannot happen (validated), but never trust that silently
            self._syntax(ps, ps.p, "")
        if rc == SEMANTIC:
            ps.p = saved
            reason, off = errs[j]
            self._bad(ps, f"{reason}: column {lay.fields[j]!r} of {lay.event_type} "
                      f"event #{row}", off)
            return 0
        ps.p = saved
        out.append(self._batch(lay, fd, start, n))
        fd.nslots += n * nf
        return 0


cdef inline int _key_id(const unsigned char* s, Py_ssize_t n, bint plain):
    if not plain:
        k = _decode_str(s, n)
        return 1 if k == "type" else 2 if k == "channel" else 3 if k == "data" else 0
    if n == 4 and memcmp(s, b"type", 4) == 0:
        return 1
    if n == 7 and memcmp(s, b"channel", 7) == 0:
        return 2
    if n == 4 and memcmp(s, b"data", 4) == 0:
        return 3
    return 0


cdef inline bint _is_feed_data(const unsigned char* s, Py_ssize_t n, bint plain):
    if plain:
        return n == 9 and memcmp(s, b"FEED_DATA", 9) == 0
    return _decode_str(s, n) == "FEED_DATA"


cdef int64_t _channel_of(const unsigned char* s, Py_ssize_t n) noexcept:
    cdef Py_ssize_t ln
    cdef bint isint
    cdef int64_t v
    if n > 0 and scan_number(<const char*>s, <const char*>s + n, &ln, &isint) == NP_OK and \
            ln == n and isint and parse_int64(<const char*>s, n, &v) == NP_OK:
        return v
    return -1


cdef void _shrink(_FrameData fd) noexcept:
    cdef Py_ssize_t cap = fd.nslots if fd.nslots > 0 else 1
    cdef int64_t* s = <int64_t*>realloc(fd.slots, cap * sizeof(int64_t))
    cdef uint8_t* t
    if s != NULL:
        fd.slots = s
        t = <uint8_t*>realloc(fd.tags, cap)
        if t != NULL:
            fd.tags = t
        fd.cap = cap
