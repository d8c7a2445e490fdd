"""The public stubs say what users get: mypy's reveal_type on public names, checked line by line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

CASES = Path(__file__).with_name("reveal_cases.py")


def test_reveal_types_match() -> None:
    expected: dict[int, str] = {}
    for lineno, line in enumerate(CASES.read_text().splitlines(), 1):
        m = re.search(r"#\s*R:\s*(.+)$", line)
        if m:
            expected[lineno] = m.group(1).strip()
    assert expected, "no reveal cases"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--show-traceback",
            str(CASES),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
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
