"""The web UI's object pages (issue 12) without a browser: entities, feature services and
on-demand views with their versions, history, related objects and the code that defines them; a
view's constraints and quarantine; the lineage graph walked down from a view version."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import featureline as fl
from featureline.server import create_app
from featureline.server._ui_pages import UiPages, find_definitions
from tests.integration.server_kit import ThreadServer, error
from tests.ui_pages_kit import pages_repo

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("ui-pages") / "drivers"
    info = pages_repo(root)
    with ThreadServer(create_app(root)) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield {**info, "client": c, "repo": root}


def get(ui: dict[str, Any], path: str, **params: str) -> Any:
    r = ui["client"].get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_an_entity_page_has_its_versions_related_objects_and_code(ui: dict[str, Any]) -> None:
    e = get(ui, "/ui/api/views/driver", kind="entity")
    assert e["kind"] == "entity" and e["definition"]["join_keys"] == ["driver_id"]
    assert [v["registry_version"] for v in e["versions"]] == [1, 3]  # changed by the third apply
    (diff,) = e["diffs"]
    assert diff["changes"] == [
        {
            "key": "description",
            "from": "A driver of the fleet",
            "to": "A driver of the fleet (v2)",
        }
    ]
    assert [(h["registry_version"], h["changes"][0]["op"]) for h in e["history"]] == [
        (1, "add"),
        (3, "update"),
    ]
    related = e["related"]
    assert [v["name"] for v in related["feature_views"]] == ["driver_stats", "payments"]
    assert related["feature_services"] == ["driver_activity", "trip_scoring"]
    assert related["odfvs"] == ["expected_trips"]
    code = e["code"]
    assert code["path"] == "definitions.py" and code["line"] == code["end_line"]
    assert code["text"].startswith('driver = Entity(name="driver"')
    lines = (ui["repo"] / "definitions.py").read_text().splitlines()
    assert lines[code["line"] - 1] == code["text"].rstrip("\n")
    assert code["changed_since_apply"] is False
    error(ui["client"].get("/ui/api/views/drivr", params={"kind": "entity"}), 404, "driver")


def test_a_feature_service_page_groups_its_features_by_view(ui: dict[str, Any]) -> None:
    s = get(ui, "/ui/api/views/trip_scoring", kind="feature_service")
    assert s["related"]["reads"] == [
        {
            "kind": "feature_view",
            "name": "driver_stats",
            "version": None,
            "features": ["conv_rate"],
        },
        {"kind": "feature_view", "name": "payments", "version": None, "features": ["amount"]},
    ]
    assert s["related"]["entities"] == ["driver"]
    assert s["code"]["text"].startswith("trip_scoring = FeatureService(")
    assert s["code"]["end_line"] - s["code"]["line"] == 4  # the whole statement
    first = get(ui, "/ui/api/views/driver_activity", kind="feature_service")
    assert [v["definition"]["owner"] for v in first["versions"]] == ["", "ml@example.com"]
    assert first["diffs"][0]["changes"] == [{"key": "owner", "from": "", "to": "ml@example.com"}]
    error(ui["client"].get("/ui/api/views/nope", params={"kind": "feature_service"}), 404)


def test_an_on_demand_view_page_has_its_sources_and_function(ui: dict[str, Any]) -> None:
    o = get(ui, "/ui/api/views/expected_trips", kind="on_demand_feature_view")
    assert o["on_demand"] is True and o["definition"]["sources"] == ["driver_stats"]
    assert [f["name"] for f in o["definition"]["request_fields"]] == ["distance_km"]
    assert o["related"]["source_views"] == [{"name": "driver_stats", "version": 1}]
    code = o["code"]
    assert code["text"].startswith("@on_demand_feature_view(")  # the decorator too
    assert "def expected_trips(inputs):" in code["text"]
    assert code["matches_registry"] is True  # the file's function is the one applied
    assert o["definition"]["registered_code"] == code["text"]
    assert len(o["versions"]) == 1 and o["history"][0]["changes"][0]["op"] == "add"
    assert get(ui, "/ui/api/views/expected_trips") == o  # the view route's default finds it


def test_a_view_page_shows_constraints_gate_and_quarantine(ui: dict[str, Any]) -> None:
    v = get(ui, "/ui/api/views/payments")
    g = v["governance"]
    assert g["gate"] == "quarantine" and g["declared_gate"] is None  # the default
    assert [c["constraint"] for c in g["field_constraints"]] == [
        "amount.min",
        "amount.not_null",
        "currency.isin",
    ]
    assert g["view_checks"] == [
        {"constraint": "amount_ok", "kind": "sql", "rule": "amount_ok: amount < 10000"}
    ]
    q = g["quarantine"]
    assert q["rows"] == ui["quarantined"] == 3 and q["batches"] == 1
    assert q["by_constraint"] == {"amount.min": 1, "currency.isin": 1, "amount_ok": 1}
    newest = q["newest_rows"]
    assert sorted(r["amount"] for r in newest) == [-5.0, 40.0, 50000.0]
    assert {tuple(r["__violations"]) for r in newest} == {
        ("amount.min",),
        ("currency.isin",),
        ("amount_ok",),
    }
    assert set(newest[0]) == {
        "driver_id",
        "event_timestamp",
        "amount",
        "currency",
        "__violations",
        "__quarantined_at",
    }
    assert v["rows"] == 7  # the good rows landed
    assert v["code"]["text"].startswith("payments = FeatureView(")
    assert v["related"]["entities"] == [{"name": "driver", "join_keys": ["driver_id"]}]
    assert v["related"]["used_by"] == [
        {"kind": "feature_service", "name": "trip_scoring", "features": ["amount"]}
    ]
    stats = get(ui, "/ui/api/views/driver_stats")
    assert stats["governance"]["gate"] is None and stats["governance"]["quarantine"]["rows"] == 0
    assert {u["name"] for u in stats["related"]["used_by"]} == {
        "driver_activity",
        "trip_scoring",
        "expected_trips",
    }
    assert "features" in stats and stats["code"]["text"].startswith("driver_stats = FeatureView(")


def test_the_lineage_of_a_view_reaches_runs_models_and_aliases(ui: dict[str, Any]) -> None:
    g = get(ui, "/ui/api/views/driver_stats", part="lineage")
    assert g["versions"] == [1]
    by_kind: dict[str, set[str]] = {}
    for n in g["nodes"]:
        by_kind.setdefault(n["kind"], set()).add(n["id"])
    assert by_kind["feature_view"] == {"feature_view:driver_stats@v1"}
    assert by_kind["run"] == {f"run:{r}" for r in ui["runs"]}
    assert by_kind["model"] == {"model:driver_quality:1", "model:driver_quality:2"}
    assert by_kind["alias"] == {"alias:driver_quality@production"}
    assert len(by_kind["training_set"]) == 2
    edges = {(e["source"].split(":")[0], e["target"].split(":")[0]) for e in g["edges"]}
    assert edges == {
        ("feature_view", "training_set"),
        ("training_set", "run"),
        ("run", "model"),
        ("model", "alias"),
    }
    # the other way: the model's lineage walks back up to the same view version
    up = get(ui, "/ui/api/lineage/driver_quality")
    assert "feature_view:driver_stats@v1" in {n["id"] for n in up["nodes"]}
    assert {n["id"] for n in up["nodes"]} == {n["id"] for n in g["nodes"]}
    one = get(ui, "/ui/api/views/driver_stats", part="lineage", version="1")
    assert one["nodes"] == g["nodes"]
    none = get(ui, "/ui/api/views/payments", part="lineage")
    assert [n["id"] for n in none["nodes"]] == ["feature_view:payments@v1"]  # no training set yet
    c = ui["client"]
    error(c.get("/ui/api/views/driver_stats", params={"part": "lineage", "version": "9"}), 404)
    error(c.get("/ui/api/views/driver", params={"kind": "entity", "part": "lineage"}), 400)
    error(c.get("/ui/api/views/driver_stats", params={"version": "1"}), 400, "part=lineage")
    error(c.get("/ui/api/views/driver_stats", params={"kind": "model"}), 400, "kind")
    error(c.get("/ui/api/views/driver_stats", params={"part": "all"}), 400, "part")
    error(c.get("/ui/api/views/x", params={"part": "lineage"}), 404)


def test_the_parameters_are_documented(ui: dict[str, Any]) -> None:
    spec = ui["client"].get("/openapi.json").json()["paths"]["/ui/api/views/{name}"]["get"]
    params = {p["name"]: p for p in spec["parameters"]}
    assert set(params) == {"name", "kind", "part", "version"}
    assert params["kind"]["schema"]["enum"] == [
        "feature_view",
        "entity",
        "feature_service",
        "on_demand_feature_view",
    ]
    assert params["part"]["schema"]["enum"] == ["page", "lineage"]


def test_definitions_are_found_by_name_whatever_their_form() -> None:
    source = """
import featureline as fl
from featureline import Entity, FeatureView, on_demand_feature_view

rider = fl.Entity(name="rider", join_keys=["rider_id"])
Entity("positional")
views = [
    FeatureView(
        name="nested",
        entities=[rider],
    ),
]
computed: FeatureView = FeatureView(name=f"dynamic_{1}")


@on_demand_feature_view(sources=[], schema=[])
def by_function_name(inputs):
    return inputs


@fl.on_demand_feature_view(sources=[], schema=[], name="by_keyword")
def anything(inputs):
    return inputs
"""
    found = find_definitions(source)
    assert found == {
        ("entity", "rider"): (5, 5),
        ("entity", "positional"): (6, 6),
        ("feature_view", "nested"): (8, 11),  # the call, inside the list
        ("on_demand_feature_view", "by_function_name"): (16, 18),
        ("on_demand_feature_view", "by_keyword"): (21, 23),
    }  # a name computed at run time cannot be found by reading the file


def test_a_definition_file_changed_since_the_apply_is_flagged(tmp_path: Path) -> None:
    root = tmp_path / "drivers"
    fl.init_repo(root, project="changed", with_data=False)
    with fl.FeatureStore(root) as store:
        store.apply()
        pages = UiPages(store)
        assert pages.code("entity", "driver")["changed_since_apply"] is False  # type: ignore[index]
        defs = root / "definitions.py"
        later = time.time() + 5
        os.utime(defs, (later, later))
        assert pages.code("entity", "driver")["changed_since_apply"] is True  # type: ignore[index]
        assert len(pages.entity("driver")["versions"]) == 1
        defs.write_text(defs.read_text().replace("A driver of the fleet", "A fleet driver"))
        store.apply()
        after = pages.entity("driver")  # the cached catalog and history follow the apply
        assert [v["definition"]["description"] for v in after["versions"]] == [
            "A driver of the fleet",
            "A fleet driver",
        ]
        defs.write_text("this is not python (\n")
        assert pages.code("entity", "driver") is None  # a file that does not parse: not found
        assert pages.entity("driver")["code"] is None


UI_ONLY = """

from featureline import Permission

ui_users = Permission("ui", actions=["describe"], resources=["endpoint:/ui"], roles=["ui"])
analysts = Permission("analysts", actions=["describe"], resources=["endpoint:/ui", "feature_view:*"], roles=["analyst"])
"""


def test_with_auth_a_view_lineage_needs_the_view_grant(tmp_path: Path) -> None:
    from featureline.auth import Principal
    from tests.auth_kit import auth_yaml

    root = tmp_path / "drivers"
    fl.init_repo(root, project="pagesauth")
    with (root / "definitions.py").open("a") as f:
        f.write(UI_ONLY)
    with (root / "featureline.yaml").open("a") as f:
        f.write(auth_yaml())
    with fl.FeatureStore(root, principal=Principal("root", ("admin",))) as admin:
        admin.apply()
        tokens = admin.authorizer.tokens  # type: ignore[union-attr]
        t = {role: tokens.create(role, [role])[0] for role in ("ui", "analyst")}
    with ThreadServer(create_app(root)) as url, httpx.Client(base_url=url, timeout=30) as c:

        def as_(role: str | None, path: str) -> httpx.Response:
            headers = {"authorization": f"Bearer {t[role]}"} if role else {}
            return c.get(path, headers=headers)

        assert as_(None, "/ui/api/views/driver?kind=entity").status_code == 401
        assert as_("ui", "/ui/api/views/driver?kind=entity").status_code == 200
        error(as_("ui", "/ui/api/views/driver_stats?part=lineage"), 403)
        error(as_("ui", "/ui/api/views/driver_stats"), 403)
        seen = as_("analyst", "/ui/api/views/driver_stats?part=lineage")
        assert seen.status_code == 200, seen.text
        page = as_("analyst", "/ui/api/views/driver_stats")
        assert page.status_code == 200 and page.json()["governance"]["gate"] is None
