# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""InfluxDB line protocol, encoded for a whole batch of rows in one call.

For the Telegraf/InfluxDB sink: columns in (numpy arrays for numeric fields and timestamps,
sequences of str for tag values), one ``bytes`` body out, ready to POST to ``/write`` or to
split into UDP datagrams. Touches nothing but its arguments and its own buffer.

Rules (InfluxDB 1.x line protocol, checked against influxd 1.6.7):
* measurement: escape comma and space; must not be empty or start with ``#`` (a comment line).
* tag keys, tag values, field keys: escape comma, equals sign and space.
* string field values: double-quoted, escape backslash and double quote.
* integers: decimal with an ``i`` suffix; timestamps: int64 nanoseconds.
* floats: Python's ``repr`` (shortest string that round-trips), so the stored value is the
  same double. NaN and +-inf cannot be written: such a field is omitted and counted
  (``fields_omitted``); a row left with no field at all is skipped and counted (``rows_skipped``).
* Not representable at all, so rejected with ValueError: a newline or carriage return in any
  name or tag value (the server would keep the escaping backslash), a name or tag value ending
  in a backslash (it would escape the following separator), an empty measurement or key.
  An empty tag value means "no tag" (the server refuses empty tag values): it is left out.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from libc.math cimport isfinite

import numpy as np

from ttfast._core.textbuf cimport (TextBuf, textbuf_reserve, textbuf_put, textbuf_add,
                                    fmt_double, fmt_int64)


def format_float(double x) -> str:
    """The text LineEncoder writes for a finite float field (equals ``repr(x)``)."""
    cdef char[40] out
    if not isfinite(x):
        raise ValueError("NaN and infinity cannot be written in line protocol")
    n = fmt_double(out, x)
    return out[:n].decode("ascii")


cdef bytes _escape(str s, str specials, str what):
    """Backslash-escape every char of `specials` in s, after checking s is representable."""
    if not s:
        raise ValueError(f"{what} must not be empty")
    if "\n" in s or "\r" in s:
        raise ValueError(f"{what} {s!r} contains a newline (not representable in line protocol)")
    if s.endswith("\\"):
        raise ValueError(f"{what} {s!r} ends with a backslash (not representable in line protocol)")
    for c in specials:
        if c in s:
            s = s.replace(c, "\\" + c)
    return s.encode("utf-8")


def escape_measurement(str name) -> bytes:
    if name.startswith("#"):
        raise ValueError(f"measurement {name!r} starts with '#' (a comment line)")
    return _escape(name, ", ", "measurement")


def escape_key(str key) -> bytes:
    """Escape a tag key, tag value or field key."""
    return _escape(key, ",= ", "tag key/value or field key")


def escape_string_field(str value) -> bytes:
    """The quoted form of a string field value (backslash and double quote escaped)."""
    return b'"' + value.replace("\\", "\\\\").replace('"', '\\"').encode("utf-8") + b'"'


cdef class LineEncoder:
    """Encodes batches of rows of one measurement into line protocol.

    ``LineEncoder("candle", tag_keys=("symbol", "period"), float_keys=("open", ...))`` then
    ``enc.encode(times_ns, tags, floats, ints, strs) -> bytes``; each tag column is a str (same
    value on every row) or a sequence of n str; each numeric column a 1-D array of n values.
    Tags are written sorted by key (InfluxDB's preferred order), fields in the given order.
    """

    def __cinit__(self):
        self._buf.data = NULL
        self._buf.len = 0
        self._buf.cap = 0

    def __dealloc__(self):
        free(self._buf.data)

    def __init__(self, str measurement, tag_keys=(), float_keys=(), int_keys=(), str_keys=()):
        self.measurement = measurement
        self.tag_keys = tuple(tag_keys)
        self.float_keys = tuple(float_keys)
        self.int_keys = tuple(int_keys)
        self.str_keys = tuple(str_keys)
        self._meas = escape_measurement(measurement)
        if len(set(self.tag_keys)) != len(self.tag_keys):
            raise ValueError("duplicate tag key")
        fkeys = self.float_keys + self.int_keys + self.str_keys
        if not fkeys:
            raise ValueError("line protocol needs at least one field key")
        if len(set(fkeys)) != len(fkeys):
            raise ValueError("duplicate field key")
        self._tag_order = sorted(range(len(self.tag_keys)), key=lambda j: self.tag_keys[j])
        self._tag_prefix = [b"," + escape_key(self.tag_keys[j]) + b"="
                            for j in self._tag_order]
        self._field_prefix = [escape_key(k) + b"=" for k in fkeys]
        self._cache = {}
        self.rows_written = 0
        self.fields_omitted = 0
        self.rows_skipped = 0

    cdef bytes _escape_tag_value(self, str value):
        cdef object hit = self._cache.get(value)
        if hit is not None:
            return <bytes>hit
        esc = escape_key(value) if value else b""
        if len(self._cache) >= 65536:
            self._cache.clear()
        self._cache[value] = esc
        return esc

    def encode(self, times, tags=(), floats=(), ints=(), strs=()) -> bytes:
        """Line protocol for n rows (n = len(times)); `times` int64 ns or None (server time)."""
        cdef Py_ssize_t n, i, j, k, nt, nf, ni, ns, start, line_start, t_len
        cdef const int64_t[:] tv
        cdef bint has_time = times is not None
        cdef const double** fp = NULL
        cdef Py_ssize_t* fstride = NULL
        cdef const int64_t** ip = NULL
        cdef Py_ssize_t* istride = NULL
        cdef double x
        cdef bint first
        cdef TextBuf* b = &self._buf
        cdef bytes pre, val
        cdef char[40] num
        cdef int L

        nt = len(self.tag_keys)
        nf = len(self.float_keys)
        ni = len(self.int_keys)
        ns = len(self.str_keys)
        if len(tags) != nt or len(floats) != nf or len(ints) != ni or len(strs) != ns:
            raise ValueError(
                f"expected {nt} tag, {nf} float, {ni} int and {ns} string columns; got "
                f"{len(tags)}, {len(floats)}, {len(ints)}, {len(strs)}")
        if has_time:
            tv = np.ascontiguousarray(times, dtype=np.int64)
            n = tv.shape[0]
        else:
            n = -1
        fviews = [np.ascontiguousarray(c, dtype=np.float64) for c in floats]
        iviews = [np.ascontiguousarray(c, dtype=np.int64) for c in ints]
        for c in (*fviews, *iviews):
            if c.ndim != 1:
                raise ValueError("numeric columns must be one-dimensional")
            if n < 0:
                n = c.shape[0]
            elif c.shape[0] != n:
                raise ValueError(f"column length {c.shape[0]} != {n}")
        tag_cols = [tags[j] for j in self._tag_order]
        const_tags = []
        for j in range(nt):
            col = tag_cols[j]
            if isinstance(col, str):
                const_tags.append(self._escape_tag_value(col))
            else:
                const_tags.append(None)
                if n < 0:
                    n = len(col)
                elif len(col) != n:
                    raise ValueError(f"tag column {self.tag_keys[self._tag_order[j]]!r} has "
                                     f"{len(col)} values, expected {n}")
        for col in strs:
            if n < 0:
                n = len(col)
            elif len(col) != n:
                raise ValueError(f"string column has {len(col)} values, expected {n}")
        if n <= 0:
            return b""

        fp = <const double**>malloc((nf + 1) * sizeof(double*))
        ip = <const int64_t**>malloc((ni + 1) * sizeof(int64_t*))
        if fp == NULL or ip == NULL:
            free(fp)
            free(ip)
            raise MemoryError()
        b.len = 0
        try:
            for k in range(nf):
                fp[k] = <const double*><size_t>fviews[k].ctypes.data
            for k in range(ni):
                ip[k] = <const int64_t*><size_t>iviews[k].ctypes.data
            for i in range(n):
                line_start = b.len
                textbuf_add(b, self._meas)
                for j in range(nt):
                    val = const_tags[j]
                    if val is None:
                        val = self._escape_tag_value(tag_cols[j][i])
                    if PyBytes_GET_SIZE(val) == 0:
                        continue
                    textbuf_add(b, <bytes>self._tag_prefix[j])
                    textbuf_add(b, val)
                first = True
                for k in range(nf):
                    x = fp[k][i]
                    if not isfinite(x):
                        self.fields_omitted += 1
                        continue
                    pre = <bytes>self._field_prefix[k]
                    textbuf_reserve(b, PyBytes_GET_SIZE(pre) + 41)
                    b.data[b.len] = c' ' if first else c','
                    b.len += 1
                    first = False
                    textbuf_put(b, PyBytes_AS_STRING(pre), PyBytes_GET_SIZE(pre))
                    b.len += fmt_double(b.data + b.len, x)
                for k in range(ni):
                    pre = <bytes>self._field_prefix[nf + k]
                    textbuf_reserve(b, PyBytes_GET_SIZE(pre) + 24)
                    b.data[b.len] = c' ' if first else c','
                    b.len += 1
                    first = False
                    textbuf_put(b, PyBytes_AS_STRING(pre), PyBytes_GET_SIZE(pre))
                    b.len += fmt_int64(b.data + b.len, ip[k][i])
                    b.data[b.len] = c'i'
                    b.len += 1
                for k in range(ns):
                    pre = <bytes>self._field_prefix[nf + ni + k]
                    textbuf_reserve(b, 1)
                    b.data[b.len] = c' ' if first else c','
                    b.len += 1
                    first = False
                    textbuf_add(b, pre)
                    textbuf_add(b, escape_string_field(strs[k][i]))
                if first:  # every field omitted: no line
                    b.len = line_start
                    self.rows_skipped += 1
                    continue
                textbuf_reserve(b, 23)
                if has_time:
                    b.data[b.len] = c' '
                    b.len += 1
                    b.len += fmt_int64(b.data + b.len, tv[i])
                b.data[b.len] = c'\n'
                b.len += 1
                self.rows_written += 1
            return PyBytes_FromStringAndSize(b.data, b.len)
        finally:
            free(fp)
            free(ip)
            b.len = 0
            if b.cap > (16 << 20):  # don't keep a huge buffer after one outsized batch
                free(b.data)
                b.data = NULL
                b.cap = 0
