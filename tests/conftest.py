"""Suite-wide fixtures: real redis-server / influxd processes (see tests/servers.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:  # `tests.oracles.*` / `tests.servers` importable under any runner
    sys.path.insert(0, _ROOT)

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
