# C-level interface of ttfast._core.indicators (O(1) streaming EMA / WMA / HMA / MACD).
#
# For compiled callers (the worker's per-candle loop): hold the cdef classes below and call the
# *_raw methods; they never touch Python objects, never raise and may run without the GIL.
# Contract of the raw methods: the caller passes a finite double (check with isfinite first; a
# non-finite input would poison the running sums); results are NaN while not ready.
#   update_raw(x)  commits a closed bar and returns the committed value;
#   revise_raw(x)  returns the value of the still-forming bar as a pure function of the committed
#                  state (no mutation; call it any number of times);
#   update_many(x, n, out)  commits n bars from a C array (non-finite inputs are skipped and
#                  counted, out[i] = NaN for them); returns the number skipped. `out` may be NULL.
#   reset_raw()    forgets every committed bar (the Python-level reset()).
# A committed value equals the last revised value bit for bit when the close did not change.

cdef struct EmaState:
    double k              # 2 / (n + 1)
    double e              # current EMA (valid once count >= n, or >= 1 in "first" mode)
    double seed_sum       # running sum of the first n inputs (TA-Lib seed)
    Py_ssize_t n
    Py_ssize_t count      # inputs accepted
    bint first            # seed mode "first" (pandas ewm adjust=False / TradingView ta.ema)
    bint fused            # EMA step as fma(x - e, k, e): mirrors TA-Lib 0.8's FMA clone

cdef struct WmaState:
    double* ring          # last n inputs; ring[pos] is the oldest (next trailing value)
    double div            # n(n+1)/2
    double dn             # n as double
    double S              # periodSub (TA-Lib): sum of the window
    double P              # periodSum (TA-Lib) after "P -= S": weights 0..n-1 of the window
    double S_pre          # re-anchor prefix sums (n-1 newest values, oldest first), valid
    double P_pre          #   when the next output re-anchors (cd == 1)
    double last           # last committed output (NaN while not ready)
    Py_ssize_t n
    Py_ssize_t pos
    Py_ssize_t count
    Py_ssize_t cd         # TA-Lib 0.8 re-anchor countdown (8n, decremented before each output)

cdef struct MacdOut:
    double macd
    double signal
    double hist

cdef struct MacdState:
    EmaState fast
    EmaState slow
    EmaState sig
    Py_ssize_t skip       # inputs the fast EMA ignores (slow - fast in "talib" mode)
    Py_ssize_t count
    MacdOut last          # last committed output (NaN while not ready)
    double prev_hist      # hist of the bar before the last committed one (colour rule)

cdef struct HmaState:
    WmaState half
    WmaState full
    WmaState outer
    double* hist          # last `lookback` committed HMA values (ring), for direction
    Py_ssize_t lookback
    Py_ssize_t hpos
    Py_ssize_t hcount     # committed HMA values seen
    double last           # last committed HMA value
    int direction         # 1 up, -1 down, 0 none (tie keeps previous state)

# MACD histogram colour codes (index into HIST_COLORS); -1 = no value.
cdef enum:
    HIST_ABOVE_RISING = 0
    HIST_ABOVE_FALLING = 1
    HIST_BELOW_RISING = 2
    HIST_BELOW_FALLING = 3

cdef int hist_color_code(double hist, double prev) noexcept nogil


cdef class _Indicator:
    # The slow path the four indicators share, written once (Python-level reset, extend, rebuild
    # and the count of skipped non-finite inputs) over two hooks each class implements with its
    # own kernel: reset_raw() forgets every committed bar (what reset() does, callable from C),
    # _commit_many(x, n) = update_many(x, n, NULL).
    cdef void reset_raw(self) noexcept nogil
    cdef Py_ssize_t _commit_many(self, const double* x, Py_ssize_t n) noexcept nogil


cdef class Ema(_Indicator):
    cdef EmaState st
    cdef double update_raw(self, double x) noexcept nogil
    cdef double revise_raw(self, double x) noexcept nogil
    cdef Py_ssize_t update_many(self, const double* x, Py_ssize_t n, double* out) noexcept nogil


cdef class Wma(_Indicator):
    cdef WmaState st
    cdef double update_raw(self, double x) noexcept nogil
    cdef double revise_raw(self, double x) noexcept nogil
    cdef Py_ssize_t update_many(self, const double* x, Py_ssize_t n, double* out) noexcept nogil


cdef class Macd(_Indicator):
    cdef MacdState st
    cdef readonly str seed
    cdef MacdOut update_raw(self, double x) noexcept nogil
    cdef MacdOut revise_raw(self, double x) noexcept nogil
    # colour code of the last committed hist / of a revised hist (vs the last committed one)
    cdef int color_code(self) noexcept nogil
    cdef int color_code_for(self, double hist) noexcept nogil
    cdef Py_ssize_t update_many(self, const double* x, Py_ssize_t n, MacdOut* out) noexcept nogil


cdef class Hma(_Indicator):
    cdef HmaState st
    cdef double update_raw(self, double x) noexcept nogil
    cdef double revise_raw(self, double x) noexcept nogil
    # direction after committing / of a revised value: 1 up, -1 down, 0 none
    cdef int direction_code(self) noexcept nogil
    cdef int direction_code_for(self, double value) noexcept nogil
    cdef Py_ssize_t update_many(self, const double* x, Py_ssize_t n, double* out) noexcept nogil
