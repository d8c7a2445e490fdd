# cython: boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""dxLink FEED_DATA decoder: one frame (bytes/str) -> typed columns per event group.

What it does: parses the whole FEED_DATA message in one C pass (COMPACT ``["Type", [v...]]``
groups and FULL ``{...}`` objects), validating it as strict JSON (RFC 8259, UTF-8), and stores
every value in an 8-byte slot (double / int64 / reference into the frame bytes) plus a tag byte.
No Python object is created per value at decode time: numpy columns (and the str objects of
string columns) are built lazily, once, when a column is first asked for.

What it may touch: numpy, ``ttfast._core.numparse`` / ``common`` (cimports), and the leaf
module ``ttfast.errors`` (dependency-free exception classes). Nothing else of the shell.

One module, several files joined by Cython ``include`` (in this order):

  feed.pyx          the slot format shared by the parts, and the decoder itself (FeedDecoder:
                    message walk, COMPACT groups, FULL objects; message_type)
  feed_kinds.pxi    the field kind table (dxLink field name -> column dtype, spec dxlink.md §5:
                    the ONLY place) and what an absent value reads as, per kind
  feed_scan.pxi     strict JSON scanning into slots, nogil (numbers: numparse.pxd)
  feed_strings.pxi  str objects: one-character table, symbol cache, JSON string unescaping
  feed_batch.pxi    _FrameData, _Layout, column blocks, EventBatch
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_CheckExact
from cpython.unicode cimport PyUnicode_CheckExact
from cpython.object cimport PyTypeObject
from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint8_t
from libc.stdlib cimport malloc, realloc, free, calloc
from libc.string cimport memcmp, memcpy, memset, memchr
from libc.math cimport NAN, INFINITY
cimport cython
cimport numpy as cnp
import numpy as np
import array as _array
import json
import sys as _sys
import logging

from ttfast._core.numparse cimport (scan_number, parse_double, parse_int64, NP_OK,
                                     fast_double, fast_int64)
from ttfast._core.common cimport COL_DOUBLE, COL_INT64, COL_BOOL, COL_OBJECT
from ttfast._core.common cimport (TX_PENDING as _TX_PENDING, REMOVE_EVENT as _REMOVE_EVENT,
                                  SNAPSHOT_BEGIN as _SNAPSHOT_BEGIN, SNAPSHOT_END as _SNAPSHOT_END,
                                  SNAPSHOT_SNIP as _SNAPSHOT_SNIP, SNAPSHOT_MODE as _SNAPSHOT_MODE)

from ttfast.errors import DecodeError

cnp.import_array()

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    object PyUnicode_FromKindAndData(int kind, const void* buf, Py_ssize_t size)
    Py_ssize_t PyUnicode_GET_LENGTH(PyObject* o)
    void* PyUnicode_DATA(PyObject* o)
    int PyUnicode_IS_COMPACT_ASCII(PyObject* o)
    object PyBytes_FromStringAndSize(const char* v, Py_ssize_t n)

__all__ = ["REMOVE_EVENT", "SNAPSHOT_BEGIN", "SNAPSHOT_END", "SNAPSHOT_MODE", "SNAPSHOT_SNIP",
           "TX_PENDING", "EventBatch", "FeedDecoder", "field_kinds", "message_type"]

_log = logging.getLogger("ttfast.feed")

# dxFeed IndexedEvent eventFlags bits (the `eventFlags` column), for Python code. The values are
# common.pxd's, the one definition (the candle store cimports the same names).
TX_PENDING = _TX_PENDING
REMOVE_EVENT = _REMOVE_EVENT
SNAPSHOT_BEGIN = _SNAPSHOT_BEGIN
SNAPSHOT_END = _SNAPSHOT_END
SNAPSHOT_SNIP = _SNAPSHOT_SNIP
SNAPSHOT_MODE = _SNAPSHOT_MODE

# The slot format every part shares: each parsed value is an 8-byte slot plus one tag byte.
DEF TAG_F64 = 0       # slot holds a double
DEF TAG_I64 = 1       # slot holds an int64
DEF TAG_TRUE = 2
DEF TAG_FALSE = 3
DEF TAG_NULL = 4
DEF TAG_MISSING = 5   # FULL format: key absent from this event
DEF TAG_STR = 6       # slot = ref to string content: ASCII, no escapes
DEF TAG_STRU = 7      # slot = ref to string content with escapes and/or non-ASCII (validated)
DEF TAG_NUMI = 8      # slot = ref to an integer token (unknown-field columns only)
DEF TAG_NUMF = 9      # slot = ref to a non-integer number token (unknown-field columns only)
DEF TAG_RAW = 10      # slot = ref to a nested array/object (unknown-field columns only)

# Return codes of the value parsers.
DEF OK = 0
DEF SEMANTIC = 1      # well-formed JSON, wrong for the layout: the group can be skipped
DEF SYNTAX = 2        # not JSON: the frame cannot be trusted past this point

# Frames larger than this are parsed without the GIL.
DEF NOGIL_BYTES = 65536


include "feed_kinds.pxi"
include "feed_scan.pxi"
include "feed_strings.pxi"
include "feed_batch.pxi"


# ---------------------------------------------------------------------------------------------
# The decoder

cdef object _MSG_TYPES = {}
for _name in ("FEED_DATA", "FEED_CONFIG", "KEEPALIVE", "SETUP", "AUTH_STATE", "AUTH",
              "CHANNEL_OPENED", "CHANNEL_CLOSED", "CHANNEL_REQUEST", "CHANNEL_CANCEL", "ERROR",
              "FEED_SETUP", "FEED_SUBSCRIPTION"):
    _MSG_TYPES[_name.encode()] = _name


cdef object _frame_bytes(object frame):
    """bytes for the frame (zero-copy for bytes; a copy for mutable buffers; UTF-8 of str)."""
    cdef Py_ssize_t n
    cdef const char* s
    if PyBytes_CheckExact(frame):
        return frame
    if PyUnicode_CheckExact(frame) or isinstance(frame, str):
        try:
            s = PyUnicode_AsUTF8AndSize(frame, &n)
        except UnicodeEncodeError as e:
            raise DecodeError(0, f"frame text is not encodable as UTF-8: {e.reason}") from None
        return PyBytes_FromStringAndSize(s, n)
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return bytes(frame)
    raise TypeError(f"frame must be bytes, bytearray, memoryview or str, "
                    f"not {type(frame).__name__}")


def message_type(frame):
    """The ``type`` of a dxLink message without a full parse (e.g. ``"FEED_DATA"``).

    Fast path when ``type`` is the first key (dxLink servers always put it first); otherwise
    the top-level object is scanned. Raises DecodeError when the frame is not a JSON object
    with a string ``type`` (the rest of the message is not validated).
    """
    cdef object b = _frame_bytes(frame)
    cdef Parser ps
    cdef Py_ssize_t st, ln
    cdef bint plain
    cdef bint is_type
    ps.base = <const unsigned char*>PyBytes_AS_STRING(b)
    ps.p = ps.base
    ps.end = ps.base + PyBytes_GET_SIZE(b)
    ps.err = NULL
    _ws(&ps)
    if ps.p >= ps.end or ps.p[0] != c'{':
        raise DecodeError(ps.p - ps.base, "not a JSON object")
    ps.p += 1
    while True:
        _ws(&ps)
        if ps.p >= ps.end or ps.p[0] != 0x22 or _scan_string(&ps, &st, &ln, &plain) != OK:
            break
        if plain:
            is_type = ln == 4 and memcmp(ps.base + st, b"type", 4) == 0
        else:
            is_type = _decode_str(ps.base + st, ln) == "type"
        _ws(&ps)
        if ps.p >= ps.end or ps.p[0] != c':':
            break
        ps.p += 1
        _ws(&ps)
        if is_type:
            if ps.p >= ps.end or ps.p[0] != 0x22 or _scan_string(&ps, &st, &ln, &plain) != OK:
                raise DecodeError(ps.p - ps.base, "message 'type' is not a string")
            key = PyBytes_FromStringAndSize(<const char*>ps.base + st, ln)
            t = _MSG_TYPES.get(key) if plain else None
            return t if t is not None else _decode_str(ps.base + st, ln)
        if _skip_value(&ps, 1) != OK:
            break
        _ws(&ps)
        if ps.p >= ps.end or ps.p[0] != c',':
            break
        ps.p += 1
    raise DecodeError(ps.p - ps.base, "no 'type' key in the message")


cdef class FeedDecoder:
    """Decoder of one dxLink FEED channel's FEED_DATA messages into EventBatch columns.

    Layouts come from the server's FEED_CONFIG (`configure`, merged per event type) and, until
    that arrives, from the requested field lists (`set_fields`). ``on_error="raise"`` (default)
    raises DecodeError on the first problem; ``on_error="skip"`` drops just the bad group
    (counted in `stats`, logged) and keeps the good groups of the frame; a frame that is not
    valid JSON is dropped entirely in skip mode (counted as ``bad_frames``).
    """

    cdef dict _server
    cdef dict _requested
    cdef list _active
    cdef dict _active_by_name
    cdef _StrCache _cache
    cdef bint _skip
    cdef readonly int64_t last_channel
    cdef readonly object data_format
    cdef readonly object aggregation_period
    cdef readonly object last_error
    cdef int64_t _frames, _groups, _events, _bad_groups, _bad_frames

    def __init__(self, *, str on_error="raise"):
        global _INT_MAX_DIGITS
        if on_error not in ("raise", "skip"):
            raise ValueError("on_error must be 'raise' or 'skip'")
        _INT_MAX_DIGITS = _sys.get_int_max_str_digits()
        self._skip = on_error == "skip"
        self._server = {}
        self._requested = {}
        self._active = []
        self._active_by_name = {}
        self._cache = _StrCache.__new__(_StrCache)
        self._cache._alloc()
        self.last_channel = -1
        self.data_format = None
        self.aggregation_period = None
        self.last_error = None

    @property
    def on_error(self):
        return "skip" if self._skip else "raise"

    @property
    def stats(self):
        """Counters: frames, groups, events decoded; bad_groups, bad_frames dropped (skip mode)."""
        return {"frames": self._frames, "groups": self._groups, "events": self._events,
                "bad_groups": self._bad_groups, "bad_frames": self._bad_frames}

    @property
    def layouts(self):
        """Effective layout per event type: the server's FEED_CONFIG fields, else requested."""
        return {l.event_type: l.fields for l in self._active}

    cdef void _rebuild(self):
        merged = dict(self._requested)
        merged.update(self._server)
        self._active = list(merged.values())
        self._active_by_name = merged

    def set_fields(self, str event_type, fields):
        """Layout to use for `event_type` until the server's FEED_CONFIG gives its own."""
        self._requested[event_type] = _Layout(event_type, list(fields))
        self._rebuild()

    def configure(self, feed_config):
        """Apply a FEED_CONFIG message (bytes, str or already-parsed dict); merges eventFields."""
        if isinstance(feed_config, (bytes, bytearray, memoryview, str)):
            try:
                msg = json.loads(bytes(feed_config) if not isinstance(feed_config, str)
                                 else feed_config)
            except ValueError as e:
                raise DecodeError(getattr(e, "pos", 0) or 0,
                                  f"FEED_CONFIG is not valid JSON: {e}") from None
        else:
            msg = feed_config
        if not isinstance(msg, dict):
            raise DecodeError(0, "FEED_CONFIG must be a JSON object")
        if msg.get("type", "FEED_CONFIG") != "FEED_CONFIG":
            raise DecodeError(0, f"not a FEED_CONFIG message (type {msg.get('type')!r})")
        ef = msg.get("eventFields")
        new = {}
        if ef is not None:
            if not isinstance(ef, dict):
                raise DecodeError(0, "FEED_CONFIG eventFields must be an object")
            for t, fields in ef.items():
                if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
                    raise DecodeError(0, f"FEED_CONFIG eventFields[{t!r}] must be a list of str")
                try:
                    new[t] = _Layout(t, fields)
                except ValueError as e:
                    raise DecodeError(0, f"FEED_CONFIG eventFields: {e}") from None
        if "dataFormat" in msg:
            self.data_format = msg["dataFormat"]
        if "aggregationPeriod" in msg:
            self.aggregation_period = msg["aggregationPeriod"]
        self._server.update(new)
        self._rebuild()

    def reset(self):
        """Forget the server's layouts (after a reconnect); requested layouts are kept."""
        self._server.clear()
        self._rebuild()

    cdef _Layout _find(self, const unsigned char* s, Py_ssize_t n, bint plain):
        cdef _Layout l
        for l in self._active:
            if PyBytes_GET_SIZE(l.type_utf8) == n and \
                    memcmp(PyBytes_AS_STRING(l.type_utf8), s, n) == 0:
                return l
        if not plain:
            return self._active_by_name.get(_decode_str(s, n))
        return None

    cdef EventBatch _batch(self, _Layout lay, _FrameData fd, Py_ssize_t start, Py_ssize_t n):
        cdef EventBatch b = EventBatch.__new__(EventBatch)
        b.event_type = lay.event_type
        b.fields = lay.fields
        b.size = n
        b._data = fd
        b._layout = lay
        b._cache = self._cache
        b._start = start
        return b

    cdef int _bad(self, Parser* ps, str reason, Py_ssize_t offset) except -1:
        """Handle a bad group: raise, or count + log and continue (returns 0)."""
        err = DecodeError(offset, reason)
        self.last_error = err
        if not self._skip:
            raise err
        self._bad_groups += 1
        if self._bad_groups & (self._bad_groups - 1) == 0:   # 1, 2, 4, 8 ... : no log flood
            _log.warning("dropped a bad FEED_DATA group (%d so far): %s", self._bad_groups, err)
        ps.err = NULL
        return 0

    def decode(self, frame):
        """Decode one FEED_DATA message (bytes, bytearray, memoryview or str) to EventBatches.

        One batch per COMPACT ``[type, values]`` group (or per run of same-type FULL objects),
        in frame order. The message's channel is left in `last_channel`.
        """
        return self._decode(frame)[1]

    def decode_message(self, frame):
        """Like `decode`, returning ``(channel, batches)`` (channel -1 when absent)."""
        return self._decode(frame)

    cdef tuple _decode(self, object frame):
        cdef object src = _frame_bytes(frame)
        cdef Parser ps
        cdef _FrameData fd = _FrameData.__new__(_FrameData)
        cdef Py_ssize_t length = PyBytes_GET_SIZE(src)
        cdef Py_ssize_t st, ln, tst = -1, tln = 0
        cdef bint plain, tplain = True
        cdef int have_data = 0
        cdef Py_ssize_t data_off = 0
        cdef list out = []
        cdef int64_t channel = -1
        cdef int rc
        cdef bint isint
        if length >= 0x7FFFFFFF:
            raise DecodeError(0, "frame larger than 2 GiB")
        fd.src = src
        fd.base = PyBytes_AS_STRING(src)
        fd.length = length
        fd.cap = length // 6 + 16         # typical values take >= 6 bytes; grown on demand
        fd.slots = <int64_t*>malloc(fd.cap * sizeof(int64_t))
        fd.tags = <uint8_t*>malloc(fd.cap)
        if fd.slots == NULL or fd.tags == NULL:
            raise MemoryError()
        ps.base = <const unsigned char*>fd.base
        ps.p = ps.base
        ps.end = ps.base + length
        ps.err = NULL
        ps.errcol = -1
        ps.errrow = -1
        self._frames += 1
        try:
            _ws(&ps)
            if ps.p >= ps.end or ps.p[0] != c'{':
                self._syntax(&ps, ps.p, "not a JSON object")
            ps.p += 1
            _ws(&ps)
            if ps.p < ps.end and ps.p[0] == c'}':
                ps.p += 1
            else:
                while True:
                    _ws(&ps)
                    if ps.p >= ps.end or ps.p[0] != 0x22:
                        self._syntax(&ps, ps.p, "expected a string key")
                    if _scan_string(&ps, &st, &ln, &plain) != OK:
                        self._syntax(&ps, ps.p, "")
                    key = _key_id(ps.base + st, ln, plain)
                    _ws(&ps)
                    if ps.p >= ps.end or ps.p[0] != c':':
                        self._syntax(&ps, ps.p, "expected ':'")
                    ps.p += 1
                    _ws(&ps)
                    if key == 1:           # type
                        if ps.p < ps.end and ps.p[0] == 0x22:
                            if _scan_string(&ps, &tst, &tln, &tplain) != OK:
                                self._syntax(&ps, ps.p, "")
                        else:
                            if _skip_value(&ps, 1) != OK:
                                self._syntax(&ps, ps.p, "")
                            tst = -2
                    elif key == 2:         # channel
                        st = ps.p - ps.base
                        if _skip_value(&ps, 1) != OK:
                            self._syntax(&ps, ps.p, "")
                        channel = _channel_of(ps.base + st, (ps.p - ps.base) - st)
                    elif key == 3:         # data (a repeated key: the last one wins)
                        if ps.p < ps.end and ps.p[0] == c'[':
                            out = []
                            fd.nslots = 0
                            self._parse_data(&ps, fd, out)
                            have_data = 1
                        else:
                            data_off = ps.p - ps.base
                            if _skip_value(&ps, 1) != OK:
                                self._syntax(&ps, ps.p, "")
                            out = []
                            fd.nslots = 0
                            have_data = 2
                    else:
                        if _skip_value(&ps, 1) != OK:
                            self._syntax(&ps, ps.p, "")
                    _ws(&ps)
                    if ps.p >= ps.end:
                        self._syntax(&ps, ps.p, "unexpected end of frame")
                    if ps.p[0] == c',':
                        ps.p += 1
                        continue
                    if ps.p[0] == c'}':
                        ps.p += 1
                        break
                    self._syntax(&ps, ps.p, "expected ',' or '}'")
            _ws(&ps)
            if ps.p != ps.end:
                self._syntax(&ps, ps.p, "extra data after the JSON object")
            if tst == -1:
                raise DecodeError(0, "message has no 'type'")
            if tst == -2 or not _is_feed_data(ps.base + tst, tln, tplain):
                raise DecodeError(0, "not a FEED_DATA message")
            if have_data == 0:
                raise DecodeError(0, "FEED_DATA message has no 'data'")
            if have_data == 2:
                raise DecodeError(data_off, "FEED_DATA 'data' is not an array")
        except DecodeError as e:
            self.last_error = e
            if self._skip and e.reason.startswith("invalid JSON"):
                self._bad_frames += 1
                if self._bad_frames & (self._bad_frames - 1) == 0:
                    _log.warning("dropped an invalid FEED_DATA frame (%d so far): %s",
                                 self._bad_frames, e)
                return (channel, [])
            raise
        # give back the unused part of a generous allocation
        if fd.cap - fd.nslots > 4096:
            _shrink(fd)
        self.last_channel = channel
        self._groups += len(out)
        for b in out:
            self._events += (<EventBatch>b).size
        return (channel, out)

    cdef int _syntax(self, Parser* ps, const unsigned char* at, str fallback) except -1:
        cdef Py_ssize_t off = ps.erroff if ps.err != NULL else at - ps.base
        reason = (<bytes>ps.err).decode() if ps.err != NULL else fallback
        raise DecodeError(off, "invalid JSON: " + reason)

    cdef int _parse_data(self, Parser* ps, _FrameData fd, list out) except -1:
        """ps.p at '[' of the data array: parse COMPACT groups and FULL objects into `out`."""
        cdef Py_ssize_t st, ln, count, start, el
        cdef bint plain
        cdef _Layout lay
        cdef int rc
        cdef const unsigned char* gpos
        cdef list run = []            # FULL objects of the current run: (offset, type, keys)
        ps.p += 1
        _ws(ps)
        if ps.p < ps.end and ps.p[0] == c']':
            ps.p += 1
            return 0
        while True:
            _ws(ps)
            gpos = ps.p
            if ps.p < ps.end and ps.p[0] == c'{':
                self._full_object(ps, fd, run, out)
            else:
                if run:
                    self._flush_full(ps, fd, run, out)
                if ps.p < ps.end and ps.p[0] == 0x22:
                    if _scan_string(ps, &st, &ln, &plain) != OK:
                        self._syntax(ps, ps.p, "")
                    _ws(ps)
                    if ps.p < ps.end and ps.p[0] == c']':
                        self._bad(ps, "event type name without a value array", gpos - ps.base)
                    elif ps.p < ps.end and ps.p[0] == c',':
                        ps.p += 1
                        _ws(ps)
                        if ps.p < ps.end and ps.p[0] == c'[':
                            self._compact_group(ps, fd, out, st, ln, plain, gpos)
                        else:
                            el = ps.p - ps.base
                            if _skip_value(ps, 1) != OK:
                                self._syntax(ps, ps.p, "")
                            self._bad(ps, "event type name not followed by a value array", el)
                    else:
                        self._syntax(ps, ps.p, "expected ',' or ']'")
                else:
                    el = ps.p - ps.base
                    if _skip_value(ps, 1) != OK:
                        self._syntax(ps, ps.p, "")
                    self._bad(ps, "unexpected element in FEED_DATA data (expected an event "
                              "type name or an event object)", el)
            _ws(ps)
            if ps.p >= ps.end:
                self._syntax(ps, ps.p, "unexpected end of frame")
            if ps.p[0] == c',':
                ps.p += 1
                continue
            if ps.p[0] == c']':
                ps.p += 1
                break
            self._syntax(ps, ps.p, "expected ',' or ']'")
        if run:
            self._flush_full(ps, fd, run, out)
        return 0

    cdef int _compact_group(self, Parser* ps, _FrameData fd, list out, Py_ssize_t st,
                            Py_ssize_t ln, bint plain, const unsigned char* gpos) except -1:
        cdef _Layout lay = self._find(ps.base + st, ln, plain)
        cdef Py_ssize_t count = 0
        cdef Py_ssize_t vpos = ps.p - ps.base
        cdef int rc
        cdef bint big
        if lay is None:
            name = _decode_str(ps.base + st, ln)
            if _skip_value(ps, 1) != OK:
                self._syntax(ps, ps.p, "")
            self._bad(ps, f"no layout for event type {name!r} (no FEED_CONFIG eventFields and "
                      f"no set_fields for it)", gpos - ps.base)
            return 0
        if lay.n == 0:
            if _skip_value(ps, 1) != OK:
                self._syntax(ps, ps.p, "")
            self._bad(ps, f"the {lay.event_type} layout has no fields", gpos - ps.base)
            return 0
        cdef const uint8_t* kinds = <const uint8_t*>PyBytes_AS_STRING(lay.kinds)
        cdef Py_ssize_t nf = lay.n
        big = fd.length > NOGIL_BYTES
        if big:
            with nogil:
                rc = _parse_compact(ps, fd, kinds, nf, &count)
        else:
            rc = _parse_compact(ps, fd, kinds, nf, &count)
        if rc == SYNTAX:
            self._syntax(ps, ps.p, "")
        if rc == SEMANTIC:
            reason = (<bytes>ps.err).decode()
            self._bad(ps, f"{reason}: column {lay.fields[ps.errcol]!r} of {lay.event_type} "
                      f"event #{ps.errrow}", ps.erroff)
            return 0
        if count % lay.n != 0:
            self._bad(ps, f"{count} values is not a multiple of the {lay.event_type} layout "
                      f"size {lay.n}", vpos)
            return 0
        out.append(self._batch(lay, fd, fd.nslots, count // lay.n))
        fd.nslots += count
        return 0

    # ---- FULL format (objects; slow path, FULL is deprecated by tastytrade) ----

    cdef int _full_object(self, Parser* ps, _FrameData fd, list run, list out) except -1:
        """Pre-scan one FULL event object: validate, find eventType and keys; add to the run."""
        cdef Py_ssize_t opos = ps.p - ps.base
        cdef Py_ssize_t st, ln, vst
        cdef bint plain
        etype = None
        bad_type = False
        keys = []
        ps.p += 1
        _ws(ps)
        if ps.p < ps.end and ps.p[0] == c'}':
            ps.p += 1
        else:
            while True:
                _ws(ps)
                if ps.p >= ps.end or ps.p[0] != 0x22:
                    self._syntax(ps, ps.p, "expected a string key")
                if _scan_string(ps, &st, &ln, &plain) != OK:
                    self._syntax(ps, ps.p, "")
                k = _decode_str(ps.base + st, ln)
                keys.append(k)
                _ws(ps)
                if ps.p >= ps.end or ps.p[0] != c':':
                    self._syntax(ps, ps.p, "expected ':'")
                ps.p += 1
                _ws(ps)
                if k == "eventType":
                    if ps.p < ps.end and ps.p[0] == 0x22:
                        if _scan_string(ps, &st, &ln, &plain) != OK:
                            self._syntax(ps, ps.p, "")
                        etype = _decode_str(ps.base + st, ln)
                        bad_type = False
                    else:
                        bad_type = True
                        if _skip_value(ps, 1) != OK:
                            self._syntax(ps, ps.p, "")
                elif _skip_value(ps, 1) != OK:
                    self._syntax(ps, ps.p, "")
                _ws(ps)
                if ps.p >= ps.end:
                    self._syntax(ps, ps.p, "unexpected end of frame")
                if ps.p[0] == c',':
                    ps.p += 1
                    continue
                if ps.p[0] == c'}':
                    ps.p += 1
                    break
                self._syntax(ps, ps.p, "expected ',' or '}'")
        if etype is None or bad_type:
            if run:
                self._flush_full(ps, fd, run, out)
            self._bad(ps, "FULL event object without a string 'eventType'", opos)
            return 0
        if run and run[0][1] != etype:
            self._flush_full(ps, fd, run, out)
        run.append((opos, etype, keys))
        return 0

    cdef int _flush_full(self, Parser* ps, _FrameData fd, list run, list out) except -1:
        """Parse the values of a run of same-type FULL objects into one batch."""
        cdef const unsigned char* saved = ps.p
        cdef _Layout lay
        cdef Py_ssize_t n = len(run), nf, st, ln, start, row, j
        cdef bint plain
        cdef int rc = OK
        cdef const uint8_t* kinds
        etype = run[0][1]
        offsets = [r[0] for r in run]
        cdef _Layout known = self._active_by_name.get(etype)
        fields = list(known.fields) if known is not None else []
        seen = set(fields)
        for _, _, keys in run:
            for key in keys:
                if key not in seen:
                    seen.add(key)
                    fields.append(key)
        del run[:]
        lay = known if (known is not None and len(fields) == known.n) else _Layout(etype, fields)
        nf = lay.n
        if _grow(fd, n * nf) != 0:
            raise MemoryError()
        start = fd.nslots
        memset(fd.tags + start, TAG_MISSING, n * nf)
        kinds = <const uint8_t*>PyBytes_AS_STRING(lay.kinds)
        errs = {}
        for row in range(n):
            # the object was validated by _full_object: walk it without syntax checks.
            # A repeated key: the last value wins (as in json.loads), so a bad earlier value
            # only counts when no later good value for the same key replaces it.
            ps.p = ps.base + <Py_ssize_t>offsets[row] + 1
            _ws(ps)
            if ps.p[0] == c'}':
                continue
            while True:
                _ws(ps)
                _scan_string(ps, &st, &ln, &plain)
                j = lay.index[_decode_str(ps.base + st, ln)]
                _ws(ps)
                ps.p += 1                     # ':'
                _ws(ps)
                rc = _take_value(ps, kinds[j], fd.slots + start + row * nf + j,
                                 fd.tags + start + row * nf + j)
                if rc == SEMANTIC:
                    errs[j] = ((<bytes>ps.err).decode(), ps.erroff)
                    ps.err = NULL
                    rc = OK
                elif rc == OK:
                    errs.pop(j, None)
                else:
                    break
                _ws(ps)
                if ps.p[0] == c',':
                    ps.p += 1
                    continue
                break
            if rc != OK:
                break
            if errs:
                rc = SEMANTIC
                j = min(errs, key=lambda c: errs[c][1])
                break
        if rc == SYNTAX:   # cannot happen (validated), but never trust that silently
            self._syntax(ps, ps.p, "")
        if rc == SEMANTIC:
            ps.p = saved
            reason, off = errs[j]
            self._bad(ps, f"{reason}: column {lay.fields[j]!r} of {lay.event_type} "
                      f"event #{row}", off)
            return 0
        ps.p = saved
        out.append(self._batch(lay, fd, start, n))
        fd.nslots += n * nf
        return 0


cdef inline int _key_id(const unsigned char* s, Py_ssize_t n, bint plain):
    if not plain:
        k = _decode_str(s, n)
        return 1 if k == "type" else 2 if k == "channel" else 3 if k == "data" else 0
    if n == 4 and memcmp(s, b"type", 4) == 0:
        return 1
    if n == 7 and memcmp(s, b"channel", 7) == 0:
        return 2
    if n == 4 and memcmp(s, b"data", 4) == 0:
        return 3
    return 0


cdef inline bint _is_feed_data(const unsigned char* s, Py_ssize_t n, bint plain):
    if plain:
        return n == 9 and memcmp(s, b"FEED_DATA", 9) == 0
    return _decode_str(s, n) == "FEED_DATA"


cdef int64_t _channel_of(const unsigned char* s, Py_ssize_t n) noexcept:
    cdef Py_ssize_t ln
    cdef bint isint
    cdef int64_t v
    if n > 0 and scan_number(<const char*>s, <const char*>s + n, &ln, &isint) == NP_OK and \
            ln == n and isint and parse_int64(<const char*>s, n, &v) == NP_OK:
        return v
    return -1


cdef void _shrink(_FrameData fd) noexcept:
    cdef Py_ssize_t cap = fd.nslots if fd.nslots > 0 else 1
    cdef int64_t* s = <int64_t*>realloc(fd.slots, cap * sizeof(int64_t))
    cdef uint8_t* t
    if s != NULL:
        fd.slots = s
        t = <uint8_t*>realloc(fd.tags, cap)
        if t != NULL:
            fd.tags = t
        fd.cap = cap
