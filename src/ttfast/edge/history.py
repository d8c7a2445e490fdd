"""Closed bars per symbol for ``GET /history``: what the worker keeps, in Redis or in memory.

The worker turns the closed-bar rows of each pipeline batch (kinds FINAL and HISTORY) into
`HistoryOp` s with `history_ops`: per symbol, the bars as the JSON objects ``/history`` returns
(``{"time","open","high","low","close","volume","macd":{..},"hma":{..}}``, the fields and number
format of the worker's deltas) and the time range they replace. Two stores apply them:

* `RedisHistoryWriter` (a worker with ``--redis``): ``history:<name>``, a sorted set scored by
  bar time (epoch ms), the bar JSON as member, capped at the newest ``cap`` bars. A sorted set
  rather than a list because every op first removes the range it covers
  (``ZREMRANGEBYSCORE``), then adds (``ZADD``), then trims (``ZREMRANGEBYRANK``): a corrected
  or rebuilt bar replaces the old one, and a round re-sent after a Redis failure (delivery is
  at-least-once) leaves no duplicates. ``ZRANGE history:<name> -N -1`` reads the newest N,
  oldest first.
* `BarHistory` (``ttfast-worker --serve``): the same ops on an in-memory list per symbol.

May touch: its own Redis connection (`RedisHistoryWriter`, through the Redis sink's RESP
connection and the shared `BatchingSink` loop). No aiohttp.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Final

import numpy as np

from ttfast._core import (
    HIST_COLORS,
    HMA_DOWN_COLOR,
    HMA_UP_COLOR,
    KIND_FORMING,
    KIND_HISTORY,
    PipelineOutput,
    pack_command,
)
from ttfast._util import redact_url
from ttfast.sinks._base import BatchingSink
from ttfast.sinks.redis import RedisProtocolError, _RespConnection

__all__ = [
    "DEFAULT_BARS",
    "HISTORY_KEY_PREFIX",
    "MAX_BARS",
    "BarHistory",
    "HistoryOp",
    "RedisHistoryWriter",
    "history_ops",
    "snapshot_meta",
]

log = logging.getLogger("ttfast.edge.history")

HISTORY_KEY_PREFIX: Final = "history:"
DEFAULT_BARS: Final = 300  # GET /history without ?bars=
MAX_BARS: Final = 5000  # the most ?bars= may ask for

_HIST_JSON: Final = tuple(f'"{c}"' for c in HIST_COLORS)
_HMA_JSON: Final = (
    '"direction":null,"color":null',
    f'"direction":"up","color":"{HMA_UP_COLOR}"',
    f'"direction":"down","color":"{HMA_DOWN_COLOR}"',
)


@dataclass(slots=True)
class HistoryOp:
    """Closed bars of one symbol from one batch: remove every stored bar with time in
    [lo, hi] (hi None: no upper bound, a rebuild), then add `bars` (oldest first)."""

    name: str  # the worker's key name (snapshot:<name>)
    symbol: str  # the payloads' "symbol" (no period attribute)
    period: str  # the payloads' "period"
    lo: int
    hi: int | None
    bars: list[tuple[int, bytes]]


def snapshot_meta(snapshot: bytes | None, name: str) -> tuple[str, str | None]:
    """("symbol", "period") of a snapshot payload; (name, None) when it has none."""
    if snapshot is not None:
        try:
            d = json.loads(snapshot)
            period = d.get("period")
            return str(d["symbol"]), period if isinstance(period, str) else None
        except (ValueError, TypeError, KeyError, AttributeError):
            pass
    return name, None


def _num(x: float) -> str:
    return repr(x) if math.isfinite(x) else "null"


def _bar_json(t: int, cols: list[float], color: int, direction: int) -> bytes:
    o, h, lo, c, v, m, s, hist, hma = cols
    hc = _HIST_JSON[color] if color >= 0 else "null"
    hd = _HMA_JSON[0 if direction == 0 else (1 if direction > 0 else 2)]
    return (
        f'{{"time":{t},"open":{_num(o)},"high":{_num(h)},"low":{_num(lo)},"close":{_num(c)},'
        f'"volume":{_num(v)},"macd":{{"value":{_num(m)},"signal":{_num(s)},'
        f'"hist":{_num(hist)},"color":{hc}}},"hma":{{"value":{_num(hma)},{hd}}}}}'
    ).encode()


def history_ops(out: PipelineOutput, cap: int) -> list[HistoryOp]:
    """The closed bars of one pipeline batch, per symbol (at most the newest `cap` each)."""
    kind = out.kind
    sel = np.flatnonzero(kind != KIND_FORMING)
    if not len(sel):
        return []
    rows = sel.tolist()
    kinds = kind[sel].tolist()
    times = out.time[sel].tolist()
    cols = out.columns[:, sel].T.tolist()
    colors = out.color[sel].tolist()
    dirs = out.direction[sel].tolist()
    names, tags, periods = out.symbols, out.tag_symbols, out.periods
    groups: dict[str, list[int]] = {}  # name -> positions in sel, in row order
    for k, i in enumerate(rows):
        groups.setdefault(names[i], []).append(k)
    ops: list[HistoryOp] = []
    for name, ks in groups.items():
        rebuild = any(kinds[k] == KIND_HISTORY for k in ks)
        ks = ks[-cap:] if cap > 0 else ks
        bars = [(times[k], _bar_json(times[k], cols[k], colors[k], dirs[k])) for k in ks]
        i0 = rows[ks[0]]
        ops.append(
            HistoryOp(
                name,
                tags[i0],
                periods[i0],
                bars[0][0],
                None if rebuild else bars[-1][0],
                bars,
            )
        )
    return ops


class BarHistory:
    """`HistoryOp` s applied to an in-memory list per name (at most `cap` bars each, at most
    `max_names` names: ops of further names are ignored and counted)."""

    def __init__(self, cap: int = 1000, max_names: int = 100_000) -> None:
        if cap < 1:
            raise ValueError("cap must be >= 1")
        self.cap = cap
        self.max_names = max_names
        self.refused = 0
        self._times: dict[str, list[int]] = {}
        self._bars: dict[str, list[bytes]] = {}
        self._meta: dict[str, tuple[str, str]] = {}

    def __len__(self) -> int:
        return len(self._bars)

    def __contains__(self, name: object) -> bool:
        return name in self._bars

    def apply(self, ops: list[HistoryOp]) -> None:
        for op in ops:
            times = self._times.get(op.name)
            if times is None:
                if len(self._times) >= self.max_names:
                    self.refused += 1
                    continue
                times = self._times[op.name] = []
                self._bars[op.name] = []
            bars = self._bars[op.name]
            self._meta[op.name] = (op.symbol, op.period)
            i = bisect.bisect_left(times, op.lo)
            j = len(times) if op.hi is None else bisect.bisect_right(times, op.hi, i)
            # op.bars lie in [lo, hi]: they go exactly where the removed range was
            times[i:j] = [t for t, _ in op.bars]
            bars[i:j] = [b for _, b in op.bars]
            over = len(times) - self.cap
            if over > 0:
                del times[:over]
                del bars[:over]

    def last(self, name: str, n: int) -> list[bytes] | None:
        """The newest `n` bars of `name`, oldest first; None if it has none."""
        bars = self._bars.get(name)
        if bars is None:
            return None
        return bars[-n:] if n > 0 else []

    def meta(self, name: str) -> tuple[str, str] | None:
        """(symbol, period) of `name` as its payloads say."""
        return self._meta.get(name)


@dataclass
class HistoryWriterStats:
    bars_enqueued: int = 0  # = bars_written + bars_dropped + bars_rejected + backlog_bars
    bars_written: int = 0  # acknowledged by Redis
    bars_dropped: int = 0  # dropped from a full backlog, or unsent at close
    bars_rejected: int = 0  # in ops Redis answered with an error (not retried)
    failures: int = 0  # failed rounds (connection errors), retried
    reconnects: int = 0
    connected: bool = False


class RedisHistoryWriter(BatchingSink):
    """Applies `HistoryOp` s to ``history:<name>`` sorted sets (module docstring), pipelined,
    robust to Redis going away like the Redis sink: a bounded backlog (`max_backlog` bars,
    the oldest ops dropped and counted), reconnects with backoff, a failed round is sent
    again (the ops are idempotent)."""

    kind = "redis-history"
    _sender_name = "writer"
    _unit = "bars"

    def __init__(
        self,
        url: str,
        *,
        cap: int = 1000,
        prefix: str = HISTORY_KEY_PREFIX,
        max_backlog: int = 500_000,
        max_commands: int = 1024,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        socket_timeout: float = 5.0,
    ) -> None:
        if cap < 1 or max_backlog < 1 or max_commands < 3:
            raise ValueError("cap, max_backlog must be >= 1 and max_commands >= 3")
        super().__init__(url, log, backoff_initial=backoff_initial, backoff_max=backoff_max)
        self.cap = cap
        self.prefix = prefix.encode()
        self.max_backlog = max_backlog
        self.max_commands = max_commands
        self.socket_timeout = socket_timeout
        self.stats = HistoryWriterStats()
        self._ops: deque[HistoryOp] = deque()
        self._queued_bars = 0
        self._round: list[HistoryOp] = []  # the ops in flight
        self._conn: _RespConnection | None = None

    def __repr__(self) -> str:
        return f"<RedisHistoryWriter {redact_url(self.url)} backlog={self.backlog}>"

    @property
    def backlog(self) -> int:
        """Bars not acknowledged yet (queued + in flight)."""
        return self._queued_bars + sum(len(op.bars) for op in self._round)

    def write(self, ops: list[HistoryOp]) -> None:
        """Queue ops (never blocks, never raises on Redis trouble)."""
        if not ops:
            return
        for op in ops:
            self._ops.append(op)
            self._queued_bars += len(op.bars)
            self.stats.bars_enqueued += len(op.bars)
        while self._queued_bars > self.max_backlog and len(self._ops) > 1:
            old = self._ops.popleft()
            self._queued_bars -= len(old.bars)
            self.stats.bars_dropped += len(old.bars)
            self._limiter.log(
                "dropped",
                logging.WARNING,
                "redis %s: history backlog full (%d bars), oldest dropped (%d in all)",
                redact_url(self.url),
                self.max_backlog,
                self.stats.bars_dropped,
            )
        self._idle.clear()
        self._wake.set()

    def _has_work(self) -> bool:
        return bool(self._ops or self._round)

    def _unsent(self) -> int:
        return self.backlog

    async def _shutdown(self) -> None:
        lost = self.backlog
        if lost:
            self.stats.bars_dropped += lost
            log.warning("redis %s: closing with %d history bars unsent", redact_url(self.url), lost)
        self._ops.clear()
        self._round = []
        self._queued_bars = 0
        self._close_conn()

    def _close_conn(self) -> None:
        conn = self._conn
        self._conn = None
        if conn is not None:
            conn.close()

    def _recovered(self, failed: int) -> None:
        self.stats.reconnects += 1
        log.info("redis %s reconnected (history)", redact_url(self.url))

    def _take(self) -> list[HistoryOp]:
        ops: list[HistoryOp] = []
        budget = self.max_commands
        keys: set[str] = set()
        while self._ops:
            op = self._ops[0]
            need = 2 + (op.name not in keys)
            if ops and need > budget:
                break
            self._ops.popleft()
            self._queued_bars -= len(op.bars)
            ops.append(op)
            keys.add(op.name)
            budget -= need
        return ops

    def _commands(self, ops: list[HistoryOp]) -> list[bytes]:
        parts: list[bytes] = []
        trim = -(self.cap + 1)
        seen: dict[bytes, None] = {}
        for op in ops:
            key = self.prefix + op.name.encode()
            hi = b"+inf" if op.hi is None else op.hi
            parts.append(pack_command((b"ZREMRANGEBYSCORE", key, op.lo, hi)))
            args: list[object] = [b"ZADD", key]
            for t, bar in op.bars:
                args.append(t)
                args.append(bar)
            parts.append(pack_command(tuple(args)))
            seen[key] = None
        for key in seen:
            parts.append(pack_command((b"ZREMRANGEBYRANK", key, 0, trim)))
        return parts

    async def _send(self) -> bool:
        if not self._round:
            self._round = self._take()
        ops = self._round
        parts = self._commands(ops)
        try:
            if self._conn is None:
                self._conn = await _RespConnection.open(self.url, self.socket_timeout)
            errors = await self._conn.roundtrip(b"".join(parts), len(parts))
        except (OSError, EOFError, TimeoutError, RedisProtocolError) as exc:
            self._close_conn()
            self.stats.failures += 1
            self.stats.connected = False
            if not self._failing:
                log.warning(
                    "redis %s unavailable for history (%s: %s); retrying with backoff",
                    redact_url(self.url),
                    type(exc).__name__,
                    exc,
                )
            return False
        self.stats.connected = True
        self._round = []
        n = sum(len(op.bars) for op in ops)
        if errors:  # e.g. the key holds another type: not retryable
            # commands 2i and 2i+1 are op i's ZREMRANGEBYSCORE and ZADD; then the trims
            bad_ops = {i // 2 for i, _ in errors if i < 2 * len(ops) and i % 2 == 1}
            bad = sum(len(ops[i].bars) for i in bad_ops)
            self.stats.bars_rejected += bad
            self._limiter.log(
                "rejected",
                logging.ERROR,
                "redis %s rejected %d of %d history commands: %s",
                redact_url(self.url),
                len(errors),
                len(parts),
                errors[0][1].decode(errors="replace"),
            )
            n -= bad
        self.stats.bars_written += n
        return True
