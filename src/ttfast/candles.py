"""Candles: the compiled CandleStore plus candle-symbol helpers (spec dxlink.md §6).

`CandleStore` keeps the last N bars per candle symbol consistent under dxFeed's eventFlags
model (snapshots newest-first, TX_PENDING groups, removals, forming-bar updates). This module
adds the pure-Python pieces around it: `normalize_candle_symbol` (dxFeed's canonical candle
symbol form, §6.1) and `CandleBatch`, a column batch for non-dxLink sources (tests, Redis,
files) that `CandleStore.apply` accepts like a decoded EventBatch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ttfast._core import (
    CHANGE_APPENDED,
    CHANGE_CORRECTED,
    CHANGE_EVICTED,
    CHANGE_REMOVED,
    CHANGE_REVISED_LAST,
    CHANGE_SNAPSHOT,
    CandleBar,
    CandleSeries,
    CandleStore,
    Changes,
    SymbolChange,
    candle_index,
    candle_time,
)

__all__ = [
    "CHANGE_APPENDED",
    "CHANGE_CORRECTED",
    "CHANGE_EVICTED",
    "CHANGE_REMOVED",
    "CHANGE_REVISED_LAST",
    "CHANGE_SNAPSHOT",
    "CandleBar",
    "CandleBatch",
    "CandleSeries",
    "CandleStore",
    "Changes",
    "SymbolChange",
    "candle_index",
    "candle_time",
    "normalize_candle_symbol",
]

# --------------------------------------------------------------------------- candle symbols

# (full name, canonical string) in QDAPI CandleType declaration order (parse order matters).
_TYPES: tuple[tuple[str, str], ...] = (
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
_TYPE_STRINGS = {s for _, s in _TYPES}
# other attributes: key -> ((ENUM_NAME, canonical string), ...), default first
_ENUMS: dict[str, tuple[tuple[str, str], ...]] = {
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
_NUMBER_CHARS = set("0123456789.-+eE")


def _parse_type(s: str) -> str:
    """QDAPI CandleType.parse: exact string, else case-insensitive name prefix, plural 's'."""
    if not s:
        raise ValueError("missing candle period type")
    if s in _TYPE_STRINGS:
        return s
    n = len(s)
    for name, string in _TYPES:
        if len(name) >= n and name[:n].lower() == s.lower():
            return string
        if s.endswith("s") and name.lower() == s[:-1].lower():  # Minutes, Days, ...
            return string
    raise ValueError(f"unknown candle period type {s!r}")


def _format_value(v: float) -> str:
    if v == int(v):
        return str(int(v))
    return repr(v)


def _normalize_period(value: str) -> str | None:
    """Canonical period string, or None for the default period (1 tick)."""
    i = 0
    while i < len(value) and value[i] in _NUMBER_CHARS:
        i += 1
    num, typ = value[:i], value[i:]
    amount = float(num) if num else 1.0
    if not math.isfinite(amount) or amount <= 0:
        raise ValueError(f"candle period value must be positive: {value!r}")
    t = _parse_type(typ)
    if amount == 1.0:
        return None if t == "t" else t
    return _format_value(amount) + t


def _normalize_enum(key: str, value: str) -> str | None:
    options = _ENUMS[key]
    for _, string in options:
        if value.lower() == string:
            return None if string == options[0][1] else string
    n = len(value)
    for name, string in options:
        if n and len(name) >= n and name[:n].lower() == value.lower():
            return None if string == options[0][1] else string
    raise ValueError(f"unknown value {value!r} for candle attribute {key!r}")


def normalize_candle_symbol(symbol: str) -> str:
    """dxFeed's canonical form of a candle symbol (spec §6.1, QDAPI CandleSymbol).

    Values are parsed case-insensitively and re-printed canonically, a period value of 1 is
    dropped (``AAPL{=1d}`` → ``AAPL{=d}``), default attributes are dropped (period ``t``,
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
    attrs: dict[str, str] = {}
    for part in body.split(",") if body else []:
        key, eq, value = part.partition("=")
        if not eq:
            raise ValueError(f"candle attribute without '=' in {symbol!r}: {part!r}")
        if key in attrs:
            raise ValueError(f"duplicate candle attribute {key!r} in {symbol!r}")
        norm: str | None
        if key == "":
            norm = _normalize_period(value)
        elif key in _ENUMS:
            norm = _normalize_enum(key, value)
        elif key == "pl":
            level = float(value)
            norm = None if math.isnan(level) else _format_value(level)
        else:
            norm = value
        attrs[key] = norm if norm is not None else "\0"
    kept = sorted((k, v) for k, v in attrs.items() if v != "\0")
    if not kept:
        return base
    return base + "{" + ",".join(f"{k}={v}" for k, v in kept) + "}"


# --------------------------------------------------------------------------- CandleBatch

_INT_FIELDS = frozenset({"eventFlags", "index", "time", "sequence", "count", "eventTime"})
_OBJECT_FIELDS = frozenset({"eventSymbol", "eventType"})


def _index_column(values: Iterable[Any] | npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Index values as int64 (the decoder's column type, a Java long): unsigned indices past
    2**63 (bars after 2038-01-19, as `candle_index` returns them) keep their 64 bits."""
    if isinstance(values, np.ndarray) and values.dtype == np.uint64:
        return np.ascontiguousarray(values).view(np.int64)
    try:
        return np.ascontiguousarray(values, dtype=np.int64)
    except OverflowError:
        pass
    try:
        return np.ascontiguousarray(values, dtype=np.uint64).view(np.int64)
    except OverflowError:
        raise ValueError(
            "column 'index' holds values outside [-2**63, 2**64) or mixes negative values "
            "with values >= 2**63"
        ) from None


class CandleBatch:
    """A Candle batch built from columns (the shape of a decoded EventBatch).

    `CandleBatch({"eventSymbol": [...], "time": [...], "close": [...]})`; absent columns are
    absent (the store uses flags 0, NaN, index derived from time and sequence). `index` takes
    the unsigned values of `candle_index` (or their signed 64-bit form) and holds them as int64,
    like the decoder.
    """

    event_type = "Candle"

    def __init__(self, columns: Mapping[str, Iterable[Any] | npt.ArrayLike]) -> None:
        cols: dict[str, npt.NDArray[Any]] = {}
        size: int | None = None
        for name, values in columns.items():
            if name in _OBJECT_FIELDS:
                vals = list(values)  # type: ignore[arg-type]
                arr = np.empty(len(vals), dtype=object)
                arr[:] = vals
            elif name == "index":
                arr = _index_column(values)
            elif name in _INT_FIELDS:
                arr = np.ascontiguousarray(values, dtype=np.int64)
            else:
                arr = np.ascontiguousarray(values, dtype=np.float64)
            if arr.ndim != 1:
                raise ValueError(f"column {name!r} must be one-dimensional")
            if size is not None and len(arr) != size:
                raise ValueError(f"column {name!r} has {len(arr)} values, expected {size}")
            size = len(arr)
            cols[name] = arr
        self._cols = cols
        self.size = size or 0
        self.fields = tuple(cols)
        # column(name) -> array or None; a bound dict.get keeps the per-call cost tiny
        self.column: Callable[[str], npt.NDArray[Any] | None] = cols.get

    @classmethod
    def from_rows(cls, fields: Sequence[str], rows: Iterable[Sequence[Any]]) -> CandleBatch:
        """From row tuples in `fields` order (like a dxLink COMPACT payload)."""
        rows = list(rows)
        return cls({f: [r[i] for r in rows] for i, f in enumerate(fields)})

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"<CandleBatch size={self.size} fields={self.fields}>"
