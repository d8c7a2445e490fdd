"""ttfast.edge's HTTP + WebSocket contract on a real port (the in-process source, as inside
``ttfast-worker --serve``): shapes, snapshot first then deltas in order, multi-symbol
subscribe/unsubscribe, bad input, token, Origin, a slow client conflated then disconnected
while a fast one receives everything; and the worker serving itself (sim source)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from ttfast.edge.app import EdgeConfig, EdgeServer
from ttfast.edge.history import BarHistory, HistoryOp
from ttfast.edge.hub import CLOSE_POLICY, CLOSE_SLOW, CLOSE_UNKNOWN_SYMBOL, Hub, HubLimits
from ttfast.edge.local_feed import LocalFeed

pytestmark = pytest.mark.timeout(120)


def delta(name: str, t: int, seq: int, final: bool = False, pad: int = 0) -> bytes:
    return (
        f'{{"type":"delta","symbol":"{name}","period":"5m","candle":{{"time":{t},"open":1.0,'
        f'"high":2.0,"low":0.5,"close":{seq}.0,"volume":10.0}},"macd":{{"value":null,'
        f'"signal":null,"hist":null,"color":null}},"hma":{{"value":null,"direction":null,'
        f'"color":null}},"pad":"{"x" * pad}","final":{"true" if final else "false"}}}'
    ).encode()


def snapshot(name: str, t: int) -> bytes:
    return (
        f'{{"type":"snapshot","symbol":"{name}","period":"5m","last_candle":{{"time":{t},'
        f'"open":1.0,"high":2.0,"low":0.5,"close":1.5,"volume":10.0}},"macd":{{"value":null,'
        f'"signal":null,"hist":null,"color":null}},"hma":{{"value":null,"direction":null,'
        f'"color":null}},"bars":3}}'
    ).encode()


class Edge:
    def __init__(self, server: EdgeServer, feed: LocalFeed) -> None:
        self.server = server
        self.feed = feed
        self.hub = server.hub
        self.url = server.url

    def publish(self, items: list[tuple[str, bytes, bool]]) -> None:
        self.hub.publish(items)


async def start_edge(cfg: EdgeConfig | None = None) -> Edge:
    cfg = cfg or EdgeConfig(port=0)
    hub = Hub(cfg.limits)
    feed = LocalFeed(hub, BarHistory(cap=100))
    hub.set_snapshots([("SPY", snapshot("SPY", 1000)), ("QQQ", snapshot("QQQ", 1000))])
    bars = [(t, b'{"time":%d,"close":1.0}' % t) for t in (400, 700)]
    feed.bars.apply([HistoryOp("SPY", "SPY", "5m", 400, 700, bars)])
    server = EdgeServer(feed, hub, cfg)
    await server.start()
    return Edge(server, feed)


@pytest.fixture
async def edge() -> AsyncIterator[Edge]:
    e = await start_edge()
    yield e
    await e.server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def get(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.get(url, **kw) as r:
        body = await r.read()
        ctype = r.headers.get("Content-Type", "")
        return r.status, json.loads(body) if ctype.startswith("application/json") else body


async def recv(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> dict[str, Any]:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    out: dict[str, Any] = json.loads(msg.data)
    return out


async def test_http_endpoints(edge: Edge, http: aiohttp.ClientSession) -> None:
    u = edge.url
    assert await get(http, u + "healthz") == (
        200,
        {"status": "ok", "source": "worker", "redis": None, "clients": 0, "symbols": 2},
    )
    assert await get(http, u + "symbols") == (200, {"symbols": ["QQQ", "SPY"]})
    status, snap = await get(http, u + "snapshot/SPY")
    assert status == 200 and snap == json.loads(snapshot("SPY", 1000))
    status, hist = await get(http, u + "history/SPY?bars=1")
    assert status == 200 and hist == {
        "symbol": "SPY",
        "period": "5m",
        "bars": [{"time": 700, "close": 1.0}],
    }
    status, hist = await get(http, u + "history/SPY")  # default 300
    assert [b["time"] for b in hist["bars"]] == [400, 700]
    assert (await get(http, u + "history/QQQ"))[1]["bars"] == []  # known, no closed bars yet
    for path, code in [
        ("snapshot/NOPE", 404),
        ("history/NOPE", 404),
        ("snapshot/" + "A" * 200, 400),
        ("snapshot/%22quoted%22", 400),
        ("history/SPY{=5m}{=1h}", 400),
        ("history/SPY?bars=0", 400),
        ("history/SPY?bars=5001", 400),
        ("history/SPY?bars=abc", 400),
        ("nothing/here", 404),
    ]:
        status, body = await get(http, u + path)
        assert status == code and isinstance(body["error"], str), (path, status, body)
    status, page = await get(http, u)
    assert status == 200 and b"<html" in page.lower()
    status, metrics = await get(http, u + "metrics")
    text = metrics.decode()
    for name in (
        "clients",
        "messages_sent_total",
        "messages_conflated_total",
        "messages_dropped_total",
        "slow_disconnects_total",
        "bad_requests_total",
    ):
        assert f"\nttfast_edge_{name} " in text, name
    assert "ttfast_edge_bad_requests_total 6" in text


async def test_ws_symbol_snapshot_first_then_deltas_in_order(
    edge: Edge, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(edge.url + "ws/SPY") as ws:
        assert await recv(ws) == json.loads(snapshot("SPY", 1000))
        for k in range(0, 200, 20):
            edge.publish(
                [
                    ("SPY", delta("SPY", 1000, i, final=i % 7 == 0), i % 7 == 0)
                    for i in range(k, k + 20)
                ]
                + [("QQQ", delta("QQQ", 1000, 999), False)]
            )
            await asyncio.sleep(0)
        got = [await recv(ws) for _ in range(200)]
        assert [m["candle"]["close"] for m in got] == list(range(200))
        assert [m["final"] for m in got] == [i % 7 == 0 for i in range(200)]
        assert {m["symbol"] for m in got} == {"SPY"}
    async with http.ws_connect(edge.url + "ws/NOPE") as ws:
        assert (await recv(ws))["type"] == "error"
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == CLOSE_UNKNOWN_SYMBOL


async def test_ws_multi_subscribe_unsubscribe(edge: Edge, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(edge.url + "ws") as ws:
        await ws.send_str(json.dumps({"subscribe": ["SPY", "QQQ", "NOPE", "SPY"]}))
        assert await recv(ws) == {"type": "subscribed", "symbols": ["SPY", "QQQ"]}
        snaps = [await recv(ws), await recv(ws)]
        assert [(m["type"], m["symbol"]) for m in snaps] == [
            ("snapshot", "SPY"),
            ("snapshot", "QQQ"),
        ]
        err = await recv(ws)
        assert err["type"] == "error" and "NOPE" in err["error"]
        edge.publish([("SPY", delta("SPY", 1000, 1), False), ("QQQ", delta("QQQ", 1000, 2), False)])
        got = [await recv(ws), await recv(ws)]
        assert [(m["symbol"], m["candle"]["close"]) for m in got] == [("SPY", 1), ("QQQ", 2)]
        await ws.send_str(json.dumps({"unsubscribe": ["SPY", "AAPL"]}))
        assert await recv(ws) == {"type": "unsubscribed", "symbols": ["SPY"]}
        edge.publish([("SPY", delta("SPY", 1000, 3), False), ("QQQ", delta("QQQ", 1000, 4), False)])
        m = await recv(ws)
        assert (m["symbol"], m["candle"]["close"]) == ("QQQ", 4)
        assert edge.hub.subscribers("SPY") == 0 and edge.hub.subscribers("QQQ") == 1


async def test_ws_bad_input_gets_errors_then_a_close(
    edge: Edge, http: aiohttp.ClientSession
) -> None:
    bad = [
        "not json",
        "[1,2]",
        '{"subscribe": "SPY"}',
        '{"subscribe": []}',
        '{"subscribe": ["SPY"], "unsubscribe": ["SPY"]}',
        '{"publish": ["SPY"]}',
        '{"subscribe": [1]}',
        '{"subscribe": ["bad\\"symbol"]}',
        '{"subscribe": ["' + "A" * 300 + '"]}',
        "[" * 1500 + "]" * 1500,
    ]
    async with http.ws_connect(edge.url + "ws") as ws:
        for text in bad:
            await ws.send_str(text)
            m = await recv(ws)
            assert m["type"] == "error" and m["error"], text
        await ws.send_bytes(b"\x00\x01")
        assert (await recv(ws))["type"] == "error"
        # still serving this client
        await ws.send_str('{"subscribe": ["QQQ"]}')
        assert (await recv(ws))["type"] == "subscribed"
        assert (await recv(ws))["type"] == "snapshot"
    assert edge.hub.stats.bad_messages == len(bad) + 1
    # too large: aiohttp closes with 1009
    async with http.ws_connect(edge.url + "ws") as ws:
        await ws.send_str('{"subscribe": ["' + "A" * 5000 + '"]}')
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1009
    # too many bad messages: closed with 1008
    async with http.ws_connect(edge.url + "ws") as ws:
        for _ in range(edge.server.cfg.max_bad_messages):
            await ws.send_str("nope")
        while True:
            msg = await ws.receive(timeout=5)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == CLOSE_POLICY
    status, health = await get(http, edge.url + "healthz")
    assert status == 200 and health["clients"] == 0


async def test_token_for_http_and_ws(http: aiohttp.ClientSession) -> None:
    e = await start_edge(EdgeConfig(port=0, token="s3cret-token"))
    try:
        u = e.url
        assert (await get(http, u + "symbols"))[0] == 401
        assert (await get(http, u + "symbols?token=wrong"))[0] == 401
        assert (await get(http, u + "symbols?token=s3cret-token"))[0] == 200
        hdr = {"Authorization": "Bearer s3cret-token"}
        assert (await get(http, u + "snapshot/SPY", headers=hdr))[0] == 200
        assert (await get(http, u + "metrics"))[0] == 401
        assert (await get(http, u + "healthz"))[0] == 200  # public: liveness
        assert (await get(http, u))[0] == 200  # the page itself carries no data
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await http.ws_connect(u + "ws/SPY")
        assert exc.value.status == 401
        async with http.ws_connect(u + "ws/SPY?token=s3cret-token") as ws:
            assert (await recv(ws))["type"] == "snapshot"
        async with http.ws_connect(u + "ws/SPY", headers=hdr) as ws:
            assert (await recv(ws))["type"] == "snapshot"
        assert e.server.stats.unauthorized == 4
    finally:
        await e.server.close()


async def test_origin_check(http: aiohttp.ClientSession) -> None:
    e = await start_edge(EdgeConfig(port=0, allow_origins=("https://charts.example.com",)))
    try:
        u = e.url
        for origin in ("http://evil.example", "null", f"http://localhost:{e.server.port + 1}"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
                await http.ws_connect(u + "ws/SPY", headers={"Origin": origin})
            assert exc.value.status == 403
        for origin in (
            f"http://127.0.0.1:{e.server.port}",
            f"http://localhost:{e.server.port}",
            "https://charts.example.com",
        ):
            async with http.ws_connect(u + "ws/SPY", headers={"Origin": origin}) as ws:
                assert (await recv(ws))["type"] == "snapshot"
        assert e.server.stats.origin_refused == 3
    finally:
        await e.server.close()


# -- slow consumers ------------------------------------------------------------------------------


async def raw_ws(port: int, path: str, rcvbuf: int = 4096) -> socket.socket:
    """A WebSocket client on a tiny receive buffer that we then stop reading."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(
        sock,
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode(),
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)  # byte by byte: leave the frames in the socket
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def read_all(sock: socket.socket, timeout: float = 20.0) -> bytes:
    loop = asyncio.get_running_loop()
    data = bytearray()
    async with asyncio.timeout(timeout):
        while True:
            try:
                chunk = await loop.sock_recv(sock, 1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    return bytes(data)


def close_code(data: bytes) -> int | None:
    """The code of the close frame at the end of a server frame stream, if any."""
    i, code = 0, None
    while i + 2 <= len(data):
        op, n = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if n == 126:
            n = struct.unpack(">H", data[i : i + 2])[0]
            i += 2
        elif n == 127:
            n = struct.unpack(">Q", data[i : i + 8])[0]
            i += 8
        if op == 8 and i + 2 <= len(data):
            code = struct.unpack(">H", data[i : i + 2])[0]
        i += n
    return code


async def test_slow_client_conflated_then_disconnected_fast_client_gets_everything(
    http: aiohttp.ClientSession,
) -> None:
    limits = HubLimits(high_water=32 * 1024, low_water=8 * 1024, max_pending=40, max_behind=60)
    e = await start_edge(EdgeConfig(port=0, limits=limits, close_timeout=2.0))
    try:
        slow = await raw_ws(e.server.port, "/ws/SPY")
        seen: list[tuple[float, bool]] = []
        async with http.ws_connect(e.url + "ws/SPY") as fast:
            assert (await recv(fast))["type"] == "snapshot"

            async def reader() -> None:
                while True:
                    m = await recv(fast, timeout=30)
                    seen.append((m["candle"]["close"], m["final"]))
                    if m["candle"]["close"] == -1:
                        return

            task = asyncio.create_task(reader())
            seq = 0
            # forming deltas until the slow client is behind and being conflated ...
            while e.hub.stats.conflated < 50:
                e.publish([("SPY", delta("SPY", 1000, seq, pad=2000), False)])
                seq += 1
                assert seq < 50_000, "the slow client never fell behind"
                await asyncio.sleep(0)
            assert e.hub.stats.slow_disconnects == 0
            # ... then final bars (never conflated) until its queue is over the limit
            while e.hub.stats.slow_disconnects == 0:
                e.publish([("SPY", delta("SPY", 1000 + seq, seq, final=True, pad=2000), True)])
                seq += 1
                assert seq < 60_000, "the slow client was never disconnected"
                await asyncio.sleep(0)
            e.publish([("SPY", delta("SPY", 9999, -1, final=True), True)])
            await asyncio.wait_for(task, 30)
        # the fast client got every message, in order, none conflated
        assert [s for s, _ in seen] == [*range(seq), -1]
        st = e.hub.stats
        assert st.conflated >= 50 and st.slow_disconnects == 1 and st.dropped > 0
        # the slow client, reading at last (within close_timeout), finds the close frame
        data = await read_all(slow)
        slow.close()
        assert close_code(data) == CLOSE_SLOW
        assert e.hub.clients == 0
    finally:
        await e.server.close()


# -- inside the worker ---------------------------------------------------------------------------


async def test_worker_serves_chart_api_and_ws_in_process(http: aiohttp.ClientSession) -> None:
    from ttfast.worker import Worker, WorkerConfig

    cfg = WorkerConfig(
        symbols=["SPY", "QQQ"],
        sim_speed=1200.0,
        history_days=1.0,
        quiet=True,
        serve="127.0.0.1:0",
        history_bars=1000,  # the command line's default; WorkerConfig's is 0
    )
    w = Worker(cfg)
    run = asyncio.create_task(w.run())
    try:
        async with asyncio.timeout(60):
            while w.edge.url is None or w.pipeline.symbol_count < 2:
                await asyncio.sleep(0.05)
            url = w.edge.url
            assert (await get(http, url + "symbols"))[1] == {"symbols": ["QQQ", "SPY"]}
            status, hist = await get(http, url + "history/SPY?bars=50")
            assert status == 200 and hist["symbol"] == "SPY" and hist["period"] == "5m"
            bars = hist["bars"]
            assert len(bars) == 50 and [b["time"] for b in bars] == sorted(b["time"] for b in bars)
            assert set(bars[-1]) == {
                "time",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "macd",
                "hma",
            }
            assert set(bars[-1]["macd"]) == {"value", "signal", "hist", "color"}
            assert set(bars[-1]["hma"]) == {"value", "direction", "color"}
            async with http.ws_connect(url + "ws/SPY") as ws:
                first = await recv(ws)
                assert first["type"] == "snapshot" and first["symbol"] == "SPY"
                assert first["last_candle"]["time"] > bars[-1]["time"]
                for _ in range(5):
                    d = await recv(ws, timeout=30)
                    assert d["type"] == "delta" and d["symbol"] == "SPY"
                    assert d["candle"]["time"] >= first["last_candle"]["time"]
            status, health = await get(http, url + "healthz")
            assert health["source"] == "worker" and health["status"] == "ok"
    finally:
        w.stop()
        assert await asyncio.wait_for(run, 30) == 0
    assert w.edge.server is None  # closed with the worker


async def test_worker_default_serve_skips_a_taken_port() -> None:
    from ttfast.worker import Worker, WorkerConfig

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        cfg = WorkerConfig(symbols=["SPY"], quiet=True, duration=1.0, sim_speed=600.0)
        cfg.serve, cfg.serve_auto = f"127.0.0.1:{port}", True
        w = Worker(cfg)
        assert await w.run() == 0 and w.edge.url is None
        cfg2 = WorkerConfig(symbols=["SPY"], quiet=True, duration=1.0, serve=f"127.0.0.1:{port}")
        assert await Worker(cfg2).run() == 1  # asked for explicitly: an error
    finally:
        blocker.close()


def test_worker_serve_flags() -> None:
    from ttfast.worker import parse_args

    cfg = parse_args(["--symbols", "SPY"])
    assert (cfg.serve, cfg.serve_auto, cfg.history_bars) == ("127.0.0.1:8000", True, 1000)
    assert parse_args(["--symbols", "SPY", "--no-serve"]).serve is None
    cfg = parse_args(["--symbols", "SPY", "--serve", "0.0.0.0:9000", "--history-bars", "50"])
    assert (cfg.serve, cfg.serve_auto, cfg.history_bars) == ("0.0.0.0:9000", False, 50)
    assert parse_args(["--source", "redis", "--redis", "redis://x:1/0"]).serve is None
    with pytest.raises(SystemExit):
        parse_args(["--serve", "host:notaport"])
