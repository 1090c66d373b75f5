"""Definition validation collects every problem, each with its fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import featureline as fl
from featureline.definitions import parse_ref, validate_definitions
from featureline.errors import DefinitionError, ValidationError
from featureline.types import Array, parse_dtype
from tests.helpers import TS, utc


def test_all_problems_reported_at_once() -> None:
    driver = fl.Entity("driver", ["driver_id"])
    ghost = fl.Entity("rider", ["rider_id"])
    v1 = fl.FeatureView(
        "stats", [driver], [fl.Field("rate", fl.Float64)], ttl=timedelta(seconds=-1)
    )
    v2 = fl.FeatureView("stats", [ghost], [fl.Field("x", fl.Int64), fl.Field("x", fl.Int64)])
    v3 = fl.FeatureView("bad-name", [driver], [fl.Field("__seq", fl.Int64)])
    svc = fl.FeatureService("svc", ["stats:rat", "nostats:rate"])
    with pytest.raises(DefinitionError) as e:
        validate_definitions([driver], [v1, v2, v3], [svc])
    text = str(e.value)
    probs = e.value.problems
    assert "Duplicate feature view name `stats`" in text
    assert "bad ttl" in text
    assert "unknown entity `rider`" in text
    assert "Duplicate field name `x`" in text
    assert "`bad-name` is not a safe identifier" in text and "`bad_name`" in text
    assert "`__seq` is reserved" in text
    assert "references unknown feature `stats:rat`" in text
    assert "unknown feature view `nostats`. Did you mean `stats`?" in text
    assert len(probs) >= 8


def test_source_columns_checked(tmp_path: Path) -> None:
    driver = fl.Entity("driver", ["driver_id"])
    src = tmp_path / "s.parquet"
    pq.write_table(
        pa.table({"driver_id": [1], "ts": pa.array([utc(2025, 1, 1)], TS), "rate": ["x"]}), src
    )
    view = fl.FeatureView(
        "stats",
        [driver],
        [fl.Field("rate", fl.Float64), fl.Field("trips", fl.Int64)],
        source=fl.FileSource(str(src), timestamp_field="event_timestamp"),
    )
    repo = tmp_path / "repo"
    fl.init_repo(repo, with_data=False)
    (repo / "definitions.py").unlink()
    with pytest.raises(DefinitionError) as e:
        fl.FeatureStore(repo).apply([driver, view])
    text = str(e.value)
    assert "column `event_timestamp` is missing from source" in text
    assert "field `trips` is missing from source" in text
    assert "field `rate` is declared Float64 but source" in text and "has String" in text


def test_dtypes_round_trip() -> None:
    for t in (
        fl.Int64,
        fl.Float64,
        fl.String,
        fl.Bool,
        fl.Timestamp,
        fl.Bytes,
        Array(fl.Float64),
        Array(fl.String),
    ):
        assert parse_dtype(str(t)) == t
    with pytest.raises(ValidationError, match=r"Did you mean `Float64`"):
        parse_dtype("Float46")
    with pytest.raises(ValidationError):
        Array(Array(fl.Int64))


def test_refs() -> None:
    assert str(parse_ref("v:f")) == "v:f"
    r = parse_ref("v@v2:f")
    assert (r.view, r.version, r.feature) == ("v", 2, "f")
    with pytest.raises(ValidationError, match="view:feature"):
        parse_ref("vf")


def test_view_dict_round_trip() -> None:
    driver = fl.Entity("driver", ["driver_id"], owner="me", tags={"a": "b"})
    v = fl.FeatureView(
        "stats",
        [driver],
        [fl.Field("driver_id", fl.Int64), fl.Field("emb", Array(fl.Float64), description="d")],
        source=fl.FileSource("x.parquet", "ts", "created"),
        ttl=timedelta(hours=3),
        tags={"t": "1"},
    )
    back = fl.FeatureView.from_dict(v.to_dict(), {"driver": driver})
    assert (
        back == v and back.ttl == timedelta(hours=3) and [f.name for f in back.features] == ["emb"]
    )
    svc = fl.FeatureService("s", [v, v[["emb"]], "stats:emb"])
    assert svc.refs() == ["stats:emb", "stats:emb", "stats:emb"]


def test_public_api_is_explicit() -> None:
    import featureline

    for name in featureline.__all__:
        assert getattr(featureline, name) is not None
    with pytest.raises(AttributeError):
        _ = featureline.nope  # type: ignore[attr-defined]
