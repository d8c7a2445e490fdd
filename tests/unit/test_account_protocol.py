"""The sans-IO account-stream protocol (spec §7) against the documented frames.

tests/data/account_stream_client/ holds the spec's examples (first line: provenance, then the
JSON): connect/heartbeat requests and acks, the connect error, Order / CurrentPosition /
AccountBalance notifications.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ttfast.account import ExternalTransaction, OrderChain
from ttfast.account.protocol import (
    AccountProtocol,
    Ack,
    ActionFailed,
    Connected,
    ConnectRejected,
    Malformed,
    Notification,
    ProtocolState,
)
from ttfast.rest.models import Balance, Order, Position

DATA = Path(__file__).resolve().parents[1] / "data" / "account_stream_client"


def example(name: str) -> Any:
    text = (DATA / f"account_streamer.{name}.json").read_text()
    return json.loads(text.partition("\n")[2])


def frame(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def connected(accounts: tuple[str, ...] = ("5WT00000",)) -> AccountProtocol:
    p = AccountProtocol(accounts)
    p.connection_made("tok")
    p.take_outgoing()
    p.receive(frame({"status": "ok", "action": "connect", "request-id": 1, "value": []}))
    p.take_outgoing()
    return p


def test_connect_message_has_the_documented_shape() -> None:
    p = AccountProtocol(["5WT00000", "5WT00001"])
    rid = p.connection_made("secret-token")
    (msg,) = p.take_outgoing()
    got = json.loads(msg)
    want = example("connect.ws_out")
    assert got["action"] == want["action"] == "connect"
    assert got["value"] == want["value"]
    assert got["auth-token"] == "Bearer secret-token"  # the REST Authorization value
    assert got["request-id"] == rid
    assert set(want) <= set(got)
    assert "secret-token" not in repr(p)


def test_heartbeat_only_after_the_connect_ack_and_with_the_current_token() -> None:
    p = AccountProtocol(["5WT00000"])
    p.connection_made("t1")
    p.take_outgoing()
    assert p.heartbeat() is None and p.take_outgoing() == []  # before the ack: not sent
    ack = example("connect_ack.ws_in")  # documented without a request-id: matched by action
    evs = p.receive(frame(ack))
    assert [type(e) for e in evs] == [Ack, Connected]
    assert isinstance(evs[1], Connected)
    assert evs[1].session_id == "5b6e2799"
    assert evs[1].accounts == ("SENTINEL-5WX00042",)
    assert p.state is ProtocolState.CONNECTED and p.pending == {}
    p.set_auth("t2")
    rid = p.heartbeat()
    (hb,) = p.take_outgoing()
    want = example("heartbeat.ws_out")
    got = json.loads(hb)
    assert set(want) <= set(got) and "value" not in got
    assert got["auth-token"] == "Bearer t2" and got["request-id"] == rid
    evs = p.receive(frame({**example("heartbeat_ack.ws_in"), "request-id": rid}))
    assert evs == [Ack("heartbeat", rid, "13ec76b6", None)]
    assert p.pending == {}


def test_acks_are_matched_by_request_id_out_of_order() -> None:
    p = connected()
    a = p.subscribe("public-watchlists-subscribe")
    b = p.subscribe("quote-alerts-subscribe")
    assert a is not None and b is not None
    assert p.pending == {a: "public-watchlists-subscribe", b: "quote-alerts-subscribe"}
    evs = p.receive(frame({"status": "ok", "action": "quote-alerts-subscribe", "request-id": b}))
    assert evs == [Ack("quote-alerts-subscribe", b, None, None)]
    evs = p.receive(
        frame({"status": "error", "action": "public-watchlists-subscribe", "request-id": a,
               "message": "nope"})
    )  # fmt: skip
    assert evs == [ActionFailed("public-watchlists-subscribe", a, "nope")]
    assert p.pending == {}


def test_subscriptions_wait_for_the_connect_ack_and_are_replayed_on_every_connection() -> None:
    p = AccountProtocol(["5WT00000"])
    assert p.subscribe("quote-alerts-subscribe") is None  # not connected: remembered
    p.subscribe("user-message-subscribe", "U0001")
    for _ in range(2):
        p.connection_made("t")
        assert [json.loads(m)["action"] for m in p.take_outgoing()] == ["connect"]
        p.receive(frame({"status": "ok", "action": "connect", "value": ["5WT00000"]}))
        sent = [json.loads(m) for m in p.take_outgoing()]
        assert [m["action"] for m in sent] == ["quote-alerts-subscribe", "user-message-subscribe"]
        assert "value" not in sent[0] and sent[1]["value"] == "U0001"
        p.connection_lost()
        assert p.state is ProtocolState.IDLE


def test_connect_not_completed_is_not_fatal_but_a_connect_error_is() -> None:
    p = AccountProtocol(["5WT00000"])
    p.connection_made("t")
    evs = p.receive(frame(example("connect_error.ws_in")))  # connect-not-completed
    assert [type(e) for e in evs] == [ActionFailed]
    p.connection_made("t")
    evs = p.receive(frame({"status": "error", "action": "connect", "message": "invalid token"}))
    assert evs == [ConnectRejected("connect", "invalid token")]
    assert p.state is ProtocolState.IDLE


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("order_notification.ws_in", Order),
        ("current_position_notification.ws_in.derived", Position),
        ("account_balance_notification.ws_in.derived", Balance),
    ],
)
def test_documented_notifications_decode_to_models(name: str, model: type) -> None:
    p = connected()
    (ev,) = p.receive(frame(example(name)))
    assert isinstance(ev, Notification)
    assert isinstance(ev.data, model)
    assert ev.timestamp == 1688595114405 and ev.source == "stream"
    assert ev.data.raw == example(name)["data"]


def test_order_notification_fields() -> None:
    p = connected()
    (ev,) = p.receive(frame(example("order_notification.ws_in")))
    o = ev.data  # type: ignore[union-attr]
    assert isinstance(o, Order)
    assert o.status == "Filled" and o.id == 1
    assert o.updated_at == 1688584052750  # epoch ms on the stream
    assert o.legs is not None and o.legs[0].fills is not None
    assert o.legs[0].fills[0].fill_price == Decimal("100.0")
    assert o.legs[0].remaining_quantity == 0


def test_results_batches_unknown_types_and_bad_items() -> None:
    p = connected()
    batch = {
        "results": [
            example("order_notification.ws_in"),
            {"type": "QuoteAlert", "data": {"symbol": "SPY"}, "timestamp": 5},
            {"type": "ExternalTransaction", "data": {"id": 3, "amount": "10.5"}},
            {"type": "OrderChain", "data": {"id": 9, "underlying-symbol": "SPY"}},
            {"type": "QuoteAlert", "data": {"symbol": "QQQ"}},
            {"status": "ok", "action": "heartbeat", "request-id": 77},
            "junk",
            {"type": "Order", "data": {"id": "not-a-number"}},
        ]
    }
    evs = p.receive(frame(batch))
    kinds = [type(e).__name__ for e in evs]
    assert kinds == [
        "Notification",
        "Notification",
        "Notification",
        "Notification",
        "Notification",
        "Ack",
        "Malformed",
        "Malformed",
    ]
    assert isinstance(evs[1], Notification) and evs[1].data == {"symbol": "SPY"}
    assert isinstance(evs[2], Notification) and isinstance(evs[2].data, ExternalTransaction)
    assert evs[2].data.amount == Decimal("10.5")
    assert isinstance(evs[3], Notification) and isinstance(evs[3].data, OrderChain)
    assert p.stats.unknown_types == {"QuoteAlert": 2}
    assert p.stats.decode_errors == 2
    assert p.stats.notifications == 6


@pytest.mark.parametrize("payload", [b"{", b"[1,2]", b'{"results": 5}', b'{"foo": 1}', b"\xff"])
def test_malformed_frames_are_reported_and_counted(payload: bytes) -> None:
    p = connected()
    evs = p.receive(payload)
    assert len(evs) == 1 and isinstance(evs[0], Malformed)
    assert p.stats.decode_errors == 1


def test_no_account_is_an_error() -> None:
    with pytest.raises(ValueError):
        AccountProtocol([])
