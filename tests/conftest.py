"""Shared fixtures: repository paths, a fixed clock, a real redis-server and a real
PostgreSQL."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import running_postgres
from redis_server import RedisServer, running_redis

# pytester runs pytest inside a test (the pytest plugin's tests); pytest documents
# enabling it from the topmost conftest.
pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "conformance"
FIXED_NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)


@pytest.fixture
def fixed_clock() -> datetime.datetime:
    return FIXED_NOW


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of the test's own (skipped without one, except under CI)."""
    yield from running_redis(tmp_path)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The SQLAlchemy URL of a real PostgreSQL, one for the session (skipped without
    one, except under CI)."""
    for server in running_postgres():
        yield server.url
