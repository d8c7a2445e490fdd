"""Local dxLink server (``ttfast.sim``): a strict imitation of tastytrade's dxFeed endpoint.

Runs on picows inside the caller's asyncio loop (tests, the offline demo, the client benchmark's
load generator). Behaviour follows the protocol notes (copied facts in README.md, "Local servers"):

* strict order: SETUP -> AUTH -> channels; exact ERROR texts ("AUTH step missing",
  "Protocol violation with an even channel usage.", "The message is not valid JSON.", TIMEOUT);
* FEED_CONFIG answering FEED_SETUP carries no ``eventFields``; the layout of a type is announced
  lazily in a FEED_CONFIG right before the first FEED_DATA of that type; unknown field names are
  dropped, the requested order is kept;
* COMPACT and FULL; doubles formatted like Java (``100.0``, ``1.3743299E7``, ``"NaN"``);
* TICKER types conflated per aggregation period (a row is re-sent only if it changed); STREAM
  (TimeAndSale) sends every simulated trade; Candle: newest-first snapshot 0x04 ... 0x0A (or a
  single 0x0E when empty, 0x10 SNIP on the last row when capped), then live forming-bar updates
  with the bar's index and flags 0;
* KEEPALIVE when idle, ERROR TIMEOUT + close when the client is silent, close 1009 on frames
  larger than ``max_frame_size``;
* fault switches (:class:`Faults`) for every pitfall a client must survive.

This module is the protocol side: the server, and per connection the handshake, channels,
FEED_SETUP / FEED_SUBSCRIPTION handling, keepalive and timeouts, and the faults that act on the
connection (silence, closes, restarts, AUTH faults, subscription rate, close after N frames).
What the data frames contain is :mod:`ttfast.sim.dxlink_feed` (a ``FeedGenerator`` per
connection); data come from :mod:`ttfast.sim.market` (pure functions of seed/symbol/time).

Assumptions where the protocol notes are UNVERIFIED (chosen here, documented in the README):
the TIMEOUT text uses the configured timeout; messages before SETUP get
``BAD_ACTION "SETUP step missing"``; channel messages for a channel that is not open get
``BAD_ACTION "Channel N is not opened"`` on channel N; a repeated CHANNEL_REQUEST for an open
channel is answered with CHANNEL_OPENED again (state kept); combined FEED_SUBSCRIPTION is applied
reset -> remove -> add; with no FEED_SETUP the channel uses COMPACT, the default aggregation period
and the default field lists (``eventType`` + the Java field order).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import picows

from ttfast.sim import market
from ttfast.sim.dxlink_feed import EVENT_FIELDS, FeedChannel, FeedGenerator, corrected_bar
from ttfast.sim.pricing import Clock, OptionSymbol

__all__ = [
    "EVENT_FIELDS",
    "DxLinkServer",
    "Faults",
    "SimClock",
    "corrected_bar",
]

log = logging.getLogger("ttfast.sim.dxlink")

SERVER_VERSION = "1.0-1.2.1-20240722-153442"

MSG_AUTH_MISSING = "AUTH step missing"
MSG_SETUP_MISSING = "SETUP step missing"
MSG_EVEN_CHANNEL = "Protocol violation with an even channel usage."
MSG_BAD_JSON = "The message is not valid JSON."
MSG_RATE = "Your subscription rate is too high"

Contract = Literal["AUTO", "TICKER", "STREAM", "HISTORY"]
FieldsMode = Literal["lazy", "eager", "late", "absent", "reordered"]


class SimClock:
    """Simulated wall clock: ``start_ms + (elapsed real time) * time_scale``.

    ``time_scale=60`` makes a 1-minute candle roll every real second. ``advance(ms)`` jumps.
    """

    def __init__(self, start_ms: int | None = None, time_scale: float = 1.0) -> None:
        self.start_ms = int(time.time() * 1000) if start_ms is None else int(start_ms)
        self.time_scale = float(time_scale)
        self._t0 = time.monotonic()
        self._offset_ms = 0

    def now_ms(self) -> int:
        elapsed = (time.monotonic() - self._t0) * self.time_scale * 1000.0
        return self.start_ms + self._offset_ms + int(elapsed)

    def advance(self, ms: int) -> None:
        """Jump simulated time forward by ``ms``."""
        self._offset_ms += int(ms)


@dataclass
class Faults:
    """Fault switches; all off by default (a well-behaved tastytrade-like server).

    Times are real seconds since the connection was accepted.
    """

    #: after this many seconds stop sending anything (no data, no KEEPALIVE, no replies) and
    #: never close: the "silent socket" tastytrade sometimes produces
    silent_after_s: float | None = None
    #: close the connection after this many seconds / this many FEED_DATA frames
    close_after_s: float | None = None
    close_after_frames: int | None = None
    #: close code for ``close_after_*``; ``None`` = drop TCP without a close frame
    close_code: int | None = 1000
    #: send close 1012 (service restart) after this many seconds
    restart_after_s: float | None = None
    #: answer every AUTH with AUTH_STATE UNAUTHORIZED (and close if ``reject_auth_close``)
    reject_auth: bool = False
    reject_auth_close: bool = False
    #: never answer AUTH (no AUTH_STATE, the connection stays open and idle KEEPALIVEs keep
    #: flowing): a handshake that hangs, for the client's handshake timeout
    ignore_auth: bool = False
    #: how eventFields are announced: lazy (tastytrade), eager (in the FEED_SETUP answer),
    #: late (after the first FEED_DATA of the type), absent (never), reordered (Java order)
    event_fields: FieldsMode = "lazy"
    #: known field names the server silently drops anyway, per event type
    drop_fields: dict[str, frozenset[str]] = field(default_factory=dict)
    #: put all TICKER types of one flush into one FEED_DATA (``["Quote",[..],"Trade",[..]]``)
    multi_type_frames: bool = False
    #: seconds after a candle snapshot: correct the 3rd and 4th newest bars in a TX group
    #: (``0x01`` row then ``0x00`` row; values from :func:`corrected_bar`)
    tx_correction_after_s: float | None = None
    #: seconds after a candle snapshot: REMOVE (0x02) the 3rd newest bar
    remove_bar_after_s: float | None = None
    #: seconds after a candle snapshot: send a complete second snapshot
    second_snapshot_after_s: float | None = None
    #: cap candle snapshots at this many rows (last row flagged SNAPSHOT_SNIP 0x10)
    snip_rows: int | None = None
    #: every candle snapshot is empty (single 0x0E row); live bars still follow
    empty_snapshot: bool = False
    #: I-TW353 mode: Candle on an AUTO channel gets only an empty snapshot, nothing else
    candles_auto_empty: bool = False
    #: "Infinity"/"-Infinity" sizes, null strings and "\\u0000" exchange codes in rows
    special_values: bool = False
    #: max FEED_SUBSCRIPTION ``add`` entries per second per connection; excess entries are
    #: ignored and answered with BAD_ACTION "Your subscription rate is too high"
    subscription_rate_limit: int | None = None


class _Conn(picows.WSListener):
    """One client connection: the protocol state machine. Its :class:`FeedGenerator` makes the
    data; every frame goes out through :meth:`send_text` / :meth:`send_data`."""

    def __init__(self, server: DxLinkServer, number: int) -> None:
        self.server = server
        self.number = number
        f = server.faults
        self.faults: Faults = f(number) if callable(f) else f
        self.transport: picows.WSTransport | None = None
        self.setup_done = False
        self.authorized = False
        self.channels: dict[int, FeedChannel] = {}
        self.loop = asyncio.get_running_loop()
        self.t_connect = self.loop.time()
        self.last_recv = self.t_connect
        self.last_send = self.t_connect
        self.data_frames = 0
        self.closed = False
        self.silent = False
        lim = server.record_limit
        self.sent: deque[str] = deque(maxlen=lim)
        self.received: deque[dict[str, Any]] = deque(maxlen=lim)
        self.errors_sent: deque[tuple[int, str, str]] = deque(maxlen=lim)
        self._adds: list[float] = []
        self._frag: list[bytes] = []
        self._task: asyncio.Task[None] | None = None
        self.paused = False  # transport buffer full: data flushes wait (TICKER rows conflate)
        self.paused_count = 0
        self.feed = FeedGenerator(self)

    # -------------------------------------------------------------------- transport callbacks
    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.transport = transport
        self.server._conns.append(self)
        self._task = self.loop.create_task(self._ticker())

    def pause_writing(self) -> None:
        self.paused = True
        self.paused_count += 1

    def resume_writing(self) -> None:
        self.paused = False

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self.closed = True
        with contextlib.suppress(ValueError):
            self.server._conns.remove(self)
        if self._task is not None:
            self._task.cancel()

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        mt = frame.msg_type
        if mt == picows.WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if mt not in (picows.WSMsgType.TEXT, picows.WSMsgType.CONTINUATION):
            return
        if not frame.fin or self._frag:
            self._frag.append(frame.get_payload_as_bytes())
            if sum(len(x) for x in self._frag) > self.server.max_frame_size:
                self._frag.clear()
                self.close(1009)
                return
            if not frame.fin:
                return
            payload = b"".join(self._frag)
            self._frag.clear()
        else:
            payload = frame.get_payload_as_bytes()
        self.last_recv = self.loop.time()
        try:
            self._on_text(payload)
        except Exception:  # a server bug must not kill the loop; it is logged and counted
            log.exception("sim: error handling %r", payload[:200])
            self.server.internal_errors += 1

    # -------------------------------------------------------------------- sending
    def send_text(self, text: str) -> None:
        if self.closed or self.silent or self.transport is None:
            return
        self.transport.send(picows.WSMsgType.TEXT, text.encode())
        self.last_send = self.loop.time()
        self.server.frames_sent += 1
        if self.server.record_sent:
            self.sent.append(text)

    def send_msg(self, msg: dict[str, Any]) -> None:
        self.send_text(json.dumps(msg, separators=(",", ":")))

    def error(self, channel: int, code: str, message: str) -> None:
        self.errors_sent.append((channel, code, message))
        self.server.errors_sent.append((self.number, channel, code, message))
        self.send_msg({"type": "ERROR", "channel": channel, "error": code, "message": message})

    def close(self, code: int | None) -> None:
        if self.closed or self.transport is None:
            return
        if code is not None:
            self.transport.send_close(picows.WSCloseCode(code))
        self.transport.disconnect(graceful=code is not None)
        self.closed = True

    def send_data(self, ch: FeedChannel, body: str) -> None:
        """One FEED_DATA frame (counted for ``Faults.close_after_frames``)."""
        self.send_text(f'{{"type":"FEED_DATA","channel":{ch.id},"data":[{body}]}}')
        self.data_frames += 1
        fa = self.faults
        if fa.close_after_frames is not None and self.data_frames >= fa.close_after_frames:
            self.close(fa.close_code)

    # -------------------------------------------------------------------- protocol
    def _on_text(self, payload: bytes) -> None:
        try:
            msg = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            self.error(0, "INVALID_MESSAGE", MSG_BAD_JSON)
            return
        if not isinstance(msg, dict):
            self.error(0, "INVALID_MESSAGE", MSG_BAD_JSON)
            return
        self.received.append(msg)
        self.server.received.append((self.number, msg))
        mtype = msg.get("type")
        chan = msg.get("channel")
        if not isinstance(mtype, str) or not isinstance(chan, int) or isinstance(chan, bool):
            self.error(0, "INVALID_MESSAGE", "The message must have string 'type' and integer "
                       "'channel' fields.")  # fmt: skip
            return
        if mtype == "KEEPALIVE":
            return
        if mtype == "SETUP":
            self._on_setup(msg)
            return
        if mtype == "ERROR":
            return  # clients may report errors (the JS client does); informational
        if not self.setup_done:
            self.error(0, "BAD_ACTION", MSG_SETUP_MISSING)
            return
        if mtype == "AUTH":
            self._on_auth(msg)
            return
        if mtype not in ("CHANNEL_REQUEST", "CHANNEL_CANCEL", "FEED_SETUP", "FEED_SUBSCRIPTION"):
            self.error(chan, "INVALID_MESSAGE", f"Unknown message type: {mtype}")
            return
        if not self.authorized:
            self.error(0, "BAD_ACTION", MSG_AUTH_MISSING)
            return
        if chan % 2 == 0:
            self.error(0, "BAD_ACTION", MSG_EVEN_CHANNEL)
            return
        if mtype == "CHANNEL_REQUEST":
            self._on_channel_request(chan, msg)
            return
        ch = self.channels.get(chan)
        if ch is None:
            self.error(chan, "BAD_ACTION", f"Channel {chan} is not opened")
            return
        if mtype == "CHANNEL_CANCEL":
            del self.channels[chan]
            self.send_msg({"type": "CHANNEL_CLOSED", "channel": chan})
        elif mtype == "FEED_SETUP":
            self._on_feed_setup(ch, msg)
        else:
            self._on_subscription(ch, msg)

    def _on_setup(self, msg: dict[str, Any]) -> None:
        srv = self.server
        ka = srv.keepalive_timeout
        self.send_msg({
            "type": "SETUP", "channel": 0,
            "keepaliveTimeout": int(ka) if float(ka).is_integer() else ka,
            "acceptKeepaliveTimeout": int(ka) if float(ka).is_integer() else ka,
            "version": SERVER_VERSION,
        })  # fmt: skip
        if not self.setup_done:
            self.setup_done = True
            state = "AUTHORIZED" if not srv.require_auth else "UNAUTHORIZED"
            self.authorized = not srv.require_auth
            self.send_msg({"type": "AUTH_STATE", "channel": 0, "state": state})

    def _on_auth(self, msg: dict[str, Any]) -> None:
        if self.faults.ignore_auth:
            return
        token = msg.get("token")
        ok = isinstance(token, str) and self.server.token_validator(token)
        if self.faults.reject_auth:
            ok = False
        if ok:
            self.authorized = True
            self.send_msg({"type": "AUTH_STATE", "channel": 0, "state": "AUTHORIZED",
                           "userId": self.server.user_id})  # fmt: skip
        else:
            self.authorized = False
            self.send_msg({"type": "AUTH_STATE", "channel": 0, "state": "UNAUTHORIZED"})
            if self.faults.reject_auth_close:
                self.close(1000)

    def _on_channel_request(self, chan: int, msg: dict[str, Any]) -> None:
        service = msg.get("service")
        params = msg.get("parameters")
        if not isinstance(params, dict):
            params = {}
        if service != "FEED":
            self.error(chan, "BAD_ACTION", f"Unsupported service: {service}")
            return
        contract = params.get("contract", "AUTO")
        if contract not in ("AUTO", "TICKER", "STREAM", "HISTORY"):
            self.error(chan, "BAD_ACTION", f"Unsupported contract: {contract}")
            return
        if chan not in self.channels:
            agg = self.server.default_aggregation
            self.channels[chan] = FeedChannel(chan, contract, params, agg)
        out_params = dict(params)
        out_params["subFormat"] = "LIST"
        self.send_msg({"type": "CHANNEL_OPENED", "channel": chan, "service": "FEED",
                       "parameters": out_params})  # fmt: skip

    def _on_feed_setup(self, ch: FeedChannel, msg: dict[str, Any]) -> None:
        agg = msg.get("acceptAggregationPeriod")
        if isinstance(agg, (int, float)) and not isinstance(agg, bool) and math.isfinite(agg):
            ch.agg = max(0.0, float(agg))
        elif agg == "NaN":
            ch.agg = self.server.default_aggregation
        # a shorter period applies at once (not only after the old period's next flush)
        ch.next_flush = min(ch.next_flush, self.loop.time() + ch.agg)
        fmt = msg.get("acceptDataFormat")
        if fmt in ("COMPACT", "FULL"):
            ch.fmt = fmt
        fields = msg.get("acceptEventFields")
        if isinstance(fields, dict):
            for t, fl in fields.items():
                if t in EVENT_FIELDS and isinstance(fl, list):
                    ch.accept_fields(t, [f for f in fl if isinstance(f, str)])
        self.feed.answer_feed_setup(ch)

    def _on_subscription(self, ch: FeedChannel, msg: dict[str, Any]) -> None:
        if msg.get("reset") is True:
            ch.reset()
        remove = msg.get("remove")
        if isinstance(remove, list):
            for e in remove:
                if not isinstance(e, dict):
                    continue
                t, s = e.get("type"), e.get("symbol")
                if not isinstance(t, str) or not isinstance(s, str):
                    continue
                ch.remove(t, s)
        add = msg.get("add")
        if not isinstance(add, list):
            return
        entries: list[tuple[str, str, Any]] = []
        for e in add:
            if isinstance(e, dict):
                t, s = e.get("type"), e.get("symbol")
                if isinstance(t, str) and isinstance(s, str):
                    entries.append((t, s, e.get("fromTime")))
        lim = self.faults.subscription_rate_limit
        if lim is not None:
            now = self.loop.time()
            self._adds = [x for x in self._adds if now - x < 1.0]
            room = max(0, lim - len(self._adds))
            if len(entries) > room:
                entries = entries[:room]
                self.error(ch.id, "BAD_ACTION", MSG_RATE)
            self._adds.extend([now] * len(entries))
        self.feed.add(ch, entries)

    # -------------------------------------------------------------------- timers
    async def _ticker(self) -> None:
        srv = self.server
        try:
            while not self.closed:
                await asyncio.sleep(srv.poll_interval)
                fa = self.faults  # may be replaced while the connection runs
                now = self.loop.time()
                el = now - self.t_connect
                if fa.silent_after_s is not None and el >= fa.silent_after_s:
                    self.silent = True
                    continue
                if fa.restart_after_s is not None and el >= fa.restart_after_s:
                    self.close(1012)
                    return
                if fa.close_after_s is not None and el >= fa.close_after_s:
                    self.close(fa.close_code)
                    return
                idle = now - self.last_recv
                if idle >= srv.keepalive_timeout:
                    ka = srv.keepalive_timeout
                    secs = str(int(ka)) if float(ka).is_integer() else f"{ka:g}"
                    self.error(0, "TIMEOUT", "The timeout has been reached. The message was "
                               f"last received {secs} seconds ago.")  # fmt: skip
                    self.close(1000)
                    return
                for ch in list(self.channels.values()):
                    if now < ch.next_flush or self.paused:
                        continue
                    ch.next_flush = now + max(ch.agg, srv.min_flush_interval)
                    self.feed.flush(ch)
                if now - self.last_send >= srv.keepalive_interval and self.setup_done:
                    self.send_text('{"type":"KEEPALIVE","channel":0}')
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sim: connection ticker failed")
            srv.internal_errors += 1
            self.close(1011)

    def subscriptions(self) -> set[tuple[int, str, str]]:
        """Current subscriptions as ``(channel, type, symbol)``."""
        return {(c.id, t, s) for c in self.channels.values() for t, s in c.subscriptions()}


class DxLinkServer:
    """A local dxLink server. Use inside a running loop::

        srv = DxLinkServer(seed=7)
        url = await srv.start()      # ws://127.0.0.1:<port>/realtime
        ...
        await srv.stop()

    Inspection for tests: :attr:`received` (``(connection number, message)``),
    :attr:`connections` (open connections, each with ``received``, ``sent`` (if
    ``record_sent``), ``errors_sent``, ``subscriptions()``), :attr:`connection_count` (accepted
    so far), :attr:`frames_sent`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int = 0,
        faults: Faults | Callable[[int], Faults] | None = None,
        clock: Clock | None = None,
        require_auth: bool = True,
        token_validator: Callable[[str], bool] | None = None,
        user_id: str = "sim-user",
        keepalive_timeout: float = 60.0,
        keepalive_interval: float = 30.0,
        default_aggregation: float = 1.0,
        min_flush_interval: float = 0.01,
        poll_interval: float = 0.005,
        tick_ms: int = 100,
        max_rows_per_frame: int = 1000,
        snapshot_chunk_rows: int = 500,
        max_snapshot_rows: int = 10_000,
        history_start_ms: int = market.HISTORY_START_MS,
        max_frame_size: int = 64 * 1024,
        max_data_frame_bytes: int = 64 * 1024,
        path: str = "/realtime",
        record_sent: bool = False,
        record_limit: int = 100_000,
    ) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self.faults: Faults | Callable[[int], Faults] = faults if faults is not None else Faults()
        self.clock: Clock = clock if clock is not None else SimClock()
        self.require_auth = require_auth
        self.token_validator: Callable[[str], bool] = token_validator or (lambda t: bool(t))
        self.user_id = user_id
        self.keepalive_timeout = keepalive_timeout
        self.keepalive_interval = keepalive_interval
        self.default_aggregation = default_aggregation
        self.min_flush_interval = min_flush_interval
        self.poll_interval = poll_interval
        self.tick_ms = tick_ms
        self.max_rows_per_frame = max_rows_per_frame
        self.snapshot_chunk_rows = snapshot_chunk_rows
        self.max_snapshot_rows = max_snapshot_rows
        self.history_start_ms = history_start_ms
        self.max_frame_size = max_frame_size
        #: no FEED_DATA frame is larger (rows are split across frames); the tastytrade SDK's
        #: WebSocket client closes with 1009 on frames over 64 KiB
        self.max_data_frame_bytes = max_data_frame_bytes
        self.path = path
        self.record_sent = record_sent
        #: inspection logs keep the newest ``record_limit`` entries (bounded for long runs)
        self.record_limit = record_limit
        self.received: deque[tuple[int, dict[str, Any]]] = deque(maxlen=record_limit)
        #: every ERROR sent: ``(connection number, channel, error, message)``
        self.errors_sent: deque[tuple[int, int, str, str]] = deque(maxlen=record_limit)
        self.connection_count = 0
        self.frames_sent = 0
        self.internal_errors = 0
        self.unknown_types = 0
        #: options whose streamer symbol does not carry what pricing needs (a future option's
        #: ``./E4AZ26P6000:XCME`` has no expiry day, nor its future): streamer symbol -> the
        #: option, as the REST side lists it (`RestSimServer` fills it when given this server
        #: as its market), so both sides price it by the same Black–Scholes
        self.listed_options: dict[str, OptionSymbol] = {}
        self._conns: list[_Conn] = []
        self._keys: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self.url = ""

    @property
    def connections(self) -> list[_Conn]:
        """Connections currently open (in accept order)."""
        return list(self._conns)

    def key(self, symbol: str) -> int:
        """Market key of a (base) symbol for this server's seed."""
        k = self._keys.get(symbol)
        if k is None:
            k = self._keys[symbol] = market.symbol_key(self.seed, symbol)
        return k

    def _factory(self, _req: picows.WSUpgradeRequest) -> _Conn:
        self.connection_count += 1
        return _Conn(self, self.connection_count)

    def drop_connections(self, code: int | None = 1012) -> int:
        """Close every open connection now (``None``: drop TCP without a close frame)."""
        conns = list(self._conns)
        for c in conns:
            c.close(code)
        return len(conns)

    async def start(self) -> str:
        """Start listening; returns the ``ws://host:port/path`` URL."""
        self._server = await picows.ws_create_server(
            self._factory,
            self.host,
            self.port,
            max_frame_size=self.max_frame_size,
            enable_auto_ping=False,
        )
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        self.url = f"ws://{self.host}:{self.port}{self.path}"
        return self.url

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        for c in list(self._conns):
            c.close(1001)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def __aenter__(self) -> DxLinkServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
