"""The REST example (docs/rest.md, once the README's) type-checks with mypy --strict, as printed.

It is what most users copy first: a wrong signature there (e.g. an ``str | None`` from a model
passed where a method wants ``str``) is a typing bug in the API, not in the example.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "rest.md"
SECTION = "## REST API: accounts, orders, instruments"


def readme_rest_example() -> str:
    text = DOC.read_text()
    start = text.index(SECTION + "\n")
    block = re.search(r"^```python\n(.*?)^```$", text[start:], re.S | re.M)
    assert block is not None, f"no python block under {SECTION!r}"
    return block.group(1)


def test_example_is_the_rest_client_example() -> None:
    code = readme_rest_example()
    compile(code, str(DOC), "exec")
    assert "TastytradeClient" in code and "place_order" in code


def test_readme_rest_example_passes_mypy_strict(tmp_path: Path) -> None:
    example = tmp_path / "readme_rest_example.py"
    example.write_text(readme_rest_example())
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            str(example),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
