"""Golden transcripts of the local servers: the same seed and the same requests give the same bytes.

Each scenario drives a real :class:`~ttfast.sim.DxLinkServer` (market time on a manual clock) or a
real ``RestSimServer`` (wall clock, dates and random tokens frozen) and records every frame or
response verbatim. The transcripts under ``tests/data/sim_golden/`` were recorded from the
simulators before their split into modules; the test replays the scenarios and compares byte for
byte, so a refactor of the simulators cannot change what a client sees.

Re-record (only when a behaviour change is intended)::

    TTFAST_SIM_GOLDEN=record python -m pytest -q tests/protocol/test_sim_golden.py

Timing: a recording waits a quiet period after each step; a replay waits until the step's frames
have arrived, so it is fast and the per-step attribution of frames checks their order too.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import itertools
import json
import os
import sys
import time as _time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import picows
import pytest

from ttfast.sim import DxLinkServer, Faults, RestSimServer
from ttfast.sim.pricing import ManualClock, StandaloneMarket

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "sim_golden"
RECORD = os.environ.get("TTFAST_SIM_GOLDEN") == "record"
QUIET = 0.3  # recording: seconds of silence after a step (fault timers below are 0.05 s)
T0 = 1_750_000_123_456  # market instant (mid-bar for 5m bars)
SEED = 11
H = 3_600_000

# ====================================================================================== dxLink

SETUP = {"type": "SETUP", "channel": 0, "version": "golden/1", "keepaliveTimeout": 60,
         "acceptKeepaliveTimeout": 60}  # fmt: skip
AUTH = {"type": "AUTH", "channel": 0, "token": "tok"}


def _req(ch: int, contract: str = "AUTO", **params: Any) -> dict[str, Any]:
    return {"type": "CHANNEL_REQUEST", "channel": ch, "service": "FEED",
            "parameters": {"contract": contract, **params}}  # fmt: skip


def _feed_setup(
    ch: int, agg: Any = 0.0, fmt: str = "COMPACT", fields: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    m: dict[str, Any] = {"type": "FEED_SETUP", "channel": ch, "acceptAggregationPeriod": agg,
                         "acceptDataFormat": fmt}  # fmt: skip
    if fields is not None:
        m["acceptEventFields"] = fields
    return m


def _sub(
    ch: int,
    add: list[Any] | None = None,
    remove: list[Any] | None = None,
    reset: bool = False,
) -> dict[str, Any]:
    m: dict[str, Any] = {"type": "FEED_SUBSCRIPTION", "channel": ch}
    if reset:
        m["reset"] = True
    if remove is not None:
        m["remove"] = remove
    if add is not None:
        m["add"] = add
    return m


def _e(t: str, s: str, **kw: Any) -> dict[str, Any]:
    return {"type": t, "symbol": s, **kw}


# A step: ("send", message dict or raw str), ("advance", ms) or ("wait",).
Step = tuple[Any, ...]


@dataclass
class DxScenario:
    name: str
    steps: list[Step]
    server: dict[str, Any] = field(default_factory=dict)
    faults: Faults | None = None


def _open(ch: int = 1, contract: str = "AUTO", **setup: Any) -> list[Step]:
    return [("send", _req(ch, contract)), ("send", _feed_setup(ch, **setup))]


HELLO: list[Step] = [("send", SETUP), ("send", AUTH)]
ALL_TICKER = [
    _e("Quote", "S0"), _e("Quote", "S1"), _e("Trade", "S0"), _e("TradeETH", "S2"),
    _e("Summary", "S0"), _e("Profile", "S1"), _e("Greeks", ".S0260619C100"),
]  # fmt: skip
CANDLES = [
    _e("Candle", "S0{=5m}", fromTime=T0 - 3 * H),
    _e("Candle", "S1{=1m}", fromTime=float(T0 - 20 * 60_000)),
    _e("Candle", "S2{=15m}", fromTime=(T0 // 900_000) * 900_000 - H),  # exactly a bar start
    _e("Candle", "S3", fromTime=T0 - H),  # tick candles: not simulated
    _e("Candle", "S4{=1h}", fromTime="yesterday"),  # invalid fromTime
    _e("Candle", "S5{=1d}"),  # no fromTime: from the history start, capped
]
QUOTE_SOME = ["eventType", "eventSymbol", "askPrice", "bogus", "bidPrice", "askPrice"]


def _fields_scenario(name: str, faults: Faults) -> DxScenario:
    fields = {"Quote": QUOTE_SOME, "Candle": ["eventSymbol", "time", "close", "eventFlags"]}
    return DxScenario(
        name,
        [
            *HELLO,
            *_open(1, fields=fields),
            ("send", _sub(1, [_e("Quote", "S0"), _e("Trade", "S1")])),
            ("send", _sub(1, [_e("Candle", "S0{=5m}", fromTime=T0 - H)])),
            ("advance", 400_000),
        ],
        server={"max_snapshot_rows": 40},
        faults=faults,
    )


def _candle_fault_scenario(name: str, faults: Faults, contract: str = "HISTORY") -> DxScenario:
    return DxScenario(
        name,
        [
            *HELLO,
            *_open(1, contract),
            ("send", _sub(1, [_e("Candle", "S0{=5m}", fromTime=T0 - 2 * H)])),
            ("wait",),
            ("advance", 300_000),
        ],
        faults=faults,
    )


DX_SCENARIOS: list[DxScenario] = [
    DxScenario(
        "protocol_errors",
        [
            ("send", "not json"),
            ("send", "[1, 2]"),
            ("send", AUTH),
            ("send", {"type": 5}),
            ("send", {"type": "AUTH", "channel": True}),
            ("send", SETUP),
            ("send", _req(1)),
            ("send", {"type": "FOO", "channel": 1}),
            ("send", {**AUTH, "token": ""}),
            ("send", AUTH),
            ("send", _req(2)),
            ("send", _feed_setup(3)),
            ("send", {**_req(3), "service": "HISTORY"}),
            ("send", _req(3, "BOGUS")),
            ("send", {"type": "CHANNEL_REQUEST", "channel": 3, "service": "FEED", "parameters": 7}),
            ("send", _req(3, "TICKER", extra=1)),
            ("send", {"type": "KEEPALIVE", "channel": 0}),
            ("send", {"type": "ERROR", "channel": 0, "error": "X", "message": "client"}),
            ("send", SETUP),
            ("send", {"type": "CHANNEL_CANCEL", "channel": 3}),
            ("send", _sub(3, [_e("Quote", "S0")])),
            ("send", _req(5)),
            ("send", _feed_setup(5, agg="NaN")),
            ("send", _feed_setup(5, agg=-3, fmt="XML", fields={"Nope": ["a"], "Quote": "x"})),
            ("send", _feed_setup(5, agg=2.5, fmt="FULL")),
        ],
    ),
    DxScenario(
        "ticker_compact",
        [
            *HELLO,
            *_open(1, agg=0.05, fields={"Quote": QUOTE_SOME}),
            ("send", _sub(1, ALL_TICKER)),
            ("advance", 150),
            ("advance", 5_000),
            ("send", _sub(1, [_e("Underlying", "S0"), _e("Bogus", "S0"), {"type": "Quote"}, 7])),
            (
                "send",
                _sub(
                    1,
                    [_e("Quote", "S0"), _e("Quote", "S7")],
                    remove=[_e("Quote", "S1"), _e("Profile", "S1"), _e("Underlying", "S0"), "junk"],
                ),
            ),
            ("advance", 60_000),
            ("send", _sub(1, [_e("Quote", "S5")], reset=True)),
            ("advance", 100),
        ],
    ),
    DxScenario(
        "ticker_full_default_fields",
        [
            *HELLO,
            *_open(1, agg=0, fmt="FULL"),
            ("send", _req(3)),
            ("send", _sub(1, ALL_TICKER)),
            ("send", _sub(3, [_e("Quote", "S0"), _e("Trade", "S0")])),
            ("advance", 250),
            ("advance", 2 * H),
        ],
    ),
    DxScenario(
        "multi_type_special_values",
        [
            *HELLO,
            *_open(1),
            *_open(3, fmt="FULL"),
            ("send", _sub(1, ALL_TICKER)),
            ("send", _sub(3, ALL_TICKER)),
            ("advance", 1_000),
            ("send", _sub(1, [_e("TimeAndSale", "S0"), _e("TimeAndSale", "S1")])),
            ("advance", 300),
        ],
        faults=Faults(multi_type_frames=True, special_values=True),
    ),
    DxScenario(
        "stream_frames_split",
        [
            *HELLO,
            *_open(1, "STREAM"),
            ("send", _sub(1, [_e("TimeAndSale", s) for s in ("S0", "S1", "S2")])),
            ("advance", 1_000),
            ("send", _sub(1, [_e("TimeAndSale", "S3")])),
            ("advance", 2_500),
            ("advance", 4_000),
        ],
        server={"max_rows_per_frame": 7},
    ),
    DxScenario(
        "candles_history",
        [
            *HELLO,
            *_open(1, "HISTORY"),
            ("send", _sub(1, CANDLES)),
            ("advance", 60_000),
            ("advance", 400_000),
            ("send", _sub(1, remove=[_e("Candle", "S1{=1m}")])),
            ("advance", 600_000),
        ],
        server={"max_snapshot_rows": 50, "snapshot_chunk_rows": 20},
    ),
    DxScenario(
        "candles_auto_full",
        [
            *HELLO,
            *_open(1, fmt="FULL"),
            ("send", _sub(1, [_e("Candle", "S0{=1h}", fromTime=T0 - 6 * H)])),
            ("advance", H),
        ],
        server={"max_snapshot_rows": 1},
    ),
    _fields_scenario("fields_eager", Faults(event_fields="eager")),
    _fields_scenario("fields_late", Faults(event_fields="late")),
    _fields_scenario("fields_absent", Faults(event_fields="absent")),
    _fields_scenario("fields_reordered", Faults(event_fields="reordered")),
    _fields_scenario(
        "fields_dropped", Faults(drop_fields={"Quote": frozenset({"askPrice", "eventType"})})
    ),
    _candle_fault_scenario("candle_tx_correction", Faults(tx_correction_after_s=0.05)),
    _candle_fault_scenario("candle_remove_bar", Faults(remove_bar_after_s=0.05)),
    _candle_fault_scenario("candle_second_snapshot", Faults(second_snapshot_after_s=0.05)),
    _candle_fault_scenario("candle_snip", Faults(snip_rows=4)),
    _candle_fault_scenario("candle_empty_snapshot", Faults(empty_snapshot=True)),
    _candle_fault_scenario("candle_auto_empty", Faults(candles_auto_empty=True), "AUTO"),
    _candle_fault_scenario("candle_auto_empty_history", Faults(candles_auto_empty=True)),
    DxScenario(
        "close_after_frames",
        [*HELLO, *_open(1), ("send", _sub(1, ALL_TICKER[:3])), ("advance", 1_000)],
        faults=Faults(close_after_frames=3, close_code=4000),
    ),
    DxScenario(
        "drop_after_frames",
        [*HELLO, *_open(1), ("send", _sub(1, ALL_TICKER[:1])), ("advance", 1_000)],
        faults=Faults(close_after_frames=1, close_code=None),
    ),
    DxScenario("reject_auth", [*HELLO, ("send", _req(1))], faults=Faults(reject_auth=True)),
    DxScenario("reject_auth_close", HELLO, faults=Faults(reject_auth=True, reject_auth_close=True)),
    DxScenario("ignore_auth", [*HELLO, ("send", _req(1))], faults=Faults(ignore_auth=True)),
    DxScenario(
        "rate_limit",
        [
            *HELLO,
            *_open(1),
            ("send", _sub(1, [_e("Quote", f"S{i}") for i in range(5)])),
            ("send", _sub(1, [_e("Trade", "S0")])),
        ],
        faults=Faults(subscription_rate_limit=3),
    ),
    DxScenario(
        "no_auth_no_feed_setup",
        [("send", SETUP), ("send", _req(1)), ("send", _sub(1, ALL_TICKER[:3] + CANDLES[:1]))],
        server={"require_auth": False, "max_snapshot_rows": 5},
    ),
    DxScenario(
        "keepalive_timeout",
        [("send", SETUP), ("wait",)],
        server={"keepalive_timeout": 0.5},
    ),
]


class _Recorder(picows.WSListener):
    def __init__(self) -> None:
        self.got: list[list[Any]] = []
        self.event = asyncio.Event()

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if frame.msg_type == picows.WSMsgType.TEXT:
            self.got.append(["<", frame.get_payload_as_utf8_text()])
        elif frame.msg_type == picows.WSMsgType.CLOSE:
            self.got.append(["close", frame.get_close_code().value])
            transport.disconnect()
        self.event.set()

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self.got.append(["disconnected"])
        self.event.set()


async def _settle(rec: _Recorder, start: int, expect: int | None, quiet: float) -> None:
    """Recording: wait ``quiet`` seconds of silence. Replay: wait for ``expect`` entries."""
    loop = asyncio.get_running_loop()
    if expect is None:
        last = -1
        while len(rec.got) != last:
            last = len(rec.got)
            await asyncio.sleep(quiet)
        return
    end = loop.time() + 10.0
    while len(rec.got) - start < expect and loop.time() < end:
        rec.event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rec.event.wait(), end - loop.time())


async def _run_dx(sc: DxScenario, expected: list[list[Any]] | None) -> list[list[Any]]:
    clock = ManualClock(T0)
    srv = DxLinkServer(seed=SEED, clock=clock, faults=sc.faults, **sc.server)
    await srv.start()
    out: list[list[Any]] = []
    try:
        tr, rec = await picows.ws_connect(_Recorder, srv.url)
        assert isinstance(rec, _Recorder)
        for i, step in enumerate(sc.steps):
            if step[0] == "send":
                msg = step[1] if isinstance(step[1], str) else json.dumps(step[1])
                if not (rec.got and rec.got[-1] == ["disconnected"]):
                    tr.send(picows.WSMsgType.TEXT, msg.encode())
            elif step[0] == "advance":
                clock.t += step[1]
            start = len(rec.got)
            want = None if expected is None else sum(1 for e in expected if e[0] == i)
            await _settle(rec, start, want, QUIET)
            out.extend([i, *e] for e in rec.got[start:])
        if expected is not None:
            await asyncio.sleep(0.05)  # nothing more may arrive
            out.extend([len(sc.steps), *e] for e in rec.got[len(out) :])
        subs = sorted(srv.connections[0].subscriptions()) if srv.connections else []
        out.append(["stats", {
            "subscriptions": [list(s) for s in subs],
            "connection_count": srv.connection_count,
            "frames_sent": srv.frames_sent,
            "received": len(srv.received),
            "errors_sent": [list(e) for e in srv.errors_sent],
            "unknown_types": srv.unknown_types,
            "internal_errors": srv.internal_errors,
        }])  # fmt: skip
        if not (rec.got and rec.got[-1] == ["disconnected"]):
            tr.disconnect()
    finally:
        await srv.stop()
    return out


# ====================================================================================== REST

FROZEN = _dt.datetime(2026, 3, 4, 15, 0, 0, 123456, tzinfo=_dt.UTC)  # a Wednesday


class _Wall:
    """The frozen wall clock the REST server sees (``offset`` moves it)."""

    offset = 0.0
    tokens = itertools.count(1)

    @classmethod
    def now(cls) -> _dt.datetime:
        return FROZEN + _dt.timedelta(seconds=cls.offset)


class _FrozenDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz: _dt.tzinfo | None = None) -> _FrozenDatetime:  # type: ignore[override]
        return cls.fromtimestamp(_Wall.now().timestamp(), tz)


class _FrozenDate(_dt.date):
    @classmethod
    def today(cls) -> _FrozenDate:
        d = _Wall.now().date()
        return cls(d.year, d.month, d.day)


class _FrozenTime:
    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)

    @staticmethod
    def time() -> float:
        return _Wall.now().timestamp()


class _FrozenSecrets:
    @staticmethod
    def token_hex(n: int = 32) -> str:
        return f"{next(_Wall.tokens):0{2 * n}x}"

    @staticmethod
    def token_urlsafe(n: int = 32) -> str:
        return f"golden{next(_Wall.tokens):04d}"


@contextlib.contextmanager
def _frozen_wall() -> Iterator[None]:
    """Freeze wall clock, dates and random tokens in every ``ttfast.sim`` module."""
    swaps = {
        "datetime": (_dt.datetime, _FrozenDatetime),
        "date": (_dt.date, _FrozenDate),
        "time": (_time, _FrozenTime()),
        "secrets": (sys.modules["secrets"], _FrozenSecrets),
    }
    undo: list[tuple[Any, str, Any]] = []
    for name, mod in list(sys.modules.items()):
        if name.startswith("ttfast.sim") and mod is not None:
            for attr, (real, fake) in swaps.items():
                if getattr(mod, attr, None) is real:
                    undo.append((mod, attr, real))
                    setattr(mod, attr, fake)
    assert {a for _, a, _ in undo} == set(swaps), undo  # the test must reach the REST server
    _Wall.offset = 0.0
    _Wall.tokens = itertools.count(1)
    try:
        yield
    finally:
        for mod, attr, real in undo:
            setattr(mod, attr, real)


# A request: (method, path, json body | raw str | None, extra headers | "noauth" | "noua")
Req = tuple[str, str, Any, Any]
A = "/accounts/5WT00000"
LIMIT = {"order-type": "Limit", "time-in-force": "Day", "price": "1.5", "price-effect": "Debit",
         "legs": [{"instrument-type": "Equity", "symbol": "AAPL", "quantity": 10,
                   "action": "Buy to Open"}]}  # fmt: skip
OPT = {"order-type": "Stop Limit", "time-in-force": "GTD", "gtc-date": "2026-03-20",
       "price": 2, "stop-trigger": "2.10", "price-effect": "Debit", "source": "golden",
       "external-identifier": "ext-1", "partition-key": "pk",
       "legs": [{"instrument-type": "Equity Option", "symbol": "SPY   260320C00600000",
                 "quantity": "2", "action": "Buy to Open"},
                {"instrument-type": "Equity Option", "symbol": "SPY   260320C00605000",
                 "quantity": 1.5, "action": "Sell to Open"}]}  # fmt: skip
FUT = {"order-type": "Market", "time-in-force": "Day", "value": "5", "value-effect": "Credit",
       "legs": [{"instrument-type": "Future Option", "symbol": "./ESZ6 E4AZ6 261218P6000",
                 "quantity": 1, "action": "Sell to Close"}]}  # fmt: skip
BAD_ORDERS = [
    [], {"legs": []}, {"legs": [1]},
    {"legs": [{"action": "Buy"}], "price-effect": "Credit"},
    {"order-type": "Market", "time-in-force": "GTC", "value-effect": "Debit",
     "legs": [{"action": "Sell"}], "price": "1", "value": "2"},
    {"order-type": "Stop Limit", "time-in-force": "GTD", "price": "x", "legs": [{}]},
]  # fmt: skip


def _rest_requests() -> list[Req]:
    reqs: list[Req] = [
        ("GET", "/customers/me", None, "noua"),
        ("GET", "/customers/me", None, "noauth"),
        ("GET", "/customers/me", None, {"Authorization": "Bearer nope"}),
        ("POST", "/oauth/token", "{bad", {"Content-Type": "application/json"}),
        ("POST", "/oauth/token", "[1]", {"Content-Type": "application/json"}),
        ("POST", "/oauth/token", {"grant_type": "password"}, None),
        ("POST", "/oauth/token", {"grant_type": "refresh_token", "refresh_token": "r"}, None),
        ("POST", "/oauth/token", "grant_type=refresh_token&refresh_token=r&client_secret=s",
         {"Content-Type": "application/x-www-form-urlencoded"}),
        ("POST", "/oauth/token", {"grant_type": "refresh_token", "refresh_token": "r",
                                  "client_secret": "s"}, None),
        ("GET", "/customers/me", None, None),
        ("GET", "/customers/me/accounts", None, None),
        ("GET", "/customers/me/accounts/5WT00001", None, None),
        ("GET", "/customers/me/accounts/NOPE", None, None),
        ("GET", A + "/balances", None, None),
        ("GET", A + "/balances/USD", None, None),
        ("GET", A + "/balances/EUR", None, None),
        ("GET", A + "/positions", None, None),
        ("GET", A + "/positions?underlying-symbol[]=SPY", None, None),
        ("GET", A + "/transactions", None, None),
        ("GET", A + "/transactions?per-page=3&page-offset=1", None, None),
        ("GET", A + "/transactions?per-page=x", None, None),
        ("GET", A + "/transactions/total-fees", None, None),
        ("GET", A + "/trading-status", None, None),
    ]  # fmt: skip
    reqs += [("POST", A + "/orders", o, None) for o in BAD_ORDERS]
    reqs += [
        ("POST", A + "/orders", "{nope", {"Content-Type": "application/json"}),
        ("POST", A + "/orders/dry-run", LIMIT, None),
        ("POST", A + "/orders", LIMIT, None),
        ("POST", A + "/orders", OPT, None),
        ("POST", "/accounts/5WT00001/orders", FUT, None),
        ("GET", A + "/orders/live", None, None),
        ("GET", A + "/orders/100001", None, None),
        ("GET", A + "/orders/abc", None, None),
        ("GET", "/accounts/5WT00001/orders/100001", None, None),
        ("PUT", A + "/orders/100001", {"price": "1.45", "legs": "ignored"}, None),
        ("PUT", A + "/orders/100001", {"price": "1.40"}, None),
        ("PUT", A + "/orders/100002", [1], None),
        ("PUT", A + "/orders/100002", {"order-type": "Market", "time-in-force": "GTC"}, None),
        ("DELETE", A + "/orders/100002", None, None),
        ("DELETE", A + "/orders/100002", None, None),
        ("POST", A + "/complex-orders", {"type": "XYZ"}, None),
        ("POST", A + "/complex-orders", {"type": "OCO", "orders": []}, None),
        ("POST", A + "/complex-orders", {"type": "OTO", "orders": [LIMIT]}, None),
        ("POST", A + "/complex-orders", {"type": "OCO", "orders": [LIMIT, BAD_ORDERS[3]]}, None),
        ("POST", A + "/complex-orders/dry-run", {"type": "OCO", "orders": [LIMIT, OPT]}, None),
        ("POST", A + "/complex-orders", {"type": "OCO", "orders": [LIMIT, OPT]}, None),
        ("POST", A + "/complex-orders", {"type": "OTOCO", "trigger-order": LIMIT,
                                         "orders": [OPT, LIMIT]}, None),
        ("GET", A + "/complex-orders/live", None, None),
        ("GET", A + "/complex-orders/100005", None, None),
        ("GET", A + "/complex-orders/x", None, None),
        ("DELETE", A + "/orders/100007", None, None),
        ("DELETE", A + "/complex-orders/100005", None, None),
        ("DELETE", A + "/complex-orders/100005", None, None),
        ("GET", A + "/orders", None, None),
        ("GET", A + "/orders?status[]=Live&status[]=Contingent&sort=Asc&per-page=3", None, None),
        ("GET", A + "/orders?underlying-symbol=SPY&page-offset=1&per-page=2", None, None),
        ("GET", "/instruments/equities", None, None),
        ("GET", "/instruments/equities?symbol[]=SPY&symbol[]=NOPE", None, None),
        ("GET", "/instruments/equities?symbol=TSLA", None, None),
        ("GET", "/instruments/equities/META", None, None),
        ("GET", "/instruments/equities/NOPE", None, None),
        ("GET", "/instruments/equity-options/SPY   260306C00600000", None, None),
        ("GET", "/instruments/equity-options/AAPL 260313P00240000", None, None),
        ("GET", "/instruments/equity-options/SPY 991231C00001000", None, None),
        ("GET", "/instruments/futures", None, None),
        ("GET", "/instruments/futures?symbol[]=ESZ6&product-code[]=ES", None, None),
        ("GET", "/instruments/futures?product-code[]=CL", None, None),
        ("GET", "/instruments/futures/ESZ6", None, None),
        ("GET", "/instruments/future-options/.%2FESZ6 E4AZ6 261218P6000", None, None),
        ("GET", "/instruments/cryptocurrencies", None, None),
        ("GET", "/instruments/cryptocurrencies?symbol[]=ETH/USD", None, None),
        ("GET", "/instruments/cryptocurrencies/BTC%2FUSD", None, None),
        ("GET", "/option-chains/SPY/nested", None, None),
        ("GET", "/option-chains/AAPL/nested", None, None),
        ("GET", "/option-chains/QQQ/nested", None, None),
        ("GET", "/market-metrics?symbols=SPY,AAPL,,QQQ", None, None),
        ("GET", "/market-metrics", None, None),
        ("GET", "/symbols/search/s", None, None),
        ("GET", "/api-quote-tokens", None, None),
        ("GET", "/nope", None, None),
        ("POST", "/customers/me", None, None),
        ("GET", "/_sim/state", None, "noua"),
        ("POST", "/_sim/faults", {"kind": "status", "path": "^/customers/me$"}, None),
        ("POST", "/_sim/faults", {"kind": "nope"}, None),
        ("POST", "/_sim/faults", {"kind": "drop", "bogus": 1}, None),
        ("GET", "/customers/me", None, None),
        ("GET", "/customers/me", None, None),
        ("POST", "/_sim/faults", {"kind": "status", "status": 429, "body": {"x": [1]},
                                  "method": "get", "count": 2}, None),
        ("GET", "/instruments/equities/SPY", None, None),
        ("POST", A + "/orders", LIMIT, None),
        ("GET", "/instruments/equities/SPY", None, None),
        ("GET", "/instruments/equities/SPY", None, None),
        ("POST", "/_sim/faults", {"kind": "malformed", "path": "equities"}, None),
        ("GET", "/instruments/equities/SPY", None, None),
        ("POST", "/_sim/faults", {"kind": "status", "status": 502, "after_handler": True,
                                  "method": "POST", "path": "/orders$"}, None),
        ("POST", A + "/orders", LIMIT, None),
        ("POST", "/_sim/faults", {"kind": "drop", "path": "trading-status"}, None),
        ("GET", A + "/trading-status", None, None),
        ("POST", "/_sim/faults", {"kind": "drop", "after_handler": True, "method": "DELETE"},
         None),
        ("DELETE", A + "/orders/100004", None, None),
        ("GET", A + "/orders/100004", None, None),
        ("POST", "/_sim/faults", {"kind": "hang", "seconds": 0.05, "after_handler": True,
                                  "path": "/orders$"}, None),
        ("POST", A + "/orders", LIMIT, None),
        ("POST", "/_sim/faults", {"kind": "latency", "seconds": 0.02, "count": -1,
                                  "path": "^/symbols"}, None),
        ("GET", "/symbols/search/A", None, None),
        ("GET", "/symbols/search/M", None, None),
        ("GET", "/_sim/state", None, None),
        ("DELETE", "/_sim/faults", None, None),
        ("GET", A + "/orders/live", None, None),
        ("advance", 901, None, None),
        ("GET", "/customers/me", None, None),
        ("POST", "/oauth/token", {"grant_type": "refresh_token", "refresh_token": "r",
                                  "client_secret": "s"}, None),
        ("GET", A + "/balances", None, None),
        ("GET", "/_sim/state", None, None),
    ]  # fmt: skip
    return reqs


async def _run_rest_session(base: str, reqs: list[Req], server: RestSimServer) -> list[list[Any]]:
    out: list[list[Any]] = []
    token = ""
    async with aiohttp.ClientSession(skip_auto_headers=["User-Agent"]) as http:
        http._retry_connection = False  # a dropped idempotent request must show, not be retried
        for i, (method, path, body, extra) in enumerate(reqs):
            if method == "advance":
                _Wall.offset += float(path)
                continue
            headers = {"User-Agent": "golden/1.0"}
            if token and extra != "noauth":
                headers["Authorization"] = f"Bearer {token}"
            if extra == "noua":
                del headers["User-Agent"]
            elif isinstance(extra, dict):
                headers.update(extra)
            kw: dict[str, Any] = {"headers": headers, "allow_redirects": False}
            if isinstance(body, str):
                kw["data"] = body.encode()
            elif body is not None:
                kw["json"] = body
            try:
                async with http.request(method, base + path, **kw) as r:
                    text = await r.text()
                    out.append([i, method, path, r.status, r.content_type, text])
            except aiohttp.ClientError:
                out.append([i, method, path, "dropped"])
                continue
            if path == "/oauth/token" and r.status == 200:
                token = json.loads(text)["access_token"]
        out.append(["summary", server.state.summary()])
    return out


async def _run_rest() -> list[list[Any]]:
    out: list[list[Any]] = []
    with _frozen_wall():
        # orders fill against a market frozen at the frozen wall time (issue 16)
        market = StandaloneMarket(seed=SEED, clock=ManualClock(int(FROZEN.timestamp() * 1000)))
        srv = RestSimServer(
            "ws://127.0.0.1:9/realtime", token_ttl=900, market=market, tick_interval=None
        )
        base = await srv.start()
        try:
            out += await _run_rest_session(base, _rest_requests(), srv)
            f = srv.add_fault("status", status=504, count=1, path="^/customers/me$")
            out.append(["add_fault", repr(f)])
            out += await _run_rest_session(
                base,
                [
                    ("POST", "/oauth/token", {"grant_type": "refresh_token",
                                              "refresh_token": "r", "client_secret": "s"}, None),
                    ("GET", "/customers/me", None, None),
                    ("GET", "/customers/me", None, None),
                ],
                srv,
            )  # fmt: skip
            try:
                srv.add_fault("boom")  # type: ignore[arg-type]
            except ValueError as exc:
                out.append(["add_fault", str(exc)])
            srv.clear_faults()
        finally:
            await srv.stop()
        srv = RestSimServer(
            credentials=("sec", "ref"), account_numbers=("5WT1",), market=market,
            tick_interval=None,
        )  # fmt: skip
        base = await srv.start()
        try:
            grant = {"grant_type": "refresh_token", "refresh_token": "ref", "client_secret": "x"}
            out += await _run_rest_session(
                base,
                [
                    ("POST", "/oauth/token", grant, None),
                    ("POST", "/oauth/token", {**grant, "client_secret": "sec"}, None),
                    ("GET", "/customers/me/accounts", None, None),
                    ("GET", "/api-quote-tokens", None, None),
                ],
                srv,
            )
        finally:
            await srv.stop()
    return out


# ====================================================================================== compare


def _load(name: str) -> list[list[Any]]:
    path = GOLDEN / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _save(name: str, rows: list[list[Any]]) -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (GOLDEN / name).write_text(text, encoding="utf-8")


def _compare(got: list[list[Any]], want: list[list[Any]], what: str) -> None:
    for k, (g, w) in enumerate(zip(got, want, strict=False)):
        assert g == w, f"{what}: entry {k} differs\n got: {g!r:.2000}\nwant: {w!r:.2000}"
    assert len(got) == len(want), f"{what}: {len(got)} entries, golden has {len(want)}"


@pytest.mark.parametrize("sc", DX_SCENARIOS, ids=lambda s: s.name)
async def test_dxlink_golden(sc: DxScenario) -> None:
    name = f"dxlink_{sc.name}.jsonl"
    if RECORD:
        _save(name, await _run_dx(sc, None))
        return
    want = _load(name)
    got = await _run_dx(sc, [w for w in want if isinstance(w[0], int)])
    _compare(got, want, sc.name)


async def test_rest_golden() -> None:
    got = await _run_rest()
    if RECORD:
        _save("rest.jsonl", got)
        return
    _compare(got, _load("rest.jsonl"), "rest")
