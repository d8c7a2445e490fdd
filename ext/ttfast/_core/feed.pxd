# C-level interface of ttfast._core.feed (the dxLink FEED_DATA decoder).
#
# Public contract for other compiled modules (e.g. the candle store) — keep it stable:
#   cdef class EventBatch:
#       cdef readonly str event_type      # e.g. "Candle"
#       cdef readonly tuple fields        # column names, in layout order
#       cdef readonly Py_ssize_t size     # number of events (== len(batch))
#       cpdef object column(self, str name)
#           -> a real, C-contiguous 1-D numpy array of length `size`
#              (int64 for long/int fields, float64 for doubles, bool, object for
#              strings/chars/enums), or None when `name` is not in the layout.
#              Columns are materialized lazily and cached: repeated calls return the same
#              array object (treat it as read-only). The numeric columns of a batch share one
#              memory block (each array is a view with .base = that block, .flags.owndata
#              False), and so do its object columns.
# Everything whose name starts with an underscore is private to feed.pyx and its feed_*.pxi parts.
from libc.stdint cimport int64_t, uint8_t


cdef class _StrCache:
    # direct-mapped cache of recently seen short ASCII strings (symbols), keyed by their bytes
    cdef void** _slots
    cdef Py_ssize_t _mask
    cdef int _alloc(self) except -1
    cdef object get(self, const unsigned char* s, Py_ssize_t n)


cdef class _FrameData:
    # one decoded frame: parsed values (8-byte slots + a tag byte each, row-major per group)
    cdef object src                # the bytes object string references point into
    cdef const char* base
    cdef Py_ssize_t length
    cdef int64_t* slots
    cdef uint8_t* tags
    cdef Py_ssize_t nslots
    cdef Py_ssize_t cap


cdef class _Layout:
    cdef readonly str event_type
    cdef readonly tuple fields
    cdef bytes type_utf8
    cdef bytes kinds               # one ColumnKind byte (or KIND_INFER) per field
    cdef dict index                # field name -> column position
    cdef Py_ssize_t n
    cdef bytes pos                 # int32 per field: its row in the batch's numeric or object
                                   # block (-1 for KIND_INFER fields, built on their own)
    cdef Py_ssize_t n_num          # fields stored in the numeric block (int64/float64/bool)
    cdef Py_ssize_t n_obj          # fields stored in the object block (str/char/enum)


cdef class _Block:
    # one allocation holding several columns of a batch; the column arrays are views on it
    # (their .base). nobj > 0: the block holds that many PyObject* references (NULL = unset).
    cdef void* data
    cdef Py_ssize_t nobj


cdef class EventBatch:
    cdef readonly str event_type
    cdef readonly tuple fields
    cdef readonly Py_ssize_t size
    cdef _FrameData _data
    cdef _Layout _layout
    cdef _StrCache _cache
    cdef Py_ssize_t _start         # first slot of this batch in _data
    cdef list _cols                # materialized columns (None until built)
    cdef _Block _nblock            # numeric columns (allocated at the first numeric column)
    cdef _Block _oblock            # object columns (allocated at the first object column)
    cpdef object column(self, str name)
    cdef object _build(self, Py_ssize_t j)
