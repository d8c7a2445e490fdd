# C-level interface of ttfast._core.lineproto: InfluxDB line protocol encoding of whole batches.
# A growable byte buffer with inline appenders, and the LineEncoder class (pre-escaped
# measurement and keys; per-row tag values escaped once and cached).
from libc.stdint cimport int64_t


cdef struct LPBuf:
    char* data
    Py_ssize_t len
    Py_ssize_t cap


cdef int lpbuf_reserve(LPBuf* b, Py_ssize_t extra) except -1
cdef int fmt_double(char* out, double x) except -1
cdef int fmt_int64(char* out, int64_t v) noexcept nogil


cdef class LineEncoder:
    cdef readonly str measurement
    cdef readonly tuple tag_keys
    cdef readonly tuple float_keys
    cdef readonly tuple int_keys
    cdef readonly tuple str_keys
    cdef readonly long long rows_written     # lines produced since creation
    cdef readonly long long fields_omitted   # NaN/inf float fields left out (not representable)
    cdef readonly long long rows_skipped     # rows not written: every field was omitted
    cdef bytes _meas
    cdef list _tag_prefix        # b",key=" per tag key (escaped), in output order
    cdef list _field_prefix      # b"key=" / b",key=" per field, floats then ints then strs
    cdef list _tag_order         # indices into tag columns in output (sorted-by-key) order
    cdef dict _cache             # str tag value -> escaped bytes
    cdef LPBuf _buf
    cdef bytes _escape_tag_value(self, str value)
