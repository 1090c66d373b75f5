"""Online tiles computed for every key at once (`featureline.aggregation.bulk`) are the per-key
path's, byte for byte: for generated events -- floats with NaN, +-inf, -0.0, subnormals, values
far apart in magnitude (runs the bulk path must hand back), events dated ahead, events older
than every finite window (the prefix a lifetime aggregation keeps) -- `refresh` writes the
same tails and heads with the bulk path on and off, and each suffix's bytes and finalized
value equal the kernel's `encode` and `finalize` of one `add` over the suffix's events."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import featureline as fl
from featureline.aggregation import bulk as bulk_kernel
from featureline.aggregation.kernel import kernel
from featureline.online import tiles
from tests.unit.test_aggregation_tiles_head import _same, _Source

S = 1_000_000  # µs
T0 = 1_700_000_000 * S  # the refresh time
USER = fl.Entity("user", ["user_id"])

floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e6, 1e6),
    st.integers(0, 10_000).map(lambda c: c / 100),  # amounts with cents, as the bench's
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e308]),
)


@settings(max_examples=300, deadline=None)
@given(
    runs=st.lists(st.lists(floats, min_size=1, max_size=40), min_size=1, max_size=6),
    gap=st.integers(0, 3),
    function=st.sampled_from(["sum", "mean"]),
    data=st.data(),
)
def test_float_suffixes_equal_the_kernel(
    runs: list[list[float]], gap: int, function: str, data: st.DataObject
) -> None:
    k = kernel(function, "Float64")
    xs: list[float] = []
    run_lo, run_hi = [], []
    for r in runs:  # runs with events of no run between them
        xs += [7.5] * gap
        run_lo.append(len(xs))
        xs += r
        run_hi.append(len(xs))
    starts, run_of = [], []
    for i, (a, z) in enumerate(zip(run_lo, run_hi, strict=True)):
        for s in sorted(data.draw(st.sets(st.integers(a, z - 1), min_size=1))):
            starts.append(s)
            run_of.append(i)
    x = np.array(xs, dtype=np.float64)
    ok, blobs, finals = bulk_kernel.float_suffixes(
        k, x, np.array(run_lo), np.array(run_hi), np.array(starts), np.array(run_of)
    )
    assert len(ok) == len(runs)
    for s, r, blob, final in zip(starts, run_of, blobs, finals, strict=True):
        if not ok[r]:
            continue
        p = k.add(k.empty(), x[s : run_hi[r]])
        assert blob == k.encode(p)
        assert _same(final, k.finalize(p)), (final, k.finalize(p))
    # a run of values of like magnitude (the usual tile) is always computed
    if all(all(math.isfinite(v) and (v == 0 or 1e-3 < abs(v) < 1e3) for v in r) for r in runs):
        assert all(ok)


class _Capture:
    """An online store that keeps what `refresh` writes."""

    def __init__(self) -> None:
        self.got: dict[str, dict[bytes, bytes]] = {}

    def write_tables(self, parts: list[tuple[str, list[bytes], list[bytes]]]) -> None:
        for table, ks, vs in parts:
            self.got.setdefault(table, {}).update(zip(ks, vs, strict=True))


def _view(tile_s: int, lifetime: bool) -> fl.FeatureView:
    aggs = [
        fl.Aggregation("x", "sum", timedelta(seconds=8)),
        fl.Aggregation("x", "mean", timedelta(seconds=4)),
        fl.Aggregation("x", "count", timedelta(seconds=8)),
    ]
    if lifetime:
        aggs += [fl.Aggregation("x", "sum", None), fl.Aggregation("x", "mean", None)]
    return fl.FeatureView(
        "ev",
        [USER],
        [fl.Field("user_id", fl.Int64), fl.Field("x", fl.Float64)],
        tile=timedelta(seconds=tile_s),
        aggregations=aggs,
    )


event = st.tuples(st.integers(0, 4), st.integers(-20_000, 3_000), floats)  # key, ms, x


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(event, max_size=60),
    tile_s=st.sampled_from([0, 1, 2]),
    lifetime=st.booleans(),
)
def test_refresh_writes_the_per_key_bytes(
    events: list[tuple[int, int, float]], tile_s: int, lifetime: bool
) -> None:
    rows = {(key, T0 + ms * 1000): x for key, ms, x in events}  # one per (key, event time)
    source = _Source(
        [
            {"user_id": key, "__event_us": t, "x": x, "i": None, "s": None, "b": None}
            for (key, t), x in rows.items()
        ]
    )
    view = _view(tile_s, lifetime)
    asked = pa.table({"user_id": pa.array([0, 1, 2, 3, 4, 9], pa.int64())})
    written = []
    for bulk in (True, False):
        store = _Capture()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(tiles, "BULK", bulk)
            tiles.refresh(source, store, view, {"user_id": "Int64"}, asked, now_us=T0)  # type: ignore[arg-type]
        written.append(store.got)
    assert written[0] == written[1]
