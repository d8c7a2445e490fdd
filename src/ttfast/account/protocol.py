"""Sans-IO account-streamer state machine (spec §7): builds outgoing messages, matches acks and
errors to requests, unpacks ``{"results": [...]}`` batches, decodes notifications into models.

This module never touches a socket, a clock or the event loop. It knows:

* the order the server enforces: ``connect`` first; heartbeats and subscriptions only after its
  ack (a heartbeat before connect is "not implemented", a subscription "connect-not-completed");
* that every message carries the *current* ``auth-token`` (``Bearer <access token>``): the
  caller hands the protocol a fresh one with :meth:`AccountProtocol.set_auth` before sending;
* the *desired* subscriptions (public watchlists, quote alerts, user messages), which survive
  reconnects and are replayed after every connect ack;
* how to pair an ack or error with its request: by ``request-id`` when the server echoes it,
  else (the documented connect ack has none) with the oldest pending request of that action;
* the notification types and their models; unknown types are kept raw and counted.

The auth token is never part of a repr or an event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Final

import msgspec

from ttfast.account.models import ExternalTransaction, OrderChain
from ttfast.rest.models import (
    ApiModel,
    Balance,
    ComplexOrder,
    Order,
    Position,
    TradingStatus,
    convert,
)

__all__ = [
    "NOTIFICATION_MODELS",
    "AccountProtocol",
    "Ack",
    "ActionFailed",
    "ConnectRejected",
    "Connected",
    "Malformed",
    "Notification",
    "ProtocolEvent",
    "ProtocolState",
    "ProtocolStats",
]

#: notification ``type`` -> model its ``data`` is decoded into (others stay raw dicts)
NOTIFICATION_MODELS: Final[dict[str, type[ApiModel]]] = {
    "Order": Order,
    "PlacedOrder": Order,
    "ComplexOrder": ComplexOrder,
    "PlacedComplexOrder": ComplexOrder,
    "CurrentPosition": Position,
    "AccountBalance": Balance,
    "TradingStatus": TradingStatus,
    "ExternalTransaction": ExternalTransaction,
    "OrderChain": OrderChain,
}

#: the error a subscription sent before the connect ack gets: replayed after the ack
CONNECT_NOT_COMPLETED: Final = "connect-not-completed"

_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(float_hook=Decimal)
_encoder = msgspec.json.Encoder()


class ProtocolState(Enum):
    IDLE = "idle"  # no connection
    CONNECTING = "connecting"  # connect sent, no ack yet
    CONNECTED = "connected"  # connect acknowledged


@dataclass(frozen=True, slots=True)
class Notification:
    """One pushed object: ``type`` as the server names it, ``data`` the decoded model (the raw
    dict for a type ttfast does not model, or that failed to decode), ``timestamp`` the server's
    epoch ms. ``source`` is ``"stream"``, or ``"rehydrate"`` for a change found through REST
    after a reconnect (no ``timestamp`` then)."""

    type: str
    data: Any
    timestamp: int | None = None
    source: str = "stream"
    sequence: int | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    """``status: ok`` for a request; ``value`` is what the server echoed."""

    action: str
    request_id: int | None
    session_id: str | None = None
    value: Any = None


@dataclass(frozen=True, slots=True)
class ActionFailed:
    """``status: error`` for a request (not a connect rejection)."""

    action: str
    request_id: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Connected:
    """The connect ack: subscriptions were queued for replay."""

    session_id: str | None
    accounts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConnectRejected:
    """The server refused ``connect`` (or a heartbeat): the token is likely stale. The
    connection is useless: close it and reconnect with a fresh token."""

    action: str
    message: str


@dataclass(frozen=True, slots=True)
class Malformed:
    """A frame or an item of one could not be used (counted in ``stats.decode_errors``)."""

    detail: str


ProtocolEvent = Notification | Ack | ActionFailed | Connected | ConnectRejected | Malformed


@dataclass
class ProtocolStats:
    notifications: int = 0
    decode_errors: int = 0
    acks: int = 0
    errors: int = 0
    #: notifications of a type ttfast does not model, by type (kept raw)
    unknown_types: Counter[str] = field(default_factory=Counter)


class AccountProtocol:
    """State of one logical account-stream session across connections.

    Call :meth:`connection_made` on every new socket, :meth:`receive` with every text frame,
    :meth:`take_outgoing` to get the bytes to send, :meth:`connection_lost` when the socket dies.
    """

    def __init__(self, accounts: Iterable[str], *, source: str | None = "ttfast") -> None:
        self.accounts: tuple[str, ...] = tuple(accounts)
        if not self.accounts:
            raise ValueError("at least one account number is required")
        self.source = source
        self.state = ProtocolState.IDLE
        self.session_id: str | None = None
        self.stats = ProtocolStats()
        #: desired subscriptions: action -> value (None: no value), replayed after each connect
        self.subscriptions: dict[str, Any] = {}
        self._auth = ""
        self._next_id = 1
        self._pending: dict[int, str] = {}  # request-id -> action, in send order
        self._out: list[bytes] = []

    def __repr__(self) -> str:  # never the token
        return (
            f"AccountProtocol(accounts={list(self.accounts)!r}, state={self.state.value}, "
            f"pending={len(self._pending)})"
        )

    # ---- outgoing -----------------------------------------------------------------------------

    def set_auth(self, access_token: str) -> None:
        """The token the next messages carry (sent as ``Bearer <token>``, spec §7)."""
        self._auth = "Bearer " + access_token

    @property
    def pending(self) -> dict[int, str]:
        """Requests sent and not yet answered: request-id -> action."""
        return dict(self._pending)

    def _request(self, action: str, value: Any = None, *, with_value: bool = True) -> int:
        rid = self._next_id
        self._next_id += 1
        msg: dict[str, Any] = {"action": action}
        if with_value:
            msg["value"] = value
        msg["auth-token"] = self._auth
        msg["request-id"] = rid
        if self.source:
            msg["source"] = self.source
        self._pending[rid] = action
        self._out.append(_encoder.encode(msg))
        return rid

    def connection_made(self, access_token: str | None = None) -> int:
        """A new socket: queue ``connect`` (with every account); returns its request-id."""
        if access_token is not None:
            self.set_auth(access_token)
        self._pending.clear()
        self._out.clear()
        self.state = ProtocolState.CONNECTING
        self.session_id = None
        return self._request("connect", list(self.accounts))

    def connection_lost(self) -> None:
        self.state = ProtocolState.IDLE
        self._pending.clear()
        self._out.clear()

    def heartbeat(self) -> int | None:
        """Queue a heartbeat (only once connected; before, the server answers an error)."""
        if self.state is not ProtocolState.CONNECTED:
            return None
        return self._request("heartbeat", with_value=False)

    def subscribe(self, action: str, value: Any = None) -> int | None:
        """Remember a subscription (``public-watchlists-subscribe``, ``quote-alerts-subscribe``,
        ``user-message-subscribe``); sent now if connected (returns its request-id), else
        after the next connect ack."""
        self.subscriptions[action] = value
        if self.state is ProtocolState.CONNECTED:
            return self._send_subscription(action, value)
        return None

    def _send_subscription(self, action: str, value: Any) -> int:
        return self._request(action, value, with_value=value is not None)

    def take_outgoing(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    # ---- incoming -----------------------------------------------------------------------------

    def receive(self, payload: bytes | str) -> list[ProtocolEvent]:
        """Events for one text frame (a single message or a ``{"results": [...]}`` batch)."""
        try:
            msg = _decoder.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            self.stats.decode_errors += 1
            return [Malformed(f"invalid JSON: {exc}")]
        out: list[ProtocolEvent] = []
        if type(msg) is dict and "results" in msg and "type" not in msg and "status" not in msg:
            items = msg["results"]
            if type(items) is not list:
                self.stats.decode_errors += 1
                return [Malformed("'results' is not a list")]
            for item in items:
                self._item(item, out)
        else:
            self._item(msg, out)
        return out

    def _item(self, msg: Any, out: list[ProtocolEvent]) -> None:
        if type(msg) is not dict:
            self.stats.decode_errors += 1
            out.append(Malformed(f"message is a {type(msg).__name__}, not an object"))
            return
        if "type" in msg:
            out.append(self._notification(msg))
        elif "status" in msg:
            self._status(msg, out)
        else:
            self.stats.decode_errors += 1
            out.append(Malformed(f"neither a notification nor a status: keys {sorted(msg)[:8]}"))

    def _notification(self, msg: dict[str, Any]) -> ProtocolEvent:
        st = self.stats
        t = msg["type"]
        if type(t) is not str:
            st.decode_errors += 1
            return Malformed("notification type is not a string")
        data = msg.get("data")
        ts = msg.get("timestamp")
        seq = msg.get("ws-sequence")
        ts = ts if type(ts) is int else None
        seq = seq if type(seq) is int else None
        model = NOTIFICATION_MODELS.get(t)
        st.notifications += 1
        if model is None:
            st.unknown_types[t] += 1
            return Notification(t, data, ts, "stream", seq)
        if type(data) is not dict:
            st.decode_errors += 1
            return Malformed(f"{t} notification without an object in 'data'")
        try:
            obj = convert(data, model)
        except msgspec.ValidationError as exc:
            st.decode_errors += 1
            return Malformed(f"{t} notification not decoded: {exc}")
        return Notification(t, obj, ts, "stream", seq)

    def _match(self, action: str, rid: Any) -> int | None:
        if type(rid) is int and rid in self._pending:
            del self._pending[rid]
            return rid
        for r, a in self._pending.items():  # oldest first (insertion order)
            if a == action:
                del self._pending[r]
                return r
        return rid if type(rid) is int else None

    def _status(self, msg: dict[str, Any], out: list[ProtocolEvent]) -> None:
        st = self.stats
        action = msg.get("action")
        action = action if type(action) is str else ""
        status = msg.get("status")
        sid = msg.get("web-socket-session-id")
        rid = self._match(action, msg.get("request-id"))
        if status == "ok":
            st.acks += 1
            if type(sid) is str:
                self.session_id = sid
            out.append(Ack(action, rid, self.session_id, msg.get("value")))
            if action == "connect" and self.state is not ProtocolState.CONNECTED:
                self.state = ProtocolState.CONNECTED
                value = msg.get("value")
                accts = tuple(v for v in value if type(v) is str) if type(value) is list else ()
                out.append(Connected(self.session_id, accts or self.accounts))
                for a, v in self.subscriptions.items():
                    self._send_subscription(a, v)
            return
        st.errors += 1
        m = msg.get("message")
        text = m if type(m) is str else str(m)
        if status != "error":
            text = f"status {status!r}: {text}"
        if text == CONNECT_NOT_COMPLETED:
            # a subscription raced the connect ack; it is replayed after the ack anyway
            out.append(ActionFailed(action, rid, text))
            return
        if action in ("connect", "heartbeat"):
            self.state = ProtocolState.IDLE
            out.append(ConnectRejected(action, text))
            return
        out.append(ActionFailed(action, rid, text))

    # ---- helpers for tests and servers -------------------------------------------------------

    @staticmethod
    def decode_json(payload: bytes | str) -> Any:
        """Decode like the protocol does (numbers with a fraction become ``Decimal``)."""
        return _decoder.decode(payload)
