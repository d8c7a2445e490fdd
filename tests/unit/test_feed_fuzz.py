"""Short run of the FEED_DATA fuzz target (tests/fuzz/fuzz_feed.py) on the normal build.

The sanitized (ASan/UBSan) run is tests/fuzz/run_fuzz.sh [seconds], called by CI.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_fuzz_feed_short_run(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "fuzz" / "fuzz_feed.py"),
            "-runs=3000",
            "-max_total_time=60",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Done 3000 runs" in proc.stderr or "Done" in proc.stderr
