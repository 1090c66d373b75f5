"""plan / check / render / diff_snapshots / view_at: pure functions over snapshot dicts."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from featureline.definitions import Entity, FeatureService, FeatureView, Field, FileSource
from featureline.errors import ConflictError, NotFoundError, ValidationError
from featureline.registry import Plan, check, diff_snapshots, plan, view_at
from featureline.types import Float64, Int64, String

DRIVER = Entity("driver", ["driver_id"], owner="ana")
CAR = Entity("car", ["car_id"])


def make_view(
    *,
    trips: Any = Int64,
    ttl: timedelta | None = timedelta(days=1),
    entities: list[Entity] | None = None,
    extra: list[Field] | None = None,
    version: int = 1,
    **kw: Any,
) -> FeatureView:
    ents = entities if entities is not None else [DRIVER]
    keys = [Field(k, Int64) for e in ents for k in e.join_keys]
    return FeatureView(
        "driver_stats",
        entities=ents,
        schema=[*keys, Field("trips", trips), Field("rating", Float64), *(extra or [])],
        source=FileSource("data/driver_stats.parquet"),
        ttl=ttl,
        version=version,
        **kw,
    )


def desired(*objs: Any, project: str = "demo") -> dict[str, Any]:
    """A desired snapshot: one dict per view, as `featureline apply` builds it from the repo."""
    snap: dict[str, Any] = {"project": project, "entities": {}, "views": {}, "services": {}}
    for o in objs:
        section = {Entity: "entities", FeatureView: "views", FeatureService: "services"}[type(o)]
        snap[section][o.name] = o.to_dict()
    return snap


def applied(*objs: Any) -> dict[str, Any]:
    """The registry snapshot after applying `objs` to an empty registry."""
    p = plan(None, desired(*objs))
    check(p)
    return p.snapshot


SERVICE = FeatureService("model_v1", [make_view()[["trips"]]])


def test_add_to_empty_registry() -> None:
    p = plan(None, desired(DRIVER, make_view(version=7), SERVICE))
    assert [(c["kind"], c["name"], c["op"]) for c in p.changes] == [
        ("entity", "driver", "add"),
        ("view", "driver_stats", "add"),
        ("service", "model_v1", "add"),
    ]
    assert not p.is_empty and p.breaking == []
    stored = p.snapshot["views"]["driver_stats"]
    assert len(stored) == 1 and stored[0]["version"] == 1  # the repo object's version is ignored
    assert p.snapshot["entities"]["driver"] == DRIVER.to_dict()
    assert p.snapshot["services"]["model_v1"] == SERVICE.to_dict()
    assert p.snapshot["project"] == "demo"
    text = p.render()
    assert (
        "+ entity driver" in text and "+ view driver_stats" in text and "+ service model_v1" in text
    )
    assert "3 to add, 0 to change, 0 to remove" in text


def test_unchanged_definitions_give_an_empty_plan() -> None:
    current = applied(DRIVER, make_view(), SERVICE)
    p = plan(current, desired(DRIVER, make_view(version=3), SERVICE))
    assert p.is_empty and p.changes == [] and p.breaking == []
    assert p.snapshot == current
    assert "No changes" in p.render()
    check(p)


def test_ttl_change_updates_the_view_in_place() -> None:
    current = applied(DRIVER, make_view())
    p = plan(current, desired(DRIVER, make_view(ttl=timedelta(days=2))))
    assert p.changes == [
        {
            "kind": "view",
            "name": "driver_stats",
            "op": "update",
            "details": ["ttl: 1 day -> 2 days"],
            "breaking": False,
            "version": 1,
        }
    ]
    check(p)
    [entry] = p.snapshot["views"]["driver_stats"]
    assert entry["version"] == 1 and entry["ttl_seconds"] == 2 * 86400
    text = p.render()
    assert "~ view driver_stats (ttl: 1 day -> 2 days)" in text
    assert "0 to add, 1 to change, 0 to remove" in text


def test_non_breaking_changes_are_listed() -> None:
    current = applied(DRIVER, make_view())
    new = make_view(
        ttl=timedelta(hours=36),
        extra=[Field("speed", Float64)],
        owner="bo",
        tags={"team": "ml"},
        description="Driver stats.",
    )
    new = FeatureView(
        **{
            **new.__dict__,
            "schema": [f for f in new.schema if f.name != "rating"],
            "source": FileSource("data/v2.parquet"),
        }
    )
    p = plan(current, desired(DRIVER, new))
    [change] = p.changes
    assert not change["breaking"] and p.breaking == []
    assert set(change["details"]) == {
        "ttl: 1 day -> 36 hours",
        "added field `speed` (Float64)",
        "removed field `rating`",
        "source.path: `data/driver_stats.parquet` -> `data/v2.parquet`",
        "owner: none -> `bo`",
        "description changed",
        "tags: added `team`=`ml`",
    }


def test_dtype_change_is_refused_with_the_fix() -> None:
    current = applied(DRIVER, make_view())
    p = plan(current, desired(DRIVER, make_view(trips=Float64)))
    [change] = p.changes
    assert change["op"] == "update" and change["breaking"]
    assert change["details"] == ["field `trips`: Int64 -> Float64"]
    [msg] = p.breaking
    assert "view `driver_stats`" in msg and "field `trips`: Int64 -> Float64" in msg
    assert "[breaking]" in p.render() and "Refused" in p.render()
    with pytest.raises(ConflictError) as info:
        check(p)
    text = str(info.value)
    assert (
        "apply it as a new version of the view: `featureline apply --new-version driver_stats`"
        in text
    )
    assert "(both versions stay readable), or rename the view" in text


def test_dtype_change_as_a_new_version_keeps_version_1() -> None:
    current = applied(DRIVER, make_view())
    p = plan(current, desired(DRIVER, make_view(trips=Float64)), new_versions={"driver_stats"})
    check(p)
    [change] = p.changes
    assert change["op"] == "new_version" and change["version"] == 2
    assert "field `trips`: Int64 -> Float64" in change["details"]
    v1, v2 = p.snapshot["views"]["driver_stats"]
    assert v1 == current["views"]["driver_stats"][0]
    assert (v1["version"], v2["version"]) == (1, 2)
    assert view_at(p.snapshot, "driver_stats") == v2
    assert view_at(p.snapshot, "driver_stats", 1) == v1
    assert {"name": "trips", "dtype": "Float64", "description": "", "tags": {}} in v2["schema"]
    assert "~ view driver_stats v1 -> v2 (field `trips`: Int64 -> Float64" in p.render()

    # A later non-breaking change updates version 2 in place and keeps version 1.
    later = plan(p.snapshot, desired(DRIVER, make_view(trips=Float64, ttl=None)))
    check(later)
    assert [e["version"] for e in later.snapshot["views"]["driver_stats"]] == [1, 2]
    assert later.snapshot["views"]["driver_stats"][0] == v1
    assert later.changes[0]["details"] == ["ttl: 1 day -> none"]
    assert later.changes[0]["version"] == 2


def test_new_version_for_a_non_breaking_change_updates_in_place() -> None:
    current = applied(DRIVER, make_view())
    p = plan(current, desired(DRIVER, make_view(ttl=None)), new_versions={"driver_stats"})
    assert p.changes[0]["op"] == "update"
    assert [e["version"] for e in p.snapshot["views"]["driver_stats"]] == [1]


@pytest.mark.parametrize(
    ("new_view", "detail"),
    [
        (make_view(entities=[DRIVER, CAR]), "entities: [`driver`] -> [`driver`, `car`]"),
        (make_view(entities=[CAR]), "join keys: [`driver_id`] -> [`car_id`]"),
    ],
)
def test_key_changes_are_breaking(new_view: FeatureView, detail: str) -> None:
    current = applied(DRIVER, CAR, make_view())
    p = plan(current, desired(DRIVER, CAR, new_view))
    assert detail in p.changes[0]["details"]
    assert p.changes[0]["breaking"] and len(p.breaking) == 1
    with pytest.raises(ConflictError, match="--new-version driver_stats"):
        check(p)
    ok = plan(current, desired(DRIVER, CAR, new_view), new_versions=["driver_stats"])
    check(ok)
    assert [e["entities"] for e in ok.snapshot["views"]["driver_stats"]] == [
        ["driver"],
        new_view.to_dict()["entities"],
    ]


def test_join_key_dtype_change_is_breaking() -> None:
    current = applied(DRIVER, make_view())
    new = make_view()
    new = FeatureView(**{**new.__dict__, "schema": [Field("driver_id", String), *new.schema[1:]]})
    p = plan(current, desired(DRIVER, new))
    assert p.breaking and "field `driver_id`: Int64 -> String" in p.breaking[0]


def test_entity_key_change_under_a_stored_view_needs_a_new_entity() -> None:
    current = applied(DRIVER, make_view())
    moved = Entity("driver", ["id"])
    p = plan(current, desired(moved, make_view(entities=[moved])), new_versions={"driver_stats"})
    [msg] = p.breaking
    assert "entity `driver` changes join keys [`driver_id`] -> [`id`]" in msg
    assert "`driver_stats` v1" in msg and "define a new entity (e.g. `driver_v2`)" in msg
    assert [c["breaking"] for c in p.changes if c["kind"] == "entity"] == [True]
    with pytest.raises(ConflictError, match="driver_v2"):
        check(p)
    # Without --new-version the view's key change is reported once, with the entity's fix.
    in_place = plan(current, desired(moved, make_view(entities=[moved])))
    assert len(in_place.breaking) == 1 and "driver_v2" in in_place.breaking[0]
    assert [c["breaking"] for c in in_place.changes] == [True, True]
    # An entity no stored view uses may change freely.
    free = plan(applied(DRIVER, CAR), desired(DRIVER, Entity("car", ["vin"])))
    check(free)
    assert free.changes[0]["details"] == ["join keys: [`car_id`] -> [`vin`]"]


def test_removing_an_entity_a_stored_version_still_uses_is_refused() -> None:
    current = applied(DRIVER, CAR, make_view())
    p = plan(current, desired(CAR, make_view(entities=[CAR])), new_versions={"driver_stats"})
    [msg] = p.breaking
    assert "entity `driver` is removed" in msg


def test_removals() -> None:
    current = applied(DRIVER, make_view(), SERVICE)
    p = plan(current, desired(DRIVER))
    check(p)
    assert [(c["kind"], c["name"], c["op"]) for c in p.changes] == [
        ("view", "driver_stats", "remove"),
        ("service", "model_v1", "remove"),
    ]
    assert p.snapshot["views"] == {} and p.snapshot["services"] == {}
    text = p.render()
    assert "- view driver_stats" in text and "- service model_v1" in text
    assert "0 to add, 0 to change, 2 to remove" in text


def test_service_update_details() -> None:
    current = applied(DRIVER, make_view(), SERVICE)
    p = plan(
        current, desired(DRIVER, make_view(), FeatureService("model_v1", ["driver_stats:rating"]))
    )
    assert p.changes[0]["details"] == [
        "added feature `driver_stats:rating`",
        "removed feature `driver_stats:trips`",
    ]


def test_unknown_new_version_name_is_refused() -> None:
    with pytest.raises(ValidationError, match="Did you mean `driver_stats`"):
        plan(None, desired(DRIVER, make_view()), new_versions={"driver_stat"})


def test_plan_does_not_mutate_its_inputs() -> None:
    current = applied(DRIVER, make_view(), SERVICE)
    want = desired(DRIVER, make_view(trips=Float64))
    before = copy.deepcopy((current, want))
    p = plan(current, want, new_versions={"driver_stats"})
    p.snapshot["views"]["driver_stats"][0]["owner"] = "changed"
    assert (current, want) == before


def test_diff_snapshots_describes_each_version() -> None:
    s1 = applied(DRIVER, make_view())
    s2 = plan(s1, desired(DRIVER, make_view(trips=Float64)), new_versions={"driver_stats"}).snapshot
    s3 = plan(
        s2, desired(DRIVER, make_view(trips=Float64, ttl=timedelta(minutes=90)), SERVICE)
    ).snapshot
    assert [(c["kind"], c["op"]) for c in diff_snapshots(None, s1)] == [
        ("entity", "add"),
        ("view", "add"),
    ]
    [c2] = diff_snapshots(s1, s2)
    assert c2["op"] == "new_version" and c2["breaking"] and c2["version"] == 2
    assert "field `trips`: Int64 -> Float64" in c2["details"]
    c3 = diff_snapshots(s2, s3)
    assert [(c["kind"], c["op"]) for c in c3] == [("view", "update"), ("service", "add")]
    assert c3[0]["details"] == ["ttl: 1 day -> 90 minutes"]
    assert diff_snapshots(s3, s3) == []
    assert [(c["kind"], c["op"]) for c in diff_snapshots(s3, applied())] == [
        ("entity", "remove"),
        ("view", "remove"),
        ("service", "remove"),
    ]


def test_view_at_errors_name_the_options() -> None:
    snap = plan(
        applied(DRIVER, make_view()), desired(DRIVER, make_view(trips=Float64)), {"driver_stats"}
    ).snapshot
    with pytest.raises(NotFoundError, match="Did you mean `driver_stats`"):
        view_at(snap, "driver_stat")
    with pytest.raises(NotFoundError, match=r"no version `3`. Valid: `1`, `2`"):
        view_at(snap, "driver_stats", 3)


def test_plan_is_a_dataclass_with_the_documented_fields() -> None:
    p = plan(None, desired())
    assert isinstance(p, Plan) and p.is_empty and p.snapshot["views"] == {}
    assert p.render().startswith("No changes")
