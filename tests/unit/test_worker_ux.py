"""What a new user sees from ttfast-worker: defaults in --help, the values table by default on
the offline demo, a recent (not since-start) rate, and clear errors for meaningless flags."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ttfast.worker import parse_args
from ttfast.worker.status import RATE_WINDOW, WorkerStats, _recent_rates


def test_help_shows_defaults() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ttfast.worker", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    flat = " ".join(out.split())
    for frag in ("--status-interval", "(default: 1.0)", "--sim-speed", "(default: 60.0)"):
        assert frag in flat
    assert "docs/worker.md" in flat


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_duration_must_be_positive(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        parse_args(["--duration", value, "--no-serve"])
    assert e.value.code == 2
    assert "--duration must be a number of seconds > 0" in capsys.readouterr().err


def test_table_is_on_by_default_for_the_offline_demo() -> None:
    assert parse_args(["--no-serve"]).print_table is True  # --source sim without credentials
    assert parse_args(["--no-serve", "--no-print"]).print_table is False


def test_rate_is_recent_and_falls_to_zero_when_data_stops() -> None:
    s = WorkerStats()
    started = 0.0
    # 1000 events/s for 30 s, sampled every second
    for t in range(1, 31):
        s.events = s.rows = 1000 * t
        ev, rows = _recent_rates(s, float(t), started)
    assert ev == pytest.approx(1000.0) and rows == pytest.approx(1000.0)
    # then nothing for RATE_WINDOW + 1 s: the rate is 0, not 30000 / elapsed
    for t in range(31, 31 + int(RATE_WINDOW) + 2):
        ev, _ = _recent_rates(s, float(t), started)
    assert ev == 0.0
