# Inline JSON number parsers shared by the decoders (cimport ttfast._core.numparse): the ONE
# place numbers are parsed. Defined here (not in the .pyx) so every module that cimports them
# inlines them. All functions are noexcept nogil.
#
# Two entry points, one exactness argument:
# * scan_number + parse_double / parse_int64: a token of known length (never read past it).
#   parse_double is correctly rounded (the same double as Python's float(token)): `clinger` for
#   <= 15 significant digits and |exp10| <= 22, otherwise glibc strtod on a validated
#   NUL-terminated copy (strtod is correctly rounded; the C locale is never changed by CPython).
#   Integers are parsed with overflow detection, never through a double (dxFeed `index` values
#   exceed 2**53).
# * fast_double / fast_int64: the decoder's one-pass parse of the common token, which needs a
#   readable non-number byte after the token (a bytes object's NUL terminator) instead of a
#   length; False means "use the full path" (which also reports syntax errors).
# Both double parsers finish with `clinger` (Clinger's fast path), so they cannot disagree.
from libc.stdint cimport int64_t, uint64_t, INT64_MAX
from libc.stdlib cimport strtod, malloc, free
from libc.string cimport memcpy

# Status codes returned by the parsers.
cdef enum:
    NP_OK = 0
    NP_EMPTY = 1        # no digits where a number was expected
    NP_SYNTAX = 2       # not a JSON number token
    NP_OVERFLOW = 3     # integer does not fit int64 (or out of memory in the slow path)
    NP_NOT_INTEGER = 4  # has a fraction or exponent where an integer is required

cdef extern from *:
    """
    static const double ttfast_pow10[23] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
        1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    """
    const double* ttfast_pow10


cdef inline bint _digit(char c) noexcept nogil:
    return c >= c'0' and c <= c'9'


cdef inline int scan_number(const char* p, const char* end, Py_ssize_t* length,
                     bint* is_integer) noexcept nogil:
    """Validate a JSON number token starting at p (grammar of RFC 8259 §6).

    Sets *length to the token length and *is_integer when it has no fraction/exponent.
    """
    cdef const char* q = p
    is_integer[0] = True
    length[0] = 0
    if q < end and q[0] == c'-':
        q += 1
    if q >= end or not _digit(q[0]):
        return NP_EMPTY if q == p else NP_SYNTAX
    if q[0] == c'0':
        q += 1
    else:
        while q < end and _digit(q[0]):
            q += 1
    if q < end and q[0] == c'.':
        is_integer[0] = False
        q += 1
        if q >= end or not _digit(q[0]):
            return NP_SYNTAX
        while q < end and _digit(q[0]):
            q += 1
    if q < end and (q[0] == c'e' or q[0] == c'E'):
        is_integer[0] = False
        q += 1
        if q < end and (q[0] == c'+' or q[0] == c'-'):
            q += 1
        if q >= end or not _digit(q[0]):
            return NP_SYNTAX
        while q < end and _digit(q[0]):
            q += 1
    length[0] = q - p
    return NP_OK


cdef inline int parse_int64(const char* p, Py_ssize_t n, int64_t* out) noexcept nogil:
    """Parse a validated JSON integer token of length n into int64 (overflow-checked)."""
    cdef Py_ssize_t i = 0
    cdef bint neg = False
    cdef uint64_t acc = 0
    cdef uint64_t limit
    cdef unsigned int d
    if n <= 0:
        return NP_EMPTY
    if p[0] == c'-':
        neg = True
        i = 1
    if i >= n:
        return NP_SYNTAX
    limit = <uint64_t>INT64_MAX + (1 if neg else 0)
    while i < n:
        if not _digit(p[i]):
            return NP_NOT_INTEGER if (p[i] == c'.' or p[i] == c'e' or p[i] == c'E') else NP_SYNTAX
        d = <unsigned int>(p[i] - c'0')
        if acc > (limit - d) // 10:
            return NP_OVERFLOW
        acc = acc * 10 + d
        i += 1
    if neg:
        # acc <= 2**63 here; negate in unsigned arithmetic to reach INT64_MIN without UB
        out[0] = <int64_t>(0 - acc)
    else:
        out[0] = <int64_t>acc
    return NP_OK


cdef inline bint clinger(uint64_t mant, int exp10, bint neg, double* out) noexcept nogil:
    """Clinger's fast path: (-1)**neg * mant * 10**exp10 when that is one exact IEEE operation.

    The caller guarantees mant < 2**53 (at most 15 significant digits). With |exp10| <= 22,
    10**|exp10| is an exact double too, so one multiplication or division gives the correctly
    rounded result. False (out untouched) when |exp10| > 22.
    """
    cdef double v
    if exp10 < -22 or exp10 > 22:
        return False
    v = <double>mant
    if exp10 >= 0:
        v = v * ttfast_pow10[exp10]
    else:
        v = v / ttfast_pow10[-exp10]
    out[0] = -v if neg else v
    return True


cdef inline int parse_double(const char* p, Py_ssize_t n, double* out) noexcept nogil:
    """Parse a validated JSON number token of length n to the correctly rounded double."""
    cdef Py_ssize_t i = 0
    cdef bint neg = False
    cdef uint64_t mant = 0
    cdef int ndigits = 0          # significant digits accumulated in mant
    cdef int exp10 = 0
    cdef int e = 0
    cdef bint eneg = False
    cdef bint lead = True
    cdef char[64] buf
    cdef char* tmp
    if n <= 0:
        return NP_EMPTY
    if p[0] == c'-':
        neg = True
        i = 1
    while i < n and _digit(p[i]):
        if lead and p[i] == c'0':
            i += 1
            continue
        lead = False
        if ndigits < 19:
            mant = mant * 10 + <uint64_t>(p[i] - c'0')
        else:
            exp10 += 1
        ndigits += 1
        i += 1
    if i < n and p[i] == c'.':
        i += 1
        while i < n and _digit(p[i]):
            if lead and p[i] == c'0':
                exp10 -= 1
                i += 1
                continue
            lead = False
            if ndigits < 19:
                mant = mant * 10 + <uint64_t>(p[i] - c'0')
                exp10 -= 1
            ndigits += 1
            i += 1
    if i < n and (p[i] == c'e' or p[i] == c'E'):
        i += 1
        if i < n and (p[i] == c'+' or p[i] == c'-'):
            eneg = p[i] == c'-'
            i += 1
        while i < n and _digit(p[i]):
            if e < 100000:
                e = e * 10 + (p[i] - c'0')
            i += 1
        exp10 += -e if eneg else e
    if i != n:
        return NP_SYNTAX
    if mant == 0:
        out[0] = -0.0 if neg else 0.0
        return NP_OK
    if ndigits <= 15 and clinger(mant, exp10, neg, out):
        return NP_OK
    # Slow path: glibc strtod is correctly rounded; give it a NUL-terminated copy.
    if n < 64:
        memcpy(buf, p, n)
        buf[n] = 0
        out[0] = strtod(buf, NULL)
    else:
        tmp = <char*>malloc(n + 1)
        if tmp == NULL:
            return NP_OVERFLOW
        memcpy(tmp, p, n)
        tmp[n] = 0
        out[0] = strtod(tmp, NULL)
        free(tmp)
    return NP_OK


cdef inline bint _udigit(unsigned char c) noexcept nogil:
    return <unsigned char>(c - c'0') < 10


cdef inline bint fast_double(const unsigned char* q, const unsigned char* end, double* out,
                             const unsigned char** after) noexcept nogil:
    """One-pass parse of the common number token (<= 15 significant digits, |exp10| <= 22):
    Clinger's exact fast path, so the same double as float(token). False = use the full path
    (which also reports syntax errors). Needs a readable non-number byte at `end` (the frame
    is a bytes object: end[0] is its NUL terminator), so it never tests p < end."""
    cdef const unsigned char* p = q
    cdef bint neg = False
    cdef bint eneg = False
    cdef uint64_t mant = 0
    cdef int nd = 0
    cdef int frac = 0
    cdef int e = 0
    if p[0] == c'-':
        neg = True
        p += 1
    if not _udigit(p[0]):
        return False
    if p[0] == c'0':
        p += 1
        if _udigit(p[0]):
            return False
    else:
        while _udigit(p[0]):
            mant = mant * 10 + (p[0] - c'0')
            nd += 1
            p += 1
            if nd > 15:
                return False
    if p[0] == c'.':
        p += 1
        if not _udigit(p[0]):
            return False
        while _udigit(p[0]):
            mant = mant * 10 + (p[0] - c'0')
            nd += 1
            frac += 1
            p += 1
            if nd > 15:
                return False
    if (p[0] == c'e' or p[0] == c'E'):
        p += 1
        if (p[0] == c'+' or p[0] == c'-'):
            eneg = p[0] == c'-'
            p += 1
        if not _udigit(p[0]):
            return False
        while _udigit(p[0]):
            if e > 1000:
                return False
            e = e * 10 + (p[0] - c'0')
            p += 1
        if eneg:
            e = -e
    if not clinger(mant, e - frac, neg, out):
        return False
    after[0] = p
    return True


cdef inline bint fast_int64(const unsigned char* q, const unsigned char* end, int64_t* out,
                            const unsigned char** after) noexcept nogil:
    """One-pass parse of an integer token of <= 19 digits, range-checked (dxFeed's
    time-series `index` has 19 digits). Like fast_double, relies on the NUL at `end`."""
    cdef const unsigned char* p = q
    cdef bint neg = False
    cdef uint64_t v = 0
    cdef int nd = 0
    if p[0] == c'-':
        neg = True
        p += 1
    if not _udigit(p[0]):
        return False
    if p[0] == c'0':
        p += 1
    else:
        while _udigit(p[0]):
            if nd == 19:
                return False        # 20+ digits: out of range, the full path reports it
            v = v * 10 + <uint64_t>(p[0] - c'0')     # < 10**19 < 2**64: no wrap-around
            nd += 1
            p += 1
    if (_udigit(p[0]) or p[0] == c'.' or p[0] == c'e' or p[0] == c'E'):
        return False
    if v > <uint64_t>9223372036854775807ULL + (1 if neg else 0):
        return False
    out[0] = <int64_t>(0 - v) if neg else <int64_t>v
    after[0] = p
    return True
