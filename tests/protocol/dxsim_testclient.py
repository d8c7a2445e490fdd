"""A deliberately dumb dxLink test client (picows + json) used to probe ``ttfast.sim``'s server.

It decodes nothing on its own beyond JSON: tests look at raw messages and check them against the
protocol facts and the pure market functions.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import picows

# re-exported: the server tests import the clock from here
from ttfast.sim.pricing import ManualClock as ManualClock

SETUP = {
    "type": "SETUP",
    "channel": 0,
    "version": "0.1-DXF-JS/0.3.0",
    "keepaliveTimeout": 60,
    "acceptKeepaliveTimeout": 60,
}

CANDLE_FIELDS = [
    "eventType",
    "eventSymbol",
    "eventTime",
    "eventFlags",
    "index",
    "time",
    "sequence",
    "count",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "bidVolume",
    "askVolume",
    "impVolatility",
    "openInterest",
]


class Closed(Exception):
    pass


class _L(picows.WSListener):
    def __init__(self) -> None:
        self.q: asyncio.Queue[Any] = asyncio.Queue()
        self.close_code: int | None = None
        self.disconnected = asyncio.Event()
        self.raw: list[str] = []
        self.arrivals: list[float] = []  # loop time of each TEXT frame (parallel to raw)

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if frame.msg_type == picows.WSMsgType.TEXT:
            text = frame.get_payload_as_utf8_text()
            self.raw.append(text)
            self.arrivals.append(asyncio.get_running_loop().time())
            self.q.put_nowait(json.loads(text))
        elif frame.msg_type == picows.WSMsgType.CLOSE:
            self.close_code = frame.get_close_code().value
            transport.disconnect()

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self.disconnected.set()
        self.q.put_nowait(Closed())


class Client:
    def __init__(self, transport: picows.WSTransport, listener: _L) -> None:
        self.tr = transport
        self.l = listener
        self.log: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, url: str) -> Client:
        tr, lst = await picows.ws_connect(_L, url)
        assert isinstance(lst, _L)
        return cls(tr, lst)

    def send(self, msg: dict[str, Any] | str | bytes) -> None:
        if isinstance(msg, dict):
            msg = json.dumps(msg)
        if isinstance(msg, str):
            msg = msg.encode()
        self.tr.send(picows.WSMsgType.TEXT, msg)

    async def recv(self, timeout: float = 2.0) -> dict[str, Any]:
        m = await asyncio.wait_for(self.l.q.get(), timeout)
        if isinstance(m, Closed):
            self.l.q.put_nowait(m)
            raise m
        self.log.append(m)
        return m  # type: ignore[no-any-return]

    async def recv_type(self, mtype: str, timeout: float = 2.0) -> dict[str, Any]:
        """Next message of ``mtype`` (others are kept in ``log``)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            m = await self.recv(max(0.01, end - loop.time()))
            if m["type"] == mtype:
                return m

    async def drain(self, seconds: float) -> list[dict[str, Any]]:
        """Everything that arrives within ``seconds`` (stops early on close)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        out = []
        while (left := end - loop.time()) > 0:
            try:
                out.append(await self.recv(left))
            except (TimeoutError, Closed):
                break
        return out

    async def handshake(self, token: str = "tok") -> None:
        self.send(SETUP)
        assert (await self.recv())["type"] == "SETUP"
        assert (await self.recv())["state"] == "UNAUTHORIZED"
        self.send({"type": "AUTH", "channel": 0, "token": token})
        m = await self.recv()
        assert m["state"] == "AUTHORIZED", m

    async def open_feed(
        self,
        channel: int = 1,
        contract: str = "AUTO",
        fields: dict[str, list[str]] | None = None,
        agg: float = 0.0,
        fmt: str = "COMPACT",
    ) -> dict[str, Any]:
        self.send(
            {
                "type": "CHANNEL_REQUEST",
                "channel": channel,
                "service": "FEED",
                "parameters": {"contract": contract},
            }
        )
        m = await self.recv_type("CHANNEL_OPENED")
        assert m["channel"] == channel
        setup: dict[str, Any] = {
            "type": "FEED_SETUP",
            "channel": channel,
            "acceptAggregationPeriod": agg,
            "acceptDataFormat": fmt,
        }
        if fields is not None:
            setup["acceptEventFields"] = fields
        self.send(setup)
        return await self.recv_type("FEED_CONFIG")

    def subscribe(self, channel: int, *entries: dict[str, Any], reset: bool = False) -> None:
        msg: dict[str, Any] = {
            "type": "FEED_SUBSCRIPTION",
            "channel": channel,
            "add": list(entries),
        }
        if reset:
            msg["reset"] = True
        self.send(msg)

    async def close(self) -> None:
        if not self.l.disconnected.is_set():
            self.tr.send_close(picows.WSCloseCode.OK)
            self.tr.disconnect()
        await asyncio.wait_for(self.l.disconnected.wait(), 2.0)


def decode_compact(data: list[Any], layouts: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Generic COMPACT decoder (spec §4.4) into dicts; NaN/Infinity strings -> float."""
    out = []
    for i in range(0, len(data), 2):
        t, vals = data[i], data[i + 1]
        f = layouts[t]
        assert len(vals) % len(f) == 0, (t, len(vals), f)
        for k in range(0, len(vals), len(f)):
            ev = dict(zip(f, vals[k : k + len(f)], strict=True))
            ev["_type"] = t
            for key, v in ev.items():
                if v in ("NaN", "Infinity", "-Infinity"):
                    ev[key] = float(v)
            out.append(ev)
    return out


def isnan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)
