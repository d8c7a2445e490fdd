# Checked by tests/typing/test_reveal.py with mypy --strict: each trailing "R:" comment is
# the type mypy must reveal for the expression on that line. Not imported at run time.
from typing import reveal_type

import ttfast
from ttfast import OAuthSession, OrderOutcomeUnknown, TastytradeClient
from ttfast._core import to_double, to_int64
from ttfast.rest import FileTokenStore, models, orders

reveal_type(ttfast.__version__)  # R: str
reveal_type(to_double("1.5"))  # R: float
reveal_type(to_int64(b"7"))  # R: int

# --- REST: what users get from the client (ttfast.rest) ---------------------------------------
session = OAuthSession.from_env(token_store=FileTokenStore("/tmp/tok"))
reveal_type(session)  # R: ttfast.rest.session.OAuthSession
tt = TastytradeClient(session)
reveal_type(tt)  # R: ttfast.rest.client.TastytradeClient
reveal_type(ttfast.TastytradeClient(session))  # R: ttfast.rest.client.TastytradeClient
order = orders.limit_order(orders.leg("AAPL", 100, orders.OrderAction.BUY_TO_OPEN), "-175.25")
reveal_type(order)  # R: ttfast.rest.orders.OrderRequest
bracket = orders.oco(order, orders.stop_order(orders.leg("AAPL", 100, "Sell to Close"), 150))
reveal_type(bracket)  # R: ttfast.rest.orders.ComplexOrderRequest
reveal_type(tt.quote_token_provider())  # R: def () -> typing.Awaitable[tuple[str, str]]


async def rest_calls() -> None:
    accounts = await tt.get_accounts()
    reveal_type(accounts)  # R: list[ttfast.rest.models.Account]
    acct = accounts[0].account_number
    reveal_type(acct)  # R: str
    reveal_type(await tt.get_customer())  # R: ttfast.rest.models.Customer
    reveal_type(await tt.get_balances(acct))  # R: ttfast.rest.models.Balance
    reveal_type(await tt.get_positions(acct))  # R: list[ttfast.rest.models.Position]
    reveal_type(await tt.get_transactions(acct))  # R: list[ttfast.rest.models.Transaction]
    reveal_type(await tt.get_live_orders(acct))  # R: list[ttfast.rest.models.Order]
    reveal_type(await tt.get_order(acct, 1))  # R: ttfast.rest.models.Order
    reveal_type(await tt.dry_run_order(acct, order))  # R: ttfast.rest.models.OrderResponse
    placed = await tt.place_order(acct, order)
    reveal_type(placed)  # R: ttfast.rest.models.OrderResponse
    reveal_type(placed.order)  # R: ttfast.rest.models.Order | None
    reveal_type(await tt.replace_order(acct, 1, order))  # R: ttfast.rest.models.Order
    reveal_type(await tt.cancel_order(acct, 1))  # R: ttfast.rest.models.Order | None
    complex_placed = await tt.place_complex_order(acct, bracket)
    reveal_type(complex_placed)  # R: ttfast.rest.models.ComplexOrderResponse
    reveal_type(await tt.cancel_complex_order(acct, 1))  # R: ttfast.rest.models.ComplexOrder | None
    reveal_type(await tt.get_equities(["AAPL"]))  # R: list[ttfast.rest.models.Equity]
    chain = await tt.get_nested_option_chain("SPY")
    reveal_type(chain)  # R: list[ttfast.rest.models.NestedOptionChain]
    reveal_type(await tt.get_quote_token())  # R: ttfast.rest.models.QuoteToken
    me = await tt.get_one("/customers/me", models.Customer)
    reveal_type(me)  # R: ttfast.rest.models.Customer
    try:
        await tt.place_order(acct, order)
    except OrderOutcomeUnknown as e:
        reveal_type(e.external_identifier)  # R: str | None
        found = await tt.find_order_by_external_id(acct, e.external_identifier)
        reveal_type(found)  # R: ttfast.rest.models.Order | None


# --- market data: decode, apply, listen (ttfast.Batch is what every consumer takes) ----------
dec = ttfast.FeedDecoder(on_error="skip")
batches = dec.decode(b'{"type":"FEED_DATA","channel":3,"data":[]}')
reveal_type(batches)  # R: list[ttfast._core.feed.EventBatch]
reveal_type(dec.decode_message(b""))  # R: tuple[int, list[ttfast._core.feed.EventBatch]]
store = ttfast.CandleStore(capacity=64)
reveal_type(store.apply(batches[0]))  # R: ttfast._core.candles.Changes
cb = ttfast.ColumnBatch("Candle", {"eventSymbol": ["SPY{=5m}"], "time": [0], "close": [1.0]})
reveal_type(store.apply(cb))  # R: ttfast._core.candles.Changes
reveal_type(cb.column("close"))  # R: numpy.ndarray[tuple[Any, ...], numpy.dtype[Any]] | None
any_batch: ttfast.Batch = batches[0]
any_batch = cb
reveal_type(store.resume("SPY{=5m}"))  # R: int | None
reveal_type(store["SPY{=5m}"].resuming)  # R: bool


async def stream(s: ttfast.DxLinkStreamer) -> None:
    lst = s.listen("Quote", policy="conflate")
    reveal_type(lst)  # R: ttfast.dxlink.streamer.Listener
    reveal_type(lst.policy)  # R: Literal['conflate'] | Literal['drop_oldest']
    async for b in lst:
        reveal_type(b)  # R: ttfast.batch.Batch
    async for ev in s.events():
        if ev.kind == "decode_error":
            reveal_type(ev.kind)  # R: Literal['decode_error']

    async def tokens() -> tuple[str, str]:
        return "wss://example", "token"

    streamer = ttfast.DxLinkStreamer(
        None, tokens, candle_store=store, on_candle_changes=lambda ch: None
    )
    reveal_type(streamer.candles)  # R: ttfast._core.candles.CandleStore


# --- account stream + order tracker (ttfast.account) ------------------------------------------
async def account_stream() -> None:
    def on_order(o: models.Order) -> None:
        reveal_type(o.status)  # R: str | None

    acs = ttfast.AccountStreamer(session, accounts=["5WT00000"], on_order=on_order)
    reveal_type(acs)  # R: ttfast.account.streamer.AccountStreamer
    reveal_type(acs.orders)  # R: dict[int, ttfast.rest.models.Order]
    reveal_type(acs.positions)  # R: dict[tuple[str, str], ttfast.rest.models.Position]
    reveal_type(acs.balances)  # R: dict[str, ttfast.rest.models.Balance]
    async for note in acs:
        reveal_type(note)  # R: ttfast.account.protocol.Notification
    tracker = ttfast.OrderTracker(acs)
    reveal_type(tracker.track(1))  # R: ttfast.account.tracker.TrackedOrder
    reveal_type(await tracker.filled("bot-1", timeout=5))  # R: ttfast.rest.models.Order
    reveal_type(await tracker.done(1))  # R: ttfast.rest.models.Order
    try:
        await tt.place_order("5WT00000", order)
    except OrderOutcomeUnknown as exc:
        found = await tracker.resolve(exc, "5WT00000")
        reveal_type(found)  # R: ttfast.account.tracker.TrackedOrder | None
