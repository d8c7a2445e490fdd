"""The compute worker's state log (ttfast.worker.scaleout.state): records round-trip, bad logs
raise, and a worker rebuilt from the log computes exactly what the worker that wrote it does
(hypothesis over random live sequences: forming updates, closes, corrections, snapshots)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttfast import CandleStore
from ttfast.warm import Bars, snapshot_batch
from ttfast.worker import WorkerConfig
from ttfast.worker.scaleout.common import encode_entry
from ttfast.worker.scaleout.compute import ComputeWorker
from ttfast.worker.scaleout.state import (
    StateLog,
    ckpt_key,
    decode_log,
    encode_record,
    log_key,
    syms_key,
)

P5 = 300_000
T0 = 1_767_225_600_000


def _worker() -> ComputeWorker:
    return ComputeWorker(WorkerConfig(redis_url="redis://127.0.0.1:1", history_bars=100))


def _run(cmds: list[tuple[Any, ...]], db: dict[str, Any]) -> None:
    """Our command list's meaning (APPEND / SET / SADD / HSET), to replay what a round wrote."""
    for c in cmds:
        name, key, *args = c
        if name == "APPEND":
            db[key] = db.get(key, b"") + args[0]
        elif name == "SET":
            db[key] = args[0]
        elif name == "SADD":
            db.setdefault(key, set()).update(args)
        elif name == "HSET":
            db.setdefault(key, {}).update(dict(zip(args[::2], args[1::2], strict=True)))
        else:
            raise AssertionError(name)


def test_records_round_trip_and_bad_logs_raise() -> None:
    t = np.array([T0, T0 + P5], dtype=np.int64).tobytes()
    v = np.arange(10, dtype=np.float64).tobytes()
    blob = encode_record(b"u", t, v) + encode_record(b"s", t[:8], v[:40])
    (a, b) = decode_log("X{=5m}", blob)
    assert (a[b"k"], a[b"t"], a[b"v"], a[b"s"]) == (b"u", t, v, b"X{=5m}")
    assert (b[b"k"], b[b"t"], b[b"v"]) == (b"s", t[:8], v[:40])
    for bad in (blob[:-1], blob[:3], b"x" + blob[1:]):
        with pytest.raises(ValueError):
            decode_log("X{=5m}", bad)
    with pytest.raises(ValueError):
        encode_record(b"u", t, v[:-8])
    assert decode_log("X", b"") == []


def _changes(ops: list[tuple[int, float]], syms: list[str]) -> list[dict[bytes, bytes]]:
    """Entries an ingest would append for a random live sequence per symbol."""
    store = CandleStore(512)
    out: list[dict[bytes, bytes]] = []
    for s in syms:
        n = 40
        t = np.arange(T0, T0 + n * P5, P5, dtype=np.int64)
        c = 100 + np.cumsum(np.sin(np.arange(n)))
        bars = Bars(t, c, c + 1, c - 1, c, np.ones(n))
        out += [encode_entry(ch, epoch=1) for ch in store.apply(snapshot_batch(s, bars))]
    for k, (op, x) in enumerate(ops):
        s = syms[k % len(syms)]
        series = store.get(s)
        assert series is not None
        last = int(series.last.time)
        if op == 0:  # forming-bar update
            chs = store.apply_bar(s, last, x, x + 1, x - 1, x, 2.0)
        elif op == 1:  # a new bar: the forming one closed
            chs = store.apply_bar(s, last + P5, x, x, x, x, 1.0)
        elif op == 2:  # a correction of an older bar
            chs = store.apply_bar(s, last - 3 * P5, x, x + 2, x - 2, x, 5.0)
        else:  # a new snapshot (replace)
            n = 30 + int(x) % 20
            t = np.arange(last - n * P5, last + P5, P5, dtype=np.int64)
            c = np.full(len(t), x)
            chs = store.apply(snapshot_batch(s, Bars(t, c, c, c, c, np.ones(len(t)))))
        out += [encode_entry(ch, epoch=1) for ch in chs]
    return out


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from([0, 0, 0, 1, 1, 2, 3]), st.floats(50, 150)),
        min_size=1,
        max_size=120,
    ),
    cut=st.integers(0, 200),
    rounds=st.integers(1, 6),
)
def test_a_worker_rebuilt_from_the_log_continues_exactly(ops: Any, cut: int, rounds: int) -> None:
    syms = ["AAA{=5m}", "BBB{=5m}"]
    entries = [(b"0-0", e) for e in _changes(ops, syms)]
    cut = min(cut, len(entries) - 1)
    a = _worker()
    a_log = StateLog(compact_factor=1.5, slack=512)  # compacts often
    db: dict[str, Any] = {}
    head, tail = entries[:cut], entries[cut:]
    size = max(1, len(head) // rounds)
    for i in range(0, len(head), size):  # rounds, as the worker writes them
        a.apply(0, head[i : i + size])
        _run(a_log.commands(0, a.applied.pop(0, []), b"1-0", 1, a.store.get), db)
    # a new owner rebuilds from the log alone
    b = _worker()
    members = sorted(db.get(syms_key(0), set()))
    for cs in members:
        b.apply(0, [(b"0-0", f) for f in decode_log(cs, db[log_key(0, cs)])])
    assert db.get(ckpt_key(0), {"id": b"1-0"})["id"] == b"1-0"
    for cs in members:
        sa, sb = a.store.get(cs), b.store.get(cs)
        assert sa is not None and sb is not None
        assert np.array_equal(np.asarray(sa.time), np.asarray(sb.time))
        for f in ("open", "high", "low", "close", "volume"):
            assert np.array_equal(np.asarray(getattr(sa, f)), np.asarray(getattr(sb, f)))
    # ... and both compute the same bytes from here on
    for e in tail:
        oa, ob = a.apply(0, [e]), b.apply(0, [e])
        assert [(o.publishes, o.snapshots) for o in oa] == [(o.publishes, o.snapshots) for o in ob]
