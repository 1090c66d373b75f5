"""A view's unique key holds across the chunks of a large file (issue 11): a chunked ingest
lands, quarantines, refuses and warns about exactly the rows a single-frame ingest of the same
data does (rows in = landed + quarantined), whichever chunks the duplicates fall in."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import featureline as fl
from featureline.errors import ConstraintViolationError
from featureline.offline import chunked
from featureline.quality import quarantine
from tests.helpers import TS, new_store, utc

T0 = utc(2025, 1, 1)
COLUMNS = ["card_id", "event_timestamp", "amount", "n"]


def _defs(gate: str, scope: str) -> tuple[fl.Entity, fl.FeatureView]:
    card = fl.Entity("card", ["card_id"])
    view = fl.FeatureView(
        "pay",
        entities=[card],
        schema=[
            fl.Field("card_id", fl.Int64),
            fl.Field("amount", fl.Float64, constraints=[fl.Check.min(0)]),
            fl.Field("n", fl.Int64),  # the row's position in the file: tells rows apart
        ],
        checks=[fl.Check.unique(scope)],
        gate=gate,
        ttl=timedelta(days=3650),
    )
    return card, view


def _batch(rows: list[tuple[int, int, float]], first: int = 0) -> pa.Table:
    return pa.table(
        {
            "card_id": pa.array([r[0] for r in rows], pa.int64()),
            "event_timestamp": pa.array([T0 + timedelta(hours=r[1]) for r in rows], TS),
            "amount": pa.array([r[2] for r in rows], pa.float64()),
            "n": pa.array(range(first, first + len(rows)), pa.int64()),
        }
    )


def _landed(store: fl.FeatureStore) -> list[dict[str, Any]]:
    log = store.offline.log("pay", 1)
    stored = ["card_id", "__event_ts", "amount", "n"]
    parts = [
        pq.read_table(log.root / p.file, columns=stored) for c in log.commits() for p in c.parts
    ]
    if not parts:
        return []
    t = pa.concat_tables(parts, promote_options="permissive")
    return sorted(t.to_pylist(), key=lambda r: r["n"])


def _held(store: fl.FeatureStore) -> list[dict[str, Any]]:
    t = store.quarantined_rows("pay")
    if t is None:
        return []
    out = t.select([*COLUMNS, "__row", "__violations"]).to_pylist()
    return sorted(out, key=lambda r: r["n"])


def _ingest_both(
    tmp: Path,
    gate: str,
    scope: str,
    rows: list[tuple[int, int, float]],
    chunk: int,
    monkeypatch: pytest.MonkeyPatch,
    before: list[tuple[int, int, float]] | None = None,
) -> tuple[Any, Any, fl.FeatureStore, fl.FeatureStore]:
    """Ingest `rows` as a Parquet file in chunks of `chunk` rows into one store, and as one
    frame into another (both holding `before` first). Returns each result (or the error)."""
    defs = _defs(gate, scope)
    chunked_store = new_store(tmp / "chunked", *defs)
    frame_store = new_store(tmp / "frame", *defs)
    if before:
        for s in (chunked_store, frame_store):
            s.ingest("pay", _batch(before, first=10_000))
    data = _batch(rows)
    path = tmp / "big.parquet"
    pq.write_table(data, path)
    out: list[Any] = []
    with monkeypatch.context() as m:
        m.setattr(chunked, "LARGE_FILE_ROWS", 0)  # every file takes the chunked way
        m.setattr(chunked, "CHUNK_ROWS", chunk)
        for s, what in ((chunked_store, str(path)), (frame_store, data)):
            try:
                out.append(s.ingest("pay", what))
            except ConstraintViolationError as e:
                out.append(e)
    return out[0], out[1], chunked_store, frame_store


def _assert_same(
    a: Any, b: Any, sa: fl.FeatureStore, sb: fl.FeatureStore, n: int, gate: str
) -> None:
    if gate == "strict" and isinstance(b, ConstraintViolationError):
        assert isinstance(a, ConstraintViolationError), a  # refused as the single frame is
        assert a.report == b.report  # the whole file's report, not its first failing chunk's
        assert str(a) == str(b)
        assert _landed(sa) == _landed(sb) and _held(sa) == _held(sb) == []
        return
    assert not isinstance(a, Exception) and not isinstance(b, Exception), (a, b)
    assert (a.rows, a.quarantined, a.violations) == (b.rows, b.quarantined, b.violations)
    assert _landed(sa) == _landed(sb)
    assert _held(sa) == _held(sb)
    new = [r for r in _landed(sa) if r["n"] < 10_000]
    assert len(new) + a.quarantined == n  # rows in = landed + quarantined
    leftovers = list((sa.offline.log("pay", 1).root / "parts").glob(".staging*"))
    assert leftovers == []  # the first pass leaves nothing behind


# Two duplicated keys, each pair split over chunks of 3 rows: (1, h0) at rows 0 and 7,
# (2, h1) at rows 2, 4 and 8; row 5 fails another constraint as well.
ROWS = [
    (1, 0, 1.0),
    (3, 0, 1.0),
    (2, 1, 1.0),
    (4, 0, 1.0),
    (2, 1, 2.0),
    (5, 0, -1.0),
    (6, 0, 1.0),
    (1, 0, 3.0),
    (2, 1, 4.0),
    (7, 0, 1.0),
]


def test_quarantine_keeps_every_duplicate_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, sa, sb = _ingest_both(tmp_path, "quarantine", "batch", ROWS, 3, monkeypatch)
    _assert_same(a, b, sa, sb, len(ROWS), "quarantine")
    assert (a.rows, a.quarantined) == (4, 6)
    assert a.violations == {"unique": 5, "amount.min": 1}
    assert [r["__row"] for r in _held(sa)] == [0, 2, 4, 5, 7, 8]  # positions in the file
    assert [r["n"] for r in _landed(sa)] == [1, 3, 6, 9]


def test_strict_refuses_a_file_with_duplicates_in_different_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [(1, 0, 1.0), (2, 0, 1.0), (3, 0, 1.0), (4, 0, 1.0), (1, 0, 2.0)]  # chunks of 2
    a, b, sa, sb = _ingest_both(tmp_path, "strict", "batch", rows, 2, monkeypatch)
    assert isinstance(b, ConstraintViolationError) and isinstance(a, ConstraintViolationError)
    assert a.report["constraints"][0]["constraint"] == "unique"
    assert sa.offline.log("pay", 1).commits() == [] and _held(sa) == []
    assert _landed(sb) == _landed(sa) == [] and _held(sb) == []
    assert not list((sa.offline.log("pay", 1).root / "parts").iterdir())  # no part, no staging


def test_strict_reports_every_chunk_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, sa, sb = _ingest_both(tmp_path, "strict", "batch", ROWS, 3, monkeypatch)
    _assert_same(a, b, sa, sb, len(ROWS), "strict")
    assert (a.report["rows"], a.report["violating_rows"]) == (10, 6)
    got = {
        c["constraint"]: (c["rows"], [s["row"] for s in c["samples"]])
        for c in a.report["constraints"]
    }
    assert got == {"amount.min": (1, [5]), "unique": (5, [0, 2, 4])}
    assert "6 of 10 row(s)" in str(a)


def test_quarantined_rows_are_spooled_to_disk_chunk_by_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bad rows of a chunked file are on disk before the next chunk is read, not in memory
    until the commit (memory is bounded by the chunk, whatever share of the file fails)."""
    store = new_store(tmp_path, *_defs("quarantine", "batch"))
    path = tmp_path / "big.parquet"
    pq.write_table(_batch(ROWS), path)
    seen: list[int] = []
    read = chunked.file_batches
    folder = quarantine.folder(store.offline.root, "pay")

    def spy(p: str, **kw: Any) -> Any:
        for b in read(p, **kw):
            if kw:  # the first pass, over keys and event times only
                yield b
                continue
            spools = list(folder.glob(".spool-*.tmp")) if folder.is_dir() else []
            seen.append(len(spools))
            yield b

    monkeypatch.setattr(chunked, "LARGE_FILE_ROWS", 0)
    monkeypatch.setattr(chunked, "CHUNK_ROWS", 3)
    monkeypatch.setattr(chunked, "file_batches", spy)
    r = store.ingest("pay", str(path))
    assert (r.rows, r.quarantined) == (4, 6)
    assert seen[1:] == [1, 1, 1]  # the first chunk's bad rows were spooled before the second
    assert [x["__row"] for x in _held(store)] == [0, 2, 4, 5, 7, 8]
    assert not list(folder.glob(".*.tmp"))  # the spool is removed


def test_warn_reports_duplicates_across_chunks_and_lands_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, sa, sb = _ingest_both(tmp_path, "warn", "batch", ROWS, 3, monkeypatch)
    _assert_same(a, b, sa, sb, len(ROWS), "warn")
    assert (a.rows, a.quarantined, a.violations) == (10, 0, {"unique": 5, "amount.min": 1})


def test_unique_in_the_view_across_chunks_and_stored_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = [(6, 0, 9.0), (9, 5, 9.0)]  # card 6 at h0 is stored already
    a, b, sa, sb = _ingest_both(tmp_path, "quarantine", "view", ROWS, 3, monkeypatch, stored)
    _assert_same(a, b, sa, sb, len(ROWS), "quarantine")
    assert (a.rows, a.quarantined) == (3, 7)


rows_st = st.lists(
    st.tuples(st.integers(1, 6), st.integers(0, 2), st.sampled_from([1.0, 2.0, -1.0])),
    min_size=1,
    max_size=24,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=rows_st,
    chunk=st.integers(1, 7),
    gate=st.sampled_from(["quarantine", "strict", "warn"]),
    scope=st.sampled_from(["batch", "view"]),
    stored=st.lists(st.tuples(st.integers(1, 6), st.integers(0, 2), st.just(5.0)), max_size=3),
)
def test_chunked_equals_single_frame_for_any_duplicate_placement(
    monkeypatch: pytest.MonkeyPatch,
    rows: list[tuple[int, int, float]],
    chunk: int,
    gate: str,
    scope: str,
    stored: list[tuple[int, int, float]],
) -> None:
    stored = list({(c, h): (c, h, v) for c, h, v in stored}.values())  # no duplicate among them
    with tempfile.TemporaryDirectory() as d:
        a, b, sa, sb = _ingest_both(Path(d), gate, scope, rows, chunk, monkeypatch, stored)
        _assert_same(a, b, sa, sb, len(rows), gate)


def test_a_file_of_duplicates_only_is_quarantined_whole_without_a_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [(1, 0, 1.0), (2, 0, 1.0), (1, 0, 2.0), (2, 0, 2.0)]  # chunks of 2: each pair split
    a, b, sa, sb = _ingest_both(tmp_path, "quarantine", "batch", rows, 2, monkeypatch)
    _assert_same(a, b, sa, sb, len(rows), "quarantine")
    assert (a.rows, a.commit, a.quarantined, a.violations) == (0, 0, 4, {"unique": 4})
    assert sa.offline.log("pay", 1).commits() == []


def test_a_retried_chunked_batch_is_no_duplicate_of_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = new_store(tmp_path, *_defs("quarantine", "view"))
    path = tmp_path / "big.parquet"
    pq.write_table(_batch(ROWS[:5]), path)  # (2, h1) twice: rows 2 and 4
    monkeypatch.setattr(chunked, "LARGE_FILE_ROWS", 0)
    monkeypatch.setattr(chunked, "CHUNK_ROWS", 2)
    first = store.ingest("pay", str(path), idempotency_key="k")
    again = store.ingest("pay", str(path), idempotency_key="k")
    assert (first.rows, first.quarantined) == (3, 2)
    assert again.replayed and again.commit == first.commit and again.quarantined == 2
    assert len(_held(store)) == 2  # quarantined once


def test_a_file_that_changes_between_the_two_reads_is_refused(tmp_path: Path) -> None:
    from featureline.errors import ValidationError
    from featureline.quality.constraints import KeysAcross, evaluate

    _, view = _defs("quarantine", "batch")
    keys = KeysAcross(view, str(tmp_path), what="the file `x.parquet`")
    keys.add(_batch(ROWS[:5]))
    keys.add(_batch(ROWS[5:]))
    keys.freeze()
    v = evaluate(
        view, _batch(ROWS[:5]), across=keys
    )  # rows 0, 2, 4: their twins are in the other chunk
    assert v.counts() == {"unique": 3}
    assert evaluate(view, _batch(ROWS[:5])).counts() == {"unique": 2}  # outside: the chunk alone
    with pytest.raises(ValidationError, match="changed while it was ingested"):
        keys.finish()
    keys.close()
