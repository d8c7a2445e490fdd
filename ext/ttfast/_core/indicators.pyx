# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""O(1) streaming technical indicators (EMA, WMA, HMA, MACD), bit-exact with TA-Lib 0.8.

What it is for: the worker updates indicators per candle (committed bars) and per tick (the
still-forming bar, `revise`) without a Python call per candle; users call the same objects from
Python, and the batch twins (`ema`, `wma`, `hma`, `macd`) run the very same C step functions
over numpy arrays, so batch and streaming give identical bits by construction.
What it may touch: numpy buffers passed in, its own malloc'ed rings, the `logging` module (a
warning when batch input had non-finite values). Nothing from the asyncio shell.

Layout: the C kernels (ema_*, wma_*, macd_*, hma_*: push = commit, peek = revise, O(1)), then the
slow path the four classes share (the `_Indicator` base: reset, extend, rebuild, skip counting),
then one class per indicator (its kernel bindings and Python wrappers), then the batch twins.

Exactness notes (see docs/README-indicators.md):
* EMA: `e = (x - e) * k + e`, seeded with the plain mean of the first n inputs. TA-Lib 0.8's
  wheel compiles TA_EMA / TA_MACD twice (``target_clones("default", "fma")``) and picks the
  clone by CPU: on an x86 CPU with FMA its EMA step is ``fma(x - e, k, e)`` (one rounding).
  We mirror that dispatch (`fma_mode()`), so our bits equal TA-Lib's on the machine we run on.
  On non-x86 CPUs we assume the plain expression (UNVERIFIED: not checked against an ARM wheel).
  Override with TTFAST_INDICATORS_FMA=0/1 or `set_fma_mode(True/False/None)`.
* WMA: TA-Lib's periodSum/periodSub recurrence with 0.8's re-anchor (countdown 8n, decremented
  before each output, window re-summed oldest first when it reaches <= 0). TA_WMA is not
  FMA-cloned; no contraction anywhere (-ffp-contract=off).
"""
import logging
import os

cimport cython

import numpy as np

cimport numpy as cnp
from libc.math cimport NAN, isfinite, isnan
from libc.stdlib cimport free, malloc
from libc.string cimport memset

cnp.import_array()

cdef extern from *:
    """
    #include <math.h>
    static int ttf_hw_fma = 0;
    static int ttf_cpu_has_fma(void) {
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        ttf_hw_fma = __builtin_cpu_supports("fma") ? 1 : 0;
    #endif
        return ttf_hw_fma;  /* UNVERIFIED for non-x86 TA-Lib builds: assume the plain step */
    }
    /* a*b + c with one rounding. The module is built for the baseline ISA (no -mfma), so the
       hardware instruction is issued by inline asm, only when the CPU has it; otherwise libm's
       correctly rounded software fma (identical result, slower). */
    static inline double ttf_fma(double a, double b, double c) {
    #if defined(__FMA__)
        return __builtin_fma(a, b, c);
    #elif (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
        if (__builtin_expect(ttf_hw_fma, 1)) {
            __asm__("vfmadd231sd %2, %1, %0" : "+x"(c) : "x"(a), "x"(b));
            return c;
        }
        return fma(a, b, c);
    #else
        return fma(a, b, c);
    #endif
    }
    """
    int ttf_cpu_has_fma() noexcept nogil
    double ttf_fma(double a, double b, double c) noexcept nogil

_log = logging.getLogger("ttfast.indicators")

HIST_COLORS = ("#26a69a", "#b2dfdb", "#ffcdd2", "#ff5252")
MACD_LINE_COLOR = "#2962FF"
SIGNAL_LINE_COLOR = "#ff6d00"
HMA_UP_COLOR = "#01FFFF"
HMA_DOWN_COLOR = "#FF66FE"


cdef inline object _direction_name(int d):
    # (no tuple[-1] here: the module is compiled with wraparound=False)
    if d > 0:
        return "up"
    if d < 0:
        return "down"
    return None

cdef bint _cpu_fma = ttf_cpu_has_fma() != 0
cdef bint _use_fma = _cpu_fma
cdef Py_ssize_t _skipped_total = 0


def _env_fma() -> None:
    global _use_fma
    v = os.environ.get("TTFAST_INDICATORS_FMA", "").strip()
    if v in ("0", "1"):
        _use_fma = v == "1"
    elif v not in ("", "auto"):
        raise ValueError(f"TTFAST_INDICATORS_FMA must be 0, 1 or auto, not {v!r}")


_env_fma()


def cpu_has_fma():
    """True when this CPU has FMA (TA-Lib 0.8 then runs its FMA clone of EMA/MACD)."""
    return bool(_cpu_fma)


def fma_mode():
    """True when new EMA/MACD states use the fused step `fma(x - e, k, e)`."""
    return bool(_use_fma)


def set_fma_mode(enabled=None):
    """Force the EMA step (True fused, False plain) or follow the CPU like TA-Lib (None).

    Affects indicators created (or batch functions called) afterwards; existing objects keep
    the mode they were built with.
    """
    global _use_fma
    _use_fma = _cpu_fma if enabled is None else bool(enabled)


def nan_skipped_total():
    """Non-finite inputs skipped by batch functions / rebuild / extend since import."""
    return _skipped_total


# --------------------------------------------------------------------------------------------
# EMA

cdef inline void ema_init(EmaState* s, Py_ssize_t n, bint first, bint fused) noexcept nogil:
    s.n = n
    s.k = 2.0 / <double>(n + 1)
    s.first = first
    s.fused = fused
    s.e = NAN
    s.seed_sum = 0.0
    s.count = 0


cdef inline void ema_reset(EmaState* s) noexcept nogil:
    s.e = NAN
    s.seed_sum = 0.0
    s.count = 0


cdef inline double ema_step(const EmaState* s, double x) noexcept nogil:
    if s.fused:
        return ttf_fma(x - s.e, s.k, s.e)
    return (x - s.e) * s.k + s.e


cdef inline bint ema_ready(const EmaState* s) noexcept nogil:
    return s.count >= (1 if s.first else s.n)


cdef inline double ema_push(EmaState* s, double x) noexcept nogil:
    s.count += 1
    if s.first:
        if s.count == 1:
            s.e = x
        else:
            s.e = ema_step(s, x)
        return s.e
    if s.count < s.n:
        s.seed_sum += x
        return NAN
    if s.count == s.n:
        s.seed_sum += x
        s.e = s.seed_sum / <double>s.n
        return s.e
    s.e = ema_step(s, x)
    return s.e


cdef inline double ema_peek(const EmaState* s, double x) noexcept nogil:
    cdef Py_ssize_t c = s.count + 1
    if s.first:
        return x if c == 1 else ema_step(s, x)
    if c < s.n:
        return NAN
    if c == s.n:
        return (s.seed_sum + x) / <double>s.n
    return ema_step(s, x)


# --------------------------------------------------------------------------------------------
# WMA (TA-Lib 0.8 recurrence + re-anchor schedule)

cdef inline void wma_reset(WmaState* s) noexcept nogil:
    memset(s.ring, 0, <size_t>s.n * sizeof(double))
    s.pos = 0
    s.count = 0
    s.S = 0.0
    s.P = 0.0
    s.S_pre = 0.0
    s.P_pre = 0.0
    s.cd = 8 * s.n
    s.last = NAN


cdef int wma_alloc(WmaState* s, Py_ssize_t n) except -1:
    s.ring = <double*>malloc(<size_t>n * sizeof(double))
    if s.ring == NULL:
        raise MemoryError()
    s.n = n
    s.dn = <double>n
    s.div = <double>((n * (n + 1)) >> 1)
    wma_reset(s)
    return 0


cdef struct _Sums:
    double S
    double P


cdef _Sums wma_prefix(const double* ring, Py_ssize_t n, Py_ssize_t pos) noexcept nogil:
    # Re-anchor sums of the n-1 newest values, oldest first (weights 1..n-1); the next input
    # completes them (S + x, P + x*n) exactly as TA-Lib 0.8 re-sums the whole window.
    # (Returns by value so callers' state can live in registers: no address escapes.)
    cdef _Sums r
    cdef double w
    cdef Py_ssize_t i
    cdef Py_ssize_t j = pos
    r.S = 0.0
    r.P = 0.0
    for i in range(1, n):
        j += 1
        if j == n:
            j = 0
        w = ring[j]
        r.S += w
        r.P += w * <double>i
    return r


cdef inline double wma_push(WmaState* s, double x) noexcept nogil:
    cdef double out
    cdef _Sums sums
    if s.n == 1:
        s.count += 1
        s.last = x
        return x
    if s.count < s.n - 1:
        s.S += x
        s.P += x * <double>(s.count + 1)
        s.ring[s.pos] = x
        s.pos += 1
        s.count += 1
        return NAN
    s.cd -= 1
    if s.cd <= 0:
        s.S = s.S_pre + x
        s.P = s.P_pre + x * s.dn
        s.cd = 8 * s.n
    else:
        s.S += x
        s.S -= s.ring[s.pos]
        s.P += x * s.dn
    s.ring[s.pos] = x
    s.pos += 1
    if s.pos == s.n:
        s.pos = 0
    out = s.P / s.div
    s.P -= s.S
    s.count += 1
    s.last = out
    if s.cd == 1:
        sums = wma_prefix(s.ring, s.n, s.pos)
        s.S_pre = sums.S
        s.P_pre = sums.P
    return out


cdef inline double wma_peek(const WmaState* s, double x) noexcept nogil:
    if s.n == 1:
        return x
    if s.count < s.n - 1:
        return NAN
    if s.cd <= 1:
        return (s.P_pre + x * s.dn) / s.div
    return (s.P + x * s.dn) / s.div


# --------------------------------------------------------------------------------------------
# MACD

cdef inline MacdOut macd_nan() noexcept nogil:
    cdef MacdOut o
    o.macd = NAN
    o.signal = NAN
    o.hist = NAN
    return o


cdef inline void macd_reset(MacdState* s) noexcept nogil:
    ema_reset(&s.fast)
    ema_reset(&s.slow)
    ema_reset(&s.sig)
    s.count = 0
    s.last = macd_nan()
    s.prev_hist = NAN


cdef inline MacdOut macd_push(MacdState* s, double x) noexcept nogil:
    cdef double f = NAN
    cdef double m, g
    cdef MacdOut o
    if s.count >= s.skip:
        f = ema_push(&s.fast, x)
    s.count += 1
    cdef double sl = ema_push(&s.slow, x)
    s.prev_hist = s.last.hist
    if not ema_ready(&s.slow):
        s.last = macd_nan()
        return s.last
    m = f - sl
    g = ema_push(&s.sig, m)
    if not ema_ready(&s.sig):
        s.last = macd_nan()
        return s.last
    o.macd = m
    o.signal = g
    o.hist = m - g
    s.last = o
    return o


cdef inline MacdOut macd_peek(const MacdState* s, double x) noexcept nogil:
    cdef double f = NAN
    cdef double m, g
    cdef MacdOut o
    if s.count >= s.skip:
        f = ema_peek(&s.fast, x)
    cdef double sl = ema_peek(&s.slow, x)
    if not s.slow.first and s.slow.count + 1 < s.slow.n:
        return macd_nan()
    m = f - sl
    if not s.sig.first and s.sig.count + 1 < s.sig.n:
        return macd_nan()
    g = ema_peek(&s.sig, m)
    o.macd = m
    o.signal = g
    o.hist = m - g
    return o


cdef int hist_color_code(double hist, double prev) noexcept nogil:
    if isnan(hist):
        return -1
    if hist >= 0.0:
        return HIST_ABOVE_RISING if hist > prev else HIST_ABOVE_FALLING
    return HIST_BELOW_RISING if hist > prev else HIST_BELOW_FALLING


# --------------------------------------------------------------------------------------------
# HMA

cdef inline void hma_reset(HmaState* s) noexcept nogil:
    wma_reset(&s.half)
    wma_reset(&s.full)
    wma_reset(&s.outer)
    memset(s.hist, 0, <size_t>s.lookback * sizeof(double))
    s.hpos = 0
    s.hcount = 0
    s.last = NAN
    s.direction = 0


cdef inline int hma_direction_for(const HmaState* s, double v) noexcept nogil:
    cdef double old
    if isnan(v):
        return 0
    if s.hcount >= s.lookback:
        old = s.hist[s.hpos]
        if v > old:
            return 1
        if v < old:
            return -1
    return s.direction


cdef inline double hma_push(HmaState* s, double x) noexcept nogil:
    cdef double h = wma_push(&s.half, x)
    cdef double f = wma_push(&s.full, x)
    cdef double v
    if s.full.count < s.full.n:
        return NAN
    v = wma_push(&s.outer, 2.0 * h - f)
    if s.outer.count < s.outer.n:
        return NAN
    s.direction = hma_direction_for(s, v)
    s.hist[s.hpos] = v
    s.hpos += 1
    if s.hpos == s.lookback:
        s.hpos = 0
    s.hcount += 1
    s.last = v
    return v


cdef inline double hma_peek(const HmaState* s, double x) noexcept nogil:
    cdef double h = wma_peek(&s.half, x)
    cdef double f = wma_peek(&s.full, x)
    if s.full.count + 1 < s.full.n:
        return NAN
    if s.outer.count + 1 < s.outer.n:
        return NAN
    return wma_peek(&s.outer, 2.0 * h - f)


cdef inline Py_ssize_t isqrt(Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t r = 0
    while (r + 1) * (r + 1) <= n:
        r += 1
    return r


# --------------------------------------------------------------------------------------------
# Python-facing helpers

cdef inline void _check(double x) except *:
    if not isfinite(x):
        raise ValueError(f"input must be a finite number, got {x!r}")


cdef object _as_closes(object closes):
    """float64 C-contiguous 1-D view of `closes` (array-like, or anything with `.close`)."""
    if not isinstance(closes, np.ndarray) and hasattr(closes, "close"):
        closes = closes.close
    arr = np.ascontiguousarray(closes, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"closes must be 1-D, got shape {arr.shape}")
    return arr


cdef void _note_skipped(str what, Py_ssize_t k):
    global _skipped_total
    if k:
        _skipped_total += k
        _log.warning("%s: skipped %d non-finite input value(s)", what, k)


cdef str _check_seed(str seed):
    if seed not in ("talib", "first"):
        raise ValueError(f"seed must be 'talib' or 'first', not {seed!r}")
    return seed


cdef inline Py_ssize_t _check_period(object n, str name) except -1:
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}")
    n = n.__index__()  # accepts numpy integers
    if n < 1 or n > 1_000_000:
        raise ValueError(f"{name} must be in 1..1000000, got {n}")
    return n


# --------------------------------------------------------------------------------------------
# The slow path shared by the four indicators

cdef class _Indicator:
    """Base of Ema, Wma, Macd and Hma: reset / extend / rebuild, written once over the hooks
    `reset_raw` and `_commit_many` (each class's own kernel). Not used on its own."""

    cdef void reset_raw(self) noexcept nogil:
        pass

    cdef Py_ssize_t _commit_many(self, const double* x, Py_ssize_t n) noexcept nogil:
        return 0

    def reset(self):
        """Forget every committed bar (the state of a new object)."""
        self.reset_raw()

    def extend(self, closes):
        """Commit every value of `closes` (an array, or a CandleSeries-like object with
        `.close`); non-finite ones are skipped, counted and logged. Returns the skip count."""
        cdef const double[::1] a = _as_closes(closes)
        cdef Py_ssize_t k
        with nogil:
            k = self._commit_many(&a[0] if a.shape[0] else NULL, a.shape[0])
        if k:
            _note_skipped(f"{type(self).__name__}.extend", k)
        return k

    def rebuild(self, closes):
        """reset() and replay `closes` (an array or a CandleSeries-like object with `.close`)."""
        self.reset_raw()
        return self.extend(closes)


# --------------------------------------------------------------------------------------------

cdef class Ema(_Indicator):
    """Exponential moving average, k = 2/(n+1); `seed="talib"` (mean of the first n inputs,
    first value at bar n-1) or `seed="first"` (seeded with the first input, value from bar 0)."""

    def __cinit__(self, n, str seed="talib"):
        ema_init(&self.st, _check_period(n, "n"), _check_seed(seed) == "first", _use_fma)

    cdef double update_raw(self, double x) noexcept nogil:
        return ema_push(&self.st, x)

    cdef double revise_raw(self, double x) noexcept nogil:
        return ema_peek(&self.st, x)

    cdef Py_ssize_t update_many(self, const double* x, Py_ssize_t n, double* out) noexcept nogil:
        cdef Py_ssize_t i, skipped = 0
        cdef double v
        # Work on a local copy: its address never escapes, so the compiler keeps the running
        # sums in registers (stores through `out` cannot alias them).
        cdef EmaState st = self.st
        for i in range(n):
            if isfinite(x[i]):
                v = ema_push(&st, x[i])
            else:
                skipped += 1
                v = NAN
            if out != NULL:
                out[i] = v
        self.st = st
        return skipped

    cdef void reset_raw(self) noexcept nogil:
        ema_reset(&self.st)

    cdef Py_ssize_t _commit_many(self, const double* x, Py_ssize_t n) noexcept nogil:
        return self.update_many(x, n, NULL)

    @property
    def n(self):
        return self.st.n

    @property
    def seed(self):
        return "first" if self.st.first else "talib"

    @property
    def fused(self):
        return bool(self.st.fused)

    @property
    def value(self):
        return self.st.e if ema_ready(&self.st) else NAN

    @property
    def ready(self):
        return ema_ready(&self.st)

    @property
    def count(self):
        return self.st.count

    @cython.always_allow_keywords(False)
    def update(self, double x):
        """Commit a closed bar; returns the committed value (NaN while not ready)."""
        _check(x)
        return ema_push(&self.st, x)

    @cython.always_allow_keywords(False)
    def revise(self, double x):
        """Value for the still-forming bar with close x; does not change the state."""
        _check(x)
        return ema_peek(&self.st, x)

    def __repr__(self):
        return f"Ema(n={self.st.n}, seed={self.seed!r}, count={self.st.count}, value={self.value!r})"


cdef class Wma(_Indicator):
    """Weighted moving average (newest weight n), TA-Lib 0.8 recurrence; first value at n-1."""

    def __cinit__(self, n):
        self.st.ring = NULL
        wma_alloc(&self.st, _check_period(n, "n"))

    def __dealloc__(self):
        free(self.st.ring)

    cdef double update_raw(self, double x) noexcept nogil:
        return wma_push(&self.st, x)

    cdef double revise_raw(self, double x) noexcept nogil:
        return wma_peek(&self.st, x)

    cdef Py_ssize_t update_many(self, const double* x, Py_ssize_t n, double* out) noexcept nogil:
        cdef Py_ssize_t i, skipped = 0
        cdef double v
        # Work on a local copy: its address never escapes, so the compiler keeps the running
        # sums in registers (stores through `out` cannot alias them).
        cdef WmaState st = self.st
        for i in range(n):
            if isfinite(x[i]):
                v = wma_push(&st, x[i])
            else:
                skipped += 1
                v = NAN
            if out != NULL:
                out[i] = v
        self.st = st
        return skipped

    cdef void reset_raw(self) noexcept nogil:
        wma_reset(&self.st)

    cdef Py_ssize_t _commit_many(self, const double* x, Py_ssize_t n) noexcept nogil:
        return self.update_many(x, n, NULL)

    @property
    def n(self):
        return self.st.n

    @property
    def ready(self):
        return self.st.count >= self.st.n

    @property
    def count(self):
        return self.st.count

    @property
    def value(self):
        return self.st.last

    @cython.always_allow_keywords(False)
    def update(self, double x):
        """Commit a closed bar; returns the committed value (NaN while not ready)."""
        _check(x)
        return wma_push(&self.st, x)

    @cython.always_allow_keywords(False)
    def revise(self, double x):
        _check(x)
        return wma_peek(&self.st, x)

    def __repr__(self):
        return f"Wma(n={self.st.n}, count={self.st.count}, value={self.value!r})"


cdef class Macd(_Indicator):
    """MACD(fast, slow, signal): macd = EMA_fast - EMA_slow, signal = EMA_signal(macd),
    hist = macd - signal. `seed="talib"` reproduces TA-Lib (fast seed window ends with the slow
    one; first output at bar slow-1 + signal-1, all three together); `seed="first"` seeds every
    EMA with its first input (pandas ewm(adjust=False)), output from bar 0. slow < fast are
    swapped (as TA-Lib does)."""

    def __cinit__(self, fast=12, slow=26, signal=9, str seed="talib"):
        cdef Py_ssize_t f = _check_period(fast, "fast")
        cdef Py_ssize_t sl = _check_period(slow, "slow")
        cdef Py_ssize_t g = _check_period(signal, "signal")
        cdef bint first = _check_seed(seed) == "first"
        if sl < f:
            f, sl = sl, f
        self.seed = seed
        ema_init(&self.st.fast, f, first, _use_fma)
        ema_init(&self.st.slow, sl, first, _use_fma)
        ema_init(&self.st.sig, g, first, _use_fma)
        self.st.skip = 0 if first else sl - f
        macd_reset(&self.st)

    cdef MacdOut update_raw(self, double x) noexcept nogil:
        return macd_push(&self.st, x)

    cdef MacdOut revise_raw(self, double x) noexcept nogil:
        return macd_peek(&self.st, x)

    cdef int color_code(self) noexcept nogil:
        return hist_color_code(self.st.last.hist, self.st.prev_hist)

    cdef int color_code_for(self, double hist) noexcept nogil:
        return hist_color_code(hist, self.st.last.hist)

    cdef Py_ssize_t update_many(self, const double* x, Py_ssize_t n, MacdOut* out) noexcept nogil:
        cdef Py_ssize_t i, skipped = 0
        cdef MacdOut v
        # Work on a local copy: its address never escapes, so the compiler keeps the running
        # sums in registers (stores through `out` cannot alias them).
        cdef MacdState st = self.st
        for i in range(n):
            if isfinite(x[i]):
                v = macd_push(&st, x[i])
            else:
                skipped += 1
                v = macd_nan()
            if out != NULL:
                out[i] = v
        self.st = st
        return skipped

    cdef void reset_raw(self) noexcept nogil:
        macd_reset(&self.st)

    cdef Py_ssize_t _commit_many(self, const double* x, Py_ssize_t n) noexcept nogil:
        return self.update_many(x, n, NULL)

    @property
    def fast_period(self):
        return self.st.fast.n

    @property
    def slow_period(self):
        return self.st.slow.n

    @property
    def signal_period(self):
        return self.st.sig.n

    @property
    def fused(self):
        return bool(self.st.slow.fused)

    @property
    def macd(self):
        return self.st.last.macd

    @property
    def signal(self):
        return self.st.last.signal

    @property
    def hist(self):
        return self.st.last.hist

    @property
    def value(self):
        return (self.st.last.macd, self.st.last.signal, self.st.last.hist)

    @property
    def ready(self):
        return not isnan(self.st.last.hist)

    @property
    def count(self):
        return self.st.count

    @property
    def hist_color(self):
        """TradingView colour of the last committed histogram bar (None while not ready)."""
        cdef int c = hist_color_code(self.st.last.hist, self.st.prev_hist)
        return None if c < 0 else HIST_COLORS[c]

    @cython.always_allow_keywords(False)
    def color_for(self, double hist):
        """Colour of a (revised) histogram value for the forming bar: compared with the last
        committed hist. None for NaN."""
        cdef int c = hist_color_code(hist, self.st.last.hist)
        return None if c < 0 else HIST_COLORS[c]

    @cython.always_allow_keywords(False)
    def update(self, double x):
        """Commit a closed bar; returns (macd, signal, hist), NaNs while not ready."""
        _check(x)
        cdef MacdOut o = macd_push(&self.st, x)
        return (o.macd, o.signal, o.hist)

    @cython.always_allow_keywords(False)
    def revise(self, double x):
        """(macd, signal, hist) for the still-forming bar; does not change the state."""
        _check(x)
        cdef MacdOut o = macd_peek(&self.st, x)
        return (o.macd, o.signal, o.hist)

    def __repr__(self):
        return (f"Macd(fast={self.st.fast.n}, slow={self.st.slow.n}, signal={self.st.sig.n}, "
                f"seed={self.seed!r}, count={self.st.count}, value={self.value!r})")


cdef class Hma(_Indicator):
    """Hull moving average: WMA(2*WMA(x, n//2) - WMA(x, n), isqrt(n)), n >= 2; first value at
    bar (n-1) + (isqrt(n)-1). `direction` compares with the value `lookback` bars back
    ("up"/"down", a tie keeps the previous state, None before the first comparison)."""

    def __cinit__(self, n, lookback=1):
        cdef Py_ssize_t p = _check_period(n, "n")
        cdef Py_ssize_t lb = _check_period(lookback, "lookback")
        if p < 2:
            raise ValueError(f"Hma needs n >= 2 (n//2 must be >= 1), got {p}")
        self.st.half.ring = NULL
        self.st.full.ring = NULL
        self.st.outer.ring = NULL
        self.st.hist = <double*>malloc(<size_t>lb * sizeof(double))
        if self.st.hist == NULL:
            raise MemoryError()
        self.st.lookback = lb
        wma_alloc(&self.st.half, p // 2)
        wma_alloc(&self.st.full, p)
        wma_alloc(&self.st.outer, isqrt(p))
        hma_reset(&self.st)

    def __dealloc__(self):
        free(self.st.half.ring)
        free(self.st.full.ring)
        free(self.st.outer.ring)
        free(self.st.hist)

    cdef double update_raw(self, double x) noexcept nogil:
        return hma_push(&self.st, x)

    cdef double revise_raw(self, double x) noexcept nogil:
        return hma_peek(&self.st, x)

    cdef int direction_code(self) noexcept nogil:
        return self.st.direction

    cdef int direction_code_for(self, double value) noexcept nogil:
        return hma_direction_for(&self.st, value)

    cdef Py_ssize_t update_many(self, const double* x, Py_ssize_t n, double* out) noexcept nogil:
        cdef Py_ssize_t i, skipped = 0
        cdef double v
        # Work on a local copy: its address never escapes, so the compiler keeps the running
        # sums in registers (stores through `out` cannot alias them).
        cdef HmaState st = self.st
        for i in range(n):
            if isfinite(x[i]):
                v = hma_push(&st, x[i])
            else:
                skipped += 1
                v = NAN
            if out != NULL:
                out[i] = v
        self.st = st
        return skipped

    cdef void reset_raw(self) noexcept nogil:
        hma_reset(&self.st)

    cdef Py_ssize_t _commit_many(self, const double* x, Py_ssize_t n) noexcept nogil:
        return self.update_many(x, n, NULL)

    @property
    def n(self):
        return self.st.full.n

    @property
    def lookback(self):
        return self.st.lookback

    @property
    def value(self):
        return self.st.last

    @property
    def ready(self):
        return self.st.hcount > 0

    @property
    def count(self):
        return self.st.full.count

    @property
    def direction(self):
        """"up", "down" or None for the last committed bar."""
        return _direction_name(self.st.direction)

    @property
    def color(self):
        d = self.st.direction
        return None if d == 0 else (HMA_UP_COLOR if d > 0 else HMA_DOWN_COLOR)

    @cython.always_allow_keywords(False)
    def direction_for(self, double value):
        """Direction of a (revised) value for the forming bar, vs the committed history."""
        return _direction_name(hma_direction_for(&self.st, value))

    @cython.always_allow_keywords(False)
    def update(self, double x):
        """Commit a closed bar; returns the committed HMA (NaN while not ready)."""
        _check(x)
        return hma_push(&self.st, x)

    @cython.always_allow_keywords(False)
    def revise(self, double x):
        """HMA for the still-forming bar; does not change the state."""
        _check(x)
        return hma_peek(&self.st, x)

    def __repr__(self):
        return (f"Hma(n={self.st.full.n}, lookback={self.st.lookback}, "
                f"count={self.st.full.count}, value={self.value!r})")


# --------------------------------------------------------------------------------------------
# Batch twins: the same step functions in a tight nogil loop. NaN where not ready; non-finite
# inputs are skipped (output NaN at that position, state unchanged), counted and logged.

def ema(closes, n, seed="talib"):
    """EMA over a 1-D array (TA-Lib `EMA` bits in "talib" mode)."""
    cdef Ema ind = Ema(n, seed)
    cdef const double[::1] a = _as_closes(closes)
    cdef Py_ssize_t N = a.shape[0], k = 0
    out = np.empty(N, dtype=np.float64)
    cdef double[::1] o = out
    if N:
        with nogil:
            k = ind.update_many(&a[0], N, &o[0])
    _note_skipped("ema", k)
    return out


def wma(closes, n):
    """WMA over a 1-D array (TA-Lib 0.8 `WMA` bits)."""
    cdef Wma ind = Wma(n)
    cdef const double[::1] a = _as_closes(closes)
    cdef Py_ssize_t N = a.shape[0], k = 0
    out = np.empty(N, dtype=np.float64)
    cdef double[::1] o = out
    if N:
        with nogil:
            k = ind.update_many(&a[0], N, &o[0])
    _note_skipped("wma", k)
    return out


cdef Py_ssize_t _count_nonfinite(const double* x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, k = 0
    for i in range(n):
        k += not isfinite(x[i])
    return k


cdef void _wma_pass(WmaState* s, const double* x, Py_ssize_t n, double* out) noexcept nogil:
    # One WMA over a whole array with its state in registers (the same wma_push step).
    cdef WmaState st = s[0]
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = wma_push(&st, x[i])
    s[0] = st


cdef Py_ssize_t _macd_fill(MacdState* s, const double* x, Py_ssize_t N, double* mo, double* so,
                           double* ho) noexcept nogil:
    # Generic bars (warm-up, non-finite inputs) go through macd_push. Once all three EMAs are
    # seeded, macd_push reduces to three ema_step calls: run exactly those in a tight loop with
    # the state in registers (same expressions, same order -> the same bits as streaming).
    # Returns the number of non-finite inputs skipped.
    cdef MacdState st = s[0]
    cdef MacdOut v
    cdef Py_ssize_t i = 0, j0, done, skipped = 0
    cdef double m, g
    while i < N:
        if ema_ready(&st.fast) and ema_ready(&st.slow) and ema_ready(&st.sig):
            j0 = i
            while i < N and isfinite(x[i]):
                st.fast.e = ema_step(&st.fast, x[i])
                st.slow.e = ema_step(&st.slow, x[i])
                m = st.fast.e - st.slow.e
                st.sig.e = ema_step(&st.sig, m)
                g = st.sig.e
                mo[i] = m
                so[i] = g
                ho[i] = m - g
                i += 1
            done = i - j0
            if done:
                st.fast.count += done
                st.slow.count += done
                st.sig.count += done
                st.count += done
                st.prev_hist = ho[i - 2] if done >= 2 else st.last.hist
                st.last.macd = mo[i - 1]
                st.last.signal = so[i - 1]
                st.last.hist = ho[i - 1]
            if i == N:
                break
        if isfinite(x[i]):
            v = macd_push(&st, x[i])
        else:
            skipped += 1
            v = macd_nan()
        mo[i] = v.macd
        so[i] = v.signal
        ho[i] = v.hist
        i += 1
    s[0] = st
    return skipped


def hma(closes, n):
    """HMA over a 1-D array (= TA-Lib WMA(2*WMA(x, n//2) - WMA(x, n), isqrt(n)) bits)."""
    cdef Hma ind = Hma(n)
    cdef const double[::1] a = _as_closes(closes)
    cdef Py_ssize_t N = a.shape[0], k = 0, i, p
    out = np.empty(N, dtype=np.float64)
    cdef double[::1] o = out
    cdef double[::1] t1
    if N:
        with nogil:
            k = _count_nonfinite(&a[0], N)
        if k:
            with nogil:
                ind.update_many(&a[0], N, &o[0])
        else:
            # Three passes (half, full, outer) of the very same wma_push: identical bits to the
            # interleaved streaming order, but each state stays in registers.
            t1 = np.empty(N, dtype=np.float64)
            p = ind.st.full.n - 1
            with nogil:
                _wma_pass(&ind.st.half, &a[0], N, &t1[0])
                _wma_pass(&ind.st.full, &a[0], N, &o[0])      # `out` doubles as scratch
                for i in range(p, N):
                    t1[i] = 2.0 * t1[i] - o[i]
                for i in range(min(p, N)):
                    o[i] = NAN
                if p < N:
                    _wma_pass(&ind.st.outer, &t1[p], N - p, &o[p])
    _note_skipped("hma", k)
    return out


def macd(closes, fast=12, slow=26, signal=9, seed="talib"):
    """(macd, signal, hist) arrays over a 1-D array (TA-Lib `MACD` bits in "talib" mode)."""
    cdef Macd ind = Macd(fast, slow, signal, seed)
    cdef const double[::1] a = _as_closes(closes)
    cdef Py_ssize_t N = a.shape[0], k = 0
    m_out = np.empty(N, dtype=np.float64)
    s_out = np.empty(N, dtype=np.float64)
    h_out = np.empty(N, dtype=np.float64)
    cdef double[::1] mo = m_out
    cdef double[::1] so = s_out
    cdef double[::1] ho = h_out
    if N == 0:
        return m_out, s_out, h_out
    with nogil:
        k = _macd_fill(&ind.st, &a[0], N, &mo[0], &so[0], &ho[0])
    _note_skipped("macd", k)
    return m_out, s_out, h_out


def _c_api_selftest(closes, double revise_with):
    """Drive Macd(12,26,9) and Hma(20) through the C-level API (update_raw / revise_raw /
    colour and direction codes), as the worker does; for tests. Per bar: (macd, signal, hist,
    hma, colour code, direction code) after committing the bar, then, computed before it, the
    forming-bar (hist, colour code, hma, direction code) for close `revise_with`."""
    cdef const double[::1] a = _as_closes(closes)
    cdef Macd m = Macd()
    cdef Hma h = Hma(20)
    cdef MacdOut o, r
    cdef double hv, rh
    cdef Py_ssize_t i
    rows = []
    for i in range(a.shape[0]):
        r = m.revise_raw(revise_with)
        rh = h.revise_raw(revise_with)
        rc = m.color_code_for(r.hist)
        rd = h.direction_code_for(rh)
        o = m.update_raw(a[i])
        hv = h.update_raw(a[i])
        rows.append((o.macd, o.signal, o.hist, hv, m.color_code(), h.direction_code(),
                     r.hist, rc, rh, rd))
    return rows
