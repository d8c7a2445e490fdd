# Inline JSON number parsers shared by the decoders (cimport ttfast._core.numparse).
# Defined here (not in the .pyx) so every module that cimports them inlines them.
# All functions are noexcept nogil and never read past the given length.
#
# parse_double is correctly rounded (the same double as Python's float(token)): Clinger's fast
# path for <= 15 significant digits and |exp10| <= 22 (one exact multiplication or division by
# an exact power of ten), otherwise glibc strtod on a validated NUL-terminated copy (strtod is
# correctly rounded; the C locale is never changed by CPython). Integers are parsed with
# overflow detection, never through a double (dxFeed `index` values exceed 2**53).
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
    cdef double v
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
    if ndigits <= 15 and -22 <= exp10 <= 22:
        # Clinger's fast path: mant < 2**53 and 10**|exp10| are exact doubles, so one IEEE
        # multiplication/division gives the correctly rounded result.
        v = <double>mant
        if exp10 >= 0:
            v = v * ttfast_pow10[exp10]
        else:
            v = v / ttfast_pow10[-exp10]
        out[0] = -v if neg else v
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


