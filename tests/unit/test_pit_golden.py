"""Golden-file tests of the point-in-time SQL builder (`featureline.offline._pit.pit_join_sql`).

Each case's SQL is compared exactly with `tests/unit/golden/<case>.sql`. After an intended
change to the SQL, rewrite the files and review the diff:

    FEATURELINE_UPDATE_GOLDEN=1 pytest tests/unit/test_pit_golden.py

Each case is also run once by DuckDB over real (empty) part files, so a golden file never
records SQL that does not bind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featureline.offline._pit import JoinSpec, PartRef, pit_join_sql

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("FEATURELINE_UPDATE_GOLDEN") == "1"

T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z in microseconds
HOUR = 3_600_000_000
DAY = 24 * HOUR


def part(root: str, n: int, *, commit: int, compacted: bool = False) -> PartRef:
    return PartRef(
        f"{root}/parts/part-{n}.parquet", T0 + commit * HOUR, compacted=compacted, commit=commit
    )


# case name -> spec builder (the root folder of the view version is a parameter, so the same
# spec can be rendered with a fixed path for the golden file and a real one for DuckDB)
CASES: dict[str, Callable[[str], JoinSpec]] = {
    "one_part_no_ttl": lambda root: JoinSpec(
        [part(root, 1, commit=1)], ["driver_id"], [("rate", "rate"), ("trips", "trips")]
    ),
    "one_part_ttl": lambda root: JoinSpec(
        [part(root, 1, commit=1)], ["driver_id"], [("rate", "driver_stats__rate")], ttl_us=2 * HOUR
    ),
    "one_commit_several_parts": lambda root: JoinSpec(
        [part(root, 1, commit=1), part(root, 2, commit=1)],
        ["driver_id"],
        [("rate", "rate")],
        ttl_us=DAY,
    ),
    "several_parts_ttl_as_of": lambda root: JoinSpec(
        [part(root, 1, commit=1), part(root, 2, commit=2), part(root, 3, commit=3)],
        ["driver_id"],
        [("rate", "rate"), ("trips", "trips")],
        ttl_us=30 * DAY,
        as_of_us=T0 + 3 * HOUR,
    ),
    "compacted_part": lambda root: JoinSpec(
        [part(root, 1, commit=4, compacted=True)],
        ["driver_id"],
        [("rate", "rate")],
        ttl_us=DAY,
        as_of_us=T0 + 2 * HOUR,
    ),
    "compacted_part_and_later_batch": lambda root: JoinSpec(
        [part(root, 1, commit=4, compacted=True), part(root, 2, commit=5)],
        ["driver_id"],
        [("rate", "rate")],
        as_of_us=T0 + 5 * HOUR,
    ),
    "composite_keys": lambda root: JoinSpec(
        [part(root, 1, commit=1), part(root, 2, commit=2)],
        ["user_id", "region"],
        [("spend", "spend"), ('odd"name', 'user_region__odd"name')],
        ttl_us=7 * DAY,
    ),
    "no_parts": lambda root: JoinSpec(
        [], ["user_id", "region"], [("spend", "spend")], ttl_us=DAY, as_of_us=T0
    ),
}

FIXED_ROOT = "/repo/data/offline/some_view/v1"


@pytest.mark.parametrize("case", sorted(CASES))
def test_pit_join_sql_matches_golden(case: str) -> None:
    sql = pit_join_sql(CASES[case](FIXED_ROOT)) + "\n"
    path = GOLDEN / f"{case}.sql"
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(sql)
        return
    assert path.exists(), (
        f"No golden file `{path}`. Fix: run FEATURELINE_UPDATE_GOLDEN=1 pytest {__file__}"
    )
    expected = path.read_text()
    assert sql == expected, (
        f"pit_join_sql changed for case `{case}`. If intended, run FEATURELINE_UPDATE_GOLDEN=1 pytest "
        f"tests/unit/test_pit_golden.py and review the diff of {path.name}."
    )


def test_every_golden_file_has_a_case() -> None:
    stale = sorted(p.stem for p in GOLDEN.glob("*.sql")) if GOLDEN.exists() else []
    assert [s for s in stale if s not in CASES] == [], "golden files without a case: delete them"


def _empty_part(path: Path, spec: JoinSpec, compacted: bool) -> None:
    key_type = {"driver_id": pa.int64(), "user_id": pa.int64(), "region": pa.large_string()}
    ts = pa.timestamp("us", tz="UTC")
    fields = [pa.field(k, key_type[k]) for k in spec.keys]
    fields += [
        pa.field("__event_ts", ts),
        pa.field("__created_ts", ts),
        pa.field("__seq", pa.int64()),
    ]
    fields += [pa.field(s, pa.float64()) for s, _ in dict.fromkeys(spec.features)]
    fields.append(pa.field("__shadowed_until", pa.int64()))
    if compacted:
        fields.append(pa.field("__ingested_at", pa.int64()))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.schema(fields).empty_table(), path)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_sql_runs_in_duckdb(case: str, tmp_path: Path) -> None:
    spec = CASES[case](str(tmp_path))
    for p in spec.parts:
        _empty_part(Path(p.path), spec, p.compacted)
    entities = pa.table(
        {
            "__rid": pa.array([0, 1], pa.int64()),
            **{
                k: pa.array([1, 2], pa.int64()) if k != "region" else pa.array(["a", "b"])
                for k in spec.keys
            },
            "__ts": pa.array([T0, T0 + HOUR], pa.timestamp("us", tz="UTC")),
        }
    )
    con = duckdb.connect()
    try:
        con.register("__entities", entities)
        con.execute(pit_join_sql(spec))
        result = con.fetchall()
    finally:
        con.close()
    assert sorted(r[0] for r in result) == [0, 1]
    assert all(v is None for r in result for v in r[1:])
