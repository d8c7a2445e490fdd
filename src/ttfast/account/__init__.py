"""tastytrade account streamer (spec §7) and an order tracker for bots.

See docs/account.md. Public names: :class:`AccountStreamer` (self-healing picows client:
connect with the session's current token, heartbeats, watchdog, reconnect with backoff, REST
re-hydration after every reconnect), :class:`Notification`, :class:`AccountEvent`,
:class:`AccountStreamState`, :class:`OrderTracker` / :class:`TrackedOrder` /
:class:`OrderNotFilled`, the sans-IO :class:`AccountProtocol`, and the notification models
(``Order``, ``ComplexOrder``, ``CurrentPosition``, ``AccountBalance``, ``TradingStatus``,
``ExternalTransaction``, ``OrderChain``).
"""

from __future__ import annotations

from ttfast.account.models import (
    AccountBalance,
    ComplexOrder,
    CurrentPosition,
    ExternalTransaction,
    Order,
    OrderChain,
    TradingStatus,
)
from ttfast.account.protocol import NOTIFICATION_MODELS, AccountProtocol, Notification
from ttfast.account.streamer import (
    PRODUCTION_STREAMER_URL,
    SANDBOX_STREAMER_URL,
    TERMINAL_STATUSES,
    AccountEvent,
    AccountEventKind,
    AccountStreamer,
    AccountStreamerStats,
    AccountStreamState,
    BalanceCallback,
    NotificationCallback,
    OrderCallback,
    PositionCallback,
)
from ttfast.account.tracker import OrderNotFilled, OrderTracker, TrackedOrder

__all__ = [
    "NOTIFICATION_MODELS",
    "PRODUCTION_STREAMER_URL",
    "SANDBOX_STREAMER_URL",
    "TERMINAL_STATUSES",
    "AccountBalance",
    "AccountEvent",
    "AccountEventKind",
    "AccountProtocol",
    "AccountStreamState",
    "AccountStreamer",
    "AccountStreamerStats",
    "BalanceCallback",
    "ComplexOrder",
    "CurrentPosition",
    "ExternalTransaction",
    "Notification",
    "NotificationCallback",
    "Order",
    "OrderCallback",
    "OrderChain",
    "OrderNotFilled",
    "OrderTracker",
    "PositionCallback",
    "TrackedOrder",
    "TradingStatus",
]
