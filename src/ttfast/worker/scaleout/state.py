"""A compute worker's per-partition state in Redis: one compacted log per candle symbol and a
checkpoint, so that a new owner rebuilds the partition's series from them (stored bars →
store → indicators) instead of from the stream's whole history, and the stream can be trimmed
to what the logs do not hold yet (``XTRIM … MINID``: trimming follows consumption, it never
drops an entry no compute worker applied).

Keys (all with the partition's hash tag, so on the stream's slot and node):

* ``{p<n>}:log:<candle symbol>``: the symbol's applied entries as records, appended each round;
  replaced by one full record of the current series when it grows past twice that size;
* ``{p<n>}:syms``: the set of candle symbols with a log;
* ``{p<n>}:ckpt``: a hash, ``id`` the last stream entry the logs include, ``epoch`` the newest
  ingest leader epoch applied (the fencing state), ``seq`` the number of that epoch's last
  entry applied (the ingest numbers its entries: a gap is a loss), ``t:<candle symbol>`` its
  newest bar's time (where a new ingest leader resubscribes it when the stream no longer holds
  its entries).

A record is ``kind`` (1 byte: ``s``, ``m`` or ``u``, as in the stream), ``n`` (uint32 LE), then
the entry's ``t`` (n int64) and ``v`` (n × 5 float64) bytes: the stream entry itself, so
rebuilding is applying the same entries again. Appends are not atomic with the checkpoint, and
need not be: a log a round got half-way through re-applies, after the checkpoint, entries it
already holds, and entries are idempotent upserts that converge in stream order.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

__all__ = [
    "StateLog",
    "ckpt_key",
    "decode_log",
    "encode_record",
    "log_key",
    "syms_key",
]

_HEAD = struct.Struct("<cI")
_BAR = 8 + 5 * 8  # bytes per bar in a record: int64 time, 5 float64


def log_key(p: int, candle_symbol: str) -> str:
    return f"{{p{p}}}:log:{candle_symbol}"


def syms_key(p: int) -> str:
    return f"{{p{p}}}:syms"


def ckpt_key(p: int) -> str:
    return f"{{p{p}}}:ckpt"


def encode_record(kind: bytes, t: bytes, v: bytes) -> bytes:
    """One record of an entry's kind and its ``t`` / ``v`` bytes."""
    n, rem = divmod(len(t), 8)
    if rem or len(v) != n * 40 or kind not in (b"s", b"m", b"u"):
        raise ValueError("malformed entry for a state record")
    return _HEAD.pack(kind, n) + t + v


def decode_log(candle_symbol: str, blob: bytes) -> list[dict[bytes, bytes]]:
    """A log's records as stream entry fields (``s``, ``k``, ``t``, ``v``), in order;
    ValueError when it is truncated or malformed (never a partial answer)."""
    out: list[dict[bytes, bytes]] = []
    sym = candle_symbol.encode()
    i, end = 0, len(blob)
    while i < end:
        if end - i < _HEAD.size:
            raise ValueError(f"state log of {candle_symbol!r}: truncated record head at {i}")
        kind, n = _HEAD.unpack_from(blob, i)
        i += _HEAD.size
        if kind not in (b"s", b"m", b"u") or end - i < n * _BAR:
            raise ValueError(f"state log of {candle_symbol!r}: bad record at {i - _HEAD.size}")
        t = blob[i : i + 8 * n]
        v = blob[i + 8 * n : i + n * _BAR]
        i += n * _BAR
        out.append({b"s": sym, b"k": kind, b"t": t, b"v": v})
    return out


def series_record(series: Any) -> bytes:
    """One full record (``s``) of a `CandleSeries`' bars."""
    t = np.asarray(series.time, dtype=np.int64)
    v = np.stack([np.asarray(getattr(series, f), dtype=np.float64) for f in _FIELDS], 1).reshape(
        len(t), 5
    )
    return encode_record(b"s", t.tobytes(), np.ascontiguousarray(v).tobytes())


_FIELDS = ("open", "high", "low", "close", "volume")


class StateLog:
    """What a compute worker knows of its partitions' logs: their sizes (to compact) and which
    symbols are in ``{p<n>}:syms``. One per compute worker; a partition's part is dropped with
    the partition (`forget`)."""

    def __init__(self, compact_factor: float = 2.0, slack: int = 4096) -> None:
        self.compact_factor = compact_factor
        self.slack = slack
        self.sizes: dict[int, dict[str, int]] = {}
        self.compactions = 0

    def forget(self, p: int) -> None:
        self.sizes.pop(p, None)

    def loaded(self, p: int, candle_symbol: str, size: int) -> None:
        self.sizes.setdefault(p, {})[candle_symbol] = size

    def commands(
        self,
        p: int,
        applied: Iterable[dict[bytes, bytes]],
        last_id: bytes | str,
        epoch: int,
        series_of: Callable[[str], Any],
        seq: int = 0,
    ) -> list[tuple[Any, ...]]:
        """The commands that bring partition `p`'s logs up to `last_id`, given the entries
        applied since the previous call (in order) and the store's series afterwards."""
        sizes = self.sizes.setdefault(p, {})
        recs: dict[str, list[bytes]] = {}
        for f in applied:
            cs = f[b"s"].decode()
            recs.setdefault(cs, []).append(encode_record(f[b"k"], f[b"t"], f[b"v"]))
        cmds: list[tuple[Any, ...]] = []
        new = [cs for cs in recs if cs not in sizes]
        if new:
            cmds.append(("SADD", syms_key(p), *new))
        for cs, rs in recs.items():
            body = b"".join(rs)
            size = sizes.get(cs, 0) + len(body)
            series = series_of(cs)
            full = _HEAD.size + _BAR * (len(series) if series is not None else 0)
            if (
                series is not None
                and len(series)
                and size > self.compact_factor * full + self.slack
            ):
                blob = series_record(series)
                cmds.append(("SET", log_key(p, cs), blob))
                sizes[cs] = len(blob)
                self.compactions += 1
            else:
                cmds.append(("APPEND", log_key(p, cs), body))
                sizes[cs] = size
        ck: list[Any] = ["HSET", ckpt_key(p), "id", last_id, "epoch", epoch, "seq", seq]
        for cs in recs:  # each symbol's newest bar: where a new ingest leader resumes it
            series = series_of(cs)
            if series is not None and len(series):
                ck += ("t:" + cs, int(series.last.time))
        cmds.append(tuple(ck))
        return cmds
