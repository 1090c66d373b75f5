"""Writes to the feature server over real HTTP: native and Feast pushes, idempotency keys, bad input."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import featureline as fl
from tests.integration.server_kit import FEATURES, NAMES, error, feast_error, parse_ts

pytestmark = pytest.mark.integration


# -- push --------------------------------------------------------------------------------------


def _read_one(client: httpx.Client, driver: int) -> dict[str, Any]:
    resp = client.post(
        "/features/online", json={"features": FEATURES, "entities": {"driver_id": [driver]}}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return {
        n: (
            body["features"][n][0],
            body["statuses"][n][0],
            parse_ts(body["event_timestamps"][n][0]),
        )
        for n in NAMES
    }


def test_native_push_rows_then_read(client: httpx.Client, store: fl.FeatureStore) -> None:
    now = (datetime.now(UTC) - timedelta(seconds=1)).replace(microsecond=123456)  # never ahead
    row = {
        "driver_id": 5001,
        "event_timestamp": now.isoformat(),
        "created": now.isoformat(),
        "conv_rate": 0.25,
        "acc_rate": 1,
        "avg_daily_trips": 17,
    }
    resp = client.post("/push/driver_stats", json={"rows": [row]})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["view"] == "driver_stats" and out["rows"] == 1
    ingested = parse_ts(out["ingested_at"])
    assert ingested is not None and ingested.tzinfo is not None
    assert abs((datetime.now(UTC) - ingested).total_seconds()) < 60
    got = _read_one(client, 5001)
    # JSON `1` for a Float64 column is stored as 1.0
    assert got == {
        "conv_rate": (0.25, "PRESENT", now),
        "acc_rate": (1.0, "PRESENT", now),
        "avg_daily_trips": (17, "PRESENT", now),
    }
    assert store.get_online_features(FEATURES, {"driver_id": [5001]}).to_dict()["conv_rate"] == [
        0.25
    ]


def test_native_push_columns_with_offset(client: httpx.Client) -> None:
    t = datetime.now(UTC).replace(microsecond=0)
    local = (
        t.astimezone(UTC).replace(tzinfo=None).isoformat() + "+02:00"
    )  # the same wall time, two hours east
    cols = {
        "driver_id": [5002],
        "event_timestamp": [local],
        "created": [None],
        "conv_rate": [0.5],
        "acc_rate": [0.75],
        "avg_daily_trips": [3],
    }
    resp = client.post("/push/driver_stats", json={"columns": cols})
    assert resp.status_code == 200, resp.text
    got = _read_one(client, 5002)
    assert got["conv_rate"] == (0.5, "PRESENT", t - timedelta(hours=2))


def test_feast_push_then_read(client: httpx.Client) -> None:
    t = datetime.now(UTC).replace(microsecond=0)
    naive = t.strftime("%Y-%m-%d %H:%M:%S")  # Feast's docs send naive strings, read as UTC
    df = {
        "driver_id": [5003],
        "event_timestamp": [naive],
        "created": [naive],
        "conv_rate": [1.0],
        "acc_rate": [1.0],
        "avg_daily_trips": [1000],
    }
    resp = client.post("/push", json={"push_source_name": "driver_stats", "df": df, "to": "online"})
    assert resp.status_code == 200, resp.text
    assert resp.content == b"null"
    feast = client.post(
        "/get-online-features", json={"features": FEATURES, "entities": {"driver_id": [5003]}}
    ).json()
    assert [r["values"] for r in feast["results"]] == [[5003], [1.0], [1.0], [1000]]
    assert [r["statuses"] for r in feast["results"]] == [["PRESENT"]] * 4
    assert feast["results"][1]["event_timestamps"] == [t.strftime("%Y-%m-%dT%H:%M:%SZ")]


def test_push_with_an_idempotency_key_is_one_commit(
    client: httpx.Client, store: fl.FeatureStore
) -> None:
    now = datetime.now(UTC).isoformat()
    row = {
        "driver_id": 5004,
        "event_timestamp": now,
        "created": now,
        "conv_rate": 0.5,
        "acc_rate": 0.5,
        "avg_daily_trips": 4,
    }
    before = int(store.describe("driver_stats")["rows"])
    first = client.post(
        "/push/driver_stats", json={"rows": [row]}, headers={"Idempotency-Key": "req-5004"}
    )
    again = client.post(
        "/push/driver_stats", json={"rows": [row]}, headers={"Idempotency-Key": "req-5004"}
    )
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert first.json()["replayed"] is False and again.json()["replayed"] is True
    assert (
        again.json()["commit"] == first.json()["commit"]
        and again.json()["ingested_at"] == first.json()["ingested_at"]
    )
    assert int(store.describe("driver_stats")["rows"]) == before + 1
    feast = {
        "push_source_name": "driver_stats",
        "df": {k: [v] for k, v in row.items()},
        "to": "online",
    }
    assert (
        client.post("/push", json=feast, headers={"Idempotency-Key": "feast-5004"}).status_code
        == 200
    )
    assert (
        client.post("/push", json=feast, headers={"Idempotency-Key": "feast-5004"}).status_code
        == 200
    )
    assert int(store.describe("driver_stats")["rows"]) == before + 2
    error(
        client.post(
            "/push/driver_stats", json={"rows": [row]}, headers={"Idempotency-Key": "k" * 201}
        ),
        400,
        "Idempotency-Key",
    )


def test_feast_push_to_offline_leaves_online_untouched(
    client: httpx.Client, store: fl.FeatureStore
) -> None:
    now = datetime.now(UTC).isoformat()
    df = {
        "driver_id": [5005],
        "event_timestamp": [now],
        "created": [now],
        "conv_rate": [0.1],
        "acc_rate": [0.1],
        "avg_daily_trips": [1],
    }
    resp = client.post(
        "/push", json={"push_source_name": "driver_stats", "df": df, "to": "offline"}
    )
    assert resp.status_code == 200, resp.text
    assert _read_one(client, 5005)["conv_rate"][1] == "NOT_FOUND"
    ts = store.get_training_set(
        {"driver_id": [5005], "event_timestamp": [datetime.now(UTC)]}, ["driver_stats:conv_rate"]
    )
    assert ts.to_arrow().column("conv_rate").to_pylist() == [0.1]


def test_reads_during_pushes(server: str) -> None:
    """Pushes run in the threadpool while reads run on the event loop: neither fails nor blocks."""
    failures: list[str] = []

    def reader() -> None:
        with httpx.Client(base_url=server, timeout=15) as c:
            for _ in range(100):
                r = c.post(
                    "/features/online",
                    json={"features": FEATURES, "entities": {"driver_id": [1001, 5010]}},
                )
                if r.status_code != 200 or r.json()["statuses"]["conv_rate"][0] != "PRESENT":
                    failures.append(r.text)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    with httpx.Client(base_url=server, timeout=15) as c:
        for i in range(5):
            now = datetime.now(UTC).isoformat()
            row = {
                "driver_id": 5010,
                "event_timestamp": now,
                "created": now,
                "conv_rate": i / 10,
                "acc_rate": 0.5,
                "avg_daily_trips": i,
            }
            r = c.post("/push/driver_stats", json={"rows": [row]})
            assert r.status_code == 200, r.text
    for t in threads:
        t.join()
    assert not failures, failures[:3]
    with httpx.Client(base_url=server, timeout=15) as c:
        assert _read_one(c, 5010)["avg_daily_trips"][:2] == (4, "PRESENT")


def test_push_bad_input(client: httpx.Client) -> None:
    now = datetime.now(UTC).isoformat()
    row = {
        "driver_id": 5004,
        "event_timestamp": now,
        "created": now,
        "conv_rate": 0.1,
        "acc_rate": 0.1,
        "avg_daily_trips": 1,
    }
    error(
        client.post("/push/driver_stat", json={"rows": [row]}),
        404,
        "driver_stat",
        "Did you mean `driver_stats`",
    )
    error(
        client.post(
            "/push/driver_stats", json={"rows": [{**row, "event_timestamp": "2025-01-01T00:00:00"}]}
        ),
        400,
        "event_timestamp",
        "time zone",
    )
    error(
        client.post("/push/driver_stats", json={"rows": [{**row, "event_timestamp": "yesterday"}]}),
        400,
        "`yesterday`",
        "ISO 8601",
    )
    error(
        client.post("/push/driver_stats", json={"rows": [{**row, "driver_id": "x5004"}]}),
        400,
        "driver_id",
        "Int64",
    )
    error(
        client.post("/push/driver_stats", json={"rows": [row], "columns": {}}),
        400,
        "exactly one of `rows` or `columns`",
    )
    error(
        client.post("/push/driver_stats", json={"row": [row]}), 400, "`row`", "Did you mean `rows`"
    )
    error(
        client.post("/push/driver_stats", json={"rows": [row, {"driver_id": 1}]}),
        400,
        "Row 1",
        "missing",
    )
    feast_error(  # the Feast route: 422, as Feast's server (FastAPI)
        client.post(
            "/push",
            json={"push_source_name": "driver_stats", "df": {"driver_id": [1]}, "to": "onlin"},
        ),
        "`onlin`",
        "Did you mean `online`",
    )
    feast_error(
        client.post("/push", json={"push_source": "driver_stats", "df": {}}),
        "`push_source`",
        "Did you mean `push_source_name`",
    )
    error(
        client.post(
            "/push", json={"push_source_name": "driver_stats_push_source", "df": {"driver_id": [1]}}
        ),
        404,
        "driver_stats",
    )
