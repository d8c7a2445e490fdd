"""Unit tests of the sans-IO dxLink client state machine (no sockets)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttfast.dxlink.protocol import (
    CANDLE_FIELDS,
    DEFAULT_EVENT_FIELDS,
    Authorized,
    AuthRejected,
    Backoff,
    ChannelClosed,
    ChannelOpened,
    ConnectionFatal,
    DxLinkProtocol,
    FeedConfigReceived,
    MalformedMessage,
    Phase,
    ServerError,
    ServerSetup,
    build_candle_symbol,
    decode_control,
    subscription_messages,
    to_epoch_ms,
)

SERVER_SETUP = {
    "type": "SETUP",
    "channel": 0,
    "keepaliveTimeout": 60,
    "acceptKeepaliveTimeout": 60,
    "version": "1.0-1.2.1-20240722-153442",
}
UNAUTH = {"type": "AUTH_STATE", "channel": 0, "state": "UNAUTHORIZED"}
AUTHED = {"type": "AUTH_STATE", "channel": 0, "state": "AUTHORIZED", "userId": "u1"}


def out(p: DxLinkProtocol) -> list[dict[str, Any]]:
    return [json.loads(b) for b in p.take_outgoing()]


def paced(p: DxLinkProtocol) -> list[dict[str, Any]]:
    res = []
    while (item := p.take_paced()) is not None:
        sym, b = item
        m = json.loads(b)
        assert m["add"][0]["symbol"] == sym
        res.append(m)
    return res


def handshake(p: DxLinkProtocol, token: str = "tok") -> list[dict[str, Any]]:
    p.connection_made(token)
    sent = out(p)
    p.receive(SERVER_SETUP)
    p.receive(UNAUTH)
    sent += out(p)
    p.receive(AUTHED)
    sent += out(p)
    return sent


def test_setup_exact_and_first() -> None:
    p = DxLinkProtocol()
    p.connection_made("secret")
    assert out(p) == [
        {
            "type": "SETUP",
            "channel": 0,
            "version": "0.1-DXF-JS/0.3.0",
            "keepaliveTimeout": 60.0,
            "acceptKeepaliveTimeout": 60.0,
        }
    ]
    assert p.phase is Phase.SETUP_SENT


def test_auth_waits_for_server_setup_and_sent_once() -> None:
    p = DxLinkProtocol()
    p.subscribe("Quote", ["SPY"])
    p.connection_made("secret")
    out(p)
    ev = p.receive(SERVER_SETUP)
    assert ev == [ServerSetup(60.0, 60.0, "1.0-1.2.1-20240722-153442")]
    assert out(p) == [{"type": "AUTH", "channel": 0, "token": "secret"}]
    # the initial UNAUTHORIZED is not a rejection and does not resend AUTH
    assert p.receive(UNAUTH) == []
    assert out(p) == []
    assert p.phase is Phase.AUTH_SENT


def test_auth_on_auth_state_if_setup_missing() -> None:
    p = DxLinkProtocol()
    p.connection_made("t")
    out(p)
    p.receive(UNAUTH)
    assert out(p) == [{"type": "AUTH", "channel": 0, "token": "t"}]


def test_nothing_before_authorized() -> None:
    p = DxLinkProtocol()
    p.connection_made("t")
    p.receive(SERVER_SETUP)
    p.subscribe("Quote", ["SPY"])
    p.subscribe_candle_symbols({"SPY{=5m}": 1_700_000_000_000})
    msgs = out(p)
    assert [m["type"] for m in msgs] == ["SETUP", "AUTH"]
    assert p.take_paced() is None


def test_full_sequence_after_authorized() -> None:
    p = DxLinkProtocol(aggregation_period=0.25)
    p.subscribe("Quote", ["SPY", "AAPL"])
    p.subscribe("Trade", ["SPY"])
    sent = handshake(p)
    assert [m["type"] for m in sent] == ["SETUP", "AUTH", "CHANNEL_REQUEST"]
    assert sent[2] == {
        "type": "CHANNEL_REQUEST",
        "channel": 1,
        "service": "FEED",
        "parameters": {"contract": "AUTO"},
    }
    ev = p.receive(
        {
            "type": "CHANNEL_OPENED",
            "channel": 1,
            "service": "FEED",
            "parameters": {"contract": "AUTO", "subFormat": "LIST"},
        }
    )
    assert ev == [ChannelOpened(1, {"contract": "AUTO", "subFormat": "LIST"})]
    fs, sub = out(p)
    assert fs["type"] == "FEED_SETUP" and fs["channel"] == 1
    assert fs["acceptDataFormat"] == "COMPACT"
    assert fs["acceptAggregationPeriod"] == 0.25
    assert fs["acceptEventFields"]["Quote"] == list(DEFAULT_EVENT_FIELDS["Quote"])
    assert "Candle" not in fs["acceptEventFields"]
    for fields in fs["acceptEventFields"].values():
        assert fields[0] == "eventType" and "eventSymbol" in fields
    assert sub == {
        "type": "FEED_SUBSCRIPTION",
        "channel": 1,
        "reset": True,
        "add": [
            {"type": "Quote", "symbol": "SPY"},
            {"type": "Quote", "symbol": "AAPL"},
            {"type": "Trade", "symbol": "SPY"},
        ],
    }


def test_candles_go_to_history_channel_one_per_message() -> None:
    p = DxLinkProtocol()
    p.subscribe_candle_symbols({"SPY{=5m}": 1_700_000_000_000, "QQQ{=5m}": 1_700_000_000_000})
    sent = handshake(p)
    assert sent[-1] == {
        "type": "CHANNEL_REQUEST",
        "channel": 3,
        "service": "FEED",
        "parameters": {"contract": "HISTORY"},
    }
    p.receive({"type": "CHANNEL_OPENED", "channel": 3, "parameters": {"contract": "HISTORY"}})
    fs, reset = out(p)
    assert fs["acceptEventFields"] == {"Candle": list(CANDLE_FIELDS)}
    assert "vwap" in fs["acceptEventFields"]["Candle"]
    assert reset == {"type": "FEED_SUBSCRIPTION", "channel": 3, "reset": True}
    assert paced(p) == [
        {
            "type": "FEED_SUBSCRIPTION",
            "channel": 3,
            "add": [{"type": "Candle", "symbol": "SPY{=5m}", "fromTime": 1_700_000_000_000}],
        },
        {
            "type": "FEED_SUBSCRIPTION",
            "channel": 3,
            "add": [{"type": "Candle", "symbol": "QQQ{=5m}", "fromTime": 1_700_000_000_000}],
        },
    ]


def test_candle_remove_keeps_from_time() -> None:
    p = DxLinkProtocol()
    p.subscribe_candle_symbols({"SPY{=5m}": 1_700_000_000_000})
    handshake(p)
    p.receive({"type": "CHANNEL_OPENED", "channel": 3})
    out(p)
    paced(p)
    p.unsubscribe("Candle", ["SPY{=5m}"])
    assert out(p) == [
        {
            "type": "FEED_SUBSCRIPTION",
            "channel": 3,
            "remove": [{"type": "Candle", "symbol": "SPY{=5m}", "fromTime": 1_700_000_000_000}],
        }
    ]


def test_candle_contract_configurable() -> None:
    p = DxLinkProtocol(candle_contract="AUTO")
    p.subscribe_candle_symbols({"SPY{=5m}": 1_700_000_000_000})
    sent = handshake(p)
    assert sent[-1]["parameters"] == {"contract": "AUTO"}


def test_live_subscribe_unsubscribe_and_dedup() -> None:
    p = DxLinkProtocol()
    p.subscribe("Quote", ["SPY"])
    handshake(p)
    p.receive({"type": "CHANNEL_OPENED", "channel": 1})
    out(p)
    p.subscribe("Quote", ["SPY", "QQQ"])
    assert out(p) == [
        {"type": "FEED_SUBSCRIPTION", "channel": 1, "add": [{"type": "Quote", "symbol": "QQQ"}]}
    ]
    p.unsubscribe("Quote", ["SPY", "NOPE"])
    assert out(p) == [
        {"type": "FEED_SUBSCRIPTION", "channel": 1, "remove": [{"type": "Quote", "symbol": "SPY"}]}
    ]
    p.subscribe("Quote", [])
    assert out(p) == []


def test_first_subscription_after_auth_requests_channel_once() -> None:
    p = DxLinkProtocol()
    handshake(p)
    p.subscribe("Quote", ["SPY"])
    p.subscribe("Quote", ["QQQ"])
    msgs = out(p)
    assert [m["type"] for m in msgs] == ["CHANNEL_REQUEST"]  # not twice (I-TW113)
    p.receive({"type": "CHANNEL_OPENED", "channel": 1})
    _, sub = out(p)
    assert sub["add"] == [{"type": "Quote", "symbol": "SPY"}, {"type": "Quote", "symbol": "QQQ"}]


def test_reconnect_replays_everything_with_resume_time() -> None:
    p = DxLinkProtocol()
    p.subscribe("Quote", ["SPY"])
    p.subscribe_candle_symbols({"SPY{=5m}": 1_700_000_000_000})
    handshake(p)
    p.receive({"type": "CHANNEL_OPENED", "channel": 1})
    p.receive({"type": "CHANNEL_OPENED", "channel": 3})
    out(p)
    paced(p)
    p.connection_lost()
    assert p.phase is Phase.IDLE
    p.set_candle_from_time("SPY{=5m}", 1_700_000_300_000)
    sent = handshake(p, token="fresh")
    assert sent[1] == {"type": "AUTH", "channel": 0, "token": "fresh"}
    assert [m["channel"] for m in sent if m["type"] == "CHANNEL_REQUEST"] == [1, 3]
    p.receive({"type": "CHANNEL_OPENED", "channel": 1})
    p.receive({"type": "CHANNEL_OPENED", "channel": 3})
    msgs = out(p)
    assert [m["type"] for m in msgs] == [
        "FEED_SETUP",
        "FEED_SUBSCRIPTION",
        "FEED_SETUP",
        "FEED_SUBSCRIPTION",
    ]
    assert msgs[1]["reset"] is True and msgs[1]["add"] == [{"type": "Quote", "symbol": "SPY"}]
    assert paced(p)[0]["add"][0]["fromTime"] == 1_700_000_300_000


def test_auth_rejected_is_fatal_with_refresh() -> None:
    p = DxLinkProtocol()
    p.connection_made("bad")
    p.receive(SERVER_SETUP)
    p.receive(UNAUTH)
    ev = p.receive(UNAUTH)
    assert ev == [AuthRejected(), ConnectionFatal("AUTH rejected", refresh_token=True)]


def test_errors_classified() -> None:
    p = DxLinkProtocol()
    handshake(p)
    ev = p.receive(
        {"type": "ERROR", "channel": 0, "error": "TIMEOUT", "message": "The timeout has been"}
    )
    assert isinstance(ev[0], ServerError) and isinstance(ev[1], ConnectionFatal)
    assert ev[1].refresh_token is False
    ev = p.receive({"type": "ERROR", "channel": 0, "error": "UNAUTHORIZED", "message": "x"})
    assert isinstance(ev[1], ConnectionFatal) and ev[1].refresh_token
    ev = p.receive(
        {
            "type": "ERROR",
            "channel": 3,
            "error": "BAD_ACTION",
            "message": "Your subscription rate is too high",
        }
    )
    assert len(ev) == 1 and isinstance(ev[0], ServerError) and ev[0].rate_limited


def test_unexpected_channel_closed_reopens() -> None:
    p = DxLinkProtocol()
    p.subscribe("Quote", ["SPY"])
    handshake(p)
    p.receive({"type": "CHANNEL_OPENED", "channel": 1})
    out(p)
    ev = p.receive({"type": "CHANNEL_CLOSED", "channel": 1})
    assert ev == [ChannelClosed(1, expected=False)]
    assert [m["type"] for m in out(p)] == ["CHANNEL_REQUEST"]


def test_feed_config_layouts_merge() -> None:
    p = DxLinkProtocol()
    handshake(p)
    m1 = {"type": "FEED_CONFIG", "channel": 1, "dataFormat": "COMPACT", "aggregationPeriod": 0.1}
    assert p.receive(m1) == [FeedConfigReceived(1, m1)]
    p.receive({"type": "FEED_CONFIG", "channel": 1, "eventFields": {"Quote": ["eventSymbol"]}})
    p.receive({"type": "FEED_CONFIG", "channel": 1, "eventFields": {"Trade": ["eventSymbol"]}})
    assert p.layouts[1] == {"Quote": ["eventSymbol"], "Trade": ["eventSymbol"]}


def _kinds(evs: list[Any]) -> list[str]:
    return [type(e).__name__ for e in evs]


@pytest.mark.parametrize(
    "bad",
    [
        {"Quote": ["eventSymbol", "bidPrice", "bidPrice"]},  # duplicate field
        {"Quote": ["eventSymbol", 5]},  # non-string field
        {"Quote": ["eventSymbol", None]},
        {"Quote": "eventSymbol"},  # not a list
        ["Quote"],  # eventFields not an object
        "Quote",
        7,
    ],
)
def test_malformed_feed_config_keeps_last_good_layout(bad: Any) -> None:
    p = DxLinkProtocol()
    handshake(p)
    good = {"type": "FEED_CONFIG", "channel": 1, "eventFields": {"Quote": ["eventSymbol"]}}
    assert p.receive(good) == [FeedConfigReceived(1, good)]
    msg = {"type": "FEED_CONFIG", "channel": 1, "dataFormat": "COMPACT", "eventFields": bad}
    ev: list[Any] = p.receive(msg)
    assert _kinds(ev) == ["MalformedMessage", "FeedConfigReceived"]
    assert ev[0].channel == 1 and "FEED_CONFIG" in ev[0].detail
    # what the decoder is given holds no malformed layout (dataFormat etc. still apply)
    assert ev[1] == FeedConfigReceived(1, {"type": "FEED_CONFIG", "channel": 1,
                                           "dataFormat": "COMPACT"})  # fmt: skip
    assert p.layouts[1] == {"Quote": ["eventSymbol"]}


def test_malformed_feed_config_entry_is_per_type() -> None:
    p = DxLinkProtocol()
    handshake(p)
    ev: list[Any] = p.receive(
        {
            "type": "FEED_CONFIG",
            "channel": 1,
            "eventFields": {"Quote": ["eventSymbol", 1], "Trade": ["eventSymbol", "price"]},
        }
    )
    assert _kinds(ev) == ["MalformedMessage", "FeedConfigReceived"]
    assert "'Quote'" in ev[0].detail and "Trade" not in ev[0].detail
    assert ev[1].message["eventFields"] == {"Trade": ["eventSymbol", "price"]}
    assert p.layouts[1] == {"Trade": ["eventSymbol", "price"]}


_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["a", "b", "eventSymbol", ""])
)
_field_lists = st.lists(
    st.one_of(st.sampled_from(["eventSymbol", "bidPrice", "askPrice", "x"]), _json_leaf),
    max_size=5,
)
_event_fields = st.one_of(
    _json_leaf,
    st.lists(_json_leaf, max_size=3),
    st.dictionaries(
        st.sampled_from(["Quote", "Trade", "Candle", "Zzz"]),
        st.one_of(_field_lists, _json_leaf),
        max_size=4,
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_event_fields, min_size=1, max_size=4))
def test_feed_config_protocol_and_decoder_layouts_agree(configs: list[Any]) -> None:
    """Whatever the server sends as eventFields, the protocol's layouts and the decoder's
    (configured from what the protocol hands on) are the same, and the decoder never raises."""
    from ttfast._core import FeedDecoder

    p = DxLinkProtocol()
    handshake(p)
    dec = FeedDecoder()
    for ef in configs:
        msg = {"type": "FEED_CONFIG", "channel": 1, "eventFields": ef}
        evs = p.receive(msg)
        ok = ef is None or (
            isinstance(ef, dict)
            and all(
                isinstance(v, list) and all(isinstance(f, str) for f in v) and len(set(v)) == len(v)
                for v in ef.values()
            )
        )
        assert any(isinstance(e, MalformedMessage) for e in evs) is not ok
        for e in evs:
            if isinstance(e, FeedConfigReceived):
                dec.configure(e.message)
        assert {t: tuple(f) for t, f in p.layouts[1].items()} == dec.layouts


@pytest.mark.parametrize(
    "msg",
    [
        {"type": "AUTH_STATE", "channel": 0, "state": 42},
        {"type": "AUTH_STATE", "channel": 0},
        {"type": "AUTH_STATE", "channel": 0, "state": "MAYBE"},
        {"type": "AUTH_STATE", "channel": 0, "state": ["AUTHORIZED"]},
    ],
)
def test_auth_state_garbage_is_malformed_and_changes_nothing(msg: dict[str, Any]) -> None:
    p = DxLinkProtocol()
    p.subscribe("Quote", ["SPY"])
    p.connection_made("t")
    out(p)
    p.receive(SERVER_SETUP)
    assert [m["type"] for m in out(p)] == ["AUTH"]
    ev: list[Any] = p.receive(msg)
    assert _kinds(ev) == ["MalformedMessage"] and "AUTH_STATE" in ev[0].detail
    assert p.phase == Phase.AUTH_SENT and out(p) == []
    assert p.receive(AUTHED) == [Authorized("u1")]  # the handshake still completes
    ev = p.receive(msg)  # and garbage after AUTHORIZED does not undo it
    assert _kinds(ev) == ["MalformedMessage"]
    assert p.phase.value == "authorized"  # (.value: mypy narrowed phase above)


def test_unknown_message_type_is_malformed() -> None:
    p = DxLinkProtocol()
    handshake(p)
    assert p.receive({"type": "KEEPALIVE", "channel": 0}) == []
    ev = p.receive({"type": "BOGUS", "channel": 5})
    assert ev == [MalformedMessage(5, "unexpected message type 'BOGUS'")]


@pytest.mark.parametrize("bad", ["soon", -1, 0, None, True, [60], float("nan"), float("inf")])
def test_setup_bad_keepalive_timeouts(bad: Any) -> None:
    p = DxLinkProtocol()
    p.connection_made("t")
    ev: list[Any] = p.receive(
        {**SERVER_SETUP, "keepaliveTimeout": 20, "acceptKeepaliveTimeout": 10}
    )
    assert p.server_keepalive_timeout == 20.0 and p.server_accept_keepalive_timeout == 10.0
    ev = p.receive({**SERVER_SETUP, "keepaliveTimeout": bad, "acceptKeepaliveTimeout": bad})
    if bad is None:  # null = not given: nothing malformed, nothing changes
        assert _kinds(ev) == ["ServerSetup"]
    else:
        assert _kinds(ev) == ["MalformedMessage", "ServerSetup"]
        assert isinstance(ev[0], MalformedMessage) and "keepaliveTimeout" in ev[0].detail
    # the last good values stay
    assert p.server_keepalive_timeout == 20.0 and p.server_accept_keepalive_timeout == 10.0
    assert ev[-1] == ServerSetup(20.0, 10.0, "1.0-1.2.1-20240722-153442")
    p.connection_made("t")  # a new connection forgets them
    ev = p.receive({**SERVER_SETUP, "keepaliveTimeout": bad, "acceptKeepaliveTimeout": 2.5})
    assert p.server_keepalive_timeout is None and p.server_accept_keepalive_timeout == 2.5


def test_oversized_subscription_entry_rejected_before_it_is_stored() -> None:
    # an entry that cannot fit any frame must fail at subscribe time, not later while the
    # server's CHANNEL_OPENED is handled (where it would raise out of the frame handler)
    p = DxLinkProtocol()
    with pytest.raises(ValueError, match="too large"):
        p.subscribe("Quote", ["SPY", "X" * 9000])
    with pytest.raises(ValueError, match="too large"):
        p.subscribe_candle_symbols({"Y" * 9000 + "{=5m}": 1_700_000_000_000})
    assert p.subscriptions == {1: {}, 3: {}}
    handshake(p)
    assert out(p) == []  # nothing stored, no channel requested


def test_custom_fields_get_event_type_and_need_symbol() -> None:
    p = DxLinkProtocol(event_fields={"Quote": ["eventSymbol", "bidPrice"]})
    assert p.event_fields["Quote"] == ("eventType", "eventSymbol", "bidPrice")
    with pytest.raises(ValueError, match="eventSymbol"):
        DxLinkProtocol(event_fields={"Quote": ["bidPrice"]})
    with pytest.raises(ValueError, match="unknown event type"):
        p.subscribe("Bogus", ["X"])
    with pytest.raises(ValueError, match="subscribe_candles"):
        p.subscribe("Candle", ["X"])


@settings(max_examples=60, deadline=None)
@given(
    syms=st.lists(
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./:", min_size=1, max_size=40),
        min_size=0,
        max_size=900,
    ),
    reset=st.booleans(),
    limit=st.sampled_from([200, 1024, 8192]),
)
def test_chunking_property(syms: list[str], reset: bool, limit: int) -> None:
    entries = [{"type": "TimeAndSale", "symbol": s} for s in syms]
    msgs = subscription_messages(5, entries, reset=reset, limit=limit)
    got: list[dict[str, Any]] = []
    for i, raw in enumerate(msgs):
        assert len(raw) <= limit
        m = json.loads(raw)
        assert list(m)[:2] == ["type", "channel"]
        assert m.get("reset", False) == (reset and i == 0)
        got += m.get("add", [])
    assert got == entries
    assert len(msgs) >= (1 if reset or entries else 0)


def test_chunking_big_chain_8k() -> None:
    entries = [{"type": "Quote", "symbol": f".SPXW260116C{5000 + i}"} for i in range(3000)]
    msgs = subscription_messages(1, entries, reset=True)
    assert all(len(m) <= 8192 for m in msgs)
    assert len(msgs) > 10
    with pytest.raises(ValueError, match="too large"):
        subscription_messages(1, [{"type": "Quote", "symbol": "X" * 9000}])


@pytest.mark.parametrize(
    ("args", "kw", "want"),
    [
        (("SPY", "5m"), {}, "SPY{=5m}"),
        (("AAPL", "1d"), {}, "AAPL{=d}"),
        (("AAPL", "d"), {}, "AAPL{=d}"),
        (("AAPL", "1H"), {}, "AAPL{=h}"),
        (("IBM", "1mo"), {}, "IBM{=mo}"),
        (("QQQ", "15s"), {"extended_hours": False}, "QQQ{=15s,tho=true}"),
        (("/ESU24:XCME", "1600t"), {}, "/ESU24:XCME{=1600t}"),
        (("EUR/USD", "m"), {"price": "BID"}, "EUR/USD{=m,price=bid}"),
        (("SPY", "1.5h"), {}, "SPY{=1.5h}"),
        (("SPY", "2.0m"), {"price": "last"}, "SPY{=2m}"),
    ],
)
def test_build_candle_symbol(args: tuple[str, str], kw: dict[str, Any], want: str) -> None:
    assert build_candle_symbol(*args, **kw) == want


@pytest.mark.parametrize("bad", ["", "5", "5x", "0m", "-1m"])
def test_build_candle_symbol_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        build_candle_symbol("SPY", bad)
    with pytest.raises(ValueError):
        build_candle_symbol("SPY{=5m}", "5m")


def test_to_epoch_ms() -> None:
    dt = datetime(2025, 8, 27, 11, 15, tzinfo=UTC)
    assert to_epoch_ms(dt) == 1756293300000
    assert to_epoch_ms(dt.replace(tzinfo=None)) == 1756293300000
    assert to_epoch_ms(dt.astimezone(timezone(timedelta(hours=-4)))) == 1756293300000
    assert to_epoch_ms(1756293300000) == 1756293300000
    with pytest.raises(ValueError, match="seconds"):
        to_epoch_ms(1756293300)
    with pytest.raises(TypeError):
        to_epoch_ms(1.5e12)  # type: ignore[arg-type]


def test_one_backoff_and_one_runner_for_all_of_ttfast() -> None:
    import ttfast._retry
    import ttfast._run
    import ttfast.dxlink

    assert Backoff is ttfast._retry.Backoff and ttfast.dxlink.run is ttfast._run.run


def test_backoff_schedule() -> None:
    b = Backoff(base=1.0, cap=8.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(8)]
    caps = [1, 2, 4, 8, 8, 8, 8, 8]
    for d, c in zip(delays, caps, strict=True):
        assert c / 2 <= d <= c
    assert len({round(d, 9) for d in delays[3:]}) > 1  # jitter
    b.reset()
    assert b.next_delay() <= 1.0


def test_decode_control() -> None:
    assert decode_control(b'{"type":"KEEPALIVE","channel":0}')["type"] == "KEEPALIVE"
    with pytest.raises(ValueError):
        decode_control(b"[1,2]")
    with pytest.raises(ValueError):
        decode_control(b"{not json")


def test_authorized_event() -> None:
    p = DxLinkProtocol()
    p.connection_made("t")
    p.receive(SERVER_SETUP)
    assert p.receive(AUTHED) == [Authorized("u1")]
    assert p.receive(AUTHED) == []  # duplicate ignored


@pytest.mark.parametrize(
    ("sym", "period", "ext"),
    [("SPY", "5m", True), ("AAPL", "1d", True), ("QQQ", "1h", False), ("IBM", "2mo", True),
     ("/ESU24:XCME", "1600t", True), ("SPY", "15s", False)],
)  # fmt: skip
def test_built_candle_symbol_is_already_normalized(sym: str, period: str, ext: bool) -> None:
    from ttfast.candles import normalize_candle_symbol

    built = build_candle_symbol(sym, period, extended_hours=ext)
    assert normalize_candle_symbol(built) == built
