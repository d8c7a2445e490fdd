"""Where the worker's results go: Redis (snapshots + deltas) and Telegraf/InfluxDB (history).

Sinks queue without blocking the batch loop and flush in batches from their own task; a sink
that cannot reach its server keeps a bounded backlog and counts what it drops.
"""

from __future__ import annotations

__all__: list[str] = []
