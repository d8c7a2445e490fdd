"""``ttfast-edge``: the edge as its own process, fed from Redis (one pattern subscription) or
from a Redis Cluster the scale-out compute workers write to (one sharded subscription per
partition: ``--redis redis+cluster://h:p,h:p [--partitions P]``).

    ttfast-edge --redis redis://127.0.0.1:6379/0 [--host 127.0.0.1] [--port 8000]
                [--token-env VAR] [--allow-origin URL ...]

The token is read from the environment variable named by ``--token-env`` (default
``TTFAST_EDGE_TOKEN``; unset or empty: no token), never from the command line. Stops on
SIGINT/SIGTERM (clients get close code 1001), exit code 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from ttfast._run import run as run_loop
from ttfast._util import redact_url

__all__ = ["main", "parse_args"]

log = logging.getLogger("ttfast.edge")

CLUSTER_SCHEME = "redis+cluster://"  # (ttfast.worker.scaleout.common's; not imported here)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    p = argparse.ArgumentParser(
        prog="ttfast-edge",
        description="HTTP + WebSocket server for the worker's snapshots, deltas and history "
        "(fed from Redis) and the chart page. See docs/edge.md.",
    )
    p.add_argument(
        "--redis",
        default=env.get("TTFAST_REDIS_URL"),
        help="redis://host:port/db the worker writes to, or "
        "redis+cluster://[user:password@]host:port,host:port,... for the Redis Cluster of "
        "the scale-out compute workers (env TTFAST_REDIS_URL)",
    )
    p.add_argument(
        "--partitions",
        type=int,
        default=None,
        metavar="P",
        help="with a redis+cluster:// URL: the compute workers' --partitions (default: the "
        "value they recorded in the cluster, else 16)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any free)")
    p.add_argument(
        "--token-env",
        metavar="VAR",
        default="TTFAST_EDGE_TOKEN",
        help="environment variable holding the bearer token required by every data endpoint "
        "and WebSocket (header 'Authorization: Bearer T' or ?token=T); unset or empty: no "
        "token (default: TTFAST_EDGE_TOKEN)",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="URL",
        help="a WebSocket Origin allowed besides the server's own loopback URLs "
        "(repeatable), e.g. https://charts.example.com",
    )
    p.add_argument(
        "--max-clients", type=int, default=10_000, help="WebSocket connections (default: 10000)"
    )
    p.add_argument("--log-level", default=env.get("TTFAST_LOG_LEVEL", "INFO"))
    a = p.parse_args(argv)
    if not a.redis:
        p.error("--redis URL is required (or TTFAST_REDIS_URL)")
    if a.partitions is not None and not 1 <= a.partitions <= 16384:
        p.error("--partitions must be in 1..16384")
    if not 0 <= a.port <= 65535:
        p.error("--port must be in [0, 65535]")
    if a.max_clients < 1:
        p.error("--max-clients must be >= 1")
    return a


async def _serve(a: argparse.Namespace) -> int:
    from ttfast.edge.app import EdgeConfig, EdgeServer, Source
    from ttfast.edge.hub import Hub

    token = os.environ.get(a.token_env) or None
    cfg = EdgeConfig(
        host=a.host,
        port=a.port,
        token=token,
        allow_origins=tuple(a.allow_origin),
        max_clients=a.max_clients,
    )
    hub = Hub(cfg.limits)
    feed: Source
    if a.redis.startswith(CLUSTER_SCHEME):
        from ttfast.edge.cluster_feed import ClusterFeed
        from ttfast.worker.scaleout.common import PARTITIONS_KEY, connect

        try:  # the workers record their --partitions: a different P would miss partitions
            client = connect(a.redis)
            stored = await asyncio.wait_for(client.get(PARTITIONS_KEY), 10)
            await client.aclose()
        except Exception as exc:  # the cluster not up yet: the feed retries on its own
            log.warning("ttfast-edge: could not read %s: %r", PARTITIONS_KEY, exc)
            stored = None
        if stored is not None and a.partitions is not None and int(stored) != a.partitions:
            log.error(
                "ttfast-edge: the workers use --partitions %d, this edge was given %d",
                int(stored),
                a.partitions,
            )
            return 2
        partitions = a.partitions or (int(stored) if stored is not None else 16)
        feed = ClusterFeed(a.redis, hub, partitions=partitions)
    else:
        from ttfast.edge.redis_feed import RedisFeed

        feed = RedisFeed(a.redis, hub)
    edge = EdgeServer(feed, hub, cfg)
    try:
        url = await edge.start()
    except OSError as exc:
        log.error("ttfast-edge: cannot listen on %s:%d: %s", a.host, a.port, exc)
        return 1
    print(f"ttfast-edge: {url} (redis {redact_url(a.redis)}, token {'on' if token else 'off'})",
          file=sys.stderr, flush=True)  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await edge.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    logging.basicConfig(
        level=a.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return run_loop(_serve(a))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
