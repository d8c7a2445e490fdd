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


def _make(venv: Path) -> None:
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)


def _make_leaky(venv: Path) -> None:
    """A venv that sees the base interpreter's packages: what pyvenv.cfg says decides it."""
    _make(venv)
    cfg = venv / "pyvenv.cfg"
    text = cfg.read_text(encoding="utf-8")
    assert "include-system-site-packages = false" in text
    cfg.write_text(text.replace("= false", "= true"), encoding="utf-8")


def test_hermetic_venv_passes(tmp_path: Path) -> None:
    venv = tmp_path / "ok"
    _make(venv)
    r = _check(venv)
    assert r.returncode == 0, r.stderr


def test_system_site_packages_venv_is_refused(tmp_path: Path) -> None:
    venv = tmp_path / "leaky"
    _make_leaky(venv)
    r = _check(venv)
    assert r.returncode != 0
    assert "include-system-site-packages = true" in r.stderr


def test_non_venv_is_refused(tmp_path: Path) -> None:
    r = _check(tmp_path)
    assert r.returncode != 0
    assert "not a virtual environment" in r.stderr


def test_leaky_venv_is_made_anew(tmp_path: Path) -> None:
    venv = tmp_path / "old"
    _make_leaky(venv)
    base = getattr(sys, "_base_executable", sys.executable)
    r = subprocess.run(
        ["bash", "-c", f'. "{VENV_SH}" && make_venv "$1"', "make", str(venv)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PY": base},
    )
    assert r.returncode == 0, r.stderr
    assert "making it anew" in r.stderr
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    assert _check(venv).returncode == 0


def test_no_script_makes_a_leaky_venv() -> None:
    """Every venv of the test command is made by make_venv (tests/env/venv.sh), with no
    options: no other script creates one."""
    makers: list[str] = []
    for script in sorted((ROOT / "tests").rglob("*.sh")):
        text = script.read_text(encoding="utf-8")
        code = [ln.strip() for ln in text.splitlines() if not ln.lstrip().startswith("#")]
        assert not any("virtualenv" in ln for ln in code), script
        makers += [f"{script.name}: {ln}" for ln in code if " -m venv" in ln]
    assert makers == ['venv.sh: "${PY:-python3}" -m venv "$dir"'], makers


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
