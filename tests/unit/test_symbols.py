"""ttfast.symbols: the one candle period / candle symbol parser.

Before issue 14 there were three: `ttfast.candles` (dxFeed's QDAPI rules: ``5Minutes`` and
``2Days`` accepted), `ttfast.dxlink.protocol.build_candle_symbol` (a regex: ``5Minutes``
rejected, whitespace allowed, tick kept as ``{=t}``, any price value taken verbatim) and the
worker's validation through the compiled pipeline's regex. The decisions for the spellings they
disagreed on are pinned here.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttfast.candles import normalize_candle_symbol as from_candles
from ttfast.dxlink import build_candle_symbol as from_dxlink
from ttfast.symbols import (
    build_candle_symbol,
    normalize_candle_symbol,
    normalize_period,
    validate_symbol,
    with_period,
)


def test_one_parser_behind_every_name() -> None:
    assert from_candles is normalize_candle_symbol and from_dxlink is build_candle_symbol


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("5m", "5m"),
        ("05m", "5m"),
        ("5M", "5m"),  # M is minute (dxFeed values are case-insensitive); month is mo
        ("1mo", "mo"),
        ("MO", "mo"),
        ("1d", "d"),
        ("d", "d"),
        ("Day", "d"),
        ("1H", "h"),
        ("2.0m", "2m"),
        ("1.5h", "1.5h"),
        ("1600t", "1600t"),
        ("t", "t"),
        ("1t", "t"),
        ("PM", "pm"),
        ("3pr", "3pr"),
        # QDAPI spellings: the streamer used to reject these, candles accepted them
        ("5Minutes", "5m"),
        ("2Days", "2d"),
        ("5min", "5m"),
        ("1week", "w"),
    ],
)
def test_normalize_period(raw: str, norm: str) -> None:
    assert normalize_period(raw) == norm
    assert normalize_period(norm) == norm


@pytest.mark.parametrize(
    "bad", ["", "5", "5x", "0m", "-1m", "nanm", "infm", "5 m", " 5m", "5m ", "1e999m", "m5"]
)
def test_normalize_period_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        normalize_period(bad)


def test_build_candle_symbol_decisions() -> None:
    # QDAPI spellings now build (they used to raise in the streamer)
    assert build_candle_symbol("SPY", "5Minutes") == "SPY{=5m}"
    # surrounding whitespace of the period argument is still ignored, inner whitespace is not
    assert build_candle_symbol("SPY", " 5m ") == "SPY{=5m}"
    with pytest.raises(ValueError):
        build_candle_symbol("SPY", "5 m")
    # tick is the default period: the candle symbol is the plain symbol (was SPY{=t}), the
    # form normalize_candle_symbol gives and dxFeed prints
    assert build_candle_symbol("SPY", "1t") == "SPY" == normalize_candle_symbol("SPY{=t}")
    # price values are parsed like every other attribute (an unknown one used to pass through)
    assert build_candle_symbol("ES", "d", price="Settlement") == "ES{=d,price=s}"
    assert build_candle_symbol("ES", "d", price="last") == "ES{=d}"
    with pytest.raises(ValueError):
        build_candle_symbol("ES", "d", price="foo")
    with pytest.raises(ValueError):
        build_candle_symbol("SPY{=5m}", "5m")
    with pytest.raises(ValueError):
        build_candle_symbol("", "5m")


_periods = st.builds(
    lambda n, t: f"{n}{t}",
    st.sampled_from(["", "1", "2", "05", "1.5", "2.0", "15", "1600"]),
    st.sampled_from(["t", "s", "m", "h", "d", "w", "mo", "o", "y", "v", "p", "pm", "pr",
                     "M", "H", "Minutes", "Days", "Week", "hour", "Tick"]),
)  # fmt: skip


@given(_periods, st.booleans(), st.sampled_from([None, "bid", "ASK", "mark", "last", "s"]))
def test_built_symbols_are_normalized(period: str, ext: bool, price: str | None) -> None:
    built = build_candle_symbol("SPY", period, extended_hours=ext, price=price)
    assert normalize_candle_symbol(built) == built
    if "{" in built:  # the period attribute is the normalized period (unless tick: dropped)
        assert f"={normalize_period(period)}" in built or normalize_period(period) == "t"


def test_worker_edge_helpers() -> None:
    assert validate_symbol("SPY{=5Minutes}") is None  # attribute values are not parsed here
    assert validate_symbol("SPY{=5m,=1h}") is not None
    assert with_period("SPY", "5m") == "SPY{=5m}"
    assert with_period("SPY{tho=true}", "h") == "SPY{=h,tho=true}"
    assert with_period("SPY{=d}", "5m") == "SPY{=d}"
