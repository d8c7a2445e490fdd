"""Lint, format and strict typing of the source tree, and the stubs against the compiled modules.

These run inside the test command so CI is the only gate (no separate lint job).
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY_TREES = ["src", "tests", "bench"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_check() -> None:
    proc = _run("ruff", "check", *PY_TREES)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format() -> None:
    proc = _run("ruff", "format", "--check", *PY_TREES)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict_src() -> None:
    proc = _run("mypy", "--strict", "src")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _compiled_modules() -> list[str]:
    import ttfast._core as core

    names = []
    for info in pkgutil.iter_modules(core.__path__, "ttfast._core."):
        if info.name.endswith("_cyutility"):
            continue
        mod = importlib.import_module(info.name)
        if str(getattr(mod, "__file__", "")).endswith(".so"):
            names.append(info.name)
    return sorted(names)


def test_every_compiled_module_has_a_stub() -> None:
    import ttfast._core as core

    stub_dir = Path(core.__file__).parent
    src_stub_dir = ROOT / "src" / "ttfast" / "_core"
    mods = _compiled_modules()
    assert mods, "no compiled module found: is ttfast built?"
    for name in mods:
        leaf = name.rsplit(".", 1)[1]
        assert (stub_dir / f"{leaf}.pyi").exists() or (src_stub_dir / f"{leaf}.pyi").exists(), (
            f"{name} has no .pyi stub"
        )


def test_stubtest_compiled_modules() -> None:
    """mypy's stubtest: every stub matches what the compiled module really exports."""
    mods = _compiled_modules()
    proc = _run(
        "mypy.stubtest",
        "--allowlist",
        "tests/typing/stubtest_allowlist.txt",
        "--ignore-missing-stub",
        "--ignore-unused-allowlist",
        *mods,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
