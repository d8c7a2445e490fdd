"""ttfast._wsclient.ReconnectingClient on its own: a minimal client over a local picows server.

The client is ready at its first frame; the server says ``hello`` on connect (or not), and may
hang up after it. What is checked: open() waits for ready and fails (closing) when the client
gives up, the reconnect loop (backoff, max attempts, counters, events), the handshake timeout
and the receive watchdog, close().
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import Enum
from typing import Any

import picows
import pytest

from ttfast._wsclient import ReconnectingClient, sleep_until_woken


class St(Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"
    FAILED = "failed"


class Stats:
    def __init__(self) -> None:
        self.reconnects = 0
        self.last_message_at = 0.0
        self.frames = 0


class Conn(picows.WSListener):
    def __init__(self, client: Client) -> None:
        self.c = client
        self.transport: picows.WSTransport | None = None
        self.close_code: int | None = None
        self.dead = False

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if frame.msg_type is picows.WSMsgType.CLOSE:
            transport.disconnect()
            return
        c = self.c
        if self is not c._conn:
            return
        c.stats.frames += 1
        c.stats.last_message_at = time.monotonic()
        c._got_data = True
        if c.state is not St.CONNECTED:
            c._connected_at = time.monotonic()
            c._set_state(St.CONNECTED, "connected")
            c._ready.set()

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self.c._on_disconnected(self)


class Client(ReconnectingClient[St, Conn]):
    _State = St
    _NAME = "test client"
    _TASK = "test-client"
    _HANDSHAKE_TIMEOUT = ("no hello", "hello timeout")
    stats: Stats

    def __init__(self, url: str, *, receive_timeout: float = 5.0, **kw: Any) -> None:
        opts: dict[str, Any] = dict(
            handshake_timeout=2.0,
            backoff_base=0.01,
            backoff_max=0.02,
            stable_after=10.0,
            max_reconnect_attempts=None,
            connect_timeout=5.0,
            max_frame_size=1 << 20,
        )
        opts.update(kw)
        self.stats = Stats()
        super().__init__(**opts)
        self.url = url
        self.receive_timeout = receive_timeout
        self.token_error: Exception | None = None
        self.log: list[tuple[str, Any, str]] = []
        self.made: list[str] = []
        self.lost = 0

    def _event(self, kind: Any, detail: str = "", error: BaseException | None = None) -> None:
        self.log.append((kind, self.state, detail))

    def _set_state(self, state: St, kind: Any, detail: str = "", **kw: Any) -> None:
        self.state = state
        if state is not St.CONNECTED:
            self._ready.clear()
        self.log.append((kind, state, detail))

    async def open(self) -> None:
        await self._open()

    async def close(self) -> None:
        await self._shutdown()
        self._set_state(St.CLOSED, "closed")

    async def _begin_connection(self) -> tuple[str, str]:
        if self.token_error is not None:
            raise self.token_error
        return self.url, "tok"

    def _new_conn(self) -> Conn:
        return Conn(self)

    def _connection_made(self, conn: Conn, token: str) -> list[asyncio.Task[None]]:
        self.made.append(token)
        return [asyncio.get_running_loop().create_task(self._ticker(conn))]

    def _connection_lost(self) -> None:
        self.lost += 1

    async def _ticker(self, conn: Conn) -> None:
        started = time.monotonic()
        while not conn.dead:
            now = time.monotonic()
            watch = self._watchdog(conn, started, now, self.receive_timeout)
            if watch is None:
                return
            await asyncio.sleep(max(0.001, watch - now))

    def kinds(self) -> list[str]:
        return [k for k, _, _ in self.log]


class Srv(picows.WSListener):
    def __init__(self, hello: bool, hang_up: bool) -> None:
        self.hello = hello
        self.hang_up = hang_up

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        if self.hello:
            transport.send(picows.WSMsgType.TEXT, b"hello")
        if self.hang_up:  # a little later: open() sees the client ready first
            asyncio.get_running_loop().call_later(0.1, self.bye, transport)

    def bye(self, transport: picows.WSTransport) -> None:
        transport.send_close(picows.WSCloseCode.GOING_AWAY)
        transport.disconnect()


@asynccontextmanager
async def server(
    *, hello: bool = True, hang_up: bool = False
) -> AsyncIterator[tuple[str, list[int]]]:
    accepted: list[int] = []

    def factory(_req: picows.WSUpgradeRequest) -> Srv:
        accepted.append(1)
        return Srv(hello, hang_up)

    srv = await picows.ws_create_server(factory, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/", accepted
    finally:
        srv.close()
        await srv.wait_closed()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_open_waits_for_ready_and_close_ends() -> None:
    async with server() as (url, _):
        c = Client(url)
        assert c.state.value == "idle"
        await c._open()
        assert c.state is St.CONNECTED and c._ready.is_set()
        assert c.made == ["tok"]
        await c._open()  # already running: nothing
        assert c.made == ["tok"]
        await c.close()
        assert c.state.value == "closed"
        assert c._runner is None and c._conn is None
        assert c.lost == 1
        assert c.kinds() == ["connecting", "connected", "closed"]
        assert c.stats.reconnects == 0


async def test_async_with() -> None:
    async with server() as (url, _):
        async with Client(url) as c:
            assert isinstance(c, Client) and c.state is St.CONNECTED
        assert c.kinds()[-1] == "closed"


async def test_reconnects_after_a_hang_up_and_resets_the_backoff_after_data() -> None:
    async with server(hang_up=True) as (url, accepted):
        c = Client(url)
        await c._open()
        await until(lambda: c.stats.reconnects >= 2 and len(accepted) >= 3)
        await c.close()
    kinds = c.kinds()
    assert kinds[:4] == ["connecting", "connected", "disconnected", "reconnecting"]
    assert len(accepted) >= 3
    assert ("disconnected", St.RECONNECTING, "socket closed") in c.log
    # every connection delivered data: the backoff starts over each time
    assert c.backoff.attempt <= 1


async def test_gives_up_after_max_reconnect_attempts() -> None:
    c = Client(f"ws://127.0.0.1:{free_port()}/", max_reconnect_attempts=2)
    with pytest.raises(ConnectionError, match="test client failed: "):
        await c._open()
    kinds = c.kinds()
    assert kinds.count("connect_error") == 3
    assert "failed" in kinds
    assert kinds[-1] == "closed"  # open() closed it
    assert c.stats.reconnects == 2
    assert isinstance(c._last_error, OSError)
    with pytest.raises(ConnectionError, match="test client is not running"):
        await c._wait_ready()


async def test_token_error_is_reported_and_retried() -> None:
    async with server() as (url, _):
        c = Client(url, max_reconnect_attempts=1)
        c.token_error = RuntimeError("no token")
        with pytest.raises(ConnectionError, match="no token"):
            await c._open()
        assert c.kinds().count("token_error") == 2
        assert c.made == []


async def test_handshake_timeout() -> None:
    async with server(hello=False) as (url, accepted):
        c = Client(url, handshake_timeout=0.2, connect_timeout=0.4)
        with pytest.raises(TimeoutError):
            await c._open()
    assert ("watchdog", St.CONNECTING, "no hello") in c.log
    assert any(k == "disconnected" and d == "hello timeout" for k, _, d in c.log)
    assert c.state is St.CLOSED
    assert len(accepted) >= 1


async def test_receive_watchdog() -> None:
    async with server() as (url, _):
        c = Client(url, receive_timeout=0.2)
        await c._open()
        await until(lambda: "disconnected" in c.kinds())
        await c.close()
    watch = [d for k, _, d in c.log if k == "watchdog"]
    assert watch and watch[0].startswith("no message for ")
    assert any(k == "disconnected" and d == "receive watchdog" for k, _, d in c.log)


async def test_sleep_until_woken() -> None:
    wake = asyncio.Event()
    t0 = time.monotonic()
    await sleep_until_woken(wake, 0.05)
    assert time.monotonic() - t0 >= 0.04
    wake.set()  # cleared first: a stale wake-up does not end the sleep
    t0 = time.monotonic()
    task = asyncio.ensure_future(sleep_until_woken(wake, 5.0))
    await asyncio.sleep(0.02)
    assert not task.done()
    wake.set()
    await asyncio.wait_for(task, 1.0)
    assert time.monotonic() - t0 < 1.0
