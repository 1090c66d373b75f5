"""Incremental statistics of the web UI's view page (issue 12): after commits that only append
rows (some merged, with kept commits or among themselves, or fully compacted), the page profiles
the new rows alone and merges them with the kept state. Its exact figures equal a full
computation's, its sketch figures (HLL distinct counts, KLL percentiles) are within their stated
error of the truth, it reads only the new parts, and anything else falls back to a full
computation."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import featureline as fl
from featureline.offline._log import Commit
from featureline.server._ui_data import UiData
from featureline.server._ui_stats import QUANTILES

# the incremental statistics' names are imported where used: the test of the parts read runs,
# and fails, on the code before them too
from tests.helpers import TS, new_store
from tests.unit.test_ui_stats import _view  # amount, count, tag, flag, seen_at, constant

START = datetime(2025, 3, 1, tzinfo=UTC)
NUMERIC = ["amount", "count", "constant"]


def _batch(
    rng: np.random.Generator,
    n: int,
    *,
    earlier: pa.Table | None,
    overwrite: float,
    null_rate: float,
    shift: float,
    days: float,
) -> pa.Table:
    """`n` rows; in-batch ties; a share `overwrite` of rows repeating an earlier row's key and
    event time; nulls; values and event times moved by `shift` (beyond the range so far)."""
    ids = rng.integers(0, 200, n)
    us = rng.integers(0, max(1, int(days * 86_400_000_000)), n) + int(shift * 86_400_000_000)
    if n >= 4:
        ids[: n // 4], us[: n // 4] = ids[-(n // 4) :], us[-(n // 4) :]  # in-batch ties
    if earlier is not None and earlier.num_rows and overwrite:
        k = min(int(n * overwrite), earlier.num_rows)
        ids[:k] = earlier.column("account_id").to_numpy()[:k]
        us[:k] = earlier.column("event_timestamp").cast(pa.int64()).to_numpy()[:k] - int(
            START.timestamp() * 1_000_000
        )
    times = np.datetime64(START.replace(tzinfo=None), "us") + us.astype("timedelta64[us]")

    def mask() -> Any:
        return rng.random(n) < null_rate

    return pa.table(
        {
            "account_id": pa.array(ids, pa.int64()),
            "event_timestamp": pa.array(times, TS),
            "amount": pa.array(rng.normal(100 + 1000 * shift, 30, n), pa.float64(), mask=mask()),
            "count": pa.array(rng.integers(-5, 40, n) + int(100 * shift), pa.int64(), mask=mask()),
            "tag": pa.array([f"t{i}" for i in rng.integers(0, 30, n)], pa.string(), mask=mask()),
            "flag": pa.array(rng.random(n) < 0.3, pa.bool_(), mask=mask()),
            "seen_at": pa.array(times + np.timedelta64(5, "s"), TS, mask=mask()),
            "constant": pa.array(np.full(n, 2.5), pa.float64(), mask=mask()),
        }
    )


def _truth_check(stats: dict[str, Any], table: pa.Table) -> None:
    """The sketch figures against the rows: distinct counts within the HLL's error, percentiles
    whose rank is within the KLL's."""
    from featureline.offline import profile_merge as pm

    eps = pm._kll_error()
    for name in ["amount", "count", "tag", "flag", "seen_at", "constant"]:
        col, got = table.column(name), stats["features"][name]
        exact = len(pc.unique(col.drop_null()))
        assert abs(got["distinct"] - exact) <= max(1, 0.05 * exact), (name, got, exact)
        if name not in NUMERIC or not exact:
            continue
        x = np.sort(col.drop_null().to_numpy().astype(np.float64))
        for q in QUANTILES:
            v = got["percentiles"][f"p{round(q * 100)}"]
            below, upto = np.searchsorted(x, v, "left") / x.size, np.searchsorted(x, v, "right")
            slack = eps + 1 / x.size  # a quantile of n values is one of them
            assert below - slack <= q <= upto / x.size + slack, (name, q, v)


def _exact_equal(inc: dict[str, Any], full: dict[str, Any]) -> None:
    for k in ("rows", "commits", "first_event", "last_event", "superseded_rows", "rows_by_time"):
        assert inc[k] == full[k], k
    assert inc["features"].keys() == full["features"].keys()
    for name, f in full["features"].items():
        g = inc["features"][name]
        for k in ("dtype", "null_rate", "min", "max"):
            assert g[k] == f[k], (name, k, g[k], f[k])
        if f["mean"] is None:
            assert g["mean"] is None
        else:
            assert g["mean"] == pytest.approx(f["mean"], rel=1e-9, abs=1e-12), name
        assert g.get("histogram") == f.get("histogram"), name  # exact bins on both sides


def _figures(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    """Whether ingests record their superseded-rows figure (else the readers look them up: a
    push onto a large view)."""
    import featureline.offline.store as store_mod

    monkeypatch.setattr(store_mod, "LOOKUP_FREE_ROWS", 1_000_000 if on else -1)
    monkeypatch.setattr(store_mod, "LOOKUP_PER_ROW", 4 if on else 0)


_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("ingest"),
            st.integers(1, 300),  # rows
            st.sampled_from([0.0, 0.2, 0.6]),  # share overwriting earlier rows
            st.sampled_from([0.0, 0.1, 0.9, 1.0]),  # null rate
            st.sampled_from([0.0, 0.0, 1.5, -2.0, 40.0]),  # shift: new min/max beyond the range
            st.sampled_from([0.0, 0.5, 3.0]),  # event-time spread, days
            st.booleans(),  # look at the page after
        ),
        st.tuples(st.just("merge"), st.booleans()),  # an automatic merge of one size tier
        st.tuples(st.just("compact"), st.booleans()),  # a full compaction
    ),
    min_size=1,
    max_size=9,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=_OPS, seed=st.integers(0, 2**16), figures=st.booleans())
def test_incremental_profile_equals_the_full_computation(
    ops: list[tuple[Any, ...]], seed: int, figures: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import featureline.offline.store as store_mod

    monkeypatch.setattr(store_mod, "COMPACT_AFTER", 3)  # automatic merges now and then
    _figures(monkeypatch, figures)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        account, view = _view()
        store = new_store(Path(tmp), account, view)
        try:
            fv = store.get_feature_view("acct")
            ui = UiData(store)
            tables: list[pa.Table] = []
            for op in [*ops, ("look",)]:
                look = op[-1] if op[0] != "look" else True
                if op[0] == "ingest":
                    _, n, over, nulls, shift, days, _ = op
                    prev = tables[-1] if tables else None
                    kw = dict(overwrite=over, null_rate=nulls, shift=shift, days=days)
                    tables.append(_batch(rng, n, earlier=prev, **kw))
                    store.ingest("acct", tables[-1])
                elif op[0] == "merge":
                    store.offline.compact(fv, max_rows=store_mod.COMPACT_ROWS)
                elif op[0] == "compact":
                    store.compact("acct")
                if not look or not tables:
                    continue
                inc = ui._stats_for(fv)
                full = UiData(store)._stats_for(fv)
                _exact_equal(inc, full)
                table = pa.concat_tables(tables)
                assert inc["rows"] == table.num_rows
                pairs = table.select(["account_id", "event_timestamp"]).group_by(
                    ["account_id", "event_timestamp"]
                )
                assert inc["superseded_rows"] == table.num_rows - pairs.aggregate([]).num_rows
                if "DataSketches" in inc["approximate"]["distinct"]:  # merged, not the engine's
                    _truth_check(inc, table)
        finally:
            store.close()


@pytest.mark.parametrize(
    ("coupons", "figures"),  # small HLL sketches from coupons or registers; figures recorded
    [(True, True), (False, True), (True, False)],
)
def test_appends_merges_and_compactions_are_merged_not_recomputed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, coupons: bool, figures: bool
) -> None:
    import featureline.offline.store as store_mod
    from featureline.offline import profile_merge as pm

    if not coupons:
        monkeypatch.setattr(pm, "COUPON_ROWS", 0)
    _figures(monkeypatch, figures)
    monkeypatch.setattr(store_mod, "COMPACT_AFTER", 100)  # merges only when asked
    account, view = _view()
    store = new_store(tmp_path, account, view)
    fv = store.get_feature_view("acct")
    ui = UiData(store)
    full: list[int] = []
    real = ui.stats._compute_stats
    monkeypatch.setattr(ui.stats, "_compute_stats", lambda v: full.append(1) or real(v))
    rng = np.random.default_rng(8)
    tables: list[pa.Table] = []

    def ingest(shift: float) -> None:
        kw = dict(overwrite=0.3, null_rate=0.2, shift=shift, days=2.0)
        tables.append(_batch(rng, 300, earlier=tables[-1] if tables else None, **kw))
        store.ingest("acct", tables[-1])

    def look() -> None:
        stats = ui._stats_for(fv)
        _exact_equal(stats, UiData(store)._stats_for(fv))
        if full:  # not the first (the engine's own estimates)
            _truth_check(stats, pa.concat_tables(tables))

    ingest(0.0)
    look()
    for shift in (0.0, 1.5, -2.0):  # inside the range, then new maxima and minima
        ingest(shift)
        look()
    ingest(0.5)  # unseen, then merged with kept commits
    monkeypatch.setattr(store_mod, "COMPACT_AFTER", 2)
    assert store.offline.compact(fv, max_rows=store_mod.COMPACT_ROWS) is not None
    look()
    monkeypatch.setattr(store_mod, "COMPACT_AFTER", 100)
    ingest(0.2)
    assert store.compact("acct") is not None  # everything, the unseen commit too
    look()
    assert len(full) == 1  # only the first page computed in full
    assert ui._stats_for(fv)["commits"] == 1
    store.close()


class _Spy:
    """A DuckDB connection that records the SQL run on it."""

    def __init__(self, con: Any, seen: list[str]) -> None:
        self._con, self._seen = con, seen

    def execute(self, sql: str, *a: Any, **k: Any) -> Any:
        self._seen.append(sql)
        return self._con.execute(sql, *a, **k)

    def sql(self, sql: str, *a: Any, **k: Any) -> Any:
        self._seen.append(sql)
        return self._con.sql(sql, *a, **k)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def test_after_a_new_commit_only_its_parts_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails before incremental statistics: the page after a commit profiled every part."""
    account, view = _view()
    store = new_store(tmp_path, account, view)
    rng = np.random.default_rng(3)
    kw: dict[str, Any] = dict(earlier=None, overwrite=0.0, null_rate=0.1, shift=0.0, days=5.0)
    tables = [_batch(rng, 2_000, **kw), _batch(rng, 2_000, **kw)]
    for t in tables:
        store.ingest("acct", t)
    fv = store.get_feature_view("acct")
    ui = UiData(store)
    ui._stats_for(fv)
    old = {p.path for p in store.offline.parts("acct", fv.version)}
    tables.append(_batch(rng, 400, **{**kw, "earlier": tables[0], "overwrite": 0.2}))
    store.ingest("acct", tables[-1])
    new = {p.path for p in store.offline.parts("acct", fv.version)} - old
    engine = store.offline.engine
    seen: list[str] = []
    real = engine.connection
    monkeypatch.setattr(engine, "connection", lambda: _Spy(real(), seen))
    stats = ui._stats_for(fv)
    assert stats["rows"] == 4_400 and seen
    assert not [p for p in old if any(p in s for s in seen)], "an old part was read"
    assert all(p in " ".join(seen) for p in new)
    assert "DataSketches" in stats["approximate"]["distinct"]
    _exact_equal(stats, UiData(store)._stats_for(fv))
    _truth_check(stats, pa.concat_tables(tables))


def _c(seq: int, at: int, rows: int, replaces: list[int] | None = None) -> Commit:
    return Commit(seq, at, [], rows, {}, replaces or [])


def test_what_merges_and_what_falls_back() -> None:
    from featureline.offline import profile_merge as pm
    from featureline.server._ui_stats import _Kept

    kept = _Kept.of([_c(1, 10, 5), _c(2, 20, 5)], pm.ProfileState(10))
    assert kept.delta([_c(1, 10, 5), _c(2, 20, 5), _c(3, 30, 4)]) == ({3}, set())
    assert kept.delta([_c(4, 40, 10, [1, 2])]) == (set(), set())  # a merge of kept commits
    assert kept.delta([_c(2, 20, 5), _c(5, 50, 9, [1, 3])]) == (set(), {5})  # kept + new
    assert kept.delta([_c(2, 20, 5), _c(3, 30, 4)]) is None  # commit 1 removed
    assert kept.delta([_c(1, 11, 5), _c(2, 20, 5)]) is None  # another log (the view made again)
    assert kept.delta([_c(1, 10, 5), _c(2, 20, 5), _c(3, 30, 4, [0])]) is None  # unknown past


def test_a_different_definition_or_version_never_reuses_the_state(tmp_path: Path) -> None:
    account, view = _view()
    store = new_store(tmp_path, account, view)
    rng = np.random.default_rng(4)
    kw: dict[str, Any] = dict(earlier=None, overwrite=0.0, null_rate=0.0, shift=0.0, days=1.0)
    store.ingest("acct", _batch(rng, 500, **kw))
    fv = store.get_feature_view("acct")
    ui = UiData(store)
    ui._stats_for(fv)
    from featureline.server._ui_stats import _stats_key

    other = fl.FeatureView(
        "acct",
        entities=[account],
        schema=[fl.Field("account_id", fl.Int64), fl.Field("amount", fl.Int64)],
    )
    assert _stats_key(other) != _stats_key(fv) and _stats_key(fv) in ui.stats._states
    store.close()


def test_the_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import featureline.server._ui_stats as ui_mod

    monkeypatch.setattr(ui_mod, "STATS_ENTRIES", 2)
    account = fl.Entity("account", ["account_id"])
    views = [
        fl.FeatureView(
            f"v{i}",
            entities=[account],
            schema=[fl.Field("account_id", fl.Int64), fl.Field("amount", fl.Float64)],
        )
        for i in range(4)
    ]
    store = new_store(tmp_path, account, *views)
    ui = UiData(store)
    for v in views:
        store.ingest(
            v.name,
            pa.table(
                {
                    "account_id": pa.array([1, 2], pa.int64()),
                    "event_timestamp": pa.array([START, START], TS),
                    "amount": [1.0, 2.0],
                }
            ),
        )
        ui._stats_for(store.get_feature_view(v.name))
    assert len(ui.stats._stats) == len(ui.stats._states) == 2 and len(ui.stats._stats_gates) <= 2
    store.close()


def test_hll_image_is_a_datasketches_sketch() -> None:
    import datasketches as ds

    from featureline.offline import profile_merge as pm

    real = ds.hll_sketch(pm.HLL_LG_K, ds.tgt_hll_type.HLL_8)
    for i in range(50_000):
        real.update(i)
    image = bytes(real.serialize_compact())
    ours = pm.hll_image(np.frombuffer(image[40:], np.uint8))
    assert ours[:5] == image[:5] and ours[6:8] == image[6:8] and ours[16:] == image[16:]
    got = ds.hll_sketch.deserialize(ours).get_estimate()
    assert abs(got - 50_000) <= 0.05 * 50_000
