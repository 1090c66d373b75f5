"""The DuckDB offline engine passes the offline contract (reference-implementation equality)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from featureline.offline.engines import OfflineEngine, open_engine
from featureline.testing.offline_contract import OfflineEngineContract


class TestDuckDBEngine(OfflineEngineContract):
    @pytest.fixture
    def engine(self) -> Iterator[OfflineEngine]:
        e = open_engine({"type": "duckdb", "threads": 2})
        yield e
        e.close()
