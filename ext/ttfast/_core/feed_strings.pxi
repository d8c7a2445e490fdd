# Part of ttfast._core.feed, included by feed.pyx (not compiled on its own; see
# ext/README.md). Python str objects of string columns: the one-character table, the
# direct-mapped symbol cache (_StrCache) and JSON string unescaping (_decode_str).

DEF CACHE_SIZE = 1024
DEF CACHE_MAXLEN = 48

# one-character ASCII strings (exchange codes, ...): no hashing, no lookup
cdef PyObject* _CHAR1[128]
cdef list _CHAR1_KEEP = [chr(_c) for _c in range(128)]
cdef int _c
for _c in range(128):
    _CHAR1[_c] = <PyObject*>_CHAR1_KEEP[_c]


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
