"""A view's statistics (the web UI's view page, `DuckDBEngine.profile`) against a NumPy/pyarrow
computation over the rows ingested: row counts, null rates, min/max/mean, distinct counts within
the HyperLogLog's tolerance, histograms, percentiles, rows by event time and superseded rows; and
the cache: kept until a new commit or a compaction, computed once for concurrent requests."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import featureline as fl
from featureline.offline._pit import PartRef
from featureline.offline.engines.duckdb import DuckDBEngine
from featureline.server._ui_data import UiData
from featureline.server._ui_stats import BINS, QUANTILES
from tests.helpers import TS, new_store

START = datetime(2025, 3, 1, tzinfo=UTC)
FEATURES = ["amount", "count", "tag", "flag", "seen_at", "constant"]


def _view() -> tuple[fl.Entity, fl.FeatureView]:
    account = fl.Entity("account", ["account_id"])
    view = fl.FeatureView(
        "acct",
        entities=[account],
        schema=[
            fl.Field("account_id", fl.Int64),
            fl.Field("amount", fl.Float64),
            fl.Field("count", fl.Int64),
            fl.Field("tag", fl.String),
            fl.Field("flag", fl.Bool),
            fl.Field("seen_at", fl.Timestamp),
            fl.Field("constant", fl.Float64),
        ],
    )
    return account, view


def _batch(rng: np.random.Generator, n: int, repeat: pa.Table | None = None) -> pa.Table:
    """`n` rows over 20 days with nulls in every feature and ties: rows repeating another row's
    account and event time in the same batch, and (with `repeat`) rows of an earlier batch."""
    ids = rng.integers(0, 500, n)
    us = rng.integers(0, 20 * 86_400_000_000, n)
    ids[: n // 50], us[: n // 50] = ids[n // 50 : n // 25], us[n // 50 : n // 25]  # in-batch ties
    if repeat is not None:  # corrections of earlier rows
        k = n // 20
        ids[-k:] = repeat.column("account_id").to_numpy()[:k]
        earlier = repeat.column("event_timestamp").cast(pa.int64()).to_numpy()[:k]
        us[-k:] = earlier - int(START.timestamp() * 1_000_000)
    times = np.datetime64(START.replace(tzinfo=None), "us") + us.astype("timedelta64[us]")
    nulls = rng.random(n) < 0.1

    def masked(values: Any, type_: pa.DataType) -> pa.Array:
        return pa.array(values, type_, mask=rng.random(n) < 0.1)

    return pa.table(
        {
            "account_id": pa.array(ids, pa.int64()),
            "event_timestamp": pa.array(times, TS),
            "amount": pa.array(rng.lognormal(3, 1, n), pa.float64(), mask=nulls),
            "count": masked(rng.integers(-5, 40, n), pa.int64()),
            "tag": masked([f"t{i}" for i in rng.integers(0, 30, n)], pa.string()),
            "flag": masked(rng.random(n) < 0.3, pa.bool_()),
            "seen_at": masked(times + np.timedelta64(5, "s"), TS),
            "constant": masked(np.full(n, 2.5), pa.float64()),
        }
    )


@pytest.fixture
def repo(tmp_path: Path) -> Any:
    account, view = _view()
    store = new_store(tmp_path, account, view)
    rng = np.random.default_rng(12)
    first = _batch(rng, 12_000)
    batches = [first, _batch(rng, 9_000, repeat=first)]
    for b in batches:
        store.ingest("acct", b)
    yield store, batches
    store.close()


def _expected(batches: list[pa.Table]) -> dict[str, Any]:
    t = pa.concat_tables(batches)
    pairs = t.select(["account_id", "event_timestamp"]).group_by(["account_id", "event_timestamp"])
    day = (t.column("event_timestamp").cast(pa.int64()).to_numpy() // 86_400_000_000).tolist()
    return {
        "table": t,
        "rows": t.num_rows,
        "superseded": t.num_rows - pairs.aggregate([]).num_rows,
        "days": {d: day.count(d) for d in sorted(set(day))},
    }


def _check(stats: dict[str, Any], batches: list[pa.Table]) -> None:
    want = _expected(batches)
    t, n = want["table"], want["rows"]
    assert stats["rows"] == n
    assert stats["superseded_rows"] == want["superseded"] > 0
    ts = pc.min_max(t.column("event_timestamp")).as_py()
    assert (stats["first_event"], stats["last_event"]) == (ts["min"], ts["max"])
    for name in FEATURES:
        col, got = t.column(name), stats["features"][name]
        nonnull = n - col.null_count
        assert got["null_rate"] == pytest.approx(col.null_count / n, abs=1e-12), name
        mm = pc.min_max(col).as_py()
        assert (got["min"], got["max"]) == (mm["min"], mm["max"]), name
        exact = len(pc.unique(col.drop_null()))
        assert abs(got["distinct"] - exact) <= max(2, 0.05 * exact), (name, got["distinct"], exact)
        if name not in ("amount", "count", "constant"):
            assert "histogram" not in got and "percentiles" not in got
            continue
        x = col.drop_null().to_numpy().astype(np.float64)
        assert got["mean"] == pytest.approx(x.mean(), rel=1e-9), name
        hist = got["histogram"]
        assert sum(hist["counts"]) == nonnull, name  # every non-null value in one bin
        if name == "constant":  # one value: one bin
            assert hist["counts"] == [nonnull] and (hist["lo"], hist["hi"]) == (2.5, 2.5)
        else:
            assert len(hist["counts"]) == BINS and (hist["lo"], hist["hi"]) == (x.min(), x.max())
            bins = np.clip(np.floor((x - hist["lo"]) / hist["width"]), 0, BINS - 1)
            assert hist["counts"] == np.bincount(bins.astype(int), minlength=BINS).tolist(), name
        p = got["percentiles"]
        assert list(p) == [f"p{round(q * 100)}" for q in QUANTILES]
        assert got["min"] <= p["p1"] <= p["p25"] <= p["p50"] <= p["p75"] <= p["p99"] <= got["max"]
        for q in QUANTILES:  # a sample's quantile: its rank within a few points of q
            rank = float(np.mean(x <= p[f"p{round(q * 100)}"]))
            assert abs(rank - q) <= 0.03 or name != "amount", (name, q, rank)
    by_time = stats["rows_by_time"]
    assert by_time["unit"] == "day"
    assert [b["rows"] for b in by_time["buckets"]] == list(want["days"].values())
    assert [b["start"] for b in by_time["buckets"]] == [
        datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=d) for d in want["days"]
    ]
    assert sum(b["rows"] for b in by_time["buckets"]) == n
    assert "distinct" in stats["approximate"] and "percentiles" in stats["approximate"]


def _counting(store: fl.FeatureStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    engine = store.offline.engine
    calls: list[int] = []
    real = engine.profile

    def profile(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "profile", profile)
    return calls


def test_view_statistics_equal_a_numpy_computation(repo: Any) -> None:
    store, batches = repo
    page = UiData(store).view("acct")
    assert page["commits"] == 2
    _check(page, batches)


def test_statistics_are_cached_until_a_new_commit_or_a_compaction(
    repo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, batches = repo
    calls = _counting(store, monkeypatch)
    data = UiData(store)
    fv = store.get_feature_view("acct")
    first = data._stats_for(fv)
    assert data._stats_for(fv) == first and len(calls) == 1  # cached
    more = _batch(np.random.default_rng(5), 3_000, repeat=batches[1])
    store.ingest("acct", more)
    after = data._stats_for(fv)  # the new rows profiled alone, merged (test_stats_incremental)
    assert len(calls) == 1 and after["commits"] == 3
    _check(after, [*batches, more])
    assert data._stats_for(fv) == after and len(calls) == 1
    assert store.compact("acct") is not None  # one part written by DuckDB: its footers
    compacted = data._stats_for(fv)  # a new stamp; a merge adds no rows: nothing to scan
    assert len(calls) == 1 and compacted["commits"] == 1
    _check(compacted, [*batches, more])
    data = UiData(store)  # a full computation over the compacted part
    _check(data._stats_for(fv), [*batches, more])
    assert len(calls) == 2
    from featureline.offline.engines.duckdb import _footer_facts

    told = ["__event_ts", "amount", "count", "flag", "seen_at", "constant"]
    _, facts, _ = _footer_facts(store.offline.parts("acct", fv.version), told, set(told))
    assert all(f.known for f in facts.values())  # DuckDB's footers are read too: no scan


def test_concurrent_first_requests_compute_once(repo: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store, _ = repo
    calls = _counting(store, monkeypatch)
    data = UiData(store)
    fv = store.get_feature_view("acct")
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda: results.append(data._stats_for(fv))) for _ in range(4)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(calls) == 1 and len(results) == 4
    assert all(r == results[0] for r in results)


def test_profile_without_footer_statistics_scans_for_them(repo: Any, tmp_path: Path) -> None:
    """Parts written without Parquet statistics: the counts and ranges come from a scan, equal."""
    store, batches = repo
    fv = store.get_feature_view("acct")
    parts = store.offline.parts("acct", fv.version)
    bare = []
    for i, p in enumerate(parts):
        dest = tmp_path / f"bare-{i}.parquet"
        pq.write_table(pq.read_table(p.path), dest, write_statistics=False)
        bare.append(PartRef(str(dest), p.ingested_at_us, p.compacted, p.commit, p.columns))
    engine = store.offline.engine
    assert isinstance(engine, DuckDBEngine)
    options: dict[str, Any] = {"bins": BINS, "quantiles": QUANTILES, "by_time": True}
    _check({**engine.profile(fv, bare, **options)}, batches)
    plain = engine.profile(fv, bare)  # describe's: no histograms, percentiles or time buckets
    assert plain["rows"] == _expected(batches)["rows"]
    assert "rows_by_time" not in plain and "approximate" not in plain
    assert all("histogram" not in s for s in plain["features"].values())


def test_describe_matches_the_page(repo: Any) -> None:
    store, _ = repo
    described = store.describe("acct")
    page = UiData(store).view("acct")
    for key in ("rows", "superseded_rows", "first_event", "last_event", "commits"):
        assert described[key] == page[key], key
    for name in FEATURES:
        want, got = described["features"][name], page["features"][name]
        for key in ("null_rate", "min", "max"):
            assert want[key] == got[key], (name, key)
        if got["mean"] is None:
            assert want["mean"] is None and name in ("tag", "flag", "seen_at")
        else:  # the order of a parallel sum may differ
            assert want["mean"] == pytest.approx(got["mean"], rel=1e-12), name


def test_a_view_without_rows(tmp_path: Path) -> None:
    account, view = _view()
    with new_store(tmp_path, account, view) as store:
        page = UiData(store).view("acct")
    assert page["rows"] == 0 and page["features"] == {} and page["rows_by_time"]["buckets"] == []


def test_superseded_rows_of_a_two_key_view_and_rows_by_month(tmp_path: Path) -> None:
    """A String and an Int64 key, ties within and across commits, events over two years: the
    superseded rows are exact, the buckets are months."""
    from featureline.offline.engines.duckdb import _pairs_scan

    user = fl.Entity("user", ["region", "user_id"])
    view = fl.FeatureView(
        "visits",
        entities=[user],
        schema=[
            fl.Field("region", fl.String),
            fl.Field("user_id", fl.Int64),
            fl.Field("x", fl.Int64),
        ],
    )
    rng = np.random.default_rng(3)
    batches = []
    for _ in range(3):
        n = 2_000
        days = rng.integers(0, 730, n)
        batches.append(
            pa.table(
                {
                    "region": pa.array([f"r{i}" for i in rng.integers(0, 3, n)]),
                    "user_id": pa.array(rng.integers(0, 40, n), pa.int64()),
                    "event_timestamp": pa.array(
                        [datetime(2023, 1, 1, tzinfo=UTC) + timedelta(days=int(d)) for d in days],
                        TS,
                    ),  # whole days: many ties
                    "x": pa.array(rng.integers(0, 9, n), pa.int64()),
                }
            )
        )
    with new_store(tmp_path, user, view) as store:
        for b in batches:
            store.ingest("visits", b)
        page = UiData(store).view("visits")
        parts = store.offline.parts("visits", 1)
        engine = store.offline.engine
        assert isinstance(engine, DuckDBEngine)
        src = (
            "read_parquet([" + ", ".join(f"'{p.path}'" for p in parts) + "], union_by_name = true)"
        )
        con = engine.connection()
        try:  # the row count is an estimate: fewer rows than found only grows the array
            assert (
                _pairs_scan(con, src, ["region", "user_id"], None, 10)[0] == page["superseded_rows"]
            )
        finally:
            con.close()
    t = pa.concat_tables(batches)
    keys = ["region", "user_id", "event_timestamp"]
    assert (
        page["superseded_rows"] == t.num_rows - t.select(keys).group_by(keys).aggregate([]).num_rows
    )
    by_time = page["rows_by_time"]
    months = sorted({(d.year, d.month) for d in t.column("event_timestamp").to_pylist()})
    assert by_time["unit"] == "month"
    assert [(b["start"].year, b["start"].month) for b in by_time["buckets"]] == months
    assert all(b["start"].day == 1 and b["start"].hour == 0 for b in by_time["buckets"])
    assert sum(b["rows"] for b in by_time["buckets"]) == t.num_rows


def test_commits_apart_in_event_time_need_no_keys_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Day-by-day batches (no two commits' event times overlap), each with ties in it: the
    superseded rows are the rows their commit marked (the footers say how many), exactly; a
    batch reaching back into an earlier day recorded, in its commit, the earlier rows it
    supersedes: still no keys' scan, still exact; without the recorded figures (an older log)
    the keys' scan comes back."""
    account, view = _view()
    rng = np.random.default_rng(8)
    days = []
    for d in range(3):
        b = _batch(rng, 2_000)
        shift = pa.scalar(timedelta(days=21 * d), pa.duration("us"))
        days.append(b.set_column(1, "event_timestamp", pc.add(b.column("event_timestamp"), shift)))
    with new_store(tmp_path, account, view) as store:
        for b in days:
            store.ingest("acct", b)
        engine = store.offline.engine
        scans: list[int] = []
        real = engine._pairs_scan  # type: ignore[attr-defined]

        def counted(*args: Any) -> Any:
            scans.append(1)
            return real(*args)

        monkeypatch.setattr(engine, "_pairs_scan", counted)
        data = UiData(store)
        fv = store.get_feature_view("acct")
        stats = data._stats_for(fv)
        assert scans == [] and stats["superseded_rows"] > 0
        want = _expected(days)
        assert stats["superseded_rows"] == want["superseded"]
        assert [b["rows"] for b in stats["rows_by_time"]["buckets"]] == list(want["days"].values())
        back = _batch(rng, 500, repeat=days[0])  # overlaps the first day's commit
        store.ingest("acct", back)
        _check(data._stats_for(fv), [*days, back])
        assert scans == []
        log = store.offline.log("acct", fv.version).log_path
        lines = [json.loads(x) for x in log.read_text().splitlines()]
        for d in lines:
            d["meta"].pop("supersedes")
        log.write_text("".join(json.dumps(d) + "\n" for d in lines))
        store.offline._superseded.clear()  # a fresh process: the log alone
        _check(UiData(store)._stats_for(fv), [*days, back])
        assert scans == [1]


def _sampling(monkeypatch: pytest.MonkeyPatch, rows: int, groups: int) -> None:
    """Profiles above 1,000 rows sample their histograms and percentiles: `rows` rows from
    `groups` row groups."""
    from featureline.offline.engines import duckdb as engine_module

    monkeypatch.setattr(engine_module, "PROFILE_EXACT_ROWS", 1_000)
    monkeypatch.setattr(engine_module, "PROFILE_SAMPLE_ROWS", rows)
    monkeypatch.setattr(engine_module, "PROFILE_SAMPLE_GROUPS", groups)


def _exact_figures(stats: dict[str, Any], batches: list[pa.Table]) -> None:
    """What `profile` computes exactly at any size: counts, ranges, means, superseded rows, rows
    by time — equal to DuckDB's plain computation over the rows ingested."""
    import duckdb

    t = pa.concat_tables(batches)
    con = duckdb.connect()
    con.register("t", t)
    (rows, distinct_pairs) = con.execute(
        "SELECT count(*), count(DISTINCT (account_id, event_timestamp)) FROM t"
    ).fetchone()
    assert stats["rows"] == rows
    assert stats["superseded_rows"] == rows - distinct_pairs
    for name in FEATURES:
        got = stats["features"][name]
        nonnull, lo, hi = con.execute(
            f'SELECT count("{name}"), min("{name}"), max("{name}") FROM t'
        ).fetchone()
        assert got["null_rate"] == pytest.approx((rows - nonnull) / rows, abs=1e-12), name
        assert (got["min"], got["max"]) == (lo, hi), name
        if name in ("amount", "count", "constant"):
            (mean,) = con.execute(f'SELECT avg("{name}") FROM t').fetchone()
            assert got["mean"] == pytest.approx(mean, rel=1e-12), name
    days = con.execute(
        "SELECT epoch_us(event_timestamp) // 86400000000 AS d, count(*) FROM t GROUP BY d ORDER BY d"
    ).fetchall()
    assert [b["rows"] for b in stats["rows_by_time"]["buckets"]] == [n for _, n in days]
    assert stats["approximate"]["distinct"].startswith("HyperLogLog")


def test_exact_figures_equal_a_plain_duckdb_computation(repo: Any) -> None:
    store, batches = repo
    stats = UiData(store)._stats_for(store.get_feature_view("acct"))
    _exact_figures(stats, batches)
    # small: exact histograms (no sample), reservoir percentiles, each declared as it is
    assert set(stats["approximate"]) == {"distinct", "percentiles"}
    assert all("sample_rows" not in s.get("histogram", {}) for s in stats["features"].values())


def test_a_sample_of_every_row_gives_the_exact_histograms_and_quantiles(
    repo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above PROFILE_EXACT_ROWS the histograms and percentiles come from a row-group sample;
    when it holds every row, they are exact — and still declared as a sample's, with its size."""
    store, batches = repo
    _sampling(monkeypatch, rows=10**9, groups=100)
    stats = UiData(store)._stats_for(store.get_feature_view("acct"))
    _exact_figures(stats, batches)
    t = pa.concat_tables(batches)
    n = t.num_rows
    assert "of a sample of" in stats["approximate"]["histogram"]
    assert f"{n:,} of the {n:,} rows" in stats["approximate"]["percentiles"]
    for name in ("amount", "count"):
        got = stats["features"][name]
        x = t.column(name).drop_null().to_numpy().astype(np.float64)
        hist = got["histogram"]
        assert hist["sample_rows"] == n
        bins = np.clip(np.floor((x - hist["lo"]) / hist["width"]), 0, BINS - 1)
        assert hist["counts"] == np.bincount(bins.astype(int), minlength=BINS).tolist(), name
        want = np.quantile(x, QUANTILES, method="inverted_cdf")
        assert list(got["percentiles"].values()) == pytest.approx(want.tolist()), name
    assert isinstance(stats["features"]["count"]["percentiles"]["p50"], int)
    assert stats["features"]["constant"]["histogram"]["counts"] == [
        n - t.column("constant").null_count
    ]


def test_a_smaller_sample_is_declared_and_close(repo: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sample of 2,000 rows from one of the two parts' row groups: histogram counts scaled to
    the non-null rows, within a few % of the exact ones, percentiles' ranks within a few
    points; the exact figures unchanged; the sample's size and row groups in `approximate`."""
    store, batches = repo
    _sampling(monkeypatch, rows=2_000, groups=1)
    stats = UiData(store)._stats_for(store.get_feature_view("acct"))
    _exact_figures(stats, batches)
    note = stats["approximate"]["histogram"]
    assert (
        "a sample of 2,000 of the 21,000 rows" in note and "1 of the 2 Parquet row groups" in note
    )
    assert "a sample of 2,000" in stats["approximate"]["percentiles"]
    t = pa.concat_tables(batches)
    x = t.column("amount").drop_null().to_numpy()
    got = stats["features"]["amount"]
    hist = got["histogram"]
    assert hist["sample_rows"] == 2_000
    assert abs(sum(hist["counts"]) - x.size) <= BINS  # scaled: rounding only
    for q in QUANTILES:
        rank = float(np.mean(x <= got["percentiles"][f"p{round(q * 100)}"]))
        assert abs(rank - q) <= 0.03, (q, rank)
    again = store.offline.engine.profile(
        store.get_feature_view("acct"),
        store.offline.parts("acct", 1),
        bins=BINS,
        quantiles=QUANTILES,
        by_time=True,
    )
    for name in ("amount", "count"):  # a fixed seed: the same sample each time
        for key in ("histogram", "percentiles"):
            assert again["features"][name][key] == stats["features"][name][key], (name, key)
