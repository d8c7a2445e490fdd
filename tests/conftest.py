"""Suite-wide fixtures: real redis-server / influxd processes (see tests/servers.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:  # `tests.oracles.*` / `tests.servers` importable under any runner
    sys.path.insert(0, _ROOT)


def _check_test_venv() -> None:
    """Under the test command (TTFAST_TEST_VENV set), the suite must run on that hermetic venv."""
    want = os.environ.get("TTFAST_TEST_VENV")
    if not want:
        return
    if os.path.realpath(sys.prefix) != os.path.realpath(want) or sys.prefix == sys.base_prefix:
        raise pytest.UsageError(
            f"tests run by {sys.executable} (prefix {sys.prefix}), not by the test command's "
            f"venv {want}"
        )
    cfg = Path(want, "pyvenv.cfg").read_text(encoding="utf-8").lower().replace(" ", "")
    if "include-system-site-packages=true" in cfg:
        raise pytest.UsageError(f"{want} has include-system-site-packages = true (not hermetic)")


_check_test_venv()

from tests.servers import InfluxServer, RedisServer, influx_server, redis_server  # noqa: E402


@pytest.fixture
def redis_srv() -> Iterator[RedisServer]:
    """A fresh redis-server per test (starts in ~15 ms; tests may kill/restart it)."""
    with redis_server() as srv:
        yield srv


@pytest.fixture(scope="session")
def influx_srv() -> Iterator[InfluxServer]:
    """One influxd for the session; tests use their own database names."""
    with influx_server() as srv:
        yield srv
