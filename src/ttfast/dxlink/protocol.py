"""Sans-IO dxLink client state machine: builds outgoing messages, consumes control messages.

This module never touches a socket, a clock it was not given, or the event loop. It knows:

* the handshake order tastytrade enforces (SETUP -> server SETUP/AUTH_STATE -> AUTH ->
  AUTHORIZED -> CHANNEL_REQUEST -> FEED_SETUP -> FEED_SUBSCRIPTION, spec §3.1, pitfall 1);
* which odd channel carries which event type (one TICKER/AUTO channel for quotes and friends,
  one HISTORY channel for candles, spec §3.5 and §10);
* the *desired* subscription set, which survives reconnects and is replayed in full on every
  new connection (spec §3.10), candles from a resume time supplied by the caller;
* how to chunk subscription frames below 8 KiB (spec §3.7, pitfall 13) and that candle
  subscriptions go one per message through a paced queue (THETA, unverified, pitfall 9/§3.7).

FEED_DATA is not parsed here: the transport hands it to the compiled ``FeedDecoder``.
Control messages (everything else) are parsed with msgspec into plain dicts, because the server
may add keys at will (spec §2).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

import msgspec

from ttfast._retry import Backoff  # the reconnect delay (one backoff for all of ttfast)
from ttfast.dxlink.fields import CANDLE_FIELDS, EVENT_FIELDS
from ttfast.symbols import build_candle_symbol

__all__ = [
    "CANDLE_FIELDS",
    "DEFAULT_EVENT_FIELDS",
    "MAX_FRAME_BYTES",
    "TICKER_TYPES",
    "AuthRejected",
    "Authorized",
    "Backoff",
    "ChannelClosed",
    "ChannelOpened",
    "ConnectionFatal",
    "DxLinkProtocol",
    "FeedConfigReceived",
    "MalformedMessage",
    "Phase",
    "ProtocolEvent",
    "ServerError",
    "ServerSetup",
    "build_candle_symbol",
    "decode_control",
    "to_epoch_ms",
]

MAX_FRAME_BYTES: Final = 8192
CLIENT_VERSION: Final = "0.1-DXF-JS/0.3.0"

# Spec §10: explicit layouts, eventType first so multi-type frames are self-describing.
DEFAULT_EVENT_FIELDS: Final[Mapping[str, tuple[str, ...]]] = EVENT_FIELDS

#: Latest-value-per-symbol types: listen() conflates these by symbol instead of dropping.
TICKER_TYPES: Final = frozenset({"Quote", "Trade", "TradeETH", "Summary", "Profile"})

_FATAL_ERRORS: Final = frozenset({"TIMEOUT", "UNAUTHORIZED", "UNSUPPORTED_PROTOCOL"})

_encode = msgspec.json.Encoder().encode
_decode_any = msgspec.json.Decoder().decode


def decode_control(payload: bytes | memoryview | str) -> dict[str, Any]:
    """Parse one non-FEED_DATA message into a dict; raise ValueError if it is not an object."""
    try:
        msg = _decode_any(payload)
    except msgspec.DecodeError as exc:
        raise ValueError(f"invalid dxLink control message: {exc}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ValueError("dxLink control message is not an object with a string 'type'")
    return msg


# ---------------------------------------------------------------------------------------------
# candle times (candle symbols: ttfast.symbols, re-exported here as build_candle_symbol)

_MIN_PLAUSIBLE_MS: Final = 100_000_000_000  # 1973-03-03 in ms; smaller is almost surely seconds


def to_epoch_ms(value: datetime | int) -> int:
    """fromTime in epoch milliseconds (spec §6.2). Naive datetimes are taken as UTC.

    Integers below 1e11 are rejected: they are seconds, and sending them as ms silently asks
    for the whole history since 1970 (pitfall 10).
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return math.floor(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"start must be a datetime or epoch milliseconds, got {value!r}")
    if value < _MIN_PLAUSIBLE_MS:
        raise ValueError(f"start={value} looks like epoch seconds; dxLink fromTime is ms")
    return value


# ---------------------------------------------------------------------------------------------
# protocol events (what the transport must react to)


@dataclass(frozen=True, slots=True)
class ServerSetup:
    keepalive_timeout: float | None
    accept_keepalive_timeout: float | None
    version: str | None


@dataclass(frozen=True, slots=True)
class Authorized:
    user_id: str | None


@dataclass(frozen=True, slots=True)
class AuthRejected:
    """AUTH_STATE UNAUTHORIZED after our AUTH: fetch a fresh token and reconnect."""


@dataclass(frozen=True, slots=True)
class ChannelOpened:
    channel: int
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    channel: int
    expected: bool


@dataclass(frozen=True, slots=True)
class FeedConfigReceived:
    channel: int
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ServerError:
    channel: int
    error: str
    message: str

    @property
    def rate_limited(self) -> bool:
        return self.error == "BAD_ACTION" and "rate" in self.message.lower()


@dataclass(frozen=True, slots=True)
class MalformedMessage:
    """A server message (or part of one) the client cannot use; it changed nothing.

    E.g. a FEED_CONFIG whose ``eventFields`` is not an object of lists of distinct str (the
    malformed layouts are not applied: the last good layout of those types stays), an
    AUTH_STATE with an unknown ``state``, a SETUP with an unusable keepalive timeout (the
    last good value stays), a message type the client does not expect.
    """

    channel: int
    detail: str


@dataclass(frozen=True, slots=True)
class ConnectionFatal:
    """The connection must be torn down and reopened (ERROR TIMEOUT/UNAUTHORIZED...)."""

    reason: str
    refresh_token: bool


ProtocolEvent = (
    ServerSetup
    | Authorized
    | AuthRejected
    | ChannelOpened
    | ChannelClosed
    | FeedConfigReceived
    | ServerError
    | ConnectionFatal
    | MalformedMessage
)


class Phase(Enum):
    IDLE = "idle"  # no connection
    SETUP_SENT = "setup_sent"
    AUTH_SENT = "auth_sent"
    AUTHORIZED = "authorized"


@dataclass
class _Channel:
    number: int
    contract: str
    event_types: frozenset[str]
    requested: bool = False
    opened: bool = False
    cancelling: bool = False


SubKey = tuple[str, str]


class DxLinkProtocol:
    """The client side of one logical dxLink session across any number of connections.

    Call :meth:`connection_made` on every new socket, feed every parsed control message to
    :meth:`receive`, send what :meth:`take_outgoing` returns immediately and what
    :meth:`take_paced` returns one at a time at the candle pacing interval.
    """

    def __init__(
        self,
        *,
        aggregation_period: float = 0.1,
        candle_aggregation_period: float | None = None,
        event_fields: Mapping[str, Sequence[str]] | None = None,
        contract: str = "AUTO",
        candle_contract: str = "HISTORY",
        keepalive_timeout: float = 60.0,
        accept_keepalive_timeout: float = 60.0,
        max_frame_bytes: int = MAX_FRAME_BYTES,
        version: str = CLIENT_VERSION,
    ) -> None:
        fields = dict(DEFAULT_EVENT_FIELDS)
        for t, fl in (event_fields or {}).items():
            fl = list(fl)
            if "eventSymbol" not in fl:
                raise ValueError(f"acceptEventFields[{t!r}] must contain eventSymbol")
            if "eventType" not in fl:
                fl.insert(0, "eventType")
            fields[t] = tuple(fl)
        self.event_fields: dict[str, tuple[str, ...]] = fields
        self.aggregation_period = aggregation_period
        self.candle_aggregation_period = (
            aggregation_period if candle_aggregation_period is None else candle_aggregation_period
        )
        self.keepalive_timeout = keepalive_timeout
        self.accept_keepalive_timeout = accept_keepalive_timeout
        self.max_frame_bytes = max_frame_bytes
        self.version = version
        ticker_types = frozenset(t for t in fields if t != "Candle")
        self.channels: dict[int, _Channel] = {
            1: _Channel(1, contract, ticker_types),
            3: _Channel(3, candle_contract, frozenset({"Candle"})),
        }
        # desired subscriptions per channel: key -> entry (insertion ordered)
        self.subscriptions: dict[int, dict[SubKey, dict[str, Any]]] = {1: {}, 3: {}}
        self.phase = Phase.IDLE
        self.token: str | None = None
        self.server_keepalive_timeout: float | None = None
        self.server_accept_keepalive_timeout: float | None = None
        self.layouts: dict[int, dict[str, list[str]]] = {1: {}, 3: {}}
        self._auth_sent = False
        self._auth_state_seen = False
        self._out: list[bytes] = []
        self._paced: deque[tuple[str, bytes]] = deque()

    # ---- routing ---------------------------------------------------------------------------

    def channel_for(self, event_type: str) -> int:
        for ch in self.channels.values():
            if event_type in ch.event_types:
                return ch.number
        raise ValueError(
            f"unknown event type {event_type!r}; known: {sorted(self.event_fields)} "
            "(pass event_fields= to add one)"
        )

    # ---- outgoing queues -------------------------------------------------------------------

    def take_outgoing(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def take_paced(self) -> tuple[str, bytes] | None:
        """Next (candle symbol, FEED_SUBSCRIPTION frame) to send, or None."""
        return self._paced.popleft() if self._paced else None

    @property
    def paced_pending(self) -> int:
        return len(self._paced)

    def _send(self, msg: dict[str, Any]) -> None:
        self._out.append(_encode(msg))

    # ---- connection lifecycle --------------------------------------------------------------

    def connection_made(self, token: str) -> None:
        """A new socket is open: forget per-connection state and queue SETUP."""
        self.token = token
        self.phase = Phase.SETUP_SENT
        self._auth_sent = False
        self._auth_state_seen = False
        self._out.clear()
        self._paced.clear()
        self.server_keepalive_timeout = None
        self.server_accept_keepalive_timeout = None
        for ch in self.channels.values():
            ch.requested = ch.opened = ch.cancelling = False
        for lay in self.layouts.values():
            lay.clear()
        self._send(
            {
                "type": "SETUP",
                "channel": 0,
                "version": self.version,
                "keepaliveTimeout": self.keepalive_timeout,
                "acceptKeepaliveTimeout": self.accept_keepalive_timeout,
            }
        )

    def connection_lost(self) -> None:
        self.phase = Phase.IDLE
        self._auth_sent = False
        self._out.clear()
        self._paced.clear()
        for ch in self.channels.values():
            ch.requested = ch.opened = ch.cancelling = False

    def keepalive(self) -> bytes:
        return _encode({"type": "KEEPALIVE", "channel": 0})

    # ---- incoming --------------------------------------------------------------------------

    def receive(self, msg: Mapping[str, Any]) -> list[ProtocolEvent]:
        """Consume one parsed control message; return the events the transport must act on."""
        t = msg.get("type")
        ch = msg.get("channel", 0)
        if not isinstance(ch, int):
            ch = 0
        events: list[ProtocolEvent] = []
        if t == "SETUP":
            bad = []
            for key in ("keepaliveTimeout", "acceptKeepaliveTimeout"):
                raw = msg.get(key)
                value = _opt_timeout(raw)
                if value is None:
                    if raw is not None:  # garbage: keep the last good value
                        bad.append(f"{key}={_short(raw)}")
                elif key == "keepaliveTimeout":
                    self.server_keepalive_timeout = value
                else:
                    self.server_accept_keepalive_timeout = value
            if bad:
                events.append(
                    MalformedMessage(
                        ch, f"SETUP: {', '.join(bad)} is not a positive number of seconds"
                    )
                )
            v = msg.get("version")
            events.append(
                ServerSetup(
                    self.server_keepalive_timeout,
                    self.server_accept_keepalive_timeout,
                    v if isinstance(v, str) else None,
                )
            )
            self._maybe_auth()
        elif t == "AUTH_STATE":
            state = msg.get("state")
            if state == "AUTHORIZED":
                self._auth_state_seen = True
                if self.phase is not Phase.AUTHORIZED:
                    self.phase = Phase.AUTHORIZED
                    uid = msg.get("userId")
                    events.append(Authorized(uid if isinstance(uid, str) else None))
                    self._open_channels()
            elif state == "UNAUTHORIZED":
                initial = not self._auth_state_seen
                self._auth_state_seen = True
                if self._auth_sent and not initial:
                    # the first AUTH_STATE of a connection is the server's greeting (it may
                    # cross our AUTH on the wire); a later UNAUTHORIZED rejects our token
                    events.append(AuthRejected())
                    events.append(ConnectionFatal("AUTH rejected", refresh_token=True))
                else:
                    self._maybe_auth()
            else:
                events.append(
                    MalformedMessage(ch, f"AUTH_STATE with unknown state {_short(state)}")
                )
        elif t == "CHANNEL_OPENED":
            c = self.channels.get(ch)
            if c is not None and c.requested and not c.cancelling:
                c.opened = True
                params = msg.get("parameters")
                events.append(ChannelOpened(ch, dict(params) if isinstance(params, dict) else {}))
                self._setup_channel(c)
        elif t == "CHANNEL_CLOSED":
            c = self.channels.get(ch)
            if c is not None:
                expected = c.cancelling
                c.requested = c.opened = c.cancelling = False
                events.append(ChannelClosed(ch, expected))
                if not expected and self.phase is Phase.AUTHORIZED and self.subscriptions[ch]:
                    self._request_channel(c)  # server closed it on its own: reopen
        elif t == "FEED_CONFIG":
            # Layouts are validated here, once, for the protocol and the decoder alike: the
            # decoder is configured from the message of FeedConfigReceived, which never holds a
            # malformed layout. A malformed entry leaves that type's last good layout in place.
            good, problems = _event_fields(msg)
            config = dict(msg)
            if problems:
                events.append(MalformedMessage(ch, "FEED_CONFIG " + "; ".join(problems)))
                config.pop("eventFields", None)
                if good:
                    config["eventFields"] = good
            if ch in self.layouts:
                for et, fl in good.items():
                    self.layouts[ch][et] = list(fl)
            events.append(FeedConfigReceived(ch, config))
        elif t == "ERROR":
            err = ServerError(ch, str(msg.get("error", "UNKNOWN")), str(msg.get("message", "")))
            events.append(err)
            if err.error in _FATAL_ERRORS:
                events.append(
                    ConnectionFatal(
                        f"server ERROR {err.error}: {err.message}",
                        refresh_token=err.error == "UNAUTHORIZED",
                    )
                )
        elif t != "KEEPALIVE":  # (any message, even an unexpected one, counts as liveness)
            events.append(MalformedMessage(ch, f"unexpected message type {_short(t)}"))
        return events

    def _maybe_auth(self) -> None:
        if self._auth_sent or self.phase is not Phase.SETUP_SENT:
            return
        self._auth_sent = True
        self.phase = Phase.AUTH_SENT
        self._send({"type": "AUTH", "channel": 0, "token": self.token or ""})

    def _open_channels(self) -> None:
        for c in self.channels.values():
            if self.subscriptions[c.number] and not c.requested:
                self._request_channel(c)

    def _request_channel(self, c: _Channel) -> None:
        c.requested = True
        self._send(
            {
                "type": "CHANNEL_REQUEST",
                "channel": c.number,
                "service": "FEED",
                "parameters": {"contract": c.contract},
            }
        )

    def feed_setup_message(self, c: _Channel) -> dict[str, Any]:
        agg = (
            self.candle_aggregation_period if "Candle" in c.event_types else self.aggregation_period
        )
        return {
            "type": "FEED_SETUP",
            "channel": c.number,
            "acceptAggregationPeriod": agg,
            "acceptDataFormat": "COMPACT",
            "acceptEventFields": {t: list(self.event_fields[t]) for t in sorted(c.event_types)},
        }

    def _setup_channel(self, c: _Channel) -> None:
        self._send(self.feed_setup_message(c))
        entries = list(self.subscriptions[c.number].values())
        self._queue_subscription(c.number, add=entries, reset=True)

    # ---- subscriptions ---------------------------------------------------------------------

    def subscribe(self, event_type: str, symbols: Iterable[str]) -> None:
        if event_type == "Candle":
            raise ValueError("use subscribe_candles() for Candle (it needs a fromTime)")
        ch = self.channel_for(event_type)
        new: list[dict[str, Any]] = []
        subs = self.subscriptions[ch]
        todo: dict[SubKey, dict[str, Any]] = {}
        for s in symbols:
            if not isinstance(s, str) or not s:
                raise ValueError(f"bad symbol {s!r}")
            key = (event_type, s)
            if key not in subs and key not in todo:
                todo[key] = self._checked_entry(ch, {"type": event_type, "symbol": s})
        for key, entry in todo.items():  # nothing is stored when one entry is bad
            subs[key] = entry
            new.append(entry)
        self._after_change(ch, add=new)

    def unsubscribe(self, event_type: str, symbols: Iterable[str]) -> None:
        ch = self.channel_for(event_type)
        subs = self.subscriptions[ch]
        gone: list[dict[str, Any]] = []
        for s in symbols:
            entry = subs.pop((event_type, s), None)
            if entry is not None:
                gone.append(entry)  # Candle remove keeps its fromTime: mandatory (pitfall 14)
        self._after_change(ch, remove=gone)

    def subscribe_candle_symbols(self, candle_symbols: Mapping[str, int]) -> None:
        """Add/replace candle subscriptions {candle symbol: fromTime ms}."""
        ch = self.channel_for("Candle")
        subs = self.subscriptions[ch]
        new = [
            self._checked_entry(ch, {"type": "Candle", "symbol": sym, "fromTime": int(t)})
            for sym, t in candle_symbols.items()
        ]
        for entry in new:  # nothing is stored when one entry is bad
            subs[("Candle", entry["symbol"])] = entry
        self._after_change(ch, add=new)

    def _checked_entry(self, ch: int, entry: dict[str, Any]) -> dict[str, Any]:
        """``entry`` if a FEED_SUBSCRIPTION frame holding only it fits ``max_frame_bytes``.

        Checked when the user subscribes: an entry that fits no frame would otherwise raise
        much later, while the server's CHANNEL_OPENED is handled (inside the frame callback).
        """
        frame = {"type": "FEED_SUBSCRIPTION", "channel": ch, "reset": True, "add": [entry]}
        if len(_encode(frame)) > self.max_frame_bytes:
            raise ValueError(
                f"subscription entry too large for a {self.max_frame_bytes}-byte frame: "
                f"{_short(entry)}"
            )
        return entry

    def set_candle_from_time(self, candle_symbol: str, from_time: int) -> None:
        """Move the fromTime used on the next replay (resume after the last known bar)."""
        entry = self.subscriptions[self.channel_for("Candle")].get(("Candle", candle_symbol))
        if entry is not None:
            entry["fromTime"] = int(from_time)

    def _after_change(
        self,
        ch: int,
        add: list[dict[str, Any]] | None = None,
        remove: list[dict[str, Any]] | None = None,
    ) -> None:
        if self.phase is not Phase.AUTHORIZED or not (add or remove):
            return
        c = self.channels[ch]
        if c.opened:
            self._queue_subscription(ch, add=add or [], remove=remove or [])
        elif not c.requested and self.subscriptions[ch]:
            self._request_channel(c)  # replay on CHANNEL_OPENED covers the new entries

    def _queue_subscription(
        self,
        ch: int,
        *,
        add: list[dict[str, Any]] | None = None,
        remove: list[dict[str, Any]] | None = None,
        reset: bool = False,
    ) -> None:
        add = add or []
        remove = remove or []
        candles = [e for e in add if "fromTime" in e]
        plain = [e for e in add if "fromTime" not in e]
        msgs = subscription_messages(ch, plain, remove, reset=reset, limit=self.max_frame_bytes)
        self._out.extend(msgs)
        for e in candles:  # one candle per message, paced by the transport
            msg = _encode({"type": "FEED_SUBSCRIPTION", "channel": ch, "add": [e]})
            self._paced.append((e["symbol"], msg))

    def requeue_candles(self, candle_symbols: Iterable[str]) -> int:
        """Re-send candle subscriptions (after a rate-limit rejection). Returns how many."""
        ch = self.channel_for("Candle")
        subs = self.subscriptions[ch]
        n = 0
        for sym in candle_symbols:
            e = subs.get(("Candle", sym))
            if e is not None and self.channels[ch].opened:
                msg = _encode({"type": "FEED_SUBSCRIPTION", "channel": ch, "add": [e]})
                self._paced.append((sym, msg))
                n += 1
        return n


def subscription_messages(
    channel: int,
    add: Sequence[Mapping[str, Any]],
    remove: Sequence[Mapping[str, Any]] = (),
    *,
    reset: bool = False,
    limit: int = MAX_FRAME_BYTES,
) -> list[bytes]:
    """FEED_SUBSCRIPTION frames for the given entries, each encoded frame <= ``limit`` bytes.

    ``reset`` goes only into the first frame (a later reset would wipe earlier chunks). An entry
    that cannot fit even alone raises ValueError (a symbol of ~8 KiB is not a symbol).
    """
    out: list[bytes] = []
    head = {"type": "FEED_SUBSCRIPTION", "channel": channel}
    first = True

    def flush(kind: str, items: list[bytes]) -> None:
        nonlocal first
        h = dict(head)
        if first and reset:
            h["reset"] = True
        first = False
        prefix = _encode(h)[:-1] + b',"' + kind.encode() + b'":['
        out.append(prefix + b",".join(items) + b"]}")

    for kind, entries in (("remove", remove), ("add", add)):
        h = dict(head)
        if reset and first:
            h["reset"] = True
        base = len(_encode(h)) + len(kind) + 6  # ,"kind":[ ... ]
        items: list[bytes] = []
        size = base
        for e in entries:
            b = _encode(e)
            extra = len(b) + (1 if items else 0)
            if base + len(b) > limit:
                raise ValueError(f"subscription entry too large for a {limit}-byte frame: {e}")
            if size + extra > limit:
                flush(kind, items)
                items, size = [], len(_encode(head)) + len(kind) + 6
                extra = len(b)
            items.append(b)
            size += extra
        if items:
            flush(kind, items)
    if reset and first:
        out.append(_encode({**head, "reset": True}))
    return out


def _opt_timeout(v: object) -> float | None:
    """A keepalive timeout in seconds: a finite number > 0, else None."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) and f > 0 else None


def _short(v: object, limit: int = 80) -> str:
    r = repr(v)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _event_fields(msg: Mapping[str, Any]) -> tuple[dict[str, list[str]], list[str]]:
    """(well-formed layouts, problems) of a FEED_CONFIG's ``eventFields``.

    Well-formed (the decoder's rules too): an object mapping each event type to a list of
    distinct str field names; a missing or null ``eventFields`` is "no layouts".
    """
    ef = msg.get("eventFields")
    if ef is None:
        return {}, []
    if not isinstance(ef, dict):
        return {}, [f"eventFields is not an object: {_short(ef)}"]
    good: dict[str, list[str]] = {}
    problems: list[str] = []
    for et, fl in ef.items():
        if not isinstance(et, str):
            problems.append(f"eventFields key {_short(et)} is not a str")
        elif not isinstance(fl, list):
            problems.append(f"eventFields[{et!r}] is not a list: {_short(fl)}")
        elif not all(isinstance(f, str) for f in fl):
            problems.append(f"eventFields[{et!r}] has a non-string field name: {_short(fl)}")
        elif len(set(fl)) != len(fl):
            problems.append(f"eventFields[{et!r}] has a duplicate field: {_short(fl)}")
        else:
            good[et] = fl
    return good, problems
