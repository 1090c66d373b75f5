"""Messages that misled (issue 9, item 12): each names the real problem and its fix."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

import featureline as fl
from featureline.errors import NotFoundError, ValidationError
from tests.e2e.test_cli import failed, run
from tests.helpers import TS, driver_defs, new_store, rows, utc


def test_as_of_before_the_first_apply_names_the_first_version(tmp_path: Path) -> None:
    before = datetime(2020, 1, 1, tzinfo=UTC)
    store = new_store(tmp_path, *driver_defs())
    with pytest.raises(
        NotFoundError,
        match=r"first version was applied at .*Fix: pass an as_of at or after that time",
    ):
        store.get_training_set(
            {"driver_id": [1], "event_timestamp": [utc(2025, 1, 1)]},
            ["driver_stats:rate"],
            as_of=before,
        )


def test_nat_as_of_is_called_missing_not_naive(tmp_path: Path) -> None:
    import pandas as pd

    store = new_store(tmp_path, *driver_defs())
    with pytest.raises(ValidationError, match=r"NaT / NaN \(a missing time\)"):
        store.get_training_set(
            {"driver_id": [1], "event_timestamp": [utc(2025, 1, 1)]},
            ["driver_stats:rate"],
            as_of=pd.NaT,
        )


def test_a_missing_column_suggests_only_unused_columns(tmp_path: Path) -> None:
    driver = fl.Entity("driver", ["driver_id"])
    view = fl.FeatureView(
        "v",
        [driver],
        [fl.Field("driver_id", fl.Int64), fl.Field("acc_rate", fl.Float64)],
        source=fl.FileSource(
            path="x.parquet", timestamp_field="event_timestamp", created_timestamp_field="created"
        ),
    )
    store = new_store(tmp_path, driver, view)
    t = pa.table(
        {"driver_id": [1], "event_timestamp": pa.array([utc(2025, 1, 1)], TS), "acc_rate": [0.5]}
    )
    with pytest.raises(ValidationError, match=r"column `created` is missing\. Found") as e:
        store.push("v", t)
    assert "acc_rate`?" not in str(e.value)
    t2 = t.append_column("creatd", pa.array([utc(2025, 1, 1)], TS))
    with pytest.raises(ValidationError, match=r"Did you mean `creatd`"):
        store.push("v", t2)


def test_an_unparsable_timestamp_names_the_value_not_pyarrows_advice(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs())
    t = pa.table(
        {
            "driver_id": [1, 2],
            "event_timestamp": ["2025-01-01T00:00:00+00:00", "yesterday"],
            "rate": [0.1, 0.2],
            "trips": [1, 2],
        }
    )
    with pytest.raises(
        ValidationError, match=r"not a timestamp with a time zone: `yesterday`\. Fix: use ISO 8601"
    ) as e:
        store.ingest("driver_stats", t)
    assert "If this" not in str(e.value) and "strptime" not in str(e.value)


def test_csv_columns_are_read_with_the_declared_types(tmp_path: Path) -> None:
    merchant = fl.Entity("merchant", ["merchant_id"])
    view = fl.FeatureView(
        "m",
        [merchant],
        [fl.Field("merchant_id", fl.String), fl.Field("mcc", fl.String), fl.Field("n", fl.Int64)],
    )
    store = new_store(tmp_path, merchant, view)
    csv = tmp_path / "m.csv"
    csv.write_text("merchant_id,event_timestamp,mcc,n\n0042,2025-01-01T00:00:00+00:00,5411,3\n")
    store.ingest("m", str(csv))
    got = store.preview("m").to_pylist()[0]
    assert (got["merchant_id"], got["mcc"], got["n"]) == ("0042", "5411", 3)


def test_training_set_out_with_an_unknown_extension_is_refused(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs())
    store.ingest("driver_stats", rows([1], [utc(2025, 1, 1)], [0.5]))
    ents = tmp_path / "e.parquet"
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"driver_id": [1], "event_timestamp": pa.array([utc(2025, 1, 2)], TS)}), ents
    )
    msg = failed(
        run(
            "training-set",
            "--entities",
            str(ents),
            "--features",
            "driver_stats:rate",
            "--out",
            str(tmp_path / "x.json"),
            repo=store.repo_path,
        )
    )
    assert "`.json`" in msg and ".parquet or .csv" in msg
    assert not (tmp_path / "x.json").exists()


def test_models_alias_to_a_missing_version_lists_the_versions(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs())
    store.models.register("m", {"w": 1}, features=["driver_stats:rate"])
    store.models.register("m", {"w": 2}, features=["driver_stats:trips"])
    have = sorted(int(m["version"]) for m in store.models.versions("m"))
    msg = failed(run("models", "alias", "m", "production", "99", repo=store.repo_path))
    assert "Did you mean `m`" not in msg, msg  # it suggested the model's own name
    assert "has no version 99" in msg and f"Its versions: {', '.join(map(str, have))}" in msg
    assert f"featureline models alias m production {have[-1]}" in msg
    msg = failed(run("models", "show", "m:99", repo=store.repo_path))
    assert "Did you mean `m`" not in msg and "Its versions" in msg


def test_runs_show_of_an_unknown_run_names_the_cli_command(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs())
    for args in (["runs", "show", "nope"], ["runs", "compare", "nope"]):
        msg = failed(run(*args, repo=store.repo_path))
        assert "Run `nope` does not exist" in msg and "`featureline runs list`" in msg, msg
        assert "list_runs()" not in msg  # a Python function, not what a CLI user types


@contextmanager
def _server(store: fl.FeatureStore) -> Iterator[httpx.Client]:
    """The feature server on a loopback socket and a client for it."""
    from featureline.server import create_app
    from tests.integration.server_kit import ThreadServer

    with ThreadServer(create_app(store.repo_path)) as url, httpx.Client(base_url=url) as c:
        yield c


def test_a_push_missing_created_over_http_suggests_no_unrelated_column(tmp_path: Path) -> None:
    driver = fl.Entity("driver", ["driver_id"])
    view = fl.FeatureView(
        "v",
        [driver],
        [fl.Field("driver_id", fl.Int64), fl.Field("acc_rate", fl.Float64)],
        source=fl.FileSource(
            path="x.parquet", timestamp_field="event_timestamp", created_timestamp_field="created"
        ),
    )
    store = new_store(tmp_path, driver, view)
    row = {"driver_id": 1, "event_timestamp": "2025-01-01T00:00:00+00:00", "acc_rate": 0.5}
    with _server(store) as c:
        resp = c.post("/push/v", json={"rows": [row]})
    assert resp.status_code == 400, resp.text
    msg = resp.json()["message"]
    assert "column `created` is missing" in msg and "Did you mean" not in msg, msg


def test_a_23_digit_key_is_out_of_the_int64_range_not_a_float(tmp_path: Path) -> None:
    store = new_store(tmp_path, *driver_defs())
    store.push("driver_stats", rows([1], [utc(2025, 1, 1)], [0.5]))
    key = "12345678901234567890123"
    read = f'{{"features": ["driver_stats:rate"], "entities": {{"driver_id": [{key}]}}}}'
    push = (
        f'{{"rows": [{{"driver_id": {key}, "event_timestamp": "2025-01-01T00:00:00+00:00", '
        '"rate": 0.5, "trips": 1}]}'
    )
    json_type = {"content-type": "application/json"}
    with _server(store) as c:
        answers = [
            c.post("/features/online", content=read.encode(), headers=json_type),
            c.post("/get-online-features", content=read.encode(), headers=json_type),
            c.post("/push/driver_stats", content=push.encode(), headers=json_type),
        ]
    for resp in answers:
        assert resp.status_code in (400, 422), resp.text
        msg = resp.json()["message"]
        assert f"`{key}`" in msg and "outside the Int64 range" in msg, msg
        assert "float" not in msg and "e+22" not in msg, msg
    # the CLI reads JSON with exact integers: the same answer
    msg = failed(
        run(
            "online",
            "--features",
            "driver_stats:rate",
            "--entity",
            f'{{"driver_id": [{key}]}}',
            repo=store.repo_path,
        )
    )
    assert "outside the Int64 range" in msg


def test_push_of_row_dicts_names_the_bad_column_instead_of_a_pyarrow_traceback(
    tmp_path: Path,
) -> None:
    """Issue 9 item 9: a key past 64 bits pushed from the SDK was a raw OverflowError."""
    from datetime import UTC, datetime

    from tests.helpers import driver_defs, new_store

    driver, view = driver_defs()
    store = new_store(tmp_path, driver, view)
    now = datetime.now(UTC)
    cases = [
        ({"driver_id": 10**23}, "outside the Int64 range"),
        ({"trips": 2.5}, "declares Int64"),
        ({"rate": "fast"}, "declares Float64"),
        ({"rate": True}, "declares Float64"),
    ]
    for change, needle in cases:
        row = {"driver_id": 1, "event_timestamp": now, "rate": 0.5, "trips": 3, **change}
        with pytest.raises(fl.FeaturelineError, match=needle) as e:
            store.push("driver_stats", [row])
        assert next(iter(change)) in str(e.value)
    assert (
        store.push(
            "driver_stats", [{"driver_id": 1, "event_timestamp": now, "rate": 0.5, "trips": 3}]
        ).rows
        == 1
    )
    store.close()
