"""apply appends onto the version it planned against; commuting changes are re-applied on top
of a newer version (a 3-way merge), overlapping ones raise RegistryConflictError."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import featureline as fl
from featureline.cli import cli
from featureline.errors import ConflictError, FeaturelineError, RegistryConflictError
from featureline.registry import Plan, check, plan, rebase
from featureline.registry._rebase import changed
from tests.helpers import new_store

DRIVER = fl.Entity("driver", ["driver_id"])
CAR = fl.Entity("car", ["car_id"])


def view(
    name: str = "base_view", *, trips: Any = fl.Int64, ttl_days: int = 1, extra: bool = False
) -> fl.FeatureView:
    fields = [fl.Field("driver_id", fl.Int64), fl.Field("trips", trips)]
    if extra:
        fields.append(fl.Field("extra", fl.Float64))
    return fl.FeatureView(name, [DRIVER], fields, ttl=timedelta(days=ttl_days))


def car_view() -> fl.FeatureView:
    return fl.FeatureView("view_b", [CAR], [fl.Field("car_id", fl.Int64), fl.Field("b", fl.Int64)])


def desired(*objs: Any) -> dict[str, Any]:
    snap: dict[str, Any] = {
        "project": "p",
        "entities": {},
        "views": {},
        "services": {},
        "odfvs": {},
    }
    for o in objs:
        section = {fl.Entity: "entities", fl.FeatureView: "views", fl.FeatureService: "services"}[
            type(o)
        ]
        snap[section][o.name] = o.to_dict()
    return snap


def planned(
    current: dict[str, Any] | None,
    *objs: Any,
    new_versions: tuple[str, ...] = (),
    base: int | None = 1,
) -> Plan:
    p = plan(current, desired(*objs), set(new_versions))
    check(p)
    p.base_version = base
    return p


BASE = planned(None, DRIVER, view(), base=None).snapshot


def test_disjoint_changes_are_applied_on_top_of_the_latest() -> None:
    mine = planned(BASE, DRIVER, view(), view("view_a"))
    theirs = planned(BASE, DRIVER, CAR, view(), car_view()).snapshot
    merged = rebase(BASE, mine, theirs, 1, 2)
    assert merged is not None and merged.base_version == 2
    assert sorted(merged.snapshot["views"]) == ["base_view", "view_a", "view_b"]
    assert sorted(merged.snapshot["entities"]) == ["car", "driver"]
    assert [(c["kind"], c["name"], c["op"]) for c in merged.changes] == [("view", "view_a", "add")]
    assert changed(theirs, merged.snapshot) == {("views", "view_a")}
    assert changed(BASE, theirs) == {
        ("entities", "car"),
        ("views", "view_b"),
    }  # theirs is untouched


def test_my_removal_commutes_with_their_addition() -> None:
    base = planned(None, DRIVER, view(), view("view_a"), base=None).snapshot
    mine = planned(base, DRIVER, view())  # removes view_a
    theirs = planned(base, DRIVER, CAR, view(), view("view_a"), car_view()).snapshot
    merged = rebase(base, mine, theirs, 1, 2)
    assert merged is not None
    assert sorted(merged.snapshot["views"]) == ["base_view", "view_b"]
    assert [(c["name"], c["op"]) for c in merged.changes] == [("view_a", "remove")]


@pytest.mark.parametrize(
    ("mine_objs", "theirs_objs", "new_versions"),
    [
        ((DRIVER, view(ttl_days=2)), (DRIVER, view(ttl_days=3)), ()),
        ((DRIVER, view(trips=fl.Float64)), (DRIVER, view(trips=fl.String)), ("base_view",)),
        ((DRIVER, view(ttl_days=2)), (DRIVER,), ()),  # they removed the view I changed
    ],
    ids=["in-place-updates", "two-new-versions", "update-vs-remove"],
)
def test_changes_to_the_same_object_conflict(
    mine_objs: Any, theirs_objs: Any, new_versions: tuple[str, ...]
) -> None:
    mine = planned(BASE, *mine_objs, new_versions=new_versions)
    theirs = planned(BASE, *theirs_objs, new_versions=new_versions).snapshot
    with pytest.raises(RegistryConflictError) as info:
        rebase(BASE, mine, theirs, 1, 3)
    err = info.value
    assert err.objects == ["view `base_view`"] and (err.expected, err.actual) == (1, 3)
    text = str(err)
    assert "view `base_view` was changed by both" in text
    assert "planned against version 1" in text and "versions 2..3" in text
    assert "Nothing was applied" in text and "featureline plan" in text


def test_a_reference_to_an_object_the_other_changed_conflicts() -> None:
    service = fl.FeatureService("svc", [view()[["trips"]]])
    mine = planned(BASE, DRIVER, view(), service)
    theirs = planned(BASE, DRIVER, view(extra=True)).snapshot  # changes the view the service reads
    with pytest.raises(RegistryConflictError, match=r"your service `svc` uses view `base_view`"):
        rebase(BASE, mine, theirs, 1, 2)

    base = planned(None, DRIVER, CAR, view(), base=None).snapshot
    mine = planned(base, DRIVER, view())  # removes entity car (no stored view uses it)
    theirs = planned(base, DRIVER, CAR, view(), car_view()).snapshot  # a new view on car
    with pytest.raises(
        RegistryConflictError, match=r"their view `view_b` uses entity `car`"
    ) as info:
        rebase(base, mine, theirs, 1, 2)
    assert info.value.objects == ["entity `car`"]


def test_the_same_change_on_both_sides_leaves_nothing_to_do() -> None:
    mine = planned(BASE, DRIVER, view(trips=fl.Float64), new_versions=("base_view",))
    theirs = planned(BASE, DRIVER, view(trips=fl.Float64), new_versions=("base_view",)).snapshot
    assert rebase(BASE, mine, theirs, 1, 2) is None


def test_registry_conflict_error_is_a_409_that_pickles() -> None:
    err = RegistryConflictError("boom", 1, 3, ["view `v`"])
    assert isinstance(err, ConflictError) and isinstance(err, FeaturelineError)
    assert err.http_status == 409
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), back.message, back.expected, back.actual, back.objects) == (
        RegistryConflictError,
        "boom",
        1,
        3,
        ["view `v`"],
    )


# ---- FeatureStore.apply with a plan made before another apply landed ---------------------------


def test_apply_of_a_stale_plan_rebases_disjoint_changes(tmp_path: Path) -> None:
    store = new_store(tmp_path, DRIVER, view())
    other = fl.FeatureStore(store.repo_path)
    try:
        p = store.plan([DRIVER, view(), view("view_a")])
        assert p.base_version == 1
        assert other.apply([DRIVER, CAR, view(), car_view()], message="theirs") is not None
        rv = store.apply(planned=p, message="mine")
        assert rv is not None and rv.version == 3 and rv.message == "mine"
        assert sorted(rv.snapshot["views"]) == ["base_view", "view_a", "view_b"]
        assert [(c["name"], c["op"]) for c in rv.changes] == [("view_a", "add")]
    finally:
        other.close()
        store.close()


def test_apply_of_a_stale_plan_of_the_same_view_conflicts_and_stores_nothing(
    tmp_path: Path,
) -> None:
    store = new_store(tmp_path, DRIVER, view())
    other = fl.FeatureStore(store.repo_path)
    try:
        p = store.plan([DRIVER, view(trips=fl.Float64)], new_versions=["base_view"])
        other.apply([DRIVER, view(trips=fl.String)], new_versions=["base_view"])
        before = store.history()
        with pytest.raises(RegistryConflictError, match=r"view `base_view` was changed by both"):
            store.apply(planned=p)
        assert store.history() == before
        assert [e["schema"][1]["dtype"] for e in before[-1].snapshot["views"]["base_view"]] == [
            "Int64",
            "String",
        ]
    finally:
        other.close()
        store.close()


def test_apply_gives_up_when_the_registry_keeps_moving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = new_store(tmp_path, DRIVER, view())
    try:
        p = store.plan([DRIVER, view(), view("view_a")])
        registry = store.registry
        real = registry.append
        calls = []

        def append(*args: Any, **kw: Any) -> Any:
            calls.append(kw["expected_version"])
            latest = registry.latest()
            assert latest is not None
            snap = {**latest.snapshot, "tags": {"n": len(calls)}}  # someone else's change
            real(snap, [], expected_version=latest.version)
            return real(*args, **kw)

        monkeypatch.setattr(registry, "append", append)
        with pytest.raises(RegistryConflictError, match="Gave up after 5 attempts"):
            store.apply(planned=p)
        assert calls == [1, 2, 3, 4, 5]
    finally:
        store.close()


# ---- the CLI applies the plan it printed ----------------------------------------------------------


def _cli(*args: str) -> Any:
    runner = CliRunner(env={"COLUMNS": "200", "FORCE_COLOR": None, "FEATURELINE_REPO": None})
    return runner.invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("theirs_ttl", [1, 3], ids=["disjoint", "conflict"])
def test_cli_apply_when_another_apply_lands_after_its_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, theirs_ttl: int
) -> None:
    root = tmp_path / "repo"
    assert _cli("init", str(root), "--project", "p").exit_code == 0
    assert _cli("--repo", str(root), "apply").exit_code == 0
    defs = root / "definitions.py"
    defs.write_text(defs.read_text().replace("ttl=timedelta(days=2)", "ttl=timedelta(days=1)"))
    real_plan = fl.FeatureStore.plan
    landed: list[bool] = []

    def plan_then_someone_applies(self: fl.FeatureStore, *args: Any, **kw: Any) -> Plan:
        p = real_plan(self, *args, **kw)
        if landed:  # the other user's own apply plans too
            return p
        landed.append(True)
        with fl.FeatureStore(root) as other:  # another user, with their own definitions
            cat = other.catalog()
            entities: list[Any] = list(cat.entities.values())
            views = [vs[-1] for vs in cat.views.values()]
            if theirs_ttl == 1:  # a change to another object: commutes with mine
                entities.append(CAR)
            else:  # a change to the same view: conflicts with mine
                views = [
                    dataclasses.replace(v, ttl=timedelta(days=3)) if v.name == "driver_stats" else v
                    for v in views
                ]
            objects = [*entities, *views, *cat.services.values()]
            other.apply(objects, message="theirs")
        return p

    monkeypatch.setattr(fl.FeatureStore, "plan", plan_then_someone_applies)
    result = _cli("--repo", str(root), "apply", "-m", "mine")
    history = [(v.version, v.message) for v in fl.FeatureStore(root).history()]
    if theirs_ttl == 1:
        assert result.exit_code == 0, result.output
        assert "Another apply stored version 2 after this plan was made" in result.stdout
        assert "Applied registry version 3" in result.stdout
        assert history == [(1, ""), (2, "theirs"), (3, "mine")]
    else:
        assert result.exit_code == 1, result.output
        assert (
            result.stderr.startswith("Error: Registry conflict")
            and "view `driver_stats`" in result.stderr
        )
        assert "Traceback" not in result.output
        assert history == [(1, ""), (2, "theirs")]
