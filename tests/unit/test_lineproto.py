"""ttfast._core.lineproto against the pure-Python oracle (tests/oracles/lineproto.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.oracles import lineproto as oracle

from ttfast._core.lineproto import (
    LineEncoder,
    escape_key,
    escape_measurement,
    escape_string_field,
    format_float,
)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_float_is_repr(x: float) -> None:
    assert format_float(x) == repr(x)


@given(st.integers(-(10**15), 10**15), st.integers(0, 10))
def test_format_float_price_like_is_repr(m: int, k: int) -> None:
    x = m / 10**k
    assert format_float(x) == repr(x)


@pytest.mark.parametrize(
    "x",
    [
        0.0,
        -0.0,
        1e-4,
        9.999e-5,
        1e15,
        1e16 - 2,
        1e16,
        0.1 + 0.2,
        5e-324,
        1.7976931348623157e308,
        559.36,
        -559.36,
        100.0,
        123456789012345.6,
        99999999999999.99,
    ],
)
def test_format_float_edges(x: float) -> None:
    assert format_float(x) == repr(x)


def test_format_float_sweep_is_repr() -> None:
    """The shortest-digits path (shortest.h) byte for byte against repr: every binade edge,
    powers of ten with their neighbours, and 300k random bit patterns over all exponents."""
    import random
    import struct

    xs: list[float] = []
    for e in range(-1074, 1024):
        p = math.ldexp(1.0, e)
        xs += [p, math.nextafter(p, 0.0), math.nextafter(p, math.inf)]
    for e in range(-324, 309):
        for m in ("1", "2", "5", "9", "123456789", "4503599627370496", "9007199254740993"):
            x = float(f"{m}e{e}")
            if x and math.isfinite(x):
                xs += [x, math.nextafter(x, 0.0), math.nextafter(x, math.inf)]
    rng = random.Random(20261122)
    for _ in range(300_000):
        (x,) = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))
        xs.append(x)
    bad = [
        (x, format_float(x))
        for x in xs
        if math.isfinite(x) and (format_float(x) != repr(x) or format_float(-x) != repr(-x))
    ]
    assert not bad, bad[:5]


def test_format_float_rejects_nonfinite() -> None:
    for x in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="NaN and infinity"):
            format_float(x)


def test_escaping_rules() -> None:
    assert escape_measurement("a b,c=d") == b"a\\ b\\,c=d"
    assert escape_key("a b,c=d") == b"a\\ b\\,c\\=d"
    assert escape_string_field('say "hi" \\ bye') == b'"say \\"hi\\" \\\\ bye"'
    assert escape_key("é") == "é".encode()
    for bad in ("", "a\nb", "a\rb", "ab\\"):
        with pytest.raises(ValueError):
            escape_key(bad)
    with pytest.raises(ValueError, match="comment"):
        escape_measurement("#m")


def test_encoder_example() -> None:
    enc = LineEncoder("candle", ("symbol", "period"), ("open", "close"), ("count",))
    body = enc.encode(
        np.array([10, 20], dtype=np.int64),
        (["SPY", "Q Q"], "5m"),
        (np.array([1.5, math.nan]), np.array([2.0, 3.25])),
        (np.array([7, -8], dtype=np.int64),),
    )
    assert body == (
        b"candle,period=5m,symbol=SPY open=1.5,close=2.0,count=7i 10\n"
        b"candle,period=5m,symbol=Q\\ Q close=3.25,count=-8i 20\n"
    )
    assert (enc.rows_written, enc.fields_omitted, enc.rows_skipped) == (2, 1, 0)


def test_row_with_only_nan_fields_is_skipped_and_counted() -> None:
    enc = LineEncoder("indicators", ("symbol",), ("macd", "hma"))
    body = enc.encode(
        np.array([1, 2]), ("SPY",), (np.array([math.nan, 1.0]), np.array([math.inf, math.nan]))
    )
    assert body == b"indicators,symbol=SPY macd=1.0 2\n"
    assert (enc.rows_written, enc.fields_omitted, enc.rows_skipped) == (1, 3, 1)


def test_no_timestamp_and_empty_tag_value() -> None:
    enc = LineEncoder("m", ("a", "b"), ("x",))
    assert enc.encode(None, (["", "v"], "w"), ([1.0, 2.0],)) == b"m,b=w x=1.0\nm,a=v,b=w x=2.0\n"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one field"):
        LineEncoder("m", ("a",))
    with pytest.raises(ValueError, match="duplicate"):
        LineEncoder("m", (), ("x", "x"))
    enc = LineEncoder("m", ("t",), ("x",))
    with pytest.raises(ValueError, match="columns"):
        enc.encode([1], (), ([1.0],))
    with pytest.raises(ValueError, match="length"):
        enc.encode([1, 2], ("a",), ([1.0],))
    with pytest.raises(ValueError, match="tag column"):
        enc.encode([1, 2], (["a"],), ([1.0, 2.0],))
    with pytest.raises(ValueError, match="newline"):
        enc.encode([1], (["a\nb"],), ([1.0],))
    with pytest.raises(TypeError):
        enc.encode([1], ([3],), ([1.0],))
    assert enc.encode(np.zeros(0, dtype=np.int64), ([],), (np.zeros(0),)) == b""


names = st.text(
    st.characters(codec="utf-8", exclude_characters="\n\r"), min_size=1, max_size=8
).filter(lambda s: not s.endswith("\\"))
values = st.one_of(st.just(""), names)
floats_any = st.floats(allow_subnormal=True, width=64)


@st.composite
def batches(draw: st.DrawFn) -> tuple:
    n = draw(st.integers(0, 12))
    meas = draw(names.filter(lambda s: not s.startswith("#")))
    keys = draw(st.lists(names, min_size=1, max_size=7, unique=True))
    nt = draw(st.integers(0, min(3, len(keys) - 1)))
    rest = keys[nt:]
    nf = draw(st.integers(0, len(rest)))
    ni = draw(st.integers(0, len(rest) - nf))
    tag_keys, float_keys = keys[:nt], rest[:nf]
    int_keys, str_keys = rest[nf : nf + ni], rest[nf + ni :]
    tags = [draw(st.one_of(names, st.lists(values, min_size=n, max_size=n))) for _ in tag_keys]
    fl = [draw(st.lists(floats_any, min_size=n, max_size=n)) for _ in float_keys]
    it = [
        draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n)) for _ in int_keys
    ]
    sv = [draw(st.lists(st.text(max_size=6), min_size=n, max_size=n)) for _ in str_keys]
    times = draw(
        st.one_of(st.none(), st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n))
    )
    return meas, tag_keys, float_keys, int_keys, str_keys, times, tags, fl, it, sv, n


@settings(max_examples=300)
@given(batches())
def test_encoder_matches_oracle(case: tuple) -> None:
    meas, tag_keys, float_keys, int_keys, str_keys, times, tags, fl, it, sv, n = case
    want = oracle.encode(meas, tag_keys, float_keys, int_keys, str_keys, times, tags, fl, it, sv, n)
    enc = LineEncoder(meas, tag_keys, float_keys, int_keys, str_keys)
    got = enc.encode(
        None if times is None else np.array(times, dtype=np.int64),
        tags,
        [np.array(c, dtype=np.float64) for c in fl],
        [np.array(c, dtype=np.int64) for c in it],
        sv,
    )
    assert got == want.body
    if n:
        assert (enc.rows_written, enc.fields_omitted, enc.rows_skipped) == (
            want.rows_written,
            want.fields_omitted,
            want.rows_skipped,
        )


def test_large_batch_and_buffer_reuse() -> None:
    rng = np.random.default_rng(1)
    n = 50_000
    enc = LineEncoder("candle", ("symbol",), ("close",), ("count",))
    close = np.round(rng.uniform(1, 1000, n), 2)
    cnt = rng.integers(0, 10**9, n)
    syms = [f"S{i % 37}" for i in range(n)]
    t = np.arange(n, dtype=np.int64) * 1_000_000_000
    for _ in range(2):
        body = enc.encode(t, (syms,), (close,), (cnt,))
        lines = body.decode().splitlines()
        assert len(lines) == n
        assert (
            lines[123]
            == f"candle,symbol=S{123 % 37} close={float(close[123])!r},count={cnt[123]}i "
            f"{t[123]}"
        )


def test_pow10_table_matches_its_generator() -> None:
    """ext/ttfast/_core/pow10_128.h is generated and committed: it must equal what
    gen_pow10.py computes now (a hand edit or a stale table would break shortest digits)."""
    import re
    import runpy
    from pathlib import Path

    core = Path(__file__).resolve().parents[2] / "ext" / "ttfast" / "_core"
    gen = runpy.run_path(str(core / "gen_pow10.py"))
    text = (core / "pow10_128.h").read_text()
    rows = re.findall(r"\{0x([0-9a-f]{16})u, 0x([0-9a-f]{16})u\}, /\* 1e(-?\d+) \*/", text)
    assert len(rows) == gen["E_MAX"] - gen["E_MIN"] + 1
    from fractions import Fraction

    for hi, lo, e_s in rows:
        e, g = int(e_s), int(hi, 16) << 64 | int(lo, 16)
        assert g == gen["g"](e), e
        # independently of the generator: g = floor(10**e * 2**(127 - L)) + 1 with
        # L = floor(log2(10**e)), i.e. g - 1 <= exact < g and 2**127 <= g < 2**128
        exact = Fraction(10) ** e
        L = exact.numerator.bit_length() - exact.denominator.bit_length()
        if Fraction(2) ** L > exact:
            L -= 1
        scaled = exact * Fraction(2) ** (127 - L)
        assert g - 1 <= scaled < g, e
        assert 1 << 127 <= g < 1 << 128, e
