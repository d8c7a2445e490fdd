"""ttfast._run.run: uvloop when installed, asyncio's default loop otherwise."""

from __future__ import annotations

import asyncio
import sys

import pytest

from ttfast._run import run


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_runs_on_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")
    assert run(_loop_module()).startswith("uvloop")


def test_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert run(_loop_module()).startswith("asyncio")


def test_returns_the_result_and_propagates_errors() -> None:
    async def boom() -> None:
        raise KeyError("x")

    assert run(asyncio.sleep(0, result=42)) == 42
    with pytest.raises(KeyError):
        run(boom())
