"""dxLink market-data client: sans-IO protocol + self-healing picows streamer.

See README.md, "Streaming market data". Public names: :class:`DxLinkStreamer`,
:class:`ConnectionEvent`, :class:`StreamState`, :class:`StreamerStats`, :class:`Listener`,
:func:`build_candle_symbol`, :func:`run` (asyncio.run with uvloop when it is installed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from ttfast.dxlink.protocol import (
    CANDLE_FIELDS,
    DEFAULT_EVENT_FIELDS,
    TICKER_TYPES,
    DxLinkProtocol,
    build_candle_symbol,
)
from ttfast.dxlink.streamer import (
    ConnectionEvent,
    DxLinkStreamer,
    Listener,
    StreamerStats,
    StreamState,
    TokenProvider,
)

__all__ = [
    "CANDLE_FIELDS",
    "DEFAULT_EVENT_FIELDS",
    "TICKER_TYPES",
    "ConnectionEvent",
    "DxLinkProtocol",
    "DxLinkStreamer",
    "Listener",
    "StreamState",
    "StreamerStats",
    "TokenProvider",
    "build_candle_symbol",
    "run",
]

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when available (~2x less loop overhead), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(main)
    return uvloop.run(main)
