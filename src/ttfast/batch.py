"""One batch contract: what every source of events hands out and every consumer reads.

`Batch` (a typing.Protocol) is the public shape: ``event_type``, ``fields``, ``len()`` and
``column(name)`` (a 1-D numpy column, or None when the batch does not carry that field). It is
implemented by the dxLink decoder's compiled `EventBatch` and by `ColumnBatch`, the one batch
made of numpy columns: what non-dxLink sources build (Redis, files, tests) and what a conflated
``listen()`` buffer returns. `CandleStore.apply`, ``on_batch`` callbacks and ``listen()`` all
take or give a `Batch`.

Pure data: numpy and the decoder's field-kind table (the one place that maps dxLink field names
to column dtypes), nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ttfast._core import field_kinds

__all__ = ["Batch", "ColumnBatch"]


class Batch(Protocol):
    """A batch of events of one type, column-oriented (rows are events, columns are fields)."""

    @property
    def event_type(self) -> str:
        """The dxLink event type (``"Quote"``, ``"Candle"``...)."""
        ...

    @property
    def fields(self) -> tuple[str, ...]:
        """The field names the batch carries, in order."""
        ...

    def __len__(self) -> int:
        """Number of events."""
        ...

    def column(self, name: str) -> npt.NDArray[Any] | None:
        """Field `name` as a 1-D numpy column (one value per event), None if absent."""
        ...


_DTYPES: dict[str, npt.DTypeLike] = {
    "float64": np.float64,
    "int64": np.int64,
    "bool": np.bool_,
    "object": object,
}
_KINDS: dict[str, dict[str, str]] = {}  # event type -> field -> kind name (field_kinds)


def _kinds(event_type: str) -> dict[str, str]:
    kinds = _KINDS.get(event_type)
    if kinds is None:
        kinds = _KINDS[event_type] = field_kinds(event_type)
    return kinds


def _object_column(values: Iterable[Any] | npt.ArrayLike) -> npt.NDArray[Any]:
    if isinstance(values, np.ndarray) and values.dtype == object and values.ndim == 1:
        return np.ascontiguousarray(values)
    vals = list(values)  # type: ignore[arg-type]
    arr = np.empty(len(vals), dtype=object)  # strings stay str objects, never '<U' arrays
    arr[:] = vals
    return arr


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


class ColumnBatch:
    """A `Batch` made of numpy columns: ``ColumnBatch("Candle", {"eventSymbol": [...], ...})``.

    Each column is converted to the dtype the dxLink decoder gives that field (float64, int64,
    bool, or object for strings; ``index`` takes unsigned values past 2**63 and keeps their 64
    bits as int64, like the decoder); fields the decoder does not know keep numpy's inferred
    dtype. Absent fields are absent: ``column(name)`` returns None (the candle store then uses
    flags 0, NaN, the index derived from time and sequence). All columns have one length.
    """

    __slots__ = ("_cols", "column", "event_type", "fields", "size")

    event_type: str
    fields: tuple[str, ...]
    size: int
    #: column(name) -> array or None (a bound dict.get: the per-call cost stays tiny)
    column: Callable[[str], npt.NDArray[Any] | None]

    def __init__(
        self, event_type: str, columns: Mapping[str, Iterable[Any] | npt.ArrayLike]
    ) -> None:
        kinds = _kinds(event_type)
        cols: dict[str, npt.NDArray[Any]] = {}
        size: int | None = None
        for name, values in columns.items():
            kind = kinds.get(name)
            if kind == "object":
                arr = _object_column(values)
            elif name == "index":
                arr = _index_column(values)
            elif kind is not None:
                arr = np.ascontiguousarray(values, dtype=_DTYPES[kind])
            else:
                arr = np.ascontiguousarray(values)
            if arr.ndim != 1:
                raise ValueError(f"column {name!r} must be one-dimensional")
            if size is not None and len(arr) != size:
                raise ValueError(f"column {name!r} has {len(arr)} values, expected {size}")
            size = len(arr)
            cols[name] = arr
        self.event_type = event_type
        self._cols = cols
        self.size = size or 0
        self.fields = tuple(cols)
        self.column = cols.get

    @classmethod
    def from_rows(
        cls, event_type: str, fields: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> ColumnBatch:
        """From row tuples in `fields` order (like a dxLink COMPACT payload)."""
        rows = list(rows)
        return cls(event_type, {f: [r[i] for r in rows] for i, f in enumerate(fields)})

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self._cols[name]

    def __contains__(self, name: object) -> bool:
        return name in self._cols

    @property
    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """All columns by field name (a new dict of the same arrays)."""
        return dict(self._cols)

    def to_dicts(self) -> list[dict[str, Any]]:
        """One dict per event (field -> Python value)."""
        names = self.fields
        cols = [self._cols[n].tolist() for n in names]
        return [dict(zip(names, row, strict=True)) for row in zip(*cols, strict=True)]

    def __repr__(self) -> str:
        return f"<ColumnBatch {self.event_type} size={self.size} fields={self.fields}>"
