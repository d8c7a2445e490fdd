"""In-process fan-out of the worker's payloads to WebSocket clients, sans-IO.

`Hub` knows the clients, what each one subscribed to and the latest snapshot per symbol. It
is fed whole payloads (the exact bytes the worker publishes to Redis) and writes ready-made
WebSocket frames to each client's transport: a payload is framed once, however many clients
receive it, and a client gets one ``transport.write`` per fed batch, not one per message. No
coroutine per message, no task per client: a slow client can only ever cost a list append.

Flow control per client (a bounded send queue):

* while the transport's write buffer stays at or below ``high_water`` bytes, frames are written
  at once;
* above it the client is *behind*: frames go to its pending queue instead. There the forming
  bar is conflated: a new forming-bar delta of a symbol replaces the one still queued for it
  (counted in ``conflated``); final bars, snapshots and replies are never dropped or merged;
* once the buffer drains to ``low_water`` (checked on every feed and by `pump`), the queue is
  written in order and the client is caught up again;
* a client whose queue exceeds ``max_pending`` messages, or that stays behind for longer than
  ``max_behind`` seconds, is disconnected (close code `CLOSE_SLOW`), counted in
  ``slow_disconnects``; what it still had queued is counted in ``dropped``.

May touch: its clients' transports (write, buffer size) and the ``kick`` callbacks they were
registered with. No event loop, no sockets of its own: `ttfast.edge.app` drives it, and tests
drive it with a fake transport.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_POLICY",
    "CLOSE_SLOW",
    "CLOSE_UNKNOWN_SYMBOL",
    "FINAL_TAIL",
    "Client",
    "Hub",
    "HubLimits",
    "HubStats",
    "Transport",
    "candle_time",
    "ws_frame",
]

CLOSE_GOING_AWAY: Final = 1001  # server shutting down
CLOSE_POLICY: Final = 1008  # too many bad messages
CLOSE_SLOW: Final = 1013  # "try again later": the client fell too far behind
CLOSE_UNKNOWN_SYMBOL: Final = 4404  # /ws/{symbol} of a symbol that has no snapshot

FINAL_TAIL: Final = b'"final":true}'  # how a closed bar's delta payload ends (`publish`'s final)

# kinds of queued messages
_FORMING: Final = 0  # forming-bar delta: conflatable
_FINAL: Final = 1  # final-bar delta: never dropped while the client is connected
_OTHER: Final = 2  # snapshot, reply: never dropped while the client is connected


class Transport(Protocol):
    """What the hub needs of a client connection (an ``asyncio.Transport`` fits)."""

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...


def ws_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented WebSocket text frame (server to client, RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return bytes((0x81, 126, n >> 8, n & 0xFF)) + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


def candle_time(payload: bytes) -> int | None:
    """The bar time of a delta or snapshot payload (``"candle"``/``"last_candle"`` ``time``),
    read without parsing the JSON; None if it is not where the worker puts it."""
    i = payload.find(b'candle":{"time":')
    if i < 0:
        return None
    i += 16
    j = payload.find(b",", i)
    try:
        return int(payload[i:j])
    except ValueError:
        return None


@dataclass
class HubLimits:
    """Per-client flow control (see the module docstring)."""

    high_water: int = 256 * 1024  # transport buffer bytes above which a client is behind
    low_water: int = 64 * 1024  # buffer bytes at or below which its queue is written again
    max_pending: int = 2000  # queued messages (after conflation) before a disconnect
    max_behind: float = 15.0  # seconds a client may stay behind before a disconnect
    max_symbols: int = 1000  # subscriptions per client

    def __post_init__(self) -> None:
        if not 0 <= self.low_water <= self.high_water:
            raise ValueError("need 0 <= low_water <= high_water")
        if self.max_pending < 1 or self.max_behind <= 0 or self.max_symbols < 1:
            raise ValueError("max_pending, max_behind and max_symbols must be positive")


@dataclass
class HubStats:
    """Counters since start (``/metrics``)."""

    connections: int = 0  # clients ever added
    deltas_in: int = 0  # delta payloads fed (the worker's feed skips them while nobody listens)
    messages_sent: int = 0  # frames handed to transports (deltas, snapshots, replies)
    conflated: int = 0  # forming-bar deltas replaced by a newer one while a client was behind
    dropped: int = 0  # messages never sent: queued at a disconnect, or for a closing transport
    slow_disconnects: int = 0  # clients disconnected for falling behind
    bad_messages: int = 0  # client messages refused (app.py counts them here)


class Client:
    """One WebSocket connection as the hub sees it."""

    __slots__ = (
        "_out",
        "behind_since",
        "closed",
        "forming",
        "held",
        "id",
        "kick",
        "pending",
        "slow",
        "subs",
        "transport",
    )

    def __init__(self, cid: int, transport: Transport, kick: Callable[[int, str], None]) -> None:
        self.id = cid
        self.transport = transport
        self.kick = kick  # close the connection with (code, reason); called at most once
        self.subs: set[str] = set()
        self._out: list[bytes] = []  # frames of the batch being fed (direct path)
        self.slow = False  # behind or holding: messages take the queued path
        self.behind_since: float | None = None
        self.pending: list[list[object]] = []  # [frame, kind, name] in send order
        self.forming: dict[str, list[object]] = {}  # name -> its queued forming delta entry
        self.held: dict[str, list[tuple[bytes, int, int | None]]] = {}  # name -> held deltas
        self.closed = False

    def __repr__(self) -> str:
        return f"<Client {self.id} subs={len(self.subs)} pending={len(self.pending)}>"


class Hub:
    """Subscriptions, latest snapshots and per-client bounded queues (module docstring)."""

    def __init__(
        self, limits: HubLimits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or HubLimits()
        self.clock = clock
        self.stats = HubStats()
        self.snapshots: dict[str, bytes] = {}  # name -> latest snapshot payload
        self._subs: dict[str, set[Client]] = {}
        self._clients: set[Client] = set()
        self._behind: set[Client] = set()  # clients with a pending queue
        self._doomed: list[Client] = []  # over a limit: disconnected once the current feed ends
        self._next_id = 0

    # -- clients -----------------------------------------------------------------------------
    @property
    def clients(self) -> int:
        return len(self._clients)

    @property
    def behind(self) -> int:
        """Clients currently behind (writing to their queue)."""
        return len(self._behind)

    def add_client(self, transport: Transport, kick: Callable[[int, str], None]) -> Client:
        self._next_id += 1
        c = Client(self._next_id, transport, kick)
        self._clients.add(c)
        self.stats.connections += 1
        return c

    def remove_client(self, c: Client) -> None:
        """The connection is gone: forget it (what it still had queued is dropped)."""
        for name in c.subs:
            self._unsub(c, name)
        c.subs.clear()
        self._drop_queue(c)
        c.closed = True
        self._clients.discard(c)

    def disconnect(self, c: Client, code: int, reason: str) -> None:
        """Stop sending to `c` and ask the app to close it with `code`."""
        if c.closed:
            return
        self.remove_client(c)
        c.kick(code, reason)

    def subscriptions(self, c: Client) -> list[str]:
        return sorted(c.subs)

    def subscribers(self, name: str) -> int:
        s = self._subs.get(name)
        return len(s) if s else 0

    @property
    def subscribed(self) -> bool:
        """Any subscription at all (a feed may skip building deltas nobody receives)."""
        return bool(self._subs)

    def watched(self) -> list[str]:
        """Names with at least one subscriber."""
        return [n for n, s in self._subs.items() if s]

    # -- subscriptions -----------------------------------------------------------------------
    def subscribe(self, c: Client, name: str, *, hold: bool = False) -> bool:
        """Subscribe `c` to `name`; False when it is at its limit (already subscribed: True).

        With ``hold``, deltas of `name` are kept aside until `release` (the snapshot is being
        fetched); otherwise the cached snapshot, if any, is sent first."""
        if c.closed:
            return False
        if name in c.subs:
            return True
        if len(c.subs) >= self.limits.max_symbols:
            return False
        c.subs.add(name)
        self._subs.setdefault(name, set()).add(c)
        if hold:
            c.held[name] = []
            c.slow = True
        else:
            snap = self.snapshots.get(name)
            if snap is not None:
                self.send(c, snap)
        return True

    def release(self, c: Client, name: str, snapshot: bytes | None) -> bool:
        """End a hold: send `snapshot`, then the deltas held meanwhile that are not older than
        it (final bars always). Without a snapshot the subscription is dropped: False."""
        held = c.held.pop(name, None)
        self._update_slow(c)
        if c.closed or held is None:
            return False
        if snapshot is None:
            self.unsubscribe(c, name)
            return False
        self.send(c, snapshot)
        t0 = candle_time(snapshot)
        for frame, kind, t in held:
            if kind == _FINAL or t0 is None or t is None or t >= t0:
                self._send_frame(c, frame, kind, name)
            else:
                self.stats.dropped += 1  # already in the snapshot
        if self._doomed:
            self._reap()
        return True

    def unsubscribe(self, c: Client, name: str) -> bool:
        if name not in c.subs:
            return False
        c.subs.discard(name)
        c.held.pop(name, None)
        self._update_slow(c)
        self._unsub(c, name)
        return True

    def _unsub(self, c: Client, name: str) -> None:
        s = self._subs.get(name)
        if s is not None:
            s.discard(c)
            if not s:
                del self._subs[name]

    def _update_slow(self, c: Client) -> None:
        c.slow = bool(c.held) or c.behind_since is not None

    # -- feeding -----------------------------------------------------------------------------
    def set_snapshots(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Remember the latest snapshot per name (sent first to new subscribers)."""
        self.snapshots.update(items)

    def publish(self, items: Sequence[tuple[str, bytes, bool]]) -> None:
        """Fan out one batch of deltas ``(name, payload, final)``, in order, to subscribers."""
        self.stats.deltas_in += len(items)
        subs_of = self._subs
        touched: list[Client] = []
        for name, payload, final in items:
            subs = subs_of.get(name)
            if not subs:
                continue
            frame = ws_frame(payload)
            for c in subs:
                if c.slow:
                    self._slow_path(c, frame, _FINAL if final else _FORMING, name, payload)
                else:
                    out = c._out
                    if not out:
                        touched.append(c)
                    out.append(frame)
        for c in touched:
            self._flush_out(c)
        if self._doomed:
            self._reap()

    def send(self, c: Client, payload: bytes) -> None:
        """Send one message (snapshot, reply) to `c`, in order with its deltas."""
        if c.closed:
            return
        self._send_frame(c, ws_frame(payload), _OTHER, None)
        if self._doomed:
            self._reap()

    def broadcast_snapshot(self, name: str, payload: bytes) -> None:
        """A new snapshot for every subscriber of `name` (after a feed outage) and the cache."""
        self.snapshots[name] = payload
        for c in list(self._subs.get(name, ())):
            if name not in c.held:
                self.send(c, payload)

    # -- the write paths ---------------------------------------------------------------------
    def _flush_out(self, c: Client) -> None:
        out = c._out
        data = out[0] if len(out) == 1 else b"".join(out)
        n = len(out)
        out.clear()
        self._write(c, data, n)

    def _write(self, c: Client, data: bytes, n: int) -> None:
        t = c.transport
        if t.is_closing():
            self.stats.dropped += n
            return
        t.write(data)
        self.stats.messages_sent += n
        if t.get_write_buffer_size() > self.limits.high_water:
            c.behind_since = self.clock()
            c.slow = True
            self._behind.add(c)

    def _send_frame(self, c: Client, frame: bytes, kind: int, name: str | None) -> None:
        if c.slow:
            self._slow_path(c, frame, kind, name, None)
        else:
            self._write(c, frame, 1)

    def _slow_path(
        self, c: Client, frame: bytes, kind: int, name: str | None, payload: bytes | None
    ) -> None:
        if name is not None and payload is not None:
            held = c.held.get(name)
            if held is not None:  # its snapshot is being fetched
                if len(held) >= self.limits.max_pending:
                    self._doomed.append(c)
                    return
                held.append((frame, kind, candle_time(payload)))
                return
        if c.behind_since is None:  # holding another symbol only: not behind
            self._write(c, frame, 1)
            return
        if self._drained(c):
            self._write(c, frame, 1)
            return
        if kind == _FORMING and name is not None:
            entry = c.forming.get(name)
            if entry is not None:
                entry[0] = frame
                self.stats.conflated += 1
                return
            entry = [frame, kind, name]
            c.forming[name] = entry
        else:
            entry = [frame, kind, name]
            if name is not None:
                c.forming.pop(name, None)  # a later forming delta must stay after this one
        c.pending.append(entry)
        if len(c.pending) == self.limits.max_pending + 1:
            self._doomed.append(c)  # not now: publish() may be iterating over its symbol's set

    def _reap(self) -> None:
        doomed, self._doomed = self._doomed, []
        for c in doomed:
            if not c.closed:
                self.stats.slow_disconnects += 1
                self.disconnect(c, CLOSE_SLOW, "slow consumer")

    def _drained(self, c: Client) -> bool:
        """If `c`'s buffer is down to low_water, write its queue; True once it is caught up."""
        t = c.transport
        if t.is_closing():
            return False
        if t.get_write_buffer_size() > self.limits.low_water:
            return False
        pending = c.pending
        if pending:
            data = b"".join([e[0] for e in pending])  # type: ignore[misc]
            n = len(pending)
            c.pending = []
            c.forming.clear()
            t.write(data)
            self.stats.messages_sent += n
            if t.get_write_buffer_size() > self.limits.high_water:
                c.behind_since = self.clock()  # behind again: a fresh grace period
                return False
        c.behind_since = None
        self._behind.discard(c)
        self._update_slow(c)
        return True

    def _drop_queue(self, c: Client) -> None:
        self.stats.dropped += len(c.pending) + sum(len(h) for h in c.held.values())
        c.pending = []
        c.forming.clear()
        c.held.clear()
        c._out.clear()
        c.behind_since = None
        self._behind.discard(c)

    # -- time --------------------------------------------------------------------------------
    def pump(self) -> None:
        """Write the queues of clients whose buffers drained; disconnect those behind for
        longer than ``max_behind``. Call it every few tens of ms (the app does)."""
        if not self._behind:
            return
        now = self.clock()
        for c in list(self._behind):
            if c.closed:
                self._behind.discard(c)
            elif self._drained(c):
                continue
            elif c.behind_since is not None and now - c.behind_since > self.limits.max_behind:
                self._doomed.append(c)
        if self._doomed:
            self._reap()

    def close_all(self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutdown") -> None:
        for c in list(self._clients):
            self.disconnect(c, code, reason)
