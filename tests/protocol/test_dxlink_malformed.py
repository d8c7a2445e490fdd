"""Malformed frames from the local dxLink server never escape ``on_ws_frame`` (issue 13, item 7).

Each bad frame is injected by the real server on a live, authorized connection with a Quote
subscription. The client's user must see exactly one ``decode_error`` ConnectionEvent and one
more ``stats.decode_errors``; the connection stays up, Quote data keep decoding, and the
client's two views of the channel layouts (the protocol's and the FEED_DATA decoder's) stay
equal, keeping the last good layout when a FEED_CONFIG is malformed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from ttfast.dxlink.streamer import ConnectionEvent, DxLinkStreamer, StreamState
from ttfast.sim.dxlink_server import DxLinkServer

FAST: dict[str, Any] = dict(
    aggregation_period=0.02,
    keepalive_interval=0.05,
    receive_timeout=2.0,
    handshake_timeout=2.0,
    backoff_base=0.005,
    backoff_max=0.05,
    connect_timeout=5.0,
)


Live = tuple[DxLinkServer, DxLinkStreamer, list[ConnectionEvent]]


@asynccontextmanager
async def live_quotes() -> AsyncIterator[Live]:
    srv = DxLinkServer(seed=11, default_aggregation=0.02, keepalive_interval=0.05)
    await srv.start()
    events: list[ConnectionEvent] = []

    async def tokens() -> tuple[str, str]:
        return srv.url, "tok"

    s = DxLinkStreamer(None, tokens, on_event=events.append, **FAST)
    try:
        async with s:
            s.subscribe("Quote", ["SPY", "AAPL"])
            await until(lambda: s.stats.events >= 2, "first quotes")
            yield srv, s, events
    finally:
        await srv.stop()


async def until(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def layouts(s: DxLinkStreamer, ch: int) -> tuple[dict[str, tuple[str, ...]], dict[str, Any]]:
    """(protocol's server layouts, decoder's effective layouts) of channel ``ch``'s types."""
    types = s.protocol.channels[ch].event_types
    proto = {t: tuple(f) for t, f in s.protocol.layouts[ch].items()}
    assert s._decoder is not None
    return proto, {t: f for t, f in s._decoder.layouts.items() if t in types}


async def inject_and_check(
    srv: DxLinkServer,
    s: DxLinkStreamer,
    events: list[ConnectionEvent],
    frames: list[str],
    caplog: pytest.LogCaptureFixture,
    detail: str = "",
) -> ConnectionEvent:
    errors0 = s.stats.decode_errors
    n_ev = len(events)
    conn = srv.connections[0]
    for f in frames:
        conn.send_text(f)
    await until(lambda: s.stats.decode_errors > errors0, "a counted decode error")
    # data keep flowing on the same connection and decode cleanly
    n = s.stats.events
    await until(lambda: s.stats.events > n + 2, "quotes after the bad frame")
    assert s.stats.decode_errors == errors0 + 1
    bad = [e for e in events[n_ev:] if e.kind == "decode_error"]
    assert len(bad) == 1, [(e.kind, e.detail) for e in events[n_ev:]]
    assert detail in bad[0].detail
    assert not bad[0].detail.startswith("error while handling a frame")  # not the last resort
    assert srv.connection_count == 1 and s.state is StreamState.CONNECTED
    assert not [r for r in caplog.records if "Unhandled exception" in r.getMessage()]
    return bad[0]


BAD_EVENT_FIELDS: dict[str, Any] = {
    "duplicate_field": {"Quote": ["eventType", "eventSymbol", "bidPrice", "bidPrice"]},
    "non_string_field": {"Quote": ["eventType", "eventSymbol", 5]},
    "null_field": {"Quote": ["eventType", "eventSymbol", None]},
    "fields_not_a_list": {"Quote": "eventSymbol"},
    "eventFields_not_an_object": ["Quote", ["eventType", "eventSymbol"]],
    "eventFields_a_string": "Quote",
}


@pytest.mark.parametrize("bad", list(BAD_EVENT_FIELDS.values()), ids=list(BAD_EVENT_FIELDS))
async def test_malformed_feed_config_counted_and_last_good_layout_kept(
    bad: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with live_quotes() as (srv, s, events):
        before = layouts(s, 1)
        assert before[0]["Quote"] == before[1]["Quote"]  # the server's announced layout
        msg = {"type": "FEED_CONFIG", "channel": 1, "dataFormat": "COMPACT",
               "aggregationPeriod": 0.02, "eventFields": bad}  # fmt: skip
        ev = await inject_and_check(srv, s, events, [json.dumps(msg)], caplog, "FEED_CONFIG")
        assert layouts(s, 1) == before
        assert ev.state is StreamState.CONNECTED


async def test_malformed_feed_config_entry_keeps_only_that_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # one bad entry does not throw away a good one in the same message (layouts are per type)
    async with live_quotes() as (srv, s, events):
        before = layouts(s, 1)
        fields = {"Quote": ["eventSymbol", "eventSymbol"], "Trade": ["eventType", "eventSymbol"]}
        msg = {"type": "FEED_CONFIG", "channel": 1, "eventFields": fields}
        await inject_and_check(srv, s, events, [json.dumps(msg)], caplog, "Quote")
        proto, dec = layouts(s, 1)
        assert proto["Quote"] == dec["Quote"] == before[0]["Quote"]
        assert proto["Trade"] == dec["Trade"] == ("eventType", "eventSymbol")


CANDLE_CFG = json.dumps(
    {"type": "FEED_CONFIG", "channel": 3, "eventFields": {"Candle": ["eventType", "time"]}}
)
BAD_FRAMES: dict[str, list[str]] = {
    "not_json": ["hello"],
    "truncated_control": ['{"type":"CHANNEL_OPENED","channel":1,'],
    "array": ["[1,2]"],
    "type_not_a_string": ['{"type":5,"channel":0}'],
    "unknown_type": ['{"type":"BOGUS","channel":0}'],
    "auth_state_number": ['{"type":"AUTH_STATE","channel":0,"state":42}'],
    "auth_state_missing": ['{"type":"AUTH_STATE","channel":0}'],
    "auth_state_unknown": ['{"type":"AUTH_STATE","channel":0,"state":"MAYBE"}'],
    "setup_bad_timeout": [
        '{"type":"SETUP","channel":0,"keepaliveTimeout":"soon","acceptKeepaliveTimeout":-1}'
    ],
    "feed_data_truncated": ['{"type":"FEED_DATA","channel":1,"data":["Quote",['],
    "feed_data_not_an_array": ['{"type":"FEED_DATA","channel":1,"data":5}'],
    "feed_data_stride": ['{"type":"FEED_DATA","channel":1,"data":["Quote",["Quote","SPY",1]]}'],
    "feed_data_unknown_type": ['{"type":"FEED_DATA","channel":1,"data":["Bogus",[1,2]]}'],
    "feed_data_unknown_channel": ['{"type":"FEED_DATA","channel":7,"data":[]}'],
    # a well-formed Candle layout the candle store cannot use (no eventSymbol): the batch
    # decodes but applying it fails
    "candle_unusable_layout": [
        CANDLE_CFG,
        '{"type":"FEED_DATA","channel":3,"data":["Candle",["Candle",1700000000000]]}',
    ],
}


@pytest.mark.parametrize("frames", list(BAD_FRAMES.values()), ids=list(BAD_FRAMES))
async def test_malformed_frame_is_one_counted_decode_error(
    frames: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    async with live_quotes() as (srv, s, events):
        before = layouts(s, 1)
        await inject_and_check(srv, s, events, frames, caplog)
        assert layouts(s, 1) == before
        if s.protocol.server_keepalive_timeout is not None:  # a bad SETUP changes nothing
            assert s.protocol.server_keepalive_timeout == srv.keepalive_timeout


async def test_unknown_message_type_keeps_connection_alive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # unknown types are still traffic: they feed the receive watchdog like any message
    async with live_quotes() as (srv, s, events):
        caplog.set_level(logging.WARNING)
        before = s.stats.last_message_at
        await inject_and_check(
            srv, s, events, ['{"type":"DOM_SNAPSHOT","channel":9}'], caplog, "DOM_SNAPSHOT"
        )
        assert s.stats.last_message_at > before
