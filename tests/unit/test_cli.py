"""`ttfast --version` and `ttfast doctor` on the installed package."""

from __future__ import annotations

import subprocess
import sys

import ttfast


def test_version_flag() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ttfast.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"ttfast {ttfast.__version__}"


def test_doctor_reports_compiled_core() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ttfast.cli", "doctor"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "compiled core: loaded" in proc.stdout
    assert "ttfast._core.numparse" in proc.stdout
    assert "status: ok" in proc.stdout


def test_core_is_compiled_not_python() -> None:
    import ttfast._core.numparse as m

    assert m.__file__ is not None and m.__file__.endswith(".so")
