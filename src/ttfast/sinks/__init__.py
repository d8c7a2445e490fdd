"""Where the worker's results go: Redis (snapshots + deltas), Telegraf/InfluxDB 1.x and
InfluxDB v2 (history): `RedisSink`, `TelegrafSink`, `InfluxV2Sink` (loaded on first use).

Sinks queue without blocking the batch loop and flush in batches from their own task (the
loop, `flush()` and `close()` are `ttfast.sinks._base.BatchingSink`, their shared base); a sink
that cannot reach its server keeps a bounded backlog and counts what it drops. Their warnings
go through `LogLimiter`, so a sink failing thousands of times a second logs a few lines, each
saying how many similar messages it stands for.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ttfast._util import lazy_exports

if TYPE_CHECKING:
    from ttfast.sinks.influx import InfluxV2Sink
    from ttfast.sinks.redis import RedisSink
    from ttfast.sinks.telegraf import TelegrafSink

__all__: list[str] = ["InfluxV2Sink", "LogLimiter", "RedisSink", "TelegrafSink"]

_LAZY = {
    "InfluxV2Sink": "ttfast.sinks.influx",
    "RedisSink": "ttfast.sinks.redis",
    "TelegrafSink": "ttfast.sinks.telegraf",
}

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)


class LogLimiter:
    """At most one record per `interval` seconds per key; the next one says how many were
    suppressed meanwhile. Callers pass counters as arguments, never secrets."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, key: str, level: int, msg: str, *args: object) -> bool:
        """Log `msg % args` unless `key` was logged less than `interval` seconds ago; True if
        logged."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False
        self._last[key] = now
        n = self._suppressed.pop(key, 0)
        if n:
            msg += " (%d similar messages suppressed)"
            args = (*args, n)
        self.logger.log(level, msg, *args, stacklevel=2)
        return True

    def reset(self, key: str) -> None:
        """Forget `key`: its next message is logged at once (e.g. after a recovery)."""
        self._last.pop(key, None)
        self._suppressed.pop(key, None)
