"""DxLinkStreamer timers against the local dxLink server: from the first tick of a connection
the handshake timeout, the KEEPALIVE interval and the receive watchdog follow the configured
values and, as soon as the server's SETUP arrives, the negotiated ones (issue 13, item 6).

The streamer runs with its production defaults here (``keepalive_interval`` 30 s,
``receive_timeout`` None = the server's keepaliveTimeout): the defect only showed with them,
because the ticker's first sleep was sized from those defaults (7.5 s) before SETUP arrived.
Wall-time assertions are loose upper bounds, far below the 7.5 s the defect produced.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from ttfast.dxlink.streamer import ConnectionEvent, DxLinkStreamer
from ttfast.sim.dxlink_server import DxLinkServer, Faults


class Clocked:
    """on_event sink that also records time.monotonic() of every event."""

    def __init__(self) -> None:
        self.events: list[tuple[float, ConnectionEvent]] = []

    def __call__(self, ev: ConnectionEvent) -> None:
        self.events.append((time.monotonic(), ev))

    def first(self, kind: str, detail: str = "") -> tuple[float, ConnectionEvent] | None:
        for t, ev in self.events:
            if ev.kind == kind and detail in ev.detail:
                return t, ev
        return None


@asynccontextmanager
async def server(
    faults: Faults | Callable[[int], Faults] | None = None, **kw: Any
) -> AsyncIterator[DxLinkServer]:
    srv = DxLinkServer(faults=faults, seed=5, default_aggregation=0.05, **kw)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def streamer(srv: DxLinkServer, sink: Clocked, **kw: Any) -> DxLinkStreamer:
    async def tokens() -> tuple[str, str]:
        return srv.url, "tok"

    opts: dict[str, Any] = dict(backoff_base=0.01, backoff_max=0.05, connect_timeout=20.0)
    opts.update(kw)
    return DxLinkStreamer(None, tokens, on_event=sink, **opts)


async def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def client_keepalives(srv: DxLinkServer, conn: int) -> int:
    return sum(1 for n, m in srv.received if n == conn and m.get("type") == "KEEPALIVE")


async def test_handshake_timeout_is_the_configured_one_from_the_first_tick() -> None:
    # the first connection's AUTH is never answered (the server keeps sending KEEPALIVEs, so
    # only the handshake timeout can end it); the second connection is normal
    faults = lambda n: Faults(ignore_auth=True) if n == 1 else Faults()  # noqa: E731
    sink = Clocked()
    async with server(faults, keepalive_interval=0.05) as srv:
        s = streamer(srv, sink, handshake_timeout=1.0)
        t0 = time.monotonic()
        async with s:  # open() returns once the second connection is authorized
            pass
    hit = sink.first("watchdog", "handshake timeout")
    assert hit is not None, [e.kind for _, e in sink.events]
    dt = hit[0] - t0
    assert 1.0 <= dt < 5.0, f"handshake timeout after {dt:.2f}s, configured 1.0s"
    assert srv.connection_count == 2


async def test_short_server_keepalive_timeout_respected_from_the_first_tick() -> None:
    # the server wants traffic at least every 1 s (its SETUP says keepaliveTimeout and
    # acceptKeepaliveTimeout 1): the client must send KEEPALIVEs every <= 0.5 s at once, and
    # the server must never have to time the client out
    sink = Clocked()
    async with server(keepalive_timeout=1.0, keepalive_interval=0.2) as srv:
        s = streamer(srv, sink)
        async with s:
            await until(lambda: client_keepalives(srv, 1) >= 3, 6.0, "3 client KEEPALIVEs")
            assert srv.connection_count == 1
            assert not [e for e in srv.errors_sent if e[2] == "TIMEOUT"], list(srv.errors_sent)
            assert sink.first("disconnected") is None


async def test_receive_watchdog_uses_server_keepalive_timeout_from_the_first_tick() -> None:
    # connection 1 goes silent 0.3 s after it was accepted; the server's keepaliveTimeout is
    # 1 s, so the client must give up on it after about 1 s of silence (the defect: 7.5 s)
    faults = lambda n: Faults(silent_after_s=0.3) if n == 1 else Faults()  # noqa: E731
    sink = Clocked()
    async with server(faults, keepalive_timeout=1.0, keepalive_interval=0.2) as srv:
        s = streamer(srv, sink)
        async with s:
            t_conn = sink.first("connected")
            assert t_conn is not None
            await until(lambda: srv.connection_count >= 2, 10.0, "watchdog reconnect")
    hit = sink.first("watchdog", "no message")
    assert hit is not None, [(e.kind, e.detail) for _, e in sink.events]
    dt = hit[0] - t_conn[0]
    assert 0.9 <= dt < 5.0, f"watchdog fired {dt:.2f}s after connecting (server timeout 1 s)"
