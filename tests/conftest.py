"""Shared fixtures. Service fixtures read a URL from the environment, with the local services
as defaults; a test needing an unreachable service skips with the reason, except under
CI=true where it fails, so CI never passes by skipping."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

POSTGRES_URL = os.environ.get(
    "FEATURELINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("FEATURELINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(url: str, default_port: int) -> str | None:
    u = urlparse(url)
    host, port = u.hostname or "127.0.0.1", u.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as e:
        return f"{host}:{port} unreachable ({e})"


def _need(url: str, default_port: int, what: str, env: str) -> str:
    problem = _reachable(url, default_port)
    if problem is not None:
        msg = f"{what} is needed for this test: {problem}. Set {env} or start the service."
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: failing instead of skipping)")
        pytest.skip(msg)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return _need(POSTGRES_URL, 5432, "PostgreSQL", "FEATURELINE_TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _need(REDIS_URL, 6379, "Redis", "FEATURELINE_TEST_REDIS_URL")


NATS_URL = os.environ.get("FEATURELINE_TEST_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture(scope="session")
def nats_url() -> str:
    """NATS with JetStream (nats-server -js)."""
    return _need(NATS_URL, 4222, "NATS (with JetStream)", "FEATURELINE_TEST_NATS_URL")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Kill process-pool workers still alive when the run ends. After a step SIGKILLs its
    worker, the stdlib's ProcessPoolExecutor can be left joining a worker it started while
    it was marking the pool broken, and the interpreter then waits for it at exit forever
    (seen: the summary printed, the run never exited). The pipeline executor's own recovery
    is tested by the suite; this only keeps a stdlib race from hanging CI."""
    import multiprocessing

    for p in multiprocessing.active_children():
        p.kill()
        p.join(5)
