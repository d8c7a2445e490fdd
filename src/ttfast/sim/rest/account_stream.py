"""The local account streamer (spec §7): a WebSocket endpoint on the REST server's port
(``/account-streamer``) that pushes full objects whenever orders, positions or balances change.

Protocol, as the spec describes tastytrade's ``wss://streamer.tastyworks.com``:

* client messages are JSON objects ``{"action", "auth-token": "Bearer <token>", "request-id",
  "value"?, "source"?}``; every one must carry a currently valid REST access token (the raw token
  without ``Bearer`` is accepted too), else the answer is an error ``invalid-auth-token``;
* ``connect`` (``value`` = account numbers, or one bare string) is acknowledged with
  ``{"status": "ok", "action": "connect", "web-socket-session-id", "value": [accounts],
  "request-id"}``; unknown accounts are left out of ``value``;
* ``heartbeat`` before ``connect`` gets ``{"status": "error", ..., "message": "not implemented"}``,
  other subscriptions before ``connect`` get ``"connect-not-completed"``; after ``connect``
  ``heartbeat``, ``public-watchlists-subscribe``, ``quote-alerts-subscribe`` and
  ``user-message-subscribe`` are acknowledged by ``request-id``; unknown actions get
  ``"unknown-action"``;
* notifications ``{"type", "data": {full object}, "timestamp": epoch ms}`` go to every connection
  that connected the object's account, no snapshot on connect; with :attr:`AccountStreamHub.batch`
  the notifications of one change go out in one ``{"results": [...]}`` frame (the tastytrade SDK
  does not read batches, so it is off by default);
* WebSocket pings are answered and count as liveness (the SDK >= 12 sends no ``heartbeat``);
  a connection silent for ``idle_timeout`` seconds is closed (1000).

Fault switches (:class:`StreamFaults`, per connection like the dxLink server's ``Faults``):
reject auth (with or without closing), stall (silent socket: nothing more is sent, the connection
stays open), close after N notifications or seconds (code, or a TCP drop). At runtime the same
switches are reachable over HTTP: ``POST /_sim/account-stream/faults`` (a StreamFaults as JSON),
``DELETE /_sim/account-stream/faults``, ``POST /_sim/account-stream/drop`` (``{"code": 1011}``).

Touches only its own connections; what to publish is decided by the order lifecycle
(:mod:`ttfast.sim.rest.lifecycle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from aiohttp import WSMsgType, web

__all__ = ["STREAM_PATH", "AccountStreamHub", "StreamConnection", "StreamFaults"]

log = logging.getLogger("ttfast.sim.rest.stream")

#: where the account streamer listens on the REST server
STREAM_PATH = "/account-streamer"

MSG_NOT_CONNECTED = "connect-not-completed"
MSG_NOT_IMPLEMENTED = "not implemented"
MSG_BAD_TOKEN = "invalid-auth-token"
MSG_UNKNOWN_ACTION = "unknown-action"
MSG_BAD_JSON = "invalid-json"

_SUBSCRIPTIONS = frozenset(
    {"public-watchlists-subscribe", "quote-alerts-subscribe", "user-message-subscribe"}
)


@dataclass
class StreamFaults:
    """Fault switches of account-stream connections; all off by default.

    reject_auth: every message is answered ``invalid-auth-token`` (``reject_auth_close``: then
    the socket is closed with 1008). stall: from now on (or after ``stall_after_notifications``)
    nothing is sent (no acks, no notifications, no pongs) and the socket stays open.
    close_after_notifications / close_after_s: close with ``close_code`` (``None``: drop TCP
    without a close frame) after that many notifications / seconds since the connection opened.
    """

    reject_auth: bool = False
    reject_auth_close: bool = False
    stall: bool = False
    stall_after_notifications: int | None = None
    close_after_notifications: int | None = None
    close_after_s: float | None = None
    close_code: int | None = 1000


class StreamConnection:
    """One account-stream socket: its session id, connected accounts and counters."""

    def __init__(
        self, hub: AccountStreamHub, number: int, ws: web.WebSocketResponse, request: web.Request
    ) -> None:
        self.hub = hub
        self.request = request
        self.number = number
        self.ws = ws
        self.session_id = f"{0x5B6E2799 + number * 0x9E37:08x}"[-8:]
        f = hub.faults
        self.faults: StreamFaults = f(number) if callable(f) else f
        self.accounts: set[str] = set()
        self.connected = False
        self.notifications = 0
        self.closed = False
        self.opened_at = time.monotonic()
        self.last_recv = self.opened_at
        self.received: deque[dict[str, Any]] = deque(maxlen=hub.record_limit)
        self.sent: deque[dict[str, Any]] = deque(maxlen=hub.record_limit)

    @property
    def stalled(self) -> bool:
        fa = self.faults
        n = fa.stall_after_notifications
        return fa.stall or (n is not None and self.notifications >= n)

    async def send(self, msg: dict[str, Any]) -> None:
        if self.closed or self.stalled:
            return
        self.sent.append(msg)
        try:
            await self.ws.send_str(json.dumps(msg, separators=(",", ":")))
        except (ConnectionError, RuntimeError):
            self.closed = True

    async def close(self, code: int | None) -> None:
        if self.closed:
            return
        self.closed = True
        if code is None:
            tr = self.request.transport
            if tr is not None:
                tr.abort()
            return
        with contextlib.suppress(Exception):
            await self.ws.close(code=code)

    def ack(self, action: str, request_id: Any, **extra: Any) -> dict[str, Any]:
        m: dict[str, Any] = {"status": "ok", "action": action,
                             "web-socket-session-id": self.session_id}  # fmt: skip
        m.update(extra)
        if request_id is not None:
            m["request-id"] = request_id
        return m

    def err(self, action: Any, request_id: Any, message: str) -> dict[str, Any]:
        m: dict[str, Any] = {"status": "error", "action": action,
                             "web-socket-session-id": self.session_id,
                             "message": message}  # fmt: skip
        if request_id is not None:
            m["request-id"] = request_id
        return m

    async def on_message(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            await self.send(self.err(None, None, MSG_BAD_JSON))
            return
        if not isinstance(msg, dict):
            await self.send(self.err(None, None, MSG_BAD_JSON))
            return
        self.received.append(msg)
        self.hub.received.append((self.number, msg))
        action, rid = msg.get("action"), msg.get("request-id")
        if self.faults.reject_auth or not self.hub.token_ok(msg.get("auth-token")):
            await self.send(self.err(action, rid, MSG_BAD_TOKEN))
            if self.faults.reject_auth_close:
                await self.close(1008)
            return
        if action == "connect":
            value = msg.get("value")
            wanted = [value] if isinstance(value, str) else value
            if not isinstance(wanted, list):
                wanted = []
            accs = [a for a in wanted if isinstance(a, str) and a in self.hub.account_numbers()]
            self.accounts.update(accs)
            self.connected = True
            await self.send(self.ack("connect", rid, value=accs))
        elif action == "heartbeat":
            if not self.connected:
                await self.send(self.err(action, rid, MSG_NOT_IMPLEMENTED))
            else:
                await self.send(self.ack("heartbeat", rid))
        elif action in _SUBSCRIPTIONS:
            if not self.connected:
                await self.send(self.err(action, rid, MSG_NOT_CONNECTED))
            else:
                await self.send(self.ack(action, rid))
        else:
            await self.send(self.err(action, rid, MSG_UNKNOWN_ACTION))

    async def notify(self, notes: list[dict[str, Any]]) -> None:
        if self.closed or not notes:
            return
        fa = self.faults
        if self.hub.batch and len(notes) > 1:
            await self.send({"results": notes})
            self.notifications += len(notes)
        else:
            for n in notes:
                await self.send(n)
                self.notifications += 1
                lim = fa.close_after_notifications
                if lim is not None and self.notifications >= lim:
                    break
        lim = fa.close_after_notifications
        if lim is not None and self.notifications >= lim:
            await self.close(fa.close_code)


class AccountStreamHub:
    """Every account-stream connection of one REST server; :meth:`publish` fans out."""

    def __init__(
        self,
        token_ok: Callable[[Any], bool],
        account_numbers: Callable[[], tuple[str, ...]],
        *,
        faults: StreamFaults | Callable[[int], StreamFaults] | None = None,
        idle_timeout: float = 60.0,
        record_limit: int = 10_000,
    ) -> None:
        self.token_ok = token_ok
        self.account_numbers = account_numbers
        self.faults: StreamFaults | Callable[[int], StreamFaults] = faults or StreamFaults()
        self.idle_timeout = idle_timeout
        self.record_limit = record_limit
        #: send the notifications of one change as one ``{"results": [...]}`` frame
        self.batch = False
        self.connection_count = 0
        self.received: deque[tuple[int, dict[str, Any]]] = deque(maxlen=record_limit)
        #: every notification published: ``(account, message)``
        self.published: deque[tuple[str, dict[str, Any]]] = deque(maxlen=record_limit)
        self._conns: list[StreamConnection] = []

    @property
    def connections(self) -> list[StreamConnection]:
        return list(self._conns)

    async def publish(self, account: str, notes: list[tuple[str, dict[str, Any]]]) -> None:
        """Push ``(type, full object)`` notifications of one change to ``account``'s sockets."""
        ts = int(time.time() * 1000)
        msgs = [{"type": t, "data": d, "timestamp": ts} for t, d in notes]
        for m in msgs:
            self.published.append((account, m))
        for c in list(self._conns):
            if account in c.accounts:
                await c.notify(msgs)

    def set_faults(self, faults: StreamFaults) -> None:
        """New faults for future connections and every open one."""
        self.faults = faults
        for c in self._conns:
            c.faults = faults

    async def drop_connections(self, code: int | None = 1011) -> int:
        conns = list(self._conns)
        for c in conns:
            await c.close(code)
        return len(conns)

    async def close_all(self) -> None:
        await self.drop_connections(1001)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        self.connection_count += 1
        conn = StreamConnection(self, self.connection_count, ws, request)
        self._conns.append(conn)
        watchdog = asyncio.create_task(self._watch(conn))
        try:
            async for m in ws:
                conn.last_recv = time.monotonic()
                if m.type == WSMsgType.TEXT:
                    await conn.on_message(m.data)
                elif m.type == WSMsgType.PING:
                    if not conn.stalled:
                        await ws.pong(m.data)
                elif m.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            conn.closed = True
            watchdog.cancel()
            with contextlib.suppress(ValueError):
                self._conns.remove(conn)
        return ws

    async def _watch(self, conn: StreamConnection) -> None:
        """Idle timeout and ``close_after_s``."""
        while not conn.closed:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            fa = conn.faults
            if fa.close_after_s is not None and now - conn.opened_at >= fa.close_after_s:
                await conn.close(fa.close_code)
                return
            if now - conn.last_recv >= self.idle_timeout:
                await conn.close(1000)
                return


def faults_from_json(body: Any) -> StreamFaults:
    """A :class:`StreamFaults` from a JSON object (unknown keys raise ``TypeError``)."""
    if not isinstance(body, dict):
        raise TypeError("a JSON object is required")
    known = {f.name for f in fields(StreamFaults)}
    bad = set(body) - known
    if bad:
        raise TypeError(f"unknown fault switches {sorted(bad)}")
    return StreamFaults(**body)


def faults_to_json(f: StreamFaults) -> dict[str, Any]:
    return asdict(f)
