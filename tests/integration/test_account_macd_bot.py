"""examples/macd_bot.py runs as written against ``ttfast sim``: candles -> MACD cross -> a tagged
market order -> its fill from the account stream -> the position, for two orders (a buy, then
a sell that closes it, or the other way round when the sim's account already holds SPY).

Both run as a user runs them: ``ttfast sim`` on free ports in one process, the bot in another.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "examples" / "macd_bot.py"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.timeout(300)


def _env() -> dict[str, str]:
    drop = ("TASTYTRADE_", "TTFAST_", "PYTHONPATH")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def test_macd_bot_against_ttfast_sim() -> None:
    exe = BIN / "ttfast"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ttfast.cli"]
    sim = subprocess.Popen(
        [*cmd, "sim", "--dxlink-port", "0", "--rest-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    assert sim.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(sim.stdout.readline() for _ in range(2)),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    reader.join(60)
    try:
        m = re.search(r"ttfast sim: REST\s+(\S+)", "".join(lines))
        assert m, f"`ttfast sim` printed {lines!r}"
        bot = subprocess.run(
            [
                sys.executable,
                str(BOT),
                "--rest-url",
                m[1],
                "--orders",
                "2",
                "--duration",
                "240",
                "--period",
                "1s",
                "--macd",
                "3,6,3",
            ],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=280,
        )
    finally:
        if sim.poll() is None:
            sim.send_signal(signal.SIGINT)
            try:
                sim.wait(20)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait(20)
        sim.stdout.close()
    out = bot.stdout
    assert bot.returncode == 0, out + bot.stderr
    signals = re.findall(r"^signal (buy|sell): .*external-identifier (macd-\S+)\)$", out, re.M)
    assert len(signals) == 2 and signals[0][0] != signals[1][0], out
    assert len(re.findall(r"^order \d+ Filled: 1 @ [\d.]+", out, re.M)) == 2, out
    positions = re.findall(r"^position SPY: (-?\d+)$", out, re.M)
    assert len(positions) == 2 and {positions[0], positions[1]} == {"0", "1"}, out
    assert "orders 2, fills 2" in out
