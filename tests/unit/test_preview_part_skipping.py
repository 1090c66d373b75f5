"""The preview leaves out parts whose newest event time (Parquet footer) is below its bound; a
late commit may still hold older event times and corrections of the newest rows (same key and
event time, later ingest), which must win (DESIGN §3, bitemporal rows)."""

from __future__ import annotations

from datetime import timedelta

from tests.helpers import driver_defs, new_store, rows, utc

T0 = utc(2025, 1, 1)


def test_preview_skips_old_parts_and_keeps_late_corrections(tmp_path: object) -> None:
    from featureline.offline.engines import duckdb

    store = new_store(tmp_path, *driver_defs(ttl=None))  # type: ignore[arg-type]
    hours = lambda *h: [T0 + timedelta(hours=x) for x in h]  # noqa: E731
    store.ingest("driver_stats", rows([1, 2, 3], hours(0, 1, 2), [1.0, 2.0, 3.0]))  # old part
    store.ingest("driver_stats", rows([1, 2, 3], hours(100, 101, 102), [4.0, 5.0, 6.0]))
    # a late commit: older event times, and a correction of the newest row (equal event time)
    store.ingest("driver_stats", rows([1, 3], hours(3, 102), [7.0, 9.0]))
    view = store.get_feature_view("driver_stats")
    engine = store.offline.engine
    from featureline.offline._pit import JoinSpec

    spec = JoinSpec(
        store.offline.parts(view.name, view.version),
        view.join_keys,
        [(f.name, f.name) for f in view.features],
    )
    full = sorted(
        engine._latest(spec, None).to_pylist(),  # type: ignore[attr-defined]
        key=lambda r: (r["event_timestamp"], r["driver_id"]),
        reverse=True,
    )
    seen: list[tuple[int, list[str]]] = []  # the bound and parts of each bounded query
    real = engine._latest  # type: ignore[attr-defined]

    def spy(s: JoinSpec, limit: int | None) -> object:
        if s.min_event_us is not None:
            seen.append((s.min_event_us, [p.path for p in s.parts]))
        return real(s, limit)

    engine._latest = spy  # type: ignore[attr-defined]
    old = duckdb.PREVIEW_OVERSCAN
    duckdb.PREVIEW_OVERSCAN = 1
    try:
        for n in (1, 2, 3):
            got = store.preview("driver_stats", n).to_pylist()
            key = lambda r: (r["event_timestamp"], r["driver_id"])  # noqa: E731
            assert sorted(got, key=key, reverse=True) == full[:n]
        top = store.preview("driver_stats", 1).to_pylist()
        assert top[0]["driver_id"] == 3 and top[0]["event_timestamp"] == hours(102)[0]
        assert top[0]["rate"] == 9.0  # the late correction wins
    finally:
        duckdb.PREVIEW_OVERSCAN = old
        engine._latest = real  # type: ignore[attr-defined]
    parts = store.offline.parts(view.name, view.version)
    first = min(parts, key=lambda p: p.commit).path
    from featureline._time import to_us

    above = [paths for bound, paths in seen if bound > to_us(hours(2)[0])]
    assert above and all(first not in paths for paths in above)  # the old part was left out
    store.close()
