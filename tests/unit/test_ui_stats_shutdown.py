"""The UI statistics' background thread stops with the server (issue 12): the mergeable state of
a big view is built on a thread (`ui-stats-state`) after its first statistics page; the app's
lifespan exit stops it before it closes the store — a build still queued is cancelled, a running
one stops between its scans —, so no thread outlives the app and no build fails on a closed
engine (with a warning) after it."""

from __future__ import annotations

import logging
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import featureline as fl
import featureline.server._ui_stats as ui_stats
from featureline.offline.engines.duckdb import DuckDBEngine
from featureline.server import create_app
from tests.helpers import TS, new_store
from tests.unit.test_ui_stats import _view

with warnings.catch_warnings():  # starlette asks for httpx2 instead of httpx (not installed)
    warnings.filterwarnings("ignore", message=".*httpx2")
    from starlette.testclient import TestClient

PREFIX = "ui-stats-state"


def _repo(tmp_path: Path) -> Path:
    account, view = _view()
    store = new_store(tmp_path, account, view)
    rng = np.random.default_rng(3)
    n = 2_000
    times = np.datetime64("2025-03-01T00:00:00", "us") + rng.integers(
        0, 5 * 86_400_000_000, n
    ).astype("timedelta64[us]")
    store.ingest(
        "acct",
        pa.table(
            {
                "account_id": pa.array(rng.integers(0, 100, n), pa.int64()),
                "event_timestamp": pa.array(times, TS),
                "amount": pa.array(rng.random(n), pa.float64()),
                "count": pa.array(rng.integers(0, 9, n), pa.int64()),
                "tag": pa.array([f"t{i}" for i in rng.integers(0, 5, n)], pa.string()),
                "flag": pa.array(rng.random(n) < 0.5, pa.bool_()),
                "seen_at": pa.array(times, TS),
                "constant": pa.array(np.full(n, 1.0), pa.float64()),
            }
        ),
    )
    root = store.repo_path
    store.close()
    return Path(root)


def _state_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(PREFIX) and t not in before]


def _serve_one_page(root: Path) -> None:
    with TestClient(create_app(root), base_url="http://localhost") as client:
        r = client.get("/ui/api/views/acct")
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == 2_000


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_state_thread_stops_with_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = _repo(tmp_path)
    monkeypatch.setattr(ui_stats, "STATE_SYNC_ROWS", 10)  # 2,000 rows: built in the background
    before = set(threading.enumerate())
    caplog.set_level(logging.DEBUG, logger="featureline")
    _serve_one_page(root)
    assert _state_threads(before) == []
    assert _warnings(caplog) == []


def test_a_running_build_stops_between_its_scans_without_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The build is still running when the server shuts down (each scan made slow): it stops
    at its next scan, before the store is closed; no warning."""
    root = _repo(tmp_path)
    monkeypatch.setattr(ui_stats, "STATE_SYNC_ROWS", 10)
    started = threading.Event()
    real = DuckDBEngine.connection

    class Slow:
        """A cursor whose every query takes 0.3 s more (a scan of a big view)."""

        def __init__(self, con: Any) -> None:
            self.con = con

        def _slow(self) -> None:
            started.set()
            time.sleep(0.3)

        def execute(self, *a: Any, **k: Any) -> Any:
            self._slow()
            return self.con.execute(*a, **k)

        def sql(self, *a: Any, **k: Any) -> Any:
            self._slow()
            return self.con.sql(*a, **k)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.con, name)

    def slow_connection(self: Any) -> Any:
        con = real(self)
        return Slow(con) if threading.current_thread().name.startswith(PREFIX) else con

    monkeypatch.setattr(DuckDBEngine, "connection", slow_connection)
    before = set(threading.enumerate())
    caplog.set_level(logging.DEBUG, logger="featureline")
    t = time.perf_counter()
    with TestClient(create_app(root), base_url="http://localhost") as client:
        assert client.get("/ui/api/views/acct").status_code == 200
        assert started.wait(10)
    took = time.perf_counter() - t
    assert _state_threads(before) == []
    assert _warnings(caplog) == []
    assert took < 5, took


def test_no_build_starts_after_close(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _repo(tmp_path)
    monkeypatch.setattr(ui_stats, "STATE_SYNC_ROWS", 10)
    before = set(threading.enumerate())
    with fl.FeatureStore(root) as store:
        stats = ui_stats.ViewStats(store)
        fv = store.get_feature_view("acct")
        stats.close()
        assert stats.stats_for(fv)["rows"] == 2_000  # the page still answers
        stats.wait_stats_states()
        assert _state_threads(before) == []
