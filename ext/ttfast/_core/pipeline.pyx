# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""The worker's per-batch loop: CandleStore changes -> MACD/HMA -> sink-ready outputs.

One call per decoded batch (`IndicatorPipeline.process(changes)`); everything per candle runs
here in C: committing closed bars to the indicators, revising the forming bar, rebuilding after
snapshots/corrections/removals, and encoding the JSON payloads for Redis. The caller (the
asyncio shell) only hands the returned lists/arrays to the sinks.

May touch: the CandleSeries it is given (read only), its own indicator objects, its own
buffers. No I/O, nothing from the asyncio shell.

Per symbol, per batch (SymbolChange from CandleStore.apply):
* snapshot / correction / removal -> reset the indicators and recompute from the stored bars:
  every bar but the newest is committed (rows of kind HISTORY from the first changed bar on);
* otherwise every bar newer than the last committed one, except the newest, is committed now
  (a new bar time means the previous bar closed): rows of kind FINAL;
* the newest (forming) bar is revised without changing the committed state: a row of kind
  FORMING. Its values are what the FINAL row will say if its close does not change again.
A non-finite close is not fed to the indicators (their running sums would be poisoned); the row
carries NaN indicators and is counted in `nonfinite_closes`.

Names (computed once per symbol). A store symbol is a dxFeed candle symbol
``BASE{=period,k=v,...}``; its *tag symbol* is the candle symbol without the period attribute
(``SPY{=1h}`` -> ``SPY``, ``SPY{=5m,tho=true}`` -> ``SPY{tho=true}``) and its *period* is the
period attribute in display form (``5m``, ``1h`` for dxFeed's ``h``, ``1d``). With a primary
``period`` configured, a symbol of that period (or with no period attribute) is named by its tag
symbol (``SPY``: the documented names); every other symbol is named by its full candle symbol
(``SPY{=1h}``), so two periods of one instrument never share a key. Should a name be taken
already (``SPY{=05m}`` next to ``SPY{=5m}``), the full candle symbol is used (`name_conflicts`).

Bounded: with ``max_symbols`` > 0, state is kept for at most that many symbols; changes of
further new symbols are skipped and counted (`symbols_refused`) until `discard()` frees a slot.

Payloads (UTF-8 JSON; NaN/inf -> null; times in epoch ms; floats in repr form, exact), under the
Redis names below (the prefixes are SNAPSHOT_KEY_PREFIX, DELTA_CHANNEL_PREFIX, RAW_CHANNEL_PREFIX
unless given to the constructor):
  snapshot:<name>  {"type":"snapshot","symbol":<tag symbol>,"period":"5m"|null,
                    "last_candle":{..},"macd":{..},"hma":{..},"bars":N}
  analytics:delta:<name>  {"type":"delta","symbol":<tag symbol>,"period":"5m"|null,
                    "candle":{..},"macd":{..},"hma":{..},"final":bool}
  market:CandleEvent:<name>  {"eventType":"Candle","eventSymbol":<store symbol>,"time":..,
                    "open":..,"high":..,"low":..,"close":..,"volume":..}   (when publish_raw)
where candle = {"time","open","high","low","close","volume"},
macd = {"value","signal","hist","color"}, hma = {"value","direction","color"}.
"""

import json

import numpy as np

cimport numpy as cnp
from libc.math cimport NAN, isfinite
from libc.stdint cimport int64_t, int32_t, int8_t
from libc.stdlib cimport free, realloc
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF

from ttfast._core.candles cimport (CandleSeries, Changes, ChangeRec, CH_SNAPSHOT, CH_CORRECTED,
                                   CH_REMOVED, CF_OPEN, CF_HIGH, CF_LOW, CF_CLOSE, CF_VOLUME,
                                   series_len, series_column, series_time)
from ttfast._core.indicators cimport Macd, Hma, MacdOut
from ttfast._core.textbuf cimport (TextBuf, textbuf_reserve, textbuf_put, textbuf_add,
                                    fmt_double, fmt_int64)

cnp.import_array()

from ttfast._core.indicators import (HIST_COLORS, HMA_UP_COLOR, HMA_DOWN_COLOR)
from ttfast.symbols import normalize_period as _normalize_period

# KIND_* (row kinds) and COLUMN_* (rows of PipelineOutput.columns) are cpdef enums in
# pipeline.pxd: module attributes too.
COLUMNS = ("open", "high", "low", "close", "volume", "macd", "signal", "hist", "hma")

# Redis names (module doc): <prefix><key name>. The defaults of IndicatorPipeline's
# snapshot_prefix / delta_prefix / raw_prefix.
SNAPSHOT_KEY_PREFIX = "snapshot:"
DELTA_CHANNEL_PREFIX = "analytics:delta:"
RAW_CHANNEL_PREFIX = "market:CandleEvent:"


cdef str _normalized(str period):
    """dxFeed's normalized form of a candle period (``ttfast.symbols.normalize_period``: ``1h`` ->
    ``h``, ``05m`` -> ``5m``), or None if it is not one."""
    try:
        return _normalize_period(period)
    except ValueError:
        return None


cdef str _display(str period, str norm):
    """`period` as shown in payloads and Influx tags, given its normalized form `norm`: always
    with its count (``h`` -> ``1h``); `period` as is when it is not a dxFeed period (norm None)."""
    if norm is None:
        return period
    return norm if norm[0].isdigit() else "1" + norm


def display_period(str period):
    """The period as shown in payloads and Influx tags: always with its count (``h`` -> ``1h``);
    a value that is not a dxFeed period is returned as is."""
    return _display(period, _normalized(period))


cdef tuple _split(str symbol):
    cdef Py_ssize_t i = symbol.find("{")
    if i <= 0 or not symbol.endswith("}"):
        return symbol, None
    period = None
    others = []
    for a in symbol[i + 1:-1].split(","):
        if a.startswith("=") and period is None:
            period = a[1:]
        elif a:
            others.append(a)
    if period is None:
        return symbol, None
    return symbol[:i] + ("{" + ",".join(others) + "}" if others else ""), period

cdef struct Row:
    int64_t time
    double o, h, l, c, v
    double macd, signal, hist, hma
    int8_t color          # HIST_* code, -1 none
    int8_t direction      # 1 up, -1 down, 0 none
    int8_t kind
    int32_t sym           # index into IndicatorPipeline._by_index
    int64_t bars


cdef class _SymbolState:
    cdef Macd macd
    cdef Hma hma
    cdef bint has_committed
    cdef int64_t last_committed     # time of the last bar committed to the indicators
    cdef int32_t sym
    cdef str name                   # key name: tag symbol (primary period) or store symbol
    cdef str tag                    # store symbol without its period attribute
    cdef str period                 # display period ("5m", "1h"), "" if unknown
    cdef bytes delta_head           # {"type":"delta","symbol":<tag>,"period":<p>,"candle":
    cdef bytes snapshot_head        # {"type":"snapshot","symbol":..,"period":..,"last_candle":
    cdef bytes raw_head             # {"eventType":"Candle","eventSymbol":<store symbol>,
    cdef bytes delta_channel
    cdef bytes snapshot_key
    cdef bytes raw_channel


cdef class IndicatorPipeline:
    """MACD(fast, slow, signal) and HMA(n) per symbol over a CandleStore's changes.

    ``pipe = IndicatorPipeline(); out = pipe.process(store.apply(batch))`` ->
    a PipelineOutput with columns for the Telegraf sink and encoded (channel, payload) pairs
    for the Redis sink.
    """
    cdef dict _states               # store symbol -> _SymbolState (insertion order)
    cdef dict _by_name              # key name -> _SymbolState
    cdef list _by_index             # _SymbolState by index (Row.sym; None: free slot)
    cdef list _free                 # free indices (discarded symbols)
    cdef str _primary               # normalized primary period, None if none
    cdef str _primary_display
    cdef dict _period_info          # period attribute -> (display, JSON of it, is primary)
    cdef readonly object period
    cdef readonly Py_ssize_t max_symbols
    cdef readonly long long symbols_refused
    cdef readonly long long name_conflicts
    cdef readonly tuple macd_periods
    cdef readonly Py_ssize_t hma_period
    cdef readonly Py_ssize_t hma_lookback
    cdef readonly bint publish_raw
    cdef readonly str snapshot_prefix   # Redis key of a symbol's snapshot: prefix + key name
    cdef readonly str delta_prefix      # Redis channel of its deltas
    cdef readonly str raw_prefix        # Redis channel of its raw candles (publish_raw)
    cdef bytes _snapshot_pre, _delta_pre, _raw_pre
    cdef readonly long long rows
    cdef readonly long long finals
    cdef readonly long long rebuilds
    cdef readonly long long nonfinite_closes
    cdef readonly long long skipped_not_ready
    cdef Row* _rows
    cdef Py_ssize_t _n, _cap
    cdef TextBuf _buf
    cdef list _color_json
    cdef list _dir_json

    def __cinit__(self):
        self._rows = NULL
        self._n = 0
        self._cap = 0
        self._buf.data = NULL
        self._buf.len = 0
        self._buf.cap = 0

    def __dealloc__(self):
        free(self._rows)
        free(self._buf.data)

    def __init__(self, macd=(12, 26, 9), Py_ssize_t hma=20, Py_ssize_t hma_lookback=1,
                 bint publish_raw=True, period=None, Py_ssize_t max_symbols=0, *,
                 str snapshot_prefix=SNAPSHOT_KEY_PREFIX, str delta_prefix=DELTA_CHANNEL_PREFIX,
                 str raw_prefix=RAW_CHANNEL_PREFIX):
        self.macd_periods = tuple(macd)
        if len(self.macd_periods) != 3:
            raise ValueError("macd must be (fast, slow, signal)")
        Macd(*self.macd_periods)  # validate now
        Hma(hma, hma_lookback)
        self.hma_period = hma
        self.hma_lookback = hma_lookback
        self.publish_raw = publish_raw
        self.snapshot_prefix = snapshot_prefix
        self.delta_prefix = delta_prefix
        self.raw_prefix = raw_prefix
        self._snapshot_pre = snapshot_prefix.encode()
        self._delta_pre = delta_prefix.encode()
        self._raw_pre = raw_prefix.encode()
        if max_symbols < 0:
            raise ValueError("max_symbols must be >= 0 (0: no limit)")
        self.max_symbols = max_symbols
        self.period = period
        self._primary = None
        self._primary_display = None
        if period is not None:
            self._primary = _normalized(period)
            if self._primary is None:
                raise ValueError(f"bad candle period {period!r}")
            self._primary_display = _display(period, self._primary)
        self._period_info = {}
        self._states = {}
        self._by_name = {}
        self._by_index = []
        self._free = []
        self._color_json = [b'"' + c.encode() + b'"' for c in HIST_COLORS]
        self._dir_json = [b'null,"color":null', b'"up","color":"' + HMA_UP_COLOR.encode() + b'"',
                          b'"down","color":"' + HMA_DOWN_COLOR.encode() + b'"']

    @property
    def symbols(self):
        """Key names of the symbols with state, in the order they arrived (see module doc)."""
        return [(<_SymbolState>st).name for st in self._states.values()]

    @property
    def symbol_count(self):
        """Number of symbols with state (<= max_symbols when that is set)."""
        return len(self._states)

    def name_for(self, str symbol):
        """(key name, tag symbol, display period or "") a store symbol gets (or has)."""
        cdef _SymbolState st = self._states.get(symbol)
        if st is not None:
            return st.name, st.tag, st.period
        tag, period, primary, _ = self._classify(symbol)
        return (tag if primary else symbol), tag, period

    cdef tuple _classify(self, str symbol):
        """(tag symbol, display period or "", is primary, JSON of the period)."""
        tag, attr = _split(symbol)
        info = self._period_info.get(attr)
        if info is None:
            if attr is None:
                disp = self._primary_display or ""
                primary = True
            else:
                norm = _normalized(attr)
                disp = _display(attr, norm)
                primary = self._primary is not None and norm == self._primary
            if len(self._period_info) >= 1024:
                self._period_info.clear()
            info = self._period_info[attr] = (disp, json.dumps(disp or None).encode(), primary)
        return tag, info[0], info[2], info[1]

    cdef _SymbolState _state(self, str symbol):
        cdef _SymbolState st = self._states.get(symbol)
        cdef Py_ssize_t idx
        if st is not None:
            return st
        if self.max_symbols and len(self._states) >= self.max_symbols:
            self.symbols_refused += 1
            return None
        tag, period, primary, jperiod = self._classify(symbol)
        name = tag if primary else symbol
        if name in self._by_name:
            self.name_conflicts += 1
            name = symbol
            if name in self._by_name:
                self.symbols_refused += 1
                return None
        st = _SymbolState.__new__(_SymbolState)
        st.macd = Macd(*self.macd_periods)
        st.hma = Hma(self.hma_period, self.hma_lookback)
        st.has_committed = False
        st.last_committed = 0
        st.name = name
        st.tag = tag
        st.period = period
        if self._free:
            idx = self._free.pop()
            self._by_index[idx] = st
        else:
            idx = len(self._by_index)
            self._by_index.append(st)
        st.sym = <int32_t>idx
        jtag = json.dumps(tag).encode()
        st.delta_head = (b'{"type":"delta","symbol":' + jtag + b',"period":' + jperiod
                         + b',"candle":')
        st.snapshot_head = (b'{"type":"snapshot","symbol":' + jtag + b',"period":' + jperiod
                            + b',"last_candle":')
        st.raw_head = b'{"eventType":"Candle","eventSymbol":' + json.dumps(symbol).encode() + b','
        st.delta_channel = self._delta_pre + name.encode()
        st.snapshot_key = self._snapshot_pre + name.encode()
        st.raw_channel = self._raw_pre + name.encode()
        self._states[symbol] = st
        self._by_name[name] = st
        return st

    def discard(self, str symbol):
        """Forget a store symbol's state and free its slot (after CandleStore.discard); returns
        True if it had state. If it comes back, it starts over from the store's bars."""
        cdef _SymbolState st = self._states.pop(symbol, None)
        if st is None:
            return False
        del self._by_name[st.name]
        self._by_index[st.sym] = None
        self._free.append(st.sym)
        return True

    def reset(self, str symbol=None):
        """Forget indicator state (one symbol or all); the next change rebuilds from the store."""
        if symbol is None:
            for st in self._states.values():
                (<_SymbolState>st).has_committed = False
                (<_SymbolState>st).macd.reset_raw()
                (<_SymbolState>st).hma.reset_raw()
        elif symbol in self._states:
            st = self._states[symbol]
            (<_SymbolState>st).has_committed = False
            (<_SymbolState>st).macd.reset_raw()
            (<_SymbolState>st).hma.reset_raw()

    cdef int _reserve(self, Py_ssize_t extra) except -1:
        cdef Py_ssize_t cap
        cdef void* p
        if self._n + extra <= self._cap:
            return 0
        cap = self._cap * 2 if self._cap else 256
        while cap < self._n + extra:
            cap *= 2
        p = realloc(self._rows, cap * sizeof(Row))
        if p == NULL:
            raise MemoryError()
        self._rows = <Row*>p
        self._cap = cap
        return 0

    cdef inline void _emit(self, _SymbolState st, const int64_t* t, const double* o,
                           const double* h, const double* l, const double* c, const double* v,
                           Py_ssize_t i, Py_ssize_t n, int kind) noexcept:
        """Append a row for bar i: commit it (FINAL/HISTORY) or revise it (FORMING)."""
        cdef Row* r = &self._rows[self._n]
        cdef MacdOut m
        cdef double x = c[i], hv
        self._n += 1
        r.time = t[i]
        r.o = o[i]
        r.h = h[i]
        r.l = l[i]
        r.c = x
        r.v = v[i]
        r.kind = kind
        r.sym = st.sym
        r.bars = n
        if not isfinite(x):
            self.nonfinite_closes += 1
            r.macd = r.signal = r.hist = r.hma = NAN
            r.color = -1
            r.direction = 0
            if kind != KIND_FORMING:
                st.last_committed = t[i]
                st.has_committed = True
            return
        if kind == KIND_FORMING:
            m = st.macd.revise_raw(x)
            hv = st.hma.revise_raw(x)
            r.color = st.macd.color_code_for(m.hist)
            r.direction = st.hma.direction_code_for(hv)
        else:
            m = st.macd.update_raw(x)
            hv = st.hma.update_raw(x)
            r.color = st.macd.color_code()
            r.direction = st.hma.direction_code()
            st.last_committed = t[i]
            st.has_committed = True
        r.macd = m.macd
        r.signal = m.signal
        r.hist = m.hist
        r.hma = hv

    def process(self, Changes changes):
        """Apply one CandleStore.apply() result; returns a PipelineOutput."""
        cdef Py_ssize_t k, i, n, start
        cdef ChangeRec* rec
        cdef CandleSeries s
        cdef _SymbolState st
        cdef const int64_t* t
        cdef const double* o
        cdef const double* h
        cdef const double* l
        cdef const double* c
        cdef const double* v
        cdef bint rebuild
        cdef int kind
        self._n = 0
        for k in range(changes.n):
            rec = &changes.recs[k]
            s = <CandleSeries>changes.series[k]
            n = series_len(s)
            if not s.ready:
                self.skipped_not_ready += 1
                continue
            st = self._state(s.symbol)
            if st is None:
                continue
            if n == 0:
                st.has_committed = False
                st.macd.reset_raw()
                st.hma.reset_raw()
                continue
            t = series_time(s)
            o = series_column(s, CF_OPEN)
            h = series_column(s, CF_HIGH)
            l = series_column(s, CF_LOW)
            c = series_column(s, CF_CLOSE)
            v = series_column(s, CF_VOLUME)
            rebuild = (rec.flags & (CH_SNAPSHOT | CH_CORRECTED | CH_REMOVED)) != 0
            if not rebuild and st.has_committed and t[0] > st.last_committed:
                rebuild = True  # evictions overtook what was committed: state is unanchored
            if rebuild or not st.has_committed:
                # no committed state yet (first bars of a symbol without a snapshot): bars that
                # close now are genuinely final; after a snapshot/correction they are history
                kind = KIND_HISTORY if rebuild else KIND_FINAL
                if rebuild or n > 1:
                    self.rebuilds += 1
                st.macd.reset_raw()
                st.hma.reset_raw()
                st.has_committed = False
                self._reserve(n)
                for i in range(n - 1):
                    self._emit(st, t, o, h, l, c, v, i, n, kind)
                    if i < rec.first and kind == KIND_HISTORY:  # unchanged history: not re-emitted
                        self._n -= 1
                    elif kind == KIND_FINAL:
                        self.finals += 1
            else:
                # first bar newer than the last committed one (usually n-1 or n-2)
                start = n - 1
                while start > 0 and t[start - 1] > st.last_committed:
                    start -= 1
                self._reserve(n - start)
                for i in range(start, n - 1):
                    self._emit(st, t, o, h, l, c, v, i, n, KIND_FINAL)
                    self.finals += 1
            self._reserve(1)
            self._emit(st, t, o, h, l, c, v, n - 1, n, KIND_FORMING)
        self.rows += self._n
        return self._output()

    # -- JSON ------------------------------------------------------------------------------
    cdef inline int _bytes(self, bytes b) except -1:
        return textbuf_add(&self._buf, b)

    cdef inline int _num(self, double x) except -1:
        textbuf_reserve(&self._buf, 40)
        if isfinite(x):
            self._buf.len += fmt_double(self._buf.data + self._buf.len, x)
        else:
            textbuf_put(&self._buf, b"null", 4)
        return 0

    cdef inline int _int(self, int64_t x) except -1:
        textbuf_reserve(&self._buf, 24)
        self._buf.len += fmt_int64(self._buf.data + self._buf.len, x)
        return 0

    cdef int _candle_json(self, const Row* r) except -1:
        self._bytes(b'{')
        self._candle_fields(r)
        self._bytes(b'}')
        return 0

    cdef int _candle_fields(self, const Row* r) except -1:
        self._bytes(b'"time":')
        self._int(r.time)
        self._bytes(b',"open":')
        self._num(r.o)
        self._bytes(b',"high":')
        self._num(r.h)
        self._bytes(b',"low":')
        self._num(r.l)
        self._bytes(b',"close":')
        self._num(r.c)
        self._bytes(b',"volume":')
        self._num(r.v)
        return 0

    cdef int _ind_json(self, const Row* r) except -1:
        self._bytes(b',"macd":{"value":')
        self._num(r.macd)
        self._bytes(b',"signal":')
        self._num(r.signal)
        self._bytes(b',"hist":')
        self._num(r.hist)
        self._bytes(b',"color":')
        if r.color >= 0:
            self._bytes(<bytes>self._color_json[r.color])
        else:
            self._bytes(b"null")
        self._bytes(b'},"hma":{"value":')
        self._num(r.hma)
        self._bytes(b',"direction":')
        self._bytes(<bytes>self._dir_json[0 if r.direction == 0 else (1 if r.direction > 0
                                                                       else 2)])
        self._bytes(b'}')
        return 0

    cdef bytes _take(self):
        cdef bytes out = PyBytes_FromStringAndSize(self._buf.data, self._buf.len)
        self._buf.len = 0
        return out

    cdef object _output(self):
        cdef Py_ssize_t n = self._n, i, last_of_sym
        cdef PipelineOutput out = PipelineOutput.__new__(PipelineOutput)
        cdef cnp.ndarray kind = np.empty(n, dtype=np.int8)
        cdef cnp.ndarray time = np.empty(n, dtype=np.int64)
        cdef cnp.ndarray cols = np.empty((COLUMN_COUNT, n), dtype=np.float64)
        cdef cnp.ndarray color = np.empty(n, dtype=np.int8)
        cdef cnp.ndarray direction = np.empty(n, dtype=np.int8)
        cdef int8_t[::1] kv = kind
        cdef int64_t[::1] tv = time
        cdef double[:, ::1] cv = cols
        cdef int8_t[::1] colv = color
        cdef int8_t[::1] dv = direction
        cdef const Row* r
        cdef _SymbolState st
        cdef list states = self._by_index
        cdef list syms = PyList_New(n)
        cdef list tags = PyList_New(n)
        cdef list pers = PyList_New(n)
        cdef list pubs = []
        cdef list snaps = []
        for i in range(n):
            r = &self._rows[i]
            kv[i] = r.kind
            tv[i] = r.time
            cv[COLUMN_OPEN, i] = r.o
            cv[COLUMN_HIGH, i] = r.h
            cv[COLUMN_LOW, i] = r.l
            cv[COLUMN_CLOSE, i] = r.c
            cv[COLUMN_VOLUME, i] = r.v
            cv[COLUMN_MACD, i] = r.macd
            cv[COLUMN_SIGNAL, i] = r.signal
            cv[COLUMN_HIST, i] = r.hist
            cv[COLUMN_HMA, i] = r.hma
            colv[i] = r.color
            dv[i] = r.direction
            st = <_SymbolState>states[r.sym]
            # PyList_SET_ITEM steals a reference: take one for each (the slots are NULL)
            Py_INCREF(st.name)
            PyList_SET_ITEM(syms, i, st.name)
            Py_INCREF(st.tag)
            PyList_SET_ITEM(tags, i, st.tag)
            Py_INCREF(st.period)
            PyList_SET_ITEM(pers, i, st.period)
            if r.kind == KIND_HISTORY:
                continue
            if self.publish_raw:
                self._bytes(st.raw_head)
                self._candle_fields(r)
                self._bytes(b'}')
                pubs.append((st.raw_channel, self._take()))
            self._bytes(st.delta_head)
            self._candle_json(r)
            self._ind_json(r)
            if r.kind == KIND_FINAL:
                self._bytes(b',"final":true}')
            else:
                self._bytes(b',"final":false}')
            pubs.append((st.delta_channel, self._take()))
            if r.kind != KIND_FORMING:
                continue
            # process() emits each symbol's rows together (a Changes has one record per symbol),
            # its one FORMING row last: that row is the symbol's snapshot
            self._bytes(st.snapshot_head)
            self._candle_json(r)
            self._ind_json(r)
            self._bytes(b',"bars":')
            self._int(r.bars)
            self._bytes(b'}')
            snaps.append((st.snapshot_key, self._take()))
        out.n = n
        out.symbols = syms
        out.tag_symbols = tags
        out.periods = pers
        out.kind = kind
        out.time = time
        out.columns = cols
        out.color = color
        out.direction = direction
        out.publishes = pubs
        out.snapshots = snaps
        return out


cdef class PipelineOutput:
    """Rows produced by one IndicatorPipeline.process() call (column views share `columns`)."""
    cdef readonly Py_ssize_t n
    cdef readonly list symbols        # key name per row (snapshot:<name>, ...)
    cdef readonly list tag_symbols    # Influx `symbol` tag per row (no period attribute)
    cdef readonly list periods        # Influx `period` tag per row ("5m", "1h"; "" unknown)
    cdef readonly object kind         # int8: KIND_FORMING, KIND_FINAL, KIND_HISTORY
    cdef readonly object time         # int64 epoch ms (bar start)
    cdef readonly object columns      # float64 (COLUMN_COUNT, n): row COLUMN_OPEN ... COLUMN_HMA
                                      #   (names: COLUMNS)
    cdef readonly object color        # int8 HIST_COLORS index, -1 none
    cdef readonly object direction    # int8 1 up, -1 down, 0 none
    cdef readonly list publishes      # [(channel, payload)] deltas (+ raw candles)
    cdef readonly list snapshots      # [(key, payload)] one per symbol (its newest row)

    @property
    def candle(self):
        """(open, high, low, close, volume) arrays."""
        return tuple(self.columns[:COLUMN_MACD])

    @property
    def indicators(self):
        """(macd, signal, hist, hma) arrays."""
        return tuple(self.columns[COLUMN_MACD:])

    def __len__(self):
        return self.n

    def __repr__(self):
        return (f"<PipelineOutput rows={self.n} publishes={len(self.publishes)} "
                f"snapshots={len(self.snapshots)}>")
