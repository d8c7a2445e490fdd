"""An order POST from ``place_order`` to its parsed answer: ttfast's order lane
(`ttfast.rest.lane`) against the same client over aiohttp (``order_lane=False``, what ttfast
used before and what most Python clients do), side by side in one event loop.

The server is a canned loopback responder (a 201 with an order body, no work), so the time is
the client's: building the request, writing it, reading and parsing the answer, and the
client's order rules (tagging, validation, outcome checks), which are the same on both sides.
End to end through a real server and a bot, see bench/bench_bot.py.

    .venv/bin/python -m pytest bench/bench_order_post.py --benchmark-only
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from bench.gatelib import RatioCase
from ttfast.rest import OAuthSession, TastytradeClient
from ttfast.rest import orders as ob
from ttfast.rest.session import AccessToken

ACCT = "5WT00000"
_BODY = json.dumps({"data": {"order": {"id": 7, "status": "Routed"}}, "context": "/x"}).encode()
_HEAD = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
_REPLY = _HEAD % len(_BODY) + _BODY


class _Canned(asyncio.Protocol):
    """Answers every request (head + Content-Length body) with `_REPLY`."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            n = 0
            for line in bytes(self.buf[:end]).split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    n = int(line[15:])
            if len(self.buf) < end + 4 + n:
                return
            del self.buf[: end + 4 + n]
            assert self.transport is not None
            self.transport.write(_REPLY)


class Rig:
    """One loop, one canned server, two clients: over the lane and over aiohttp."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(self.loop.create_server(_Canned, "127.0.0.1", 0))
        port = self.server.sockets[0].getsockname()[1]
        self.clients: dict[str, TastytradeClient] = {}
        for name, lane in (("lane", True), ("aiohttp", False)):
            sess = OAuthSession("s", "r", base_url=f"http://127.0.0.1:{port}")
            sess.set_token(AccessToken("tok", time.time() + 86_400))
            self.clients[name] = TastytradeClient(sess, order_lane=lane)
        self.order = ob.limit_order(
            ob.leg("SPY", 1, ob.OrderAction.BUY_TO_OPEN), "-1.00", external_identifier="ttf-b"
        )
        for name in self.clients:  # connect both (the lane and aiohttp's pool)
            self.place(name)

    def place(self, name: str) -> Any:
        return self.loop.run_until_complete(self.clients[name].place_order(ACCT, self.order))

    def close(self) -> None:
        for c in self.clients.values():
            self.loop.run_until_complete(c.session.close())
        self.server.close()
        self.loop.run_until_complete(self.server.wait_closed())
        self.loop.close()


_RIG: Rig | None = None


def _rig() -> Rig:
    global _RIG
    if _RIG is None:
        import atexit

        _RIG = Rig()
        atexit.register(_RIG.close)
    return _RIG


def _place(name: str) -> Callable[[], object]:
    return lambda: _rig().place(name)


@pytest.mark.parametrize("client", ["lane", "aiohttp"])
def test_order_post(benchmark: Any, client: str) -> None:
    benchmark.group = "order POST: place_order -> parsed answer (canned loopback server)"
    r = benchmark(_place(client))
    assert r.order is not None and r.order.id == 7


GATE_RATIOS = [
    RatioCase(
        "rest.order_post.lane_vs_aiohttp",
        _place("lane"),
        _place("aiohttp"),
        # measured 2.06-2.09 (54 vs 114 us per order, 2026-12-01, 2 cores, load ~1): the
        # floor leaves a quarter of it as margin for a loaded CI machine
        floor=1.5,
        note="place_order over the order lane vs the same client over aiohttp, canned loopback "
        "201: the client's whole cost of one order POST",
    )
]
