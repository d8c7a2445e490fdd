"""Real servers for tests: redis-server, influxd and VictoriaMetrics on a free loopback port in a
temp dir.

Each server is a child process we start and stop ourselves (no mocks, loopback only). A test is
skipped only when the server binary is not installed; any other start-up failure is an error
with the server's own output attached.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None and os.path.exists(f"/usr/bin/{name}"):
        path = f"/usr/bin/{name}"
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {_PKG.get(name, name)})")
    return path


_PKG = {
    "openssl": "openssl",
    "redis-server": "redis-server",
    "influxd": "influxdb",
    "victoria-metrics": "victoria-metrics",
}


def _stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


class _ChildProcess(abc.ABC):
    """kill/restart/stop of a server child process (`proc`), shared by the servers below."""

    proc: subprocess.Popen[bytes] | None

    @abc.abstractmethod
    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers."""

    def kill(self) -> None:
        """Hard kill (SIGKILL): what a crash looks like to clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)


_S = TypeVar("_S", bound=_ChildProcess)


@contextlib.contextmanager
def _serving(cls: Callable[[str, Path], _S], binary: str, prefix: str) -> Iterator[_S]:
    """`cls(binary path, temp dir)` started, stopped at the end, its temp dir removed."""
    path = require_binary(binary)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        srv = cls(path, Path(tmp))
        srv.start()
        try:
            yield srv
        finally:
            srv.stop()


@dataclass
class RedisServer(_ChildProcess):
    """A running redis-server. `restart()` kills it and starts a fresh one on the same port."""

    binary: str
    dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _free_port(self) -> int:
        return free_port()

    def _extra_args(self) -> list[str]:
        """Arguments a subclass adds (cluster mode)."""
        return []

    def start(self, timeout: float = 10.0) -> None:
        if not self.port:
            self.port = self._free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        log = self.dir / f"redis-{self.starts}.log"
        self.starts += 1
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.dir),
                "--logfile", str(log),
                "--daemonize", "no",
                *self._extra_args(),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.proc.returncode}:\n" + _tail(log)
                )
            if self.ping():
                return
            time.sleep(0.01)
        _stop(self.proc)
        raise RuntimeError(f"redis-server not ready on port {self.port}:\n" + _tail(log))

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def redis_server() -> contextlib.AbstractContextManager[RedisServer]:
    return _serving(RedisServer, "redis-server", "ttfast-redis-")


_INFLUX_CONF = """\
reporting-enabled = false
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{dir}/meta"
[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
  trace-logging-enabled = false
[coordinator]
[retention]
  enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{http}"
  log-enabled = false
  max-body-size = 0
[[udp]]
  enabled = true
  bind-address = "127.0.0.1:{udp}"
  database = "udp"
  batch-size = 1
  batch-timeout = "10ms"
  precision = "n"
[continuous_queries]
  enabled = false
"""


@dataclass
class InfluxServer(_ChildProcess):
    """A running influxd 1.x with an HTTP API and a UDP listener writing into database `udp`."""

    binary: str
    dir: Path
    http_port: int = 0
    udp_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    databases: set[str] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    _conf = _INFLUX_CONF  # the configuration template (see InfluxAuthServer)

    def _on_ready(self) -> None:
        """First thing once /ping answers."""
        self.create_database("udp")

    def start(self, timeout: float = 20.0) -> None:
        self.http_port, rpc, self.udp_port = free_port(), free_port(), free_udp_port()
        conf = self.dir / "influxdb.conf"
        conf.write_text(
            self._conf.format(dir=self.dir, rpc=rpc, http=self.http_port, udp=self.udp_port)
        )
        log = self.dir / "influxd.log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [self.binary, "run", "-config", str(conf)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited with {self.proc.returncode}:\n" + _tail(log))
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=0.5) as r:
                    if r.status == 204:
                        self._on_ready()
                        return
            except OSError:
                pass
            time.sleep(0.02)
        _stop(self.proc)
        raise RuntimeError(f"influxd not ready on port {self.http_port}:\n" + _tail(log))

    def _post_query(self, q: str, db: str | None = None) -> dict[str, Any]:
        params = {"q": q}
        if db:
            params["db"] = db
        req = urllib.request.Request(
            self.url + "/query", data=urllib.parse.urlencode(params).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            out: dict[str, Any] = json.loads(r.read())
        return out

    def create_database(self, name: str) -> None:
        self._post_query(f'CREATE DATABASE "{name}"')
        self.databases.add(name)

    def query(self, db: str, q: str) -> list[dict[str, Any]]:
        """Rows of the first statement's series as dicts (column name → value), with tags."""
        params = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ns"})
        with urllib.request.urlopen(f"{self.url}/query?{params}", timeout=10) as r:
            body = json.loads(r.read())
        rows: list[dict[str, Any]] = []
        for res in body.get("results", []):
            if "error" in res:
                raise RuntimeError(res["error"])
            for series in res.get("series", []):
                tags = series.get("tags", {})
                for vals in series["values"]:
                    row = dict(zip(series["columns"], vals, strict=True))
                    row.update(tags)
                    row["_measurement"] = series["name"]
                    rows.append(row)
        return rows


def influx_server() -> contextlib.AbstractContextManager[InfluxServer]:
    return _serving(InfluxServer, "influxd", "ttfast-influx-")


_INFLUX_AUTH_CONF = _INFLUX_CONF.replace(
    "[http]\n  enabled = true\n", "[http]\n  enabled = true\n  auth-enabled = true\n"
)


@dataclass
class InfluxAuthServer(InfluxServer):
    """influxd 1.x with ``auth-enabled``: an admin user, plus `create_user` for others.

    `_post_query` / `query` authenticate as the admin (``u``/``p`` parameters).
    """

    admin: str = "admin"
    admin_password: str = "admin-pw-0"

    _conf = _INFLUX_AUTH_CONF

    def _on_ready(self) -> None:
        # with no user yet, influxd accepts exactly this one unauthenticated query
        self._raw_query(
            f"CREATE USER \"{self.admin}\" WITH PASSWORD '{self.admin_password}' "
            "WITH ALL PRIVILEGES",
            {},
        )

    def _raw_query(self, q: str, extra: dict[str, str]) -> dict[str, Any]:
        # influxd reads u/p from the URL's query string only, never from a form body
        req = urllib.request.Request(
            f"{self.url}/query?{urllib.parse.urlencode(extra)}",
            data=urllib.parse.urlencode({"q": q}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            out: dict[str, Any] = json.loads(r.read())
        for res in out.get("results", []):
            if "error" in res:
                raise RuntimeError(res["error"])
        return out

    def _post_query(self, q: str, db: str | None = None) -> dict[str, Any]:
        extra = {"u": self.admin, "p": self.admin_password}
        if db:
            extra["db"] = db
        return self._raw_query(q, extra)

    def query(self, db: str, q: str) -> list[dict[str, Any]]:
        extra = {"u": self.admin, "p": self.admin_password, "epoch": "ns"}
        if db:
            extra["db"] = db
        out = self._raw_query(q, extra)
        rows: list[dict[str, Any]] = []
        for res in out.get("results", []):
            for series in res.get("series", []):
                for vals in series["values"]:
                    row = dict(zip(series["columns"], vals, strict=True))
                    row.update(series.get("tags", {}))
                    rows.append(row)
        return rows

    def create_user(self, name: str, password: str, *, write_on: str | None = None) -> None:
        self._post_query(f"CREATE USER \"{name}\" WITH PASSWORD '{password}'")
        if write_on:
            self._post_query(f'GRANT WRITE ON "{write_on}" TO "{name}"')

    def database_names(self) -> set[str]:
        return {row["name"] for row in self.query("", "SHOW DATABASES")}


def influx_auth_server() -> contextlib.AbstractContextManager[InfluxAuthServer]:
    """An auth-enabled influxd 1.x (see `InfluxAuthServer`)."""
    return _serving(InfluxAuthServer, "influxd", "ttfast-influx-auth-")


@dataclass
class VictoriaMetricsServer(_ChildProcess):
    """A running single-node VictoriaMetrics: InfluxDB line protocol on ``/write`` (1.x) and
    ``/api/v2/write`` (v2; org and bucket are accepted, the token is not checked).

    Started with ``-retentionPeriod 100y`` (its default of one month would drop older points)
    and ``-dedup.minScrapeInterval 1ms`` (one sample per series and millisecond, as InfluxDB
    keeps one point per series and timestamp). A field ``f`` of measurement ``m`` is the
    series ``m_f``; tags are labels; timestamps are stored in milliseconds. `restart()` kills
    it and starts it again on the same port and data dir (a server down for a while).
    """

    binary: str
    dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        if not self.port:
            self.port = free_port()
        log = self.dir / f"vm-{self.starts}.log"
        self.starts += 1
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"-storageDataPath={self.dir / 'data'}",
                    "-retentionPeriod=100y",
                    "-dedup.minScrapeInterval=1ms",
                    f"-httpListenAddr=127.0.0.1:{self.port}",
                    "-loggerLevel=ERROR",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"victoria-metrics exited with {self.proc.returncode}:\n" + _tail(log)
                )
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=0.5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.02)
        _stop(self.proc)
        raise RuntimeError(f"victoria-metrics not ready on port {self.port}:\n" + _tail(log))

    def force_flush(self) -> None:
        """Make every point received so far readable."""
        with urllib.request.urlopen(self.url + "/internal/force_flush", timeout=10) as r:
            r.read()

    def export(self, match: str) -> list[dict[str, Any]]:
        """``/api/v1/export`` of the series matching `match` (after a force flush; points up to
        the year 2100): one dict per series,
        ``{"metric": {"__name__": ..., labels}, "values": [...], "timestamps": [ms]}``."""
        self.force_flush()
        # export ends at "now" by default: a simulated clock runs ahead of it
        data = urllib.parse.urlencode({"match[]": match, "start": "0", "end": "4102444800"})
        data = data.encode()
        with urllib.request.urlopen(self.url + "/api/v1/export", data=data, timeout=30) as r:
            return [json.loads(line) for line in r.read().splitlines() if line.strip()]

    def points(self, match: str) -> dict[tuple[str, str, int], float]:
        """(series name, symbol label, time ms) -> value for the series matching `match`;
        raises if a series holds two samples at one timestamp."""
        out: dict[tuple[str, str, int], float] = {}
        for s in self.export(match):
            name, sym = s["metric"]["__name__"], s["metric"].get("symbol", "")
            for t, v in zip(s["timestamps"], s["values"], strict=True):
                key = (name, sym, int(t))
                if key in out:
                    raise AssertionError(f"two samples for {key}")
                out[key] = float(v)
        return out


def victoria_metrics() -> contextlib.AbstractContextManager[VictoriaMetricsServer]:
    """A VictoriaMetrics in a temp dir (see `VictoriaMetricsServer`)."""
    return _serving(VictoriaMetricsServer, "victoria-metrics", "ttfast-vm-")


# -- Redis Cluster ---------------------------------------------------------------------------


def free_cluster_port() -> int:
    """A free port P whose cluster bus port P + 10000 is free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair (P, P + 10000) for a cluster node")


@dataclass
class RedisClusterNode(RedisServer):
    """One ``cluster-enabled`` redis-server (its own dir, ``cluster-node-timeout 1000``)."""

    def _free_port(self) -> int:
        return free_cluster_port()

    def _extra_args(self) -> list[str]:
        return [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "1000",
            "--repl-diskless-sync-delay", "0",  # a replica syncs at once (default 5 s)
        ]  # fmt: skip

    def command(self, *args: str, timeout: float = 5.0) -> str:
        """One command through redis-cli; its output."""
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        r = subprocess.run(
            [cli, "-h", "127.0.0.1", "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return r.stdout


@dataclass
class RedisCluster:
    """A 6-node Redis Cluster on loopback: 3 primaries + 3 replicas (``redis-cli --cluster
    create --cluster-replicas 1``), ``cluster-node-timeout 1000``. `url` is the
    ``redis+cluster://host:port,...`` form ttfast-worker's scale-out roles take."""

    nodes: list[RedisClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", n.port) for n in self.nodes]

    def ok(self) -> bool:
        """`cluster info` says cluster_state:ok with every slot assigned, and every replica's
        link to its primary is up (synced: ``WAIT 1`` can succeed), on every live node."""
        for n in self.nodes:
            if n.proc is None or n.proc.poll() is not None:
                continue  # (stopped by a test)
            try:
                info = n.command("cluster", "info")
                repl = n.command("info", "replication")
            except (OSError, subprocess.SubprocessError):
                return False
            if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
                return False
            if "role:slave" in repl and "master_link_status:up" not in repl:
                return False
        return True

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()

    # -- failure helpers (tests/integration/test_scaleout_failover.py) --------------------------

    def live(self) -> list[RedisClusterNode]:
        """The nodes whose redis-server is running."""
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def node_id(self, node: RedisClusterNode) -> str:
        return node.command("cluster", "myid").strip()

    def topology(self) -> list[tuple[RedisClusterNode, str, list[int]]]:
        """(node, role ``master``/``slave``, its slots) of every live node, as the first live
        node's ``CLUSTER NODES`` sees them (a failed node is left out)."""
        by_port = {n.port: n for n in self.live()}
        out: list[tuple[RedisClusterNode, str, list[int]]] = []
        for line in self.live()[0].command("cluster", "nodes").splitlines():
            f = line.split()
            if len(f) < 8:
                continue
            port = int(f[1].split("@")[0].rpartition(":")[2])
            flags = f[2].split(",")
            if port not in by_port or "fail" in flags or "fail?" in flags:
                continue
            slots: list[int] = []
            for s in f[8:]:
                if s.startswith("["):  # a slot being migrated/imported
                    continue
                lo, _, hi = s.partition("-")
                slots += range(int(lo), int(hi or lo) + 1)
            role = "master" if "master" in flags else "slave"
            out.append((by_port[port], role, slots))
        return out

    def primaries(self) -> list[RedisClusterNode]:
        return [n for n, role, _ in self.topology() if role == "master"]

    def slots_of(self, node: RedisClusterNode) -> list[int]:
        """The slots `node` serves (sorted)."""
        return sorted(next((s for n, _, s in self.topology() if n is node), []))

    def node_for_slot(self, slot: int) -> RedisClusterNode:
        for n, role, slots in self.topology():
            if role == "master" and slot in slots:
                return n
        raise LookupError(f"no live primary serves slot {slot}")

    def kill(self, node: RedisClusterNode) -> None:
        """SIGKILL `node`'s redis-server (no shutdown, no last write to its replica)."""
        assert node.proc is not None
        node.proc.kill()
        node.proc.wait(10)

    def restart(self, node: RedisClusterNode) -> None:
        """Start a killed node again on its port and dir: its nodes.conf brings it back into
        the cluster, as a replica of whichever node took its slots (a full sync: no data is
        kept on disk). `ok()` says when it is synced."""
        node.start()

    def reshard(
        self, src: RedisClusterNode, dst: RedisClusterNode, slots: int
    ) -> subprocess.Popen[str]:
        """Start ``redis-cli --cluster reshard`` moving `slots` slots (the lowest ones `src`
        serves) to `dst`, keys included; the caller waits on the process."""
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        return subprocess.Popen(
            [cli, "--cluster", "reshard", f"127.0.0.1:{src.port}",
             "--cluster-from", self.node_id(src), "--cluster-to", self.node_id(dst),
             "--cluster-slots", str(slots), "--cluster-yes"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    # -- tests/integration/test_edge_cluster.py ------------------------------------------------

    def primary_of(self, key: str) -> RedisClusterNode:
        """The live primary serving `key`'s slot, as a live node's ``CLUSTER NODES`` says now
        (kill it with its ``kill()``: SIGKILL)."""
        ask = next(n for n in self.nodes if n.proc is not None and n.proc.poll() is None)
        slot = int(ask.command("cluster", "keyslot", key).strip())
        for line in ask.command("cluster", "nodes").splitlines():
            f = line.split()
            flags = f[2].split(",") if len(f) > 2 else []
            if len(f) < 8 or "master" not in flags or "fail" in flags or "fail?" in flags:
                continue
            for r in f[8:]:
                lo, _, hi = r.partition("-")
                if not r.startswith("[") and int(lo) <= slot <= int(hi or lo):
                    port = int(f[1].split("@")[0].rpartition(":")[2])
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"no live primary serves slot {slot} of {key!r}")


@contextlib.contextmanager
def redis_cluster(
    n_nodes: int = 6, replicas: int = 1, timeout: float = 60.0
) -> Iterator[RedisCluster]:
    """A fresh Redis Cluster (see `RedisCluster`) in a temp dir; every node stopped and the dir
    removed at the end."""
    path = require_binary("redis-server")
    cli = require_binary("redis-cli")
    with tempfile.TemporaryDirectory(prefix="ttfast-redis-cluster-") as tmp:
        cluster = RedisCluster()
        try:
            for i in range(n_nodes):
                node = RedisClusterNode(path, Path(tmp) / f"n{i}")
                cluster.nodes.append(node)
                node.start()
            r = subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in cluster.nodes),
                 "--cluster-replicas", str(replicas), "--cluster-yes"],
                capture_output=True, text=True, timeout=timeout,
            )  # fmt: skip
            if r.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{r.stdout}\n{r.stderr}")
            deadline = time.monotonic() + timeout
            while not cluster.ok():
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        "cluster not ok:\n" + cluster.nodes[0].command("cluster", "info")
                    )
                time.sleep(0.1)
            yield cluster
        finally:
            cluster.stop()


# -- the project's own commands, started as a user runs them --------------------------------


def clean_env() -> dict[str, str]:
    """The caller's environment minus anything that could point an example elsewhere."""
    drop = ("TASTYTRADE_", "TTFAST_", "PYTHONPATH")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def ttfast_script(name: str, module: str) -> list[str]:
    """How to run the console script `name` of the venv running the tests."""
    exe = Path(sys.executable).parent / name
    return [str(exe)] if exe.exists() else [sys.executable, "-m", module]


def stop_cli(proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    """Ctrl-C a command started by a test, then kill it if it does not stop."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


@dataclass(frozen=True)
class Sim:
    dxlink_url: str
    rest_url: str


@contextlib.contextmanager
def ttfast_sim() -> Iterator[Sim]:
    """``ttfast sim`` on free ports, as a user runs it in a second terminal (the docs examples,
    the MACD bot test, bench/bench_bot.py)."""
    cmd = [*ttfast_script("ttfast", "ttfast.cli"), "sim", "--dxlink-port", "0", "--rest-port", "0"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env()
    )
    assert proc.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(proc.stdout.readline() for _ in range(2)),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    reader.join(60)
    try:
        found = dict(re.findall(r"ttfast sim: (dxLink|REST)\s+(\S+)", "".join(lines)))
        assert set(found) == {"dxLink", "REST"}, f"`ttfast sim` printed {lines!r}"
        yield Sim(found["dxLink"], found["REST"])
    finally:
        stop_cli(proc)
        proc.stdout.close()
