"""Pure-Python twin of ttfast._core.lineproto.LineEncoder (obviously right, slow)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def check(s: str, what: str) -> None:
    if not s:
        raise ValueError(f"{what} must not be empty")
    if "\n" in s or "\r" in s or s.endswith("\\"):
        raise ValueError(f"{what} {s!r} not representable")


def esc_measurement(s: str) -> str:
    check(s, "measurement")
    if s.startswith("#"):
        raise ValueError("comment")
    return s.replace(",", "\\,").replace(" ", "\\ ")


def esc_key(s: str) -> str:
    check(s, "key")
    return s.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def esc_str_field(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Result:
    body: bytes
    rows_written: int
    fields_omitted: int
    rows_skipped: int


def encode(
    measurement: str,
    tag_keys: Sequence[str],
    float_keys: Sequence[str],
    int_keys: Sequence[str],
    str_keys: Sequence[str],
    times: Sequence[int] | None,
    tags: Sequence[str | Sequence[str]],
    floats: Sequence[Sequence[float]],
    ints: Sequence[Sequence[int]],
    strs: Sequence[Sequence[str]],
    n: int,
) -> Result:
    lines = []
    omitted = skipped = 0
    order = sorted(range(len(tag_keys)), key=lambda j: tag_keys[j])
    for i in range(n):
        line = esc_measurement(measurement)
        for j in order:
            col = tags[j]
            v = col if isinstance(col, str) else col[i]
            if v:
                line += f",{esc_key(tag_keys[j])}={esc_key(v)}"
        fields = []
        for k, key in enumerate(float_keys):
            x = float(floats[k][i])
            if math.isfinite(x):
                fields.append(f"{esc_key(key)}={x!r}")
            else:
                omitted += 1
        for k, key in enumerate(int_keys):
            fields.append(f"{esc_key(key)}={int(ints[k][i])}i")
        for k, key in enumerate(str_keys):
            fields.append(f"{esc_key(key)}={esc_str_field(strs[k][i])}")
        if not fields:
            skipped += 1
            continue
        line += " " + ",".join(fields)
        if times is not None:
            line += f" {int(times[i])}"
        lines.append(line + "\n")
    return Result("".join(lines).encode(), len(lines), omitted, skipped)
