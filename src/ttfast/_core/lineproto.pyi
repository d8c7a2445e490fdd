"""InfluxDB line protocol batch encoder (compiled)."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

_Ints = npt.NDArray[np.int64] | Sequence[int]
_Floats = npt.NDArray[np.float64] | Sequence[float]

def format_float(x: float) -> str: ...
def escape_measurement(name: str) -> bytes: ...
def escape_key(key: str) -> bytes: ...
def escape_string_field(value: str) -> bytes: ...

@disjoint_base
class LineEncoder:
    measurement: str
    tag_keys: tuple[str, ...]
    float_keys: tuple[str, ...]
    int_keys: tuple[str, ...]
    str_keys: tuple[str, ...]
    @property
    def rows_written(self) -> int: ...
    @property
    def fields_omitted(self) -> int: ...
    @property
    def rows_skipped(self) -> int: ...
    def __init__(
        self,
        measurement: str,
        tag_keys: Sequence[str] = (),
        float_keys: Sequence[str] = (),
        int_keys: Sequence[str] = (),
        str_keys: Sequence[str] = (),
    ) -> None: ...
    def encode(
        self,
        times: _Ints | None,
        tags: Sequence[str | Sequence[str]] = (),
        floats: Sequence[_Floats] = (),
        ints: Sequence[_Ints] = (),
        strs: Sequence[Sequence[str]] = (),
    ) -> bytes: ...
