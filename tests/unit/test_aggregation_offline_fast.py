"""The training-set fast paths of `featureline.aggregation.offline` (window slices by sorted
searches, sum/mean/stddev from exact fixed-point prefix sums) give exactly what the kernel
gives slice by slice, and the slices are those of a plain scan (DESIGN §3)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import featureline as fl
from featureline.aggregation.kernel import kernel
from featureline.aggregation.offline import Windows, evaluate
from featureline.errors import ValidationError

FUNCS = ["sum", "mean", "stddev", "count", "min", "max", "last"]

_special = st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1e308, -1e308])
_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e6, 1e6),
    st.integers(-(2**20), 2**20).map(lambda v: v / 1024),
    st.integers(0, 2**53 - 1).map(lambda v: v / 2**53),  # like numpy's random()
    _special,
)
_ints = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.integers(-1000, 1000), st.integers(2**62 - 5, 2**62)
)


def _view(dtype: Any) -> fl.FeatureView:
    e = fl.Entity("e", join_keys=["k"])
    return fl.FeatureView(
        "v",
        entities=[e],
        schema=[fl.Field("k", fl.Int64), fl.Field("x", dtype)],
        source=fl.FileSource("x.parquet", "event_timestamp"),
        tile=None,
    )


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    return bool(a == b)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=st.data(),
    is_float=st.booleans(),
    function=st.sampled_from(FUNCS),
    n=st.integers(0, 60),
    uniform=st.booleans(),
)
def test_evaluate_equals_the_kernel_slice_by_slice(
    data: st.DataObject, is_float: bool, function: str, n: int, uniform: bool
) -> None:
    elem = _floats if is_float else _ints
    if uniform:  # one kind of value for the whole column: the fixed-point path applies
        elem = (
            st.integers(0, 2**53 - 1).map(lambda v: v / 2**53) if is_float else st.integers(-9, 9)
        )
    vals = data.draw(
        st.lists(
            st.one_of(elem, st.none()) if data.draw(st.booleans()) else elem, min_size=n, max_size=n
        )
    )
    values = pa.array(vals, pa.float64() if is_float else pa.int64())
    m = data.draw(st.integers(0, 40))
    i = np.array(data.draw(st.lists(st.integers(0, n), min_size=m, max_size=m)), dtype=np.int64)
    w = np.array(data.draw(st.lists(st.integers(0, n), min_size=m, max_size=m)), dtype=np.int64)
    j = np.minimum(i + w, n)
    view = _view(fl.Float64 if is_float else fl.Int64)
    agg = fl.Aggregation("x", function, None)
    events = pa.table({"x": values, "__event_us": pa.array(np.arange(n, dtype=np.int64))})
    k = kernel(function, "Float64" if is_float else "Int64")
    orders = np.zeros((n, 4), dtype=np.int64)
    orders[:, 0] = np.arange(n)
    want: list[Any] = []
    raised = False
    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        try:
            want.append(k.finalize(k.add(k.empty(), values.slice(a, b - a), orders[a:b])))
        except ValidationError:
            raised = True
    if raised:  # an Int64 sum beyond the Int64 range: evaluate raises too
        try:
            evaluate(view, agg, events, i, j)
        except ValidationError:
            return
        raise AssertionError("evaluate did not raise")
    got = evaluate(view, agg, events, i, j).to_pylist()
    for r, (g, e) in enumerate(zip(got, want, strict=True)):
        assert _same(g, e), (r, i[r], j[r], g, e, vals[i[r] : j[r]])


@settings(max_examples=200, deadline=None)
@given(
    ev=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 50)), max_size=60, unique=True),
    ent=st.lists(
        st.tuples(st.integers(0, 5), st.integers(-5, 60), st.integers(0, 30)), max_size=40
    ),
)
def test_window_slices_equal_a_scan(
    ev: list[tuple[int, int]], ent: list[tuple[int, int, int]]
) -> None:
    ev = sorted(ev)
    events = pa.table(
        {
            "k": pa.array([k for k, _ in ev], pa.int64()),
            "__event_us": pa.array([t for _, t in ev], pa.int64()),
        }
    )
    rows = pa.table({"k": pa.array([k for k, _, _ in ent], pa.int64())})
    t = np.array([t for _, t, _ in ent], dtype=np.int64)
    start = t - np.array([w for _, _, w in ent], dtype=np.int64)
    i, j = Windows(events, ["k"], rows).slice(t, start)
    for r, (k, tt, _) in enumerate(ent):
        idx = [p for p, (kk, et) in enumerate(ev) if kk == k and start[r] <= et <= tt]
        if idx:
            assert (i[r], j[r]) == (idx[0], idx[-1] + 1)
        else:
            assert i[r] == j[r]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(["random", "decimal", "ints", "wide", "equal", "nulls"]),
    function=st.sampled_from(["stddev", "mean", "sum"]),
)
def test_many_windows_equal_the_kernel(seed: int, kind: str, function: str) -> None:
    """Many windows of up to ~80 events (both sides of the vectorised stddev's span), values as
    numpy's random(), decimals, integers, a wide exponent range, equal values and nulls."""
    rng = np.random.default_rng(seed)
    n = 400
    is_float = kind != "ints"
    if kind == "random":
        x: Any = rng.random(n)
    elif kind == "decimal":
        x = np.round(rng.normal(100, 30, n), 2)
    elif kind == "ints":
        x = rng.integers(-(10**12), 10**12, n)
    elif kind == "wide":
        x = rng.random(n) * 2.0 ** rng.integers(-40, 20, n)
    elif kind == "equal":
        x = np.full(n, 0.1) + (rng.random(n) < 0.05) * 2**-40
    else:
        x = rng.random(n)
    mask = rng.random(n) < 0.3 if kind == "nulls" else None
    values = pa.array(x, pa.float64() if is_float else pa.int64(), mask=mask)
    i = rng.integers(0, n, 300)
    j = np.minimum(i + rng.integers(0, 80, 300), n)
    view = _view(fl.Float64 if is_float else fl.Int64)
    events = pa.table({"x": values, "__event_us": pa.array(np.arange(n, dtype=np.int64))})
    k = kernel(function, "Float64" if is_float else "Int64")
    want = [k.finalize(k.add(k.empty(), values.slice(a, b - a))) for a, b in zip(i, j, strict=True)]
    got = evaluate(view, fl.Aggregation("x", function, None), events, i, j).to_pylist()
    for r, (g, e) in enumerate(zip(got, want, strict=True)):
        assert _same(g, e), (r, i[r], j[r], g, e)
