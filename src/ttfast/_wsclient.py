"""The lifecycle shared by ttfast's self-healing picows WebSocket clients.

:class:`ReconnectingClient` is the base of :class:`~ttfast.dxlink.DxLinkStreamer` and
:class:`~ttfast.account.AccountStreamer`: the runner task and its state, ``open()`` waiting until
ready (``connect_timeout``), ``close()``, the connect/reconnect loop with
:class:`~ttfast._retry.Backoff` delays (``max_reconnect_attempts``; the backoff is reset after a
connection that was stable), and the receive watchdog and handshake timeout of a connection.

What a subclass brings (its protocol): its state enum and events, the token and URL of a
connection, the picows listener (a :class:`MessageListener`: it reassembles fragmented messages
and hands each message to the client's ``_on_message`` synchronously, inside picows'
``data_received``), what is sent when a connection is made and the tasks that run per connection
(its ticker: keepalives/heartbeats, which calls :meth:`ReconnectingClient._watchdog`).

Imported only by the streamers (it imports picows; ``import ttfast`` must not).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from abc import ABC, abstractmethod
from enum import Enum
from typing import Any, Generic, Literal, Protocol, Self, TypeVar, cast

import picows

from ttfast._retry import Backoff

__all__ = ["MessageListener", "ReconnectingClient", "sleep_until_woken"]


class _Conn(Protocol):
    """What the loop uses of a connection's picows listener."""

    transport: picows.WSTransport | None
    close_code: int | None
    dead: bool


class _Receiver(Protocol):
    """What a :class:`MessageListener` calls on its client (synchronously)."""

    def _on_message(self, conn: Any, payload: bytes) -> None:
        """A whole message of ``conn``."""

    def _on_disconnected(self, conn: Any) -> None:
        """``conn``'s socket is closed."""

    def _protocol_error(self, conn: Any, detail: str, error: BaseException | None = None) -> None:
        """Something ``conn`` received could not be used (counted and reported)."""

    def _frame_failed(self, conn: Any, exc: Exception) -> None:
        """Handling a frame raised (a bug): log it, count it, report it."""


class MessageListener(picows.WSListener):
    """picows listener of one connection: hands each whole TEXT/BINARY message (fragments
    joined) to the client's ``_on_message``, answers a CLOSE and reports the disconnect. PING is
    answered by picows (``enable_auto_pong``); PONG needs nothing."""

    def __init__(self, client: _Receiver) -> None:
        self.s = client
        self.transport: picows.WSTransport | None = None
        self.close_code: int | None = None
        self.frag: list[bytes] | None = None
        self.dead = False

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        try:
            self._frame(transport, frame)
        except Exception as exc:
            # Last line of defence: whatever a frame contains, nothing escapes to picows
            # (which would only log it). Known bad input is handled where it is detected;
            # reaching this is a bug, made visible as a counted decode_error.
            self.s._frame_failed(self, exc)

    def _frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        mt = frame.msg_type
        if mt is picows.WSMsgType.TEXT or mt is picows.WSMsgType.BINARY:
            if frame.fin:
                self.s._on_message(self, frame.get_payload_as_bytes())
            else:
                self.frag = [frame.get_payload_as_bytes()]
        elif mt is picows.WSMsgType.CONTINUATION:
            if self.frag is None:
                self.s._protocol_error(self, "CONTINUATION frame without a start")
                return
            self.frag.append(frame.get_payload_as_bytes())
            if frame.fin:
                payload = b"".join(self.frag)
                self.frag = None
                self.s._on_message(self, payload)
        elif mt is picows.WSMsgType.CLOSE:
            code = frame.get_close_code()
            self.close_code = int(code.value) if isinstance(code, picows.WSCloseCode) else None
            with contextlib.suppress(Exception):
                transport.send_close(code)
            transport.disconnect()

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self.s._on_disconnected(self)


class _Stats(Protocol):
    reconnects: int
    last_message_at: float  # time.monotonic() of the last received frame


S = TypeVar("S", bound=Enum)
C = TypeVar("C", bound=_Conn)

#: events the shared loop reports through ``_event``
LoopEventKind = Literal["token_error", "connect_error", "watchdog"]
#: state changes the shared loop makes through ``_set_state``
StateEventKind = Literal["connecting", "reconnecting", "disconnected", "failed", "closed"]


async def sleep_until_woken(wake: asyncio.Event, timeout: float) -> None:
    """Sleep ``timeout`` seconds (at least 1 ms), or until ``wake`` is set (it is cleared first)."""
    wake.clear()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.001, timeout)):
            await wake.wait()


class ReconnectingClient(ABC, Generic[S, C]):
    """Runner, reconnect loop, open/close and watchdog of a self-healing WebSocket client.

    ``S``: the subclass's state enum, whose values are ``idle``, ``connecting``, ``connected``,
    ``reconnecting``, ``closed`` and ``failed``; ``C``: its picows listener class.
    ``self._ready`` is set by the subclass when it is ready (``open()`` waits for it).
    """

    #: the subclass's state enum
    _State: type[S]
    #: "dxLink streamer" / "account streamer" (in the errors of ``open()`` and the waits)
    _NAME: str
    #: the runner task's name
    _TASK: str
    #: (event detail, reason) of a connection that was not ready within ``handshake_timeout``
    _HANDSHAKE_TIMEOUT: tuple[str, str]

    state: S
    stats: _Stats

    def __init__(
        self,
        *,
        handshake_timeout: float,
        backoff_base: float,
        backoff_max: float,
        stable_after: float,
        max_reconnect_attempts: int | None,
        connect_timeout: float,
        max_frame_size: int,
    ) -> None:
        self.state = self._State("idle")
        self.handshake_timeout = handshake_timeout
        self.stable_after = stable_after
        self.max_reconnect_attempts = max_reconnect_attempts
        self.connect_timeout = connect_timeout
        self.max_frame_size = max_frame_size
        self.backoff = Backoff(base=backoff_base, cap=backoff_max)
        self._conn: C | None = None
        self._conn_done: asyncio.Future[str] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._ready = asyncio.Event()
        self._connected_at = 0.0  # time.monotonic() the connection became connected (0: not)
        self._got_data = False  # the connection delivered data (it counts as stable)
        self._last_error: BaseException | None = None

    # ---- what the subclass provides ------------------------------------------------------------

    @abstractmethod
    def _event(
        self, kind: LoopEventKind, detail: str = "", error: BaseException | None = None
    ) -> None:
        """Report an event (not a state change)."""

    @abstractmethod
    def _set_state(self, state: S, kind: StateEventKind, detail: str = "", **kw: Any) -> None:
        """Change the state and report it (``kw``: ``error``, ``close_code``)."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and wait until ready (the subclass wraps ``_open()``)."""

    @abstractmethod
    async def close(self) -> None:
        """Close the socket and stop every task (the subclass wraps ``_shutdown()``)."""

    async def _before_open(self) -> None:
        """What ``open()`` does before the runner starts."""

    @abstractmethod
    async def _begin_connection(self) -> tuple[str, str]:
        """(URL, token) of the next connection; raising is a ``token_error``."""

    @abstractmethod
    def _new_conn(self) -> C:
        """A new picows listener for the next connection."""

    def _prepare_connection(self) -> None:
        """Per-connection state, before the socket is opened."""

    @abstractmethod
    def _connection_made(self, conn: C, token: str) -> list[asyncio.Task[None]]:
        """The socket is open: send the first messages, start the connection's tasks."""

    def _connection_closing(self) -> None:
        """The connection ended (its tasks are cancelled): stop what else belongs to it."""

    @abstractmethod
    def _connection_lost(self) -> None:
        """The connection ended, its socket is closed: tell the protocol."""

    async def _stop_tasks(self) -> None:
        """``close()``: stop the runner (and whatever else the subclass runs)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner

    # ---- open / wait / close -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _open(self) -> None:
        """Start the connection loop and wait until ready (``connect_timeout``)."""
        if self._runner is not None:
            return
        self._closing = False
        await self._before_open()
        self._runner = asyncio.get_running_loop().create_task(self._run(), name=self._TASK)
        try:
            await asyncio.wait_for(self._wait_ready(), self.connect_timeout)
        except BaseException:
            await self.close()
            raise

    async def _wait_ready(self) -> None:
        """Wait until ``self._ready`` is set; raise if the client failed or is not running."""
        while not self._ready.is_set():
            if self.state is self._State("failed"):
                raise ConnectionError(f"{self._NAME} failed: {self._last_error!r}")
            if self._runner is None or self._runner.done():
                raise ConnectionError(f"{self._NAME} is not running")
            waiter = asyncio.ensure_future(self._ready.wait())
            done, _ = await asyncio.wait({waiter, self._runner}, return_when="FIRST_COMPLETED")
            if waiter not in done:
                waiter.cancel()

    async def _shutdown(self) -> None:
        """``close()`` up to its last state change: close the socket, stop every task."""
        self._closing = True
        conn = self._conn
        if conn is not None and conn.transport is not None and not conn.dead:
            with contextlib.suppress(Exception):
                conn.transport.send_close(picows.WSCloseCode.OK)
                conn.transport.disconnect()
        if self._conn_done is not None and not self._conn_done.done():
            self._conn_done.set_result("closed by user")
        await self._stop_tasks()

    # ---- one connection ------------------------------------------------------------------------

    def _on_disconnected(self, conn: C) -> None:
        conn.dead = True
        code = conn.close_code
        self._end_connection(conn, f"socket closed (code {code})" if code else "socket closed")

    def _end_connection(self, conn: C, reason: str) -> None:
        if conn is not self._conn:
            return
        fut = self._conn_done
        if fut is not None and not fut.done():
            fut.set_result(reason)
        if not conn.dead:
            conn.dead = True
            if conn.transport is not None:
                with contextlib.suppress(Exception):
                    conn.transport.disconnect(graceful=False)

    def _watchdog(
        self, conn: C, started: float, now: float, receive_timeout: float
    ) -> float | None:
        """The handshake timeout and the receive watchdog of ``conn`` (opened at ``started``) at
        ``now``: None when one fired (reported; the connection is ended), else the earliest of
        their deadlines."""
        handshake_deadline = math.inf
        if self.state is not self._State("connected"):
            handshake_deadline = started + self.handshake_timeout
            if now >= handshake_deadline:
                detail, reason = self._HANDSHAKE_TIMEOUT
                self._event("watchdog", detail)
                self._end_connection(conn, reason)
                return None
        last_rx = max(self.stats.last_message_at, started)
        if now - last_rx >= receive_timeout:
            self._event("watchdog", f"no message for {now - last_rx:.3f}s")
            self._end_connection(conn, "receive watchdog")
            return None
        return min(last_rx + receive_timeout, handshake_deadline)

    # ---- the connection loop -------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        states = self._State
        first = True
        while not self._closing:
            if not first:
                if (
                    self.max_reconnect_attempts is not None
                    and self.backoff.attempt >= self.max_reconnect_attempts
                ):
                    self._last_error = self._last_error or ConnectionError("too many reconnects")
                    self._set_state(
                        states("failed"), "failed", repr(self._last_error), error=self._last_error
                    )
                    return
                delay = self.backoff.next_delay()
                self._set_state(states("reconnecting"), "reconnecting", f"in {delay:.3f}s")
                await asyncio.sleep(delay)
                if self._closing:
                    return
                self.stats.reconnects += 1
            first = False
            self._set_state(states("connecting"), "connecting")
            try:
                url, token = await self._begin_connection()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._last_error = exc
                self._event("token_error", repr(exc), exc)
                continue
            conn = self._new_conn()
            self._conn = conn
            self._conn_done = loop.create_future()
            self._connected_at = 0.0
            self._got_data = False
            self._prepare_connection()
            listener = cast(picows.WSListener, conn)
            try:
                transport, _ = await picows.ws_connect(
                    lambda c=listener: c,
                    url,
                    websocket_handshake_timeout=self.handshake_timeout,
                    enable_auto_ping=False,  # the protocol's own keepalive (the subclass's ticker)
                    enable_auto_pong=True,
                    max_frame_size=self.max_frame_size,
                    disconnect_on_exception=False,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._last_error = exc
                self._event("connect_error", repr(exc), exc)
                self._conn = None
                continue
            conn.transport = transport
            tasks = self._connection_made(conn, token)
            try:
                reason = await self._conn_done
            finally:
                for task in tasks:
                    task.cancel()
                self._connection_closing()
                if not conn.dead:
                    conn.dead = True
                    with contextlib.suppress(Exception):
                        transport.disconnect(graceful=False)
                self._connection_lost()
                self._conn = None
            if self._connected_at and (
                self._got_data or time.monotonic() - self._connected_at >= self.stable_after
            ):
                self.backoff.reset()
            self._set_state(
                states("reconnecting") if not self._closing else states("closed"),
                "disconnected",
                reason,
                close_code=conn.close_code,
            )
