# C-level interface of ttfast._core.candles (the ring-buffered candle store).
#
# Public contract for other compiled modules (worker loop, indicators) — keep it stable:
#   * CandleSeries.ring holds the visible bars of one symbol, sorted by dxFeed index
#     (== chronological), CONTIGUOUS in memory. The index is UNSIGNED (uint64_t): the seconds
#     in its top 32 bits pass 2**31 on 2038-01-19, where a signed index would turn negative;
#     bar times range over [0, 2**32 * 1000) ms (1970-01-01 .. 2106-02-07). bar k (0 = oldest) of column c is
#     ring.f[c][ring.start + k]; use the inline accessors below. Pointers are valid until the
#     next call that mutates the store (apply / apply_bar / discard); never keep them longer.
#   * Changes holds one ChangeRec per symbol with a visible change in one apply() call,
#     in first-touched order; Changes.series[i] is the CandleSeries of Changes.recs[i].
# Everything whose name starts with an underscore is private to candles.pyx.
cimport cython
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint64_t

# double columns of a bar (index into Bar.f / Ring.f)
cdef enum:
    CF_OPEN = 0
    CF_HIGH = 1
    CF_LOW = 2
    CF_CLOSE = 3
    CF_VOLUME = 4
    CF_VWAP = 5
    CF_BID_VOLUME = 6
    CF_ASK_VOLUME = 7
    CF_IMP_VOLATILITY = 8
    CF_OPEN_INTEREST = 9
    CF_NDOUBLE = 10

# ChangeRec.flags bits (also exported to Python as CHANGE_* constants)
cdef enum:
    CH_SNAPSHOT = 0x01       # a snapshot completed and replaced the series (rebuild all)
    CH_REVISED_LAST = 0x02   # the bar that was last before this apply() was rewritten
    CH_APPENDED = 0x04       # bars newer than the previous last bar were added
    CH_CORRECTED = 0x08      # a bar older than the previous last bar was written (history edit)
    CH_REMOVED = 0x10        # bars were removed (REMOVE_EVENT)
    CH_EVICTED = 0x20        # bars were dropped at the old end because of the capacity


cdef struct Bar:
    uint64_t index
    int64_t time
    int64_t count
    double f[10]


cdef struct Ring:
    Py_ssize_t start         # slot of the oldest bar
    Py_ssize_t n             # number of bars
    Py_ssize_t nbuf          # allocated slots per column
    uint64_t* index
    int64_t* time
    int64_t* count
    double* f[10]


cdef struct ChangeRec:
    int flags
    Py_ssize_t appended      # bars newer than the previous last bar (all bars after SNAPSHOT)
    Py_ssize_t removed       # bars actually deleted by REMOVE_EVENT
    Py_ssize_t evicted       # bars dropped by the capacity limit
    Py_ssize_t first         # position (0 = oldest) of the first bar that is new or changed


cdef class Changes
cdef class CandleStore


@cython.final
cdef class CandleSeries:
    cdef readonly str symbol
    cdef readonly Py_ssize_t capacity
    cdef Ring ring                 # visible bars
    cdef Ring _staging             # snapshot being received (not visible)
    cdef Bar* _txbuf               # held TX_PENDING events outside a snapshot: a circular
    cdef int* _txflags             # buffer of at most `capacity` events, oldest at _tx_head
    cdef Py_ssize_t _tx_n, _tx_cap, _tx_head
    cdef bint _in_snapshot, _snapshot_done, _building, _ready, _snip, _snip_pending
    cdef bint _resume              # resume mode: snapshots that begin now merge (resume())
    cdef bint _merging             # the snapshot being received began in resume mode
    cdef uint64_t _merge_lo        # index of the row that ended it: the oldest bar it covers
    cdef Py_ssize_t _st_removed, _st_evicted, _st_events
    # per-apply change tracking
    cdef uint64_t _epoch
    cdef bint _base_none
    cdef uint64_t _base_last
    cdef int _touch_state          # 0 nothing touched, 1 _min_touched valid, 2 everything
    cdef uint64_t _min_touched
    cdef int _ch_flags
    cdef Py_ssize_t _ch_removed, _ch_evicted
    cdef object __weakref__
    cdef Py_ssize_t _maxbuf(self) noexcept
    cdef int _begin_tracking(self, Changes ch, uint64_t epoch) except -1
    cdef void _touch(self, uint64_t idx) noexcept
    cdef int _visible_op(self, const Bar* b, int flags, CandleStore st) except -1
    cdef int _staging_op(self, const Bar* b, int flags) except -1
    cdef int _tx_push(self, const Bar* b, int flags, CandleStore st) except -1
    cdef int _publish(self, Changes ch, CandleStore st) except -1
    cdef int _merge(self, Changes ch, CandleStore st) except -1
    cdef int _event(self, const Bar* b, int flags, Changes ch, CandleStore st) except -1


cdef class SymbolChange:
    cdef readonly str symbol
    cdef readonly CandleSeries series
    cdef readonly int flags
    cdef readonly Py_ssize_t appended
    cdef readonly Py_ssize_t removed
    cdef readonly Py_ssize_t evicted
    cdef readonly Py_ssize_t first


@cython.final
cdef class Changes:
    cdef readonly list series      # CandleSeries per record
    cdef ChangeRec* recs
    cdef Py_ssize_t n
    cdef Py_ssize_t _cap
    cdef ChangeRec _small[4]       # recs storage for up to 4 records (no malloc)
    cdef PyObject** _touched       # series touched during the call (owned refs) -> series
    cdef Py_ssize_t _tn, _tcap
    cdef PyObject* _tsmall[16]     # _touched storage for up to 16 series (no malloc)
    cdef int _add(self, CandleSeries s) except -1
    cdef int _finalize(self) except -1
    cdef SymbolChange _record(self, Py_ssize_t i)


@cython.final
cdef class CandleStore:
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t max_symbols
    cdef dict _by_symbol
    cdef uint64_t _epoch
    cdef double* _nan
    cdef int64_t* _zero
    cdef Py_ssize_t _scratch
    cdef readonly Py_ssize_t events
    cdef readonly Py_ssize_t evicted
    cdef readonly Py_ssize_t removed
    cdef readonly Py_ssize_t rejected
    cdef readonly Py_ssize_t snapshots
    cdef readonly Py_ssize_t pending_dropped   # held TX_PENDING events dropped (hold full)
    cdef readonly Py_ssize_t symbols_refused   # new symbols refused (max_symbols reached)
    cdef readonly Py_ssize_t rows_refused      # rows skipped because their symbol was refused
    cdef PyObject* _ckey[128]      # apply()'s symbol cache (owned refs), see _cache_clear
    cdef PyObject* _cval[128]
    cdef void _cache_clear(self) noexcept
    cdef int _ensure_scratch(self, Py_ssize_t n) except -1
    cdef CandleSeries _series_for(self, object symbol, bint create)


cdef inline Py_ssize_t series_len(CandleSeries s) noexcept:
    return s.ring.n

cdef inline const double* series_column(CandleSeries s, int col) noexcept:
    """Pointer to bar 0 (oldest) of double column `col` (CF_*); series_len(s) values."""
    return s.ring.f[col] + s.ring.start

cdef inline const int64_t* series_time(CandleSeries s) noexcept:
    return s.ring.time + s.ring.start

cdef inline const uint64_t* series_index(CandleSeries s) noexcept:
    return s.ring.index + s.ring.start

cdef inline const int64_t* series_count(CandleSeries s) noexcept:
    return s.ring.count + s.ring.start
