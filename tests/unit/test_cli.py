"""`ttfast --version` and `ttfast doctor` on the installed package."""

from __future__ import annotations

import subprocess
import sys

import pytest

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


def test_sim_subcommand_prints_urls_and_stops_on_sigint() -> None:
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "ttfast.cli", "sim", "--dxlink-port", "0", "--rest-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[0].startswith("ttfast sim: dxLink  ws://127.0.0.1:"), lines
        assert "/api-quote-tokens -> ws://127.0.0.1:" in lines[1], lines
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()


def test_worker_help_documents_limits_with_defaults() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ttfast.worker", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "--max-symbols N" in out and "(default: 10000; env TTFAST_MAX_SYMBOLS)" in out
    assert (
        "--idle-discard SECONDS" in out and "(default: 0 = never; env TTFAST_IDLE_DISCARD)" in out
    )
    assert "snapshot:SPY{=1h}" in out  # the naming of non-primary periods


def test_worker_parse_args_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    from ttfast.worker import parse_args

    cfg = parse_args(["--max-symbols", "7", "--idle-discard", "90", "--symbols", "SPY"])
    assert cfg.max_symbols == 7 and cfg.idle_discard == 90.0
    monkeypatch.setenv("TTFAST_MAX_SYMBOLS", "123")
    monkeypatch.setenv("TTFAST_IDLE_DISCARD", "5")
    cfg = parse_args(["--symbols", "SPY"])
    assert cfg.max_symbols == 123 and cfg.idle_discard == 5.0
    monkeypatch.delenv("TTFAST_MAX_SYMBOLS")
    monkeypatch.delenv("TTFAST_IDLE_DISCARD")
    assert parse_args(["--symbols", "SPY"]).max_symbols == 10_000
    for bad in (
        ["--max-symbols", "0"],
        ["--idle-discard", "-1"],
        ["--symbols", "SPY,BAD\\"],
        ["--symbols", "A,B,C", "--max-symbols", "2"],
    ):
        with pytest.raises(SystemExit):
            parse_args(bad)
