# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""Python-visible wrappers over the inline number parsers in numparse.pxd (tests, fuzzing)."""
from libc.stdint cimport int64_t
from ttfast._core.numparse cimport (NP_OK, NP_EMPTY, NP_SYNTAX, NP_OVERFLOW, NP_NOT_INTEGER,
                                     scan_number, parse_double, parse_int64)

_REASONS = {
    NP_EMPTY: "empty number",
    NP_SYNTAX: "not a JSON number",
    NP_OVERFLOW: "integer out of int64 range",
    NP_NOT_INTEGER: "not an integer",
}


def to_double(token):
    """Parse one JSON number token (bytes or str) to a float; ValueError if it is not one."""
    cdef bytes b = token.encode() if isinstance(token, str) else bytes(token)
    cdef const char* p = b
    cdef Py_ssize_t n = len(b)
    cdef Py_ssize_t length = 0
    cdef bint is_int = False
    cdef double out = 0.0
    cdef int rc = scan_number(p, p + n, &length, &is_int)
    if rc == NP_OK and length != n:
        rc = NP_SYNTAX
    if rc == NP_OK:
        rc = parse_double(p, n, &out)
    if rc != NP_OK:
        raise ValueError(f"{_REASONS[rc]}: {token!r}")
    return out


def to_int64(token):
    """Parse one JSON integer token (bytes or str) to an int in int64 range; ValueError if not."""
    cdef bytes b = token.encode() if isinstance(token, str) else bytes(token)
    cdef const char* p = b
    cdef Py_ssize_t n = len(b)
    cdef Py_ssize_t length = 0
    cdef bint is_int = False
    cdef int64_t out = 0
    cdef int rc = scan_number(p, p + n, &length, &is_int)
    if rc == NP_OK and length != n:
        rc = NP_SYNTAX
    if rc == NP_OK:
        rc = parse_int64(p, n, &out)
    if rc != NP_OK:
        raise ValueError(f"{_REASONS[rc]}: {token!r}")
    return out
