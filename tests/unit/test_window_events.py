"""`OfflineStore.window_events` from a start reads only the commits with an event from there on
(commit meta min/max event time) and filters each part before the tie winners are chosen; it
returns exactly the tie winners of all commits with an event time from the start, whatever
the commits hold: overwrites of older or newer events, duplicates, late events, `as_of`."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import featureline as fl
from tests.helpers import TS

USER = fl.Entity("user", ["user_id"])
VIEW = fl.FeatureView(
    "tx",
    [USER],
    [fl.Field("user_id", fl.Int64), fl.Field("amount", fl.Float64)],
    source=fl.FileSource("data/tx.parquet", "event_timestamp", "created"),
    tile=timedelta(seconds=1),
    aggregations=[fl.Aggregation("amount", "sum", timedelta(seconds=8))],
)

row = st.tuples(st.integers(0, 2), st.integers(0, 12), st.one_of(st.none(), st.integers(0, 2)))


def _rows(t: pa.Table) -> list[tuple[Any, ...]]:
    return sorted(zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    commits=st.lists(st.lists(row, min_size=1, max_size=6), min_size=1, max_size=5),
    start_s=st.integers(0, 13),
    as_of_at=st.integers(0, 5),
    some_keys=st.booleans(),
)
def test_window_events_from_a_start_equal_all_events_filtered(
    commits: list[list[tuple[int, int, int | None]]],
    start_s: int,
    as_of_at: int,
    some_keys: bool,
) -> None:
    root = Path(tempfile.mkdtemp()) / "repo"
    try:
        fl.init_repo(root, project="p" + uuid.uuid4().hex[:8], with_data=False)
        (root / "definitions.py").unlink()
        store = fl.FeatureStore(root)
        store.apply([USER, VIEW])
        base = datetime(2026, 1, 1, tzinfo=UTC)
        seen: list[int] = []
        for ci, c in enumerate(commits):
            store.ingest(
                "tx",
                pa.table(
                    {
                        "user_id": pa.array([k for k, _, _ in c], pa.int64()),
                        "event_timestamp": pa.array(
                            [base + timedelta(seconds=s) for _, s, _ in c], TS
                        ),
                        "created": pa.array(
                            [None if x is None else base + timedelta(seconds=x) for *_, x in c],
                            TS,
                        ),
                        "amount": pa.array([float(100 * ci + i) for i in range(len(c))]),
                    }
                ),
            )
            seen.append(store.offline.commits("tx", VIEW.version)[-1].ingested_at_us)
        off = store.offline
        start = int(base.timestamp()) * 1_000_000 + start_s * 1_000_000
        as_of = seen[as_of_at] if as_of_at < len(seen) else None
        keys = pa.table({"user_id": pa.array([0, 2], pa.int64())}) if some_keys else None
        got, snap = off.window_events(VIEW, keys, start, as_of)
        every, snap_all = off.window_events(VIEW, keys, None, as_of)
        want = every.filter(pc.greater_equal(every.column("__event_us"), start))
        assert snap == snap_all
        assert _rows(got) == _rows(want)
        ev = got.column("__event_us").to_pylist()
        k = got.column("user_id").to_pylist()
        assert list(zip(k, ev, strict=True)) == sorted(zip(k, ev, strict=True))  # ordered
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
