"""The edge fed in-process by the worker (``ttfast-worker --serve``): no Redis needed.

`LocalFeed.on_output` takes each pipeline batch: the same snapshot and delta payload bytes the
worker publishes to Redis go to the hub (deltas fanned out, snapshots cached), and the batch's
closed bars (`ttfast.edge.history.history_ops`) to an in-memory `BarHistory`.

May touch: the hub it feeds and its own history. Synchronous: called from the worker's batch
path, it never waits.
"""

from __future__ import annotations

from ttfast._core import DELTA_CHANNEL_PREFIX, SNAPSHOT_KEY_PREFIX, PipelineOutput
from ttfast.edge.history import BarHistory, HistoryOp, snapshot_meta
from ttfast.edge.hub import FINAL_TAIL, Hub

__all__ = ["LocalFeed"]


class LocalFeed:
    """Pipeline outputs -> hub + history; the app's reads from memory."""

    kind = "worker"

    def __init__(
        self,
        hub: Hub,
        history: BarHistory,
        *,
        delta_prefix: str = DELTA_CHANNEL_PREFIX,
        snapshot_prefix: str = SNAPSHOT_KEY_PREFIX,
    ) -> None:
        self.hub = hub
        self.bars = history
        self._delta_pre = delta_prefix.encode()
        self._snap_pre = snapshot_prefix.encode()
        self._names: dict[bytes, str] = {}  # channel or key -> name

    def _name(self, raw: bytes, skip: int) -> str:
        name = self._names.get(raw)
        if name is None:
            if len(self._names) > 1_000_000:
                self._names.clear()
            name = self._names[raw] = raw[skip:].decode()
        return name

    def on_output(self, out: PipelineOutput, ops: list[HistoryOp]) -> None:
        """One pipeline batch (and its closed bars, already encoded for the Redis history)."""
        if ops:
            self.bars.apply(ops)
        if out.n == 0:
            return
        names = self._names
        snaps = self.hub.snapshots
        sskip = len(self._snap_pre)
        for key, payload in out.snapshots:
            snaps[names.get(key) or self._name(key, sskip)] = payload
        hub = self.hub
        if not hub.subscribed:  # nobody to send deltas to (the common case between visits)
            return
        pre = self._delta_pre
        skip = len(pre)
        items = [
            (names.get(ch) or self._name(ch, skip), payload, payload.endswith(FINAL_TAIL))
            for ch, payload in out.publishes
            if ch.startswith(pre)
        ]
        if items:
            hub.publish(items)

    # -- the app's reads -----------------------------------------------------------------------
    def redis_state(self) -> str | None:
        return None

    def symbols(self) -> list[str]:
        return sorted(self.hub.snapshots)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def snapshots(self, names: list[str]) -> dict[str, bytes | None]:
        snaps = self.hub.snapshots
        return {n: snaps.get(n) for n in names}

    async def history(self, name: str, bars: int) -> tuple[str, str | None, list[bytes]] | None:
        got = self.bars.last(name, bars)
        snap = self.hub.snapshots.get(name)
        if got is None and snap is None:
            return None
        meta = self.bars.meta(name)
        symbol, period = snapshot_meta(snap, name) if meta is None else (meta[0], meta[1] or None)
        return symbol, period, got or []

    def metrics(self) -> list[tuple[str, str, str, float]]:
        return [
            ("history_symbols", "gauge", "symbols with closed bars kept in memory", len(self.bars)),
        ]
