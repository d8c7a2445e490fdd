# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""RESP packing of one Redis command, for the scale-out write path
(ttfast.worker.scaleout.resp): the bytes redis-py's packer gives for the same arguments
(bytes, str, int, float; bytearray and memoryview as their bytes), packed in one buffer
without a Python object per argument."""
from libc.stdint cimport int64_t
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize

from ttfast._core.textbuf cimport TextBuf, textbuf_reserve, textbuf_put, fmt_int64

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL
    long long PyLong_AsLongLongAndOverflow(object v, int* overflow) except? -1


cdef TextBuf _buf  # reused by every call (the GIL is held throughout; nothing re-enters)


cdef inline int _put_head(TextBuf* b, char kind, Py_ssize_t n) except -1:
    """`*n\\r\\n` or `$n\\r\\n`."""
    textbuf_reserve(b, 24)
    b.data[b.len] = kind
    b.len += 1
    b.len += fmt_int64(b.data + b.len, <int64_t>n)
    b.data[b.len] = 13
    b.data[b.len + 1] = 10
    b.len += 2
    return 0


cdef inline int _put_arg(TextBuf* b, const char* p, Py_ssize_t n) except -1:
    _put_head(b, c'$', n)
    textbuf_reserve(b, n + 2)
    textbuf_put(b, p, n)
    b.data[b.len] = 13
    b.data[b.len + 1] = 10
    b.len += 2
    return 0


def _arg(a):
    """An argument that is not exactly bytes, str or an int of 64 bits, as bytes."""
    if isinstance(a, bool):
        raise TypeError("bool is not a Redis argument")
    if isinstance(a, bytes):
        return bytes(a)
    if isinstance(a, str):
        return str(a).encode()
    if isinstance(a, int):
        return b"%d" % a
    if isinstance(a, float):
        return repr(a).encode()
    if isinstance(a, (bytearray, memoryview)):
        return bytes(a)
    raise TypeError(f"not a Redis argument: {type(a).__name__}")


def pack_command(tuple cmd not None):
    """One command (a tuple of bytes, str, int or float arguments) as RESP bytes; TypeError
    for any other argument (None and bool included), ValueError for an empty command."""
    cdef TextBuf* b = &_buf
    cdef Py_ssize_t i, n = len(cmd), size = 0
    cdef const char* p
    cdef char[24] num
    cdef int overflow = 0
    cdef long long v
    cdef bytes s
    if n == 0:
        raise ValueError("an empty Redis command")
    b.len = 0
    _put_head(b, c'*', n)
    for i in range(n):
        a = cmd[i]
        t = type(a)
        if t is bytes:
            _put_arg(b, PyBytes_AS_STRING(a), PyBytes_GET_SIZE(a))
        elif t is str:
            p = PyUnicode_AsUTF8AndSize(a, &size)
            _put_arg(b, p, size)
        elif t is int:
            v = PyLong_AsLongLongAndOverflow(a, &overflow)
            if overflow:
                s = b"%d" % a
                _put_arg(b, PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s))
            else:
                _put_arg(b, num, fmt_int64(num, <int64_t>v))
        else:
            s = _arg(a)
            _put_arg(b, PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s))
    return PyBytes_FromStringAndSize(b.data, b.len)
