"""Account streamer: picows transport, connect/heartbeat, watchdog, reconnect, REST re-hydration.

What it may touch: one WebSocket at a time (picows), the event loop, the REST client (GETs only:
live orders, positions, balances, accounts) and the user's callbacks. The wire rules are the
sans-IO :class:`~ttfast.account.protocol.AccountProtocol`'s.

Shape (the dxLink streamer's; the lifecycle is their shared
:class:`~ttfast._wsclient.ReconnectingClient`): a connection loop with
:class:`~ttfast._retry.Backoff` delays; per connection a ticker task that sends heartbeats (with
the session's current access token, which the session refreshes before it expires) and runs the
receive watchdog; frames are handled synchronously in picows' ``on_ws_frame``.

No fill is missed across a disconnect: the server neither snapshots nor replays (spec §7), so
after every connect ack the streamer reads live orders, positions and balances over REST and
delivers what differs from what it knew (``Notification.source == "rehydrate"``; the first
connection's read is delivered as ``"snapshot"``). The REST read starts after the connect ack,
so every change is either on the stream or in the read; objects the stream updated while the
read was in flight are not overwritten by the (older) read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit

import msgspec
import picows

from ttfast._retry import Backoff
from ttfast._wsclient import MessageListener, ReconnectingClient, sleep_until_woken
from ttfast.account.protocol import (
    AccountProtocol,
    Ack,
    ActionFailed,
    Connected,
    ConnectRejected,
    Malformed,
    Notification,
    ProtocolStats,
)
from ttfast.rest.models import Balance, ComplexOrder, Order, Position

if TYPE_CHECKING:
    from ttfast.rest.client import TastytradeClient
    from ttfast.rest.session import OAuthSession

__all__ = [
    "PRODUCTION_STREAMER_URL",
    "SANDBOX_STREAMER_URL",
    "TERMINAL_STATUSES",
    "AccountEvent",
    "AccountEventKind",
    "AccountStreamState",
    "AccountStreamer",
    "AccountStreamerStats",
    "BalanceCallback",
    "NotificationCallback",
    "OrderCallback",
    "PositionCallback",
    "default_streamer_url",
]

log = logging.getLogger("ttfast.account")

PRODUCTION_STREAMER_URL: Final = "wss://streamer.tastyworks.com"
SANDBOX_STREAMER_URL: Final = "wss://streamer.cert.tastyworks.com"

#: order statuses after which nothing changes any more
TERMINAL_STATUSES: Final = frozenset(
    {"Filled", "Cancelled", "Rejected", "Expired", "Removed", "Partially Removed"}
)

OrderCallback = Callable[[Order], None]
PositionCallback = Callable[[Position], None]
BalanceCallback = Callable[[Balance], None]
NotificationCallback = Callable[[Notification], None]

AccountEventKind = Literal[
    "connecting",
    "connected",
    "disconnected",
    "reconnecting",
    "closed",
    "failed",
    "auth_rejected",
    "server_error",
    "subscribed",
    "watchdog",
    "decode_error",
    "callback_error",
    "token_error",
    "connect_error",
    "rehydrated",
    "rehydrate_error",
]


class AccountStreamState(Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"  # connect acknowledged
    RECONNECTING = "reconnecting"  # waiting for the backoff delay
    CLOSED = "closed"
    FAILED = "failed"  # gave up (max_reconnect_attempts); iteration raises


@dataclass(frozen=True, slots=True)
class AccountEvent:
    """A state change or an error, delivered to ``on_event``. Never carries a token."""

    kind: AccountEventKind
    state: AccountStreamState
    detail: str = ""
    attempt: int = 0
    close_code: int | None = None
    error: BaseException | None = None
    at: float = field(default_factory=time.time)


@dataclass
class AccountStreamerStats:
    frames: int = 0
    bytes: int = 0
    reconnects: int = 0
    heartbeats_sent: int = 0
    callback_errors: int = 0
    #: notifications dropped from a full ``async for`` buffer (oldest first)
    drops: int = 0
    rehydrations: int = 0
    #: changes found by REST re-hydration (delivered with source "rehydrate")
    rehydrated_changes: int = 0
    last_message_at: float = 0.0  # time.monotonic() of the last frame
    protocol: ProtocolStats = field(default_factory=ProtocolStats)

    @property
    def notifications(self) -> int:
        return self.protocol.notifications

    @property
    def decode_errors(self) -> int:
        return self.protocol.decode_errors

    @property
    def unknown_types(self) -> dict[str, int]:
        return dict(self.protocol.unknown_types)


def _order_key(o: Order) -> tuple[Any, ...]:
    """What makes an order update news: its status and each leg's fills."""
    legs = tuple(
        (
            leg.remaining_quantity,
            len(leg.fills or ()),
            sum((f.quantity or Decimal(0) for f in leg.fills or ()), Decimal(0)),
        )
        for leg in o.legs or ()
    )
    return (o.status, legs)


def _position_key(p: Position) -> tuple[Any, ...]:
    return (p.quantity, p.quantity_direction, p.average_open_price)


_BALANCE_FIELDS: Final = (
    "cash_balance",
    "net_liquidating_value",
    "equity_buying_power",
    "derivative_buying_power",
    "available_trading_funds",
    "pending_cash",
    "maintenance_requirement",
)


def _balance_key(b: Balance) -> tuple[Any, ...]:
    return tuple(getattr(b, f) for f in _BALANCE_FIELDS)


class _Conn(MessageListener):
    """picows listener of one connection; forwards to the streamer synchronously."""

    s: AccountStreamer

    def __init__(self, streamer: AccountStreamer) -> None:
        super().__init__(streamer)
        self.wake = asyncio.Event()  # the ticker re-reads its deadlines (connect ack)


_END: Final = object()


class AccountStreamer(ReconnectingClient[AccountStreamState, _Conn]):
    """A self-healing tastytrade account streamer (orders, positions, balances...).

    ``session`` is an :class:`~ttfast.rest.OAuthSession` (or a
    :class:`~ttfast.rest.TastytradeClient`, whose session is used); every message carries its
    current access token. ``accounts``: account numbers (default: every account of the
    customer, read over REST at ``open()``). ``url``: the streamer's WebSocket URL (default:
    :func:`default_streamer_url` of the session's ``base_url``: tastytrade's production or
    sandbox streamer, else ``ws://<base host:port>/account-streamer``, the local sim's)::

        async with AccountStreamer(session, accounts=["5WT00000"]) as stream:
            async for note in stream:  # ttfast.account.Notification
                if note.type == "Order":
                    print(note.data.status)

    Typed callbacks run synchronously for every delivered object: ``on_order(Order)``,
    ``on_position(Position)`` (a position that went away is delivered with quantity 0),
    ``on_balance(Balance)``, ``on_notification(Notification)`` (all types, unknown ones raw).
    A raising callback is counted (``stats.callback_errors``) and reported; the stream lives on.

    The latest state is kept: ``orders`` (by id), ``positions`` (by (account, symbol)),
    ``balances`` (by account). ``rehydrate=False`` turns the REST reads off (then a fill that
    happened while disconnected is missed). ``public_watchlists`` / ``quote_alerts``
    subscribe to those feeds (also later with :meth:`subscribe_public_watchlists`...).

    Time parameters are in seconds. ``receive_timeout`` (default 2.5 heartbeat intervals):
    with no frame for that long (the server answers every heartbeat), the connection is
    dropped and re-made. ``buffer_size`` bounds what ``async for`` buffers (oldest dropped,
    counted in ``stats.drops``; 0 = no buffering).
    """

    _State = AccountStreamState
    _NAME = "account streamer"
    _TASK = "account-stream"
    _HANDSHAKE_TIMEOUT = ("no connect ack", "connect timeout")
    state: AccountStreamState
    stats: AccountStreamerStats

    def __init__(
        self,
        session: OAuthSession | TastytradeClient,
        accounts: Sequence[str] | None = None,
        *,
        url: str | None = None,
        on_order: OrderCallback | None = None,
        on_position: PositionCallback | None = None,
        on_balance: BalanceCallback | None = None,
        on_notification: NotificationCallback | None = None,
        on_event: Callable[[AccountEvent], None] | None = None,
        public_watchlists: bool = False,
        quote_alerts: bool = False,
        rehydrate: bool = True,
        heartbeat_interval: float = 20.0,
        receive_timeout: float | None = None,
        handshake_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        stable_after: float = 10.0,
        max_reconnect_attempts: int | None = None,
        connect_timeout: float = 30.0,
        buffer_size: int = 10_000,
        max_frame_size: int = 16 * 1024 * 1024,
        source: str | None = "ttfast",
    ) -> None:
        from ttfast.rest.client import TastytradeClient

        if isinstance(session, TastytradeClient):
            self.client = session
            self.session: OAuthSession = session.session
        else:
            self.session = session
            self.client = TastytradeClient(session)
        self.url = url or default_streamer_url(self.session.base_url, self.session.env)
        self._accounts = tuple(accounts) if accounts is not None else None
        self._source = source
        self._protocol: AccountProtocol | None = None
        self._wanted: dict[str, Any] = {}
        if public_watchlists:
            self._wanted["public-watchlists-subscribe"] = None
        if quote_alerts:
            self._wanted["quote-alerts-subscribe"] = None
        self.rehydrate = rehydrate
        self.heartbeat_interval = heartbeat_interval
        self.receive_timeout = receive_timeout
        self.stats = AccountStreamerStats()
        super().__init__(
            handshake_timeout=handshake_timeout,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            stable_after=stable_after,
            max_reconnect_attempts=max_reconnect_attempts,
            connect_timeout=connect_timeout,
            max_frame_size=max_frame_size,
        )
        self.orders: dict[int, Order] = {}
        self.complex_orders: dict[int, ComplexOrder] = {}
        self.positions: dict[tuple[str, str], Position] = {}
        self.balances: dict[str, Balance] = {}
        self._on_order: list[OrderCallback] = [on_order] if on_order else []
        self._on_position: list[PositionCallback] = [on_position] if on_position else []
        self._on_balance: list[BalanceCallback] = [on_balance] if on_balance else []
        self._on_note: list[NotificationCallback] = [on_notification] if on_notification else []
        self._on_event = on_event
        self._buffer_size = buffer_size
        self._buf: deque[Notification] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._rehydrator: asyncio.Task[None] | None = None
        # self._ready (the base's): connected and the first REST read is done
        self._hydrated_once = False
        self._token = ""
        self._touched: set[object] | None = None  # keys the stream updated during a REST read

    def __repr__(self) -> str:
        return (
            f"AccountStreamer(url={self.url!r}, accounts={list(self._accounts or ())!r}, "
            f"state={self.state.value})"
        )

    # ---- public API --------------------------------------------------------------------------

    @property
    def accounts(self) -> tuple[str, ...]:
        return self._accounts or ()

    @property
    def protocol(self) -> AccountProtocol:
        if self._protocol is None:
            raise RuntimeError("the streamer has not been opened")
        return self._protocol

    @property
    def connected(self) -> bool:
        return self.state is AccountStreamState.CONNECTED

    async def open(self) -> None:
        """Connect and wait until the stream is acknowledged and the first REST read is done
        (``connect_timeout``)."""
        await self._open()

    async def _before_open(self) -> None:
        if self._accounts is None:
            self._accounts = tuple(a.account_number for a in await self.client.get_accounts())
        if self._protocol is None:
            self._protocol = AccountProtocol(self._accounts, source=self._source)
            self._protocol.stats = self.stats.protocol
            for action, value in self._wanted.items():
                self._protocol.subscribe(action, value)

    async def wait_ready(self) -> None:
        """Wait until connected (again) and re-hydrated; raise if the streamer failed."""
        await self._wait_ready()

    async def close(self) -> None:
        """Close the socket, stop every task; ``async for`` ends."""
        await self._shutdown()
        if self.state is not AccountStreamState.CLOSED:
            self._set_state(AccountStreamState.CLOSED, "closed")
        self._wake_reader()

    def subscribe_public_watchlists(self) -> None:
        """Receive ``PublicWatchlists`` notifications (kept raw); replayed on reconnect."""
        self._subscribe("public-watchlists-subscribe", None)

    def subscribe_quote_alerts(self) -> None:
        """Receive ``QuoteAlert`` notifications (kept raw); replayed on reconnect."""
        self._subscribe("quote-alerts-subscribe", None)

    def subscribe_user_messages(self, user_external_id: str) -> None:
        """Receive user messages (value: the customer's ``external-id``)."""
        self._subscribe("user-message-subscribe", user_external_id)

    def _subscribe(self, action: str, value: Any) -> None:
        self._wanted[action] = value
        if self._protocol is not None:
            self._protocol.subscribe(action, value)
            self._flush()

    def add_order_callback(self, cb: OrderCallback) -> None:
        self._on_order.append(cb)

    def remove_order_callback(self, cb: OrderCallback) -> None:
        self._on_order.remove(cb)

    def add_position_callback(self, cb: PositionCallback) -> None:
        self._on_position.append(cb)

    def add_balance_callback(self, cb: BalanceCallback) -> None:
        self._on_balance.append(cb)

    def add_notification_callback(self, cb: NotificationCallback) -> None:
        self._on_note.append(cb)

    def remove_notification_callback(self, cb: NotificationCallback) -> None:
        self._on_note.remove(cb)

    def __aiter__(self) -> AccountStreamer:
        return self

    async def __anext__(self) -> Notification:
        while not self._buf:
            if self.state is AccountStreamState.CLOSED:
                raise StopAsyncIteration
            if self.state is AccountStreamState.FAILED:
                raise ConnectionError(f"account streamer failed: {self._last_error!r}")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._buf.popleft()

    # ---- events ------------------------------------------------------------------------------

    def _emit(self, kind: AccountEventKind, detail: str = "", **kw: Any) -> None:
        ev = AccountEvent(kind, self.state, detail, attempt=self.backoff.attempt, **kw)
        if kind in ("server_error", "decode_error", "callback_error", "auth_rejected"):
            log.warning("account stream %s: %s", kind, detail)
        else:
            log.info("account stream %s: %s", kind, detail)
        if self._on_event is not None:
            try:
                self._on_event(ev)
            except Exception:
                self.stats.callback_errors += 1
                log.exception("on_event callback raised")

    def _event(
        self, kind: AccountEventKind, detail: str = "", error: BaseException | None = None
    ) -> None:
        self._emit(kind, detail, error=error)

    def _set_state(
        self, state: AccountStreamState, kind: AccountEventKind, detail: str = "", **kw: Any
    ) -> None:
        self.state = state
        if state is not AccountStreamState.CONNECTED:
            self._ready.clear()
        self._emit(kind, detail, **kw)
        if state in (AccountStreamState.CLOSED, AccountStreamState.FAILED):
            self._wake_reader()

    def _wake_reader(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # ---- delivery ----------------------------------------------------------------------------

    def _callback_failed(self, name: str, exc: Exception) -> None:
        self.stats.callback_errors += 1
        log.exception("%s callback raised", name)
        self._emit("callback_error", f"{name}: {exc!r}", error=exc)

    def _deliver(self, note: Notification) -> None:
        """Update the kept state, run the callbacks, buffer for ``async for``."""
        data = note.data
        touched = self._touched
        if isinstance(data, Order):
            if data.id is not None:
                self.orders[data.id] = data
                if touched is not None:
                    touched.add(("o", data.id))
            for ocb in self._on_order:
                try:
                    ocb(data)
                except Exception as exc:
                    self._callback_failed("on_order", exc)
        elif isinstance(data, Position):
            key = (data.account_number or "", data.symbol or "")
            if data.quantity is not None and data.quantity == 0:
                self.positions.pop(key, None)
            else:
                self.positions[key] = data
            if touched is not None:
                touched.add(("p", *key))
            for pcb in self._on_position:
                try:
                    pcb(data)
                except Exception as exc:
                    self._callback_failed("on_position", exc)
        elif isinstance(data, Balance):
            acct = data.account_number or ""
            self.balances[acct] = data
            if touched is not None:
                touched.add(("b", acct))
            for bcb in self._on_balance:
                try:
                    bcb(data)
                except Exception as exc:
                    self._callback_failed("on_balance", exc)
        elif isinstance(data, ComplexOrder) and data.id is not None:
            self.complex_orders[data.id] = data
        for ncb in self._on_note:
            try:
                ncb(note)
            except Exception as exc:
                self._callback_failed("on_notification", exc)
        if self._buffer_size > 0:
            buf = self._buf
            buf.append(note)
            if len(buf) > self._buffer_size:
                buf.popleft()
                self.stats.drops += 1
            self._wake_reader()

    # ---- frames (synchronous, inside picows' data_received) ----------------------------------

    def _protocol_error(
        self, conn: _Conn | None, detail: str, error: BaseException | None = None
    ) -> None:
        """A frame from the server could not be used: count it, tell."""
        self.stats.protocol.decode_errors += 1
        self._emit("decode_error", detail, error=error)

    def _frame_failed(self, conn: _Conn, exc: Exception) -> None:
        log.exception("account stream: unexpected error while handling a frame")
        self._protocol_error(conn, f"error while handling a frame: {exc!r}", exc)

    def _on_message(self, conn: _Conn, payload: bytes) -> None:
        if conn is not self._conn or conn.dead:
            return
        st = self.stats
        st.frames += 1
        st.bytes += len(payload)
        st.last_message_at = time.monotonic()
        for ev in self.protocol.receive(payload):
            if isinstance(ev, Notification):
                self._got_data = True
                self._deliver(ev)
            elif isinstance(ev, Connected):
                self._connected_at = time.monotonic()
                self._set_state(AccountStreamState.CONNECTED, "connected", ev.session_id or "")
                conn.wake.set()
                self._start_rehydration(conn)
            elif isinstance(ev, Ack):
                if ev.action not in ("connect", "heartbeat"):
                    self._emit("subscribed", ev.action)
            elif isinstance(ev, ActionFailed):
                self._emit("server_error", f"{ev.action}: {ev.message}")
            elif isinstance(ev, ConnectRejected):
                self._emit("auth_rejected", f"{ev.action}: {ev.message}")
                self.session.invalidate(self._token)  # the next connection gets a fresh one
                self._end_connection(conn, f"{ev.action} rejected: {ev.message}")
                return
            elif isinstance(ev, Malformed):
                self._emit("decode_error", ev.detail)
        self._flush()

    def _flush(self) -> None:
        conn = self._conn
        if self._protocol is None:
            return
        out = self._protocol.take_outgoing()
        if conn is None or conn.transport is None or conn.dead:
            return
        for msg in out:
            conn.transport.send(picows.WSMsgType.TEXT, msg)

    # ---- connection loop ---------------------------------------------------------------------

    async def _fresh_token(self) -> str:
        tok = await self.session.access_token()
        self._token = tok
        self.protocol.set_auth(tok)
        return tok

    def _watchdog_timeout(self) -> float:
        return self.receive_timeout or 2.5 * self.heartbeat_interval

    async def _ticker(self, conn: _Conn) -> None:
        """Heartbeats (each with a fresh token) + receive watchdog + connect timeout."""
        started = time.monotonic()
        last_hb = started
        while not conn.dead:
            now = time.monotonic()
            watch = self._watchdog(conn, started, now, self._watchdog_timeout())
            if watch is None:
                return
            hb_deadline = math.inf
            if self.state is AccountStreamState.CONNECTED:
                if now - last_hb >= self.heartbeat_interval:
                    try:
                        await self._fresh_token()
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # keep the old token; the server may still take it
                        self._emit("token_error", repr(exc), error=exc)
                    if conn.dead:
                        return
                    if self.protocol.heartbeat() is not None:
                        self.stats.heartbeats_sent += 1
                    self._flush()
                    last_hb = now = time.monotonic()
                hb_deadline = last_hb + self.heartbeat_interval
            await sleep_until_woken(conn.wake, min(hb_deadline, watch) - now)

    async def _begin_connection(self) -> tuple[str, str]:
        token = await self._fresh_token()
        return self.url, token

    def _new_conn(self) -> _Conn:
        return _Conn(self)

    def _connection_made(self, conn: _Conn, token: str) -> list[asyncio.Task[None]]:
        self.protocol.connection_made()
        self._flush()
        ticker = asyncio.get_running_loop().create_task(
            self._ticker(conn), name="account-stream-ticker"
        )
        return [ticker]

    def _connection_closing(self) -> None:
        rh, self._rehydrator = self._rehydrator, None
        if rh is not None:
            rh.cancel()
        self._touched = None

    def _connection_lost(self) -> None:
        self.protocol.connection_lost()

    async def _stop_tasks(self) -> None:
        for task in (self._rehydrator, self._runner):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._runner = self._rehydrator = None

    # ---- REST re-hydration ---------------------------------------------------------------------

    def _start_rehydration(self, conn: _Conn) -> None:
        if not self.rehydrate:
            self._ready.set()
            return
        old = self._rehydrator
        if old is not None:
            old.cancel()
        self._touched = set()
        self._rehydrator = asyncio.get_running_loop().create_task(
            self._rehydrate(conn), name="account-stream-rehydrate"
        )

    async def _rehydrate(self, conn: _Conn) -> None:
        """Read live orders, positions and balances; deliver what changed. Retried (backoff)
        while this connection lives; given up only with the connection."""
        retry = Backoff(base=0.25, cap=5.0)
        source = "rehydrate" if self._hydrated_once else "snapshot"
        while not conn.dead:
            try:
                snap = [
                    (
                        acct,
                        await self.client.get_live_orders(acct),
                        await self.client.get_positions(acct),
                        await self.client.get_balances(acct),
                    )
                    for acct in self.accounts
                ]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._emit("rehydrate_error", repr(exc), error=exc)
                await asyncio.sleep(retry.next_delay())
                continue
            if conn.dead or conn is not self._conn:
                return
            n = 0
            for acct, orders, positions, balance in snap:
                n += self._apply_snapshot(acct, orders, positions, balance, source)
            self._touched = None
            self._hydrated_once = True
            self.stats.rehydrations += 1
            self.stats.rehydrated_changes += n if source == "rehydrate" else 0
            self._emit("rehydrated", f"{n} changes ({source})")
            self._ready.set()
            return

    def _apply_snapshot(
        self,
        acct: str,
        orders: Iterable[Order],
        positions: Iterable[Position],
        balance: Balance,
        source: str,
    ) -> int:
        touched = self._touched or set()
        n = 0
        for o in orders:
            if o.id is None or ("o", o.id) in touched:
                continue
            known = self.orders.get(o.id)
            if known is not None:
                if known.status in TERMINAL_STATUSES and o.status not in TERMINAL_STATUSES:
                    continue  # the read is older than what the stream said
                if _order_key(known) == _order_key(o):
                    continue
            self._deliver(Notification("Order", o, None, source))
            n += 1
        seen: set[tuple[str, str]] = set()
        for p in positions:
            if p.account_number is None:
                p = msgspec.structs.replace(p, account_number=acct)
            key = (acct, p.symbol or "")
            seen.add(key)
            if ("p", *key) in touched:
                continue
            kp = self.positions.get(key)
            if kp is not None and _position_key(kp) == _position_key(p):
                continue
            self._deliver(Notification("CurrentPosition", p, None, source))
            n += 1
        for key, kp in list(self.positions.items()):
            if key[0] == acct and key not in seen and ("p", *key) not in touched:
                gone = msgspec.structs.replace(kp, quantity=Decimal(0))
                self._deliver(Notification("CurrentPosition", gone, None, source))
                n += 1
        if balance.account_number is None:
            balance = msgspec.structs.replace(balance, account_number=acct)
        if ("b", acct) not in touched:
            kb = self.balances.get(acct)
            if kb is None or _balance_key(kb) != _balance_key(balance):
                self._deliver(Notification("AccountBalance", balance, None, source))
                n += 1
        return n


def default_streamer_url(base_url: str, env: str = "production") -> str:
    """The account streamer that goes with a REST base URL: tastytrade's production or sandbox
    (cert) streamer for their API URLs; for any other base URL (the local sim, a proxy) its
    ``/account-streamer`` path, over ``ws``/``wss`` like the base URL's ``http``/``https``."""
    from ttfast.rest.session import PRODUCTION_URL, SANDBOX_URL

    base = base_url.rstrip("/")
    if base == SANDBOX_URL.rstrip("/"):
        return SANDBOX_STREAMER_URL
    if base == PRODUCTION_URL.rstrip("/"):
        return PRODUCTION_STREAMER_URL
    u = urlsplit(base)
    if u.scheme not in ("http", "https") or not u.netloc:
        return SANDBOX_STREAMER_URL if env == "sandbox" else PRODUCTION_STREAMER_URL
    return f"{'wss' if u.scheme == 'https' else 'ws'}://{u.netloc}/account-streamer"
