"""Messages that misled (issue 9, item 12): each names the real problem and its fix."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

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
