"""dxLink market-data client: sans-IO protocol + self-healing picows streamer.

See docs/streaming.md. Public names: :class:`DxLinkStreamer`,
:class:`ConnectionEvent` (``kind``: :data:`ConnectionEventKind`), :class:`StreamState`,
:class:`StreamerStats`, :class:`Listener` (``policy``: :data:`ListenPolicy`),
:func:`build_candle_symbol`, :func:`run` (``ttfast._run.run``: asyncio.run on uvloop when
installed).
"""

from __future__ import annotations

from ttfast._run import run
from ttfast.dxlink.protocol import (
    CANDLE_FIELDS,
    DEFAULT_EVENT_FIELDS,
    TICKER_TYPES,
    DxLinkProtocol,
    build_candle_symbol,
)
from ttfast.dxlink.streamer import (
    BatchCallback,
    CandleChangesCallback,
    ConnectionEvent,
    ConnectionEventKind,
    DxLinkStreamer,
    Listener,
    ListenPolicy,
    StreamerStats,
    StreamState,
    TokenProvider,
)

__all__ = [
    "CANDLE_FIELDS",
    "DEFAULT_EVENT_FIELDS",
    "TICKER_TYPES",
    "BatchCallback",
    "CandleChangesCallback",
    "ConnectionEvent",
    "ConnectionEventKind",
    "DxLinkProtocol",
    "DxLinkStreamer",
    "ListenPolicy",
    "Listener",
    "StreamState",
    "StreamerStats",
    "TokenProvider",
    "build_candle_symbol",
    "run",
]
