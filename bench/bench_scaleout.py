"""Scale-out over Redis Cluster (issue 18): compute workers vs the single-process worker.

The same workload for every configuration, in one run:

* S symbols (``S000{=5m}`` ...) of the seeded market (`ttfast.sim.market.candle_bars`): a
  snapshot of H closed bars each, then L live bars with U updates per bar (the forming bar after
  2, 4, 6, 8 of its 8 samples at U=4: several updates per bar, the last one the bar's final
  state, the next bar's first update closing it), in Candle batches of up to 50 rows (one row
  per symbol), as a live feed delivers them.
* Every batch goes through an ingest `CandleStore` exactly as ``--role ingest`` does
  (`encode_entry` of each `SymbolChange`, partition ``crc32 % P``): one stream entry per
  symbol per batch. *Events* below are these entries (= the single worker's SymbolChanges).
  The XADDs are packed as RESP once, before any timing.

Two phases per configuration, each timed on its own: **warm** (the S snapshot entries: rebuild
+ ``history:<name>`` of H bars each) and **live** (the S*L*U update entries).

* ``cluster K=1,2,3``: a real 6-node Redis Cluster (3 primaries + 3 replicas, tests/servers.py),
  P=16 partitions, K ``python -m ttfast.worker --role compute`` processes. They are started on
  empty streams and waited for until every partition is leased and balanced (start-up, imports
  and lease balancing excluded). Then, per phase: the compute processes are stopped
  (``SIGSTOP``), the phase's entries are appended (raw pipelined RESP per node), the processes
  continue (``SIGCONT``) and the clock runs until every partition's group has
  ``pending == 0`` and ``last-delivered-id`` == the last appended id (polled every 10 ms). So
  a phase is the drain of a backlog: the throughput the workers can sustain. CPU = utime +
  stime from ``/proc/<pid>/stat`` over the same window, of the compute processes and,
  separately, of every redis-server (the appends' own Redis CPU is reported apart). Network =
  the nodes' ``INFO stats`` byte counters over the phase (clients in + out, replication out).
* ``plain K=1``: one compute process against a plain redis-server (no cluster client, no
  replicas).
* ``cluster K=1 --durable``: ``WAIT 1`` per node in every output round.
* ``single``: `ttfast.worker.Worker` in this process, its `RedisSink` and ``history:<name>``
  writer on a plain redis-server, fed the same batches (``store.apply`` → ``on_changes``, one
  event-loop turn per batch, as from a socket) with raw-candle republishing off (the compute
  role does not republish), timed from the first batch until both sinks acknowledged
  everything; CPU = this process's `time.process_time`.

After the run: ``MEMORY USAGE`` of ``snapshot:<name>``, ``history:<name>`` (H bars,
``--history-bars``) and the partition streams (bytes per live entry), for docs/scale-out.md.

``python -m bench.bench_scaleout [--symbols N --bars N --live-bars N --updates N --quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

PERIOD_MS = 300_000
SEED = 7
P = 16
HISTORY_BARS = 1000  # the CLI's default --history-bars
ROWS_PER_BATCH = 50
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00Z, the first snapshot bar
CLK_TCK = os.sysconf("SC_CLK_TCK")

# -- the workload ---------------------------------------------------------------------------------


@dataclass
class Phase:
    """One phase's batches (for the single worker) and entries (per partition, RESP-packed)."""

    name: str
    batches: list[Any]
    rate: float = 0.0  # paced: entries/s (one tick = one update of every symbol); 0 = backlog
    entries: int = 0  # = the SymbolChanges of `batches`
    resp: dict[int, bytes] = field(default_factory=dict)  # partition -> XADD commands
    count: dict[int, int] = field(default_factory=dict)  # partition -> entries
    entry_bytes: int = 0  # sum of field + value lengths
    ticks: list[dict[int, list[bytes]]] = field(default_factory=list)  # paced: per tick
    tick_batches: int = 1  # batches per tick

    @property
    def label(self) -> str:
        return f"paced {self.rate / 1000:g}k/s" if self.rate else self.name


@dataclass
class Workload:
    symbols: list[str]  # candle symbols
    phases: list[Phase]


def _live_batches(
    symbols: list[str], first: int, bars: int, updates: int
) -> list[Any]:  # ColumnBatch
    from ttfast.batch import ColumnBatch
    from ttfast.sim import market

    starts = first + np.arange(bars, dtype=np.int64) * PERIOD_MS
    n_samp = market.CANDLE_SAMPLES
    offs = np.arange(n_samp, dtype=np.int64) * (PERIOD_MS // n_samp)
    # the forming bar after k of its samples, k spread over the bar, the last one all of them:
    # the samples' prices as candle_bars computes them, volume pro rata (unused by MACD/HMA)
    ks = [max(1, round(n_samp * (u + 1) / updates)) for u in range(updates)]
    states: list[list[Any]] = []  # [symbol][u] -> float64[bars, 5]
    for sym in symbols:
        key = market.symbol_key(SEED, sym.split("{")[0])
        full = market.candle_bars(key, PERIOD_MS, starts, int(starts[-1]) + PERIOD_MS)
        px = np.round(market.mid_price(key, (starts[:, None] + offs[None, :]).reshape(-1)), 2)
        px = px.reshape(bars, n_samp)
        per_u = []
        for k in ks:
            per_u.append(
                np.stack(
                    [full.open, px[:, :k].max(1), px[:, :k].min(1), px[:, k - 1],
                     full.volume * (k / n_samp)],
                    axis=1,
                )
            )  # fmt: skip
        states.append(per_u)
    out: list[Any] = []
    for i in range(bars):
        for u in range(updates):
            for j in range(0, len(symbols), ROWS_PER_BATCH):
                chunk = range(j, min(j + ROWS_PER_BATCH, len(symbols)))
                v = np.array([states[s][u][i] for s in chunk], dtype=np.float64)
                cols: dict[str, Any] = {
                    "eventSymbol": [symbols[s] for s in chunk],
                    "time": np.full(len(chunk), starts[i], dtype=np.int64),
                    "eventFlags": np.zeros(len(chunk), dtype=np.int64),
                }
                for c, f in enumerate(("open", "high", "low", "close", "volume")):
                    cols[f] = v[:, c].copy()
                out.append(ColumnBatch("Candle", cols))
    return out


def build_workload(
    n_symbols: int, history: int, live_bars: int, updates: int, paced_bars: int, rate: float
) -> Workload:
    """The batches and the ingest's entries (see the module docstring)."""
    from ttfast._core import CandleStore, pack_command
    from ttfast.sim import market
    from ttfast.warm import Bars, snapshot_batch
    from ttfast.worker.scaleout.common import encode_entry, partition_of, stream_key

    symbols = [f"S{i:03d}{{=5m}}" for i in range(n_symbols)]
    starts = T0_MS + np.arange(history, dtype=np.int64) * PERIOD_MS
    warm = []
    for sym in symbols:
        key = market.symbol_key(SEED, sym.split("{")[0])
        b = market.candle_bars(key, PERIOD_MS, starts, int(starts[-1]) + PERIOD_MS)
        warm.append(snapshot_batch(sym, Bars(b.time, b.open, b.high, b.low, b.close, b.volume)))
    first = T0_MS + history * PERIOD_MS
    live = _live_batches(symbols, first, live_bars, updates)
    phases = [Phase("warm", warm), Phase("live", live)]
    if paced_bars:
        paced = _live_batches(symbols, first + live_bars * PERIOD_MS, paced_bars, updates)
        phases.append(Phase("paced", paced, rate=rate))
    store = CandleStore(4096)  # the worker's default --capacity
    nb = -(-n_symbols // ROWS_PER_BATCH)
    for ph in phases:
        parts: dict[int, list[bytes]] = {}
        ph.tick_batches = nb
        for i, batch in enumerate(ph.batches):
            if ph.rate and i % nb == 0:
                ph.ticks.append({})
            for ch in store.apply(batch):
                p = partition_of(ch.symbol, P)
                fields = encode_entry(ch)
                args = [b"XADD", stream_key(p).encode(), b"MAXLEN", b"~", b"100000", b"*"]
                for k, v in fields.items():
                    args += (k, v)
                    ph.entry_bytes += len(k) + len(v)
                cmd = pack_command(tuple(args))
                parts.setdefault(p, []).append(cmd)
                if ph.rate:
                    ph.ticks[-1].setdefault(p, []).append(cmd)
                ph.entries += 1
        ph.resp = {p: b"".join(cmds) for p, cmds in parts.items()}
        ph.count = {p: len(cmds) for p, cmds in parts.items()}
    return Workload(symbols, phases)


# -- measuring ----------------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """utime + stime of a process, seconds (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        rest = f.read().rpartition(b")")[2].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def _read_replies(sock: socket.socket, n: int) -> list[bytes]:
    """`n` RESP replies of XADD (bulk strings) or errors; the ids (errors raise)."""
    buf = b""
    ids: list[bytes] = []
    pos = 0
    while len(ids) < n:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("redis closed the connection")
        buf = buf[pos:] + chunk
        pos = 0
        while len(ids) < n:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            head = buf[pos:eol]
            if head[:1] == b"$":
                ln = int(head[1:])
                if len(buf) < eol + 2 + ln + 2:
                    break
                ids.append(buf[eol + 2 : eol + 2 + ln])
                pos = eol + 2 + ln + 2
            else:
                raise RuntimeError(f"XADD failed: {head!r}")
    return ids


class Target:
    """Where a configuration writes: a Redis Cluster or one plain redis-server."""

    def __init__(self, url: str, nodes: list[Any], cluster: bool) -> None:
        self.url = url
        self.nodes = nodes  # the RedisServer fixtures (port, proc)
        self.cluster = cluster
        self.client: Any = None
        self.connect()

    def connect(self) -> None:
        if self.cluster:
            from redis.cluster import ClusterNode, RedisCluster

            self.client = RedisCluster(
                startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in self.nodes]
            )
        else:
            import redis

            self.client = redis.Redis(port=self.nodes[0].port)

    def close(self) -> None:
        self.client.close()

    def primaries(self) -> list[int]:
        """Ports of the primaries."""
        if not self.cluster:
            return [self.nodes[0].port]
        return [n.port for n in self.client.get_primaries()]

    def port_of(self, key: str) -> int:
        return int(self.client.get_node_from_key(key).port) if self.cluster else self.nodes[0].port

    def flushall(self) -> None:
        import redis

        for port in self.primaries():
            with contextlib.closing(redis.Redis(port=port)) as r:
                r.flushall()

    def counters(self) -> dict[str, float]:
        """CPU seconds of every node; client bytes in+out and replication bytes out (INFO)."""
        import redis

        c = {"cpu": 0.0, "net": 0.0, "repl": 0.0}
        for n in self.nodes:
            c["cpu"] += cpu_s(n.proc.pid)
            with contextlib.closing(redis.Redis(port=n.port)) as r:
                st = r.info("stats")
            # (the totals include replication, both ways: taken out of "net")
            repl_in = st.get("total_net_repl_input_bytes", 0)
            repl_out = st.get("total_net_repl_output_bytes", 0)
            c["net"] += st["total_net_input_bytes"] + st["total_net_output_bytes"]
            c["net"] -= repl_in + repl_out
            c["repl"] += repl_out
        return c

    def append(self, ph: Phase) -> dict[int, bytes]:
        """XADD the phase's entries, pipelined per node; the last id of each partition."""
        from ttfast.worker.scaleout.common import stream_key

        by_port: dict[int, list[int]] = {}
        for p in ph.resp:
            by_port.setdefault(self.port_of(stream_key(p)), []).append(p)
        last: dict[int, bytes] = {}
        socks = []
        try:
            for port, parts in by_port.items():
                s = socket.create_connection(("127.0.0.1", port))
                socks.append((s, parts))
                s.sendall(b"".join(ph.resp[p] for p in parts))
            for s, parts in socks:
                ids = _read_replies(s, sum(ph.count[p] for p in parts))
                k = 0
                for p in parts:
                    k += ph.count[p]
                    last[p] = ids[k - 1]
        finally:
            for s, _ in socks:
                s.close()
        return last

    def append_paced(self, ph: Phase) -> tuple[float, float, dict[int, bytes]]:
        """XADD the phase tick by tick at its rate (one pipelined write per node per tick, its
        replies read at once); (start, end of the last append, last id per partition)."""
        from ttfast.worker.scaleout.common import stream_key

        port = {p: self.port_of(stream_key(p)) for p in range(P)}
        socks = {pt: socket.create_connection(("127.0.0.1", pt)) for pt in set(port.values())}
        last: dict[int, bytes] = {}
        dt = sum(len(v) for v in ph.ticks[0].values()) / ph.rate
        try:
            t0 = time.monotonic()
            for k, tick in enumerate(ph.ticks):
                wait = t0 + k * dt - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                by_port: dict[int, list[int]] = {}
                for p in tick:
                    by_port.setdefault(port[p], []).append(p)
                for pt, parts in by_port.items():
                    socks[pt].sendall(b"".join(c for p in parts for c in tick[p]))
                for pt, parts in by_port.items():
                    ids = _read_replies(socks[pt], sum(len(tick[p]) for p in parts))
                    n = 0
                    for p in parts:
                        n += len(tick[p])
                        last[p] = ids[n - 1]
            return t0, time.monotonic(), last
        finally:
            for sk in socks.values():
                sk.close()

    def drained_at(self, last: dict[int, bytes], timeout: float) -> float:
        """Poll until every partition's group delivered its last id and has nothing pending;
        the monotonic time it was seen."""
        from ttfast.worker.scaleout.common import GROUP, stream_key

        todo = dict(last)
        deadline = time.monotonic() + timeout
        while todo:
            for p in list(todo):
                for g in self.client.xinfo_groups(stream_key(p)):
                    if g["name"] in (GROUP, GROUP.encode()):
                        lid = g["last-delivered-id"]
                        lid = lid if isinstance(lid, bytes) else str(lid).encode()
                        if lid == todo[p] and g["pending"] == 0:
                            del todo[p]
            if not todo:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"not drained in {timeout}s: partitions {sorted(todo)}")
            time.sleep(0.01)
        return time.monotonic()


@dataclass
class Row:
    config: str
    phase: str
    entries: int
    wall_s: float
    worker_cpu_s: float
    redis_cpu_s: float  # the compute (or sink) side's Redis CPU
    append_redis_cpu_s: float  # the XADDs' own Redis CPU (compute configs)
    net_bytes: float  # client bytes in + out, every node
    repl_bytes: float
    lag_s: float | None = None  # paced: the last append -> every entry acknowledged

    @property
    def rate(self) -> float:
        return self.entries / self.wall_s

    def us(self, s: float) -> float:
        return s / self.entries * 1e6


@dataclass
class ComputeTotals:
    acked: int = 0
    commands: int = 0
    rejected: int = 0
    lost: int = 0
    write_failures: int = 0
    takeovers: int = 0
    released: int = 0


# the compute worker's final status line ("compute <id> | ... | acked N ... lost N"), by field
_STATUS_FIELDS = {
    "acked": "acked",
    "commands": "commands",
    "rejected": "rejected",
    "write_failures": "write failures",
    "takeovers": "takeovers",
    "released": "released",
    "lost": "lost",
}


def parse_status(text: str) -> ComputeTotals | None:
    """The numbers of the last status line of a compute worker's output (None: none)."""
    lines = [ln for ln in text.splitlines() if ln.startswith("compute ") and " acked " in ln]
    if not lines:
        return None
    t = ComputeTotals()
    for attr, label in _STATUS_FIELDS.items():
        m = re.search(rf"(?:^|[ |]){label} (\d+)", lines[-1])
        if m:
            setattr(t, attr, int(m.group(1)))
    return t


@dataclass
class Result:
    rows: list[Row]
    compute: dict[str, ComputeTotals]  # config -> totals parsed from the status lines
    entries: dict[str, int]  # phase -> entries
    memory: dict[str, float]


@contextlib.contextmanager
def compute_workers(
    target: Target, k: int, logdir: Path, extra: list[str], lease_ms: int
) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(k):
            with open(logdir / f"compute{i}.log", "wb") as out:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "ttfast.worker", "--role", "compute",
                         "--redis", target.url, "--partitions", str(P),
                         "--lease-ms", str(lease_ms), "--status-interval", "3600",
                         "--history-bars", str(HISTORY_BARS), *extra],
                        stdout=out, stderr=subprocess.STDOUT, env=env,
                    )
                )  # fmt: skip
        yield procs
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.send_signal(signal.SIGCONT)
                pr.send_signal(signal.SIGTERM)
        for pr in procs:
            try:
                pr.wait(30)
            except subprocess.TimeoutExpired:
                pr.kill()
                pr.wait(10)


def _balanced(target: Target, procs: list[subprocess.Popen[bytes]]) -> bool:
    from ttfast.worker.scaleout.common import GROUP, lease_key, stream_key

    c = target.client
    held: dict[int, int] = {}
    for p in range(P):
        v = c.get(lease_key(p))
        if v is None:
            return False
        pid = int(v.decode().split(":")[1])
        held[pid] = held.get(pid, 0) + 1
    if set(held) != {pr.pid for pr in procs} or max(held.values()) > -(-P // len(procs)):
        return False
    for p in range(P):  # every partition task started (it created the group)
        if not c.exists(stream_key(p)):
            return False
        if not any(g["name"] in (GROUP, GROUP.encode()) for g in c.xinfo_groups(stream_key(p))):
            return False
    return True


def run_compute(
    name: str,
    target: Target,
    wl: Workload,
    k: int,
    logdir: Path,
    extra: list[str],
    lease_ms: int,
    rows: list[Row],
) -> ComputeTotals:
    target.flushall()
    sub = logdir / name.replace(" ", "_").replace("=", "").replace("-", "")
    sub.mkdir()
    with compute_workers(target, k, sub, extra, lease_ms) as procs:
        deadline = time.monotonic() + 60 + 4 * lease_ms / 1000
        while not _balanced(target, procs):
            if any(pr.poll() is not None for pr in procs) or time.monotonic() > deadline:
                tails = "".join(
                    f"--- {f.name}\n{f.read_text(errors='replace')[-2000:]}"
                    for f in sorted(sub.iterdir())
                )
                raise RuntimeError(f"{name}: compute workers not balanced\n{tails}")
            time.sleep(0.1)
        time.sleep(0.5)
        pids = [pr.pid for pr in procs]
        for ph in wl.phases:
            if ph.rate:  # appended at its rate while the workers run
                r0 = target.counters()
                c0 = sum(cpu_s(pid) for pid in pids)
                t0, t_end, last = target.append_paced(ph)
                t1 = target.drained_at(last, timeout=600)
                c1 = sum(cpu_s(pid) for pid in pids)
                r2 = target.counters()
                rows.append(
                    Row(name, ph.label, ph.entries, t1 - t0, c1 - c0, r2["cpu"] - r0["cpu"],
                        0.0, r2["net"] - r0["net"], r2["repl"] - r0["repl"], t1 - t_end)
                )  # fmt: skip
                continue
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            r0 = target.counters()
            last = target.append(ph)
            r1 = target.counters()
            c0 = sum(cpu_s(pid) for pid in pids)
            t0 = time.monotonic()
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
            t1 = target.drained_at(last, timeout=600)
            c1 = sum(cpu_s(pid) for pid in pids)
            r2 = target.counters()
            rows.append(
                Row(
                    name,
                    ph.label,
                    ph.entries,
                    t1 - t0,
                    c1 - c0,
                    r2["cpu"] - r1["cpu"],
                    r1["cpu"] - r0["cpu"],
                    r2["net"] - r1["net"],
                    r2["repl"] - r1["repl"],
                )
            )
    tot = ComputeTotals()
    for f in sorted(sub.iterdir()):
        got = parse_status(f.read_text(errors="replace"))
        if got is None:
            raise RuntimeError(f"{name}: no final status line in {f}")
        for attr in _STATUS_FIELDS:
            setattr(tot, attr, getattr(tot, attr) + getattr(got, attr))
    return tot


def run_single(target: Target, wl: Workload, rows: list[Row]) -> None:
    """The single-process worker in this process (module docstring)."""
    from ttfast.worker import Worker, WorkerConfig

    target.flushall()
    names = [s.split("{")[0] for s in wl.symbols]
    cfg = WorkerConfig(
        symbols=names,
        source="redis",  # no raw-candle republishing, like the compute role
        redis_url=target.url,
        history_bars=HISTORY_BARS,
        redis_backlog=50_000_000,
        quiet=True,
    )

    async def go() -> None:
        w = Worker(cfg)
        assert w.redis is not None and w.edge.history is not None
        await w.redis.start()
        await w.edge.start()
        gc.collect()
        gc.freeze()  # as Worker.run does after start-up
        try:
            for ph in wl.phases:
                r0 = target.counters()
                c0 = time.process_time()
                t0 = time.monotonic()
                dt = sum(len(v) for v in ph.ticks[0].values()) / ph.rate if ph.rate else 0.0
                t_end = t0
                for i, b in enumerate(ph.batches):
                    if dt and i % ph.tick_batches == 0:
                        wait = t0 + i // ph.tick_batches * dt - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                        t_end = time.monotonic()
                    w.on_changes(w.store.apply(b))
                    await asyncio.sleep(0)
                assert await w.redis.flush(600) and await w.edge.history.flush(600)
                t1 = time.monotonic()
                c1 = time.process_time()
                r1 = target.counters()
                rows.append(
                    Row("single", ph.label, ph.entries, t1 - t0, c1 - c0, r1["cpu"] - r0["cpu"],
                        0.0, r1["net"] - r0["net"], r1["repl"] - r0["repl"],
                        t1 - t_end if dt else None)
                )  # fmt: skip
            assert w.redis.stats.dropped == 0 and w.redis.stats.rejected == 0
            hs = w.edge.history.stats
            assert hs.bars_dropped == 0 and hs.bars_rejected == 0
        finally:
            gc.unfreeze()
            await w.redis.close()
            await w.edge.close()

    asyncio.run(go())


def measure_memory(target: Target, wl: Workload) -> dict[str, float]:
    """MEMORY USAGE (bytes) of a symbol's snapshot, history and state log (means)."""
    from ttfast.worker.scaleout.common import partition_of

    c = target.client
    names = [s.split("{")[0] for s in wl.symbols]
    snap = [int(c.memory_usage(f"snapshot:{n}")) for n in names]
    hist = [int(c.memory_usage(f"history:{n}", samples=0)) for n in names]
    hist_len = [int(c.zcard(f"history:{n}")) for n in names]
    # the compute workers' per-symbol state log, where the tree has one ({p<n>}:log:<sym>)
    logs = [
        int(c.memory_usage(f"{{p{partition_of(s, P)}}}:log:{s}", samples=0) or 0)
        for s in wl.symbols
    ]
    return {
        "snapshot_bytes": float(np.mean(snap)),
        "history_bytes": float(np.mean(hist)),
        "history_bars": float(np.mean(hist_len)),
        "state_log_bytes": float(np.mean(logs)),
    }


def run(
    n_symbols: int,
    history: int,
    live_bars: int,
    updates: int,
    configs: list[str],
    paced_bars: int = 0,
    rate: float = 10_000.0,
    lease_ms: int = 8000,
    log: Any = print,
) -> Result:
    from tests.servers import redis_cluster, redis_server

    t = time.monotonic()
    wl = build_workload(n_symbols, history, live_bars, updates, paced_bars, rate)
    log(
        f"workload: {n_symbols} symbols, snapshot {history} bars, {live_bars} + {paced_bars} "
        f"live bars x {updates} updates in {ROWS_PER_BATCH}-row batches -> "
        + ", ".join(
            f"{ph.label} {ph.entries:,} entries ({ph.entry_bytes / ph.entries:,.0f} B/entry, "
            f"{len(ph.batches):,} batches)"
            for ph in wl.phases
        )
        + f"; built in {time.monotonic() - t:.1f}s"
    )
    rows: list[Row] = []
    totals: dict[str, ComputeTotals] = {}
    memory: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ttfast-bench-so-")))
        plain = None
        if "single" in configs or "plain1" in configs:
            srv = stack.enter_context(redis_server())
            plain = Target(srv.url, [srv], cluster=False)
            stack.callback(plain.close)
        if "single" in configs:
            assert plain is not None
            run_single(plain, wl, rows)
            log(_fmt_rows(rows[-2:]))
        if "plain1" in configs:
            assert plain is not None
            totals["plain K=1"] = run_compute("plain K=1", plain, wl, 1, tmp, [], lease_ms, rows)
            log(_fmt_rows(rows[-2:]))
        cl = [c for c in configs if c.startswith("cluster")]
        if cl:
            cf = stack.enter_context(redis_cluster())
            cluster = Target(cf.url, cf.nodes, cluster=True)
            stack.callback(cluster.close)
            for c in cl:
                k = int(c[len("cluster")])
                durable = "d" in c[len("cluster") + 1 :]
                pyclient = "p" in c[len("cluster") + 1 :]  # the rounds through redis-py
                name = f"cluster K={k}" + (" durable" if durable else "")
                name += " redis-py" if pyclient else ""
                extra = ["--durable", "1"] if durable else []
                extra += ["--cluster-client", "redis-py"] if pyclient else []
                totals[name] = run_compute(name, cluster, wl, k, tmp, extra, lease_ms, rows)
                log(_fmt_rows(rows[-2:]))
                if not memory:
                    memory = measure_memory(cluster, wl)
                    memory["live_stream_bytes"] = _live_stream_bytes(cluster, wl)
    return Result(rows, totals, {ph.label: ph.entries for ph in wl.phases}, memory)


def _live_stream_bytes(target: Target, wl: Workload) -> float:
    """Bytes per live entry retained in a stream: MEMORY USAGE of a stream holding only them
    (the live entries re-appended into fresh keys of the same slots)."""
    from ttfast.worker.scaleout.common import stream_key

    live = wl.phases[1]
    c = target.client
    for p in range(P):
        c.delete(stream_key(p))
    target.append(live)
    total = sum(int(c.memory_usage(stream_key(p), samples=0) or 0) for p in range(P))
    return total / live.entries


# -- report -------------------------------------------------------------------------------------

HEADER = (
    f"{'config':<20} {'phase':<12} {'entries':>7} {'wall s':>6} {'lag s':>5} {'entries/s':>9} "
    f"{'worker µs/e':>11} {'redis µs/e':>10} {'append µs/e':>11} {'net B/e':>8} "
    f"{'repl B/e':>8}"
)


def _fmt_rows(rows: list[Row], header: bool = False) -> str:
    out = [HEADER] if header else []
    for r in rows:
        out.append(
            f"{r.config:<20} {r.phase:<12} {r.entries:>7,} {r.wall_s:>6.2f} "
            f"{'-' if r.lag_s is None else f'{r.lag_s:.2f}':>5} {r.rate:>9,.0f} "
            f"{r.us(r.worker_cpu_s):>11.1f} {r.us(r.redis_cpu_s):>10.1f} "
            f"{r.us(r.append_redis_cpu_s):>11.1f} {r.net_bytes / r.entries:>8,.0f} "
            f"{r.repl_bytes / r.entries:>8,.0f}"
        )
    return "\n".join(out)


def format_result(res: Result) -> str:
    lines = [_fmt_rows(res.rows, header=True), ""]
    for name, t in res.compute.items():
        lines.append(
            f"{name}: acked {t.acked:,} commands {t.commands:,} rejected {t.rejected} "
            f"write failures {t.write_failures} takeovers {t.takeovers} released {t.released} "
            f"lost {t.lost}"
        )
    if res.memory:
        m = res.memory
        lines.append(
            f"memory: snapshot:<name> {m['snapshot_bytes']:,.0f} B, history:<name> "
            f"{m['history_bytes']:,.0f} B ({m['history_bars']:,.0f} bars, "
            f"{m['history_bytes'] / max(1.0, m['history_bars']):,.0f} B/bar), state log "
            f"{m['state_log_bytes']:,.0f} B; a stream holds {m['live_stream_bytes']:,.0f} B per "
            "live entry"
        )
    return "\n".join(lines)


# -- the gate: one write round, hand-packed vs redis-py's cluster pipeline ------------------------


class RoundRig:
    """A 6-node cluster and one event loop; `round(client)` sends a compute worker's typical
    round: per partition a delta on its channel and the symbol's, the snapshot `SET` and a
    state-log write (a `SET`: the rig's keys do not grow), those two as the fenced scripts the
    worker sends (64 commands over the 3 primaries)."""

    def __init__(self) -> None:
        from tests.servers import redis_cluster

        from ttfast.worker.scaleout.common import (
            FENCE_SCRIPT,
            connect,
            fence_key,
            fenced,
            partition_channel,
            partition_fence_key,
        )
        from ttfast.worker.scaleout.resp import RespCluster

        self._stack = contextlib.ExitStack()
        cluster = self._stack.enter_context(redis_cluster())
        self.loop = asyncio.new_event_loop()
        self.clients = {"resp": RespCluster(cluster.url), "redis-py": connect(cluster.url)}
        payload = b"x" * 300
        self.cmds: list[tuple[Any, ...]] = []
        for p in range(P):
            name = f"S{p:02d}".encode()
            snap, log_ = b"snapshot:" + name, f"{{p{p}}}:log:bench".encode()
            self.cmds += [
                ("SPUBLISH", b"analytics:delta:" + name, payload),
                ("SPUBLISH", partition_channel(p), name + b" " + payload),
                fenced(fence_key(snap), snap, 1, [("SET", snap, payload)]),
                fenced(partition_fence_key(p), log_, 1, [("SET", log_, b"y" * 53)]),
            ]
        for c in self.clients.values():
            self.loop.run_until_complete(c.script_load(FENCE_SCRIPT))
        for name in self.clients:
            self.round(name)  # connect, read the slot map

    def round(self, client: str) -> None:
        from ttfast.worker.scaleout.common import run_round

        self.loop.run_until_complete(run_round(self.clients[client], self.cmds))

    def close(self) -> None:
        for c in self.clients.values():
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(c.aclose())
        self.loop.close()
        self._stack.close()


_ROUND_RIG: RoundRig | None = None


def _round(client: str) -> None:
    global _ROUND_RIG
    if _ROUND_RIG is None:
        import atexit

        _ROUND_RIG = RoundRig()
        atexit.register(_ROUND_RIG.close)
    _ROUND_RIG.round(client)


def _pack_round() -> list[tuple[Any, ...]]:
    """The commands of a typical paced round of 16 symbols, as the compute worker builds them:
    two deltas, the fenced snapshot and the fenced history ops of a closed bar per symbol."""
    from ttfast.worker.scaleout.common import fence_key, fenced, partition_channel

    token = 1_764_620_000_000
    cmds: list[tuple[Any, ...]] = []
    for i in range(16):
        name = f"S{i:03d}".encode()
        delta, snap, hist = b"x" * 450, b"snapshot:" + name, b"history:" + name
        t = 1_764_620_000_000 + i * 300_000
        cmds += [
            ("SPUBLISH", b"analytics:delta:" + name, delta),
            ("SPUBLISH", partition_channel(i), name + b" " + delta),
            fenced(fence_key(snap), snap, token, [("SET", snap, b"s" * 456)]),
            fenced(
                fence_key(hist),
                hist,
                token,
                [
                    ("ZREMRANGEBYSCORE", hist, t, t + 300_000),
                    ("ZADD", hist, t, b"y" * 300, t + 300_000, b"y" * 300),
                    ("ZREMRANGEBYRANK", hist, 0, -1001),
                ],
            ),
        ]
    return cmds


@pytest.mark.parametrize("packer", ["ttfast", "redis-py"])
def test_pack_round(benchmark: Any, packer: str) -> None:
    """Side by side: a paced round's 64 commands packed as RESP (the gate's
    `scaleout.pack.vs_redis_py`)."""
    from redis.connection import Connection

    from ttfast._core import pack_command

    cmds = _pack_round()
    benchmark.group = "scale-out: RESP packing of a paced round (64 commands)"
    if packer == "ttfast":
        out = benchmark(lambda: [pack_command(c) for c in cmds])
        assert len(out) == len(cmds)
    else:
        ref = Connection().pack_command  # (packs; never connects)
        out = benchmark(lambda: [ref(*c) for c in cmds])
        assert [b"".join(o) for o in out] == [pack_command(c) for c in cmds]


def _gate_cases() -> list[Any]:
    import shutil

    from redis.connection import Connection

    from bench.gatelib import RatioCase
    from ttfast._core import pack_command

    cmds = _pack_round()
    ref_pack = Connection().pack_command  # (packs; never connects)
    assert [pack_command(c) for c in cmds] == [b"".join(ref_pack(*c)) for c in cmds]
    pack = RatioCase(
        "scaleout.pack.vs_redis_py",
        lambda: [pack_command(c) for c in cmds],
        lambda: [ref_pack(*c) for c in cmds],
        # measured 16.1-17.3 (172-186 vs 2,950-3,190 ns per command, 2026-12-01, 2 cores);
        # the floor leaves ~35% as margin for a loaded CI machine
        floor=11.0,
        units=len(cmds),
        note="RESP packing of a paced round's 64 commands (deltas, fenced snapshot and "
        "history scripts): ttfast._core.resp.pack_command vs redis-py's Connection.pack_command",
    )
    if shutil.which("redis-server") is None:
        return [pack]
    return [
        pack,
        RatioCase(
            "scaleout.round.resp_vs_redis_py",
            lambda: _round("resp"),
            lambda: _round("redis-py"),
            # measured 3.2-3.9 with the fenced scripts and the compiled packer (6.1-8.2 vs
            # 21.5-26.7 us per command, both including the scripts' time in Redis; 2.9-3.3 with
            # the Python packer, 4.1-4.7 before fencing), 2026-12-01, 2 cores; the floor leaves
            # ~30% as margin for a loaded CI machine
            floor=2.3,
            units=64,
            note="a compute worker's write round (64 commands, 3 primaries of a 6-node cluster): "
            "scaleout/resp.py vs redis-py's asyncio cluster pipeline, both through run_round",
        ),
    ]


GATE_RATIOS = _gate_cases()


ALL = ["single", "plain1", "cluster1", "cluster1p", "cluster2", "cluster3", "cluster1d"]


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - docs/scale-out.md numbers
    ap = argparse.ArgumentParser(prog="python -m bench.bench_scaleout", description=__doc__)
    ap.add_argument("--symbols", type=int, default=300)
    ap.add_argument("--bars", type=int, default=HISTORY_BARS, help="snapshot bars per symbol")
    ap.add_argument("--live-bars", type=int, default=80, help="live bars, as a backlog")
    ap.add_argument("--paced-bars", type=int, default=40, help="live bars, paced at --rate")
    ap.add_argument("--rate", type=float, default=10_000, help="paced entries/s")
    ap.add_argument("--updates", type=int, default=4, help="updates per live bar")
    ap.add_argument("--configs", default=",".join(ALL), help="comma list of " + ",".join(ALL))
    ap.add_argument("--lease-ms", type=int, default=8000)
    ap.add_argument("--quick", action="store_true", help="a small run (the smoke test's)")
    a = ap.parse_args(argv)
    if a.quick:
        a.symbols, a.bars, a.live_bars, a.paced_bars, a.rate = 40, 200, 3, 3, 2000
    load = os.getloadavg()
    print(
        f"{datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.processor() or platform.machine()}"
        f" {os.cpu_count()} cores, load {load[0]:.2f}"
    )
    res = run(
        a.symbols, a.bars, a.live_bars, a.updates, a.configs.split(","),
        a.paced_bars, a.rate, a.lease_ms,
    )  # fmt: skip
    print()
    print(format_result(res))
    print(f"load at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
