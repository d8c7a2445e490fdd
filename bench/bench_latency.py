"""Latency, stage by stage: dxLink frame receipt -> ... -> the PUBLISHes acknowledged by Redis.

Two measurements, both printed by ``python -m bench.bench_latency`` as HDR histograms
(`hdrhistogram`, microseconds, 3 significant digits):

* **Worker** (`worker_latency`): a load generator in a separate process speaks dxLink and sends
  50-row Candle frames (50 symbols, one update per symbol per frame) on an absolute schedule
  (frame i is due at t0 + i * 50 / rate; a thread with ``time.sleep`` wakes its loop, so the
  generator's own timer granularity does not bunch frames), stamping each frame's first
  ``eventTime`` with ``time.monotonic_ns()`` at send. The receiver is the worker's real path:
  `ttfast.worker.sources.make_streamer` (DxLinkStreamer -> the Worker's CandleStore ->
  ``Worker.on_stream_changes`` -> compiled IndicatorPipeline) -> ``RedisSink`` -> a real
  redis-server on loopback. Probes around those calls (a `_Conn` subclass timing
  ``on_ws_frame``, a proxy around the store's ``apply``, a wrapper of the changes callback, a
  `RedisSink` subclass timing each round and its socket write) give, per frame:

  ========== ==========================================================================
  receive    generator send -> ``on_ws_frame`` entered (kernel, loopback, event loop)
  decode     ``on_ws_frame`` -> ``CandleStore.apply`` entered (message type, FeedDecoder)
  store      ``CandleStore.apply``
  pipeline   ``Worker.on_stream_changes`` (IndicatorPipeline.process + sink queueing)
  queue      queued -> the sink's round that takes the frame's last PUBLISH starts
  pack       that round: taking the commands from the queue, RESP packing
  write      ``transport.write`` (on loopback the kernel delivers to redis inside it)
  ack        written -> every reply of the round read
  total      ``on_ws_frame`` -> acknowledged (the issue's "frame receipt -> PUBLISH acked")
  ========== ==========================================================================

  ``CLOCK_MONOTONIC`` is system-wide on Linux, so the generator's stamp and the receiver's
  clock compare directly.

* **In-process** (`inprocess_latency`): ``_Conn.on_ws_frame`` on 1- and 10-event Quote frames
  -> the user's ``on_batch`` callback, and 1- and 10-row Candle frames -> ``on_candle_changes``
  (no socket: the receive stage is not part of it).

Variants run interleaved in one process (A B A B ...), so a comparison is same-run. ``base`` is
the worker as it runs; knobs, joined with ``+``: ``nofreeze`` (no ``gc.freeze()`` after
start-up), ``oldconn`` (the sink's previous StreamReader/``wait_for`` connection), ``nagle``
(TCP_NODELAY off on the dxLink and Redis sockets), ``asyncio`` (asyncio's loop, not uvloop),
``nohistory`` (without the worker's ``history:<name>`` writer), ``cmdsN`` (at most N commands
per sink round instead of 1024).
E.g. ``python -m bench.bench_latency --variants base,nofreeze,oldconn+nofreeze``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing as mp
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bench import datagen
from bench.gatelib import CallgrindCase, RatioCase

N_SYMBOLS = 50
ROWS_PER_FRAME = 50
STAMP = 1_234_567_890_123_456_789  # placeholder eventTime, replaced by the send time
STAGES = ("receive", "decode", "store", "pipeline", "queue", "pack", "write", "ack", "total")
US = 1000  # ns per microsecond


def _histogram() -> Any:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(1, 60_000_000, 3)  # 1 us .. 60 s, 3 significant digits


# --------------------------------------------------------------------------- load generator


def _frame_parts(rate: int, seconds: float) -> tuple[dict[str, object], list[tuple[bytes, bytes]]]:
    """Candle frames split around the first row's eventTime: (head, tail) per frame."""
    n_frames = int(rate * seconds / ROWS_PER_FRAME) + 1
    updates = 10
    n_bars = n_frames // updates + 1
    cfg, frames = datagen.candle_feed_frames(
        N_SYMBOLS, n_bars, updates, rows_per_frame=ROWS_PER_FRAME
    )
    out = []
    for fr in frames[:n_frames]:
        msg = json.loads(fr)
        msg["data"][1][1] = STAMP
        b = json.dumps(msg, separators=(",", ":")).encode()
        head, tail = b.split(str(STAMP).encode(), 1)
        out.append((head, tail))
    return cfg, out


def _generator(port_q: Any, rate: int, seconds: float, delay: float) -> None:
    """dxLink server (separate process) sending Candle frames at `rate` updates/s."""
    import picows

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    cfg, parts = _frame_parts(rate, seconds)
    fields = cfg["eventFields"]["Candle"]  # type: ignore[index]
    interval_ns = int(ROWS_PER_FRAME / rate * 1e9)

    class Conn(picows.WSListener):
        def on_ws_connected(self, t: picows.WSTransport) -> None:
            self.t = t
            self.started = False

        def send(self, m: dict[str, Any]) -> None:
            self.t.send(picows.WSMsgType.TEXT, json.dumps(m).encode())

        def on_ws_frame(self, t: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type == picows.WSMsgType.CLOSE:
                t.send_close(frame.get_close_code())
                t.disconnect()
                return
            m = json.loads(frame.get_payload_as_bytes())
            ty, ch = m["type"], m.get("channel", 0)
            if ty in datagen.DXLINK_HANDSHAKE:
                for reply in datagen.dxlink_handshake_replies(m):
                    self.send(reply)
            elif ty == "FEED_SETUP":
                ef = {"Candle": fields}
                self.send({"type": "FEED_CONFIG", "channel": ch, "dataFormat": "COMPACT",
                           "aggregationPeriod": 0.0, "eventFields": ef})  # fmt: skip
            elif (
                ty == "FEED_SUBSCRIPTION"
                and not self.started
                and any(e.get("type") == "Candle" for e in m.get("add", []))
            ):
                self.started = True
                self.pace(ch)

        def pace(self, ch: int) -> None:
            loop = asyncio.get_running_loop()
            pending: list[int] = []
            chb = str(ch).encode()

            def send_due() -> None:
                while pending:
                    i = pending.pop(0)
                    head, tail = parts[i]
                    head = head.replace(b'"channel":3', b'"channel":' + chb, 1)
                    self.t.send(
                        picows.WSMsgType.TEXT, head + str(time.monotonic_ns()).encode() + tail
                    )

            def clock() -> None:  # precise sleeps (nanosleep), one loop wake-up per frame
                t0 = time.monotonic_ns() + int(delay * 1e9)
                for i in range(len(parts)):
                    due = t0 + i * interval_ns
                    now = time.monotonic_ns()
                    if due > now:
                        time.sleep((due - now) / 1e9)
                    pending.append(i)
                    loop.call_soon_threadsafe(send_due)

            threading.Thread(target=clock, daemon=True).start()

    async def main() -> None:
        srv = await picows.ws_create_server(lambda _r: Conn(), "127.0.0.1", 0)
        port_q.put(srv.sockets[0].getsockname()[1])
        await asyncio.sleep(3600)

    asyncio.run(main())


class Generator:
    def __init__(self, rate: int, seconds: float, delay: float = 0.7) -> None:
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        self.p = ctx.Process(target=_generator, args=(q, rate, seconds, delay), daemon=True)
        self.p.start()
        self.url = f"ws://127.0.0.1:{q.get(timeout=120)}/realtime"
        self.n_frames = int(rate * seconds / ROWS_PER_FRAME) + 1

    def stop(self) -> None:
        self.p.terminate()
        self.p.join(5)


# --------------------------------------------------------------------------- probes


@dataclass
class Trace:
    """Per-frame timestamps (ns, CLOCK_MONOTONIC) and per-round sink timestamps."""

    frames: list[tuple[int, int, int, int, int, int, int]] = field(default_factory=list)
    # (sent, recv, store0, store1, cb0, cb1, enqueued publishes after the frame)
    rounds: list[tuple[int, int, int, int, int, int]] = field(default_factory=list)
    # (published before, published after, round start, write called, written, acknowledged)
    cur: list[int] = field(default_factory=lambda: [0] * 6)
    batch: Any = None
    gc_pauses: list[tuple[int, int]] = field(default_factory=list)  # (generation, ns)


def _probes(trace: Trace, sink: Any, variant: set[str]) -> tuple[type, type, Callable[..., Any]]:
    """The `_Conn` subclass, the RedisSink round timer and the store proxy factory."""
    from ttfast.dxlink.streamer import _Conn
    from ttfast.sinks import redis as redis_mod

    now = time.monotonic_ns
    cur = trace.cur

    class TimedConn(_Conn):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            cur[0] = now()
            trace.batch = None
            super().on_ws_frame(transport, frame)
            b = trace.batch
            if b is not None:
                sent = int(b.column("eventTime")[0])
                trace.frames.append(
                    (sent, cur[0], cur[1], cur[2], cur[3], cur[4], sink.stats.enqueued)
                )

        def on_ws_connected(self, transport: Any) -> None:
            super().on_ws_connected(transport)
            if "nagle" in variant:  # Nagle back on the dxLink socket (the A/B of TCP_NODELAY)
                transport.underlying_transport.get_extra_info("socket").setsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY, 0
                )

    class TimedWrite:  # wraps the connection's transport (or StreamWriter): stamps the write
        def __init__(self, w: Any) -> None:
            self._w = w

        def write(self, data: bytes) -> None:
            trace_written[1] = now()
            self._w.write(data)
            trace_written[0] = now()

        def writelines(self, data: list[bytes]) -> None:
            trace_written[1] = now()
            self._w.writelines(data)
            trace_written[0] = now()

        def __getattr__(self, name: str) -> Any:
            return getattr(self._w, name)

    trace_written = [0, 0]

    class StoreProxy:
        def __init__(self, store: Any) -> None:
            self._s = store

        def apply(self, batch: Any) -> Any:
            cur[1] = now()
            ch = self._s.apply(batch)
            cur[2] = now()
            trace.batch = batch
            return ch

        def __getattr__(self, name: str) -> Any:
            return getattr(self._s, name)

    orig_send = type(sink)._send

    async def timed_send(self: Any) -> bool:
        if self._conn is None:
            if "oldconn" in variant:
                c: Any = await _OldRespConnection.open(self.url, self.socket_timeout)
                c.writer = TimedWrite(c.writer)
            else:
                c = await redis_mod._RespConnection.open(self.url, self.socket_timeout)
                c.transport = TimedWrite(c.transport)
            self._conn = c
            if "nagle" in variant:
                w = c.writer if "oldconn" in variant else c.transport
                w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        before = self.stats.published + self.stats.rejected_publishes
        t0 = now()
        ok = await orig_send(self)
        t1 = now()
        after = self.stats.published + self.stats.rejected_publishes
        if ok:
            trace.rounds.append((before, after, t0, trace_written[1], trace_written[0], t1))
        return bool(ok)

    sink._send = timed_send.__get__(sink)
    return TimedConn, StoreProxy, timed_send


class _OldRespConnection:
    """The sink's connection before the latency work (StreamReader/StreamWriter, a `wait_for`
    around each drain and read, one joined write), kept here as the A/B reference
    (``oldconn``; the RESP packing is the current one)."""

    def __init__(self, reader: Any, writer: Any, timeout: float) -> None:
        self.reader, self.writer, self.timeout = reader, writer, timeout

    @classmethod
    async def open(cls, url: str, timeout: float) -> _OldRespConnection:
        import urllib.parse

        u = urllib.parse.urlsplit(url)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(u.hostname or "127.0.0.1", u.port or 6379), timeout
        )
        return cls(reader, writer, timeout)

    async def roundtrip(self, data: bytes | list[bytes], n: int) -> list[tuple[int, bytes]]:
        self.writer.write(b"".join(data) if isinstance(data, list) else data)
        await asyncio.wait_for(self.writer.drain(), self.timeout)
        buf = bytearray()
        while buf.count(b"\r\n") < n:
            chunk = await asyncio.wait_for(self.reader.read(1 << 16), self.timeout)
            if not chunk:
                raise EOFError("redis closed the connection")
            buf += chunk
        return []

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


# --------------------------------------------------------------------------- worker run


async def _worker_run(gen: Generator, redis_url: str, variant: set[str], seconds: float) -> Trace:
    from ttfast.dxlink import streamer as streamer_mod
    from ttfast.worker.app import Worker
    from ttfast.worker.config import WorkerConfig
    from ttfast.worker.sources import make_streamer

    syms = datagen.symbols(N_SYMBOLS)
    cfg = WorkerConfig(
        symbols=list(syms), period="1m", source="dxlink", redis_url=redis_url, quiet=True
    )
    # as the command line's worker: history:<name> kept (--history-bars 1000; a WorkerConfig
    # built in code defaults to 0), unless the variant says nohistory
    cfg.history_bars = 0 if "nohistory" in variant else 1000
    w = Worker(cfg)
    for s in syms:  # ready series, as after the dxLink snapshot
        w.store.apply_bar(s + "{=1m}", 1_600_000_000_000, 1.0, 1.0, 1.0, 1.0, 0.0)
    trace = Trace()
    assert w.redis is not None
    for knob in variant:  # cmdsN: at most N commands per sink round (default 1024)
        if knob.startswith("cmds"):
            w.redis.max_commands = int(knob[4:])
    timed_conn, store_proxy, _ = _probes(trace, w.redis, variant)
    cur = trace.cur

    def on_changes(changes: Any) -> None:
        cur[3] = time.monotonic_ns()
        w.on_stream_changes(changes)
        cur[4] = time.monotonic_ns()

    async def provider() -> tuple[str, str]:
        return gen.url, "t"

    gc_t0 = [0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if not trace.frames:  # start-up (and the explicit collect before gc.freeze)
            return
        if phase == "start":
            gc_t0[0] = time.monotonic_ns()
        else:
            trace.gc_pauses.append((info["generation"], time.monotonic_ns() - gc_t0[0]))

    await w.redis.start()
    await w.edge.start(optional=True)  # as Worker.run: the history:<name> writer
    gc.callbacks.append(on_gc)
    orig_conn = streamer_mod._Conn
    streamer_mod._Conn = timed_conn  # type: ignore[misc]
    try:
        st = make_streamer(w, gen.url, provider)
        st._on_candle_changes = on_changes
        st.candles = store_proxy(st.candles)
        await st.open()
        st.subscribe_candles(cfg.symbols, cfg.period, 1_700_000_000_000)
        if "nofreeze" not in variant:  # as Worker.run does after start-up
            gc.collect()
            gc.freeze()
        deadline = time.monotonic() + seconds + 15
        while len(trace.frames) < gen.n_frames and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await w.redis.flush(10)
        await st.close()
    finally:
        streamer_mod._Conn = orig_conn  # type: ignore[misc]
        gc.callbacks.remove(on_gc)
        gc.unfreeze()
        await w.redis.close()
        await w.edge.close()
    return trace


def breakdown(trace: Trace, skip: int = 50) -> dict[str, Any]:
    """Per-stage histograms (microseconds) of a run; the first `skip` frames are warm-up."""
    hs = {s: _histogram() for s in STAGES}
    rounds = trace.rounds
    r = 0
    for k, (sent, recv, s0, s1, c0, c1, enq) in enumerate(trace.frames):
        while r < len(rounds) and rounds[r][1] < enq:
            r += 1
        if r == len(rounds):
            break
        _, _, rs, rp, rw, ra = rounds[r]
        if k < skip:
            continue
        vals = (
            recv - sent,
            s0 - recv,
            s1 - s0,
            c1 - c0,
            rs - c1,
            rp - rs,
            rw - rp,
            ra - rw,
            ra - recv,
        )
        for name, v in zip(STAGES, vals, strict=True):
            hs[name].record_value(max(1, (v + US // 2) // US))
    for gen, ns in trace.gc_pauses:
        hs.setdefault(f"gc gen{gen}", _histogram()).record_value(max(1, (ns + US // 2) // US))
    return hs


def format_breakdown(title: str, hs: dict[str, Any]) -> str:
    lines = [
        title,
        f"  {'stage (us)':<10} {'p50':>8} {'p90':>8} {'p99':>8} {'p99.9':>8} {'max':>8} {'n':>7}",
    ]
    for name, h in hs.items():
        if h.get_total_count() == 0:
            continue
        ps = [h.get_value_at_percentile(p) for p in (50, 90, 99, 99.9)]
        lines.append(
            f"  {name:<10} "
            + " ".join(f"{v:>8}" for v in ps)
            + f" {h.get_max_value():>8} {h.get_total_count():>7}"
        )
    return "\n".join(lines)


def worker_latency(
    redis_url: str, rate: int, seconds: float, variants: list[str], repeats: int = 1
) -> dict[str, dict[str, Any]]:
    """Interleaved runs of each variant; histograms merged per variant."""
    out: dict[str, dict[str, Any]] = {}
    for _ in range(repeats):
        for v in variants:
            gen = Generator(rate, seconds)
            try:
                tr = _run_loop(_worker_run(gen, redis_url, set(v.split("+")), seconds), v)
            finally:
                gen.stop()
            hs = breakdown(tr)
            if v in out:
                for k, h in hs.items():
                    if k in out[v]:
                        out[v][k].add(h)
                    else:
                        out[v][k] = h
            else:
                out[v] = hs
    return out


def _run_loop(coro: Any, variant: str) -> Any:
    if "asyncio" in variant.split("+"):
        return asyncio.run(coro)
    import uvloop

    return uvloop.run(coro)


# --------------------------------------------------------------------------- in-process


def _offline_conn(**callbacks: Any) -> tuple[Any, Any]:
    """A DxLinkStreamer and its _Conn without a socket: frames are handed to on_ws_frame."""
    from ttfast.dxlink.streamer import DxLinkStreamer, _Conn

    async def tp() -> tuple[str, str]:
        return "ws://127.0.0.1:9/", "t"

    s = DxLinkStreamer(None, tp, **callbacks)
    s._prepare_connection()
    conn = _Conn(s)
    s._conn = conn
    return s, conn


def _quote_handler(rows: int) -> tuple[Callable[[], None], list[int]]:
    """on_ws_frame of a 1/10-Quote frame -> on_batch; returns (run one frame, latencies)."""
    from bench.bench_dxlink import quote_frames
    from ttfast.dxlink.protocol import DEFAULT_EVENT_FIELDS

    fields = tuple(DEFAULT_EVENT_FIELDS["Quote"])
    frame = quote_frames(fields, 1)[0]
    # keep the first `rows` rows
    msg = json.loads(frame)
    msg["data"][1] = msg["data"][1][: rows * len(fields)]
    payload = json.dumps(msg, separators=(",", ":")).encode()
    lat: list[int] = []
    t_in = [0]

    def on_batch(b: Any) -> None:
        lat.append(time.perf_counter_ns() - t_in[0])

    s, conn = _offline_conn(on_batch=on_batch)
    s._on_message(
        conn,
        json.dumps(
            {
                "type": "FEED_CONFIG",
                "channel": 1,
                "dataFormat": "COMPACT",
                "aggregationPeriod": 0.0,
                "eventFields": {"Quote": list(fields)},
            }
        ).encode(),
    )
    fr = _FakeFrame(payload)

    def run() -> None:
        t_in[0] = time.perf_counter_ns()
        conn.on_ws_frame(None, fr)  # type: ignore[arg-type]

    return run, lat


def _candle_handler(rows: int) -> tuple[Callable[[], None], list[int]]:
    """on_ws_frame of a 1/10-row live Candle frame -> on_candle_changes."""
    lat: list[int] = []
    t_in = [0]

    def on_changes(ch: Any) -> None:
        lat.append(time.perf_counter_ns() - t_in[0])

    s, conn = _offline_conn(on_candle_changes=on_changes)
    ch = s.protocol.channel_for("Candle")
    cfg, frames = datagen.candle_feed_frames(10, 400, 10, rows_per_frame=rows, channel=ch)
    s._on_message(conn, json.dumps(cfg).encode())
    for sym in datagen.symbols(10):
        s.candles.apply_bar(sym + "{=1m}", 1_600_000_000_000, 1.0, 1.0, 1.0, 1.0, 0.0)
    it = iter([_FakeFrame(f) for f in frames])

    def run() -> None:
        fr = next(it)
        t_in[0] = time.perf_counter_ns()
        conn.on_ws_frame(None, fr)  # type: ignore[arg-type]

    return run, lat


class _FakeFrame:
    """What `_Conn.on_ws_frame` reads of a picows WSFrame (a final TEXT frame)."""

    def __init__(self, payload: bytes) -> None:
        import picows

        self.msg_type = picows.WSMsgType.TEXT
        self.fin = True
        self._p = payload

    def get_payload_as_bytes(self) -> bytes:
        return self._p


INPROCESS_CASES: dict[str, Callable[[], tuple[Callable[[], None], list[int]]]] = {
    "quote1 -> on_batch": lambda: _quote_handler(1),
    "quote10 -> on_batch": lambda: _quote_handler(10),
    "candle1 -> on_candle_changes": lambda: _candle_handler(1),
    "candle10 -> on_candle_changes": lambda: _candle_handler(10),
}


def inprocess_latency(n: int = 3000, gap_us: float = 50.0) -> dict[str, Any]:
    """Per case, `n` frames one at a time, `gap_us` apart (a frame arrives on an idle
    handler, as in a live stream); histograms in nanoseconds."""
    from hdrh.histogram import HdrHistogram

    out = {}
    for name, make in INPROCESS_CASES.items():
        run, lat = make()
        for _ in range(200):  # warm-up
            run()
        lat.clear()
        for _ in range(n):
            run()
            t_end = time.perf_counter_ns() + int(gap_us * 1000)
            while time.perf_counter_ns() < t_end:
                pass
        h = HdrHistogram(1, 60_000_000_000, 3)
        for v in lat:
            h.record_value(max(1, v))
        out[name] = h
    return out


def format_inprocess(hs: dict[str, Any]) -> str:
    lines = [f"  {'case (us)':<30} {'p50':>7} {'p99':>7} {'p99.9':>7} {'max':>8}"]
    for name, h in hs.items():
        ps = [h.get_value_at_percentile(p) / 1000 for p in (50, 99, 99.9)]
        lines.append(
            f"  {name:<30} "
            + " ".join(f"{v:>7.1f}" for v in ps)
            + f" {h.get_max_value() / 1000:>8.1f}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- gate
# One worker frame's sink round: 50 snapshots + 50 deltas + 50 raw candles (payload sizes as
# the pipeline's), RESP-packed by the sink vs the `%`-formatted copy per command it used before.
_SNAPS = [(b"snapshot:S%03d" % i, b"s" * 420) for i in range(50)]
_PUBS = [(b"analytics:delta:S%03d" % i, b"d" * 400) for i in range(50)] + [
    (b"market:CandleEvent:S%03d" % i, b"c" * 250) for i in range(50)
]


def _pack_before() -> object:
    parts = []
    for key, payload in _SNAPS:
        parts.append(
            b"*3\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"
            % (len(key), key, len(payload), payload)
        )
    for channel, payload in _PUBS:
        parts.append(
            b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"
            % (len(channel), channel, len(payload), payload)
        )
    return b"".join(parts)


def _packer_case() -> RatioCase:
    from ttfast.sinks.redis import _Packer

    packer = _Packer()
    assert b"".join(packer.pack(_SNAPS, _PUBS)) == _pack_before()
    return RatioCase(
        "sinks.redis.pack.vs_format",
        lambda: packer.pack(_SNAPS, _PUBS),
        _pack_before,
        # measured 1.5-1.7x (load ~1.5-2); the floor catches a return to per-command copies
        floor=1.2,
        units=150,
        note="one frame's 150 SET/PUBLISH commands to RESP buffers vs %-formatted copies",
    )


GATE_RATIOS = [_packer_case()]

_GRIND_QUOTE1 = """
from itertools import dropwhile
from bench.bench_latency import _quote_handler
run, lat = _quote_handler(1)
for _ in range(200):  # warm: first calls import and cache
    run()
"""
_GRIND_PACK = """
from itertools import dropwhile
from bench.bench_latency import _SNAPS, _PUBS
from ttfast.sinks.redis import _Packer
packer = _Packer()
packer.pack(_SNAPS, _PUBS)  # the heads and lengths cached, as from the second frame on
"""

GATE_CALLGRIND = [
    # on_ws_frame of a 1-Quote frame -> the on_batch callback: the in-process latency path
    # (instructions per frame). The op is called through itertools.dropwhile, whose C iterator
    # `dropwhile_next` nothing else calls (map(), the obvious choice, also runs at imports).
    CallgrindCase(
        "dxlink.on_ws_frame.quote1",
        setup=_GRIND_QUOTE1,
        stmt="list(dropwhile(lambda f: f(), [run]))",
        toggle="dropwhile_next",
    ),
    # one worker frame's sink round packed (instructions per command)
    CallgrindCase(
        "sinks.redis.pack",
        setup=_GRIND_PACK,
        stmt="list(dropwhile(lambda _: packer.pack(_SNAPS, _PUBS), [0]))",
        toggle="dropwhile_next",
        per=150,
    ),
]


# --------------------------------------------------------------------------- pytest / main


@contextlib.contextmanager
def _redis() -> Iterator[Any]:
    from tests.servers import redis_server

    with redis_server() as srv:
        yield srv


#: breakdown tables of this session's worker runs, printed by bench/conftest.py at the end
REPORTS: list[str] = []


def _benchmarks_enabled(config: pytest.Config) -> bool:
    return bool(
        config.getoption("benchmark_enable", False)
        or not config.getoption("benchmark_disable", False)
    )


def test_worker_latency_breakdown(request: pytest.FixtureRequest) -> None:
    """Worker frame receipt -> PUBLISH acknowledged, per stage. In the normal suite a small
    run proves every stage is recorded; with ``--benchmark-enable`` the 50k updates/s run,
    next to the sink's previous connection without gc.freeze (``oldconn+nofreeze``), is
    printed at the end of the session."""
    pytest.importorskip("hdrh")
    full = _benchmarks_enabled(request.config)
    rate, secs, variants = (
        (50_000, 2.0, ["base", "oldconn+nofreeze"])
        if full
        else (
            10_000,
            0.5,
            ["base"],
        )
    )
    with _redis() as srv:
        res = worker_latency(srv.url, rate, secs, variants)
    for v, hs in res.items():
        assert hs["total"].get_total_count() > 0
        assert all(hs[s].get_total_count() == hs["total"].get_total_count() for s in STAGES)
        if full:
            REPORTS.append(
                format_breakdown(f"worker, {rate:,} updates/s, {N_SYMBOLS} symbols, {v}:", hs)
            )


def _sdk_quote_handler(rows: int) -> Callable[[], None]:
    """The SDK's handler for the same frame: json.loads + Quote.from_stream."""
    from tastytrade.dxfeed import Quote

    from bench.bench_dxlink import SDK_QUOTE_FIELDS, quote_frames

    msg = json.loads(quote_frames(SDK_QUOTE_FIELDS, 1)[0])
    msg["data"][1] = msg["data"][1][: rows * len(SDK_QUOTE_FIELDS)]
    payload = json.dumps(msg, separators=(",", ":")).encode()
    got: list[Any] = []

    def run() -> None:
        m = json.loads(payload)
        got[:] = Quote.from_stream(m["data"][1])

    return run


@pytest.mark.parametrize("rows", [1, 10])
@pytest.mark.parametrize("who", ["ttfast", "sdk"])
def test_bench_frame_to_callback(benchmark: Any, who: str, rows: int) -> None:
    """A Quote frame handed to the client -> the user's code has the events (ttfast: on_ws_frame
    -> on_batch; the SDK: its frame handler's json.loads + Quote.from_stream)."""
    benchmark.group = f"latency.quote{rows}.frame_to_callback"
    if who == "sdk":
        pytest.importorskip("tastytrade")
        benchmark(_sdk_quote_handler(rows))
    else:
        run, _lat = _quote_handler(rows)
        benchmark(run)


@pytest.mark.benchmark(group="latency.candle.frame_to_changes")
@pytest.mark.parametrize("rows", [1, 10])
def test_bench_candle_frame_to_changes(benchmark: Any, rows: int) -> None:
    """A live Candle frame -> on_candle_changes (store applied). Frames are consumed (each is
    a new update), so a fixed number of rounds."""
    run, _lat = _candle_handler(rows)
    benchmark.pedantic(run, rounds=3000, iterations=1, warmup_rounds=100)


def main() -> None:  # pragma: no cover - docs numbers
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="50000,200000")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--variants", default="base", help="comma list; '+' joins knobs")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-inprocess", action="store_true")
    a = ap.parse_args()
    print(f"load: {os.getloadavg()}  cpus: {os.cpu_count()}")
    with _redis() as srv:
        for rate in (int(x) for x in a.rates.split(",")):
            res = worker_latency(srv.url, rate, a.seconds, a.variants.split(","), a.repeats)
            for v, hs in res.items():
                print(
                    format_breakdown(
                        f"worker, {rate:,} updates/s, {N_SYMBOLS} symbols, variant {v}:", hs
                    )
                )
    if not a.no_inprocess:
        print("in-process, on_ws_frame -> callback:")
        print(format_inprocess(inprocess_latency()))
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
