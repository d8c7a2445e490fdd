"""``ttfast.edge``: the HTTP + WebSocket gateway to the worker's results, and the chart page.

One aiohttp server on one port serves ``GET /`` (the chart), ``/snapshot/{symbol}``,
``/history/{symbol}``, ``/symbols``, ``/healthz``, ``/metrics`` and the WebSockets ``/ws/{symbol}``
and ``/ws``. It runs either inside the worker (``ttfast-worker --serve``, fed in-process) or
standalone (``ttfast-edge --redis URL``, fed by one Redis pattern subscription, or by one
sharded subscription per partition from a Redis Cluster). See docs/edge.md.

Modules: hub (fan-out with per-client bounded queues, sans-IO), history (closed bars: encoding,
the Redis writer, the in-memory store), local_feed / redis_feed / cluster_feed (the sources),
app (aiohttp routes and checks), cli (``ttfast-edge``), assets + static/ (the chart page).
Importing this package loads no network library; `EdgeServer` and friends load aiohttp on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ttfast._util import lazy_exports

if TYPE_CHECKING:
    from ttfast.edge.app import EdgeConfig, EdgeServer
    from ttfast.edge.cluster_feed import ClusterFeed
    from ttfast.edge.history import BarHistory
    from ttfast.edge.hub import Hub, HubLimits
    from ttfast.edge.local_feed import LocalFeed
    from ttfast.edge.redis_feed import RedisFeed

__all__ = [
    "BarHistory",
    "ClusterFeed",
    "EdgeConfig",
    "EdgeServer",
    "Hub",
    "HubLimits",
    "LocalFeed",
    "RedisFeed",
]

_LAZY = {
    "BarHistory": "ttfast.edge.history",
    "ClusterFeed": "ttfast.edge.cluster_feed",
    "EdgeConfig": "ttfast.edge.app",
    "EdgeServer": "ttfast.edge.app",
    "Hub": "ttfast.edge.hub",
    "HubLimits": "ttfast.edge.hub",
    "LocalFeed": "ttfast.edge.local_feed",
    "RedisFeed": "ttfast.edge.redis_feed",
}

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
