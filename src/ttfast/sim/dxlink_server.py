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

Data come from :mod:`ttfast.sim.market` (pure functions of seed/symbol/time). Rows are built by
string joins with cached Java-formatted numbers (no per-event dict + ``json.dumps``).

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Literal, Protocol

import numpy as np
import picows

from ttfast.dxlink.fields import EVENT_FIELDS as DXLINK_EVENT_FIELDS
from ttfast.sim import market
from ttfast.sim.javafmt import json_double

__all__ = [
    "EVENT_FIELDS",
    "DxLinkServer",
    "Faults",
    "SimClock",
    "corrected_bar",
]

log = logging.getLogger("ttfast.sim.dxlink")

SERVER_VERSION = "1.0-1.2.1-20240722-153442"

TX_PENDING = 0x01
REMOVE_EVENT = 0x02
SNAPSHOT_BEGIN = 0x04
SNAPSHOT_END = 0x08
SNAPSHOT_SNIP = 0x10

MSG_AUTH_MISSING = "AUTH step missing"
MSG_SETUP_MISSING = "SETUP step missing"
MSG_EVEN_CHANNEL = "Protocol violation with an even channel usage."
MSG_BAD_JSON = "The message is not valid JSON."
MSG_RATE = "Your subscription rate is too high"

#: Known dxLink field names per event type (the one catalogue, shared with the client).
EVENT_FIELDS = dict(DXLINK_EVENT_FIELDS)

_TICKER_TYPES = frozenset({"Quote", "Trade", "TradeETH", "Summary", "Profile", "Greeks"})
_STREAM_TYPES = frozenset({"TimeAndSale"})
_HISTORY_TYPES = frozenset({"Candle"})
_FIELD_POS = {t: {f: i for i, f in enumerate(fs)} for t, fs in EVENT_FIELDS.items()}

Contract = Literal["AUTO", "TICKER", "STREAM", "HISTORY"]
FieldsMode = Literal["lazy", "eager", "late", "absent", "reordered"]


class Clock(Protocol):
    """Source of simulated market time (epoch ms)."""

    def now_ms(self) -> int: ...


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


def corrected_bar(row: dict[str, Any]) -> dict[str, Any]:
    """The corrected version of a bar sent by ``Faults.tx_correction_after_s``."""
    out = dict(row)
    out["volume"] = row["volume"] + 100.0
    out["askVolume"] = row["askVolume"] + 100.0
    out["count"] = row["count"] + 1
    return out


_JSON_STR_CACHE: dict[str, str] = {}


def _js(s: str) -> str:
    r = _JSON_STR_CACHE.get(s)
    if r is None:
        r = json.dumps(s)
        if len(_JSON_STR_CACHE) < 100_000:
            _JSON_STR_CACHE[s] = r
    return r


def _jd_list(a: Iterable[float]) -> list[str]:
    return [json_double(x) for x in a]


_NAN = '"NaN"'


@dataclass
class _CandleSub:
    symbol: str
    from_time: int
    spec: market.CandleSpec | None
    key: int
    live: bool = True
    last_bar_time: int = -1
    last_row: str = ""
    snapshot_at: float = 0.0  # loop time of the (last) snapshot
    bars_at_snapshot: list[dict[str, Any]] = field(default_factory=list)  # newest first
    done: set[str] = field(default_factory=set)  # one-shot faults already applied


class _Channel:
    def __init__(self, cid: int, contract: str, params: dict[str, Any], agg: float) -> None:
        self.id = cid
        self.contract = contract
        self.params = params
        self.fmt = "COMPACT"
        self.agg = agg
        self.accept: dict[str, list[str]] = {}
        self.layouts: dict[str, tuple[str, ...]] = {}
        self.announced: set[str] = set()
        self.ticker: dict[str, dict[str, str]] = {}  # type -> symbol -> last row
        self.stream: dict[str, dict[str, int]] = {}  # type -> symbol -> last tick sent
        self.candles: dict[str, _CandleSub] = {}
        self.other: set[tuple[str, str]] = set()  # subscribed, but not simulated
        self.next_flush = 0.0

    def subscriptions(self) -> set[tuple[str, str]]:
        out = {(t, s) for t, d in self.ticker.items() for s in d}
        out |= {(t, s) for t, d in self.stream.items() for s in d}
        out |= {("Candle", s) for s in self.candles}
        return out | self.other


class _Conn(picows.WSListener):
    def __init__(self, server: DxLinkServer, number: int) -> None:
        self.server = server
        self.number = number
        f = server.faults
        self.faults: Faults = f(number) if callable(f) else f
        self.transport: picows.WSTransport | None = None
        self.setup_done = False
        self.authorized = False
        self.channels: dict[int, _Channel] = {}
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

    def _send_data(self, ch: _Channel, body: str) -> None:
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
            self.channels[chan] = _Channel(chan, contract, params, self.server.default_aggregation)
        out_params = dict(params)
        out_params["subFormat"] = "LIST"
        self.send_msg({"type": "CHANNEL_OPENED", "channel": chan, "service": "FEED",
                       "parameters": out_params})  # fmt: skip

    def _effective_fields(self, ch: _Channel, etype: str) -> tuple[str, ...]:
        known = _FIELD_POS[etype]
        dropped = self.faults.drop_fields.get(etype, frozenset())
        req = ch.accept.get(etype)
        if req is None:
            fields: Iterable[str] = EVENT_FIELDS[etype]
        elif self.faults.event_fields == "reordered":
            rs = set(req)
            fields = [f for f in EVENT_FIELDS[etype] if f in rs]
        else:
            fields = req
        out: list[str] = []
        for f in fields:
            if f in known and f not in dropped and f not in out:
                out.append(f)
        if not out:
            out = ["eventSymbol"]
        return tuple(out)

    def _feed_config(self, ch: _Channel, fields: dict[str, tuple[str, ...]] | None) -> None:
        agg = ch.agg
        parts = [
            f'{{"type":"FEED_CONFIG","channel":{ch.id},"dataFormat":"{ch.fmt}",'
            f'"aggregationPeriod":{json.dumps(int(agg) if agg.is_integer() else agg)}'
        ]
        if fields:
            parts.append(',"eventFields":' + json.dumps({t: list(v) for t, v in fields.items()},
                                                        separators=(",", ":")))  # fmt: skip
        parts.append("}")
        self.send_text("".join(parts))

    def _on_feed_setup(self, ch: _Channel, msg: dict[str, Any]) -> None:
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
                    ch.accept[t] = [f for f in fl if isinstance(f, str)]
                    ch.layouts.pop(t, None)
                    ch.announced.discard(t)
        eager: dict[str, tuple[str, ...]] | None = None
        if self.faults.event_fields == "eager" and ch.accept:
            eager = {}
            for t in ch.accept:
                ch.layouts[t] = self._effective_fields(ch, t)
                ch.announced.add(t)
                eager[t] = ch.layouts[t]
        self._feed_config(ch, eager)

    def _layout(self, ch: _Channel, etype: str) -> tuple[str, ...]:
        lay = ch.layouts.get(etype)
        if lay is None:
            lay = ch.layouts[etype] = self._effective_fields(ch, etype)
        return lay

    def _announce_before(self, ch: _Channel, etypes: Iterable[str]) -> list[str]:
        """Announce layouts due before data; returns the types to announce after data."""
        mode = self.faults.event_fields
        late: list[str] = []
        due: dict[str, tuple[str, ...]] = {}
        for t in etypes:
            if t in ch.announced:
                continue
            ch.announced.add(t)
            lay = self._layout(ch, t)
            if mode == "absent":
                continue
            if mode == "late":
                late.append(t)
            else:
                due[t] = lay
        if due:
            self._feed_config(ch, due)
        return late

    def _announce_after(self, ch: _Channel, late: list[str]) -> None:
        if late:
            self._feed_config(ch, {t: self._layout(ch, t) for t in late})

    def _kind(self, ch: _Channel, etype: str) -> str:
        if etype in _HISTORY_TYPES:
            return "history"
        if etype in _STREAM_TYPES:
            return "stream"
        return "ticker"

    def _on_subscription(self, ch: _Channel, msg: dict[str, Any]) -> None:
        if msg.get("reset") is True:
            ch.ticker.clear()
            ch.stream.clear()
            ch.candles.clear()
            ch.other.clear()
        remove = msg.get("remove")
        if isinstance(remove, list):
            for e in remove:
                if not isinstance(e, dict):
                    continue
                t, s = e.get("type"), e.get("symbol")
                if not isinstance(t, str) or not isinstance(s, str):
                    continue
                ch.ticker.get(t, {}).pop(s, None)
                ch.stream.get(t, {}).pop(s, None)
                ch.other.discard((t, s))
                if t == "Candle":
                    ch.candles.pop(s, None)
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
        new_ticker: list[tuple[str, str]] = []
        for t, s, ft in entries:
            if t not in EVENT_FIELDS:
                self.server.unknown_types += 1
                continue
            kind = self._kind(ch, t)
            if kind == "history":
                self._add_candle(ch, s, ft)
            elif kind == "stream":
                ch.stream.setdefault(t, {})[s] = -1
            elif t in _TICKER_TYPES:
                d = ch.ticker.setdefault(t, {})
                if s not in d:
                    d[s] = ""
                    new_ticker.append((t, s))
            else:
                ch.other.add((t, s))
        if new_ticker:
            # TICKER: the current state of each new symbol goes out at once
            self._flush_ticker(ch, only=new_ticker)

    # -------------------------------------------------------------------- rows
    def _rows(self, etype: str, symbols: list[str], now: int) -> list[tuple[str, ...]]:
        srv = self.server
        keys = np.array([srv.key(s) for s in symbols], dtype=np.uint64)
        n = len(symbols)
        sv = self.faults.special_values
        et = _js(etype)
        syms = [_js(s) for s in symbols]
        if etype == "Quote":
            bid, ask, bs, as_, bex, aex, qt = market.quote_values(keys, now, srv.tick_ms)
            qts = str(qt)
            bids, asks = _jd_list(bid.tolist()), _jd_list(ask.tolist())
            if sv:
                bss, ass = ['"Infinity"'] * n, ['"-Infinity"'] * n
                bexs = aexs = ['"\\u0000"'] * n
            else:
                bss, ass = _jd_list(bs.tolist()), _jd_list(as_.tolist())
                bexs, aexs = [_js(x) for x in bex.tolist()], [_js(x) for x in aex.tolist()]
            return [
                (et, syms[i], "0", "0", "0", qts, bexs[i], bids[i], bss[i], qts, aexs[i],
                 asks[i], ass[i])
                for i in range(n)
            ]  # fmt: skip
        if etype in ("Trade", "TradeETH"):
            price, size, dv, chg, tt = market.trade_values(keys, now, srv.tick_ms)
            prev, _, _, _, _ = market.trade_values(keys, tt - 1, srv.tick_ms)
            tts, day = str(tt), str(tt // market.DAY_MS)
            pl, sl, dl, cl = price.tolist(), size.tolist(), dv.tolist(), chg.tolist()
            prl = prev.tolist()
            eth = "true" if etype == "TradeETH" else "false"
            return [
                (et, syms[i], "0", tts, "0", "0", '"Q"', json_double(pl[i]), json_double(cl[i]),
                 json_double(sl[i]), day, json_double(dl[i]),
                 _NAN if sv else json_double(round(dl[i] * pl[i], 2)),
                 '"UP"' if pl[i] > prl[i] else ('"DOWN"' if pl[i] < prl[i] else '"ZERO"'), eth)
                for i in range(n)
            ]  # fmt: skip
        if etype == "Summary":
            day0 = (now // market.DAY_MS) * market.DAY_MS
            oa, ha, la, pa = market.day_summary(keys, now, srv.tick_ms)
            o, hi, lo, prev_close = oa.tolist(), ha.tolist(), la.tolist(), pa.tolist()
            rate = (50.0 + (keys % np.uint64(500)).astype(np.float64)).tolist()
            d, pd = str(day0 // market.DAY_MS), str(day0 // market.DAY_MS - 1)
            return [
                (et, syms[i], "0", d, json_double(o[i]), json_double(hi[i]), json_double(lo[i]),
                 _NAN, '"REGULAR"', pd, json_double(prev_close[i]), '"FINAL"',
                 json_double(math.floor(rate[i] * 86400.0)), "0")
                for i in range(n)
            ]  # fmt: skip
        if etype == "Profile":
            base = [market.base_price(srv.seed, s) for s in symbols]
            return [
                (et, syms[i], "0", "null" if sv else _js(f"{symbols[i]} (simulated)"),
                 '"INACTIVE"', '"ACTIVE"', "null", "0", "0", _NAN, _NAN,
                 json_double(round(base[i] * 1.6, 2)), json_double(round(base[i] * 0.6, 2)),
                 json_double(1.0), _NAN, json_double(4.0), _NAN, "0",
                 json_double(1.0e9), json_double(9.0e8))
                for i in range(n)
            ]  # fmt: skip
        if etype == "Greeks":
            tt = market.tick_time(now, srv.tick_ms)
            mid = np.round(market.mid_price(keys, np.full(n, tt)), 2).tolist()
            idx, tts = str(market.candle_index(tt)), str(tt)
            return [
                (et, syms[i], "0", "0", idx, tts, "0", json_double(mid[i]), json_double(0.25),
                 json_double(0.5), json_double(0.01), json_double(-0.05), json_double(0.02),
                 json_double(0.1))
                for i in range(n)
            ]  # fmt: skip
        raise KeyError(etype)

    def _tas_rows(self, symbols: list[str], from_tick: int, to_tick: int) -> list[tuple[str, ...]]:
        """TimeAndSale rows of ``symbols`` for market ticks ``from_tick < k <= to_tick`` (one
        trade per symbol and tick), tick-major. One vectorised price evaluation per call."""
        srv = self.server
        ticks = np.arange(from_tick + 1, to_tick + 1, dtype=np.int64)
        if ticks.size == 0 or not symbols:
            return []
        ns = len(symbols)
        t = np.repeat(ticks * srv.tick_ms, ns)
        keys = np.tile(np.array([srv.key(x) for x in symbols], dtype=np.uint64), ticks.size)
        price = np.round(market.mid_price(keys, t), 2).tolist()
        sv = self.faults.special_values
        syms = [_js(x) for x in symbols]
        exch = '"\\u0000"' if sv else '"Q"'
        cond = "null" if sv else '""'
        out: list[tuple[str, ...]] = []
        j = 0
        for k in ticks.tolist():
            tm = k * srv.tick_ms
            seq = k % 1000
            idx, tms, seqs = str(market.candle_index(tm, seq)), str(tm), str(seq)
            size = json_double(100.0 * (1 + k % 7))
            side = '"BUY"' if k % 2 else '"SELL"'
            for sym in syms:
                p = price[j]
                j += 1
                out.append((
                    '"TimeAndSale"', sym, "0", "0", idx, tms, "0", seqs, exch, json_double(p),
                    size, json_double(round(p - 0.01, 2)), json_double(round(p + 0.01, 2)), cond,
                    '"\\u0000"', side, "false", "false", "true", '"NEW"', "null", "null",
                ))  # fmt: skip
        return out

    def _format(self, ch: _Channel, etype: str, rows: list[tuple[str, ...]]) -> list[str]:
        lay = self._layout(ch, etype)
        pos = _FIELD_POS[etype]
        idx = [pos[f] for f in lay]
        if ch.fmt == "FULL":
            names = [f'"{f}":' for f in lay]
            if "eventType" not in lay:
                names.insert(0, '"eventType":')
                idx.insert(0, 0)
            return ["{" + ",".join([n + r[i] for n, i in zip(names, idx, strict=True)]) + "}"
                    for r in rows]  # fmt: skip
        if len(idx) == 1:
            i0 = idx[0]
            return [r[i0] for r in rows]
        g = itemgetter(*idx)
        return [",".join(g(r)) for r in rows]

    def _group(self, ch: _Channel, etype: str, formatted: list[str]) -> str:
        if ch.fmt == "FULL":
            return ",".join(formatted)
        return f'"{etype}",[{",".join(formatted)}]'

    def _emit(self, ch: _Channel, groups: list[tuple[str, list[tuple[str, ...]]]]) -> None:
        """Send rows of one or more types (frames split at ``server.max_rows_per_frame``)."""
        groups = [(t, r) for t, r in groups if r]
        if not groups:
            return
        late = self._announce_before(ch, [t for t, _ in groups])
        step = self.server.max_rows_per_frame
        if self.faults.multi_type_frames and len(groups) > 1 and ch.fmt == "COMPACT":
            body = ",".join(self._group(ch, t, self._format(ch, t, r)) for t, r in groups)
            self._send_data(ch, body)
        else:
            for t, rows in groups:
                for i in range(0, len(rows), step):
                    self._send_data(ch, self._group(ch, t, self._format(ch, t, rows[i : i + step])))
        self._announce_after(ch, late)

    # -------------------------------------------------------------------- flushing
    def _flush_ticker(self, ch: _Channel, only: list[tuple[str, str]] | None = None) -> None:
        now = self.server.clock.now_ms()
        groups: list[tuple[str, list[tuple[str, ...]]]] = []
        if only is not None:
            by_type: dict[str, list[str]] = {}
            for t, s in only:
                by_type.setdefault(t, []).append(s)
            items = list(by_type.items())
        else:
            items = [(t, list(d)) for t, d in ch.ticker.items() if d]
        for t, syms in items:
            rows = self._rows(t, syms, now)
            last = ch.ticker[t]
            changed = []
            for s, r in zip(syms, rows, strict=True):
                key = ",".join(r[1:])
                if last.get(s) != key:
                    last[s] = key
                    changed.append(r)
            groups.append((t, changed))
        self._emit(ch, groups)

    def _flush_stream(self, ch: _Channel) -> None:
        now = self.server.clock.now_ms()
        tick = now // self.server.tick_ms
        for t, d in ch.stream.items():
            by_start: dict[int, list[str]] = {}
            for s, last in d.items():
                start = tick - 1 if last < 0 else max(last, tick - 1000)
                if start < tick:
                    by_start.setdefault(start, []).append(s)
                d[s] = tick
            rows: list[tuple[str, ...]] = []
            for start, syms in by_start.items():
                rows.extend(self._tas_rows(syms, start, tick))
            self._emit(ch, [(t, rows)])

    def _candle_row(self, sym: str, bar: dict[str, Any], flags: int) -> tuple[str, ...]:
        return (
            '"Candle"', _js(sym), "0", str(flags), str(bar["index"]), str(bar["time"]), "0",
            str(bar["count"]), json_double(bar["open"]), json_double(bar["high"]),
            json_double(bar["low"]), json_double(bar["close"]), json_double(bar["volume"]),
            json_double(bar["vwap"]), json_double(bar["bidVolume"]),
            json_double(bar["askVolume"]), _NAN, _NAN,
        )  # fmt: skip

    def _candle_rows_desc(self, sym: str, bars: market.CandleBars) -> list[tuple[str, ...]]:
        """Rows of all ``bars`` newest first, first row flagged SNAPSHOT_BEGIN (column-wise
        formatting: one ``map`` per column instead of a call per value)."""
        n = len(bars)
        jd = json_double

        def col(a: Any) -> list[str]:
            return list(map(jd, a[::-1].tolist()))

        times = bars.time[::-1].tolist()
        idx = [str(market.candle_index(t)) for t in times]
        flags = ["0"] * n
        flags[0] = str(SNAPSHOT_BEGIN)
        const = [_js(sym)] * n
        return list(
            zip(
                ['"Candle"'] * n, const, ["0"] * n, flags, idx, list(map(str, times)), ["0"] * n,
                list(map(str, bars.count[::-1].tolist())), col(bars.open), col(bars.high),
                col(bars.low), col(bars.close), col(bars.volume), col(bars.vwap),
                col(bars.bid_volume), col(bars.ask_volume), [_NAN] * n, [_NAN] * n,
                strict=True,
            )
        )  # fmt: skip

    def _placeholder(self, sym: str, t: int, flags: int) -> tuple[str, ...]:
        return ('"Candle"', _js(sym), "0", str(flags), str(market.candle_index(t)), str(t), "0",
                "0", *([_NAN] * 10))  # fmt: skip

    def _add_candle(self, ch: _Channel, sym: str, from_time: Any) -> None:
        if not isinstance(from_time, int) or isinstance(from_time, bool):
            from_time = 0 if from_time is None else from_time
            if isinstance(from_time, float) and math.isfinite(from_time):
                from_time = int(from_time)
            elif not isinstance(from_time, int):
                self.error(ch.id, "INVALID_MESSAGE", "fromTime must be an integer (epoch ms)")
                return
        spec = market.parse_candle_symbol(sym)
        key = self.server.key(spec.base) if spec is not None else 0
        sub = _CandleSub(sym, from_time, spec, key)
        ch.candles[sym] = sub
        empty_only = self.faults.candles_auto_empty and ch.contract == "AUTO"
        if empty_only or spec is None:
            sub.live = False
        self._snapshot(ch, sub, empty=empty_only or spec is None or self.faults.empty_snapshot)

    def _snapshot(self, ch: _Channel, sub: _CandleSub, empty: bool = False) -> None:
        now = self.server.clock.now_ms()
        sub.snapshot_at = self.loop.time()
        sym = sub.symbol
        rows: list[tuple[str, ...]] = []
        bars_desc: list[dict[str, Any]] = []
        truncated = False
        bars = market.candle_bars(0, 60_000, np.zeros(0, dtype=np.int64), 0)
        if not empty and sub.spec is not None:
            cap = self.faults.snip_rows or self.server.max_snapshot_rows
            bars, truncated = market.candle_bars_between(
                sub.key, sub.spec.period_ms, sub.from_time, now, cap, self.server.history_start_ms
            )
            n = len(bars)
            # keep a few newest bars as dicts (fault injection works on them)
            bars_desc = [bars.row(i) for i in range(n - 1, max(-1, n - 9), -1)]
            if n:
                rows = self._candle_rows_desc(sym, bars)
        sub.bars_at_snapshot = bars_desc
        if sub.spec is not None:
            sub.last_bar_time = market.align_bar_start(now, sub.spec.period_ms)
        if not rows:
            rows.append(self._placeholder(sym, sub.from_time, 0x0E))
            sub.last_row = ""
        else:
            last_time = int(bars.time[0])
            flags = SNAPSHOT_SNIP if truncated else 0
            if not truncated and last_time == sub.from_time:
                flags = SNAPSHOT_END
            if flags:
                f0 = int(rows[-1][3]) | flags
                rows[-1] = (*rows[-1][:3], str(f0), *rows[-1][4:])
            if not truncated and last_time != sub.from_time:
                rows.append(self._placeholder(sym, sub.from_time, SNAPSHOT_END | REMOVE_EVENT))
            newest = bars_desc[0]
            sub.last_bar_time = int(newest["time"])
            sub.last_row = ",".join(self._candle_row(sym, newest, 0)[3:])
        step = self.server.snapshot_chunk_rows
        late = self._announce_before(ch, ["Candle"])
        for i in range(0, len(rows), step):
            chunk = self._format(ch, "Candle", rows[i : i + step])
            self._send_data(ch, self._group(ch, "Candle", chunk))
        self._announce_after(ch, late)

    def _flush_candles(self, ch: _Channel) -> None:
        now = self.server.clock.now_ms()
        lt = self.loop.time()
        fa = self.faults
        rows: list[tuple[str, ...]] = []
        for sub in list(ch.candles.values()):
            if not sub.live or sub.spec is None:
                continue
            p = sub.spec.period_ms
            cur = market.align_bar_start(now, p)
            start = max(sub.last_bar_time, sub.from_time, self.server.history_start_ms)
            start = market.align_bar_start(start, p)
            if start < sub.from_time:
                start += p
            if cur >= start:
                n = min((cur - start) // p + 1, 1000)
                starts = cur - np.arange(n - 1, -1, -1, dtype=np.int64) * p
                bars = market.candle_bars(sub.key, p, starts, now)
                for i in range(len(bars)):
                    bar = bars.row(i)
                    row = self._candle_row(sub.symbol, bar, 0)
                    body = ",".join(row[3:])
                    if bar["time"] == sub.last_bar_time and body == sub.last_row:
                        continue
                    rows.append(row)
                    sub.last_bar_time, sub.last_row = int(bar["time"]), body
            rows.extend(self._candle_faults(sub, lt))
        if rows:
            self._emit(ch, [("Candle", rows)])
        for sub in list(ch.candles.values()):
            f2 = fa.second_snapshot_after_s
            if f2 is not None and "snap2" not in sub.done and lt - sub.snapshot_at >= f2:
                sub.done.add("snap2")
                sub.done.update({"tx", "remove"})
                self._snapshot(ch, sub)

    def _candle_faults(self, sub: _CandleSub, lt: float) -> list[tuple[str, ...]]:
        fa = self.faults
        out: list[tuple[str, ...]] = []
        el = lt - sub.snapshot_at
        bars = sub.bars_at_snapshot
        tx_s = fa.tx_correction_after_s
        if tx_s is not None and "tx" not in sub.done and len(bars) >= 4 and el >= tx_s:
            sub.done.add("tx")
            out.append(self._candle_row(sub.symbol, corrected_bar(bars[2]), TX_PENDING))
            out.append(self._candle_row(sub.symbol, corrected_bar(bars[3]), 0))
        rm_s = fa.remove_bar_after_s
        if rm_s is not None and "remove" not in sub.done and len(bars) >= 3 and el >= rm_s:
            sub.done.add("remove")
            out.append(self._placeholder(sub.symbol, int(bars[2]["time"]), REMOVE_EVENT))
        return out

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
                    if ch.ticker:
                        self._flush_ticker(ch)
                    if ch.stream:
                        self._flush_stream(ch)
                    if ch.candles:
                        self._flush_candles(ch)
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
