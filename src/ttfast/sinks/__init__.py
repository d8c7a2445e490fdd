"""Where the worker's results go: Redis (snapshots + deltas) and Telegraf/InfluxDB (history).

Sinks queue without blocking the batch loop and flush in batches from their own task; a sink
that cannot reach its server keeps a bounded backlog and counts what it drops.
"""

from __future__ import annotations

import urllib.parse

__all__ = ["redact_url"]


def redact_url(url: str) -> str:
    """`url` with any password (and query string, which may carry tokens) removed, for logs."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if parts.username:
        netloc = (
            f"{parts.username}:***@{netloc}" if parts.password else f"{parts.username}@{netloc}"
        )
    elif parts.password:
        netloc = f":***@{netloc}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
