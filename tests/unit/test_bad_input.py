"""Bad input: each case gives a clear error naming the problem and the fix, and writes nothing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import featureline as fl
from featureline.errors import DefinitionError, FeaturelineError, NotFoundError, ValidationError
from tests.helpers import TS, driver_defs, new_store, rows, utc


@pytest.fixture
def store(tmp_path: Path) -> fl.FeatureStore:
    s = new_store(tmp_path, *driver_defs())
    s.ingest("driver_stats", rows([1, 2], [utc(2025, 1, 1, 10), utc(2025, 1, 1, 10)], [0.1, 0.2]))
    return s


def _count(store: fl.FeatureStore) -> int:
    return int(store.describe("driver_stats")["rows"])


def test_naive_timestamps_refused_on_ingest(store: fl.FeatureStore) -> None:
    bad = rows([3], [utc(2025, 1, 1)], [0.3]).set_column(
        1, "event_timestamp", pa.array([datetime(2025, 1, 1)], pa.timestamp("us"))
    )
    with pytest.raises(ValidationError, match=r"naive timestamps.*tz_localize\('UTC'\)"):
        store.ingest("driver_stats", bad)
    assert _count(store) == 2


def test_naive_timestamps_refused_in_entity_frame(store: fl.FeatureStore) -> None:
    ent = pa.table(
        {"driver_id": [1], "event_timestamp": pa.array([datetime(2025, 1, 1)], pa.timestamp("us"))}
    )
    with pytest.raises(ValidationError, match="naive timestamps"):
        store.get_training_set(ent, ["driver_stats:rate"])


def test_naive_as_of_refused(store: fl.FeatureStore) -> None:
    ent = pa.table({"driver_id": [1], "event_timestamp": pa.array([utc(2025, 1, 1)], TS)})
    with pytest.raises(ValidationError, match="naive datetime"):
        store.get_training_set(ent, ["driver_stats:rate"], as_of=datetime(2025, 1, 1))


def test_missing_join_key_in_entity_frame(store: fl.FeatureStore) -> None:
    ent = pa.table({"driver": [1], "event_timestamp": pa.array([utc(2025, 1, 1)], TS)})
    with pytest.raises(
        ValidationError,
        match=r"join key `driver_id` \(needed by driver_stats\) is missing\. Did you mean `driver`\?",
    ):
        store.get_training_set(ent, ["driver_stats:rate"])


def test_unknown_feature_reference_suggests(store: fl.FeatureStore) -> None:
    ent = pa.table({"driver_id": [1], "event_timestamp": pa.array([utc(2025, 1, 1)], TS)})
    with pytest.raises(NotFoundError, match=r"`driver_stats:rat`.*Did you mean `rate`\?"):
        store.get_training_set(ent, ["driver_stats:rat"])
    with pytest.raises(
        NotFoundError, match=r"Unknown feature view `driver_stat`\. Did you mean `driver_stats`\?"
    ):
        store.get_training_set(ent, ["driver_stat:rate"])
    with pytest.raises(ValidationError, match=r"Bad feature reference `rate`"):
        store.get_training_set(ent, ["rate", "x:y:z"])


def test_wrong_column_type_names_column_and_types(store: fl.FeatureStore) -> None:
    bad = rows([3], [utc(2025, 1, 2)], [0.3]).set_column(2, "rate", pa.array(["high"]))
    with pytest.raises(
        ValidationError, match=r"column `rate` has type String; the view declares Float64"
    ):
        store.ingest("driver_stats", bad)
    assert _count(store) == 2


def test_wrong_key_type_in_entity_frame(store: fl.FeatureStore) -> None:
    ent = pa.table({"driver_id": ["1"], "event_timestamp": pa.array([utc(2025, 1, 1)], TS)})
    with pytest.raises(
        ValidationError,
        match=r"join key `driver_id` has type `string`; expected Int64. Fix: send the key as integers",
    ):
        store.get_training_set(ent, ["driver_stats:rate"])


def test_all_problems_reported_together(store: fl.FeatureStore) -> None:
    bad = pa.table(
        {
            "driver_id": ["x"],
            "event_timestamp": pa.array([datetime(2025, 1, 1)], pa.timestamp("us")),
            "rate": [1.0],
            "trips": [1.5],
        }
    )
    with pytest.raises(ValidationError) as e:
        store.ingest("driver_stats", bad)
    msg = str(e.value)
    assert (
        "3 problem(s)" in msg
        and "`driver_id`" in msg
        and "naive" in msg
        and "`trips`" in msg
        and "nothing was written" in msg
    )


def test_empty_frames(store: fl.FeatureStore) -> None:
    with pytest.raises(ValidationError, match=r"is empty \(0 rows\)"):
        store.ingest("driver_stats", rows([], [], []))
    ent = pa.table({"driver_id": pa.array([], pa.int64()), "event_timestamp": pa.array([], TS)})
    with pytest.raises(ValidationError, match=r"entity frame is empty"):
        store.get_training_set(ent, ["driver_stats:rate"])


def test_missing_files(store: fl.FeatureStore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"does not exist"):
        store.ingest("driver_stats", str(tmp_path / "nope.parquet"))
    with pytest.raises(NotFoundError, match=r"No file matches"):
        store.get_training_set(str(tmp_path / "nope*.parquet"), ["driver_stats:rate"])


def test_corrupt_parquet(store: fl.FeatureStore, tmp_path: Path) -> None:
    p = tmp_path / "corrupt.parquet"
    pq.write_table(rows([5], [utc(2025, 1, 3)], [0.5]), p)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(
        ValidationError, match=r"Could not read `.*corrupt.parquet`.*valid Parquet file"
    ):
        store.ingest("driver_stats", p)
    assert _count(store) == 2


def test_unsupported_input_type(store: fl.FeatureStore) -> None:
    with pytest.raises(ValidationError, match=r"Unsupported type `int`"):
        store.ingest("driver_stats", 42)


def test_repo_with_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    fl.init_repo(repo, with_data=False)
    (repo / "broken.py").write_text("x = 1\ndef f(:\n    pass\n")
    with pytest.raises(DefinitionError, match=r"broken\.py:2: syntax error"):
        fl.FeatureStore(repo).apply()


def test_repo_module_raising_names_file_and_line(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    fl.init_repo(repo, with_data=False)
    (repo / "boom.py").write_text("a = 1\nb = 2\nraise RuntimeError('nope')\n")
    with pytest.raises(DefinitionError, match=r"boom\.py:3: RuntimeError: nope"):
        fl.FeatureStore(repo).apply()


def test_not_a_repo(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"featureline init"):
        fl.FeatureStore(tmp_path)


def test_errors_pickle_and_have_status() -> None:
    import pickle

    e = ValidationError("bad `x`")
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is ValidationError and str(e2) == "bad `x`" and e2.http_status == 400
    d = pickle.loads(pickle.dumps(DefinitionError.from_problems(["a", "b"])))
    assert d.problems == ["a", "b"]
    assert issubclass(NotFoundError, FeaturelineError) and NotFoundError.http_status == 404


def test_unsigned_key_beyond_int64_is_a_clear_error(store: fl.FeatureStore) -> None:
    t = pa.table(
        {
            "driver_id": pa.array([1, 2**63 + 5], pa.uint64()),
            "event_timestamp": pa.array([utc(2025, 1, 1)] * 2, TS),
            "rate": [0.1, 0.2],
            "trips": [1, 2],
        }
    )
    with pytest.raises(
        ValidationError, match=r"join key `driver_id` has values that do not fit Int64.*Fix:"
    ):
        store.ingest("driver_stats", t)
    ok = t.set_column(0, "driver_id", pa.array([1, 2], pa.uint64()))
    assert store.ingest("driver_stats", ok).rows == 2  # unsigned keys in range are fine


def test_online_key_beyond_int64_is_a_clear_error(tmp_path: Path) -> None:
    from datetime import UTC, timedelta
    from datetime import datetime as dt

    s = new_store(tmp_path, *driver_defs(ttl=timedelta(days=1)))
    s.push("driver_stats", rows([1], [dt.now(UTC)], [0.5]))
    for key in (2**63 + 5, -(2**63) - 1, 10**23):
        with pytest.raises(ValidationError, match=r"outside the Int64 range.*Fix:"):
            s.get_online_features(["driver_stats:rate"], {"driver_id": [key]})
    assert s.get_online_features(["driver_stats:rate"], {"driver_id": [2**63 - 1]}).statuses[
        "rate"
    ] == ["NOT_FOUND"]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00-05:00"])
def test_push_timestamp_that_overflows_in_utc_is_a_clear_error(
    store: fl.FeatureStore, value: str
) -> None:
    from featureline.server._body import push_columns

    fv = store.get_feature_view("driver_stats")
    with pytest.raises(ValidationError, match=r"outside the range of timestamps once moved to UTC"):
        push_columns(
            fv,
            {"driver_id": [1], "event_timestamp": [value], "rate": [0.1], "trips": [1]},
            "POST /push",
        )


def test_the_same_key_mistake_reads_the_same_offline_and_online(store: fl.FeatureStore) -> None:
    from datetime import UTC, timedelta
    from datetime import datetime as dt

    msgs = []
    with pytest.raises(ValidationError) as off:
        store.get_training_set(
            {"driver_id": ["1"], "event_timestamp": [dt.now(UTC)]}, ["driver_stats:rate"]
        )
    with pytest.raises(ValidationError) as on:
        store.get_online_features(["driver_stats:rate"], {"driver_id": ["1"]})
    for e in (off.value, on.value):
        msgs.append(str(e))
        assert "join key `driver_id` has " in str(
            e
        ) and "expected Int64. Fix: send the key as integers." in str(e)
    with pytest.raises(
        ValidationError, match=r"join key `driver_id` \(needed by driver_stats\) is missing.*Given:"
    ):
        store.get_training_set(
            {"id": [1], "event_timestamp": [dt.now(UTC) - timedelta(0)]}, ["driver_stats:rate"]
        )
    with pytest.raises(
        ValidationError, match=r"join key `driver_id` \(needed by driver_stats\) is missing.*Given:"
    ):
        store.get_online_features(["driver_stats:rate"], {"id": [1]})
