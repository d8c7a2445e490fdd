# C-level interface of ttfast._core.lineproto: InfluxDB line protocol encoding of whole batches.
# The LineEncoder class (pre-escaped measurement and keys; per-row tag values escaped once and
# cached). Its byte buffer and number formatting are textbuf.pxd's (shared with pipeline).
from ttfast._core.textbuf cimport TextBuf


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
    cdef TextBuf _buf
    cdef bytes _escape_tag_value(self, str value)
