"""In-batch ties and per-key winners of a push, sorted in memory (`offline/_batch_order.py`),
equal the DuckDB queries they replace for small batches, on generated batches full of ties:
equal keys and event times, null and equal created times, rows dated ahead of now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import featureline as fl
from featureline.offline import batch as batch_mod
from featureline.offline.batch import SHADOWED_UNTIL, prepare_batch
from featureline.offline.engines import duckdb as duck
from featureline.offline.engines.duckdb import DuckDBEngine

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
VIEW = fl.FeatureView(
    "v",
    [fl.Entity("e", ["k", "s"])],
    [fl.Field("k", fl.Int64), fl.Field("s", fl.String), fl.Field("x", fl.Int64)],
    source=fl.FileSource("none.parquet", created_timestamp_field="created"),
)

row = st.tuples(
    st.integers(0, 3),  # k
    st.sampled_from(["a", "b"]),  # s
    st.integers(0, 4),  # event time (s)
    st.one_of(st.none(), st.integers(0, 2)),  # created time (s), often null
    st.integers(-5, 5),  # value
)


def _table(rows: list[tuple]) -> pa.Table:
    return pa.table(
        {
            "k": pa.array([r[0] for r in rows], pa.int64()),
            "s": pa.array([r[1] for r in rows], pa.string()),
            "event_timestamp": pa.array([T0 + timedelta(seconds=r[2]) for r in rows], TS),
            "created": pa.array(
                [None if r[3] is None else T0 + timedelta(seconds=r[3]) for r in rows], TS
            ),
            "x": pa.array([r[4] for r in rows], pa.int64()),
        }
    )


def _rows(t: pa.Table) -> list[str]:
    return sorted(repr(tuple(r.values())) for r in t.to_pylist())


@settings(max_examples=150, deadline=None)
@given(st.lists(row, min_size=1, max_size=40), st.one_of(st.none(), st.integers(-1, 5)))
def test_sorting_in_memory_equals_the_duckdb_queries(rows: list[tuple], now_s: int | None) -> None:
    table = _table(rows)
    mp = pytest.MonkeyPatch()
    try:
        arrow, _ = prepare_batch(VIEW, table, {})
        mp.setattr(batch_mod, "ARROW_MAX_ROWS", 0)  # the DuckDB query for any size
        mp.setattr(duck, "ARROW_MAX_ROWS", 0)
        sql, _ = prepare_batch(VIEW, table, {})
        assert arrow.column(SHADOWED_UNTIL).to_pylist() == sql.column(SHADOWED_UNTIL).to_pylist()
        engine = DuckDBEngine()
        now_us = None if now_s is None else int((T0.timestamp() + now_s) * 1e6)
        by_sql = pa.concat_tables(engine.batch_winners(VIEW, sql, 123, 7, now_us))
        mp.undo()
        by_sort = pa.concat_tables(engine.batch_winners(VIEW, arrow, 123, 7, now_us))
        engine.close()
    finally:
        mp.undo()
    assert by_sort.schema.names == by_sql.schema.names
    assert _rows(by_sort) == _rows(by_sql)
