"""The web UI's JSON API (issue 12) without a browser: search, a view's page with statistics and
a histogram, runs and a comparison, models, lineage, the point-in-time explorer, and errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

import featureline as fl
from featureline.server import create_app
from tests.integration.server_kit import ThreadServer, error
from tests.ui_kit import ui_repo

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("ui") / "drivers"
    info = ui_repo(root)
    with ThreadServer(create_app(root)) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield {**info, "client": c, "repo": root}


def get(ui: dict[str, Any], path: str, **params: str) -> Any:
    r = ui["client"].get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_search_finds_each_kind_by_name_description_owner_and_tag(ui: dict[str, Any]) -> None:
    kinds = {r["kind"]: r for r in get(ui, "/ui/api/search", q="driver")["results"]}
    assert {"entity", "feature_view", "feature_service", "model"} <= set(kinds)
    assert kinds["feature_view"]["name"] == "driver_stats@v1"
    assert [r["name"] for r in get(ui, "/ui/api/search", q="hourly quality")["results"]] == [
        "driver_stats@v1"
    ]  # the description
    assert "driver_stats@v1" in [
        r["name"] for r in get(ui, "/ui/api/search", q="ml@example")["results"]
    ]
    assert "driver_stats@v1" in [
        r["name"] for r in get(ui, "/ui/api/search", q="team:marketplace")["results"]
    ]
    assert get(ui, "/ui/api/search", q="no-such-thing")["total"] == 0
    assert get(ui, "/ui/api/search")["total"] >= 4  # empty: everything


def test_a_view_page_has_its_definition_history_and_statistics(ui: dict[str, Any]) -> None:
    v = get(ui, "/ui/api/views/driver_stats")
    assert v["definition"]["name"] == "driver_stats" and [x["version"] for x in v["versions"]] == [
        1
    ]
    assert v["diffs"] == [] and v["history"][0]["registry_version"] == 1
    with fl.FeatureStore(ui["repo"]) as store:
        described = store.describe("driver_stats")
    assert v["rows"] == described["rows"] > 0
    trips = v["features"]["avg_daily_trips"]
    assert trips["min"] == described["features"]["avg_daily_trips"]["min"]
    assert sum(trips["histogram"]["counts"]) == v["rows"]  # no nulls: every row in a bin
    assert len(trips["histogram"]["counts"]) == 20
    p = trips["percentiles"]
    assert trips["min"] <= p["p25"] <= p["p50"] <= p["p75"] <= trips["max"]
    again = get(ui, "/ui/api/views/driver_stats")
    assert again["features"] == v["features"]  # cached: the same statistics
    by_time = v["rows_by_time"]
    assert by_time["unit"] == "hour" and sum(b["rows"] for b in by_time["buckets"]) == v["rows"]
    assert len(v["preview"]) == 10 and "conv_rate" in v["preview"][0]
    assert v["freshness"]["staleness_seconds"] > 0
    error(ui["client"].get("/ui/api/views/driver_stat"), 404, "driver_stats")


def test_runs_list_a_run_and_a_comparison(ui: dict[str, Any]) -> None:
    first, second = ui["runs"]
    rows = get(ui, "/ui/api/runs")["runs"]
    assert [r["run_id"] for r in rows][:2] == [second, first]
    run = get(ui, f"/ui/api/runs/{first}")
    assert run["status"] == "succeeded" and run["params"]["n"] == 600
    assert "train.auc" in run["metrics"]
    steps = {s["step"]: s for s in run["steps"]}
    assert "train" in steps and steps["train"]["duration_seconds"] >= 0
    graph = {(e["source"], e["target"]) for e in run["edges"]}
    assert ("sample_trips", "build_training_set") in graph
    assert ("build_training_set", "train") in graph
    assert all("/" not in line[:1] for s in run["steps"] for line in s["logs"].splitlines())
    both = get(ui, "/ui/api/runs", ids=f"{first},{second}")["runs"]
    assert [r["params"]["n"] for r in both] == [600, 900]
    assert both[1]["metrics"] == get(ui, f"/ui/api/runs/{second}")["metrics"]
    listed = get(ui, "/ui/api/runs", details="true")["runs"]
    assert [(r["run_id"], r["params"]["n"]) for r in listed] == [(second, 900), (first, 600)]
    assert "metrics" not in get(ui, "/ui/api/runs")["runs"][0]
    error(ui["client"].get("/ui/api/runs", params={"details": "yes"}), 400, "details")
    error(ui["client"].get("/ui/api/runs/nope"), 404, "does not exist")
    error(ui["client"].get("/ui/api/runs", params={"limit": "0"}), 400, "limit")
    error(ui["client"].get("/ui/api/runs", params={"bogus": "1"}), 400, "bogus")


def test_models_and_lineage(ui: dict[str, Any]) -> None:
    (m,) = get(ui, "/ui/api/models")["models"]
    assert (
        m["name"] == "driver_quality" and m["versions"] == 2 and m["aliases"] == {"production": 2}
    )
    model = get(ui, "/ui/api/models/driver_quality")
    assert [v["version"] for v in model["versions"]] == [2, 1]
    assert model["versions"][1]["run_id"] == ui["runs"][0]
    g = get(ui, "/ui/api/lineage/driver_quality")
    kinds = {n["kind"] for n in g["nodes"]}
    assert kinds == {"feature_view", "training_set", "run", "model", "alias"}
    edges = {(e["source"].split(":")[0], e["target"].split(":")[0]) for e in g["edges"]}
    assert edges == {
        ("feature_view", "training_set"),
        ("training_set", "run"),
        ("run", "model"),
        ("model", "alias"),
    }
    one = get(ui, "/ui/api/lineage/driver_quality", version="1")
    assert [n["id"] for n in one["nodes"] if n["kind"] == "model"] == ["model:driver_quality:1"]
    assert "alias" not in {n["kind"] for n in one["nodes"]}  # production has moved to v2
    aliased = [e["source"] for e in g["edges"] if e["target"].startswith("alias:")]
    assert aliased == ["model:driver_quality:2"]
    error(ui["client"].get("/ui/api/models/nope"), 404, "driver_quality")
    error(ui["client"].get("/ui/api/lineage/driver_quality", params={"version": "9"}), 404)


def test_point_in_time_explorer_matches_get_training_set(ui: dict[str, Any]) -> None:
    at = "2026-11-28T05:30:00Z"
    with fl.FeatureStore(ui["repo"]) as store:
        first = store.preview("driver_stats", 1).to_pylist()[0]
        key = first["driver_id"]
        when = first.get("event_timestamp")
        t = when.isoformat() if isinstance(when, datetime) else at
        entity = pa.table(
            {
                "driver_id": [key],
                "event_timestamp": pa.array([datetime.fromisoformat(t)], pa.timestamp("us", "UTC")),
            }
        )
        want = store.get_training_set(entity, ["driver_stats:conv_rate"]).table.to_pylist()[0]
    r = get(ui, "/ui/api/pit", view="driver_stats", key=str(key), at=t)
    assert r["training_set"]["conv_rate"] == want["conv_rate"] is not None
    assert r["history"] and all(h["known_at_as_of"] for h in r["history"])
    stamps = [h["event_timestamp"] for h in r["history"]]
    assert stamps == sorted(stamps)
    with fl.FeatureStore(ui["repo"]) as store:
        applied = store.history()[0].applied_at.isoformat()  # before the rows were ingested
    early = get(ui, "/ui/api/pit", view="driver_stats", key=str(key), at=t, as_of=applied)
    assert early["training_set"]["conv_rate"] is None  # nothing was known then
    assert not any(h["known_at_as_of"] for h in early["history"])
    c = ui["client"]
    error(c.get("/ui/api/pit", params={"view": "driver_stats"}), 400, "key")
    error(c.get("/ui/api/pit", params={"view": "driver_stats", "key": "x"}), 400, "integer")
    error(
        c.get("/ui/api/pit", params={"view": "driver_stats", "key": "1", "at": "soon"}), 400, "ISO"
    )
    error(c.get("/ui/api/pit", params={"view": "nope", "key": "1"}), 404)
    old = {"view": "driver_stats", "key": "1", "as_of": "2000-01-01T00:00:00Z"}
    error(c.get("/ui/api/pit", params=old), 404, "no definitions")


def test_the_page_and_its_assets_are_served_from_the_package(ui: dict[str, Any]) -> None:
    c = ui["client"]
    page = c.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/ui/app.js" in page.text and "http" not in page.text.replace("http-equiv", "")
    for path, ctype in (("/ui/app.js", "text/javascript"), ("/ui/app.css", "text/css")):
        r = c.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith(ctype)
        assert "http://" not in r.text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in r.text
    spec = c.get("/openapi.json").json()["paths"]
    for path in (
        "/ui/api/search",
        "/ui/api/views/{name}",
        "/ui/api/runs",
        "/ui/api/runs/{id}",
        "/ui/api/models",
        "/ui/api/models/{name}",
        "/ui/api/lineage/{model}",
        "/ui/api/pit",
    ):
        assert spec[path]["get"]["tags"] == ["ui"], path


def test_featureline_ui_is_a_command() -> None:
    from click.testing import CliRunner

    from featureline.cli import cli

    result = CliRunner().invoke(cli, ["ui", "--help"])
    assert result.exit_code == 0, result.output
    assert "/ui" in result.output and "--port" in result.output


def test_the_diff_between_two_versions_names_fields_and_settings() -> None:
    from featureline.server._ui_data import _diff

    a = {"version": 1, "schema": [{"name": "x", "dtype": "Int64"}], "ttl_seconds": 60, "owner": "a"}
    b = {
        "version": 2,
        "schema": [{"name": "x", "dtype": "Float64"}, {"name": "y", "dtype": "Int64"}],
        "ttl_seconds": 120,
        "owner": "a",
    }
    d = _diff(a, b)
    assert (d["from"], d["to"], d["added"], d["removed"]) == (1, 2, ["y"], [])
    assert d["changed"] == [{"field": "x", "from": "Int64", "to": "Float64"}]
    assert d["settings"] == [{"key": "ttl_seconds", "from": 60, "to": 120}]


def test_statistics_are_recomputed_after_a_new_commit(tmp_path: Path) -> None:
    from featureline.server._ui_data import UiData

    root = tmp_path / "drivers"
    fl.init_repo(root, project="stats")
    with fl.FeatureStore(root) as store:
        store.apply()
        store.ingest("driver_stats")
        data = UiData(store)
        before = data.view("driver_stats")
        store.ingest("driver_stats")  # the same rows again: a second commit
        after = data.view("driver_stats")
    assert after["rows"] == 2 * before["rows"] and after["commits"] == 2
    counts = after["features"]["avg_daily_trips"]["histogram"]["counts"]
    assert sum(counts) == after["rows"]
    assert sum(b["rows"] for b in after["rows_by_time"]["buckets"]) == after["rows"]


UI_PERMISSIONS = """

from featureline import Permission

ui_users = Permission("ui", actions=["describe"], resources=["endpoint:/ui"], roles=["ui"])
describers = Permission("describers", actions=["describe"], resources=["feature_view:*"], roles=["describer"])
analysts = Permission("analysts", actions=["describe"], resources=["endpoint:/ui", "feature_view:*"], roles=["analyst"])
"""


def test_with_auth_the_cached_statistics_are_still_checked_per_request(tmp_path: Path) -> None:
    from featureline.auth import Principal
    from tests.auth_kit import auth_yaml

    root = tmp_path / "drivers"
    fl.init_repo(root, project="uiauth")
    with (root / "definitions.py").open("a") as f:
        f.write(UI_PERMISSIONS)
    with (root / "featureline.yaml").open("a") as f:
        f.write(auth_yaml())
    with fl.FeatureStore(root, principal=Principal("root", ("admin",))) as admin:
        admin.apply()
        admin.ingest("driver_stats")
        tokens = admin.authorizer.tokens  # type: ignore[union-attr]
        t = {
            role: tokens.create(role, [role])[0] for role in ("ui", "describer", "analyst", "admin")
        }
    with ThreadServer(create_app(root)) as url, httpx.Client(base_url=url, timeout=30) as c:

        def as_(role: str | None, path: str) -> httpx.Response:
            headers = {"authorization": f"Bearer {t[role]}"} if role else {}
            return c.get(path, headers=headers)

        assert as_(None, "/ui").status_code == 401
        assert as_("describer", "/ui").status_code == 403  # no grant on the UI endpoint
        assert as_("ui", "/ui").status_code == 200
        assert as_("ui", "/ui/api/search?q=driver").status_code == 200
        full = as_("admin", "/ui/api/views/driver_stats")  # computes and caches the statistics
        assert full.status_code == 200 and full.json()["preview"]
        error(as_("ui", "/ui/api/views/driver_stats"), 403)  # cached, still refused
        error(as_("ui", "/ui/api/pit?view=driver_stats&key=1001"), 403)
        seen = as_("analyst", "/ui/api/views/driver_stats")  # statistics, but no rows to read
        assert seen.status_code == 200, seen.text
        assert seen.json()["preview"] is None and seen.json()["features"] == full.json()["features"]
