# Part of ttfast._core.feed, included by feed.pyx (not compiled on its own; see
# ext/README.md). Strict JSON scanning (RFC 8259, UTF-8) into 8-byte slots + tag bytes:
# no Python objects, nogil. Numbers are parsed by numparse.pxd (its one Clinger fast path).

DEF MAX_DEPTH = 256

cdef struct Parser:
    const unsigned char* base
    const unsigned char* p
    const unsigned char* end
    const char* err          # static reason of the first error
    Py_ssize_t erroff        # byte offset of that error
    Py_ssize_t errcol        # column / event of a semantic error (-1 when not applicable)
    Py_ssize_t errrow
    bint longint             # _skip_value passed an integer too long for int() (see below)

# 1 for bytes that end the fast scan of a string: '"', '\\', control chars, non-ASCII
cdef uint8_t[256] _STR_SPECIAL
cdef int _i
for _i in range(256):
    _STR_SPECIAL[_i] = 1 if (_i < 0x20 or _i == 0x22 or _i == 0x5C or _i >= 0x80) else 0


# Python refuses int() of more than sys.get_int_max_str_digits() digits (default 4300; 0 = no
# limit). An integer token we would have to turn into a Python int later (unknown-field columns,
# raw nested values) is rejected while scanning instead, as json.loads rejects it, so reading a
# batch can never raise. FeedDecoder.__init__ refreshes the limit.
cdef Py_ssize_t _INT_MAX_DIGITS = 4300


cdef inline bint _int_too_long(const unsigned char* q, Py_ssize_t ln) noexcept nogil:
    if _INT_MAX_DIGITS <= 0 or ln <= _INT_MAX_DIGITS:
        return False
    return ln - (1 if q[0] == c'-' else 0) > _INT_MAX_DIGITS


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
        if isint and _int_too_long(q, ln):
            ps.longint = True  # only a raw value kept for later json.loads cares (_take_value)
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
            if isint and _int_too_long(q, ln):
                return _fail(ps, q, "integer with more digits than Python converts "
                             "(sys.get_int_max_str_digits())", SEMANTIC)
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
        ps.longint = False
        rc = _skip_value(ps, 1)
        if rc != OK:
            return rc
        if ps.longint and kind == KIND_INFER:
            return _fail(ps, q, "integer with more digits than Python converts "
                         "(sys.get_int_max_str_digits())", SEMANTIC)
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
