"""Fixtures of the integration tests (the suite-wide ones are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.servers import RedisCluster, redis_cluster


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    """A real 6-node Redis Cluster on loopback (3 primaries + 3 replicas), per test."""
    with redis_cluster() as c:
        yield c
