"""On-demand feature views: the same function offline and online, tested equal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

import featureline as fl
from featureline.errors import FeaturelineError, UserCodeError
from tests.helpers import TS, driver_defs, new_store, rows

REQUEST = fl.RequestSource("trip", [fl.Field("distance_km", fl.Float64)])


def _odfv(view: fl.FeatureView, mode: str = "python") -> fl.OnDemandFeatureView:
    if mode == "python":

        @fl.on_demand_feature_view(
            sources=[view, REQUEST],
            schema=[fl.Field("score", fl.Float64), fl.Field("busy", fl.Bool)],
        )
        def trip_score(inputs: dict) -> dict:  # type: ignore[type-arg]
            score = [
                None if r is None else r * d
                for r, d in zip(inputs["rate"], inputs["distance_km"], strict=True)
            ]
            busy = [t is not None and t > 1 for t in inputs["trips"]]
            return {"score": score, "busy": busy}

        return trip_score

    @fl.on_demand_feature_view(
        sources=[view, REQUEST],
        schema=[fl.Field("score", fl.Float64)],
        mode="pandas",
        name="trip_score_pd",
    )
    def trip_score_pd(df):  # type: ignore[no-untyped-def]
        return df.assign(score=df["rate"] * df["distance_km"])[["score"]]

    return trip_score_pd


@pytest.mark.parametrize("mode", ["python", "pandas"])
def test_same_values_offline_and_online(tmp_path: Path, mode: str) -> None:
    driver, view = driver_defs(ttl=timedelta(days=1))
    od = _odfv(view, mode)
    store = new_store(tmp_path, driver, view, od)
    now = datetime.now(UTC)
    store.push("driver_stats", rows([1, 2], [now - timedelta(minutes=5)] * 2, [0.5, 0.25], [3, 1]))
    refs = [f"{od.name}:score"] + ([f"{od.name}:busy"] if mode == "python" else [])
    ent = pa.table(
        {
            "driver_id": pa.array([1, 2, 3], pa.int64()),
            "event_timestamp": pa.array([now] * 3, TS),
            "distance_km": [10.0, 4.0, 2.0],
        }
    )
    offline = store.get_training_set(ent, ["driver_stats:rate", *refs]).to_arrow()
    online = store.get_online_features(
        ["driver_stats:rate", *refs], {"driver_id": [1, 2, 3], "distance_km": [10.0, 4.0, 2.0]}
    )
    assert offline.column("score").to_pylist() == online.to_dict()["score"] == [5.0, 1.0, None]
    if mode == "python":
        assert (
            offline.column("busy").to_pylist() == online.to_dict()["busy"] == [True, False, False]
        )
    assert online.statuses["score"] == ["PRESENT", "PRESENT", "NOT_FOUND"]


def test_missing_request_field_and_user_error(tmp_path: Path) -> None:
    driver, view = driver_defs()
    od = _odfv(view)
    store = new_store(tmp_path, driver, view, od)
    store.push("driver_stats", rows([1], [datetime.now(UTC)], [0.5]))
    with pytest.raises(FeaturelineError, match=r"needs request field\(s\) `distance_km`"):
        store.get_online_features(["trip_score:score"], {"driver_id": [1]})
    with pytest.raises(
        UserCodeError, match=r"`trip_score` raised TypeError.*Fix the function `trip_score`"
    ):
        store.get_online_features(["trip_score:score"], {"driver_id": [1], "distance_km": ["far"]})


def test_changed_code_refused_until_applied(tmp_path: Path) -> None:
    driver, view = driver_defs()
    store = new_store(tmp_path, driver, view)
    repo = store.repo_path
    (repo / "odfv_defs.py").write_text(
        "from featureline import Entity, FeatureView, Field, Float64, Int64, RequestSource, on_demand_feature_view\n"
        "from datetime import timedelta\n"
        "driver = Entity('driver', ['driver_id'])\n"
        "driver_stats = FeatureView('driver_stats', [driver], [Field('driver_id', Int64), Field('rate', Float64), Field('trips', Int64)], ttl=timedelta(hours=2))\n"
        "@on_demand_feature_view(sources=[driver_stats], schema=[Field('double', Float64)])\n"
        "def doubled(i):\n"
        "    return {'double': [None if r is None else 2 * r for r in i['rate']]}\n"
    )
    store.apply()
    store.push("driver_stats", rows([1], [datetime.now(UTC)], [0.5]))
    assert store.get_online_features(["doubled:double"], {"driver_id": [1]}).to_dict()[
        "double"
    ] == [1.0]
    assert "on-demand view" in store.plan().render() or store.plan().is_empty
    (repo / "odfv_defs.py").write_text(
        (repo / "odfv_defs.py").read_text().replace("2 * r", "3 * r")
    )
    fresh = fl.FeatureStore(repo)
    assert "code changed" in fresh.plan().render()
    fresh.apply()
    assert fresh.get_online_features(["doubled:double"], {"driver_id": [1]}).to_dict()[
        "double"
    ] == [1.5]


def test_a_feature_service_may_name_an_on_demand_output(tmp_path: Path) -> None:
    driver, view = driver_defs(ttl=timedelta(days=1))
    od = _odfv(view)
    svc = fl.FeatureService("scoring", features=["driver_stats:rate", f"{od.name}:score"])
    store = new_store(tmp_path, driver, view, od, svc)  # apply crashed (AttributeError) before
    assert [s.name for s in store.list_feature_services()] == ["scoring"]
    bad = fl.FeatureService("bad", features=[f"{od.name}:scor"])
    with pytest.raises(FeaturelineError, match="unknown feature `trip_score:scor`"):
        store.apply([driver, view, od, svc, bad])
