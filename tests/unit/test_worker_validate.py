"""Issue 13 #4, dxLink/sim side: the edge in front of the pipeline (the tapped CandleStore).

A Candle batch from the streamer that carries an unrepresentable eventSymbol (newline, trailing
backslash, ...) used to reach the LineEncoder and raise out of the streamer's apply; now the bad
rows are counted per reason and dropped, the good rows of the same batch go through.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ttfast.worker import Worker, WorkerConfig, validate_symbol

SNAP = 0x04 | 0x08  # SNAPSHOT_BEGIN | SNAPSHOT_END: a one-row snapshot, the series is ready
T0 = 1_700_000_100_000 - 1_700_000_100_000 % 300_000


class _Batch:
    event_type = "Candle"

    def __init__(
        self, syms: list[str | None], times: list[int], close: list[float], flags: int
    ) -> None:
        n = len(syms)
        self.size = n
        c = np.array(close, dtype=np.float64)
        self._cols: dict[str, npt.NDArray[Any]] = {
            "eventSymbol": np.array(syms, dtype=object),
            "time": np.array(times, dtype=np.int64),
            "eventFlags": np.full(n, flags, dtype=np.int64),
            "open": c,
            "high": c,
            "low": c,
            "close": c,
            "volume": np.ones(n),
        }
        self.fields = list(self._cols)

    def __len__(self) -> int:
        return self.size

    def column(self, name: str) -> npt.NDArray[Any] | None:
        return self._cols.get(name)


class _Streamer:
    candles: Any = None


def _worker(**kw: Any) -> tuple[Worker, Any]:
    cfg = WorkerConfig(
        symbols=["SPY"],
        source="sim",
        telegraf_url="http://127.0.0.1:9",  # never started: write_lines only queues
        quiet=True,
        **kw,
    )
    w = Worker(cfg)
    s = _Streamer()
    w._tap_store(s)
    return w, s.candles


@pytest.mark.parametrize("bad", ["BAD\nX{=5m}", "BAD\\", "BAD\r{=5m}", "", "Q" * 300, None])
def test_streamer_batch_with_a_bad_symbol_keeps_its_good_rows(bad: str | None) -> None:
    w, tapped = _worker()
    good = "SPY{=5m}"
    tapped.apply(_Batch([good, bad], [T0, T0], [10.0, 11.0], SNAP))
    tapped.apply(_Batch([bad, good, bad], [T0 + 300_000] * 3, [1.0, 10.5, 2.0], 0))
    assert w.stats.malformed_by_reason == {"symbol": 3}
    assert w.store.symbols() == [good]
    assert w.pipeline.symbols == ["SPY"]
    assert np.asarray(w.store[good].close).tolist() == [10.0, 10.5]
    assert w.telegraf is not None and w.telegraf.backlog_lines > 0


def test_streamer_batch_exception_in_the_pipeline_path_is_counted() -> None:
    w, tapped = _worker()

    def boom(changes: Any) -> Any:
        raise RuntimeError("injected")

    w.on_changes = boom  # type: ignore[method-assign]
    tapped.apply(_Batch(["SPY{=5m}"], [T0], [1.0], SNAP))  # does not raise into the streamer
    assert w.stats.malformed_by_reason == {"error": 1}


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


def test_status_line_and_payload_of_the_tap() -> None:
    w, tapped = _worker()
    tapped.apply(_Batch(["SPY{=5m}", "A\nB"], [T0, T0], [1.0, 1.0], SNAP))
    assert "malformed 1 (symbol 1)" in w.status_line()
    out = w.pipeline.process(w.store.apply_bar("SPY{=5m}", T0 + 300_000, 2, 2, 2, 2, 1))
    snap = json.loads(out.snapshots[0][1])
    assert snap["symbol"] == "SPY" and snap["period"] == "5m"
