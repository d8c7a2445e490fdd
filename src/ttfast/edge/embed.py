"""What the worker runs of the edge: the Redis history writer and the in-process server.

`WorkerEdge` is the worker's one handle on ``ttfast.edge``: per pipeline batch `on_output`
encodes the closed bars once (`history_ops`) and hands them to ``history:<name>`` in Redis
(with ``--redis``) and, with ``--serve``, to the in-process server together with the batch's
snapshot and delta payloads. Nothing here may stop the worker's batch path: a failure is
counted (`errors`) and logged rate-limited.

May touch: the history writer's Redis connection and the edge server it starts. aiohttp is
imported only when serving.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ttfast._core import DELTA_CHANNEL_PREFIX, SNAPSHOT_KEY_PREFIX, PipelineOutput
from ttfast.edge.history import BarHistory, RedisHistoryWriter, history_ops
from ttfast.edge.hub import Hub
from ttfast.edge.local_feed import LocalFeed
from ttfast.sinks import LogLimiter

if TYPE_CHECKING:
    from ttfast.edge.app import EdgeServer

__all__ = ["WorkerEdge", "parse_hostport"]

log = logging.getLogger("ttfast.edge")


def parse_hostport(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``[HOST:]PORT`` (``[::1]:8000`` for IPv6) -> (host, port); ValueError if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = default_host, text
    host = host.strip("[]") or default_host
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad port in {text!r}")
    return host, int(port)


class WorkerEdge:
    """History into Redis and/or the edge server, fed from the worker's pipeline outputs."""

    def __init__(
        self,
        *,
        redis_url: str | None,
        history_bars: int,
        serve: tuple[str, int] | None,
        token: str | None = None,
        delta_prefix: str = DELTA_CHANNEL_PREFIX,
        snapshot_prefix: str = SNAPSHOT_KEY_PREFIX,
    ) -> None:
        self.history_bars = history_bars
        self.history: RedisHistoryWriter | None = (
            RedisHistoryWriter(redis_url, cap=history_bars)
            if redis_url and history_bars > 0
            else None
        )
        self.serve = serve
        self.token = token
        self.feed: LocalFeed | None = None
        if serve is not None:
            self.feed = LocalFeed(
                Hub(),
                BarHistory(max(1, history_bars)),
                delta_prefix=delta_prefix,
                snapshot_prefix=snapshot_prefix,
            )
        self.server: EdgeServer | None = None
        self.url: str | None = None
        self.errors = 0
        self._warn = LogLimiter(log)

    @property
    def active(self) -> bool:
        return self.history is not None or self.feed is not None

    def on_output(self, out: PipelineOutput) -> None:
        """One pipeline batch (never raises)."""
        try:
            ops = history_ops(out, self.history_bars) if self.history_bars > 0 else []
            if self.history is not None and ops:
                self.history.write(ops)
            if self.feed is not None:
                self.feed.on_output(out, ops)
        except Exception as exc:  # a bug guard: the worker's batch path must go on
            self.errors += 1
            self._warn.log("error", logging.ERROR, "edge: batch not served: %r", exc)

    async def start(self, *, optional: bool = False) -> str | None:
        """Start the history writer and bind the server; its URL, or None when not serving.
        Raises OSError when the port cannot be bound, unless `optional` (the sim worker's
        default): then serving is skipped with a log line."""
        if self.history is not None:
            await self.history.start()
        if self.feed is None or self.serve is None:
            return None
        from ttfast.edge.app import EdgeConfig, EdgeServer

        host, port = self.serve
        cfg = EdgeConfig(host=host, port=port, token=self.token)
        server = EdgeServer(self.feed, self.feed.hub, cfg)
        try:
            self.url = await server.start()
        except OSError as exc:
            if not optional:
                raise
            log.info(
                "chart not served: %s:%d is taken (%s); --serve [HOST:]PORT picks another",
                host,
                port,
                exc.strerror or exc,
            )
            self.feed = None  # nothing to feed
            return None
        self.server = server
        return self.url

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None
        if self.history is not None:
            await self.history.close()

    def status(self) -> str:
        """The worker status line's part (empty when inactive)."""
        parts = []
        if self.feed is not None and self.url is not None:
            h = self.feed.hub
            s = h.stats
            parts.append(
                f"edge {self.url} clients {h.clients} sent {s.messages_sent}"
                + (f" conflated {s.conflated}" if s.conflated else "")
                + (f" slow {s.slow_disconnects}" if s.slow_disconnects else "")
            )
        if self.history is not None:
            st = self.history.stats
            parts.append(
                f"history {st.bars_written} backlog {self.history.backlog} "
                f"dropped {st.bars_dropped}"
            )
        if self.errors:
            parts.append(f"edge errors {self.errors}")
        return " | ".join(parts)
