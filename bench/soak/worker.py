"""Part (c): the worker through a Redis restart and an influxd outage, counters vs arrivals.

The Worker class runs in this process (sim source, real redis-server and influxd on loopback,
started in temp dirs with the tests/servers.py helpers). The run: warm-up; Redis SIGKILLed,
down for ``redis_outage`` s, started again on the same port (empty: no persistence); influxd
SIGKILLed, down for ``outage`` s, started again on the same ports with the same data dir;
repeated while ``minutes`` allow; then the worker stops and its sinks flush.

What "arrived" means:
* Redis: a subscriber of our own (a raw RESP socket in a thread) on ``analytics:delta:*`` and
  ``market:CandleEvent:*`` counts every message, as a multiset of (channel, payload); the
  snapshot keys are read with GET at the end. The subscriber must be subscribed whenever the
  sink can publish: it is connected before the worker starts, and after each restart it
  resubscribes while the event loop is blocked (the sink cannot reconnect before it). The kill
  itself also happens with the loop blocked after 50 ms of quiet, so every command the sink
  has written is processed (and fanned out to the subscriber) before the SIGKILL.
* InfluxDB: every point (measurement, tags, time) in the database (``SELECT *`` over /query),
  against the merge, in write order, of every line the worker queued (a point written again
  with the same time replaces its fields: forming-bar updates).

What "queued" means comes from wrapping the sinks' producer methods on the worker's sink
instances (publish / publish_many / set_snapshot, write_lines); the sink counters themselves
(stats.enqueued, published, dropped, ...) are read by name and shown as n/a when missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.soak.common import NA, Row, all_counters, counter, fmt, log

PATTERNS = (b"analytics:delta:*", b"market:CandleEvent:*")
SENTINEL = b"analytics:delta:__soak_end__"
# delivery latency allowed while the servers are up: the sinks' max backoff (Redis 2 s,
# Telegraf 5 s) plus the Telegraf flush interval (1 s) plus a second
REDIS_AGE = 3.0
TELEGRAF_AGE = 7.0


@dataclass
class WorkerPlan:
    seconds: float  # total worker run time budget (>= one cycle)
    warmup: float
    redis_outage: float
    gap: float
    outage: float  # influxd
    settle: float  # after the last outage, before stopping
    symbols: list[str] = field(default_factory=lambda: ["SPY", "QQQ", "AAPL", "MSFT", "NVDA"])
    sim_speed: float = 60.0
    history_days: float = 2.0
    redis_backlog: int | None = None  # None: the worker's default
    telegraf_buffer: int | None = None  # bytes; None: the sink's default
    label: str = "worker"


# ---------------------------------------------------------------------------------------------
# servers


def _servers() -> Any:
    import tests.servers as ts

    return ts


class InfluxSamePort:
    """influxd that can be SIGKILLed and started again on the same ports and data dir."""

    def __init__(self, base: Any, binary: str, d: Path) -> None:
        self.ts = _servers()
        self.srv = base(binary, d)
        self.starts = 0

    @property
    def url(self) -> str:
        return str(self.srv.url)

    def start(self, timeout: float = 60.0) -> None:
        s, ts = self.srv, self.ts
        if not s.http_port:
            s.http_port, self.rpc, s.udp_port = ts.free_port(), ts.free_port(), ts.free_udp_port()
        conf = s.dir / "influxdb.conf"
        conf.write_text(
            ts._INFLUX_CONF.format(dir=s.dir, rpc=self.rpc, http=s.http_port, udp=s.udp_port)
        )
        log_path = s.dir / f"influxd-{self.starts}.log"
        self.starts += 1
        with open(log_path, "wb") as out:
            s.proc = subprocess.Popen(
                [s.binary, "run", "-config", str(conf)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if s.proc.poll() is not None:
                raise RuntimeError(
                    f"influxd exited with {s.proc.returncode}:\n" + ts._tail(log_path)
                )
            try:
                with urllib.request.urlopen(s.url + "/ping", timeout=0.5) as r:
                    if r.status == 204:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"influxd not ready on {s.http_port}:\n" + ts._tail(log_path))

    def kill(self) -> None:
        p = self.srv.proc
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(10)

    def stop(self) -> None:
        self.srv.stop()


# ---------------------------------------------------------------------------------------------
# the Redis subscriber (raw RESP, its own thread)


def _parse(buf: bytes | bytearray, i: int) -> tuple[Any, int] | None:
    """One RESP2 value from buf[i:]: (value, next index) or None if incomplete."""
    j = buf.find(b"\r\n", i)
    if j < 0:
        return None
    t, line = buf[i : i + 1], bytes(buf[i + 1 : j])
    if t in (b"+", b"-"):
        return (line if t == b"+" else Exception(line.decode(errors="replace"))), j + 2
    if t == b":":
        return int(line), j + 2
    if t == b"$":
        n = int(line)
        if n < 0:
            return None, j + 2
        if len(buf) < j + 2 + n + 2:
            return None
        return bytes(buf[j + 2 : j + 2 + n]), j + 2 + n + 2
    if t == b"*":
        n = int(line)
        out = []
        k = j + 2
        for _ in range(n):
            r = _parse(buf, k)
            if r is None:
                return None
            v, k = r
            out.append(v)
        return out, k
    raise ValueError(f"bad RESP type {t!r}")


def _pack(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


class Subscriber:
    """Counts every message on PATTERNS; resubscribed explicitly after each Redis restart."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lock = threading.Lock()
        self.arrived: Counter[int] = Counter()
        self.by_kind: Counter[str] = Counter()
        self.finals: set[tuple[str, int]] = set()
        self.sentinels = 0
        self.connects = 0
        self.disconnects = 0
        self.parse_errors = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._buf = bytearray()

    def connect(self, timeout: float = 5.0) -> None:
        """Connect and PSUBSCRIBE (blocking until both acks); start the reader thread."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.002)
        s.sendall(_pack(b"PSUBSCRIBE", *PATTERNS))
        buf = bytearray()
        acks = 0
        i = 0
        while acks < len(PATTERNS):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the subscriber connection")
            buf += chunk
            while True:
                r = _parse(buf, i)
                if r is None:
                    break
                v, i = r
                if isinstance(v, list) and v and v[0] == b"psubscribe":
                    acks += 1
                else:
                    self._on(v)
        s.settimeout(None)
        self._buf = buf[i:]
        self._sock = s
        self.connects += 1
        self._thread = threading.Thread(target=self._reader, args=(s,), daemon=True)
        self._thread.start()

    def _reader(self, s: socket.socket) -> None:
        buf = self._buf
        i = 0
        while True:
            try:
                chunk = s.recv(1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                with self.lock:
                    self.disconnects += 1
                return
            buf += chunk
            while True:
                try:
                    r = _parse(buf, i)
                except ValueError:
                    self.parse_errors += 1
                    return
                if r is None:
                    break
                v, i = r
                self._on(v)
            if i > 1 << 20:
                del buf[:i]
                i = 0

    def _on(self, v: Any) -> None:
        if not (isinstance(v, list) and len(v) == 4 and v[0] == b"pmessage"):
            return
        ch, payload = v[2], v[3]
        with self.lock:
            if ch == SENTINEL:
                self.sentinels += 1
                return
            self.arrived[hash((ch, payload))] += 1
            _count_kind(ch, payload, self.by_kind, self.finals)

    def wait_disconnected(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self.wait_disconnected(2.0)


def _count_kind(
    ch: bytes, payload: bytes, by_kind: Counter[str], finals: set[tuple[str, int]]
) -> None:
    """Count a PUBLISH as "delta" or "raw"; a closed bar's delta adds its (symbol, time)."""
    kind = "delta" if ch.startswith(b"analytics:delta:") else "raw"
    by_kind[kind] += 1
    if kind == "delta" and b'"final":true' in payload:
        fk = _final_key(payload)
        if fk is not None:
            finals.add(fk)


def _final_key(payload: bytes) -> tuple[str, int] | None:
    try:
        d = json.loads(payload)
        return str(d["symbol"]), int(d["candle"]["time"])
    except (ValueError, KeyError, TypeError):
        return None


def _redis_cmd(port: int, *args: bytes) -> Any:
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as s:
        s.sendall(_pack(*args))
        buf = bytearray()
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            buf += chunk
            r = _parse(buf, 0)
            if r is not None:
                return r[0]


# ---------------------------------------------------------------------------------------------
# line protocol (what the worker queued) and InfluxDB (what arrived)


def _split_esc(s: bytes, sep: int) -> list[bytes]:
    out, cur, esc = [], bytearray(), False
    for c in s:
        if esc:
            cur.append(c)
            esc = False
        elif c == 0x5C:  # backslash
            esc = True
        elif c == sep:
            out.append(bytes(cur))
            cur = bytearray()
        else:
            cur.append(c)
    out.append(bytes(cur))
    return out


def parse_line(line: bytes) -> tuple[tuple[Any, ...], dict[str, float]] | None:
    """(point key, fields) of one line: key = (measurement, sorted tags, time ns)."""
    try:
        head, fields, ts = line.rsplit(b" ", 2)
        parts = _split_esc(head, 0x2C)
        tags = tuple(sorted(tuple(x.decode() for x in _split_esc(p, 0x3D)) for p in parts[1:]))
        fd: dict[str, float] = {}
        for kv in fields.split(b","):
            k, v = kv.split(b"=", 1)
            fd[k.decode()] = float(v[:-1]) if v.endswith(b"i") else float(v)
        return (parts[0].decode(), tags, int(ts)), fd
    except ValueError:
        return None


def influx_points(influx: Any, db: str) -> dict[tuple[Any, ...], dict[str, float]]:
    out: dict[tuple[Any, ...], dict[str, float]] = {}
    for meas, tag_keys in (("candle", ("period", "symbol")), ("indicators", ("period", "symbol"))):
        for row in influx.srv.query(db, f'SELECT * FROM "{meas}"'):
            tags = tuple(sorted((k, str(row[k])) for k in tag_keys if row.get(k) is not None))
            key = (meas, tags, int(row["time"]))
            out[key] = {
                k: float(v)
                for k, v in row.items()
                if k not in ("time", "_measurement", *tag_keys) and v is not None
            }
    return out


def influx_count(influx: Any, db: str, meas: str, fld: str) -> int | None:
    try:
        rows = influx.srv.query(db, f'SELECT count("{fld}") FROM "{meas}"')
        return int(rows[0]["count"]) if rows else 0
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class Tap:
    """What the worker handed to its sinks (recorded by wrapping the sink instances)."""

    pubs: Counter[int] = field(default_factory=Counter)
    pubs_n: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    finals: set[tuple[str, int]] = field(default_factory=set)
    snaps: dict[bytes, bytes] = field(default_factory=dict)
    snap_calls: int = 0
    lines_n: int = 0
    lines_unparsed: int = 0
    points: dict[tuple[Any, ...], dict[str, float]] = field(default_factory=dict)
    wrapped: list[str] = field(default_factory=list)
    # (time.monotonic(), cumulative count) after each call: how much was queued by when
    pubs_t: list[tuple[float, int]] = field(default_factory=list)
    lines_t: list[tuple[float, int]] = field(default_factory=list)

    @staticmethod
    def queued_before(hist: list[tuple[float, int]], t: float) -> int:
        n = 0
        for when, cum in hist:
            if when > t:
                break
            n = cum
        return n

    def pub(self, ch: bytes, payload: bytes) -> None:
        self.pubs[hash((ch, payload))] += 1
        self.pubs_n += 1
        _count_kind(ch, payload, self.by_kind, self.finals)

    def lines(self, body: bytes, n: int) -> None:
        self.lines_n += n
        for line in body.split(b"\n"):
            if not line:
                continue
            p = parse_line(line)
            if p is None:
                self.lines_unparsed += 1
                continue
            self.points.setdefault(p[0], {}).update(p[1])


def _wrap(worker: Any, tap: Tap) -> None:
    r = getattr(worker, "redis", None)
    if r is not None:
        for name in ("publish_many", "publish", "set_snapshot", "set_snapshots"):
            orig = getattr(r, name, None)
            if orig is None:
                continue
            if name == "publish_many":

                def pm(items: Any, _o: Any = orig) -> Any:
                    items = list(items)
                    for ch, p in items:
                        tap.pub(ch, p)
                    tap.pubs_t.append((time.monotonic(), tap.pubs_n))
                    return _o(items)

                r.publish_many = pm
            elif name == "publish":

                def p1(ch: bytes, payload: bytes, *a: Any, _o: Any = orig, **k: Any) -> Any:
                    tap.pub(ch, payload)
                    tap.pubs_t.append((time.monotonic(), tap.pubs_n))
                    return _o(ch, payload, *a, **k)

                r.publish = p1
            elif name == "set_snapshots":

                def sss(items: Any, _o: Any = orig) -> Any:
                    items = list(items)
                    for key, payload in items:
                        tap.snaps[key] = payload
                        tap.snap_calls += 1
                    return _o(items)

                r.set_snapshots = sss
            else:

                def ss(key: bytes, payload: bytes, *a: Any, _o: Any = orig, **k: Any) -> Any:
                    tap.snaps[key] = payload
                    tap.snap_calls += 1
                    return _o(key, payload, *a, **k)

                r.set_snapshot = ss
            tap.wrapped.append(f"redis.{name}")
    t = getattr(worker, "telegraf", None)
    if t is not None and getattr(t, "write_lines", None) is not None:
        orig_wl = t.write_lines

        def wl(body: bytes, lines: int, *a: Any, **k: Any) -> Any:
            tap.lines(body, lines)
            tap.lines_t.append((time.monotonic(), tap.lines_n))
            return orig_wl(body, lines, *a, **k)

        t.write_lines = wl
        tap.wrapped.append("telegraf.write_lines")


async def _drive(
    plan: WorkerPlan, worker: Any, redis: Any, sub: Subscriber, influx: Any, tap: Tap
) -> dict[str, Any]:
    ev: dict[str, Any] = {"redis_outages": 0, "influx_outages": 0, "timeline": []}
    t0 = time.monotonic()

    def mark(what: str) -> None:
        ev["timeline"].append(f"{time.monotonic() - t0:6.1f}s {what}")
        log(f"{plan.label}: {what}")

    task = asyncio.create_task(worker.run(), name="soak-worker")
    deadline = t0 + plan.seconds
    await asyncio.sleep(plan.warmup)
    cycle = 0
    while True:
        cycle += 1
        # -- Redis: quiet the loop, SIGKILL, outage, restart + resubscribe with the loop blocked
        time.sleep(0.05)  # blocking on purpose: nothing of the worker may run here
        redis.kill()
        sub.wait_disconnected(2.0)
        mark(f"redis-server SIGKILLed (cycle {cycle})")
        ev["redis_outages"] += 1
        await asyncio.sleep(plan.redis_outage)
        redis.start()  # blocking on purpose (see module docstring)
        sub.connect()
        mark(f"redis-server restarted on port {redis.port}, subscriber resubscribed")
        await asyncio.sleep(plan.gap)
        # -- influxd: SIGKILL, outage, start on the same ports and data dir (loop keeps running)
        influx.kill()
        mark("influxd SIGKILLed")
        ev["influx_outages"] += 1
        await asyncio.sleep(plan.outage)
        await asyncio.to_thread(influx.start)
        mark(f"influxd restarted on port {influx.srv.http_port} (same data dir)")
        cycle_len = plan.redis_outage + 2 * plan.gap + plan.outage + 1
        if time.monotonic() + cycle_len + plan.settle > deadline:
            break
        await asyncio.sleep(plan.gap)
    await asyncio.sleep(max(plan.settle, deadline - time.monotonic()))
    # delivery while both servers are up: what was queued long enough ago must be out by now
    now = time.monotonic()
    ev["fresh"] = {
        "redis_age": REDIS_AGE,
        "telegraf_age": TELEGRAF_AGE,
        "redis_published": counter(getattr(worker.redis, "stats", None), "published", "sent"),
        "redis_queued_old": Tap.queued_before(tap.pubs_t, now - REDIS_AGE),
        "redis_queued": tap.pubs_n,
        "telegraf_sent": counter(getattr(worker.telegraf, "stats", None), "lines_sent", "sent"),
        "telegraf_dropped": counter(getattr(worker.telegraf, "stats", None), "lines_dropped"),
        "redis_dropped": counter(getattr(worker.redis, "stats", None), "dropped"),
        "telegraf_queued_old": Tap.queued_before(tap.lines_t, now - TELEGRAF_AGE),
        "telegraf_queued": tap.lines_n,
    }
    mark("stopping the worker (sinks flush on close)")
    worker.stop()
    try:
        ev["rc"] = await asyncio.wait_for(task, 60)
    except Exception as e:
        ev["rc"] = f"{type(e).__name__}: {e}"
    mark(f"worker returned {ev['rc']}")
    ev["elapsed_s"] = time.monotonic() - t0
    return ev


def run(plan: WorkerPlan) -> dict[str, Any]:
    logging.getLogger("ttfast").setLevel(logging.ERROR)
    ts = _servers()
    res: dict[str, Any] = {"plan": plan, "error": None}
    try:
        redis_bin = ts.require_binary("redis-server")
        influx_bin = ts.require_binary("influxd")
    except BaseException as e:  # pytest.skip's exception is a BaseException
        res["error"] = f"servers not available: {e}"
        return res
    try:
        from ttfast.worker import Worker, WorkerConfig
    except Exception as e:  # the worker is being changed by others: report, do not crash
        res["error"] = f"cannot import ttfast.worker: {type(e).__name__}: {e}"
        return res

    with (
        tempfile.TemporaryDirectory(prefix="ttfast-soak-redis-") as rdir,
        tempfile.TemporaryDirectory(prefix="ttfast-soak-influx-") as idir,
    ):
        redis = ts.RedisServer(redis_bin, Path(rdir))
        influx = InfluxSamePort(ts.InfluxServer, influx_bin, Path(idir))
        sub: Subscriber | None = None
        try:
            redis.start()
            influx.start()
            db = "ttfast"
            influx.srv.create_database(db)
            sub = Subscriber(redis.port)
            sub.connect()
            kw: dict[str, Any] = dict(
                symbols=list(plan.symbols),
                period="5m",
                source="sim",
                redis_url=redis.url,
                telegraf_url=influx.url,
                telegraf_db=db,
                history_days=plan.history_days,
                sim_speed=plan.sim_speed,
                quiet=True,
            )
            if plan.redis_backlog is not None:
                kw["redis_backlog"] = plan.redis_backlog
            cfg = WorkerConfig(**kw)
            worker = Worker(cfg)
            if plan.telegraf_buffer is not None and worker.telegraf is not None:
                for attr, v in (
                    ("max_buffer_bytes", plan.telegraf_buffer),
                    ("batch_bytes", max(1024, plan.telegraf_buffer // 4)),
                ):
                    if hasattr(worker.telegraf, attr):
                        setattr(worker.telegraf, attr, v)
                    else:
                        res.setdefault("notes", []).append(f"telegraf sink has no {attr}")
            tap = Tap()
            _wrap(worker, tap)
            res["tap"] = tap
            res["events"] = asyncio.run(_drive(plan, worker, redis, sub, influx, tap))
            # everything the sink published was executed before this sentinel: once the
            # subscriber has it, it has everything
            _redis_cmd(redis.port, b"PUBLISH", SENTINEL, b"end")
            t_end = time.monotonic() + 10
            while sub.sentinels < 1 and time.monotonic() < t_end:
                time.sleep(0.01)
            res["sentinel_seen"] = sub.sentinels >= 1
            res["sub"] = sub
            snaps = {}
            for key in tap.snaps:
                with contextlib.suppress(Exception):
                    snaps[key] = _redis_cmd(redis.port, b"GET", key)
            res["redis_snaps"] = snaps
            res["worker"] = _worker_counters(worker)
            res["influx_points"] = influx_points(influx, db)
            res["influx_count"] = {
                "candle": influx_count(influx, db, "candle", "close"),
                "indicators": influx_count(influx, db, "indicators", "hma"),
            }
        except Exception as e:
            import traceback

            res["error"] = f"{type(e).__name__}: {e}"
            log(traceback.format_exc())
        finally:
            if sub is not None:
                sub.close()
            redis.stop()
            influx.stop()
    return res


def _worker_counters(worker: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["worker"] = all_counters(getattr(worker, "stats", None))
    out["worker"]["reconnects"] = getattr(worker, "reconnects", NA)
    r = getattr(worker, "redis", None)
    t = getattr(worker, "telegraf", None)
    out["redis"] = all_counters(getattr(r, "stats", None))
    out["redis"]["backlog"] = counter(r, "backlog")
    out["telegraf"] = all_counters(getattr(t, "stats", None))
    out["telegraf"]["backlog_lines"] = counter(t, "backlog_lines", "backlog")
    try:
        out["status_line"] = worker.status_line()
    except Exception as e:
        out["status_line"] = f"n/a ({type(e).__name__}: {e})"
    return out


# ---------------------------------------------------------------------------------------------
# rows


def _g(d: dict[str, Any], *names: str) -> int | None:
    return counter(d, *names)


def rows(res: dict[str, Any]) -> list[Row]:
    plan: WorkerPlan = res["plan"]
    lab = plan.label
    if res.get("error") and "tap" not in res:
        return [Row(lab, "worker soak", "-", f"could not run: {res['error']}", False)]
    out: list[Row] = []
    ev = res.get("events", {})
    wc = res.get("worker", {})
    w, rs, tg = wc.get("worker", {}), wc.get("redis", {}), wc.get("telegraf", {})
    tap: Tap = res["tap"]
    sub: Subscriber | None = res.get("sub")
    caps = []
    if plan.redis_backlog is not None:
        caps.append(f"redis backlog {plan.redis_backlog}")
    if plan.telegraf_buffer is not None:
        caps.append(f"telegraf buffer {plan.telegraf_buffer // 1024} KiB")
    out.append(
        Row(
            lab,
            "worker run (sim source" + (", " + ", ".join(caps) if caps else "") + ")",
            f"{ev.get('elapsed_s', 0):.0f} s; redis down {ev.get('redis_outages', 0)}x"
            f"{plan.redis_outage:g}s; influxd down {ev.get('influx_outages', 0)}x"
            f"{plan.outage:g}s",
            f"rc {ev.get('rc', NA)}; events {fmt(_g(w, 'events'))}; rows {fmt(_g(w, 'rows'))}; "
            f"closed bars {fmt(_g(w, 'finals'))}; source reconnects "
            f"{fmt(_g(w, 'reconnects'))}" + (f"; error {res['error']}" if res.get("error") else ""),
            ev.get("rc") == 0 and not res.get("error") and (_g(w, "finals") or 0) > 0,
        )
    )
    # -- Redis publishes: multiset of what was queued vs what the subscriber got
    if sub is None or not res.get("sentinel_seen"):
        out.append(Row(lab, "redis publishes", "-", "subscriber did not finish", False))
    else:
        lost = sum(max(0, n - sub.arrived.get(k, 0)) for k, n in tap.pubs.items())
        dup = sum(max(0, n - tap.pubs.get(k, 0)) for k, n in sub.arrived.items())
        arrived = sum(sub.arrived.values())
        enq, pub = _g(rs, "enqueued"), _g(rs, "published", "sent")
        dropped, rejected = _g(rs, "dropped"), _g(rs, "rejected")
        backlog = _g(rs, "backlog")
        counted = None if dropped is None else dropped + (rejected or 0)
        ok = counted is not None and lost <= counted and (lost == 0 or counted > 0)
        out.append(
            Row(
                lab,
                "redis publishes (delta + raw)",
                f"{tap.pubs_n:,} queued",
                f"arrived {arrived:,}; lost {lost:,}; duplicates {dup:,}; counted dropped "
                f"{fmt(dropped)}, rejected {fmt(rejected)}"
                + (
                    f"; {lost - counted:,} LOST UNCOUNTED"
                    if counted is not None and lost > counted
                    else ""
                ),
                ok,
            )
        )
        # the sink's own counters against the facts
        checks = []
        ok2: bool | None = True
        if enq is None:
            checks.append("enqueued n/a")
            ok2 = None
        else:
            checks.append(f"enqueued {enq:,} vs queued {tap.pubs_n:,}")
            ok2 = ok2 and enq == tap.pubs_n
        if pub is not None:
            checks.append(f"published {pub:,} <= arrived {arrived:,}")
            ok2 = ok2 and pub <= arrived
        else:
            checks.append("published n/a")
        if None not in (enq, pub, dropped, backlog):
            assert enq is not None and pub is not None and dropped is not None
            assert backlog is not None
            bal = enq - pub - dropped - backlog
            checks.append(f"enqueued - published - dropped - backlog = {bal:,}")
            ok2 = ok2 and bal == 0
        else:
            checks.append("balance n/a")
        if dropped is not None:
            checks.append(f"dropped {dropped:,} vs lost {lost:,}")
            if dropped != lost:
                checks.append(
                    "dropped over-counts (duplicates hide drops)"
                    if dropped > lost
                    else "dropped UNDER-counts"
                )
        out.append(
            Row(
                lab,
                "redis sink counters vs arrivals",
                "counters",
                "; ".join(checks)
                + f"; failures {fmt(_g(rs, 'failures'))}; reconnects {fmt(_g(rs, 'reconnects'))}",
                ok2,
            )
        )
        lost_f = tap.finals - sub.finals
        out.append(
            Row(
                lab,
                "closed bars on analytics:delta (final=true)",
                f"{len(tap.finals):,} bars",
                f"arrived {len(tap.finals & sub.finals):,}; lost {len(lost_f)}"
                + (f" e.g. {sorted(lost_f)[:2]}" if lost_f else ""),
                not lost_f or ((_g(rs, "dropped") or 0) >= len(lost_f)),
            )
        )
    # -- delivery while up
    fr = ev.get("fresh")
    if fr:
        parts, okf = [], True
        for k, cnt_name, age in (
            ("redis", "redis_published", fr["redis_age"]),
            ("telegraf", "telegraf_sent", fr["telegraf_age"]),
        ):
            done, old = fr.get(cnt_name), fr[f"{k}_queued_old"]
            drop = fr.get(f"{k}_dropped") or 0
            if done is None:
                parts.append(f"{k}: sent n/a")
                continue
            late = old - done - drop
            parts.append(
                f"{k}: {old:,} queued > {age:g} s before the stop, {done:,} sent, {drop:,} "
                f"dropped" + (f", {late:,} STILL UNSENT" if late > 0 else "")
            )
            okf = okf and late <= 0
        out.append(
            Row(
                lab,
                "sinks deliver while servers are up",
                f"{plan.settle:g} s after last restart",
                "; ".join(parts),
                okf,
            )
        )
    # -- snapshot keys
    snaps = res.get("redis_snaps", {})
    same = sum(1 for k, v in tap.snaps.items() if snaps.get(k) == v)
    missing = sum(1 for k in tap.snaps if snaps.get(k) is None)
    out.append(
        Row(
            lab,
            "redis snapshot keys = last SET",
            f"{len(tap.snaps)} keys ({tap.snap_calls:,} SETs)",
            f"equal {same}; stale {len(tap.snaps) - same - missing}; missing {missing}; "
            f"sink acked {fmt(_g(rs, 'snapshots'))}",
            len(tap.snaps) > 0 and same == len(tap.snaps),
        )
    )
    # -- InfluxDB points
    pts = res.get("influx_points")
    if pts is None:
        out.append(Row(lab, "influxdb points", "-", "query failed", False))
    else:
        missing_p = [k for k in tap.points if k not in pts]
        stale = [
            k
            for k, f in tap.points.items()
            if k in pts and any(pts[k].get(n) != v for n, v in f.items())
        ]
        extra = [k for k in pts if k not in tap.points]
        sent, ldrop = _g(tg, "lines_sent", "sent"), _g(tg, "lines_dropped", "dropped")
        lrej, lback = _g(tg, "lines_rejected", "rejected"), _g(tg, "backlog_lines", "backlog")
        counted = None if ldrop is None else ldrop + (lrej or 0)
        bad = len(missing_p) + len(stale)
        cnt = res.get("influx_count", {})
        out.append(
            Row(
                lab,
                "influxdb points (line protocol over HTTP)",
                f"{tap.lines_n:,} lines -> {len(tap.points):,} points",
                f"in db {len(pts):,} (count(): candle {fmt(cnt.get('candle'))}, indicators "
                f"{fmt(cnt.get('indicators'))}); missing {len(missing_p):,}; stale "
                f"{len(stale):,}; unexpected {len(extra)}; counted dropped {fmt(ldrop)}, "
                f"rejected {fmt(lrej)}"
                + (
                    f"; {bad - counted:,} LOST UNCOUNTED"
                    if counted is not None and bad > counted
                    else ""
                ),
                counted is not None and bad <= counted and (bad == 0 or counted > 0) and not extra,
            )
        )
        checks = []
        ok3: bool | None = True
        if None in (sent, ldrop, lrej, lback):
            checks.append(
                f"sent {fmt(sent)}, dropped {fmt(ldrop)}, rejected {fmt(lrej)}, backlog "
                f"{fmt(lback)}: balance n/a"
            )
            ok3 = None
        else:
            assert sent is not None and ldrop is not None and lrej is not None
            assert lback is not None
            bal = tap.lines_n - sent - ldrop - lrej - lback
            checks.append(
                f"queued {tap.lines_n:,} - sent {sent:,} - dropped {ldrop:,} - rejected "
                f"{lrej:,} - backlog {lback:,} = {bal:,}"
            )
            ok3 = bal == 0
        checks.append(f"retries {fmt(_g(tg, 'retries'))}")
        if tap.lines_unparsed:
            checks.append(f"{tap.lines_unparsed} queued lines not parsed by the soak")
        out.append(Row(lab, "telegraf sink counters", "counters", "; ".join(checks), ok3))
    return out


def details(res: dict[str, Any]) -> str:
    """Everything counted, for the log above the table."""
    lines = [f"== {res['plan'].label}: timeline"]
    lines += ["  " + x for x in res.get("events", {}).get("timeline", [])]
    wc = res.get("worker", {})
    for k in ("worker", "redis", "telegraf"):
        lines.append(f"  {k} counters: {wc.get(k, {})}")
    lines.append(f"  status line: {wc.get('status_line', NA)}")
    tap: Tap | None = res.get("tap")
    if tap is not None:
        lines.append(f"  wrapped: {tap.wrapped}; queued by kind {dict(tap.by_kind)}")
    sub: Subscriber | None = res.get("sub")
    if sub is not None:
        lines.append(
            f"  subscriber: arrived by kind {dict(sub.by_kind)}; connects {sub.connects}; "
            f"disconnects {sub.disconnects}; parse errors {sub.parse_errors}"
        )
    for n in res.get("notes", []):
        lines.append(f"  note: {n}")
    return "\n".join(lines)
