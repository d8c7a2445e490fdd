"""The public stubs say what users get: mypy's reveal_type on public names, checked line by line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

CASES = Path(__file__).with_name("reveal_cases.py")
ERROR_CASES = Path(__file__).with_name("error_cases.py")


def _mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--strict-equality",
            "--no-incremental",
            "--show-traceback",
            "--show-error-codes",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_reveal_types_match() -> None:
    expected: dict[int, str] = {}
    for lineno, line in enumerate(CASES.read_text().splitlines(), 1):
        m = re.search(r"#\s*R:\s*(.+)$", line)
        if m:
            expected[lineno] = m.group(1).strip()
    assert expected, "no reveal cases"
    proc = _mypy(CASES)
    got: dict[int, str] = {}
    errors = []
    for line in proc.stdout.splitlines():
        m = re.match(r".*reveal_cases\.py:(\d+): note: Revealed type is \"(.+)\"$", line)
        if m:
            got[int(m.group(1))] = m.group(2)
        elif ": error:" in line:
            errors.append(line)
    assert not errors, "\n".join(errors)
    for lineno, typ in expected.items():
        assert got.get(lineno) == typ, f"line {lineno}: expected {typ}, mypy says {got.get(lineno)}"


def test_misuse_is_a_type_error() -> None:
    """Wrong Literal values (listen policy, ConnectionEvent.kind) and a non-Batch to apply()."""
    expected: dict[int, str] = {}
    for lineno, line in enumerate(ERROR_CASES.read_text().splitlines(), 1):
        m = re.search(r"#\s*E:\s*([a-z-]+)$", line)
        if m:
            expected[lineno] = m.group(1)
    assert expected, "no error cases"
    proc = _mypy(ERROR_CASES)
    got: dict[int, set[str]] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r".*error_cases\.py:(\d+): error: .*\[([a-z-]+)\]$", line)
        if m:
            got.setdefault(int(m.group(1)), set()).add(m.group(2))
    assert set(got) == set(expected), proc.stdout
    for lineno, code in expected.items():
        assert code in got[lineno], f"line {lineno}: expected [{code}], mypy says {got[lineno]}"
