"""Freshness (issue 10 item 6): event-to-servable latency is measured on every online write,
staleness per view, and a view that misses its objective reads as STALE; /metrics and
`featureline freshness` show both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from click.testing import CliRunner
from prometheus_client import generate_latest

import featureline as fl
from featureline.cli import cli
from featureline.server._metrics import Metrics
from tests.helpers import new_store

USER = fl.Entity("user", ["user_id"])


def _view(objective: timedelta | None) -> fl.FeatureView:
    return fl.FeatureView(
        "clicks",
        [USER],
        [fl.Field("user_id", fl.Int64), fl.Field("n", fl.Int64)],
        freshness=objective,
    )


def _row(user: int, age: timedelta, n: int) -> dict[str, object]:
    return {"user_id": user, "event_timestamp": datetime.now(UTC) - age, "n": n}


def test_a_view_that_misses_its_objective_reads_stale_and_recovers(tmp_path: Path) -> None:
    store = new_store(tmp_path, USER, _view(timedelta(seconds=30)))
    store.push("clicks", [_row(1, timedelta(minutes=4), 7)])
    got = store.get_online_features(["clicks:n"], [{"user_id": 1}, {"user_id": 2}])
    assert got.to_dict()["n"] == [7, None]  # the value is still served ...
    assert got.statuses["n"] == ["STALE", "NOT_FOUND"]  # ... marked stale
    info = store.freshness()["clicks"]
    assert info["ok"] is False and info["objective_seconds"] == 30
    assert info["latency"]["count"] == 1
    assert 60 < info["latency"]["p50_seconds"] <= 300  # 4 minutes: the 300 s bucket
    store.push("clicks", [_row(2, timedelta(0), 8)])
    store._reads = None  # a new read source: no cached staleness (it is re-read every second)
    got = store.get_online_features(["clicks:n"], [{"user_id": 1}, {"user_id": 2}])
    assert got.statuses["n"] == ["PRESENT", "PRESENT"]
    info = store.freshness()["clicks"]
    assert info["ok"] is True and info["latency"]["count"] == 2
    assert info["latency"]["buckets"][0.5] + info["latency"]["buckets"][0.25] >= 0
    # /metrics exports the histogram and the objective
    text = generate_latest(Metrics(store.freshness).registry).decode()
    assert 'featureline_event_to_servable_seconds_count{view="clicks"} 2.0' in text
    assert 'featureline_view_freshness_objective_seconds{view="clicks"} 30.0' in text
    assert 'featureline_view_freshness_ok{view="clicks"} 1.0' in text
    out = CliRunner().invoke(cli, ["--repo", str(store.repo_path), "freshness"])
    assert out.exit_code == 0, out.output
    assert "clicks" in out.output and "ok" in out.output and "30 seconds" in out.output
    store.close()


def test_without_an_objective_nothing_is_stale_and_materialize_records_latency(
    tmp_path: Path,
) -> None:
    store = new_store(tmp_path, USER, _view(None))
    rows = [_row(1, timedelta(hours=3), 1), _row(2, timedelta(hours=3), 2)]
    store.ingest("clicks", pa.Table.from_pylist(rows))
    store.materialize()
    got = store.get_online_features(["clicks:n"], [{"user_id": 1}])
    assert got.statuses["n"] == ["PRESENT"]
    info = store.freshness()["clicks"]
    assert info["ok"] is None and info["latency"]["count"] == 2
    assert info["latency"]["p99_seconds"] == 21600.0  # 3 hours: the 6-hour bucket
    store.close()


def test_a_bad_objective_is_refused(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    try:
        store.apply([USER, _view(timedelta(seconds=-1))])
    except fl.FeaturelineError as e:
        assert "freshness objective" in str(e)
    else:
        raise AssertionError("a negative freshness objective was accepted")
