"""ttfast._core.numparse against Python's own float()/int() (the oracle)."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ttfast._core import to_double, to_int64


def java_double_str(x: float) -> str:
    """Format like Java's Double.toString (the dxFeed server's number format)."""
    if x == 0:
        return "-0.0" if math.copysign(1, x) < 0 else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        s = repr(x)
        return s if "." in s else s + ".0"
    digits, _, e10 = repr(abs(x)).partition("e")
    intpart, _, frac = digits.partition(".")
    all_digits = (intpart + frac).lstrip("0")
    lead_zeros = len(intpart + frac) - len((intpart + frac).lstrip("0"))
    point = len(intpart) - lead_zeros - 1 + (int(e10) if e10 else 0)
    all_digits = all_digits.rstrip("0") or "0"
    sign = "-" if x < 0 else ""
    return f"{sign}{all_digits[0]}.{all_digits[1:] or '0'}E{point}"


@pytest.mark.parametrize(
    "tok",
    [
        "0",
        "-0",
        "100.0",
        "559.36",
        "1.3743299E7",
        "4.3020691E7",
        "1.0E-4",
        "123",
        "1e308",
        "1.7976931348623157e308",
        "5e-324",
        "2.2250738585072014e-308",
        "0.1",
        "-0.0",
        "9007199254740993",
        "123456789012345678901234567890",
        "0.000000000000000000000000000001",
        "1E400",
        "-1e-400",
    ],
)
def test_double_examples(tok: str) -> None:
    assert to_double(tok) == float(tok) or (math.isnan(float(tok)))
    assert math.copysign(1, to_double(tok)) == math.copysign(1, float(tok))


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_double_roundtrip_repr(x: float) -> None:
    assert to_double(repr(x)) == x
    assert to_double(java_double_str(x)) == x


@given(st.integers(min_value=0, max_value=10**30), st.integers(min_value=-400, max_value=400))
def test_double_mantissa_exponent(m: int, e: int) -> None:
    tok = f"{m}e{e}"
    assert to_double(tok) == float(tok)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_int64_exact(v: int) -> None:
    assert to_int64(str(v)) == v


@pytest.mark.parametrize("tok", [str(2**63), str(-(2**63) - 1), "99999999999999999999"])
def test_int64_overflow(tok: str) -> None:
    with pytest.raises(ValueError, match="int64"):
        to_int64(tok)


@pytest.mark.parametrize("tok", ["", "-", "01", "1.", ".5", "1e", "+1", "NaN", "0x10", "1 ", "--1"])
def test_rejects_non_json_numbers(tok: str) -> None:
    with pytest.raises(ValueError):
        to_double(tok)


@pytest.mark.parametrize("tok", ["1.0", "1e3"])
def test_int64_rejects_fraction(tok: str) -> None:
    with pytest.raises(ValueError, match="not an integer"):
        to_int64(tok)


@pytest.mark.parametrize(
    ("x", "java"),
    [
        (13743299.0, "1.3743299E7"),
        (1e-4, "1.0E-4"),
        (100.0, "100.0"),
        (43020691.0, "4.3020691E7"),
        (1.5e300, "1.5E300"),
        (-2.5e-7, "-2.5E-7"),
    ],
)
def test_java_formatter_matches_java(x: float, java: str) -> None:
    assert java_double_str(x) == java
