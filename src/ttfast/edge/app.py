"""The edge's HTTP + WebSocket server (aiohttp, one port): routes, auth, Origin check, limits.

Routes (JSON; times epoch ms; payloads are the worker's Redis payloads byte for byte):

* ``GET /`` the chart page, ``GET /static/{name}`` its files (`ttfast.edge.assets`);
* ``GET /snapshot/{symbol}``, ``GET /history/{symbol}?bars=N``, ``GET /symbols``,
  ``GET /healthz``, ``GET /metrics`` (Prometheus text);
* ``WS /ws/{symbol}`` (the snapshot first, then every delta in order) and ``WS /ws``
  (``{"subscribe": [..]}`` / ``{"unsubscribe": [..]}``, acknowledged by ``{"type":
  "subscribed"|"unsubscribed","symbols":[..]}``; each subscribed symbol's snapshot follows).

Bad requests get a JSON ``{"error": ...}`` (400 bad symbol or ``bars``, 401 without the token,
403 for a foreign WebSocket Origin, 404 unknown, 503 over ``max_clients`` or while Redis cannot
answer a history read); bad WebSocket messages an ``{"type":"error","error":...}`` message, and
after ``max_bad_messages`` of them the connection is closed (1008). Every refusal is counted.

WebSocket frames to clients are written by the `Hub` (framed once, written straight to the
connection's transport, bounded per-client queue, conflation); aiohttp only does the handshake,
reads client messages (at most ``max_message`` bytes, else it closes with 1009), answers pings
and closes. The data source is a `Source`: `ttfast.edge.local_feed.LocalFeed` inside the
worker, `ttfast.edge.redis_feed.RedisFeed` in ``ttfast-edge`` (`ttfast.edge.cluster_feed.
ClusterFeed` with a ``redis+cluster://`` URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from aiohttp import WSMsgType, web

from ttfast.edge.history import DEFAULT_BARS, MAX_BARS
from ttfast.edge.hub import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_UNKNOWN_SYMBOL,
    Client,
    Hub,
    HubLimits,
)
from ttfast.edge.redis_feed import FeedUnavailable
from ttfast.sinks import LogLimiter
from ttfast.symbols import validate_symbol

__all__ = ["EdgeConfig", "EdgeServer", "Source", "make_app"]

log = logging.getLogger("ttfast.edge")

JSON: Final = "application/json"
_PUBLIC: Final = ("/", "/healthz")  # no token needed (and /static/...: the page's files)


class Source(Protocol):
    """Where the edge's data comes from (the worker in-process, or Redis)."""

    kind: str  # "worker" | "redis"

    def redis_state(self) -> str | None: ...

    def symbols(self) -> list[str]: ...

    async def snapshots(self, names: list[str]) -> dict[str, bytes | None]: ...

    async def history(self, name: str, bars: int) -> tuple[str, str | None, list[bytes]] | None: ...

    def metrics(self) -> list[tuple[str, str, str, float]]: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclass
class EdgeConfig:
    host: str = "127.0.0.1"
    port: int = 8000  # 0: any free port (see EdgeServer.url)
    token: str | None = None  # bearer token for data endpoints and WebSockets
    allow_origins: tuple[str, ...] = ()  # WebSocket Origins allowed besides the server's own
    max_message: int = 4096  # bytes per client WebSocket message
    max_clients: int = 10_000
    max_bad_messages: int = 20  # per connection, then close 1008
    heartbeat: float = 30.0  # WebSocket ping interval (s); a peer silent for it is dropped
    close_timeout: float = 2.0  # close handshake; then the socket is dropped
    pump_interval: float = 0.02  # how often behind clients are looked at (s)
    limits: HubLimits = field(default_factory=HubLimits)


@dataclass
class EdgeStats:
    http_requests: int = 0
    unauthorized: int = 0  # requests refused for a missing or wrong token
    bad_requests: int = 0  # 400s (bad symbol, bad bars)
    origin_refused: int = 0  # WebSocket upgrades from a foreign Origin
    clients_refused: int = 0  # WebSocket upgrades over max_clients
    errors: int = 0  # unexpected exceptions in a handler (500)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _json(obj: object, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(obj, separators=(",", ":")).encode(), status=status, content_type=JSON
    )


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _message(kind: str, **fields: object) -> bytes:
    return json.dumps({"type": kind, **fields}, separators=(",", ":")).encode()


def _check_name(name: str) -> str | None:
    """Why `name` cannot be a symbol name (the worker's rule: ttfast.symbols), or None."""
    return validate_symbol(name)


class EdgeServer:
    """The aiohttp app, the hub and the source, bound to one port (`start` / `close`)."""

    def __init__(self, source: Source, hub: Hub | None = None, cfg: EdgeConfig | None = None):
        self.cfg = cfg or EdgeConfig()
        self.hub = hub or Hub(self.cfg.limits)
        self.source = source
        self.stats = EdgeStats()
        self.started = time.monotonic()
        self.app = make_app(self)
        self._runner: web.AppRunner | None = None
        self._pump: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._warn = LogLimiter(log)
        self.port = self.cfg.port
        self._origins: set[str] = set()

    @property
    def url(self) -> str:
        host = self.cfg.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    async def start(self) -> str:
        """Start the source and bind; returns the URL. Raises OSError if the port is taken."""
        await self.source.start()
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.cfg.host, self.cfg.port, backlog=1024)
            await site.start()
        except BaseException:
            await runner.cleanup()
            await self.source.close()
            raise
        self._runner = runner
        if runner.addresses:
            self.port = int(runner.addresses[0][1])
        self._origins = self._allowed_origins()
        self._pump = asyncio.create_task(self._pump_loop(), name="ttfast-edge-pump")
        log.info("ttfast.edge serving %s (source: %s)", self.url, self.source.kind)
        return self.url

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        self.hub.close_all(CLOSE_GOING_AWAY, "server shutdown")
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=self.cfg.close_timeout + 1)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.source.close()

    async def _pump_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.pump_interval)
            try:
                self.hub.pump()
            except Exception:  # a bug guard: the pump must keep running
                self.stats.errors += 1
                log.exception("edge pump failed")

    def _allowed_origins(self) -> set[str]:
        hosts = {"127.0.0.1", "localhost", "[::1]"}
        h = self.cfg.host
        if h not in ("0.0.0.0", "::", ""):
            hosts.add(f"[{h}]" if ":" in h else h)
        out = {f"{scheme}://{host}:{self.port}" for host in hosts for scheme in ("http", "https")}
        return out | {o.rstrip("/") for o in self.cfg.allow_origins}

    # -- checks --------------------------------------------------------------------------------
    def authorized(self, request: web.Request) -> bool:
        token = self.cfg.token
        if not token:
            return True
        got = request.query.get("token")
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            got = auth[7:].strip()
        return got is not None and hmac.compare_digest(got.encode(), token.encode())

    def origin_ok(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:  # not a browser
            return True
        origin = origin.rstrip("/")
        if origin in self._origins:
            return True
        # bound to a non-loopback address: the page's own origin (same Host) is fine too
        # (never on loopback, where that would let a DNS-rebinding page in)
        host = request.headers.get("Host")
        return bool(
            host
            and not _is_loopback(self.cfg.host)
            and origin in (f"http://{host}", f"https://{host}")
        )

    # -- WebSocket kick (the hub's callback) ---------------------------------------------------
    def _kicker(
        self, ws: web.WebSocketResponse, transport: asyncio.Transport
    ) -> Callable[[int, str], None]:
        def kick(code: int, reason: str) -> None:
            task = asyncio.get_running_loop().create_task(
                self._close_ws(ws, transport, code, reason)
            )
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

        return kick

    async def _close_ws(
        self, ws: web.WebSocketResponse, transport: asyncio.Transport, code: int, reason: str
    ) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                ws.close(code=code, message=reason.encode(), drain=False),
                self.cfg.close_timeout + 1,
            )
        # the close frame sits behind whatever the peer has not taken yet: give it close_timeout
        # more to take it, then drop the connection (a peer that never reads never would)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.close_timeout
        while transport.get_write_buffer_size() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if not transport.is_closing() or transport.get_write_buffer_size():
            with contextlib.suppress(Exception):
                transport.abort()


# -- the aiohttp application ---------------------------------------------------------------------
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(edge: EdgeServer) -> web.Application:
    cfg = edge.cfg
    hub = edge.hub
    source = edge.source

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        edge.stats.http_requests += 1
        path = request.path
        if not (path in _PUBLIC or path.startswith("/static/")) and not edge.authorized(request):
            edge.stats.unauthorized += 1
            resp = _error(401, "unauthorized")
            resp.headers["WWW-Authenticate"] = "Bearer"
            return resp
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status == 101 or exc.status < 400:
                raise
            return _error(exc.status, exc.reason)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:
            edge.stats.errors += 1
            edge._warn.log("500", logging.ERROR, "edge: error handling %s: %r", path, exc)
            log.debug("edge: error handling %s", path, exc_info=True)
            return _error(500, "internal error")

    def name_or_400(request: web.Request) -> str | web.Response:
        name = request.match_info["symbol"]
        why = _check_name(name)
        if why is not None:
            edge.stats.bad_requests += 1
            return _error(400, why)
        return name

    async def index(request: web.Request) -> web.StreamResponse:
        try:
            from ttfast.edge import assets
        except ImportError:
            return web.Response(body=_PLACEHOLDER, content_type="text/html", charset="utf-8")
        return web.Response(body=assets.index_html(), content_type="text/html", charset="utf-8")

    async def static(request: web.Request) -> web.StreamResponse:
        try:
            from ttfast.edge import assets
        except ImportError:
            return _error(404, "not found")
        got = assets.static_file(request.match_info["name"])
        if got is None:
            return _error(404, "not found")
        body, ctype = got
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = ctype
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    async def snapshot(request: web.Request) -> web.StreamResponse:
        name = name_or_400(request)
        if isinstance(name, web.Response):
            return name
        snap = (await source.snapshots([name])).get(name)
        if snap is None:
            return _error(404, f"unknown symbol {name!r}")
        return web.Response(body=snap, content_type=JSON)

    async def history(request: web.Request) -> web.StreamResponse:
        name = name_or_400(request)
        if isinstance(name, web.Response):
            return name
        raw = request.query.get("bars", str(DEFAULT_BARS))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_BARS:
            edge.stats.bad_requests += 1
            return _error(400, f"bars must be an integer in [1, {MAX_BARS}]")
        try:
            got = await source.history(name, int(raw))
        except FeedUnavailable as exc:
            return _error(503, f"history unavailable: {exc}")
        if got is None:
            return _error(404, f"unknown symbol {name!r}")
        symbol, period, bars = got
        head = json.dumps({"symbol": symbol, "period": period}, separators=(",", ":"))
        body = b"".join((head[:-1].encode(), b',"bars":[', b",".join(bars), b"]}"))
        return web.Response(body=body, content_type=JSON)

    async def symbols(request: web.Request) -> web.StreamResponse:
        return _json({"symbols": source.symbols()})

    async def healthz(request: web.Request) -> web.StreamResponse:
        redis = source.redis_state()
        return _json(
            {
                "status": "ok" if redis in (None, "up") else "degraded",
                "source": source.kind,
                "redis": redis,
                "clients": hub.clients,
                "symbols": len(source.symbols()),
            }
        )

    async def metrics(request: web.Request) -> web.StreamResponse:
        s, e = hub.stats, edge.stats
        rows: list[tuple[str, str, str, float]] = [
            ("clients", "gauge", "connected WebSocket clients", hub.clients),
            ("clients_behind", "gauge", "clients currently behind (queueing)", hub.behind),
            ("connections_total", "counter", "WebSocket connections accepted", s.connections),
            ("deltas_in_total", "counter", "delta payloads fed to the hub", s.deltas_in),
            ("messages_sent_total", "counter", "messages written to clients", s.messages_sent),
            ("messages_conflated_total", "counter", "forming deltas conflated", s.conflated),
            ("messages_dropped_total", "counter", "messages never sent", s.dropped),
            ("slow_disconnects_total", "counter", "slow clients closed", s.slow_disconnects),
            ("bad_messages_total", "counter", "client messages refused", s.bad_messages),
            ("http_requests_total", "counter", "HTTP requests and upgrades", e.http_requests),
            ("unauthorized_total", "counter", "requests without the token", e.unauthorized),
            ("bad_requests_total", "counter", "requests answered 400", e.bad_requests),
            ("origin_refused_total", "counter", "foreign WebSocket Origins", e.origin_refused),
            ("clients_refused_total", "counter", "upgrades over max_clients", e.clients_refused),
            ("errors_total", "counter", "unexpected handler errors", e.errors),
            ("symbols", "gauge", "symbols known", len(source.symbols())),
            ("uptime_seconds", "gauge", "seconds since start", time.monotonic() - edge.started),
        ]
        rows += source.metrics()
        lines = []
        for name, kind, help_, value in rows:
            v = float(value)
            text = str(int(v)) if v.is_integer() else repr(v) if math.isfinite(v) else "NaN"
            lines += [
                f"# HELP ttfast_edge_{name} {help_}",
                f"# TYPE ttfast_edge_{name} {kind}",
                f"ttfast_edge_{name} {text}",
            ]
        return web.Response(
            text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8"
        )

    async def ws_one(request: web.Request) -> web.StreamResponse:
        name = name_or_400(request)
        if isinstance(name, web.Response):
            return name
        return await websocket(request, name)

    async def ws_many(request: web.Request) -> web.StreamResponse:
        return await websocket(request, None)

    async def websocket(request: web.Request, first: str | None) -> web.StreamResponse:
        if not edge.origin_ok(request):
            edge.stats.origin_refused += 1
            return _error(403, "origin not allowed")
        if hub.clients >= cfg.max_clients:
            edge.stats.clients_refused += 1
            return _error(503, "too many clients")
        ws = web.WebSocketResponse(
            max_msg_size=cfg.max_message,
            compress=False,
            heartbeat=cfg.heartbeat,
            timeout=cfg.close_timeout,
        )
        await ws.prepare(request)
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check here
        transport = request.transport
        if transport is None:
            return ws
        client = hub.add_client(transport, edge._kicker(ws, transport))
        bad = 0
        try:
            if first is not None:
                found = await subscribe(client, [first], ack=False)
                if not found:
                    hub.send(client, _message("error", error=f"unknown symbol {first!r}"))
                    await ws.close(code=CLOSE_UNKNOWN_SYMBOL, message=b"unknown symbol")
                    return ws
            async for msg in ws:
                if client.closed:
                    break
                if msg.type == WSMsgType.TEXT:
                    try:
                        why = await on_text(client, msg.data)
                    except Exception as exc:  # a bug guard: count it, keep the connection
                        edge.stats.errors += 1
                        edge._warn.log("ws", logging.ERROR, "edge: client message: %r", exc)
                        why = "internal error"
                else:
                    why = (
                        "binary messages are not accepted" if msg.type == WSMsgType.BINARY else None
                    )
                if why is not None:
                    bad += 1
                    hub.stats.bad_messages += 1
                    hub.send(client, _message("error", error=why))
                    if bad >= cfg.max_bad_messages:
                        hub.remove_client(client)
                        await ws.close(code=CLOSE_POLICY, message=b"too many bad messages")
                        break
        finally:
            hub.remove_client(client)
        return ws

    async def subscribe(client: Client, names: list[str], *, ack: bool) -> list[str]:
        """Hold-subscribe, read the snapshots, ack, then release (snapshot + held deltas)."""
        held = [n for n in names if n not in client.subs and hub.subscribe(client, n, hold=True)]
        over = [n for n in names if n not in client.subs]
        snaps = await source.snapshots(held) if held else {}
        found = [n for n in names if n in client.subs and (n not in snaps or snaps[n])]
        if ack:
            hub.send(client, _message("subscribed", symbols=found))
        for n in held:
            hub.release(client, n, snaps.get(n))
        unknown = [n for n in held if snaps.get(n) is None]
        if ack and unknown:
            hub.send(client, _message("error", error=f"unknown symbol(s): {', '.join(unknown)}"))
        if over:
            hub.send(
                client,
                _message("error", error=f"subscription limit {cfg.limits.max_symbols} reached"),
            )
        return found

    async def on_text(client: Client, text: str) -> str | None:
        """Handle one client message; the reason it is refused, or None."""
        try:
            msg: Any = json.loads(text)
        except (ValueError, RecursionError):
            return "invalid JSON"
        if not isinstance(msg, dict) or len(msg) != 1:
            return 'expected {"subscribe": [symbols]} or {"unsubscribe": [symbols]}'
        ((op, names),) = msg.items()
        if op not in ("subscribe", "unsubscribe"):
            return f"unknown operation {str(op)[:40]!r}"
        if not isinstance(names, list) or not names or len(names) > cfg.limits.max_symbols:
            return f"{op}: expected a list of 1 to {cfg.limits.max_symbols} symbols"
        for n in names:
            why = _check_name(n) if isinstance(n, str) else "symbols must be strings"
            if why is not None:
                return f"{op}: {why}"
        names = list(dict.fromkeys(names))
        if op == "subscribe":
            await subscribe(client, names, ack=True)
        else:
            gone = [n for n in names if hub.unsubscribe(client, n)]
            hub.send(client, _message("unsubscribed", symbols=gone))
        return None

    app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/symbols", symbols)
    app.router.add_get("/snapshot/{symbol:.+}", snapshot)
    app.router.add_get("/history/{symbol:.+}", history)
    app.router.add_get("/ws", ws_many)
    app.router.add_get("/ws/{symbol:.+}", ws_one)
    return app


_PLACEHOLDER: Final = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>ttfast edge</title></head>
<body><h1>ttfast edge</h1>
<p>The chart page is not installed. Data: <a href="symbols">symbols</a>,
<code>snapshot/SYMBOL</code>, <code>history/SYMBOL?bars=N</code>, <code>ws/SYMBOL</code>,
<a href="healthz">healthz</a>, <a href="metrics">metrics</a>.</p></body></html>
"""
