# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""Ring-buffered candle store following dxFeed's eventFlags model (spec dxlink.md §6.6).

Consumes Candle batches (the decoder's EventBatch, read through its C-level column() from
feed.pxd, or any ttfast.Batch: .event_type and .column(name) giving numpy columns; its length is
that of its eventSymbol column) without creating Python objects per candle, and keeps per symbol
a fixed-capacity, chronologically sorted, contiguous set of C columns. Touches nothing but its own
memory: no I/O, no imports of the asyncio shell.

Semantics (identical to tests/oracles/candles.py, which is §6.6 written literally):
* SNAPSHOT_BEGIN starts a snapshot for the symbol (held events are discarded), SNAPSHOT_END or
  SNAPSHOT_SNIP ends it; held events become visible with the first event that is neither
  TX_PENDING nor inside a snapshot; a completed snapshot REPLACES the symbol's bars.
* Resume mode (resume(symbol), set by the streamer on a reconnect that resubscribes from the
  newest bar): a snapshot that begins in it covers only [its END/SNIP row, now] and MERGES
  instead: stored bars in that range it does not hold are removed, its bars are written over
  the stored ones by index (oldest first), older bars stay, and the series stays ready.
* Bars are keyed by dxFeed index (time-ordered); a write to an existing index replaces the bar;
  REMOVE_EVENT deletes the bar with that index and never becomes a bar itself.
* Capacity: the bar map is bounded; inserting a new index into a full map evicts the oldest
  bar (or drops the new bar when it is older than every stored bar). A snapshot is applied to an
  empty bounded map in arrival order, so a newest-first snapshot keeps its newest `capacity` bars.
* Bounds against bad feeds: a TX_PENDING group held outside a snapshot keeps at most `capacity`
  events (the oldest give way: `pending_dropped`); at most `max_symbols` series (rows of a refused
  new symbol are skipped: `symbols_refused`, `rows_refused`; discard() frees a slot).
* The index is unsigned 64-bit: (seconds << 32) passes 2**63 on 2038-01-19, and bars stay in
  time order up to 2106-02-07. Rows whose eventFlags is not in [0, 2**31), or, without an index
  column, whose sequence is not in [0, 2**22) or time not in [0, 2**32 * 1000), are skipped and
  counted in `rejected`: one unsigned compare each, so the hot loops stay as they were.
"""
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_DECREF
from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_New, PyList_SET_ITEM
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memmove, memcpy, memset
from libc.math cimport NAN
cimport cython
cimport numpy as cnp
import numpy as np
import operator
from collections import namedtuple

from ttfast._core.feed cimport EventBatch
from ttfast._core.common cimport (TX_PENDING, REMOVE_EVENT, SNAPSHOT_BEGIN, SNAPSHOT_END,
                                  SNAPSHOT_SNIP)

cnp.import_array()

CHANGE_SNAPSHOT = CH_SNAPSHOT
CHANGE_REVISED_LAST = CH_REVISED_LAST
CHANGE_APPENDED = CH_APPENDED
CHANGE_CORRECTED = CH_CORRECTED
CHANGE_REMOVED = CH_REMOVED
CHANGE_EVICTED = CH_EVICTED

_DOUBLE_FIELDS = ("open", "high", "low", "close", "volume", "vwap", "bidVolume", "askVolume",
                  "impVolatility", "openInterest")
cdef tuple _DOUBLE_FIELDS_T = _DOUBLE_FIELDS
_DOUBLE_ATTRS = ("open", "high", "low", "close", "volume", "vwap", "bid_volume", "ask_volume",
                 "imp_volatility", "open_interest")

CandleBar = namedtuple("CandleBar", ("time", "open", "high", "low", "close", "volume", "count",
                                     "vwap", "bid_volume", "ask_volume", "imp_volatility",
                                     "open_interest", "index"))
CandleBar.__doc__ = "One bar of a CandleSeries (NaN where the feed did not send a value)."


cdef enum:
    _MAX_SEQUENCE = 0x3FFFFF         # sequence: the low 22 bits of the index
    _MAX_FLAGS = 0x7FFFFFFF          # eventFlags is a Java int; negative values are garbage

cdef extern from *:
    """
    /* first time (ms) whose seconds no longer fit the index's top 32 bits: 2106-02-07T06:28:16Z */
    #define TTFAST_CANDLE_TIME_LIMIT 4294967296000ULL
    """
    const uint64_t _TIME_LIMIT "TTFAST_CANDLE_TIME_LIMIT"
_RANGE = "[0, 2**32 * 1000) ms (1970-01-01 .. 2106-02-07)"


cdef inline uint64_t index_from_time(int64_t time_ms, int64_t sequence) noexcept nogil:
    """dxFeed index = (time/1000 << 32) | (time mod 1000 << 22) | sequence (§6.4), unsigned.

    Exact for time_ms in [0, _TIME_LIMIT) and sequence in [0, 2**22): callers check both.
    """
    cdef uint64_t t = <uint64_t>time_ms
    return ((t // 1000) << 32) | ((t % 1000) << 22) | <uint64_t>sequence


cdef inline int64_t time_from_index(uint64_t index) noexcept nogil:
    return <int64_t>((index >> 32) * 1000 + ((index >> 22) & 0x3FF))


def candle_index(int64_t time_ms, int64_t sequence=0):
    """The dxFeed Candle index (unsigned, < 2**64) of a bar starting at `time_ms` (epoch ms)
    with `sequence`; time_ms in [0, 2**32 * 1000), sequence in [0, 2**22), else ValueError."""
    if <uint64_t>time_ms >= _TIME_LIMIT:
        raise ValueError(f"time {time_ms} outside the dxFeed index range {_RANGE}")
    if <uint64_t>sequence > _MAX_SEQUENCE:
        raise ValueError(f"sequence {sequence} outside [0, 2**22)")
    return index_from_time(time_ms, sequence)


def candle_time(index):
    """The bar start time in epoch ms encoded in a dxFeed Candle index.

    Takes the unsigned index or its signed 64-bit form (a Java long: negative after 2038).
    """
    index = operator.index(index)
    if not -0x8000000000000000 <= index <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"index {index} is not a 64-bit number")
    return time_from_index(<uint64_t>(index & 0xFFFFFFFFFFFFFFFF))


# ----------------------------------------------------------------------------------------------
# Ring: bars sorted by index, contiguous in [start, start + n) of each column buffer.

cdef inline void ring_init(Ring* r) noexcept nogil:
    cdef int c
    r.start = 0
    r.n = 0
    r.nbuf = 0
    r.index = NULL
    r.time = NULL
    r.count = NULL
    for c in range(CF_NDOUBLE):
        r.f[c] = NULL


cdef void ring_free(Ring* r) noexcept nogil:
    cdef int c
    free(r.index)
    free(r.time)
    free(r.count)
    for c in range(CF_NDOUBLE):
        free(r.f[c])
    ring_init(r)


cdef inline void ring_move(Ring* r, Py_ssize_t dst, Py_ssize_t src, Py_ssize_t k) noexcept nogil:
    """Move k slots from src to dst (absolute slots, overlapping allowed) in every column."""
    cdef int c
    if k <= 0 or dst == src:
        return
    memmove(r.index + dst, r.index + src, k * sizeof(uint64_t))
    memmove(r.time + dst, r.time + src, k * sizeof(int64_t))
    memmove(r.count + dst, r.count + src, k * sizeof(int64_t))
    for c in range(CF_NDOUBLE):
        memmove(r.f[c] + dst, r.f[c] + src, k * sizeof(double))


cdef inline void ring_put(Ring* r, Py_ssize_t slot, const Bar* b) noexcept nogil:
    cdef int c
    r.index[slot] = b.index
    r.time[slot] = b.time
    r.count[slot] = b.count
    for c in range(CF_NDOUBLE):
        r.f[c][slot] = b.f[c]


cdef inline void ring_get(const Ring* r, Py_ssize_t slot, Bar* b) noexcept nogil:
    cdef int c
    b.index = r.index[slot]
    b.time = r.time[slot]
    b.count = r.count[slot]
    for c in range(CF_NDOUBLE):
        b.f[c] = r.f[c][slot]


cdef inline void* _regrow(void* old, Py_ssize_t newbuf, Py_ssize_t dst, Py_ssize_t src,
                          Py_ssize_t n, size_t item) noexcept nogil:
    """A new buffer of newbuf items holding old[src:src+n] at dst (one copy); NULL if OOM."""
    cdef char* p = <char*>malloc(newbuf * item)
    if p != NULL:
        if n:
            memcpy(p + dst * item, <char*>old + src * item, n * item)
        free(old)
    return p


cdef enum:
    _RING_JUMP = 1 << 15


cdef int ring_make_room(Ring* r, bint front, Py_ssize_t maxbuf) except -1 nogil:
    """Ensure a free slot before (front) or after the bars: grow or re-center the buffer.

    Growth doubles up to `maxbuf` (> capacity); re-centering gives 3/4 of the free space to the
    side that needs it, so both directions cost O(1) amortized moves per bar. Past _RING_JUMP
    slots growth jumps straight to `maxbuf`: a big snapshot (prepended bar by bar, newest
    first) is then copied once, not log2(n) times, and only the slots written ever become
    resident memory (a large block's untouched pages cost address space only).
    """
    cdef Py_ssize_t n = r.n, nbuf = r.nbuf, newbuf, free_, new_start
    cdef int c
    cdef void* p
    cdef bint grow = nbuf - n < n // 2 + 1 and nbuf < maxbuf
    if grow:
        newbuf = nbuf * 2 if nbuf >= 8 else 16
        if newbuf > _RING_JUMP or newbuf > maxbuf:
            newbuf = maxbuf
    else:
        newbuf = nbuf
    free_ = newbuf - n
    if free_ <= 0:
        with gil:
            raise MemoryError("candle ring full")   # unreachable: maxbuf > capacity >= n
    if front:
        new_start = free_ - free_ // 4
    else:
        new_start = free_ // 4
    if not grow:
        ring_move(r, new_start, r.start, n)
        r.start = new_start
        return 0
    p = _regrow(r.index, newbuf, new_start, r.start, n, sizeof(uint64_t))
    if p == NULL:
        with gil:
            raise MemoryError()
    r.index = <uint64_t*>p
    p = _regrow(r.time, newbuf, new_start, r.start, n, sizeof(int64_t))
    if p == NULL:
        with gil:
            raise MemoryError()
    r.time = <int64_t*>p
    p = _regrow(r.count, newbuf, new_start, r.start, n, sizeof(int64_t))
    if p == NULL:
        with gil:
            raise MemoryError()
    r.count = <int64_t*>p
    for c in range(CF_NDOUBLE):
        p = _regrow(r.f[c], newbuf, new_start, r.start, n, sizeof(double))
        if p == NULL:
            with gil:
                raise MemoryError()
        r.f[c] = <double*>p
    r.nbuf = newbuf
    r.start = new_start
    return 0


cdef inline Py_ssize_t ring_lower_bound(const Ring* r, uint64_t idx) noexcept nogil:
    """Position (0..n) of the first bar with index >= idx."""
    cdef Py_ssize_t lo = 0, hi = r.n, mid
    cdef const uint64_t* a = r.index + r.start
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < idx:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef int ring_insert(Ring* r, Py_ssize_t pos, const Bar* b, Py_ssize_t maxbuf) except -1 nogil:
    """Insert b at position pos (0..n), shifting the shorter side."""
    cdef bint front = pos < r.n - pos
    if front:
        if r.start == 0:
            ring_make_room(r, True, maxbuf)
        ring_move(r, r.start - 1, r.start, pos)
        r.start -= 1
    else:
        if r.start + r.n >= r.nbuf:
            ring_make_room(r, False, maxbuf)
        ring_move(r, r.start + pos + 1, r.start + pos, r.n - pos)
    r.n += 1
    ring_put(r, r.start + pos, b)
    return 0


cdef inline void ring_delete(Ring* r, Py_ssize_t pos) noexcept nogil:
    if pos < r.n - 1 - pos:
        ring_move(r, r.start + 1, r.start, pos)
        r.start += 1
    else:
        ring_move(r, r.start + pos, r.start + pos + 1, r.n - 1 - pos)
    r.n -= 1
    if r.n == 0:
        r.start = r.nbuf // 2


# write outcome
cdef enum:
    W_DROPPED = 0    # older than every bar of a full ring: not stored (counts as evicted)
    W_REPLACED = 1
    W_INSERTED = 2


cdef int ring_write(Ring* r, const Bar* b, Py_ssize_t capacity, Py_ssize_t maxbuf,
                    Py_ssize_t* evicted) except -1 nogil:
    cdef Py_ssize_t n = r.n, pos
    cdef uint64_t idx = b.index
    if n > 0:
        if idx == r.index[r.start + n - 1]:                 # forming bar (hot path)
            ring_put(r, r.start + n - 1, b)
            return W_REPLACED
        if idx > r.index[r.start + n - 1]:                  # new newest bar
            if n >= capacity:
                r.start += 1
                r.n -= 1
                evicted[0] += 1
            if r.start + r.n >= r.nbuf:
                ring_make_room(r, False, maxbuf)
            ring_put(r, r.start + r.n, b)
            r.n += 1
            return W_INSERTED
        if idx < r.index[r.start]:                          # older than all (snapshots)
            pos = 0
        else:
            pos = ring_lower_bound(r, idx)
            if r.index[r.start + pos] == idx:
                ring_put(r, r.start + pos, b)
                return W_REPLACED
        if n >= capacity:
            if pos == 0:                                    # older than everything kept
                evicted[0] += 1
                return W_DROPPED
            r.start += 1
            r.n -= 1
            pos -= 1
            evicted[0] += 1
        ring_insert(r, pos, b, maxbuf)
        return W_INSERTED
    if capacity <= 0:
        evicted[0] += 1
        return W_DROPPED
    if r.nbuf == 0:
        ring_make_room(r, True, maxbuf)
    ring_put(r, r.start, b)
    r.n = 1
    return W_INSERTED


cdef inline bint ring_remove(Ring* r, uint64_t idx) noexcept nogil:
    cdef Py_ssize_t pos
    if r.n == 0:
        return False
    pos = ring_lower_bound(r, idx)
    if pos < r.n and r.index[r.start + pos] == idx:
        ring_delete(r, pos)
        return True
    return False


cdef object _column_copy_d(const double* p, Py_ssize_t n):
    cdef cnp.ndarray a = np.empty(n, dtype=np.float64)
    if n:
        memcpy(cnp.PyArray_DATA(a), p, n * sizeof(double))
    return a


cdef object _column_copy_i(const int64_t* p, Py_ssize_t n):
    cdef cnp.ndarray a = np.empty(n, dtype=np.int64)
    if n:
        memcpy(cnp.PyArray_DATA(a), p, n * sizeof(int64_t))
    return a


cdef object _column_copy_u(const uint64_t* p, Py_ssize_t n):
    cdef cnp.ndarray a = np.empty(n, dtype=np.uint64)
    if n:
        memcpy(cnp.PyArray_DATA(a), p, n * sizeof(uint64_t))
    return a


cdef object _bar_tuple(const Ring* r, Py_ssize_t slot):
    return CandleBar(r.time[slot], r.f[CF_OPEN][slot], r.f[CF_HIGH][slot], r.f[CF_LOW][slot],
                     r.f[CF_CLOSE][slot], r.f[CF_VOLUME][slot], r.count[slot],
                     r.f[CF_VWAP][slot], r.f[CF_BID_VOLUME][slot], r.f[CF_ASK_VOLUME][slot],
                     r.f[CF_IMP_VOLATILITY][slot], r.f[CF_OPEN_INTEREST][slot], r.index[slot])


# ----------------------------------------------------------------------------------------------

@cython.final
cdef class CandleSeries:
    """The bars of one candle symbol, oldest→newest (a live view owned by a CandleStore).

    Columns (`.time`, `.close`, ...) are fresh numpy COPIES taken at access time, so they stay
    valid and unchanged while the store keeps updating; read `series.close` once per use.
    """

    def __cinit__(self):
        ring_init(&self.ring)
        ring_init(&self._staging)
        self._txbuf = NULL
        self._txflags = NULL
        self._tx_n = 0
        self._tx_cap = 0
        self._tx_head = 0

    def __dealloc__(self):
        ring_free(&self.ring)
        ring_free(&self._staging)
        free(self._txbuf)
        free(self._txflags)

    def __init__(self, *args, **kwargs):
        raise TypeError("CandleSeries objects are created by CandleStore")

    # ---------------- state machine (spec §6.6) ----------------

    cdef Py_ssize_t _maxbuf(self) noexcept:
        return self.capacity + self.capacity // 2 + 16

    cdef int _begin_tracking(self, Changes ch, uint64_t epoch) except -1:
        if self._epoch == epoch:
            return 0
        self._epoch = epoch
        self._base_none = self.ring.n == 0
        self._base_last = self.ring.index[self.ring.start + self.ring.n - 1] if self.ring.n else 0
        self._touch_state = 0
        self._min_touched = 0
        self._ch_flags = 0
        self._ch_removed = 0
        self._ch_evicted = 0
        return ch._add(self)

    cdef void _touch(self, uint64_t idx) noexcept:
        if self._touch_state == 0:
            self._touch_state = 1
            self._min_touched = idx
        elif self._touch_state == 1 and idx < self._min_touched:
            self._min_touched = idx

    cdef int _visible_op(self, const Bar* b, int flags, CandleStore st) except -1:
        cdef Py_ssize_t ev = 0
        cdef int w
        if flags & REMOVE_EVENT:
            if ring_remove(&self.ring, b.index):
                self._ch_removed += 1
                st.removed += 1
                self._touch(b.index)
            return 0
        w = ring_write(&self.ring, b, self.capacity, self._maxbuf(), &ev)
        if ev:
            self._ch_evicted += ev
            st.evicted += ev
        if w == W_DROPPED:
            return 0
        if not self._base_none:
            if b.index == self._base_last:
                self._ch_flags |= CH_REVISED_LAST
            elif b.index < self._base_last:
                self._ch_flags |= CH_CORRECTED
        self._touch(b.index)
        return 0

    cdef int _staging_op(self, const Bar* b, int flags) except -1:
        cdef Py_ssize_t ev = 0
        self._st_events += 1
        if flags & REMOVE_EVENT:
            if ring_remove(&self._staging, b.index):
                self._st_removed += 1
            return 0
        ring_write(&self._staging, b, self.capacity, self._maxbuf(), &ev)
        self._st_evicted += ev
        return 0

    cdef int _tx_push(self, const Bar* b, int flags, CandleStore st) except -1:
        """Hold a TX_PENDING event until its transaction ends.

        The hold is a circular buffer of at most `capacity` events: a transaction that never
        ends (a broken feed) cannot grow it further; the oldest held event gives way and is
        counted in the store's `pending_dropped`.
        """
        cdef void* p
        cdef Py_ssize_t cap, k
        if self._tx_n >= self.capacity:    # full: then _tx_cap == _tx_n == capacity
            k = self._tx_head
            self._txbuf[k] = b[0]
            self._txflags[k] = flags
            k += 1
            self._tx_head = 0 if k == self._tx_cap else k
            st.pending_dropped += 1
            return 0
        if self._tx_n >= self._tx_cap:     # not full, so _tx_head == 0: plain growth
            cap = self._tx_cap * 2 if self._tx_cap else 16
            if cap > self.capacity:
                cap = self.capacity
            p = realloc(self._txbuf, cap * sizeof(Bar))
            if p == NULL:
                raise MemoryError()
            self._txbuf = <Bar*>p
            p = realloc(self._txflags, cap * sizeof(int))
            if p == NULL:
                raise MemoryError()
            self._txflags = <int*>p
            self._tx_cap = cap
        self._txbuf[self._tx_n] = b[0]
        self._txflags[self._tx_n] = flags
        self._tx_n += 1
        return 0

    cdef int _publish(self, Changes ch, CandleStore st) except -1:
        cdef Ring tmp
        self._begin_tracking(ch, st._epoch)
        tmp = self.ring
        self.ring = self._staging
        self._staging = tmp
        ring_free(&self._staging)          # the old bars' memory is released, not kept twice
        self._ch_flags |= CH_SNAPSHOT
        self._base_none = True
        self._touch_state = 2
        self._ch_removed += self._st_removed
        self._ch_evicted += self._st_evicted
        st.removed += self._st_removed
        st.evicted += self._st_evicted
        st.snapshots += 1
        self._st_removed = 0
        self._st_evicted = 0
        self._st_events = 0
        self._snapshot_done = False
        self._building = False
        self._ready = True
        self._snip = self._snip_pending
        return 0

    cdef int _merge(self, Changes ch, CandleStore st) except -1:
        """A completed snapshot that began in resume mode becomes visible by MERGING.

        It covers [its END/SNIP row's index, now]: the stored bars in that range that it does
        not hold are removed (the server deleted them), then its bars are written over the
        stored ones by index, oldest first, like live events. Older stored bars stay.
        """
        cdef Ring* sg = &self._staging
        cdef Py_ssize_t j, k
        cdef uint64_t idx
        cdef Bar b
        self._begin_tracking(ch, st._epoch)
        j = ring_lower_bound(&self.ring, self._merge_lo)
        while j < self.ring.n:
            idx = self.ring.index[self.ring.start + j]
            k = ring_lower_bound(sg, idx)
            if k < sg.n and sg.index[sg.start + k] == idx:
                j += 1
                continue
            ring_delete(&self.ring, j)     # the next bar moves to position j
            self._ch_removed += 1
            st.removed += 1
            self._touch(idx)
        for j in range(sg.n):
            ring_get(sg, sg.start + j, &b)
            self._visible_op(&b, 0, st)
        self._ch_evicted += self._st_evicted
        st.evicted += self._st_evicted
        ring_free(&self._staging)
        self._st_removed = 0
        self._st_evicted = 0
        self._st_events = 0
        self._snapshot_done = False
        self._building = False
        self._merging = False
        self._ready = True
        return 0

    cdef int _event(self, const Bar* b, int flags, Changes ch, CandleStore st) except -1:
        cdef Py_ssize_t j, k
        if flags & SNAPSHOT_BEGIN:
            self._in_snapshot = True
            self._snapshot_done = False
            self._building = True
            self._merging = self._resume
            if not self._merging:
                self._ready = False        # (a merge keeps the series ready: bars stay valid)
            self._tx_n = 0
            self._tx_head = 0
            self._staging.n = 0
            self._staging.start = self._staging.nbuf // 2
            self._st_removed = 0
            self._st_evicted = 0
            self._st_events = 0
        if self._in_snapshot and flags & (SNAPSHOT_END | SNAPSHOT_SNIP):
            self._in_snapshot = False
            self._snapshot_done = True
            self._snip_pending = (flags & SNAPSHOT_SNIP) != 0
            self._merge_lo = b.index
        if (flags & TX_PENDING) or self._in_snapshot:
            if self._building:
                return self._staging_op(b, flags)
            return self._tx_push(b, flags, st)
        if self._snapshot_done:
            self._staging_op(b, flags)
            if self._merging:
                return self._merge(ch, st)
            return self._publish(ch, st)
        self._begin_tracking(ch, st._epoch)
        if self._tx_n:
            k = self._tx_head
            for j in range(self._tx_n):        # in arrival order, from the oldest held
                self._visible_op(&self._txbuf[k], self._txflags[k], st)
                k += 1
                if k == self._tx_cap:
                    k = 0
            self._tx_n = 0
            self._tx_head = 0
        return self._visible_op(b, flags, st)

    # ---------------- Python API ----------------

    def __len__(self):
        return self.ring.n

    def __bool__(self):
        return self.ring.n > 0

    @property
    def ready(self):
        """True once a snapshot completed (or apply_bar fed the series) and no new snapshot is
        being received; while a re-snapshot streams in, the previous bars stay visible."""
        return self._ready

    @property
    def snip(self):
        """True when the last completed snapshot was cut by the server (SNAPSHOT_SNIP)."""
        return self._snip

    @property
    def in_snapshot(self):
        """True between SNAPSHOT_BEGIN and the snapshot becoming visible."""
        return self._building

    @property
    def resuming(self):
        """True in resume mode (CandleStore.resume): a snapshot that begins merges."""
        return self._resume

    @property
    def pending(self):
        """Number of received events not yet visible (snapshot in progress or TX_PENDING)."""
        return self._st_events if self._building else self._tx_n

    @property
    def last(self):
        """The newest bar (usually the still-forming one) as a CandleBar, or None if empty."""
        if self.ring.n == 0:
            return None
        return _bar_tuple(&self.ring, self.ring.start + self.ring.n - 1)

    def __getitem__(self, Py_ssize_t i):
        """Bar i (0 = oldest, negative from the newest) as a CandleBar."""
        cdef Py_ssize_t n = self.ring.n
        if i < 0:
            i += n
        if i < 0 or i >= n:
            raise IndexError("candle position out of range")
        return _bar_tuple(&self.ring, self.ring.start + i)

    def __iter__(self):
        # re-checks the live length each step: the store may change the ring between yields
        cdef Py_ssize_t i = 0
        while i < self.ring.n:
            yield _bar_tuple(&self.ring, self.ring.start + i)
            i += 1

    def position(self, int64_t time_ms):
        """Position of the bar starting at time_ms (sequence 0), or -1 when absent."""
        if <uint64_t>time_ms >= _TIME_LIMIT:
            return -1
        cdef uint64_t idx = index_from_time(time_ms, 0)
        cdef Py_ssize_t pos = ring_lower_bound(&self.ring, idx)
        if pos < self.ring.n and self.ring.index[self.ring.start + pos] == idx:
            return pos
        return -1

    @property
    def time(self):
        return _column_copy_i(self.ring.time + self.ring.start, self.ring.n)

    @property
    def index(self):
        """The dxFeed indices (uint64: past 2038 they exceed 2**63)."""
        return _column_copy_u(self.ring.index + self.ring.start, self.ring.n)

    @property
    def count(self):
        return _column_copy_i(self.ring.count + self.ring.start, self.ring.n)

    @property
    def open(self):
        return _column_copy_d(self.ring.f[CF_OPEN] + self.ring.start, self.ring.n)

    @property
    def high(self):
        return _column_copy_d(self.ring.f[CF_HIGH] + self.ring.start, self.ring.n)

    @property
    def low(self):
        return _column_copy_d(self.ring.f[CF_LOW] + self.ring.start, self.ring.n)

    @property
    def close(self):
        return _column_copy_d(self.ring.f[CF_CLOSE] + self.ring.start, self.ring.n)

    @property
    def volume(self):
        return _column_copy_d(self.ring.f[CF_VOLUME] + self.ring.start, self.ring.n)

    @property
    def vwap(self):
        return _column_copy_d(self.ring.f[CF_VWAP] + self.ring.start, self.ring.n)

    @property
    def bid_volume(self):
        return _column_copy_d(self.ring.f[CF_BID_VOLUME] + self.ring.start, self.ring.n)

    @property
    def ask_volume(self):
        return _column_copy_d(self.ring.f[CF_ASK_VOLUME] + self.ring.start, self.ring.n)

    @property
    def imp_volatility(self):
        return _column_copy_d(self.ring.f[CF_IMP_VOLATILITY] + self.ring.start, self.ring.n)

    @property
    def open_interest(self):
        return _column_copy_d(self.ring.f[CF_OPEN_INTEREST] + self.ring.start, self.ring.n)

    def columns(self):
        """All columns as a dict name -> numpy copy (oldest→newest)."""
        cdef int c
        out = {"time": self.time, "index": self.index, "count": self.count}
        for c in range(CF_NDOUBLE):
            out[_DOUBLE_ATTRS[c]] = _column_copy_d(self.ring.f[c] + self.ring.start,
                                                   self.ring.n)
        return out

    def __repr__(self):
        return (f"<CandleSeries {self.symbol!r} bars={self.ring.n}/{self.capacity} "
                f"ready={bool(self._ready)} snip={bool(self._snip)} pending={self.pending}>")


# ----------------------------------------------------------------------------------------------

cdef class SymbolChange:
    """What one apply() changed for one symbol (see Changes)."""

    @property
    def snapshot(self):
        return (self.flags & CH_SNAPSHOT) != 0

    @property
    def revised_last(self):
        return (self.flags & CH_REVISED_LAST) != 0

    @property
    def corrected(self):
        return (self.flags & CH_CORRECTED) != 0

    @property
    def history_changed(self):
        """True when bars before the previous last one changed: recompute from `first`."""
        return (self.flags & (CH_SNAPSHOT | CH_CORRECTED | CH_REMOVED)) != 0

    def as_tuple(self):
        return (self.flags, self.appended, self.removed, self.evicted, self.first)

    def __repr__(self):
        names = [n for bit, n in ((CH_SNAPSHOT, "SNAPSHOT"), (CH_REVISED_LAST, "REVISED_LAST"),
                                  (CH_APPENDED, "APPENDED"), (CH_CORRECTED, "CORRECTED"),
                                  (CH_REMOVED, "REMOVED"), (CH_EVICTED, "EVICTED"))
                 if self.flags & bit]
        return (f"SymbolChange({self.symbol!r}, {'|'.join(names) or '0'}, "
                f"appended={self.appended}, removed={self.removed}, evicted={self.evicted}, "
                f"first={self.first})")


@cython.final
cdef class Changes:
    """Per-symbol summary of one CandleStore.apply()/apply_bar() call."""

    def __cinit__(self):
        self.series = []
        self.recs = NULL
        self.n = 0
        self._cap = 0
        self._touched = self._tsmall
        self._tn = 0
        self._tcap = 16

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self._tn):
            Py_DECREF(<object>self._touched[i])
        if self._touched != self._tsmall:
            free(self._touched)
        if self.recs != self._small:
            free(self.recs)

    def __init__(self, *args, **kwargs):
        raise TypeError("Changes objects are created by CandleStore")

    cdef int _add(self, CandleSeries s) except -1:
        """Note a series touched by this call (first touch only; the caller checks).

        A C array, turned into `series` once by _finalize: appending to a list per symbol cost a
        list regrowth (realloc) every few symbols of every apply().
        """
        cdef PyObject** p
        if self._tn == self._tcap:
            if self._touched == self._tsmall:
                p = <PyObject**>malloc(2 * self._tcap * sizeof(PyObject*))
                if p != NULL:
                    memcpy(p, self._tsmall, self._tn * sizeof(PyObject*))
            else:
                p = <PyObject**>realloc(self._touched, 2 * self._tcap * sizeof(PyObject*))
            if p == NULL:
                raise MemoryError()
            self._touched = p
            self._tcap *= 2
        Py_INCREF(s)
        self._touched[self._tn] = <PyObject*>s
        self._tn += 1
        return 0

    cdef int _finalize(self) except -1:
        cdef Py_ssize_t m = self._tn, i, k = 0, pos
        cdef CandleSeries s
        cdef ChangeRec rec
        cdef list series
        if m == 0:
            return 0
        if m <= 4:
            self.recs = self._small          # the common live case: no malloc per apply()
        else:
            self.recs = <ChangeRec*>malloc(m * sizeof(ChangeRec))
            if self.recs == NULL:
                raise MemoryError()
        self._cap = m
        for i in range(m):
            s = <CandleSeries>self._touched[i]
            rec.flags = s._ch_flags
            rec.removed = s._ch_removed
            rec.evicted = s._ch_evicted
            if s._base_none:
                rec.appended = s.ring.n
            else:
                pos = ring_lower_bound(&s.ring, s._base_last)
                if pos < s.ring.n and s.ring.index[s.ring.start + pos] == s._base_last:
                    pos += 1
                rec.appended = s.ring.n - pos
            if s._touch_state == 2:
                rec.first = 0
            elif s._touch_state == 1:
                rec.first = ring_lower_bound(&s.ring, s._min_touched)
            else:
                rec.first = s.ring.n
            if rec.appended:
                rec.flags |= CH_APPENDED
            if rec.removed:
                rec.flags |= CH_REMOVED
            if rec.evicted:
                rec.flags |= CH_EVICTED
            if rec.flags:
                self.recs[k] = rec
                self._touched[k] = self._touched[i]    # compact in place (order kept)
                k += 1
            else:
                Py_DECREF(s)                           # the reference _add took
        self._tn = k                                   # (owned until `series` takes them)
        series = PyList_New(k)
        for i in range(k):
            PyList_SET_ITEM(series, i, <object>self._touched[i])   # takes the reference _add took
        self._tn = 0
        self.series = series
        self.n = k
        return 0

    cdef SymbolChange _record(self, Py_ssize_t i):
        cdef SymbolChange r = SymbolChange.__new__(SymbolChange)
        cdef CandleSeries s = <CandleSeries>self.series[i]
        r.symbol = s.symbol
        r.series = s
        r.flags = self.recs[i].flags
        r.appended = self.recs[i].appended
        r.removed = self.recs[i].removed
        r.evicted = self.recs[i].evicted
        r.first = self.recs[i].first
        return r

    def __len__(self):
        return self.n

    def __bool__(self):
        return self.n > 0

    def __iter__(self):
        cdef Py_ssize_t i
        for i in range(self.n):
            yield self._record(i)

    @property
    def symbols(self):
        return [(<CandleSeries>s).symbol for s in self.series]

    def __contains__(self, symbol):
        cdef Py_ssize_t i
        for i in range(self.n):
            if (<CandleSeries>self.series[i]).symbol == symbol:
                return True
        return False

    def __getitem__(self, key):
        """changes[i] (position) or changes[symbol] -> SymbolChange."""
        cdef Py_ssize_t i
        if isinstance(key, str):
            for i in range(self.n):
                if (<CandleSeries>self.series[i]).symbol == key:
                    return self._record(i)
            raise KeyError(key)
        i = key
        if i < 0:
            i += self.n
        if i < 0 or i >= self.n:
            raise IndexError("Changes index out of range")
        return self._record(i)

    def get(self, str symbol, default=None):
        try:
            return self[symbol]
        except KeyError:
            return default

    def __repr__(self):
        return f"Changes({list(self)!r})"


# ----------------------------------------------------------------------------------------------

cdef object _as_column(object a, str name, int typenum):
    cdef object dtype = _DTYPES[typenum]
    try:
        a = np.ascontiguousarray(a, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Candle column {name!r} cannot be read as {dtype}: {exc}") from None
    if cnp.PyArray_NDIM(<cnp.ndarray>a) != 1:
        raise ValueError(f"Candle column {name!r} is not one-dimensional")
    return a


cdef inline object _check_column(object a, str name, int typenum, Py_ssize_t n):
    """Column `a` (the batch's `name`, None if absent) as a C-contiguous 1-D array of `typenum`."""
    if a is None:
        return None
    if not (type(a) is cnp.ndarray and cnp.PyArray_TYPE(<cnp.ndarray>a) == typenum
            and cnp.PyArray_NDIM(<cnp.ndarray>a) == 1
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)):
        a = _as_column(a, name, typenum)
    if cnp.PyArray_DIMS(<cnp.ndarray>a)[0] != n:
        raise ValueError(f"Candle column {name!r} has {cnp.PyArray_DIMS(<cnp.ndarray>a)[0]} "
                         f"values for a batch of {n} events")
    return a


cdef dict _DTYPES = {cnp.NPY_OBJECT: np.dtype(object), cnp.NPY_INT64: np.dtype(np.int64),
                     cnp.NPY_FLOAT64: np.dtype(np.float64)}


@cython.final
cdef class CandleStore:
    """Per-symbol, fixed-capacity candle series built from dxLink Candle batches (spec §6.6).

    store = CandleStore(capacity=4096)
    changes = store.apply(batch)          # a Candle EventBatch, applied in order
    for ch in changes:                    # one SymbolChange per symbol with a visible change
        s = ch.series                     # == store[ch.symbol]
        if ch.history_changed:            # SNAPSHOT / CORRECTED / REMOVED
            recompute(s, start=ch.first)  # bars before `first` are unchanged
        else:
            if ch.revised_last:           # previous last bar rewritten (forming bar update);
                update_last(s[-1 - ch.appended])
            for k in range(len(s) - ch.appended, len(s)):
                append(s[k])              # previous last bar is now final

    Memory is bounded by `capacity` bars (and as many held TX_PENDING events) per symbol and
    `max_symbols` symbols: a new symbol beyond max_symbols is refused (its rows are skipped and
    counted, see stats()); discard(symbol) frees its slot.
    """

    def __cinit__(self, Py_ssize_t capacity=4096, *, Py_ssize_t max_symbols=10_000):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        if max_symbols < 1:
            raise ValueError("max_symbols must be >= 1")
        self.capacity = capacity
        self.max_symbols = max_symbols
        self._by_symbol = {}
        memset(self._ckey, 0, sizeof(self._ckey))
        memset(self._cval, 0, sizeof(self._cval))
        self._epoch = 0
        self._nan = NULL
        self._zero = NULL
        self._scratch = 0

    def __dealloc__(self):
        self._cache_clear()
        free(self._nan)
        free(self._zero)

    cdef void _cache_clear(self) noexcept:
        """Drop the symbol cache of apply(): symbol object (identity) -> CandleSeries.

        The cache holds a reference to each key, so the address of a cached symbol object cannot
        be reused by another object while it is cached, and one to each series; it is cleared
        whenever a series leaves the store. The decoder hands out the same str object for a
        symbol every time, so live batches find their series without a dict lookup.
        """
        cdef int k
        for k in range(128):
            if self._ckey[k] != NULL:
                Py_DECREF(<object>self._ckey[k])
                Py_DECREF(<object>self._cval[k])
                self._ckey[k] = NULL
                self._cval[k] = NULL

    cdef int _ensure_scratch(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t i, cap
        cdef void* p
        if n <= self._scratch:
            return 0
        cap = n if n > 256 else 256
        p = realloc(self._nan, cap * sizeof(double))
        if p == NULL:
            raise MemoryError()
        self._nan = <double*>p
        p = realloc(self._zero, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError()
        self._zero = <int64_t*>p
        for i in range(cap):
            self._nan[i] = NAN
            self._zero[i] = 0
        self._scratch = cap
        return 0

    cdef CandleSeries _series_for(self, object symbol, bint create):
        cdef PyObject* p = PyDict_GetItem(self._by_symbol, symbol)
        cdef CandleSeries s
        if p != NULL:
            return <CandleSeries>p
        if not create or len(self._by_symbol) >= self.max_symbols:
            return None                    # the caller counts a refused symbol
        s = CandleSeries.__new__(CandleSeries)
        s.symbol = symbol
        s.capacity = self.capacity
        self._by_symbol[symbol] = s
        return s

    def apply(self, batch):
        """Apply a Candle EventBatch in order; return the Changes it made visible.

        Each row is applied (counted in `events`) or skipped and counted once:
        * `rejected`: eventSymbol not a non-empty str; eventFlags not in [0, 2**31); with no
          index column (index derived from time and sequence), sequence not in [0, 2**22) or
          time not in [0, 2**32 * 1000) ms;
        * `rows_refused`: a new symbol while the store holds max_symbols (the symbol is counted
          once per call in `symbols_refused`).
        The other rows of the batch are applied normally.
        """
        cdef Py_ssize_t n, i, c
        cdef object et
        cdef EventBatch eb
        cdef object a
        cdef object sym_a, flags_a, index_a, time_a, seq_a, count_a
        cdef list dcols = [None] * CF_NDOUBLE
        cdef str f
        if isinstance(batch, EventBatch):
            # the decoder's batch: call its C method directly (no bound-method / vectorcall)
            eb = <EventBatch>batch
            if eb.event_type != "Candle":
                raise ValueError(f"CandleStore.apply needs a Candle batch, got {eb.event_type!r}")
            n = eb.size
            sym_a = _check_column(eb.column("eventSymbol"), "eventSymbol", cnp.NPY_OBJECT, n)
            flags_a = _check_column(eb.column("eventFlags"), "eventFlags", cnp.NPY_INT64, n)
            index_a = _check_column(eb.column("index"), "index", cnp.NPY_INT64, n)
            time_a = _check_column(eb.column("time"), "time", cnp.NPY_INT64, n)
            seq_a = (None if index_a is not None else
                     _check_column(eb.column("sequence"), "sequence", cnp.NPY_INT64, n))
            count_a = _check_column(eb.column("count"), "count", cnp.NPY_INT64, n)
            for c in range(CF_NDOUBLE):
                f = <str>_DOUBLE_FIELDS_T[c]
                dcols[c] = _check_column(eb.column(f), f, cnp.NPY_FLOAT64, n)
        else:
            et = batch.event_type
            if et != "Candle":
                raise ValueError(f"CandleStore.apply needs a Candle batch, got {et!r}")
            getcol = batch.column
            # the batch's length is that of its eventSymbol column (no Python-level __len__)
            sym_a = getcol("eventSymbol")
            if sym_a is None:
                raise ValueError("Candle batch has no eventSymbol column")
            n = len(sym_a)
            sym_a = _check_column(sym_a, "eventSymbol", cnp.NPY_OBJECT, n)
            flags_a = _check_column(getcol("eventFlags"), "eventFlags", cnp.NPY_INT64, n)
            index_a = _check_column(getcol("index"), "index", cnp.NPY_INT64, n)
            time_a = _check_column(getcol("time"), "time", cnp.NPY_INT64, n)
            seq_a = (None if index_a is not None else
                     _check_column(getcol("sequence"), "sequence", cnp.NPY_INT64, n))
            count_a = _check_column(getcol("count"), "count", cnp.NPY_INT64, n)
            for c in range(CF_NDOUBLE):
                f = <str>_DOUBLE_FIELDS_T[c]
                dcols[c] = _check_column(getcol(f), f, cnp.NPY_FLOAT64, n)
        if sym_a is None:
            raise ValueError("Candle batch has no eventSymbol column")
        if index_a is None and time_a is None:
            raise ValueError("Candle batch has neither an index nor a time column")
        self._ensure_scratch(n)

        cdef PyObject** syms = <PyObject**>cnp.PyArray_DATA(<cnp.ndarray>sym_a)
        cdef const int64_t* flags = (self._zero if flags_a is None
                                     else <int64_t*>cnp.PyArray_DATA(<cnp.ndarray>flags_a))
        cdef const int64_t* index = (NULL if index_a is None
                                     else <int64_t*>cnp.PyArray_DATA(<cnp.ndarray>index_a))
        cdef const int64_t* time = (NULL if time_a is None
                                    else <int64_t*>cnp.PyArray_DATA(<cnp.ndarray>time_a))
        cdef const int64_t* seq = (self._zero if seq_a is None
                                   else <int64_t*>cnp.PyArray_DATA(<cnp.ndarray>seq_a))
        cdef const int64_t* count = (self._zero if count_a is None
                                     else <int64_t*>cnp.PyArray_DATA(<cnp.ndarray>count_a))
        cdef const double* d[10]
        for c in range(CF_NDOUBLE):
            a = dcols[c]
            d[c] = self._nan if a is None else <double*>cnp.PyArray_DATA(<cnp.ndarray>a)

        cdef Changes ch = Changes.__new__(Changes)
        cdef CandleSeries s = None, ns
        cdef set refused = None
        cdef int64_t fv
        cdef PyObject* last_sym = NULL
        cdef PyObject* sp
        cdef Bar b
        cdef int fl
        cdef Py_ssize_t slot, h, k, r, lim, skip_to = 0
        cdef double* dst
        cdef const double* src
        cdef uint64_t epoch
        cdef PyObject** ckey = self._ckey
        cdef PyObject** cval = self._cval
        self._epoch += 1
        epoch = self._epoch
        for i in range(n):
            if i < skip_to:
                continue                   # consumed by a snapshot run below
            fv = flags[i]
            if <uint64_t>fv > _MAX_FLAGS:     # negative or wider than a Java int
                self.rejected += 1
                continue
            if index != NULL:
                b.index = <uint64_t>index[i]
                b.time = time[i] if time != NULL else time_from_index(b.index)
            else:
                b.time = time[i]
                if <uint64_t>b.time >= _TIME_LIMIT or <uint64_t>seq[i] > _MAX_SEQUENCE:
                    self.rejected += 1
                    continue
                b.index = index_from_time(b.time, seq[i])
            sp = syms[i]
            if sp != last_sym:
                # multiplicative hash into 64 pairs of slots, 2-way: collisions stay rare
                h = <Py_ssize_t>(((<uint64_t>sp >> 4) * <uint64_t>0x9E3779B97F4A7C15) >> 58) << 1
                if ckey[h] == sp:
                    s = <CandleSeries>cval[h]
                elif ckey[h + 1] == sp:
                    s = <CandleSeries>cval[h + 1]
                else:
                    obj = <object>sp
                    if not isinstance(obj, str) or len(<str>obj) == 0:
                        self.rejected += 1
                        continue
                    ns = self._series_for(obj, True)
                    if ns is None:             # max_symbols reached: skip, count
                        self.rows_refused += 1
                        if refused is None:
                            refused = set()
                        if obj not in refused:
                            refused.add(obj)
                            self.symbols_refused += 1
                        continue
                    s = ns
                    if ckey[h] != NULL:
                        h += 1
                    if ckey[h] != NULL:
                        Py_DECREF(<object>ckey[h])
                        Py_DECREF(<object>cval[h])
                    Py_INCREF(obj)
                    Py_INCREF(s)
                    ckey[h] = sp
                    cval[h] = <PyObject*>s
                last_sym = sp
            fl = <int>fv
            self.events += 1
            # hot path: a plain update of the forming (last) bar, nothing held, already tracked
            if (fl == 0 and not s._building and s._tx_n == 0 and s._epoch == epoch
                    and s.ring.n > 0
                    and b.index == s.ring.index[s.ring.start + s.ring.n - 1]):
                slot = s.ring.start + s.ring.n - 1
                s.ring.time[slot] = b.time
                s.ring.count[slot] = count[i]
                for c in range(CF_NDOUBLE):
                    s.ring.f[c][slot] = d[c][i]
                if not s._base_none:
                    if b.index == s._base_last:
                        s._ch_flags |= CH_REVISED_LAST
                    elif b.index < s._base_last:   # the last bar was removed in this call
                        s._ch_flags |= CH_CORRECTED
                if s._touch_state == 0:
                    s._touch_state = 1
                    s._min_touched = b.index
                elif s._touch_state == 1 and b.index < s._min_touched:
                    s._min_touched = b.index
                continue
            # hot path: next older bar of a newest-first snapshot (prepend into staging)
            if ((fl & ~TX_PENDING) == 0 and s._in_snapshot and s._staging.n > 0
                    and b.index < s._staging.index[s._staging.start]):
                if s._staging.n >= s.capacity:     # older than every bar of a full map
                    s._st_evicted += 1
                    s._st_events += 1
                    continue
                if s._staging.start == 0:
                    ring_make_room(&s._staging, True, s._maxbuf())
                # take the whole run of following rows that also qualify (same symbol object,
                # plain or TX_PENDING, index strictly decreasing), as far as room and capacity
                # allow, and copy it column by column (reversed) instead of row by row
                k = 1
                if index != NULL:
                    lim = s.capacity - s._staging.n
                    if lim > s._staging.start:
                        lim = s._staging.start
                    if lim > n - i:
                        lim = n - i
                    while (k < lim and syms[i + k] == sp
                           and (flags[i + k] & ~TX_PENDING) == 0
                           and <uint64_t>index[i + k] < <uint64_t>index[i + k - 1]):
                        k += 1
                slot = s._staging.start - 1 + i          # row r goes to slot - r
                if k == 1:
                    s._staging.index[slot - i] = b.index
                    s._staging.time[slot - i] = b.time
                else:
                    for r in range(i, i + k):
                        s._staging.index[slot - r] = <uint64_t>index[r]
                    if time != NULL:
                        for r in range(i, i + k):
                            s._staging.time[slot - r] = time[r]
                    else:
                        for r in range(i, i + k):
                            s._staging.time[slot - r] = time_from_index(<uint64_t>index[r])
                for r in range(i, i + k):
                    s._staging.count[slot - r] = count[r]
                for c in range(CF_NDOUBLE):
                    dst = s._staging.f[c]
                    src = d[c]
                    for r in range(i, i + k):
                        dst[slot - r] = src[r]
                s._staging.start -= k
                s._staging.n += k
                s._st_events += k
                self.events += k - 1
                skip_to = i + k
                continue
            b.count = count[i]
            for c in range(CF_NDOUBLE):
                b.f[c] = d[c][i]
            s._event(&b, fl, ch, self)
        ch._finalize()
        return ch

    def apply_bar(self, str symbol, int64_t time, double open, double high, double low,
                  double close, double volume, *, int64_t count=0, double vwap=NAN,
                  int64_t sequence=0):
        """Apply one bar from a non-dxLink source (flags 0; same index replaces, newer appends).

        The series is marked ready (it is its own source of truth) unless a dxLink snapshot is
        being received for the same symbol. ValueError for an empty symbol, a time outside
        [0, 2**32 * 1000) ms or a sequence outside [0, 2**22). A new symbol while the store
        holds max_symbols is refused: nothing changes, counted in `symbols_refused` and
        `rows_refused`.
        """
        cdef Bar b
        cdef int c
        if not symbol:
            raise ValueError("empty candle symbol")
        if <uint64_t>time >= _TIME_LIMIT:
            raise ValueError(f"time {time} outside the dxFeed index range {_RANGE}")
        if <uint64_t>sequence > _MAX_SEQUENCE:
            raise ValueError(f"sequence {sequence} outside [0, 2**22)")
        for c in range(CF_NDOUBLE):
            b.f[c] = NAN
        b.time = time
        b.index = index_from_time(time, sequence)
        b.count = count
        b.f[CF_OPEN] = open
        b.f[CF_HIGH] = high
        b.f[CF_LOW] = low
        b.f[CF_CLOSE] = close
        b.f[CF_VOLUME] = volume
        b.f[CF_VWAP] = vwap
        cdef Changes ch = Changes.__new__(Changes)
        cdef CandleSeries s = self._series_for(symbol, True)
        if s is None:
            self.symbols_refused += 1
            self.rows_refused += 1
            return ch
        self._epoch += 1
        s._event(&b, 0, ch, self)
        self.events += 1
        if not s._building:
            s._ready = True
        ch._finalize()
        return ch

    def __getitem__(self, str symbol):
        cdef CandleSeries s = self._series_for(symbol, False)
        if s is None:
            raise KeyError(symbol)
        return s

    def get(self, str symbol, default=None):
        cdef CandleSeries s = self._series_for(symbol, False)
        return default if s is None else s

    def __contains__(self, symbol):
        return symbol in self._by_symbol

    def __len__(self):
        return len(self._by_symbol)

    def __iter__(self):
        return iter(list(self._by_symbol))

    def symbols(self):
        """Symbols with a series (including ones still waiting for their snapshot)."""
        return list(self._by_symbol)

    def resume(self, str symbol):
        """Prepare `symbol` to be resubscribed from its newest bar (after a reconnect).

        Returns that bar's start time (epoch ms), the fromTime to subscribe with, and puts the
        series in resume mode: a snapshot that begins from now on covers only [that time, now],
        so it MERGES into the series instead of replacing it. When it completes, the stored bars
        from its END/SNIP row's index on (the oldest bar it covers) that it does not hold are
        removed, its bars are written over the stored ones by index, and the older bars stay;
        Changes reports that like live events (REVISED_LAST, APPENDED, CORRECTED, REMOVED,
        EVICTED), never SNAPSHOT, and the series stays `ready` throughout.

        Returns None, and ends resume mode, when there is nothing to resume from: an unknown
        symbol, a series without a completed snapshot (not `ready`) or without bars. Its next
        snapshot then replaces it, as usual. cancel_resume() ends the mode too.
        """
        cdef CandleSeries s = self._series_for(symbol, False)
        if s is None:
            return None
        if not s._ready or s.ring.n == 0:
            s._resume = False
            return None
        s._resume = True
        return s.ring.time[s.ring.start + s.ring.n - 1]

    def cancel_resume(self, str symbol):
        """End resume mode (a subscription from an older start): its next snapshot replaces
        the series again. A snapshot already being received keeps the mode it began in."""
        cdef CandleSeries s = self._series_for(symbol, False)
        if s is not None:
            s._resume = False

    def discard(self, str symbol):
        """Forget a symbol (e.g. after unsubscribing or when idle), freeing its memory and its
        slot under max_symbols; returns True if it was present."""
        self._cache_clear()
        return self._by_symbol.pop(symbol, None) is not None

    def stats(self):
        """Counters: symbols held, rows applied (`events`), bars evicted/removed, rows
        `rejected` as bad input, snapshots completed, held TX_PENDING events dropped because the
        hold was full (`pending_dropped`), new symbols refused at max_symbols (once per call,
        `symbols_refused`) and the rows skipped with them (`rows_refused`)."""
        return {"symbols": len(self._by_symbol), "events": self.events, "evicted": self.evicted,
                "removed": self.removed, "rejected": self.rejected,
                "snapshots": self.snapshots, "pending_dropped": self.pending_dropped,
                "symbols_refused": self.symbols_refused, "rows_refused": self.rows_refused}

    def __repr__(self):
        return (f"<CandleStore symbols={len(self._by_symbol)} capacity={self.capacity} "
                f"max_symbols={self.max_symbols}>")
