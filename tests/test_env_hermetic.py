"""The test command's venv checks (tests/env/venv.sh) accept a hermetic venv and refuse others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_SH = ROOT / "tests" / "env" / "venv.sh"


def _check(venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'. "{VENV_SH}" && check_venv "$1"', "check", str(venv)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _make(venv: Path, *flags: str) -> None:
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run(
        [base, "-m", "venv", "--without-pip", *flags, str(venv)],
        check=True,
        timeout=120,
    )


def test_hermetic_venv_passes(tmp_path: Path) -> None:
    venv = tmp_path / "ok"
    _make(venv)
    r = _check(venv)
    assert r.returncode == 0, r.stderr


def test_system_site_packages_venv_is_refused(tmp_path: Path) -> None:
    venv = tmp_path / "leaky"
    _make(venv, "--system-site-packages")
    r = _check(venv)
    assert r.returncode != 0
    assert "include-system-site-packages = true" in r.stderr


def test_non_venv_is_refused(tmp_path: Path) -> None:
    r = _check(tmp_path)
    assert r.returncode != 0
    assert "not a virtual environment" in r.stderr


def test_no_script_makes_a_leaky_venv() -> None:
    for script in [ROOT / "tests" / "run.sh", *sorted((ROOT / "tests").rglob("*.sh"))]:
        text = script.read_text(encoding="utf-8")
        code = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
        assert "-m venv --system-site-packages" not in code, script
        assert "virtualenv --system-site-packages" not in code, script


def test_reqs_come_from_pyproject() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "env" / "reqs.py"), "deps", "test", "fuzz"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert any(r.startswith("picows") for r in out)
    assert any(r.startswith("atheris") for r in out)
    assert any(r.startswith("pytest") for r in out)
