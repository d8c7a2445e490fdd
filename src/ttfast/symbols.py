"""Candle symbols and periods: the one parser, and the symbol checks of the worker's edges.

dxFeed's rules (spec dxlink.md §6.1, QDAPI ``CandleSymbol`` / ``CandlePeriod`` /
``CandleType.parse``), used everywhere a period or a candle symbol is read:

* `normalize_period` -- a period as dxFeed prints it (``5Minutes``, ``5M``, ``05m`` -> ``5m``;
  ``1d``, ``Day`` -> ``d``; ``1.5h``; tick ``t``). Raises ValueError on anything else.
* `normalize_candle_symbol` -- a candle symbol in canonical form (defaults dropped, keys sorted).
* `build_candle_symbol` -- the candle symbol to subscribe for a plain symbol and a period
  (always equal to its own normalized form).
* `validate_symbol`, `with_period` -- the worker's edge: a symbol representable in Redis keys,
  JSON and Influx line protocol; a symbol without a period attribute gets the worker's.

Pure functions, no imports beyond the standard library.
"""

from __future__ import annotations

import math
import re
from typing import Final

__all__ = [
    "MAX_SYMBOL_LEN",
    "build_candle_symbol",
    "normalize_candle_symbol",
    "normalize_period",
    "validate_symbol",
    "with_period",
]

# (full name, canonical string) in QDAPI CandleType declaration order (parse order matters).
_TYPES: Final[tuple[tuple[str, str], ...]] = (
    ("Tick", "t"),
    ("Second", "s"),
    ("Minute", "m"),
    ("Hour", "h"),
    ("Day", "d"),
    ("Week", "w"),
    ("Month", "mo"),
    ("OptExp", "o"),
    ("Year", "y"),
    ("Volume", "v"),
    ("Price", "p"),
    ("PriceMomentum", "pm"),
    ("PriceRenko", "pr"),
)
_TYPE_STRINGS: Final = frozenset(s for _, s in _TYPES)
# other attributes: key -> ((ENUM_NAME, canonical string), ...), default first
_ENUMS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "price": (
        ("LAST", "last"),
        ("BID", "bid"),
        ("ASK", "ask"),
        ("MARK", "mark"),
        ("SETTLEMENT", "s"),
    ),
    "tho": (("ANY", "false"), ("REGULAR", "true")),
    "a": (("MIDNIGHT", "m"), ("SESSION", "s")),
}
_NUMBER_CHARS: Final = frozenset("0123456789.-+eE")
_DEFAULT_PERIOD: Final = "t"


def _parse_type(s: str) -> str:
    """CandleType.parse: the canonical string (any case: ``M`` is minute, month is ``mo``),
    else a case-insensitive prefix of a type name, or a name with a plural ``s``."""
    if not s:
        raise ValueError("missing candle period type")
    low = s.lower()
    if low in _TYPE_STRINGS:
        return low
    n = len(s)
    for name, string in _TYPES:
        if len(name) >= n and name[:n].lower() == low:
            return string
        if low.endswith("s") and name.lower() == low[:-1]:  # Minutes, Days, ...
            return string
    raise ValueError(f"unknown candle period type {s!r}")


def _format_value(v: float) -> str:
    if v == int(v):
        return str(int(v))
    return repr(v)


def normalize_period(period: str) -> str:
    """A candle period as dxFeed prints it: ``[value]type``, a value of 1 left out.

    ``5m``, ``5M``, ``05m``, ``5Minutes`` -> ``5m``; ``1d``, ``d``, ``Day`` -> ``d``; ``2.0h`` ->
    ``2h``; ``1.5h``; ``1mo``/``MO`` -> ``mo`` (``m`` is always minute); tick -> ``t``. Types:
    t, s, m, h, d, w, mo, o, y, v, p, pm, pr or a prefix of their names (Tick, Second, ...).
    ValueError for an empty or unknown type, a value that is not a positive finite number, or
    any whitespace.
    """
    i = 0
    while i < len(period) and period[i] in _NUMBER_CHARS:
        i += 1
    num, typ = period[:i], period[i:]
    try:
        amount = float(num) if num else 1.0
    except ValueError:
        raise ValueError(f"bad candle period value in {period!r}") from None
    if not math.isfinite(amount) or amount <= 0:
        raise ValueError(f"candle period value must be positive: {period!r}")
    try:
        t = _parse_type(typ)
    except ValueError as exc:
        raise ValueError(
            f"bad candle period {period!r} ({exc}): expected [n]type with type in "
            "t,s,m,h,d,w,mo,o,y,v,p,pm,pr (m = minute, mo = month)"
        ) from None
    return t if amount == 1.0 else _format_value(amount) + t


def _normalize_enum(key: str, value: str) -> str:
    options = _ENUMS[key]
    for _, string in options:
        if value.lower() == string:
            return string
    n = len(value)
    for name, string in options:
        if n and len(name) >= n and name[:n].lower() == value.lower():
            return string
    raise ValueError(f"unknown value {value!r} for candle attribute {key!r}")


def _normalize_attr(key: str, value: str) -> str | None:
    """Canonical value of one attribute, None when it is the default (then it is dropped)."""
    if key == "":
        p = normalize_period(value)
        return None if p == _DEFAULT_PERIOD else p
    if key in _ENUMS:
        v = _normalize_enum(key, value)
        return None if v == _ENUMS[key][0][1] else v
    if key == "pl":
        level = float(value)
        return None if math.isnan(level) else _format_value(level)
    return value


def _format(base: str, attrs: dict[str, str | None]) -> str:
    kept = sorted((k, v) for k, v in attrs.items() if v is not None)
    if not kept:
        return base
    return base + "{" + ",".join(f"{k}={v}" for k, v in kept) + "}"


def normalize_candle_symbol(symbol: str) -> str:
    """dxFeed's canonical form of a candle symbol (spec §6.1, QDAPI CandleSymbol).

    Values are parsed case-insensitively and re-printed canonically, a period value of 1 is
    dropped (``AAPL{=1d}`` -> ``AAPL{=d}``), default attributes are dropped (period ``t``,
    ``price=last``, ``tho=false``, ``a=m``, ``pl=NaN``) and keys are sorted. Unknown keys are
    kept verbatim. Raises ValueError on a malformed attribute list.

    >>> normalize_candle_symbol("SPY{tho=TRUE,=5Minutes,price=BID}")
    'SPY{=5m,price=bid,tho=true}'
    """
    if not symbol.endswith("}") or "{" not in symbol:
        if "{" in symbol or "}" in symbol:
            raise ValueError(f"malformed candle symbol {symbol!r}")
        return symbol
    base, _, rest = symbol.partition("{")
    body = rest[:-1]
    if not base or "{" in body or "}" in body:
        raise ValueError(f"malformed candle symbol {symbol!r}")
    attrs: dict[str, str | None] = {}
    for part in body.split(",") if body else []:
        key, eq, value = part.partition("=")
        if not eq:
            raise ValueError(f"candle attribute without '=' in {symbol!r}: {part!r}")
        if key in attrs:
            raise ValueError(f"duplicate candle attribute {key!r} in {symbol!r}")
        attrs[key] = _normalize_attr(key, value)
    return _format(base, attrs)


def build_candle_symbol(
    symbol: str, period: str = "5m", *, extended_hours: bool = True, price: str | None = None
) -> str:
    """The normalized dxFeed candle symbol to subscribe for a plain symbol (spec §6.1).

    ``build_candle_symbol("SPY", "5m")`` -> ``"SPY{=5m}"``; ``period="1d"`` -> ``"{=d}"``;
    ``extended_hours=False`` adds ``tho=true``; ``price="bid"`` adds ``price=bid``. The period
    is read by `normalize_period` (surrounding whitespace ignored); the result equals
    ``normalize_candle_symbol(result)``, so tick candles (``t``, the default period) are the
    plain symbol.
    """
    if not symbol or "{" in symbol or "}" in symbol:
        raise ValueError(f"expected a plain streamer symbol, got {symbol!r}")
    attrs: dict[str, str | None] = {"": _normalize_attr("", period.strip())}
    if price is not None:
        attrs["price"] = _normalize_attr("price", price)
    if not extended_hours:
        attrs["tho"] = "true"
    return _format(symbol, attrs)


# --------------------------------------------------------------------------- the worker's edge

MAX_SYMBOL_LEN: Final = 128  # characters of a (candle) symbol

# printable ASCII but space, '"', '\\', '{', '}'; inner spaces allowed (futures options)
_SC = r"!#-\[\]-z|~"
_ATTR = r"[A-Za-z]*=[A-Za-z0-9._-]+"
_SYMBOL_RE: Final = re.compile(rf"[{_SC}](?:[ {_SC}]*[{_SC}])?(?:\{{{_ATTR}(?:,{_ATTR})*\}})?")


def validate_symbol(sym: object) -> str | None:
    """None if `sym` is an acceptable (candle) symbol, else why not.

    Accepted: 1..MAX_SYMBOL_LEN printable ASCII characters, no leading/trailing space, no
    ``"``, ``\\``, control or non-ASCII characters, optionally one dxFeed attribute suffix
    ``{=5m,tho=true}`` (``key=value`` pairs, at most one period ``=value``). This keeps every
    name representable in Redis keys, JSON and Influx line protocol. The attribute values are
    not parsed (a period the worker does not know is named by the full candle symbol).
    """
    if not isinstance(sym, str):
        return f"not a string: {type(sym).__name__}"
    if not sym:
        return "empty symbol"
    if len(sym) > MAX_SYMBOL_LEN:
        return f"symbol longer than {MAX_SYMBOL_LEN} characters"
    if _SYMBOL_RE.fullmatch(sym) is None:
        return f"bad symbol {sym[:40]!r}"
    if sym.count("{=") + sym.count(",=") > 1:
        return f"two periods in {sym!r}"
    return None


def with_period(sym: str, period: str) -> str:
    """`sym` with the period attribute `period` added when it has none (``SPY`` ->
    ``SPY{=5m}``, ``SPY{tho=true}`` -> ``SPY{=5m,tho=true}``)."""
    i = sym.find("{")
    if i < 0:
        return f"{sym}{{={period}}}"
    if "{=" in sym or ",=" in sym:
        return sym
    return f"{sym[: i + 1]}={period},{sym[i + 1 :]}"
