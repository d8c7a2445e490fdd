"""CandleStore fed by the real dxLink decoder (FeedDecoder -> EventBatch -> CandleStore)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from ttfast import CandleStore, FeedDecoder

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the shared bench/datagen.py
from bench import datagen


def _decoder() -> FeedDecoder:
    dec = FeedDecoder()
    dec.set_fields("Candle", list(datagen.CANDLE_FIELDS))
    return dec


def test_qc_sample_frame_through_decoder() -> None:
    # spec §6.5 item 3 (QC sample, tastytrade): begin, plain row, 0x0A NaN terminator at fromTime
    dec = FeedDecoder()
    fields = [
        "eventFlags",
        "eventSymbol",
        "time",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "openInterest",
    ]
    dec.set_fields("Candle", fields)
    frame = (
        b'{"type":"FEED_DATA","channel":3,"data":["Candle",['
        b'4,"AAPL{=d}",1750032000000,197.3,198.6,195.2,196.4,4.3020691E7,"NaN",'
        b'0,"AAPL{=d}",1749772800000,199.1,199.9,196.5,196.6,5.1447349E7,"NaN",'
        b'10,"AAPL{=d}",926208000000,"NaN","NaN","NaN","NaN","NaN","NaN"]]}'
    )
    store = CandleStore()
    (batch,) = dec.decode(frame)
    ch = store.apply(batch)
    s = store["AAPL{=d}"]
    assert s.ready and len(s) == 2 and list(s.time) == [1749772800000, 1750032000000]
    assert list(s.close) == [196.6, 196.4] and s.volume[-1] == 43020691.0
    assert ch[0].snapshot and ch[0].appended == 2
    assert not any(math.isnan(c) for c in s.close)


def test_decoded_snapshot_frames_then_live_frames() -> None:
    dec = _decoder()
    store = CandleStore(capacity=500)
    n = 1200
    for frame in datagen.candle_snapshot_frames(n, per_frame=250):
        for b in dec.decode(frame):
            store.apply(b)
    s = store["SPY{=5m}"]
    bars = datagen.candles(n)
    assert s.ready and len(s) == 500
    np.testing.assert_array_equal(s.time, bars["time"][n - 500 :])
    np.testing.assert_array_equal(s.close, np.round(bars["close"][n - 500 :], 2))
    assert store.evicted == n - 1 - 500  # n-1 real bars delivered, newest 500 kept
    live = [b for f in datagen.candle_frames(3, per_frame=40) for b in dec.decode(f)]
    for b in live:
        store.apply(b)
    # SPY{=5m} is one of the 10 live symbols: it stays ready; the others never had a snapshot
    assert len(store) == 10 and s.ready and store.events == n + 120
    assert all(not store[sym].ready for sym in store if sym != s.symbol)
