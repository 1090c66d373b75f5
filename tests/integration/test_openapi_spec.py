"""The OpenAPI document and the server agree (issue 9, items 8 and 9): the model routes are
documented, a body the document refuses is refused by the server (and the reverse), and the
Feast push body lists the columns each view of the registry needs, as of the request."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

import featureline as fl
from featureline.server import create_app
from tests.integration.server_kit import ThreadServer, error

ONLINE = {"features": ["driver_stats:conv_rate"], "entities": {"driver_id": [1001]}}
ROW = {
    "driver_id": 1001,
    "event_timestamp": "2025-01-01T12:00:00+00:00",
    "created": "2025-01-01T12:00:00+00:00",
    "conv_rate": 0.5,
    "acc_rate": 0.9,
    "avg_daily_trips": 10,
}


@pytest.fixture(scope="module")
def spec(server: str) -> dict[str, Any]:
    with httpx.Client(base_url=server) as c:
        r = c.get("/openapi.json")
        assert r.status_code == 200
        return dict(r.json())


def valid(spec: dict[str, Any], schema: str, body: Any) -> bool:
    doc = {"$ref": f"#/components/schemas/{schema}", "components": spec["components"]}
    return bool(jsonschema.Draft202012Validator(doc).is_valid(body))


def test_the_model_routes_are_documented(spec: dict[str, Any], client: httpx.Client) -> None:
    assert spec["paths"]["/models"]["get"]["operationId"] == "listModels"
    predict = spec["paths"]["/models/{name}/predict"]["post"]
    assert {"200", "400", "404", "409", "422"} <= set(predict["responses"])
    body = spec["components"]["schemas"]["PredictRequest"]
    assert set(body["properties"]) == {"entities", "version", "proba"}  # what the route reads
    assert body["required"] == ["entities"] and body["additionalProperties"] is False
    assert valid(spec, "PredictRequest", {"entities": {"driver_id": [1]}, "version": "production"})
    assert not valid(spec, "PredictRequest", {"entities": {"driver_id": [1]}, "version": True})
    assert not valid(spec, "PredictRequest", {"entities": {"driver_id": [1]}, "version": 0})
    docs = client.get("/docs").text
    assert "/models/{name}/predict" in docs and "PredictRequest" in docs and "/models<" in docs


def test_a_null_feature_service_is_refused_natively_and_documented_for_feast(
    spec: dict[str, Any], client: httpx.Client
) -> None:
    body = {**ONLINE, "feature_service": None}
    assert not valid(spec, "OnlineRequest", body)
    error(client.post("/features/online", json=body), 400, "`feature_service`", "null")
    assert valid(spec, "FeastOnlineRequest", body)  # Feast's model: Optional[str]
    assert client.post("/get-online-features", json=body).status_code == 200


def test_features_and_feature_service_together_are_refused_by_both(
    spec: dict[str, Any], client: httpx.Client
) -> None:
    body = {**ONLINE, "feature_service": "driver_activity"}
    assert not valid(spec, "OnlineRequest", body)
    error(client.post("/features/online", json=body), 400, "not both")
    assert valid(spec, "OnlineRequest", {**ONLINE})
    assert not valid(spec, "OnlineRequest", {"entities": {"driver_id": [1001]}})  # neither


def test_rows_and_columns_together_are_refused_by_the_schema_too(
    spec: dict[str, Any], client: httpx.Client
) -> None:
    both = {"rows": [ROW], "columns": {k: [v] for k, v in ROW.items()}}
    assert not valid(spec, "PushRequest", both)
    assert not valid(spec, "PushRequest", {})
    assert valid(spec, "PushRequest", {"rows": [ROW]})
    assert valid(spec, "PushRequest", {"columns": both["columns"]})
    error(client.post("/push/driver_stats", json=both), 400, "exactly one of `rows` or `columns`")


def test_the_feast_push_schema_lists_the_columns_of_each_view(
    spec: dict[str, Any], client: httpx.Client
) -> None:
    push = spec["components"]["schemas"]["FeastPushRequest"]
    (branch,) = [b for b in push["oneOf"] if b["title"] == "driver_stats"]
    df = branch["properties"]["df"]
    assert set(df["required"]) == set(ROW)  # keys, event and created times, every feature
    assert df["properties"]["driver_id"]["anyOf"][0]["items"]["maximum"] == 2**63 - 1
    columns = {k: [v] for k, v in ROW.items()}
    ok = {"push_source_name": "driver_stats", "df": columns}
    assert valid(spec, "FeastPushRequest", ok)
    missing = {**ok, "df": {k: v for k, v in columns.items() if k != "acc_rate"}}
    assert not valid(spec, "FeastPushRequest", missing)
    r = client.post("/push", json=missing)
    assert r.status_code in (400, 422) and "acc_rate" in r.text, r.text
    assert not valid(spec, "FeastPushRequest", {**ok, "push_source_name": "nope"})
    write = spec["components"]["schemas"]["FeastWriteRequest"]["oneOf"][0]["properties"]["df"]
    assert "created" not in write["required"]  # optional in Feast's writes (the SDK may omit it)
    docs = client.get("/docs").text
    assert "View <code>driver_stats</code>: columns <code>driver_id</code>" in docs


def test_the_document_follows_the_registry(tmp_path: Path) -> None:
    """Generated per request: a view applied while the server runs is in the next document."""
    repo = tmp_path / "repo"
    fl.init_repo(repo, project="live", with_data=False)
    (repo / "definitions.py").unlink()
    card = fl.Entity("card", ["card_id"])

    def view(name: str, feature: str) -> fl.FeatureView:
        fields = [fl.Field("card_id", fl.Int64), fl.Field(feature, fl.String)]
        return fl.FeatureView(name, [card], fields, ttl=timedelta(days=1))

    with fl.FeatureStore(repo) as store:
        store.apply([card, view("a", "x")])
        with ThreadServer(create_app(repo)) as url, httpx.Client(base_url=url) as c:

            def columns() -> dict[str, list[str]]:
                push = c.get("/openapi.json").json()["components"]["schemas"]["FeastPushRequest"]
                return {
                    b["title"]: sorted(b["properties"]["df"]["required"]) for b in push["oneOf"]
                }

            assert columns() == {"a": ["card_id", "event_timestamp", "x"]}
            store.apply([card, view("a", "x"), view("b", "y")])
            assert columns()["b"] == ["card_id", "event_timestamp", "y"]
            assert "b:y" in c.get("/openapi.json").text  # and its feature is listed for reads


def test_an_int64_feature_below_the_range_is_refused_not_rounded(client: httpx.Client) -> None:
    """Found by the fuzz test: JSON -2^63-1 parses as a float that rounds to -2^63, and was
    stored as -2^63 (200). It is out of the documented Int64 range: a 4xx naming the column."""
    low = -(2**63) - 1
    r = client.post("/push/driver_stats", json={"rows": [{**ROW, "avg_daily_trips": low}]})
    error(r, 400, "`avg_daily_trips`", "outside the Int64 range")
    df = {k: [v] for k, v in ROW.items()} | {"avg_daily_trips": [low]}
    r = client.post("/write-to-online-store", json={"feature_view_name": "driver_stats", "df": df})
    assert r.status_code == 422 and "outside the Int64 range" in r.json()["message"], r.text


def test_a_boolean_in_a_number_column_is_refused(client: httpx.Client) -> None:
    """Found by the fuzz test: `"acc_rate": true` (a Float64) was stored as 1.0 with 200."""
    r = client.post("/push/driver_stats", json={"rows": [{**ROW, "acc_rate": True}]})
    error(r, 400, "`acc_rate`", "boolean", "Float64")
    df = {k: [v] for k, v in ROW.items()} | {"acc_rate": True}  # Feast: a scalar fills the column
    r = client.post("/write-to-online-store", json={"feature_view_name": "driver_stats", "df": df})
    assert r.status_code == 422 and "boolean" in r.json()["message"], r.text
