"""Issue 13 #4, dxLink/sim side: the edge in front of the pipeline (the streamer's seams).

A Candle batch from the streamer that carries an unrepresentable eventSymbol (newline, trailing
backslash, ...) used to reach the LineEncoder and raise out of the streamer's apply; now the bad
rows are counted per reason and dropped, the good rows of the same batch go through. The worker
hands the streamer its CandleStore (``candle_store=``), ``Worker.on_stream_changes``
(``on_candle_changes=``) and ``Worker.admit_symbol`` (``accept_candle_symbol=``); the frames
here go through the streamer's real receive path (decoder, screening, store, callback).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import picows
import pytest
from picows.picows import _make_test_ws_frame  # type: ignore[attr-defined]

from ttfast.dxlink.streamer import DxLinkStreamer, _Conn
from ttfast.worker import Worker, WorkerConfig, validate_symbol
from ttfast.worker.sources import make_streamer

SNAP = 0x04 | 0x08  # SNAPSHOT_BEGIN | SNAPSHOT_END: a one-row snapshot, the series is ready
T0 = 1_700_000_100_000 - 1_700_000_100_000 % 300_000
FIELDS = ["eventType", "eventSymbol", "eventFlags", "time", "open", "high", "low", "close"]


async def _tokens() -> tuple[str, str]:
    return "ws://127.0.0.1:9", "t"


def _worker(**kw: Any) -> tuple[Worker, DxLinkStreamer]:
    cfg = WorkerConfig(
        symbols=["SPY"],
        source="sim",
        telegraf_url="http://127.0.0.1:9",  # never started: write_lines only queues
        quiet=True,
        **kw,
    )
    w = Worker(cfg)
    s = make_streamer(w, None, _tokens)
    s._prepare_connection()
    s._conn = _Conn(s)
    _send(s, {"type": "FEED_CONFIG", "channel": 3, "eventFields": {"Candle": FIELDS}})
    return w, s


def _send(s: DxLinkStreamer, msg: dict[str, Any]) -> None:
    assert s._conn is not None
    frame = _make_test_ws_frame(picows.WSMsgType.TEXT, json.dumps(msg).encode(), True, False)
    s._conn.on_ws_frame(None, frame)  # type: ignore[arg-type]


def _candles(
    s: DxLinkStreamer, syms: list[str | None], times: list[int], close: list[float], flags: int
) -> None:
    rows: list[Any] = []
    for sym, t, c in zip(syms, times, close, strict=True):
        rows += ["Candle", sym, flags, t, c, c, c, c]
    _send(s, {"type": "FEED_DATA", "channel": 3, "data": ["Candle", rows]})


@pytest.mark.parametrize("bad", ["BAD\nX{=5m}", "BAD\\", "BAD\r{=5m}", "", "Q" * 300, None])
def test_streamer_batch_with_a_bad_symbol_keeps_its_good_rows(bad: str | None) -> None:
    w, s = _worker()
    good = "SPY{=5m}"
    _candles(s, [good, bad], [T0, T0], [10.0, 11.0], SNAP)
    _candles(s, [bad, good, bad], [T0 + 300_000] * 3, [1.0, 10.5, 2.0], 0)
    assert w.stats.malformed_by_reason == {"symbol": 3}
    assert w.store.symbols() == [good]
    assert w.pipeline.symbols == ["SPY"]
    assert np.asarray(w.store[good].close).tolist() == [10.0, 10.5]
    assert w.telegraf is not None and w.telegraf.backlog_lines > 0
    assert w.stats.events == 2 and w.stats.batches == 2
    assert s.stats.decode_errors == 0 and s.stats.callback_errors == 0


def test_streamer_batch_exception_in_the_pipeline_path_is_counted() -> None:
    w, s = _worker()

    def boom(changes: Any) -> Any:
        raise RuntimeError("injected")

    w.on_changes = boom  # type: ignore[method-assign]
    _candles(s, ["SPY{=5m}"], [T0], [1.0], SNAP)  # does not raise into the streamer
    assert w.stats.malformed_by_reason == {"error": 1}
    assert s.stats.callback_errors == 0  # the worker's own guard caught it


def test_symbol_limit_at_the_dxlink_edge() -> None:
    w, s = _worker(max_symbols=2)
    _candles(s, ["A{=5m}", "B{=5m}", "C{=5m}", "C{=5m}"], [T0] * 4, [1.0] * 4, SNAP)
    _candles(s, ["A{=5m}", "C{=5m}"], [T0] * 2, [2.0] * 2, 0)
    assert w.store.symbols() == ["A{=5m}", "B{=5m}"]
    assert w.stats.symbols_refused == 3  # per refused row
    assert w.store.stats()["symbols_refused"] == 0  # refused at the edge, before the store


@pytest.mark.parametrize(
    "sym",
    [
        "SPY",
        "SPY{=5m}",
        "BRK/B{=1h,tho=true}",
        "./ESZ24:XCME{=5m}",
        "./OGZ4 OG2Z4 241126C2600:XCEC{=d,price=mark}",
        ".SPXW241220C5900",
        "$VIX.X",
    ],
)
def test_valid_symbols(sym: str) -> None:
    assert validate_symbol(sym) is None


@pytest.mark.parametrize(
    "sym",
    [
        "",
        " SPY",
        "SPY ",
        "SP\nY",
        "SPY\\",
        "S\\PY",
        'S"PY',
        "SP\u00ddY",
        "SPY{=5m",
        "SPY{}",
        "SPY{5m}",
        "SPY{=5m}{=1h}",
        "SPY{=5m,=1h}",
        "{=5m}",
        "X" * 129,
        "SPY\x00",
        "SPY\t",
    ],
)
def test_invalid_symbols(sym: str) -> None:
    assert validate_symbol(sym) is not None


def test_status_line_and_payload_of_the_streamer_edge() -> None:
    w, s = _worker()
    _candles(s, ["SPY{=5m}", "A\nB"], [T0, T0], [1.0, 1.0], SNAP)
    assert "malformed 1 (symbol 1)" in w.status_line()
    out = w.pipeline.process(w.store.apply_bar("SPY{=5m}", T0 + 300_000, 2, 2, 2, 2, 1))
    snap = json.loads(out.snapshots[0][1])
    assert snap["symbol"] == "SPY" and snap["period"] == "5m"


def test_status_line_shows_what_the_sinks_have_in_flight() -> None:
    from types import SimpleNamespace

    w, _ = _worker()
    w.redis = SimpleNamespace(  # type: ignore[assignment]
        stats=SimpleNamespace(connected=True, published=7, dropped=0, reconnects=1),
        backlog=1501,
        in_flight=1024,
    )
    w.telegraf = SimpleNamespace(  # type: ignore[assignment]
        stats=SimpleNamespace(lines_sent=9, lines_dropped=0, lines_rejected=0),
        backlog_lines=40,
        inflight_lines=0,
    )
    line = w.status_line()
    assert "redis up pub 7 backlog 1501 (in flight 1024) dropped 0 reconnects 1" in line
    assert "telegraf sent 9 backlog 40 dropped 0 rejected 0" in line  # nothing in flight
