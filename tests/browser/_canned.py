"""A canned stand-in for ttfast.edge: the page's assets plus /symbols, /history/{symbol} and /ws
with the edge's payloads, on deterministic bars (two sine waves, so every MACD histogram colour
and both HMA directions occur) whose indicators come from the compiled core.

A clock task moves each symbol's forming bar every `tick` seconds (deltas with final=false) and
closes it every `ticks_per_bar` ticks (final=true), then a new bar forms. `drop_all()` closes
every WebSocket from the server side (for the reconnect test). With a `token`, every data
request needs ``?token=`` (the page and /static don't).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from ttfast._core import HIST_COLORS, HMA_DOWN_COLOR, HMA_UP_COLOR
from ttfast._core.indicators import hma as batch_hma
from ttfast._core.indicators import macd as batch_macd
from ttfast.edge import assets

PERIOD = "5m"
PERIOD_MS = 300_000
T0_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


@dataclass
class Series:
    symbol: str
    o: np.ndarray
    h: np.ndarray
    low: np.ndarray
    c: np.ndarray
    v: np.ndarray
    macd: np.ndarray
    signal: np.ndarray
    hist: np.ndarray
    hma: np.ndarray
    forming: int  # index of the forming bar
    tick: int = 0

    @classmethod
    def make(cls, symbol: str, base: float, n: int, history: int) -> Series:
        i = np.arange(n, dtype=np.float64)
        rng = np.random.default_rng(zlib.crc32(symbol.encode()))
        c = (
            base
            + base * 0.01 * np.sin(2 * np.pi * i / 90)
            + base * 0.004 * np.sin(2 * np.pi * i / 17)
            + rng.normal(0, base * 0.0008, n)
        )
        o = np.concatenate([[c[0]], c[:-1]])
        spread = np.abs(rng.normal(0, base * 0.0015, n))
        h = np.maximum(o, c) + spread
        low = np.minimum(o, c) - spread
        v = rng.integers(1_000, 50_000, n).astype(np.float64)
        m, s, hist = batch_macd(c)
        return cls(symbol, o, h, low, c, v, m, s, hist, batch_hma(c, 20), forming=history - 1)

    def time(self, i: int) -> int:
        return T0_MS + i * PERIOD_MS

    def _candle(self, i: int, close: float | None = None) -> dict[str, Any]:
        cl = float(self.c[i]) if close is None else close
        return {
            "time": self.time(i),
            "open": float(self.o[i]),
            "high": max(float(self.h[i]), cl),
            "low": min(float(self.low[i]), cl),
            "close": cl,
            "volume": float(self.v[i]),
        }

    def _indicators(self, i: int) -> dict[str, Any]:
        hist, prev = self.hist[i], self.hist[i - 1] if i > 0 else math.nan
        if math.isnan(hist):
            color = None
        elif hist >= 0:
            color = HIST_COLORS[0] if hist > prev else HIST_COLORS[1]
        else:
            color = HIST_COLORS[2] if hist > prev else HIST_COLORS[3]
        hm, hprev = self.hma[i], self.hma[i - 1] if i > 0 else math.nan
        direction = None
        if not (math.isnan(hm) or math.isnan(hprev)) and hm != hprev:
            direction = "up" if hm > hprev else "down"
        hcolor = {"up": HMA_UP_COLOR, "down": HMA_DOWN_COLOR}.get(direction or "")
        return {
            "macd": {
                "value": _num(self.macd[i]),
                "signal": _num(self.signal[i]),
                "hist": _num(hist),
                "color": color,
            },
            "hma": {"value": _num(hm), "direction": direction, "color": hcolor},
        }

    def forming_close(self) -> float:
        i = self.forming
        frac = 0.25 + 0.75 * math.sin(self.tick * 0.9) ** 2
        return float(self.o[i] + (self.c[i] - self.o[i]) * frac)

    def history(self, bars: int) -> list[dict[str, Any]]:
        lo = max(0, self.forming + 1 - bars)
        out = [{**self._candle(i), **self._indicators(i)} for i in range(lo, self.forming)]
        out.append(
            {**self._candle(self.forming, self.forming_close()), **self._indicators(self.forming)}
        )
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            "type": "snapshot",
            "symbol": self.symbol,
            "period": PERIOD,
            "last_candle": self._candle(self.forming, self.forming_close()),
            **self._indicators(self.forming),
            "bars": self.forming + 1,
        }

    def delta(self, i: int, final: bool) -> dict[str, Any]:
        close = None if final else self.forming_close()
        return {
            "type": "delta",
            "symbol": self.symbol,
            "period": PERIOD,
            "candle": self._candle(i, close),
            **self._indicators(i),
            "final": final,
        }


@dataclass
class CannedEdge:
    symbols: dict[str, float] = field(default_factory=lambda: {"SPY": 500.0, "QQQ": 400.0})
    token: str | None = None
    history_bars: int = 400
    tick: float = 0.1
    ticks_per_bar: int = 8
    url: str = ""
    refused: int = 0  # data requests without the right token
    requests: list[str] = field(default_factory=list)
    ws_received: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.series = {
            s: Series.make(s, base, self.history_bars + 2000, self.history_bars)
            for s, base in self.symbols.items()
        }
        self._subs: dict[web.WebSocketResponse, set[str]] = {}
        self._runner: web.AppRunner | None = None
        self._clock: asyncio.Task[None] | None = None

    # -- HTTP ------------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        ok = self.token is None or request.query.get("token") == self.token
        if not ok:
            self.refused += 1
        return ok

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(body=assets.index_html(), content_type="text/html", charset="utf-8")

    async def _static(self, request: web.Request) -> web.Response:
        found = assets.static_file(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        body, ctype = found
        return web.Response(body=body, headers={"Content-Type": ctype})

    async def _symbols(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        if not self._authorized(request):
            raise web.HTTPUnauthorized()
        return web.json_response({"symbols": list(self.series)})

    async def _history(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        if not self._authorized(request):
            raise web.HTTPUnauthorized()
        s = self.series.get(request.match_info["symbol"])
        if s is None:
            raise web.HTTPNotFound()
        bars = int(request.query.get("bars", "500"))
        return web.json_response({"symbol": s.symbol, "period": PERIOD, "bars": s.history(bars)})

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        if not self._authorized(request):
            raise web.HTTPUnauthorized()
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        subs: set[str] = set()
        self._subs[ws] = subs
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                req = json.loads(msg.data)
                self.ws_received.append(req)
                for sym in req.get("unsubscribe", []):
                    subs.discard(sym)
                new = [s for s in req.get("subscribe", []) if s in self.series]
                if new:
                    subs.update(new)
                    await ws.send_json({"type": "subscribed", "symbols": sorted(subs)})
                    for sym in new:
                        await ws.send_json(self.series[sym].snapshot())
        finally:
            self._subs.pop(ws, None)
        return ws

    # -- clock -----------------------------------------------------------------------------
    async def _broadcast(self, sym: str, payload: dict[str, Any]) -> None:
        text = json.dumps(payload)
        for ws, subs in list(self._subs.items()):
            if sym in subs and not ws.closed:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(text)

    async def _run_clock(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            for sym, s in self.series.items():
                s.tick += 1
                if s.tick % self.ticks_per_bar == 0:
                    await self._broadcast(sym, s.delta(s.forming, final=True))
                    s.forming += 1
                await self._broadcast(sym, s.delta(s.forming, final=False))

    async def drop_all(self) -> int:
        """Close every WebSocket from the server side; returns how many."""
        socks = list(self._subs)
        for ws in socks:
            await ws.close(code=1012, message=b"restart")
        return len(socks)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/symbols", self._symbols)
        app.router.add_get("/history/{symbol}", self._history)
        app.router.add_get("/ws", self._ws)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._clock = asyncio.create_task(self._run_clock())

    async def stop(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock
        await self.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()
