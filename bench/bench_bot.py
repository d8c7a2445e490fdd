"""Tick-to-order latency of a MACD-cross bot: ttfast vs the same bot on the tastytrade SDK.

One process, one event loop (asyncio's default loop for both: the write probe below needs its
Python transport; ttfast would normally run on uvloop). Per signal:

    t0: a COMPACT FEED_DATA Candle frame has arrived (its bytes/text are in memory)
    ttfast: DxLinkStreamer frame handler (message type, FeedDecoder) -> CandleStore.apply ->
            on_candle_changes -> MACD revise on the forming bar (examples/macd_bot.MacdCross)
            -> signal -> order built + validated (ttfast.rest.orders) -> TastytradeClient
            .place_order task -> aiohttp writes the request
    SDK:    json.loads (what its websocket ``receive_json`` does) -> DXLinkStreamer._map_message
            (Candle.from_stream, pydantic) -> anyio memory stream -> the bot's ``listen(Candle)``
            loop -> the same MACD in pure Python (O(1) EMAs) -> signal -> LimitOrder (pydantic)
            -> Account.place_order -> httpx2 writes the request
    t1: the client calls the transport's write() with the order's JSON body: the request's
        bytes go to the socket (a probe wraps ``_SelectorSocketTransport.write``/``writelines``;
        the kernel's send after it is the same for both and excluded: on a loaded 2-core VM
        it is hundreds of microseconds of noise)

Every measured frame revises the forming bar to a close alternately 2 % above and below the
last one, so the MACD histogram changes sign (a signal) on every frame; both bots alternate
buy and sell limit orders that never fill (buy at 1.00, sell at 10 000). The order goes to
``ttfast sim`` (a separate process) on loopback; the next frame is sent only after the answer
was read (the server's time is not part of the measure). Contestants alternate in blocks of
``--block`` signals (A B A B ...), so the ratio is same-run.

    python -m bench.bench_bot --signals 10000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bench import datagen

ROOT = Path(__file__).resolve().parents[1]
ACCT = "5WT00000"
SYMBOL = "SPY"
CANDLE_SYMBOL = "SPY{=5m}"
HISTORY = 120
PERIOD_MS = 300_000


# --------------------------------------------------------------------------- frames


def _candle_value(field: str, t: int, close: float) -> object:
    if field == "eventType":
        return "Candle"
    if field == "eventSymbol":
        return CANDLE_SYMBOL
    if field == "time":
        return t
    if field == "index":
        return ((t // 1000) << 32) | ((t % 1000) << 22)
    if field in ("open", "high", "low", "close", "vwap"):
        return close
    if field in ("impVolatility", "openInterest"):
        return "NaN"
    if field in ("volume", "bidVolume", "askVolume"):
        return 100
    if field == "count":
        return 1
    return 0  # eventTime, eventFlags, sequence


def candle_frame(fields: tuple[str, ...], channel: int, rows: list[tuple[int, float]]) -> str:
    flat: list[object] = []
    for t, c in rows:
        flat += [_candle_value(f, t, c) for f in fields]
    return json.dumps({"type": "FEED_DATA", "channel": channel, "data": ["Candle", flat]})


def history_rows() -> list[tuple[int, float]]:
    bars = datagen.candles(HISTORY, start=600.0, period_ms=PERIOD_MS)
    return [(int(t), float(c)) for t, c in zip(bars["time"], bars["close"], strict=True)]


def forming_close(history: list[tuple[int, float]], i: int) -> tuple[int, float]:
    t, c = history[-1]
    return t, c * (1.02 if i % 2 == 0 else 0.98)


# --------------------------------------------------------------------------- write probe


class WriteProbe:
    """Stamps the moment a client hands the order's bytes to the socket: ``t1`` when the
    transport's write() carrying the order's JSON body is entered (the kernel's send is the
    same for both contestants and, on a loaded 2-core machine, mostly noise: ``sent`` is the
    stamp after it returned)."""

    def __init__(self) -> None:
        self.t1 = 0
        self.sent = 0
        self.event: asyncio.Event | None = None
        self.writes = 0

    @staticmethod
    def _is_order(data: Any) -> bool:
        try:
            return b'"legs"' in bytes(data)
        except TypeError:
            return False

    def _seen(self, t1: int) -> None:
        self.t1 = t1
        self.sent = time.perf_counter_ns()
        self.writes += 1
        if self.event is not None:
            self.event.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[WriteProbe]:
        from asyncio import selector_events

        cls: Any = selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
        write, writelines = cls.write, cls.writelines
        probe = self

        def w(self: Any, data: Any) -> None:
            t1 = time.perf_counter_ns()
            write(self, data)
            if probe._is_order(data):
                probe._seen(t1)

        def wl(self: Any, lines: Any) -> None:
            t1 = time.perf_counter_ns()
            lines = list(lines)
            writelines(self, lines)
            if probe._is_order(b"".join(bytes(x) for x in lines)):
                probe._seen(t1)

        cls.write, cls.writelines = w, wl
        try:
            yield self
        finally:
            cls.write, cls.writelines = write, writelines


# --------------------------------------------------------------------------- ttfast bot


class TtfastBot:
    """examples/macd_bot's MacdCross -> a limit order per signal through TastytradeClient."""

    def __init__(self, client: Any) -> None:
        sys.path.insert(0, str(ROOT))
        from examples.macd_bot import MacdCross

        self.client = client
        self.cross = MacdCross(12, 26, 9)
        self.signals = 0
        self.t_decide = 0  # the MACD said "signal"
        self.t_signal = 0  # the order is built (synchronous part done)
        self.t_client = 0  # the client's place_order is entered
        self.answered: asyncio.Event = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def signal_order(self, changes: Any) -> Any:
        """The MACD's signal as a limit order (None if no signal); stamps t_decide."""
        sig = self.cross.on_changes(changes)
        if sig is None:
            return None
        self.t_decide = time.perf_counter_ns()
        from ttfast.rest import new_external_identifier
        from ttfast.rest import orders as ob

        buy = sig == "buy"
        action = ob.OrderAction.BUY_TO_OPEN if buy else ob.OrderAction.SELL_TO_OPEN
        order = ob.limit_order(
            ob.leg(SYMBOL, 1, action),
            "-1.00" if buy else "10000",
            external_identifier=new_external_identifier(),
        )
        self.signals += 1
        return order

    def on_candle_changes(self, changes: Any) -> None:
        order = self.signal_order(changes)
        if order is None:
            return
        self.t_signal = time.perf_counter_ns()
        task = asyncio.get_running_loop().create_task(self._place(order))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _place(self, order: Any) -> None:
        self.t_client = time.perf_counter_ns()
        try:
            await self.client.place_order(ACCT, order)
        finally:
            self.answered.set()


async def ttfast_contestant(
    rest_url: str, bot_class: type[TtfastBot] = TtfastBot
) -> tuple[Callable[[int], None], TtfastBot, Any]:
    from ttfast.dxlink.streamer import DxLinkStreamer, _Conn
    from ttfast.rest import OAuthSession, TastytradeClient

    client = TastytradeClient(OAuthSession("bench-secret", "bench-refresh", base_url=rest_url))
    await client.get_accounts()  # token + warm connection
    bot = bot_class(client)

    async def tp() -> tuple[str, str]:
        return "ws://127.0.0.1:9/", "t"

    s = DxLinkStreamer(None, tp, on_candle_changes=bot.on_candle_changes)
    s.subscribe_candles([SYMBOL], "5m")
    ch = s.protocol.channel_for("Candle")
    from ttfast.dxlink.protocol import CANDLE_FIELDS

    fields = tuple(CANDLE_FIELDS)
    s._prepare_connection()
    conn = _Conn(s)
    s._conn = conn
    cfg = {"type": "FEED_CONFIG", "channel": ch, "dataFormat": "COMPACT",
           "eventFields": {"Candle": list(fields)}}  # fmt: skip
    s._on_message(conn, json.dumps(cfg).encode())
    hist = history_rows()
    s._on_message(conn, candle_frame(fields, ch, hist).encode())
    frames = [candle_frame(fields, ch, [forming_close(hist, i)]).encode() for i in range(2)]
    on_message = s._on_message

    def deliver(i: int) -> None:
        on_message(conn, frames[i % 2])

    return deliver, bot, client


# --------------------------------------------------------------------------- prototype fast path


class RawOrderPoster(asyncio.Protocol):
    """PROTOTYPE of an order-POST fast path for ttfast.rest (not library code): one kept-alive
    HTTP/1.1 connection, the request head built once (method, path, Host, User-Agent, Accept,
    Content-Type, Authorization), ``post(body)`` writes head + Content-Length + body in one
    ``transport.write`` synchronously and returns a future of (status, body). It measures what
    the *client* and *schedule* stages could cost; it has none of the client's outcome rules."""

    def __init__(self, host: str, port: int, path: str, token: str) -> None:
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: ttfast/bench\r\n"
            f"Accept: application/json\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: "
        ).encode()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiting: list[asyncio.Future[tuple[int, bytes]]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def post(self, body: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        self.transport.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        return fut

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1")
            m = re.search(r"(?im)^content-length:\s*(\d+)", head)
            n = int(m[1]) if m else 0
            if len(self.buf) < end + 4 + n:
                return
            body = bytes(self.buf[end + 4 : end + 4 + n])
            del self.buf[: end + 4 + n]
            status = int(head.split(" ", 2)[1])
            fut = self.waiting.pop(0)
            if not fut.done():
                fut.set_result((status, body))


class RawPostBot(TtfastBot):
    """The ttfast bot with the prototype fast path: the order (built and validated by
    ttfast.rest.orders) is written from inside the candle callback, no task, no aiohttp."""

    poster: RawOrderPoster

    def on_candle_changes(self, changes: Any) -> None:
        order = self.signal_order(changes)
        if order is None:
            return
        self.t_signal = self.t_client = time.perf_counter_ns()
        fut = self.poster.post(order.to_json())
        fut.add_done_callback(lambda f: self.answered.set())


async def rawpost_contestant(rest_url: str) -> tuple[Callable[[int], None], TtfastBot, Any]:
    from urllib.parse import urlsplit

    deliver, _bot, client = await ttfast_contestant(rest_url, bot_class=RawPostBot)
    bot = _bot
    assert isinstance(bot, RawPostBot)
    u = urlsplit(rest_url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    token = await client.session.access_token()
    loop = asyncio.get_running_loop()
    _, poster = await loop.create_connection(
        lambda: RawOrderPoster(host, port, f"/accounts/{ACCT}/orders", token), host, port
    )
    bot.poster = poster
    return deliver, bot, client


# --------------------------------------------------------------------------- SDK bot


class PyMacd:
    """MACD(12, 26, 9) with O(1) EMA updates over closed bars and a forming-bar revise."""

    def __init__(self, fast: int = 12, slow: int = 26, sig: int = 9) -> None:
        self.af, self.as_, self.ag = 2 / (fast + 1), 2 / (slow + 1), 2 / (sig + 1)
        self.warm = slow + sig - 1
        self.n = 0
        self.ef = self.es = self.eg = math.nan

    def update(self, x: float) -> None:
        if self.n == 0:
            self.ef = self.es = x
            self.eg = 0.0
        else:
            self.ef += self.af * (x - self.ef)
            self.es += self.as_ * (x - self.es)
            self.eg += self.ag * ((self.ef - self.es) - self.eg)
        self.n += 1

    def revise(self, x: float) -> float:
        if self.n < self.warm:
            return math.nan
        f = self.ef + self.af * (x - self.ef)
        s = self.es + self.as_ * (x - self.es)
        m = f - s
        return m - (self.eg + self.ag * (m - self.eg))


class SdkBot:
    """The same bot on the tastytrade SDK: listen(Candle) -> MACD -> Account.place_order."""

    def __init__(self, session: Any, account: Any) -> None:
        self.session = session
        self.account = account
        self.macd = PyMacd()
        self.last_time: int | None = None
        self.forming = math.nan
        self.above: bool | None = None
        self.signals = 0
        self.t_decide = 0
        self.t_signal = 0
        self.t_client = 0
        self.answered = asyncio.Event()

    def on_candle(self, c: Any) -> str | None:
        t = int(c.time)
        close = float(c.close)
        if self.last_time is not None and t > self.last_time:
            self.macd.update(self.forming)  # the previous bar closed
        self.last_time = t
        self.forming = close
        hist = self.macd.revise(close)
        if hist != hist:
            return None
        above = hist > 0
        out = None
        if self.above is not None and above != self.above:
            out = "buy" if above else "sell"
        self.above = above
        return out

    async def run(self, streamer: Any) -> None:
        from tastytrade.dxfeed import Candle
        from tastytrade.order import InstrumentType, Leg, LimitOrder, OrderAction

        from ttfast.rest import new_external_identifier  # the same tag format

        async for c in streamer.listen(Candle):
            sig = self.on_candle(c)
            if sig is None:
                continue
            self.t_decide = time.perf_counter_ns()
            buy = sig == "buy"
            leg = Leg(
                instrument_type=InstrumentType.EQUITY,
                symbol=SYMBOL,
                action=OrderAction.BUY_TO_OPEN if buy else OrderAction.SELL_TO_OPEN,
                quantity=1,
            )
            order = LimitOrder(
                legs=[leg],
                price=Decimal("-1.00") if buy else Decimal("10000"),
                external_identifier=new_external_identifier(),
            )
            self.signals += 1
            self.t_signal = self.t_client = time.perf_counter_ns()
            try:
                await self.account.place_order(self.session, order, dry_run=False)
            finally:
                self.answered.set()


async def sdk_contestant(rest_url: str) -> tuple[Callable[[int], None], SdkBot, Any]:
    import tastytrade
    from tastytrade import session as tt_session
    from tastytrade.streamer import DXLinkStreamer

    tt_session.API_URL = rest_url  # type: ignore[attr-defined]  # the only change to the SDK (as the repository's SDK tests)
    session = tastytrade.Session("bench-secret", "bench-refresh")
    await session.__aenter__()
    account = await tastytrade.Account.get(session, ACCT)
    streamer = DXLinkStreamer(session)  # not connected: frames are handed to its parser
    bot = SdkBot(session, account)
    ch = streamer._channels["Candle"]
    from tastytrade.dxfeed import Candle

    fields = tuple(Candle.model_json_schema()["properties"])
    hist = history_rows()
    frames = [candle_frame(fields, ch, [forming_close(hist, i)]) for i in range(2)]
    task = asyncio.get_running_loop().create_task(bot.run(streamer))
    bot._task = task  # type: ignore[attr-defined]
    bot._streamer = streamer  # type: ignore[attr-defined]
    msg = json.loads(candle_frame(fields, ch, hist))
    streamer._map_message(msg["data"], msg["channel"])
    for _ in range(10):
        await asyncio.sleep(0)
    map_message = streamer._map_message
    loads = json.loads

    def deliver(i: int) -> None:
        m = loads(frames[i % 2])  # the websocket's receive_json
        if m["type"] == "FEED_DATA":  # the SDK reader's dispatch
            map_message(m["data"], m["channel"])

    return deliver, bot, session


# --------------------------------------------------------------------------- harness


#: stages of one sample, each from the previous stamp (the first from the frame's arrival)
STAGES = ("decide", "order", "schedule", "client", "total")


async def measure(
    deliver: Callable[[int], None], bot: Any, probe: WriteProbe, n: int, start: int
) -> dict[str, list[int]]:
    """``n`` samples: per stage, nanoseconds. decide: frame -> the MACD's signal (ttfast: frame
    handler, decoder, candle store, MACD revise; SDK: json, pydantic Candle, memory stream, the
    bot's listen() wake-up, MACD); order: -> the order built and validated; schedule: -> the
    client's place_order entered (ttfast: the order task starts; SDK and the prototype: 0);
    client: -> the request's bytes handed to the socket; total: frame -> bytes."""
    out: dict[str, list[int]] = {k: [] for k in STAGES}
    for k in range(start, start + n):
        ev = asyncio.Event()
        probe.event = ev
        bot.answered.clear()
        t0 = time.perf_counter_ns()
        deliver(k)
        await asyncio.wait_for(ev.wait(), 30)
        out["decide"].append(bot.t_decide - t0)
        out["order"].append(bot.t_signal - bot.t_decide)
        out["schedule"].append(bot.t_client - bot.t_signal)
        out["client"].append(probe.t1 - bot.t_client)
        out["total"].append(probe.t1 - t0)
        await asyncio.wait_for(bot.answered.wait(), 30)
    return out


def _pct(xs: list[int], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000.0


def summary(xs: list[int]) -> dict[str, float]:
    return {
        "n": len(xs),
        "p50_us": _pct(xs, 0.50),
        "p90_us": _pct(xs, 0.90),
        "p99_us": _pct(xs, 0.99),
        "mean_us": statistics.fmean(xs) / 1000.0,
    }


async def run(
    signals: int, block: int, with_sdk: bool = True, prototype: bool = False
) -> dict[str, dict[str, float]]:
    from tests.servers import ttfast_sim

    with ttfast_sim() as sim, WriteProbe().installed() as probe:
        rest_url = sim.rest_url
        tt = await ttfast_contestant(rest_url)
        contestants: dict[str, tuple[Callable[[int], None], Any, Any]] = {"ttfast": tt}
        if with_sdk:
            contestants["sdk"] = await sdk_contestant(rest_url)
        if prototype:
            contestants["rawpost"] = await rawpost_contestant(rest_url)
        for deliver, bot, _ in contestants.values():  # warm-up: connections, caches
            await measure(deliver, bot, probe, 50, 0)
        lat: dict[str, dict[str, list[int]]] = {
            name: {k: [] for k in STAGES} for name in contestants
        }
        gc.collect()
        done = 0
        while done < signals:
            n = min(block, signals - done)
            for name, (deliver, bot, _) in contestants.items():
                got = await measure(deliver, bot, probe, n, done)
                for k in STAGES:
                    lat[name][k] += got[k]
            done += n
        for name, (_, bot, handle) in contestants.items():
            if name in ("ttfast", "rawpost"):
                await handle.__aexit__(None, None, None)
            else:
                bot._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await bot._task
                for stream in (*bot._streamer._send.values(), *bot._streamer._recv.values()):
                    stream.close()
                await handle.__aexit__(None, None, None)
        out = {name: summary(st["total"]) for name, st in lat.items()}
        for name, st in lat.items():
            for k in STAGES[:-1]:
                out[name][f"{k}_p50_us"] = _pct(st[k], 0.5)
        return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--signals", type=int, default=10_000, help="signals per contestant")
    p.add_argument("--block", type=int, default=250, help="signals per contestant turn")
    p.add_argument("--no-sdk", action="store_true")
    p.add_argument(
        "--prototype",
        action="store_true",
        help="also run 'rawpost': the ttfast bot over a prototype order-POST fast path",
    )
    a = p.parse_args(argv)
    res = asyncio.run(run(a.signals, a.block, not a.no_sdk, a.prototype))
    for name, r in res.items():
        print(
            f"{name:7s} n={r['n']:.0f}  p50 {r['p50_us']:8.1f} us  p90 {r['p90_us']:8.1f} us  "
            f"p99 {r['p99_us']:8.1f} us  mean {r['mean_us']:8.1f} us   stage p50s: "
            + "  ".join(f"{k} {r[k + '_p50_us']:.1f}" for k in STAGES[:-1])
        )
    if "sdk" in res:
        tt, sdk = res["ttfast"], res["sdk"]
        print(
            f"sdk/ttfast: p50 {sdk['p50_us'] / tt['p50_us']:.1f}x  "
            f"p99 {sdk['p99_us'] / tt['p99_us']:.1f}x  (same run, interleaved blocks)"
        )
    if "sdk" in res and "rawpost" in res:
        rp, sdk = res["rawpost"], res["sdk"]
        print(
            f"sdk/rawpost (prototype): p50 {sdk['p50_us'] / rp['p50_us']:.1f}x  "
            f"p99 {sdk['p99_us'] / rp['p99_us']:.1f}x"
        )
    return 0


@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")  # the SDK's POST
async def test_bench_bot_smoke() -> None:
    """Both bots turn every frame into one order on the wire (no timing asserted)."""
    pytest.importorskip("tastytrade")
    res = await run(signals=20, block=10, prototype=True)
    assert res["ttfast"]["n"] == res["sdk"]["n"] == res["rawpost"]["n"] == 20


if __name__ == "__main__":
    sys.exit(main())
