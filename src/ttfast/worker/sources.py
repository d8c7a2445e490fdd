"""Where the worker's candles come from, and the edge in front of the Redis source.

* ``sim``: the local dxLink server + seeded market simulator run in-process and the real dxLink
  client connects to it -- the whole pipeline, offline.
* ``dxlink``: a real tastytrade session (OAuth from ``TASTYTRADE_*`` env) ->
  ``/api-quote-tokens`` -> the dxLink streamer.
* ``redis``: raw candles another process publishes on ``market:CandleEvent:<symbol>``.

The dxLink sources hand the streamer the worker's seams: its ``CandleStore`` (``candle_store=``),
``Worker.on_stream_changes`` (``on_candle_changes=``, the store's Changes of every Candle batch)
and ``Worker.admit_symbol`` (``accept_candle_symbol=``, the edge for new symbols). The Redis
source validates every message here (`RawCandleParser`) and hands good ones to
``Worker.ingest_raw``. Each ``run_*`` coroutine runs until the worker stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import msgspec

from ttfast._core import RAW_CHANNEL_PREFIX
from ttfast._util import redact_url
from ttfast.symbols import validate_symbol, with_period
from ttfast.worker.config import MAX_ABS_VALUE, MAX_MESSAGE_BYTES, MAX_TIME_MS

if TYPE_CHECKING:
    from ttfast.dxlink.streamer import ConnectionEvent, DxLinkStreamer
    from ttfast.worker.app import Worker

__all__ = [
    "RAW_PATTERN",
    "RAW_PREFIX",
    "BadMessage",
    "RawCandle",
    "RawCandleParser",
    "make_streamer",
    "run_dxlink",
    "run_redis",
    "run_sim",
    "run_source",
]

log = logging.getLogger("ttfast.worker")

RAW_PREFIX = RAW_CHANNEL_PREFIX  # where raw candles are published (the pipeline's default)
RAW_PATTERN = RAW_PREFIX + "*"


# -- the Redis source's edge ---------------------------------------------------------------


class RawCandle(msgspec.Struct, forbid_unknown_fields=False):
    """One raw candle as published on market:CandleEvent:<symbol> (dxLink field names)."""

    time: int
    close: float | None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    volume: float | None = None
    eventSymbol: str | None = None
    eventFlags: int = 0
    sequence: int = 0
    count: int = 0


class BadMessage(Exception):
    """A raw message that is skipped: `reason` is one of MALFORMED_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


_raw_decoder = msgspec.json.Decoder(RawCandle)


class RawCandleParser:
    """Validates pub/sub messages: `parse` returns (store symbol, candle) or raises BadMessage.

    The store symbol is the message's ``eventSymbol`` (else the channel's suffix) with the
    worker's period attribute added when it has none.
    """

    def __init__(self, period_attr: str, max_symbols: int) -> None:
        self.period_attr = period_attr
        self._canonical: dict[str, str] = {}  # validated raw symbol -> store symbol
        self._cache_max = 4 * max_symbols + 1024

    def parse(self, m: dict[str, Any]) -> tuple[str, RawCandle]:
        data = m.get("data")
        if not isinstance(data, (bytes, str)):
            raise BadMessage("shape", f"message data is {type(data).__name__}")
        if len(data) > MAX_MESSAGE_BYTES:
            raise BadMessage("too_large", f"{len(data)} bytes > {MAX_MESSAGE_BYTES}")
        try:
            c = _raw_decoder.decode(data)
        except msgspec.ValidationError as exc:
            reason = "number" if "out of range" in str(exc) else "shape"
            raise BadMessage(reason, str(exc)) from None
        except msgspec.DecodeError as exc:
            raise BadMessage("json", str(exc)) from None
        raw = c.eventSymbol
        if not raw:
            ch = m.get("channel")
            try:
                chs = ch.decode() if isinstance(ch, bytes) else ch
            except UnicodeDecodeError:
                raise BadMessage("symbol", f"channel {ch!r} is not UTF-8") from None
            if not isinstance(chs, str) or not chs.startswith(RAW_PREFIX):
                raise BadMessage("symbol", f"no eventSymbol and channel {ch!r}")
            raw = chs[len(RAW_PREFIX) :]
        sym = self._canonical.get(raw)
        if sym is None:
            why = validate_symbol(raw)
            if why is not None:
                raise BadMessage("symbol", why)
            sym = with_period(raw, self.period_attr)
            if len(self._canonical) >= self._cache_max:
                self._canonical.clear()
            self._canonical[raw] = sym
        if not 0 <= c.time < MAX_TIME_MS:
            raise BadMessage("time", f"time {c.time} outside [0, {MAX_TIME_MS}) ms")
        for x in (c.open, c.high, c.low, c.close, c.volume):
            if x is not None and not abs(x) <= MAX_ABS_VALUE:
                raise BadMessage("number", f"value {x!r} not finite or beyond {MAX_ABS_VALUE:g}")
        if not (0 <= c.eventFlags <= 0xFF and 0 <= c.sequence <= 0x3FFFFF and 0 <= c.count < 2**63):
            raise BadMessage(
                "field",
                f"eventFlags {c.eventFlags}, sequence {c.sequence} or count {c.count} out of range",
            )
        return sym, c


# -- sources -----------------------------------------------------------------------------


def make_streamer(
    w: Worker, url: str | None, provider: Callable[[], Awaitable[tuple[str, str]]]
) -> DxLinkStreamer:
    """A DxLinkStreamer wired to the worker: its store, its changes callback, its edge."""
    from ttfast.dxlink.streamer import DxLinkStreamer

    connected_once = False

    def on_event(ev: ConnectionEvent) -> None:
        nonlocal connected_once
        if ev.kind == "connected":
            if connected_once:
                w.reconnects += 1
            connected_once = True
        if ev.kind in ("disconnected", "failed", "auth_rejected", "decode_error"):
            log.warning("dxlink %s: %s", ev.kind, ev.detail)

    return DxLinkStreamer(
        url,
        provider,
        candle_store=w.store,
        on_candle_changes=w.on_stream_changes,
        accept_candle_symbol=w.admit_symbol,
        on_event=on_event,
        aggregation_period=0.1,
    )


async def _run_streamer(
    w: Worker,
    url: str | None,
    provider: Callable[[], Awaitable[tuple[str, str]]],
    now_ms: Callable[[], int],
) -> None:
    streamer = make_streamer(w, url, provider)
    await streamer.open()
    start = now_ms() - int(w.cfg.history_days * 86_400_000)
    w.subscribe_candles(streamer, start)  # warm-started symbols only from their newest bar
    try:
        await w.stopped()
    finally:
        await streamer.close()


async def run_sim(w: Worker) -> None:
    from ttfast.sim import DxLinkServer, SimClock

    cfg = w.cfg
    start_ms = None
    if cfg.sim_anchor_ms is not None:  # one market clock for every process given this anchor
        a = cfg.sim_anchor_ms
        start_ms = a + int((time.time() * 1000 - a) * cfg.sim_speed)
    clock = SimClock(start_ms=start_ms, time_scale=cfg.sim_speed)
    server = DxLinkServer(seed=cfg.sim_seed, clock=clock, default_aggregation=0.1)
    url = await server.start()
    log.info(
        "sim: local dxLink server on %s (seed %d, %gx speed)", url, cfg.sim_seed, cfg.sim_speed
    )

    async def provider() -> tuple[str, str]:
        return url, "sim-token"

    try:
        await _run_streamer(w, url, provider, lambda: int(clock.now_ms()))
    finally:
        await server.stop()


async def run_dxlink(w: Worker) -> None:
    from ttfast.rest import OAuthSession, TastytradeClient

    session = OAuthSession.from_env()
    client = TastytradeClient(session)
    try:
        now_ms = lambda: int(time.time() * 1000)  # noqa: E731
        await _run_streamer(w, None, client.quote_token_provider(), now_ms)
    finally:
        await session.close()


async def run_redis(w: Worker) -> None:
    import redis.asyncio as aioredis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from ttfast._retry import Backoff

    url = w.cfg.redis_url
    assert url is not None
    backoff = Backoff(base=0.05, cap=2.0, jitter="none")
    first = True
    while not w.stopping:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=2.0)
        pubsub = client.pubsub()
        try:
            await pubsub.psubscribe(RAW_PATTERN)
            if not first:
                w.reconnects += 1
            first = False
            backoff.reset()
            log.info("redis source: subscribed to %s on %s", RAW_PATTERN, redact_url(url))
            while not w.stopping:
                msgs: list[dict[str, Any]] = []
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
                while msg is not None and len(msgs) < 4096:
                    msgs.append(msg)
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.0)
                if msgs:
                    try:
                        w.ingest_raw(msgs)
                    except Exception as exc:  # ingest_raw handles its own; belt and braces
                        w.count_malformed("error", repr(exc), "redis source", len(msgs))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            delay = backoff.next_delay()
            log.warning("redis source: %s; reconnecting in %.2fs", type(exc).__name__, delay)
            await asyncio.sleep(delay)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await client.aclose()


_SOURCES: dict[str, Callable[[Worker], Coroutine[Any, Any, None]]] = {
    "sim": run_sim,
    "dxlink": run_dxlink,
    "redis": run_redis,
}


def run_source(w: Worker) -> Coroutine[Any, Any, None]:
    """The coroutine of the worker's configured source."""
    return _SOURCES[w.cfg.source](w)
