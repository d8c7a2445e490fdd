"""examples/macd_bot.py runs as written against ``ttfast sim``: candles -> MACD cross -> a tagged
market order -> its fill from the account stream -> the position, for two orders (a buy, then
a sell that closes it, or the other way round when the sim's account already holds SPY).

Both run as a user runs them: ``ttfast sim`` on free ports in one process, the bot in another.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.servers import clean_env, ttfast_sim

ROOT = Path(__file__).resolve().parents[2]
BOT = ROOT / "examples" / "macd_bot.py"

pytestmark = pytest.mark.timeout(300)


def test_macd_bot_against_ttfast_sim() -> None:
    with ttfast_sim() as sim:
        bot = subprocess.run(
            [
                sys.executable,
                str(BOT),
                "--rest-url",
                sim.rest_url,
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
            env=clean_env(),
            timeout=280,
        )
    out = bot.stdout
    assert bot.returncode == 0, out + bot.stderr
    signals = re.findall(r"^signal (buy|sell): .*external-identifier (macd-\S+)\)$", out, re.M)
    assert len(signals) == 2 and signals[0][0] != signals[1][0], out
    assert len(re.findall(r"^order \d+ Filled: 1 @ [\d.]+", out, re.M)) == 2, out
    positions = re.findall(r"^position SPY: (-?\d+)$", out, re.M)
    assert len(positions) == 2 and {positions[0], positions[1]} == {"0", "1"}, out
    assert "orders 2, fills 2" in out
