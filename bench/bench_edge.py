"""Edge fan-out: ttfast.edge (``ttfast-edge``) vs the seed's design (bench/edge_ref.py: FastAPI +
uvicorn, one ``redis.asyncio`` pub/sub per client), same deltas, same clients, same run.

Each server runs as its own process on its own redis-server (so one's traffic never loads the
other); the WebSocket clients run in a third process. Deltas are realistic worker payloads of
one fixed size whose ``candle.time`` field carries the publisher's ``time.time_ns()``; they are
PUBLISHed (pipelined) by this process to ``analytics:delta:S<k>``. Client i subscribes to
``/ws/S<i mod symbols>``, so each delta goes to clients/symbols clients.

The clients are raw asyncio protocols (the same code against both servers): after the
handshake and the first frame (the snapshot) they only count bytes (every delta frame has the
same size), check the frame headers at their strided positions, and read the timestamp of
sampled frames for the delay from PUBLISH to receipt. That keeps the client process cheap
enough not to be what is measured.

* Gate ratio ``edge.fanout.vs_fastapi`` (small, for the 2-core test command): 100 clients on
  10 symbols, 200 deltas per round (2,000 messages delivered per round); ratio = time of a
  round through the reference / through ttfast. Needs fastapi + uvicorn (``pip install
  .[bench]``); without them the case is absent.
* ``python -m bench.bench_edge`` (docs/edge.md numbers): delivered messages/s with 1,000
  clients, and p50/p99 delay at a paced 20k deltas/s with 100 clients, both servers side by
  side.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import importlib.util
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.gatelib import RatioCase

ROOT = Path(__file__).resolve().parent.parent
GATE_CLIENTS = 100
GATE_SYMBOLS = 10
GATE_DELTAS = 200

# -- payloads ------------------------------------------------------------------------------------

_TEMPLATE = (
    '{"type":"delta","symbol":"S%03d","period":"5m","candle":{"time":%019d,"open":512.25,'
    '"high":512.75,"low":511.5,"close":512.5,"volume":18300.0},"macd":{"value":0.4213876521,'
    '"signal":0.3987612345,"hist":0.0226264176,"color":"#26a69a"},"hma":{"value":512.3312,'
    '"direction":"up","color":"#01FFFF"},"final":false}'
)
PAYLOAD_SIZE = len(_TEMPLATE % (0, 0))
FRAME_SIZE = PAYLOAD_SIZE + 4  # 0x81, 126, 2-byte length (126 <= size < 65536)
TS_OFFSET = 4 + (_TEMPLATE % (0, 0)).index('"time":') + 7  # time_ns's 19 digits in a frame
assert 126 <= PAYLOAD_SIZE < 65536


def delta(sym: int, t_ns: int) -> bytes:
    return (_TEMPLATE % (sym, t_ns)).encode()


def snapshot(sym: int) -> bytes:
    return (
        f'{{"type":"snapshot","symbol":"S{sym:03d}","period":"5m","last_candle":{{"time":0,'
        '"open":1.0,"high":1.0,"low":1.0,"close":1.0,"volume":1.0},"macd":{"value":null,'
        '"signal":null,"hist":null,"color":null},"hma":{"value":null,"direction":null,'
        '"color":null},"bars":1}'
    ).encode()


def _resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


class Publisher:
    """A raw pipelined connection to one redis-server."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def command(self, *args: bytes) -> None:
        self.send([_resp(*args)])

    def send(self, cmds: list[bytes]) -> None:
        self.sock.sendall(b"".join(cmds))
        want = len(cmds)
        while self.buf.count(b"\r\n") < want:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        self.buf = self.buf.split(b"\r\n", want)[-1]

    def publish(self, syms: list[int]) -> None:
        now = time.time_ns()
        self.send([_resp(b"PUBLISH", b"analytics:delta:S%03d" % s, delta(s, now)) for s in syms])


# -- the client process --------------------------------------------------------------------------


class _WsCounter(asyncio.Protocol):
    def __init__(self, host: str, port: int, path: str, shared: _Shared) -> None:
        self.req = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.shared = shared
        self.head = b""
        self.state = 0  # 0 handshake, 1 snapshot frame, 2 counting
        self.off = 0  # bytes into the current delta frame
        self.ready = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's: no subclass
        self.transport.write(self.req)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self.shared.lost += 1
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed"))

    def data_received(self, data: bytes) -> None:
        if self.state < 2:
            self.head += data
            if self.state == 0:
                i = self.head.find(b"\r\n\r\n")
                if i < 0:
                    return
                if not self.head.startswith(b"HTTP/1.1 101"):
                    self.ready.set_exception(ConnectionError(self.head[:200].decode()))
                    return
                self.head = self.head[i + 4 :]
                self.state = 1
            h = self.head
            if len(h) < 4:
                return
            n = h[1] & 0x7F
            start = 2 + (2 if n == 126 else 8 if n == 127 else 0)
            if n == 126:
                n = int.from_bytes(h[2:4], "big")
            elif n == 127:
                n = int.from_bytes(h[2:10], "big")
            if len(h) < start + n:
                return
            data = h[start + n :]  # the snapshot is read; what follows is deltas
            self.head = b""
            self.state = 2
            self.ready.set_result(None)
            if not data:
                return
        sh = self.shared
        first = (FRAME_SIZE - self.off) % FRAME_SIZE  # the first frame starting in this chunk
        n = len(data)
        self.off = (self.off + n) % FRAME_SIZE
        sh.nbytes += n
        heads = data[first::FRAME_SIZE]
        if heads.count(0x81) != len(heads):
            sh.bad += 1
        if sh.sample and first + FRAME_SIZE <= n:
            now = time.time_ns()
            k = (n - first) // FRAME_SIZE  # complete frames starting here
            step = max(1, k // 4)
            for j in range(0, k, step):
                p = first + j * FRAME_SIZE + TS_OFFSET
                sh.delays.append(now - int(data[p : p + 19]))
        if sh.target and sh.nbytes >= sh.target:
            sh.t_done = time.perf_counter()
            sh.target = 0
            sh.done.set()


@dataclass
class _Shared:
    nbytes: int = 0
    target: int = 0
    bad: int = 0
    lost: int = 0
    sample: bool = False
    t_done: float = 0.0
    delays: list[int] | None = None  # type: ignore[assignment]
    done: asyncio.Event | None = None  # type: ignore[assignment]


async def _connect(sem: asyncio.Semaphore, port: int, path: str, sh: _Shared) -> _WsCounter:
    async with sem:
        loop = asyncio.get_running_loop()
        _t, proto = await loop.create_connection(
            lambda: _WsCounter("127.0.0.1", port, path, sh), "127.0.0.1", port
        )
        await asyncio.wait_for(proto.ready, 30)
        return proto


def _client_main(conn: Any) -> None:
    """The client process: serves commands from the bench process over a pipe."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        groups: dict[str, tuple[_Shared, list[_WsCounter]]] = {}
        while True:
            cmd, *args = await loop.run_in_executor(None, conn.recv)
            if cmd == "connect":
                name, port, n, symbols = args
                sh = _Shared(delays=[], done=asyncio.Event())
                sem = asyncio.Semaphore(50)  # the servers' accept backlogs are finite
                paths = [f"/ws/S{i % symbols:03d}" for i in range(n)]
                try:
                    protos = await asyncio.gather(*(_connect(sem, port, p, sh) for p in paths))
                except Exception as exc:
                    conn.send(("error", repr(exc)))
                    continue
                groups[name] = (sh, list(protos))
                conn.send(("ok",))
            elif cmd == "expect":
                name, nframes, timeout, sample = args
                sh = groups[name][0]
                sh.nbytes, sh.bad, sh.sample = 0, 0, sample
                sh.delays = []
                sh.done.clear()
                sh.target = nframes * FRAME_SIZE
                conn.send(("armed",))
                try:
                    await asyncio.wait_for(sh.done.wait(), timeout)
                except TimeoutError:
                    conn.send(("timeout", sh.nbytes // FRAME_SIZE, sh.lost))
                    continue
                conn.send(("done", sh.t_done, sh.bad, sh.lost, sh.delays))
            elif cmd == "count":
                sh = groups[args[0]][0]
                conn.send((sh.nbytes // FRAME_SIZE, sh.bad, sh.lost, sh.delays))
            elif cmd == "reset":
                sh = groups[args[0]][0]
                sh.nbytes, sh.bad, sh.sample, sh.target = 0, 0, args[1], 0
                sh.delays = []
                conn.send(("ok",))
            elif cmd == "close":
                for _sh, protos in groups.values():
                    for p in protos:
                        if p.transport is not None:
                            p.transport.abort()
                conn.send(("ok",))
                return

    asyncio.run(main())


# -- the servers -------------------------------------------------------------------------------


def _wait_http(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.05)
    raise RuntimeError(f"no server on port {port}")


def have_reference() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("fastapi", "uvicorn"))


class Rig:
    """Two redis-servers, ttfast-edge and the reference, and the client process."""

    def __init__(self, clients: int, symbols: int) -> None:
        from tests.servers import RedisServer, free_port, require_binary

        self.clients, self.symbols = clients, symbols
        self.tmp = tempfile.TemporaryDirectory(prefix="ttfast-bench-edge-")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis: dict[str, RedisServer] = {}
        self.pub: dict[str, Publisher] = {}
        binary = require_binary("redis-server")
        atexit.register(self.close)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        cmds = {
            "ttfast": [sys.executable, "-m", "ttfast.edge", "--log-level", "WARNING"],
            "ref": [sys.executable, "-m", "bench.edge_ref"],
        }
        for name, cmd in cmds.items():
            d = Path(self.tmp.name, name)
            d.mkdir()
            srv = RedisServer(binary, d)
            srv.start()
            self.redis[name] = srv
            pub = Publisher(srv.port)
            for s in range(symbols):
                pub.command(b"SET", b"snapshot:S%03d" % s, snapshot(s))
            self.pub[name] = pub
            port = free_port()
            proc = subprocess.Popen(
                [*cmd, "--redis", srv.url, "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.procs.append(proc)
            _wait_http(port)
            self.__dict__[f"port_{name}"] = port
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.client = ctx.Process(target=_client_main, args=(child,), daemon=True)
        self.client.start()
        for name in cmds:
            self.conn.send(("connect", name, self.__dict__[f"port_{name}"], clients, symbols))
            reply = self.conn.recv()
            if reply[0] != "ok":
                raise RuntimeError(f"{name}: clients could not connect: {reply}")

    def round(self, name: str, deltas: int, timeout: float = 120.0) -> tuple[float, list[int]]:
        """Publish `deltas` (round-robin over the symbols) and wait until every client got
        its share; returns (seconds from the first PUBLISH to the last byte, delays ns)."""
        fanout = self.clients // self.symbols
        self.conn.send(("expect", name, deltas * fanout, timeout, True))
        assert self.conn.recv() == ("armed",)
        t0 = time.perf_counter()
        self.pub[name].publish([i % self.symbols for i in range(deltas)])
        reply = self.conn.recv()
        if reply[0] != "done":
            raise RuntimeError(f"{name}: {reply[1]} of {deltas * fanout} frames (lost {reply[2]})")
        _, t_done, bad, lost, delays = reply
        if bad or lost:
            raise RuntimeError(f"{name}: {bad} bad chunks, {lost} connections lost")
        return t_done - t0, delays

    def paced(self, name: str, rate: float, seconds: float) -> dict[str, float]:
        """Publish `rate` deltas/s for `seconds` (a batch every 2 ms); delivered/s and delays."""
        self.conn.send(("reset", name, True))
        assert self.conn.recv() == ("ok",)
        per = max(1, round(rate * 0.002))
        t0 = time.perf_counter()
        sent = k = 0
        while (now := time.perf_counter()) - t0 < seconds:
            due = int((now - t0) * rate)
            if due >= sent + per:
                n = due - sent
                self.pub[name].publish([(k + j) % self.symbols for j in range(n)])
                sent += n
                k += n
            else:
                time.sleep(0.0005)
        time.sleep(1.0)  # let the tail arrive
        self.conn.send(("count", name))
        got, bad, lost, delays = self.conn.recv()
        arr = np.asarray(delays or [0], dtype=np.float64) / 1e6
        return {
            "deltas": sent,
            "expected": sent * (self.clients // self.symbols),
            "delivered": got,
            "p50_ms": float(np.percentile(arr, 50)),
            "p99_ms": float(np.percentile(arr, 99)),
            "max_ms": float(arr.max()),
            "bad": bad,
            "lost": lost,
        }

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(("close",))
            self.conn.recv()
        with contextlib.suppress(Exception):
            self.client.terminate()
            self.client.join(5)
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs = []
        for srv in self.redis.values():
            srv.stop()
        self.redis = {}
        with contextlib.suppress(Exception):
            self.tmp.cleanup()


# -- the gate ------------------------------------------------------------------------------------

_RIG: Rig | None = None


def _rig() -> Rig:
    global _RIG
    if _RIG is None:
        _RIG = Rig(GATE_CLIENTS, GATE_SYMBOLS)
    return _RIG


def _gate_round(name: str) -> None:
    _rig().round(name, GATE_DELTAS)


def _gate_cases() -> list[RatioCase]:
    if not have_reference():
        return []  # fastapi/uvicorn: the bench extra
    return [
        RatioCase(
            "edge.fanout.vs_fastapi",
            lambda: _gate_round("ttfast"),
            lambda: _gate_round("ref"),
            # measured 20.5-26.3 (load avg 2 on 2 cores, other developers' jobs running);
            # the floor leaves half of the lowest as margin. The target (5x at 1,000
            # clients) is met with room: python -m bench.bench_edge measured 81x there.
            floor=10.0,
            target=5.0,
            units=GATE_DELTAS * GATE_CLIENTS // GATE_SYMBOLS,
            note="deltas PUBLISHed -> WebSocket clients (100 clients, 10 symbols), ttfast-edge "
            "vs FastAPI+uvicorn with one redis.asyncio pub/sub per client",
        )
    ]


GATE_RATIOS = _gate_cases()


# -- python -m bench.bench_edge ------------------------------------------------------------------


def _fanout(rig: Rig, name: str, deltas: int, rounds: int) -> dict[str, float]:
    rates, delays = [], []
    for _ in range(rounds):
        dt, d = rig.round(name, deltas)
        rates.append(deltas * (rig.clients // rig.symbols) / dt)
        delays += d
    arr = np.asarray(delays, dtype=np.float64) / 1e6
    return {
        "msgs_per_s": float(np.median(rates)),
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
    }


def main() -> None:  # pragma: no cover - docs/edge.md numbers
    p = argparse.ArgumentParser(prog="python -m bench.bench_edge")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--symbols", type=int, default=10)
    p.add_argument("--deltas", type=int, default=2000, help="deltas per burst round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rate", type=float, default=20_000, help="paced deltas/s")
    p.add_argument("--paced-clients", type=int, default=100)
    p.add_argument("--paced-symbols", type=int, default=10)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--only", choices=("ttfast", "ref"), default=None)
    a = p.parse_args()
    names = [a.only] if a.only else ["ttfast", "ref"]
    print(
        f"fan-out burst: {a.clients} clients, {a.symbols} symbols "
        f"({a.clients // a.symbols} clients per delta), {a.deltas} deltas x {a.rounds} rounds"
    )
    rig = Rig(a.clients, a.symbols)
    try:
        res = {n: _fanout(rig, n, a.deltas if n == "ttfast" else a.deltas // 4, a.rounds)
               for n in names}  # fmt: skip
        for n, r in res.items():
            print(f"  {n:7s} {r['msgs_per_s']:>12,.0f} msgs/s  p50 {r['p50_ms']:8.2f} ms  "
                  f"p99 {r['p99_ms']:8.2f} ms")  # fmt: skip
        if len(res) == 2:
            print(f"  ratio {res['ttfast']['msgs_per_s'] / res['ref']['msgs_per_s']:.1f}x")
    finally:
        rig.close()
    print(
        f"paced: {a.rate:,.0f} deltas/s for {a.seconds:g} s, {a.paced_clients} clients, "
        f"{a.paced_symbols} symbols"
    )
    rig = Rig(a.paced_clients, a.paced_symbols)
    try:
        for n in names:
            r = rig.paced(n, a.rate, a.seconds)
            print(f"  {n:7s} delivered {r['delivered']:,}/{r['expected']:,}  "
                  f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  "
                  f"max {r['max_ms']:.1f} ms")  # fmt: skip
    finally:
        rig.close()


if __name__ == "__main__":
    main()
