"""The Feast-compatible routes answer requests shaped exactly as an unmodified Feast 0.67 SDK
(`online_store: {type: remote}`) and Feast clients send them, over real HTTP: unknown fields are
accepted and ignored (Feast's pydantic models ignore them), naive timestamps are UTC (Feast's
`make_tzaware`), `/write-to-online-store`, `/materialize`, `/materialize-incremental` exist, and an
invalid body is a 422 with FastAPI's `{"detail": [...]}`. The native routes stay strict (400).
The real SDK is run by tests/integration/test_feast_sdk.py (bench/feast_sdk_check.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from featureline.server import create_app
from tests.integration.server_kit import FEATURES, JSON, ThreadServer, error, feast_error

pytestmark = pytest.mark.integration

BARE = ["conv_rate", "acc_rate", "avg_daily_trips"]


@pytest.fixture(scope="module")
def server(repo: Path) -> Iterator[str]:  # no body or entity limits (conftest's repo and client)
    with ThreadServer(create_app(repo)) as url:
        yield url


def _naive(t: datetime) -> str:
    """What Feast's remote store sends: `_to_naive_utc(ts).isoformat()`."""
    return t.astimezone(UTC).replace(tzinfo=None).isoformat()


def _sdk_read(client: httpx.Client, driver: int, **extra: Any) -> dict[str, Any]:
    """The body Feast's RemoteOnlineStore.online_read posts (bare names come back)."""
    body = {"features": FEATURES, "entities": {"driver_id": [driver]}, **extra}
    resp = client.post("/get-online-features", json=body)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def _values(body: dict[str, Any]) -> dict[str, Any]:
    names = body["metadata"]["feature_names"]
    return {n: r["values"][0] for n, r in zip(names, body["results"], strict=True)}


def test_get_online_features_accepts_feast_fields(client: httpx.Client) -> None:
    body = _sdk_read(
        client,
        1001,
        include_feature_view_version_metadata=False,
        full_feature_names=False,
        some_future_feast_field={"x": 1},
    )
    assert body["metadata"]["feature_names"] == ["driver_id", *BARE]
    assert [r["statuses"] for r in body["results"]] == [["PRESENT"]] * 4
    # the SDK parses results[1].event_timestamps[0] with fromisoformat after Z -> +00:00
    ts = body["results"][1]["event_timestamps"][0]
    assert datetime.fromisoformat(ts.replace("Z", "+00:00")).tzinfo is not None


def test_version_metadata_is_returned_when_asked(client: httpx.Client) -> None:
    """Feast's server adds `feature_view_metadata` (name, version) for
    `include_feature_view_version_metadata: true`; the SDK copies it into its response."""
    asked = _sdk_read(client, 1001, include_feature_view_version_metadata=True)
    assert asked["metadata"]["feature_view_metadata"] == [{"name": "driver_stats", "version": 1}]
    assert "feature_view_metadata" not in _sdk_read(client, 1001)["metadata"]
    assert _values(asked) == _values(_sdk_read(client, 1001))


def test_write_to_online_store_then_read(client: httpx.Client) -> None:
    t = (datetime.now(UTC) - timedelta(seconds=1)).replace(microsecond=123456)  # never ahead
    df = {  # RemoteOnlineStore.online_write_batch: columns, naive UTC isoformat, `created` may be null
        "driver_id": [6001, 6002],
        "conv_rate": [0.25, 0.5],
        "acc_rate": [0.75, 1.0],
        "avg_daily_trips": [11, 22],
        "event_timestamp": [_naive(t), _naive(t)],
        "created": [None, None],
    }
    resp = client.post(
        "/write-to-online-store",
        json={"feature_view_name": "driver_stats", "df": df, "allow_registry_cache": False},
    )
    assert resp.status_code == 200, resp.text
    assert resp.content == b"null"
    got = _sdk_read(client, 6002)
    assert _values(got) == {
        "driver_id": 6002,
        "conv_rate": 0.5,
        "acc_rate": 1.0,
        "avg_daily_trips": 22,
    }
    # the naive timestamp was read as UTC, exactly
    assert got["results"][1]["event_timestamps"] == [t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")]


def test_write_to_online_store_is_online_only(client: httpx.Client, repo: Path) -> None:
    """As Feast's write_to_online_store: served online, in no training set (no offline commit)."""
    import featureline as fl

    t = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    with fl.FeatureStore(repo) as store:
        commits = len(store.offline.commits("driver_stats", 1))
        resp = client.post(
            "/write-to-online-store",
            json={
                "feature_view_name": "driver_stats",
                "df": {
                    "driver_id": [6010],
                    "conv_rate": [0.9],
                    "acc_rate": [0.8],
                    "avg_daily_trips": [70],
                    "event_timestamp": [_naive(t)],
                    "created": [None],
                },
            },
        )
        assert resp.status_code == 200, resp.text
        assert _values(_sdk_read(client, 6010))["avg_daily_trips"] == 70
        assert len(store.offline.commits("driver_stats", 1)) == commits
        entity = {"driver_id": [6010], "event_timestamp": [datetime.now(UTC)]}
        ts = store.get_training_set(entity, FEATURES).to_arrow()
        assert ts.column("avg_daily_trips").to_pylist() == [None]


def test_write_to_online_store_with_newer_fields(client: httpx.Client) -> None:
    t = datetime.now(UTC).replace(microsecond=0)
    resp = client.post(
        "/write-to-online-store",
        json={
            "feature_view_name": "driver_stats",
            "df": {
                "driver_id": [6003],
                "conv_rate": [0.1],
                "acc_rate": [0.2],
                "avg_daily_trips": [3],
                "event_timestamp": [t.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S")],
            },
            "allow_registry_cache": True,
            "transform_on_write": False,
            "unknown_later_field": 1,
        },
    )
    assert resp.status_code == 200, resp.text
    got = _sdk_read(client, 6003)
    assert _values(got)["avg_daily_trips"] == 3
    assert got["results"][1]["event_timestamps"] == [t.strftime("%Y-%m-%dT%H:%M:%SZ")]


def test_push_accepts_unknown_fields_and_naive_utc(client: httpx.Client) -> None:
    t = datetime.now(UTC).replace(microsecond=0)
    resp = client.post(
        "/push",
        json={
            "push_source_name": "driver_stats",
            "df": {
                "driver_id": [6004],
                "conv_rate": [0.3],
                "acc_rate": [0.4],
                "avg_daily_trips": [44],
                "event_timestamp": [_naive(t)],
                "created": [_naive(t)],
            },
            "to": "online",
            "allow_registry_cache": True,
            "transform_on_write": True,
            "a_field_feast_adds_later": [1, 2],
        },
    )
    assert resp.status_code == 200, resp.text
    got = _sdk_read(client, 6004)
    assert _values(got)["avg_daily_trips"] == 44
    assert got["results"][1]["event_timestamps"] == [t.strftime("%Y-%m-%dT%H:%M:%SZ")]


def _push_offline(client: httpx.Client, driver: int, trips: int, t: datetime) -> None:
    resp = client.post(
        "/push",
        json={
            "push_source_name": "driver_stats",
            "df": {
                "driver_id": [driver],
                "conv_rate": [0.5],
                "acc_rate": [0.5],
                "avg_daily_trips": [trips],
                "event_timestamp": [_naive(t)],
                "created": [_naive(t)],
            },
            "to": "offline",
        },
    )
    assert resp.status_code == 200, resp.text
    assert _sdk_read(client, driver)["results"][1]["statuses"] == ["NOT_FOUND"]


def test_materialize_then_read(client: httpx.Client) -> None:
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    _push_offline(client, 6101, 101, t)
    resp = client.post(
        "/materialize",
        json={  # naive: UTC, as Feast's make_tzaware(parser.parse(...))
            "start_ts": _naive(t - timedelta(minutes=1)),
            "end_ts": _naive(t + timedelta(minutes=1)),
            "feature_views": ["driver_stats"],
            "disable_event_timestamp": False,
            "ignored_extra": True,
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.content == b"null"
    assert _values(_sdk_read(client, 6101))["avg_daily_trips"] == 101


def test_materialize_naive_window_is_utc(client: httpx.Client) -> None:
    """A window that holds the row only when its naive bounds are read as UTC."""
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    _push_offline(client, 6102, 102, t)
    # the same wall-clock bounds read in UTC-05:00 would end before the row: nothing copied
    resp = client.post(
        "/materialize",
        json={
            "start_ts": (t - timedelta(seconds=30)).isoformat().replace("+00:00", "-05:00"),
            "end_ts": (t + timedelta(seconds=30)).isoformat().replace("+00:00", "-05:00"),
            "feature_views": ["driver_stats"],
        },
    )
    assert resp.status_code == 200, resp.text
    assert _sdk_read(client, 6102)["results"][1]["statuses"] == ["NOT_FOUND"]
    resp = client.post(
        "/materialize",
        json={
            "start_ts": _naive(t - timedelta(seconds=30)),
            "end_ts": _naive(t + timedelta(seconds=30)),
        },
    )
    assert resp.status_code == 200, resp.text
    assert _values(_sdk_read(client, 6102))["avg_daily_trips"] == 102


def test_materialize_disable_event_timestamp(client: httpx.Client) -> None:
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=15)
    _push_offline(client, 6103, 103, t)
    resp = client.post(
        "/materialize", json={"feature_views": ["driver_stats"], "disable_event_timestamp": True}
    )
    assert resp.status_code == 200, resp.text
    assert _values(_sdk_read(client, 6103))["avg_daily_trips"] == 103


def test_materialize_incremental_then_read(client: httpx.Client) -> None:
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    _push_offline(client, 6104, 104, t)
    resp = client.post(
        "/materialize-incremental",
        json={"end_ts": _naive(datetime.now(UTC)), "feature_views": ["driver_stats"], "x": 1},
    )
    assert resp.status_code == 200, resp.text
    assert resp.content == b"null"
    assert _values(_sdk_read(client, 6104))["avg_daily_trips"] == 104


def test_materialize_bad_bodies(client: httpx.Client) -> None:
    msg = feast_error(
        client.post("/materialize", json={"feature_views": ["driver_stats"]}), "start_ts"
    )
    resp = client.post("/materialize", json={"feature_views": ["driver_stats"]})
    assert resp.json()["detail"][0]["loc"] == ["body", "start_ts"], resp.text
    assert resp.json()["detail"][0]["type"] == "missing" and "Fix" in msg
    feast_error(
        client.post("/materialize", json={"start_ts": "yesterday", "end_ts": "2025-01-01"}),
        "`yesterday`",
    )
    error(  # an unknown view stays a 404 (Feast: FeatureViewNotFoundException, 404)
        client.post(
            "/materialize",
            json={
                "start_ts": "2025-01-01",
                "end_ts": "2025-01-02",
                "feature_views": ["driver_stat"],
            },
        ),
        404,
        "Did you mean `driver_stats`",
    )
    resp = client.post("/materialize-incremental", json={})
    feast_error(resp, "end_ts")
    assert resp.json()["detail"][0]["loc"] == ["body", "end_ts"]
    feast_error(
        client.post("/write-to-online-store", json={"df": {"driver_id": [1]}}),
        "feature_view_name",
    )
    feast_error(
        client.post("/write-to-online-store", content=b"{not json", headers=JSON),
        "Malformed JSON",
    )


def test_feast_routes_answer_422_native_routes_400(client: httpx.Client) -> None:
    """Feast's server is FastAPI: an invalid body is a 422 `{"detail": [...]}`; ours stay 400."""
    bad_read = {"features": "driver_stats:conv_rate", "entities": {"driver_id": [1001]}}
    resp = client.post("/get-online-features", json=bad_read)
    feast_error(resp, "`features`")
    assert resp.json()["detail"][0]["loc"] == ["body", "features"]
    error(client.post("/features/online", json=bad_read), 400, "`features`")
    feast_error(client.post("/push", json={"push_source_name": "driver_stats"}), "`df`")
    feast_error(client.post("/get-online-features", json=[1]), "must be a JSON object")
    # Featureline's Feast-compatible statuses other than 400 stay what they are
    error(client.post("/get-online-features", content=b"{}"), 415)


def test_materialize_incremental_stops_at_end_ts(client: httpx.Client) -> None:
    """Rows whose event time is after `end_ts` stay offline; the next run copies them."""
    now = datetime.now(UTC).replace(microsecond=0)
    _push_offline(client, 6301, 301, now - timedelta(minutes=20))
    _push_offline(client, 6302, 302, now - timedelta(minutes=2))
    resp = client.post(
        "/materialize-incremental",
        json={"end_ts": _naive(now - timedelta(minutes=10)), "feature_views": ["driver_stats"]},
    )
    assert resp.status_code == 200, resp.text
    assert _values(_sdk_read(client, 6301))["avg_daily_trips"] == 301
    assert _sdk_read(client, 6302)["results"][1]["statuses"] == ["NOT_FOUND"]
    resp = client.post("/materialize-incremental", json={"end_ts": _naive(datetime.now(UTC))})
    assert resp.status_code == 200, resp.text
    assert _values(_sdk_read(client, 6302))["avg_daily_trips"] == 302


def test_native_routes_still_refuse_unknown_fields(client: httpx.Client) -> None:
    error(
        client.post(
            "/features/online",
            json={
                "features": FEATURES,
                "entities": {"driver_id": [1001]},
                "include_feature_view_version_metadata": False,
            },
        ),
        400,
        "Unknown field `include_feature_view_version_metadata`",
    )
    now = datetime.now(UTC).isoformat()
    row = {
        "driver_id": 6200,
        "event_timestamp": now,
        "created": now,
        "conv_rate": 0.1,
        "acc_rate": 0.1,
        "avg_daily_trips": 1,
    }
    error(
        client.post("/push/driver_stats", json={"rows": [row], "to": "online"}),
        400,
        "Unknown field `to`",
    )
    # and naive timestamps stay refused there
    error(
        client.post(
            "/push/driver_stats", json={"rows": [{**row, "event_timestamp": "2025-01-01T00:00:00"}]}
        ),
        400,
        "time zone",
    )


def test_openapi_documents_feast_routes(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/write-to-online-store", "/materialize", "/materialize-incremental"):
        assert path in spec["info"]["description"], path
    for path in ("/get-online-features", "/push"):
        text = spec["paths"][path]["post"]["description"]
        assert "read as UTC" in text and "ignored" in text, (path, text)
    assert spec["components"]["schemas"]["FeastOnlineRequest"]["additionalProperties"] is True


def test_write_to_online_store_refusals(tmp_path: Path) -> None:
    """Online only needs the key types an offline commit records (Int64 needs none), and a view
    that is served online."""
    import featureline as fl
    from tests.helpers import new_store

    rider = fl.Entity("rider", ["rider_id"])
    schema = [fl.Field("rider_id", fl.String), fl.Field("score", fl.Float64)]
    served = fl.FeatureView("rider_stats", [rider], schema)
    hidden = fl.FeatureView("rider_batch", [rider], schema, online=False)
    store = new_store(tmp_path, rider, served, hidden)
    t = _naive(datetime.now(UTC) - timedelta(seconds=5))
    df = {"rider_id": ["r1"], "score": [0.5], "event_timestamp": [t]}
    with ThreadServer(create_app(store.repo_path)) as url, httpx.Client(base_url=url) as c:
        body = {"feature_view_name": "rider_stats", "df": df}
        feast_error(c.post("/write-to-online-store", json=body), "no offline commit", "`rider_id`")
        body = {"feature_view_name": "rider_batch", "df": df}
        feast_error(c.post("/write-to-online-store", json=body), "not served online")
        # after one offline commit the key type is known: online only works
        resp = c.post("/push", json={"push_source_name": "rider_stats", "df": df, "to": "offline"})
        assert resp.status_code == 200, resp.text
        df2 = {**df, "rider_id": ["r2"], "score": [0.75]}
        resp = c.post(
            "/write-to-online-store", json={"feature_view_name": "rider_stats", "df": df2}
        )
        assert resp.status_code == 200, resp.text
        got = c.post(
            "/get-online-features",
            json={"features": ["rider_stats:score"], "entities": {"rider_id": ["r2"]}},
        )
        assert _values(got.json()) == {"rider_id": "r2", "score": 0.75}
