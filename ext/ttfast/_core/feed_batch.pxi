# Part of ttfast._core.feed, included by feed.pyx (not compiled on its own; see
# ext/README.md). Parsed frames and their columns: _FrameData (the slots of one frame),
# _Layout (fields + kinds of one event type), column blocks, and EventBatch (lazy numpy
# columns, to_dicts).

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
    """Column j of a field of unknown kind (KIND_INFER): float64 when every value is a number
    (or "NaN"/"Infinity"/"-Infinity"), else object. Typed columns are built by EventBatch._build.

    (`kind` is always KIND_INFER; testing it keeps gcc's code for _build's hot loops, into which
    this function is inlined, as fast as it was: without the test _build ran +0.3% instructions.)
    """
    cdef cnp.npy_intp dims = n
    cdef Py_ssize_t i, s, st, ln
    cdef double* dp
    cdef PyObject** op
    cdef PyObject* old
    cdef uint8_t t
    cdef const int64_t* slots = fd.slots
    cdef const uint8_t* tags = fd.tags
    cdef const unsigned char* base = <const unsigned char*>fd.base
    cdef double d
    cdef bint numeric = True
    if kind == KIND_INFER:
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
                    dp[i] = _absent_f64()
                elif t == TAG_STR:
                    _special_double(base + st, ln, &dp[i])
                elif t == TAG_STRU:
                    dp[i] = float(_decode_str(base + st, ln))
                elif parse_double(<const char*>base + st, ln, &dp[i]) != NP_OK:
                    raise MemoryError()
                s += stride
            return arr
    # object column (unknown fields holding non-numeric values)
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
        elif _absent_obj(t):
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
        dp[i] = _f64_at(slots, tags, s)
        s += stride


cdef inline void _fill_i64(const int64_t* slots, const uint8_t* tags, Py_ssize_t s,
                           Py_ssize_t stride, Py_ssize_t n, int64_t* ip) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        ip[i] = _i64_at(slots, tags, s)
        s += stride


cdef inline void _fill_bool(const uint8_t* tags, Py_ssize_t s, Py_ssize_t stride,
                            Py_ssize_t n, uint8_t* bp) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        bp[i] = _bool_at(tags, s)
        s += stride


cdef inline object _obj_value(_FrameData fd, _StrCache cache, Py_ssize_t s):
    """The Python value (str or None) of slot s of a string/char/enum column."""
    cdef uint8_t t = fd.tags[s]
    cdef const unsigned char* base = <const unsigned char*>fd.base
    if t == TAG_STR:
        return cache.get(base + _rstart(fd.slots[s]), _rlen(fd.slots[s]))
    if t == TAG_STRU:
        return _decode_str(base + _rstart(fd.slots[s]), _rlen(fd.slots[s]))
    if _absent_obj(t):
        return None
    # the parser stores nothing else in a string column
    raise RuntimeError(f"internal error: value tag {t} in a string column")


cdef int _fill_objects(_FrameData fd, _StrCache cache, Py_ssize_t s, Py_ssize_t stride,
                       Py_ssize_t n, PyObject** op) except -1:
    """Python values of a string/char/enum column (str or None) into op[0..n).

    Same mapping as _obj_value, written out: a call per value here cost +5% instructions on
    the decoder.candle100.columns gate case (gcc does not inline _obj_value); even the inline
    _absent_obj test cost +0.6% there, so it is written out too.
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
        elif t == TAG_NULL or t == TAG_MISSING:     # = _absent_obj(t)
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
                    v = _f64_at(slots, tags, s + j)
                elif k == COL_INT64:
                    v = _i64_at(slots, tags, s + j)
                elif k == COL_OBJECT:
                    v = _obj_value(self._data, self._cache, s + j)
                else:
                    v = _bool_at(tags, s + j)
                d[<str>fields[j]] = v
            out.append(d)
        return out

    def __repr__(self):
        return f"<EventBatch {self.event_type} x{self.size} fields={list(self.fields)}>"
