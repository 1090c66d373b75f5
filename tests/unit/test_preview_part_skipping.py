"""The preview reads keys and features only from the parts that hold its rows (by row position,
after ranking every part's event times); a late commit may still hold older event times and
corrections of the newest rows (same key and event time, later ingest), which must win
(DESIGN §3, bitemporal rows)."""

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
    seen: list[list[str]] = []  # the parts each read by row position touches
    real = engine._read_by_row  # type: ignore[attr-defined]

    def spy(s: JoinSpec, part: object, row: object, *a: object, **k: object) -> object:
        seen.append([s.parts[int(i)].path for i in part])  # type: ignore[attr-defined]
        return real(s, part, row, *a, **k)

    engine._read_by_row = spy  # type: ignore[attr-defined]
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
        engine._read_by_row = real  # type: ignore[attr-defined]
    parts = store.offline.parts(view.name, view.version)
    first = min(parts, key=lambda p: p.commit).path
    assert seen and all(first not in paths for paths in seen)  # the old part was left out
    store.close()
