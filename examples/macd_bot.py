"""A MACD-cross trading bot on ttfast, offline against ``ttfast sim``.

    .venv/bin/ttfast sim &                         # dxLink + REST + account streamer on loopback
    .venv/bin/python examples/macd_bot.py --orders 2     # --period 1s --macd 3,6,3: faster

Candles (dxLink) -> MACD revised on the forming bar -> a histogram sign change is a signal ->
a market order tagged with an external identifier (REST) -> its fill from the account stream
(``OrderTracker``) -> the position the stream reports, printed.

The order is placed exactly once: on ``OrderOutcomeUnknown`` (no definite answer) the bot looks
the order up by its external identifier (``OrderTracker.resolve``) instead of resending. Against
the real API set ``TASTYTRADE_CLIENT_SECRET`` / ``TASTYTRADE_REFRESH_TOKEN`` (and mind that the
orders are real) and pass ``--rest-url https://api.tastyworks.com``: the account streamer's URL
follows from it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import ttfast
from ttfast.account import AccountStreamer, OrderTracker
from ttfast.dxlink import run
from ttfast.rest import OAuthSession, TastytradeClient, new_external_identifier
from ttfast.rest import orders as ob

Signal = str  # "buy" | "sell"


class MacdCross:
    """MACD over closed bars, revised (no state change) with the forming bar's close; a change
    of the histogram's sign is a signal. Pure: candles in, signals out."""

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        self.macd = ttfast.Macd(fast, slow, signal)
        self.above: bool | None = None  # histogram > 0 at the last look
        self.hist = 0.0

    def on_changes(self, changes: ttfast.Changes) -> Signal | None:
        out: Signal | None = None
        for ch in changes:
            bars = ch.series
            last = bars.last
            if last is None:
                continue
            if ch.history_changed:  # the snapshot (or a correction): rebuild from closed bars
                self.macd.rebuild(bars.close[:-1])
            else:  # O(1): commit the bars that just closed
                for k in range(len(bars) - ch.appended - 1, len(bars) - 1):
                    self.macd.update(bars[k].close)
            hist = self.macd.revise(last.close)[2]
            if hist != hist:  # NaN: not enough bars yet
                continue
            self.hist = hist
            above = hist > 0
            if self.above is not None and above != self.above:
                out = "buy" if above else "sell"
            self.above = above
        return out


class MacdBot:
    """Turns signals into orders, one at a time, and follows each to its fill."""

    def __init__(
        self,
        client: TastytradeClient,
        stream: AccountStreamer,
        account: str,
        symbol: str,
        quantity: int,
        *,
        max_orders: int,
        macd: tuple[int, int, int] = (12, 26, 9),
        out: Callable[[str], None] = lambda line: print(line, flush=True),
    ) -> None:
        self.client = client
        self.stream = stream
        self.tracker = OrderTracker(stream)
        self.account = account
        self.symbol = symbol
        self.quantity = quantity
        self.max_orders = max_orders
        self.out = out
        self.cross = MacdCross(*macd)
        self.placed = 0
        self.fills = 0
        self.busy = False
        self.done = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def position(self) -> Decimal:
        p = self.stream.positions.get((self.account, self.symbol))
        if p is None or p.quantity is None:
            return Decimal(0)
        return -p.quantity if p.quantity_direction == "Short" else p.quantity

    def on_candle_changes(self, changes: ttfast.Changes) -> None:
        """The dxLink streamer's hook (synchronous, in the frame callback)."""
        sig = self.cross.on_changes(changes)
        if sig is None or self.busy or self.placed >= self.max_orders:
            return
        held = self.position()
        if sig == "buy" and held <= 0:
            action = ob.OrderAction.BUY_TO_OPEN
        elif sig == "sell" and held > 0:
            action = ob.OrderAction.SELL_TO_CLOSE
        else:
            return
        self.busy = True
        self.placed += 1
        ext = "macd-" + new_external_identifier()
        order = ob.market_order(
            ob.leg(self.symbol, self.quantity, action)
        ).with_external_identifier(ext)
        self.out(
            f"signal {sig}: MACD hist {self.cross.hist:+.4f} -> {action} {self.quantity} "
            f"{self.symbol} (external-identifier {ext})"
        )
        task = asyncio.get_running_loop().create_task(self._place(order))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _place(self, order: ob.OrderRequest) -> None:
        try:
            try:
                resp = await self.client.place_order(self.account, order)
                assert resp.order is not None
                tracked = self.tracker.track(resp.order)
            except ttfast.OrderOutcomeUnknown as exc:  # never resend: find it by its tag
                self.out(f"no definite answer ({exc.cause}); looking the order up")
                found = await self.tracker.resolve(exc, self.account)
                if found is None:
                    self.out("the order was never created")
                    return
                tracked = found
            self.out(f"order {tracked.order_id} {tracked.status}")
            filled = await tracked.filled(timeout=120)
            fill = tracked.fills[-1] if tracked.fills else None
            price = fill.fill_price if fill is not None else "?"
            self.fills += 1
            self.out(
                f"order {filled.id} Filled: {tracked.filled_quantity} @ {price} "
                f"(statuses {' -> '.join(tracked.history)})"
            )
            await asyncio.sleep(0.2)  # the position notification follows the order's
            self.out(f"position {self.symbol}: {self.position()}")
        except Exception as exc:
            self.out(f"order failed: {exc!r}")
        finally:
            self.busy = False
            if self.placed >= self.max_orders:
                self.done.set()


async def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rest-url", default=os.environ.get("TTFAST_REST_URL", "http://127.0.0.1:8080"))
    p.add_argument("--streamer-url", default=None, help="default: the one of --rest-url")
    p.add_argument("--symbol", default="SPY")
    p.add_argument("--period", default="5s", help="candle period (5s: signals come quickly)")
    p.add_argument("--macd", default="12,26,9", help="fast,slow,signal periods")
    p.add_argument("--quantity", type=int, default=1)
    p.add_argument("--orders", type=int, default=2, help="stop after this many orders")
    p.add_argument("--duration", type=float, default=300.0, help="give up after (seconds)")
    a = p.parse_args(argv)

    secret = os.environ.get("TASTYTRADE_CLIENT_SECRET", "sim-secret")
    refresh = os.environ.get("TASTYTRADE_REFRESH_TOKEN", "sim-refresh")
    session = OAuthSession(secret, refresh, base_url=a.rest_url)
    async with TastytradeClient(session) as client:
        account = (await client.get_accounts())[0].account_number
        # url None: the sim's /account-streamer next to its REST port (production for the API)
        async with AccountStreamer(client, [account], url=a.streamer_url) as stream:
            fast, slow, sig = (int(x) for x in a.macd.split(","))
            bot = MacdBot(
                client,
                stream,
                account,
                a.symbol,
                a.quantity,
                max_orders=a.orders,
                macd=(fast, slow, sig),
            )
            print(f"account {account}: position {a.symbol} {bot.position()}", flush=True)
            async with ttfast.DxLinkStreamer(
                None, client.quote_token_provider(), on_candle_changes=bot.on_candle_changes
            ) as feed:
                start = datetime.now(UTC) - timedelta(days=2)
                feed.subscribe_candles([a.symbol], a.period, start=start)
                try:
                    await asyncio.wait_for(bot.done.wait(), a.duration)
                except TimeoutError:
                    print(f"stopped after {a.duration:.0f}s", flush=True)
            print(
                f"orders {bot.placed}, fills {bot.fills}; position {a.symbol} {bot.position()}",
                flush=True,
            )
            return 0 if bot.fills == bot.placed and bot.placed else 1


if __name__ == "__main__":
    sys.exit(run(main()))
