"""Account-stream notifications: one text frame -> typed models, ttfast vs the tastytrade SDK.

ttfast: `AccountProtocol.receive(frame)` (msgspec decode + lenient `msgspec.convert` into
`ttfast.rest.models`, what `AccountStreamer` does on every frame). The SDK: what its
`AlertStreamer` does per message: `json.loads` of the frame, then ``MAP_ALERTS[type](**data)``
(pydantic). Same documented frames for both (tests/data/account_stream_client/: an Order and a
CurrentPosition notification, what a bot waits for on a fill; the Order's ``user-id`` as a
string, which the SDK's model requires. The documented AccountBalance frame lacks 14 fields the
SDK's model requires, so it is not in the comparison).

    .venv/bin/python -m pytest bench/bench_account.py --benchmark-enable
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.gatelib import RatioCase
from ttfast.account.protocol import AccountProtocol

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "account_stream_client"
KINDS = ("order", "current_position")


def _frames() -> list[bytes]:
    out = []
    for kind in KINDS:
        name = f"account_streamer.{kind}_notification.ws_in"
        path = next(DATA.glob(name + "*.json"))
        body = json.loads(path.read_text(encoding="utf-8").partition("\n")[2])
        if "user-id" in body["data"]:  # documented as a number; the SDK's model wants a string
            body["data"]["user-id"] = str(body["data"]["user-id"])
        out.append(json.dumps(body).encode())
    return out


FRAMES = _frames()
_PROTO = AccountProtocol(["5WT00000"])


def ttfast_decode(frames: list[bytes] = FRAMES) -> list[Any]:
    out: list[Any] = []
    for f in frames:
        out += _PROTO.receive(f)
    return out


def _sdk() -> Any:
    from tastytrade.streamer import MAP_ALERTS

    def decode(frames: list[bytes] = FRAMES) -> list[Any]:
        out = []
        for f in frames:
            msg = json.loads(f)
            out.append(MAP_ALERTS[msg["type"]](**msg["data"]))
        return out

    return decode


def test_both_decode_every_frame() -> None:
    got = ttfast_decode()
    assert [type(e).__name__ for e in got] == ["Notification"] * len(KINDS)
    assert [e.type for e in got] == ["Order", "CurrentPosition"]
    assert len(_sdk()()) == len(KINDS)


@pytest.mark.benchmark(group="account-notifications")
def test_bench_ttfast(benchmark: Any) -> None:
    benchmark(ttfast_decode)


@pytest.mark.benchmark(group="account-notifications")
def test_bench_sdk(benchmark: Any) -> None:
    benchmark(_sdk())


def _lazy_sdk(frames: list[bytes] = FRAMES) -> list[Any]:
    return _SDK_DECODE(frames)


_SDK_DECODE = _sdk()

GATE_RATIOS = [
    RatioCase(
        "account.notifications.vs_sdk",
        ttfast_decode,
        _lazy_sdk,
        floor=1.5,  # measured 2.17-2.19 (one other job running); floor = measured - ~30 %
        units=len(FRAMES),
        note="Order + CurrentPosition notification frames -> typed models",
    ),
]
