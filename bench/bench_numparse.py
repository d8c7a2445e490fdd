"""Number parsing: ttfast's token parser vs Python's float() (pytest-benchmark + gate cases)."""

from __future__ import annotations

import pytest

from bench import datagen
from bench.gatelib import CallgrindCase, RatioCase
from ttfast._core import to_double

TOKENS = [repr(float(x)) for x in datagen.random_walk(1000, start=1000.0)]


def _ttfast() -> None:
    for t in TOKENS:
        to_double(t)


def _python() -> None:
    for t in TOKENS:
        float(t)


@pytest.mark.benchmark(group="numparse")
def test_bench_to_double(benchmark: pytest.FixtureDef) -> None:  # type: ignore[type-arg]
    benchmark(_ttfast)


@pytest.mark.benchmark(group="numparse")
def test_bench_float(benchmark: pytest.FixtureDef) -> None:  # type: ignore[type-arg]
    benchmark(_python)


GATE_RATIOS = [
    # Both go through a Python call per token; ours must stay within reach of float().
    RatioCase("numparse.to_double.vs_float", _ttfast, _python, floor=0.3, units=len(TOKENS)),
]

GATE_CALLGRIND = [
    CallgrindCase(
        "numparse.to_double",
        setup="from ttfast._core import to_double\ntoks = [repr(1.5 + i / 7) for i in range(1000)]",
        stmt="for t in toks: to_double(t)",
        toggle="*to_double*",
        per=1000,
    ),
]
