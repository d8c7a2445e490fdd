"""listen() buffer policies and the FEED_DATA channel peek, against obviously-right twins."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ttfast.dxlink.streamer import DxLinkStreamer, Listener, _ColumnBatch, _conflate, _frame_channel

FIELDS = ("eventType", "eventSymbol", "bidPrice")


def batch(rows: list[tuple[str, float]]) -> _ColumnBatch:
    sym = np.empty(len(rows), dtype=object)
    sym[:] = [r[0] for r in rows]
    et = np.empty(len(rows), dtype=object)
    et[:] = ["Quote"] * len(rows)
    return _ColumnBatch(
        "Quote",
        FIELDS,
        {"eventType": et, "eventSymbol": sym, "bidPrice": np.array([r[1] for r in rows])},
    )


def oracle_conflate(batches: list[list[tuple[str, float]]]) -> list[tuple[str, float]]:
    latest: dict[str, tuple[str, float]] = {}
    for b in batches:
        for r in b:
            latest.pop(r[0], None)  # order = order of each symbol's latest row
            latest[r[0]] = r
    return list(latest.values())


rows_st = st.lists(
    st.tuples(st.sampled_from(["SPY", "QQQ", "AAPL", "/ES", ".SPXW1"]), st.floats(0, 1e4)),
    min_size=1,
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(rows_st, min_size=1, max_size=8))
def test_conflate_matches_oracle(batches: list[list[tuple[str, float]]]) -> None:
    got = _conflate([batch(b) for b in batches])
    want = oracle_conflate(batches)
    assert list(zip(got["eventSymbol"].tolist(), got["bidPrice"].tolist(), strict=True)) == want
    assert got.to_dicts()[0]["eventType"] == "Quote"
    assert len(got) == len(want)


async def _tp() -> tuple[str, str]:
    return "ws://127.0.0.1:9/", "t"


@settings(max_examples=100, deadline=None)
@given(st.lists(rows_st, min_size=1, max_size=30), st.integers(1, 5))
def test_listener_conflate_never_loses_latest(
    batches: list[list[tuple[str, float]]], maxlen: int
) -> None:
    s = DxLinkStreamer(None, _tp)
    lst = Listener(s, "Quote", maxlen, "conflate")
    for b in batches:
        lst._push(batch(b))
    assert len(lst) <= maxlen
    # replaying the buffer gives, per symbol, exactly the latest value pushed
    final: dict[str, float] = {}
    for b in lst._buf:
        final.update(zip(b["eventSymbol"].tolist(), b["bidPrice"].tolist(), strict=True))
    assert final == {r[0]: r[1] for b in batches for r in b}
    total = sum(len(b) for b in batches)
    assert total - lst.conflated == sum(len(b) for b in lst._buf)
    assert s.stats.conflated == lst.conflated and lst.dropped == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=30), st.integers(1, 5))
def test_listener_drop_oldest_counts(sizes: list[int], maxlen: int) -> None:
    s = DxLinkStreamer(None, _tp)
    lst = Listener(s, "TimeAndSale", maxlen, "drop_oldest")
    bs = [batch([("SPY", float(i))] * n) for i, n in enumerate(sizes)]
    for b in bs:
        lst._push(b)
    kept = bs[-maxlen:]
    assert list(lst._buf) == kept
    assert lst.dropped == sum(sizes) - sum(len(b) for b in kept) == s.stats.drops


async def test_listener_wakes_and_ends() -> None:
    s = DxLinkStreamer(None, _tp)
    lst = s.listen("Quote")
    task = asyncio.ensure_future(lst.__anext__())
    await asyncio.sleep(0)
    lst._push(batch([("SPY", 1.0)]))
    assert (await task)["eventSymbol"].tolist() == ["SPY"]
    lst._finish()
    assert [b async for b in lst] == []


@given(st.integers(0, 2**31), st.sampled_from(["", " ", "\n "]), st.booleans())
def test_frame_channel(ch: int, ws: str, first: bool) -> None:
    if first:
        msg = f'{{"type":"FEED_DATA","channel":{ws}{ch},"data":["Quote",[]]}}'
    else:
        msg = f'{{"data":["Quote",[]],"type":"FEED_DATA", "channel" :{ws}{ch}}}'
    assert _frame_channel(msg.encode()) == ch == json.loads(msg)["channel"]
    assert _frame_channel(b'{"type":"KEEPALIVE"}') == -1


def test_fragmented_frames_are_reassembled() -> None:
    import picows
    from picows.picows import _make_test_ws_frame  # type: ignore[attr-defined]

    from ttfast.dxlink.streamer import _Conn

    got: list[Any] = []
    s = DxLinkStreamer(None, _tp, on_batch=got.append)
    s._prepare_connection()
    conn = _Conn(s)
    s._conn = conn
    msg = (
        b'{"type":"FEED_DATA","channel":1,"data":["Quote",["Quote","SPY",0,0,0,0,"Q",1.5,'
        b'100.0,0,"Q",1.6,200.0]]}'
    )
    T, C = picows.WSMsgType.TEXT, picows.WSMsgType.CONTINUATION
    conn.on_ws_frame(None, _make_test_ws_frame(T, msg[:20], False, False))  # type: ignore[arg-type]
    conn.on_ws_frame(None, _make_test_ws_frame(C, msg[20:50], False, False))  # type: ignore[arg-type]
    assert got == []
    conn.on_ws_frame(None, _make_test_ws_frame(C, msg[50:], True, False))  # type: ignore[arg-type]
    assert len(got) == 1 and got[0].to_dicts()[0]["askPrice"] == 1.6
    # a stray CONTINUATION is a counted protocol error, not a crash
    conn.on_ws_frame(None, _make_test_ws_frame(C, b"x", True, False))  # type: ignore[arg-type]
    assert s.stats.decode_errors == 1 and s.stats.frames == 1
