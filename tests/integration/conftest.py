"""Fixtures of the feature-server tests: one repo with example data, a server on it, a client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import featureline as fl
from featureline.server import create_app
from tests.integration.server_kit import MAX_BODY, MAX_ENTITIES, ThreadServer


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("server") / "drivers"
    fl.init_repo(root, project="drivers")
    with fl.FeatureStore(root) as store:
        store.apply(message="first")
        store.ingest("driver_stats")
        store.materialize_incremental()
    return root


@pytest.fixture(scope="module")
def store(repo: Path) -> Iterator[fl.FeatureStore]:
    """A second, independent store on the same repo: what the server returns is checked against it."""
    with fl.FeatureStore(repo) as s:
        yield s


@pytest.fixture(scope="module")
def server(repo: Path) -> Iterator[str]:
    app = create_app(repo, max_entities=MAX_ENTITIES, max_body_bytes=MAX_BODY)
    with ThreadServer(app) as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=15) as c:
        yield c
