"""listen() buffer policies and the FEED_DATA channel read, against obviously-right twins."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ttfast import ColumnBatch, FeedDecoder
from ttfast.dxlink.streamer import DxLinkStreamer, Listener, _conflate

FIELDS = ("eventType", "eventSymbol", "bidPrice")


def batch(rows: list[tuple[str, float]]) -> ColumnBatch:
    cols = {
        "eventType": ["Quote"] * len(rows),
        "eventSymbol": [r[0] for r in rows],
        "bidPrice": [r[1] for r in rows],
    }
    return ColumnBatch("Quote", cols)


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
def test_the_decoding_pass_reads_the_frame_channel(ch: int, ws: str, first: bool) -> None:
    # the streamer routes a FEED_DATA frame by the channel its one decoding pass returns
    if first:
        msg = f'{{"type":"FEED_DATA","channel":{ws}{ch},"data":["Quote",[]]}}'
    else:
        msg = f'{{"data":["Quote",[]],"type":"FEED_DATA", "channel" :{ws}{ch}}}'
    dec = FeedDecoder()
    dec.set_fields("Quote", FIELDS)
    got, batches = dec.decode_message(msg.encode())
    assert got == ch == json.loads(msg)["channel"] and [len(b) for b in batches] == [0]
    assert dec.decode_message(b'{"type":"FEED_DATA","data":[]}') == (-1, [])


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


# ---- nothing a server sends raises out of on_ws_frame (issue 13, item 7) -----------------

_GOOD_FRAMES: list[dict[str, Any]] = [
    {"type": "SETUP", "channel": 0, "keepaliveTimeout": 60, "acceptKeepaliveTimeout": 60,
     "version": "1.0-1.2.1"},
    {"type": "AUTH_STATE", "channel": 0, "state": "UNAUTHORIZED"},
    {"type": "AUTH_STATE", "channel": 0, "state": "AUTHORIZED", "userId": "u"},
    {"type": "CHANNEL_OPENED", "channel": 1, "service": "FEED",
     "parameters": {"contract": "AUTO", "subFormat": "LIST"}},
    {"type": "CHANNEL_CLOSED", "channel": 3},
    {"type": "FEED_CONFIG", "channel": 1, "dataFormat": "COMPACT", "aggregationPeriod": 0.1,
     "eventFields": {"Quote": ["eventType", "eventSymbol", "bidPrice"]}},
    {"type": "FEED_CONFIG", "channel": 3, "dataFormat": "COMPACT", "aggregationPeriod": 0.1,
     "eventFields": {"Candle": ["eventType", "eventSymbol", "eventFlags", "time", "close"]}},
    {"type": "FEED_DATA", "channel": 1, "data": ["Quote", ["Quote", "SPY", 1.5]]},
    {"type": "FEED_DATA", "channel": 3,
     "data": ["Candle", ["Candle", "SPY{=5m}", 4, 1700000000000, 1.5]]},
    {"type": "ERROR", "channel": 1, "error": "BAD_ACTION", "message": "Your subscription rate"},
    {"type": "KEEPALIVE", "channel": 0},
]  # fmt: skip

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=6) | st.sampled_from(["Quote", "Candle", "AUTHORIZED", "eventSymbol"]),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=12,
)  # fmt: skip


@st.composite
def _server_frames(draw: st.DrawFn) -> bytes:
    msg = dict(draw(st.sampled_from(_GOOD_FRAMES)))
    if draw(st.booleans()):  # replace, add or drop keys (type included)
        for _ in range(draw(st.integers(1, 3))):
            key = draw(st.sampled_from([*msg, "eventFields", "state", "data", "x"]))
            if draw(st.integers(0, 4)) == 0:
                msg.pop(key, None)
            else:
                msg[key] = draw(_json)
    elif draw(st.booleans()):  # replace a value deeper inside
        for key in ("eventFields", "data", "parameters"):
            if key in msg:
                msg[key] = json.loads(json.dumps(msg[key]))
                v = msg[key]
                if isinstance(v, dict) and v:
                    v[draw(st.sampled_from(sorted(v)))] = draw(_json)
                elif isinstance(v, list) and v:
                    v[draw(st.integers(0, len(v) - 1))] = draw(_json)
    raw = json.dumps(msg).encode()
    cut = draw(st.one_of(st.none(), st.integers(0, len(raw))))
    return raw if cut is None else raw[:cut]


@settings(max_examples=400, deadline=None)
@given(st.lists(_server_frames(), min_size=1, max_size=6))
def test_no_server_frame_raises_out_of_on_ws_frame(frames: list[bytes]) -> None:
    import picows
    from picows.picows import _make_test_ws_frame  # type: ignore[attr-defined]

    from ttfast.dxlink.streamer import _Conn

    seen: list[str] = []
    s = DxLinkStreamer(
        None, _tp, on_batch=lambda b: b.to_dicts(), on_event=lambda e: seen.append(e.detail)
    )
    s.subscribe("Quote", ["SPY"])
    s._prepare_connection()
    conn = _Conn(s)
    s._conn = conn
    s.protocol.connection_made("t")
    for raw in frames:
        conn.on_ws_frame(None, _make_test_ws_frame(picows.WSMsgType.TEXT, raw, True, False))  # type: ignore[arg-type]
        # handled where detected, not by on_ws_frame's last-resort catch
        assert not [d for d in seen if d.startswith("error while handling a frame")], raw
        # the protocol's and the decoder's views of the server's layouts never diverge (for
        # the channel's own event types: the one decoder serves every channel)
        dec = s._decoder.layouts if s._decoder is not None else {}
        for ch, lay in s.protocol.layouts.items():
            for t, fields in lay.items():
                if t in s.protocol.channels[ch].event_types:
                    assert dec[t] == tuple(fields)
