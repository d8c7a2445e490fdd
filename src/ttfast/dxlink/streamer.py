"""dxLink streamer: picows transport, reconnect, keepalive, watchdog, consumers, stats.

What it may touch: one WebSocket at a time (picows), the event loop, the compiled
``FeedDecoder``/``CandleStore`` through ``ttfast._core``, and the user's callbacks.

Hot path: picows calls :meth:`_Conn.on_ws_frame` synchronously from ``data_received``. A
FEED_DATA frame is decoded right there, in one pass that also reads its channel
(``FeedDecoder.decode_message``; no coroutine, no queue per message); Candle batches are applied
to the ``CandleStore`` (``on_candle_changes`` gets the store's ``Changes``); then synchronous
``on_batch`` callbacks run and bounded ``listen()`` buffers are filled. Everything else (control
messages) goes through the sans-IO :class:`~ttfast.dxlink.protocol.DxLinkProtocol`. Candle
snapshot semantics, including the merge of a resubscription's snapshot after a reconnect, live
in the compiled store (``CandleStore.resume``).

Zero-copy caveat: the frame's payload buffer belongs to picows and is only valid during the
callback. The decoder copies what it keeps (the batch owns its bytes), so batches handed to
callbacks and listeners stay valid; never keep a ``memoryview`` of a frame yourself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Final, Literal

import numpy as np
import picows

from ttfast._core import CandleStore, Changes, FeedDecoder, message_type
from ttfast._wsclient import MessageListener, ReconnectingClient, sleep_until_woken
from ttfast.batch import Batch, ColumnBatch
from ttfast.dxlink.protocol import (
    TICKER_TYPES,
    Authorized,
    AuthRejected,
    ConnectionFatal,
    DxLinkProtocol,
    FeedConfigReceived,
    MalformedMessage,
    ServerError,
    ServerSetup,
    build_candle_symbol,
    decode_control,
    to_epoch_ms,
)
from ttfast.errors import DecodeError

__all__ = [
    "BatchCallback",
    "CandleChangesCallback",
    "ConnectionEvent",
    "ConnectionEventKind",
    "DxLinkStreamer",
    "ListenPolicy",
    "Listener",
    "StreamState",
    "StreamerStats",
    "TokenProvider",
]

log = logging.getLogger("ttfast.dxlink")

TokenProvider = Callable[[], Awaitable[tuple[str, str]]]
#: ``on_batch``: called with every decoded batch (Candle batches after the store applied them)
BatchCallback = Callable[[Batch], None]
#: ``on_candle_changes``: called with the store's Changes after each Candle batch was applied
CandleChangesCallback = Callable[[Changes], None]
#: What ``ConnectionEvent.kind`` can be (see ConnectionEvent).
ConnectionEventKind = Literal[
    "connecting",
    "connected",
    "disconnected",
    "reconnecting",
    "closed",
    "failed",
    "auth_rejected",
    "server_error",
    "rate_limited",
    "watchdog",
    "decode_error",
    "callback_error",
    "token_error",
    "connect_error",
    "snapshot_snip",
    "empty_snapshot",
]
#: What a full ``listen()`` buffer does: conflate to the latest row per symbol, or drop the
#: oldest batch.
ListenPolicy = Literal["conflate", "drop_oldest"]

_TOKEN_MAX_AGE: Final = 23 * 3600.0


class StreamState(Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"  # authorized; subscriptions are being (re)played
    RECONNECTING = "reconnecting"  # waiting for the backoff delay
    CLOSED = "closed"
    FAILED = "failed"  # gave up (max_reconnect_attempts); listeners raise


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """A state change or an error, delivered to ``on_event`` and ``events()``.

    ``kind``: connecting, connected, disconnected, reconnecting, closed, failed, auth_rejected,
    server_error, rate_limited, watchdog, decode_error, callback_error, token_error,
    connect_error, snapshot_snip, empty_snapshot.

    ``decode_error``: something a server frame holds could not be used and was dropped (it
    is also counted in ``stats.decode_errors``; the connection stays up): invalid JSON, a bad
    FEED_DATA group or frame, a malformed FEED_CONFIG layout (the type keeps its last good
    layout), an AUTH_STATE with an unknown state, a SETUP with an unusable keepalive timeout,
    an unexpected message type, a Candle batch the candle store cannot apply, a batch of an
    event type that does not belong to the channel it came on.
    """

    kind: ConnectionEventKind
    state: StreamState
    detail: str = ""
    attempt: int = 0
    close_code: int | None = None
    error: BaseException | None = None
    at: float = field(default_factory=time.time)


@dataclass
class StreamerStats:
    frames: int = 0
    events: int = 0
    bytes: int = 0
    decode_errors: int = 0
    drops: int = 0  # events dropped by drop-oldest listen() buffers
    conflated: int = 0  # older rows replaced by a newer row of the same symbol in listen()
    callback_errors: int = 0
    reconnects: int = 0
    server_errors: int = 0
    keepalives_sent: int = 0
    last_message_at: float = 0.0  # time.monotonic() of the last received frame

    @property
    def last_message_age(self) -> float:
        """Seconds since the last frame from the server (inf before the first)."""
        if self.last_message_at == 0.0:
            return math.inf
        return time.monotonic() - self.last_message_at


def _conflate(batches: Sequence[Batch]) -> ColumnBatch:
    """Latest row per eventSymbol across batches, in order of each symbol's latest row."""
    first = batches[0]
    fields = tuple(first.fields)
    same = [b for b in batches if tuple(b.fields) == fields]
    if len(same) != len(batches):  # layout changed mid-buffer: keep the newest layout only
        fields = tuple(batches[-1].fields)
        same = [b for b in batches if tuple(b.fields) == fields]
    cols = {f: np.concatenate([np.asarray(b.column(f)) for b in same]) for f in fields}
    syms = cols.get("eventSymbol")
    if syms is None:
        idx = np.arange(len(next(iter(cols.values()))))
    else:
        last: dict[Any, int] = {}
        for i, s in enumerate(syms.tolist()):
            last.pop(s, None)
            last[s] = i
        idx = np.fromiter(last.values(), dtype=np.intp, count=len(last))
    return ColumnBatch(first.event_type, {f: c[idx] for f, c in cols.items()})


_END: Final = object()


class Listener:
    """A bounded async iterator of batches of one event type (see DxLinkStreamer.listen)."""

    def __init__(
        self, streamer: DxLinkStreamer, event_type: str, maxlen: int, policy: ListenPolicy
    ) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be >= 1")
        if policy not in ("conflate", "drop_oldest"):
            raise ValueError("policy must be 'conflate' or 'drop_oldest'")
        self.event_type = event_type
        self.maxlen = maxlen
        self.policy: ListenPolicy = policy
        self.dropped = 0  # events lost (drop_oldest)
        self.conflated = 0  # rows superseded by a newer row of the same symbol (conflate)
        self._buf: deque[Batch] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._streamer = streamer
        self._closed = False
        self._error: BaseException | None = None

    def __len__(self) -> int:
        return len(self._buf)

    def _push(self, batch: Batch) -> None:
        buf = self._buf
        buf.append(batch)
        if len(buf) > self.maxlen:
            st = self._streamer.stats
            if self.policy == "conflate":
                before = sum(len(b) for b in buf)
                merged = _conflate(list(buf))
                buf.clear()
                buf.append(merged)
                n = before - len(merged)
                self.conflated += n
                st.conflated += n
            else:
                old = buf.popleft()
                n = len(old)
                self.dropped += n
                st.drops += n
                if self.dropped == n or self.dropped % 10000 < n:
                    log.warning(
                        "listen(%r) buffer full: dropped %d events so far",
                        self.event_type,
                        self.dropped,
                    )
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _finish(self, error: BaseException | None = None) -> None:
        self._closed = True
        self._error = error
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> Batch:
        while not self._buf:
            if self._closed:
                self._streamer._listeners_remove(self)
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._buf.popleft()

    def close(self) -> None:
        self._finish()
        self._streamer._listeners_remove(self)


class _Conn(MessageListener):
    """picows listener of one connection; forwards to the streamer synchronously."""

    s: DxLinkStreamer

    def __init__(self, streamer: DxLinkStreamer) -> None:
        super().__init__(streamer)
        #: set when the timers' inputs change (the server's SETUP): wakes the ticker up
        self.timers_changed = asyncio.Event()


class DxLinkStreamer(ReconnectingClient[StreamState, _Conn]):
    """A self-healing dxLink client for tastytrade market data.

    ``token_provider`` is an async callable returning ``(dxlink_url, token)`` (the REST
    session's ``/api-quote-tokens``; tests pass the local server's); if it has an
    ``invalidate(token)`` method, that is called with a token the server rejected. Use as::

        async with DxLinkStreamer(url, provider) as s:
            s.subscribe("Quote", ["SPY"])
            async for batch in s.listen("Quote"):
                ...

    ``url`` (may be None) overrides the provider's URL. Time parameters are in seconds.
    ``receive_timeout`` None = the server's SETUP keepaliveTimeout (60 s on tastytrade).

    Candles: ``candle_store`` is the ``CandleStore`` Candle batches are applied to (default: a
    new one of ``candle_capacity`` bars per symbol), exposed as ``streamer.candles``.
    ``on_candle_changes(changes)`` is called synchronously after every Candle batch was applied,
    with the store's ``Changes`` (possibly empty), before ``on_batch`` callbacks.
    ``accept_candle_symbol(symbol)``, when given, is asked for every Candle row whose
    ``eventSymbol`` it has not accepted yet; rows it refuses are not applied (the batch handed to
    ``on_batch`` and ``listen()`` is the one received). A raising callback is counted in
    ``stats.callback_errors`` and reported (``callback_error``); the connection lives on.
    """

    _State = StreamState
    _NAME = "dxLink streamer"
    _TASK = "dxlink"
    _HANDSHAKE_TIMEOUT = ("handshake timeout", "handshake timeout")
    state: StreamState
    stats: StreamerStats

    def __init__(
        self,
        url: str | None,
        token_provider: TokenProvider,
        *,
        aggregation_period: float = 0.1,
        candle_aggregation_period: float | None = None,
        event_fields: Mapping[str, Sequence[str]] | None = None,
        contract: str = "AUTO",
        candle_contract: str = "HISTORY",
        on_batch: BatchCallback | None = None,
        on_event: Callable[[ConnectionEvent], None] | None = None,
        candle_capacity: int = 4096,
        candle_store: CandleStore | None = None,
        on_candle_changes: CandleChangesCallback | None = None,
        accept_candle_symbol: Callable[[object], bool] | None = None,
        keepalive_interval: float = 30.0,
        receive_timeout: float | None = None,
        handshake_timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        stable_after: float = 10.0,
        max_reconnect_attempts: int | None = None,
        candle_pace: float = 0.05,
        token_max_age: float = _TOKEN_MAX_AGE,
        connect_timeout: float = 30.0,
        max_frame_size: int = 64 * 1024 * 1024,
    ) -> None:
        self._url_override = url
        self._token_provider = token_provider
        self.protocol = DxLinkProtocol(
            aggregation_period=aggregation_period,
            candle_aggregation_period=candle_aggregation_period,
            event_fields=event_fields,
            contract=contract,
            candle_contract=candle_contract,
        )
        self.candles: CandleStore = (
            candle_store if candle_store is not None else CandleStore(candle_capacity)
        )
        self.stats = StreamerStats()
        super().__init__(
            handshake_timeout=handshake_timeout,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            stable_after=stable_after,
            max_reconnect_attempts=max_reconnect_attempts,
            connect_timeout=connect_timeout,
            max_frame_size=max_frame_size,
        )
        self.keepalive_interval = keepalive_interval
        self.receive_timeout = receive_timeout
        self.candle_pace = candle_pace
        self.token_max_age = token_max_age
        self._callbacks: list[BatchCallback] = [on_batch] if on_batch is not None else []
        self._on_event = on_event
        self._on_candle_changes = on_candle_changes
        self._accept_candle_symbol = accept_candle_symbol
        self._candle_accepted: set[str] = set()
        self._listeners: dict[str, list[Listener]] = {}
        self._event_listeners: list[tuple[deque[ConnectionEvent], list[asyncio.Future[None]]]] = []
        self._token: tuple[str, str] | None = None
        self._token_at = 0.0
        self._need_fresh_token = False
        # one decoder per connection for every channel (their event types are disjoint); the
        # frame's channel comes out of the same decoding pass
        self._decoder: FeedDecoder | None = None
        self._dec_bad = 0
        self._pace_wakeup = asyncio.Event()
        # candles: user-requested start per candle symbol (resume state lives in the store)
        self._candle_start: dict[str, int] = {}
        self._candles_sent_unseen: set[str] = set()

    # ---- public API ------------------------------------------------------------------------

    async def open(self) -> None:
        """Start the connection loop and wait for the first AUTHORIZED (connect_timeout)."""
        await self._open()

    async def wait_connected(self) -> None:
        """Wait until the streamer is authorized (again); raise if it failed."""
        await self._wait_ready()

    async def close(self) -> None:
        """Cancel channels, close the socket, stop every task; listeners end."""
        await self._shutdown()
        self._set_state(StreamState.CLOSED, "closed")
        for ls in list(self._listeners.values()):
            for lst in list(ls):
                lst._finish()
        self._listeners.clear()

    def subscribe(self, event_type: str, symbols: Iterable[str]) -> None:
        """Subscribe (idempotent); sent now if connected, else replayed on connect."""
        self.protocol.subscribe(event_type, symbols)
        self._flush()

    def unsubscribe(self, event_type: str, symbols: Iterable[str]) -> None:
        syms = list(symbols)
        self.protocol.unsubscribe(event_type, syms)
        if event_type == "Candle":
            for s in syms:
                self._candle_start.pop(s, None)
                self.candles.cancel_resume(s)
        self._flush()

    def subscribe_candles(
        self,
        symbols: Iterable[str],
        period: str = "5m",
        start: datetime | int | None = None,
        *,
        extended_hours: bool = True,
        price: str | None = None,
    ) -> list[str]:
        """Subscribe candles from ``start`` (datetime or epoch ms; default: 1 day ago).

        Returns the normalized candle symbols (keys of ``streamer.candles``). Subscriptions are
        sent one per message, paced by ``candle_pace``.
        """
        from_ms = to_epoch_ms(start) if start is not None else int(time.time() * 1000) - 86_400_000
        out: dict[str, int] = {}
        for s in symbols:
            cs = build_candle_symbol(s, period, extended_hours=extended_hours, price=price)
            out[cs] = from_ms
            self._candle_start[cs] = from_ms
            self.candles.cancel_resume(cs)  # a new start: its snapshot replaces
        self.protocol.subscribe_candle_symbols(out)
        self._flush()
        return list(out)

    def add_batch_callback(self, cb: BatchCallback) -> None:
        self._callbacks.append(cb)

    def remove_batch_callback(self, cb: BatchCallback) -> None:
        self._callbacks.remove(cb)

    def listen(
        self, event_type: str, *, maxlen: int = 1024, policy: ListenPolicy | None = None
    ) -> Listener:
        """A bounded async iterator of batches of ``event_type``.

        ``maxlen`` bounds the number of buffered batches. On overflow (``policy`` None: by
        type) TICKER types (Quote, Trade, Summary, Profile...) are conflated to the latest row
        per symbol (``"conflate"``: a ``ColumnBatch``); other types drop the oldest batch
        (``"drop_oldest"``). Both are counted (listener.dropped/conflated and in stats).
        """
        if policy is None:
            policy = "conflate" if event_type in TICKER_TYPES else "drop_oldest"
        lst = Listener(self, event_type, maxlen, policy)
        if self.state is StreamState.CLOSED:
            lst._finish()  # iterating a closed streamer ends at once instead of hanging
        elif self.state is StreamState.FAILED:
            lst._finish(ConnectionError(f"dxLink failed: {self._last_error!r}"))
        else:
            self._listeners.setdefault(event_type, []).append(lst)
        return lst

    async def events(self, maxlen: int = 1000) -> AsyncIterator[ConnectionEvent]:
        """Async iterator of ConnectionEvents (bounded; the oldest are dropped on overflow)."""
        buf: deque[ConnectionEvent] = deque(maxlen=maxlen)
        waiters: list[asyncio.Future[None]] = []
        entry = (buf, waiters)
        self._event_listeners.append(entry)
        try:
            while True:
                while buf:
                    ev = buf.popleft()
                    yield ev
                    if ev.kind in ("closed", "failed"):
                        return
                fut = asyncio.get_running_loop().create_future()
                waiters.append(fut)
                await fut
        finally:
            self._event_listeners.remove(entry)

    @property
    def connected(self) -> bool:
        return self.state is StreamState.CONNECTED

    # ---- events ----------------------------------------------------------------------------

    def _emit(self, ev: ConnectionEvent) -> None:
        if ev.kind in ("server_error", "decode_error", "callback_error", "auth_rejected"):
            log.warning("dxlink %s: %s", ev.kind, ev.detail)
        else:
            log.info("dxlink %s: %s", ev.kind, ev.detail)
        if self._on_event is not None:
            try:
                self._on_event(ev)
            except Exception:
                self.stats.callback_errors += 1
                log.exception("on_event callback raised")
        for buf, waiters in self._event_listeners:
            buf.append(ev)
            for w in waiters:
                if not w.done():
                    w.set_result(None)
            waiters.clear()

    def _event(
        self, kind: ConnectionEventKind, detail: str = "", error: BaseException | None = None
    ) -> None:
        self._emit(ConnectionEvent(kind, self.state, detail, error=error))

    def _set_state(
        self, state: StreamState, kind: ConnectionEventKind, detail: str = "", **kw: Any
    ) -> None:
        self.state = state
        if state is StreamState.CONNECTED:
            self._ready.set()
        else:
            self._ready.clear()
        self._emit(ConnectionEvent(kind, state, detail, attempt=self.backoff.attempt, **kw))
        if state is StreamState.FAILED:  # gave up: listeners raise
            for ls in self._listeners.values():
                for lst in ls:
                    lst._finish(ConnectionError(f"dxLink failed: {self._last_error!r}"))

    def _listeners_remove(self, lst: Listener) -> None:
        ls = self._listeners.get(lst.event_type)
        if ls is not None and lst in ls:
            ls.remove(lst)

    # ---- connection loop -------------------------------------------------------------------

    async def _get_token(self) -> tuple[str, str]:
        now = time.monotonic()
        if (
            self._token is None
            or self._need_fresh_token
            or now - self._token_at > self.token_max_age
        ):
            url, token = await self._token_provider()
            self._token = (url, token)
            self._token_at = now
            self._need_fresh_token = False
        return self._token

    def _token_rejected(self) -> None:
        """The server refused the token: the next connection asks the provider for a new one,
        and a provider that caches (``invalidate(token)``, as the REST client's
        ``quote_token_provider()``) first drops the refused token."""
        self._need_fresh_token = True
        invalidate = getattr(self._token_provider, "invalidate", None)
        if invalidate is not None and self._token is not None:
            invalidate(self._token[1])

    async def _begin_connection(self) -> tuple[str, str]:
        url, token = await self._get_token()
        if self._url_override:
            url = self._url_override
        return url, token

    def _new_conn(self) -> _Conn:
        return _Conn(self)

    def _connection_made(self, conn: _Conn, token: str) -> list[asyncio.Task[None]]:
        self.protocol.connection_made(token)
        self._flush()
        loop = asyncio.get_running_loop()
        ticker = loop.create_task(self._ticker(conn), name="dxlink-ticker")
        pacer = loop.create_task(self._pacer(conn), name="dxlink-pacer")
        return [ticker, pacer]

    def _connection_lost(self) -> None:
        self.protocol.connection_lost()

    def _prepare_connection(self) -> None:
        dec = FeedDecoder(on_error="skip")  # a bad group costs only that group (pitfall 6)
        for c in self.protocol.channels.values():
            for t in c.event_types:
                dec.set_fields(t, self.protocol.event_fields[t])  # until FEED_CONFIG arrives
        self._decoder = dec
        self._dec_bad = 0
        self._candles_sent_unseen.clear()
        # candles resume from the last known bar (the forming one): no full re-download; the
        # store merges the snapshot of such a subscription instead of letting it replace
        for (_, sym), entry in self.protocol.subscriptions[
            self.protocol.channel_for("Candle")
        ].items():
            start = self._candle_start.get(sym, entry["fromTime"])
            last = self.candles.resume(sym)  # None: nothing to resume from (mode off)
            self.protocol.set_candle_from_time(sym, start if last is None else max(start, last))

    def _timer_settings(self) -> tuple[float, float]:
        """(KEEPALIVE interval, receive watchdog) for the current connection, in seconds.

        Before the server's SETUP: the configured values (the watchdog: ``receive_timeout``,
        else 60 s). After it: the KEEPALIVE interval shrinks to half the server's
        acceptKeepaliveTimeout if that is shorter, and the watchdog is the server's
        keepaliveTimeout unless ``receive_timeout`` is set (spec §3.2, §3.4).
        """
        ka = self.keepalive_interval
        srv = self.protocol.server_accept_keepalive_timeout
        if srv:
            ka = min(ka, srv / 2)
        wd = self.receive_timeout or self.protocol.server_keepalive_timeout or 60.0
        return ka, wd

    async def _ticker(self, conn: _Conn) -> None:
        """KEEPALIVE sender + receive watchdog + handshake timeout for one connection.

        Sleeps until the earliest of the three deadlines, recomputed on every wake-up; the
        server's SETUP wakes it at once (``conn.timers_changed``), so negotiated values apply
        from the first tick instead of after a first sleep sized by the defaults.
        """
        started = time.monotonic()
        last_ka = started
        changed = conn.timers_changed
        while True:
            if conn.dead:
                return
            ka, wd = self._timer_settings()
            now = time.monotonic()
            watch = self._watchdog(conn, started, now, wd)
            if watch is None:
                return
            if now - last_ka >= ka and conn.transport is not None:
                conn.transport.send(picows.WSMsgType.TEXT, self.protocol.keepalive())
                self.stats.keepalives_sent += 1
                last_ka = now
            await sleep_until_woken(changed, min(last_ka + ka, watch) - now)

    async def _pacer(self, conn: _Conn) -> None:
        """Candle subscriptions one per message, at most one per candle_pace seconds."""
        while not conn.dead:
            item = self.protocol.take_paced()
            if item is None:
                self._pace_wakeup.clear()
                await self._pace_wakeup.wait()
                continue
            sym, msg = item
            if conn.transport is None or conn.dead:
                return
            conn.transport.send(picows.WSMsgType.TEXT, msg)
            self._candles_sent_unseen.add(sym)
            await asyncio.sleep(self.candle_pace)

    def _flush(self) -> None:
        conn = self._conn
        out = self.protocol.take_outgoing()
        if conn is None or conn.transport is None or conn.dead:
            return
        for msg in out:
            conn.transport.send(picows.WSMsgType.TEXT, msg)
        if self.protocol.paced_pending:
            self._pace_wakeup.set()

    # ---- frame handling (synchronous, inside picows' data_received) ------------------------

    def _protocol_error(
        self, conn: _Conn | None, detail: str, error: BaseException | None = None
    ) -> None:
        """A frame (or part of one) from the server could not be used: count it, tell."""
        self.stats.decode_errors += 1
        self._emit(ConnectionEvent("decode_error", self.state, detail, error=error))

    def _frame_failed(self, conn: _Conn, exc: Exception) -> None:
        log.exception("dxlink: unexpected error while handling a frame")
        self._protocol_error(conn, f"error while handling a frame: {exc!r}", exc)
        with contextlib.suppress(Exception):
            self._flush()

    def _on_message(self, conn: _Conn, payload: bytes) -> None:
        if conn is not self._conn or conn.dead:
            return
        st = self.stats
        st.frames += 1
        st.bytes += len(payload)
        st.last_message_at = time.monotonic()
        try:
            mtype = message_type(payload)
        except Exception as exc:
            self._protocol_error(conn, f"unreadable frame: {exc!r}")
            return
        if mtype == "FEED_DATA":
            self._on_feed_data(payload)
            return
        try:
            msg = decode_control(payload)
        except ValueError as exc:
            self._protocol_error(conn, str(exc))
            return
        for ev in self.protocol.receive(msg):
            if isinstance(ev, FeedConfigReceived):
                self._configure_decoder(conn, ev)
            elif isinstance(ev, MalformedMessage):
                self._protocol_error(conn, f"ch{ev.channel}: {ev.detail}")
            elif isinstance(ev, Authorized):
                self._connected_at = time.monotonic()
                self._set_state(StreamState.CONNECTED, "connected", ev.user_id or "")
            elif isinstance(ev, AuthRejected):
                self._token_rejected()
                self._emit(ConnectionEvent("auth_rejected", self.state, "token rejected"))
            elif isinstance(ev, ServerError):
                st.server_errors += 1
                if ev.rate_limited:
                    self._on_rate_limited(ev)
                else:
                    self._emit(
                        ConnectionEvent(
                            "server_error", self.state, f"{ev.error} ch{ev.channel}: {ev.message}"
                        )
                    )
            elif isinstance(ev, ConnectionFatal):
                if ev.refresh_token:
                    self._token_rejected()
                self._end_connection(conn, ev.reason)
                return
            elif isinstance(ev, ServerSetup):
                conn.timers_changed.set()  # the ticker re-reads the negotiated timeouts
        self._flush()

    def _configure_decoder(self, conn: _Conn, ev: FeedConfigReceived) -> None:
        """Apply a FEED_CONFIG (parsed once, by the protocol) to the decoder.

        The protocol validated the layouts (and dropped malformed ones), so the decoder accepts
        them: both keep the same layouts. Only the layouts of the channel's own event types are
        taken: the decoder serves every channel, and another channel's types are not this
        channel's to define.
        """
        dec = self._decoder
        c = self.protocol.channels.get(ev.channel)
        if dec is None or c is None:
            return
        msg = ev.message
        ef = msg.get("eventFields")
        if isinstance(ef, dict) and not ef.keys() <= c.event_types:
            msg = {**msg, "eventFields": {t: f for t, f in ef.items() if t in c.event_types}}
        try:
            dec.configure(msg)
        except DecodeError as exc:  # pragma: no cover - rules out of sync: a bug
            self._protocol_error(conn, f"FEED_CONFIG: {exc}", exc)

    def _on_rate_limited(self, ev: ServerError) -> None:
        self.candle_pace = min(max(self.candle_pace * 2, 0.01), 5.0)
        again = sorted(self._candles_sent_unseen)  # sent on this connection, no data yet
        self._candles_sent_unseen.clear()
        n = self.protocol.requeue_candles(again)
        self._emit(
            ConnectionEvent(
                "rate_limited",
                self.state,
                f"{ev.message}; candle pace now {self.candle_pace:.3f}s, re-sending {n}",
            )
        )
        if n:
            self._pace_wakeup.set()

    def _on_feed_data(self, payload: bytes) -> None:
        st = self.stats
        dec = self._decoder
        if dec is None:  # pragma: no cover - a connection always has its decoder
            return
        prev_err = dec.last_error
        try:
            ch, batches = dec.decode_message(payload)
        except DecodeError as exc:
            st.decode_errors += 1
            self._emit(ConnectionEvent("decode_error", self.state, str(exc), error=exc))
            return
        channel = self.protocol.channels.get(ch)
        skipped = dec.last_error is not prev_err  # skip mode dropped bad group(s), kept the rest
        if skipped:
            ds = dec.stats
            bad = ds["bad_groups"] + ds["bad_frames"]
            n_bad, self._dec_bad = bad - self._dec_bad, bad
        if channel is None:  # the whole frame is unusable: one error
            self._protocol_error(self._conn, f"FEED_DATA on unknown channel {ch}")
            return
        if skipped:
            st.decode_errors += max(1, n_bad)
            err = dec.last_error
            self._emit(ConnectionEvent("decode_error", self.state, str(err), error=err))
        self._got_data = True
        types = channel.event_types
        for batch in batches:
            et = batch.event_type
            if et not in types:
                self._protocol_error(self._conn, f"FEED_DATA: {et} events on channel {ch}")
                continue
            st.events += len(batch)
            if et == "Candle":
                self._apply_candles(batch)
            for cb in self._callbacks:
                try:
                    cb(batch)
                except Exception as exc:
                    self._callback_failed("on_batch", exc)
            ls = self._listeners.get(et)
            if ls:
                for lst in ls:
                    lst._push(batch)

    def _callback_failed(self, name: str, exc: Exception) -> None:
        self.stats.callback_errors += 1
        log.exception("%s callback raised", name)
        self._emit(ConnectionEvent("callback_error", self.state, repr(exc), error=exc))

    def _apply_candles(self, batch: Batch) -> None:
        """Apply a Candle batch to the store (snapshot semantics, resume merges included, are
        the store's); tell ``on_candle_changes``; report truncated and empty snapshots."""
        syms = batch.column("eventSymbol")
        if syms is not None and self._candles_sent_unseen:
            self._candles_sent_unseen.difference_update(set(syms.tolist()))
        accept = self._accept_candle_symbol
        if accept is not None and syms is not None:
            batch = self._screen_candles(batch, syms, accept)
        try:
            changes = self.candles.apply(batch)
        except ValueError as exc:  # a layout the store cannot use (no eventSymbol, no time...)
            self._protocol_error(self._conn, f"Candle batch not applied: {exc}", exc)
            return
        cb = self._on_candle_changes
        if cb is not None:
            try:
                cb(changes)
            except Exception as exc:
                self._callback_failed("on_candle_changes", exc)
        for ch in changes:
            if ch.snapshot:
                series = ch.series
                if series.snip:
                    self._emit(
                        ConnectionEvent(
                            "snapshot_snip",
                            self.state,
                            f"{ch.symbol}: server truncated the snapshot ({len(series)} bars)",
                        )
                    )
                elif not len(series):
                    self._emit(
                        ConnectionEvent(
                            "empty_snapshot",
                            self.state,
                            f"{ch.symbol}: empty candle snapshot (on an AUTO channel this is "
                            "the I-TW353 symptom; candles belong on HISTORY)",
                        )
                    )

    def _screen_candles(self, batch: Batch, syms: Any, accept: Callable[[object], bool]) -> Batch:
        """`batch` without the rows of symbols ``accept_candle_symbol`` refuses.

        Accepted symbols are remembered, so a batch of known symbols costs one C-level set
        check; only a batch with a new symbol takes the per-row path.
        """
        known = self._candle_accepted
        try:
            if known.issuperset(syms):
                return batch
        except TypeError:  # an unhashable value in the column: the per-row path sorts it out
            pass
        keep = np.ones(len(syms), dtype=bool)
        for i, sym in enumerate(syms.tolist()):
            if isinstance(sym, str) and sym in known:
                continue
            try:
                ok = accept(sym)
            except Exception as exc:
                ok = False
                self._callback_failed("accept_candle_symbol", exc)
            if not ok:
                keep[i] = False
            elif isinstance(sym, str):
                known.add(sym)
        if keep.all():
            return batch
        cols = {}
        for f in batch.fields:
            col = batch.column(f)
            if col is not None:
                cols[f] = col[keep]
        return ColumnBatch(batch.event_type, cols)
