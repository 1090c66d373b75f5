"""The aggregation kernel against simple references (math.fsum, fractions.Fraction, Python
min/max): values split at random into partials, added and merged in random orders and trees,
round-tripped through encode/decode, finalize equal to the reference bit for bit (exact
functions) or within the documented error (sketches)."""

from __future__ import annotations

import importlib
import itertools
import math
import os
import random
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureline.aggregation import FUNCTIONS, NUMERIC_ONLY, kernel, output_type, problems
from featureline.errors import DefinitionError, ValidationError

# the module (the package's `kernel` attribute is the function of the same name)
kmod = importlib.import_module("featureline.aggregation.kernel")

# FEATURELINE_KERNEL_EXAMPLES=2000 for a longer run
FAST = settings(
    max_examples=int(os.environ.get("FEATURELINE_KERNEL_EXAMPLES", "80")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
MAX = 1.7976931348623157e308
TINY = 5e-324
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
ARROW = {
    "Int64": pa.int64(),
    "Float64": pa.float64(),
    "String": pa.large_string(),
    "Bool": pa.bool_(),
    "Timestamp": pa.timestamp("us", tz="UTC"),
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ----------------------------------------------------------------------------- helpers


def bits(x: float) -> bytes:
    return struct.pack("<d", x)


def same(a: Any, b: Any) -> bool:
    """Bit-identical floats (NaN equals NaN), equal and same-typed otherwise."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or bits(a) == bits(b)
    return type(a) is type(b) and a == b


def as_input(values: list[Any], ctype: str, rnd: random.Random) -> Any:
    """The same values as a pa.Array, a ChunkedArray, a list or (without nulls) a NumPy array."""
    choice = rnd.randrange(4)
    if choice == 0 and None not in values and ctype in ("Float64", "Int64", "Bool"):
        dtype = {"Float64": np.float64, "Int64": np.int64, "Bool": np.bool_}[ctype]
        return np.array(values, dtype=dtype)
    if ctype == "Timestamp":
        values = [None if v is None else EPOCH + timedelta(microseconds=v) for v in values]
    if choice == 1:
        return values
    arr = pa.array(values, type=ARROW[ctype])
    if choice == 2 and len(arr) > 1:
        cut = rnd.randrange(len(arr))
        return pa.chunked_array([arr.slice(0, cut), arr.slice(cut)], type=ARROW[ctype])
    return arr


def combine(
    k: Any, ctype: str, items: list[tuple[Any, tuple[int, int, int, int]]], rnd: random.Random
) -> Any:
    """Finalize `items` (value, order) split at random into partials, each filled by one or two
    adds, merged in a random tree, with random encode/decode round trips."""
    items = items[:]
    rnd.shuffle(items)
    cuts = sorted(rnd.sample(range(len(items) + 1), min(len(items) + 1, rnd.randint(0, 6))))
    bounds = [0, *cuts, len(items)]
    parts = []
    for a, b in itertools.pairwise(bounds):
        chunk = items[a:b]
        p = k.empty()
        mid = rnd.randint(0, len(chunk))
        for piece in (chunk[:mid], chunk[mid:]):
            if piece or rnd.random() < 0.3:
                vals = [v for v, _ in piece]
                orders = np.array([o for _, o in piece], dtype=np.int64).reshape(len(piece), 4)
                p = k.add(p, as_input(vals, ctype, rnd), orders)
        if rnd.random() < 0.5:
            p = k.decode(k.encode(p))
        parts.append(p)
    while len(parts) > 1:
        i, j = rnd.sample(range(len(parts)), 2)
        m = k.merge(parts[i], parts[j])
        if rnd.random() < 0.3:
            m = k.decode(k.encode(m))
        parts = [p for n, p in enumerate(parts) if n not in (i, j)] + [m]
    return k.finalize(parts[0])


def with_orders(values: Sequence[Any], rnd: random.Random) -> list[tuple[Any, Any]]:
    """Distinct orders that share prefixes often (ties broken by later columns)."""
    seqs = list(range(len(values)))
    rnd.shuffle(seqs)
    out = []
    for v, seq in zip(values, seqs, strict=True):
        created = rnd.choice([INT64_MIN, 0, 1, 2])
        out.append((v, (rnd.randint(0, 3), created, rnd.randint(0, 2), seq)))
    return out


def round_fraction(x: Fraction) -> float:
    """The float nearest x (CPython's int / int is correctly rounded); +-inf beyond range."""
    try:
        return x.numerator / x.denominator
    except OverflowError:
        return math.inf if x > 0 else -math.inf


def is_rounded_sqrt(r: float, v: Fraction) -> bool:
    """r is the float nearest sqrt(v): v lies between the squares of r's neighbouring
    midpoints."""
    if v <= Fraction(TINY) ** 2 / 4:  # the root rounds to zero
        return same(r, 0.0)
    if r == math.inf:
        top = Fraction(2) ** 1024 - Fraction(2) ** 970  # halfway between MAX and 2**1024
        return v >= top * top
    if not r > 0:
        return False
    fr = Fraction(r)
    lo = (fr + Fraction(math.nextafter(r, 0.0))) / 2
    ok = lo * lo <= v
    up = math.nextafter(r, math.inf)
    if up != math.inf:
        hi = (fr + Fraction(up)) / 2
        ok = ok and v <= hi * hi
    return ok


nulls = st.none()
special_floats = st.sampled_from(
    [0.0, -0.0, TINY, -TINY, 2.2250738585072014e-308, MAX, -MAX, 1e-300, 1e300, 1.0, -1.0, 0.1]
)
finite_floats = st.one_of(st.floats(allow_nan=False, allow_infinity=False), special_floats)
any_floats = st.one_of(finite_floats, st.sampled_from([math.nan, math.inf, -math.inf]))
int64s = st.one_of(
    st.integers(INT64_MIN, INT64_MAX),
    st.integers(-1000, 1000),
    st.sampled_from([INT64_MIN, INT64_MAX, INT64_MIN + 1, INT64_MAX - 1, 0, -1]),
)


def maybe_null(s: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.one_of(s, s, s, nulls), max_size=60)


# ----------------------------------------------------------------------------- references


def ref_float(function: str, values: list[float | None]) -> Any:
    xs = [v for v in values if v is not None]
    n = len(xs)
    if function == "count":
        return n
    nan = any(math.isnan(x) for x in xs)
    pinf, ninf = math.inf in xs, -math.inf in xs
    if function in ("min", "max"):
        if not xs:
            return None
        if nan:
            return math.nan

        def key(v: float) -> tuple[float, float]:
            return (v, math.copysign(1.0, v))

        return min(xs, key=key) if function == "min" else max(xs, key=key)
    if function == "stddev":
        if n < 2:
            return None
        if nan or pinf or ninf:
            return math.nan
        return "sqrt"  # checked with is_rounded_sqrt
    if n == 0:
        return None
    if nan or (pinf and ninf):
        return math.nan
    if pinf or ninf:
        return math.inf if pinf else -math.inf
    exact = sum((Fraction(x) for x in xs), Fraction(0))
    if exact == 0:
        return -0.0 if all(math.copysign(1.0, x) < 0 for x in xs) else 0.0
    return round_fraction(exact if function == "sum" else exact / n)


def exact_variance(xs: Sequence[int | float]) -> Fraction:
    fs = [Fraction(x) for x in xs]
    n = len(fs)
    s1 = sum(fs, Fraction(0))
    s2 = sum((f * f for f in fs), Fraction(0))
    return (n * s2 - s1 * s1) / (n * (n - 1))


# ----------------------------------------------------------------------------- exact floats


@FAST
@given(values=maybe_null(finite_floats), rnd=st.randoms(use_true_random=False))
def test_float_sum_mean_stddev_are_exact_whatever_the_split(
    values: list[float | None], rnd: random.Random
) -> None:
    items = with_orders(values, rnd)
    xs = [v for v in values if v is not None]
    for function in ("sum", "mean", "count"):
        got = combine(kernel(function, "Float64"), "Float64", items, rnd)
        assert same(got, ref_float(function, values)), (function, got)
    got = combine(kernel("sum", "Float64"), "Float64", items, rnd)
    try:
        fsum = math.fsum(xs)
    except OverflowError:  # fsum gives up on intermediate overflow; Fraction is the reference
        pass
    else:
        # Python < 3.12's fsum gives +0.0 for all -0.0 values; IEEE (and 3.12's fsum) -0.0.
        all_neg_zero = bool(xs) and all(math.copysign(1.0, x) < 0 and x == 0 for x in xs)
        assert same(got, fsum) if xs and not all_neg_zero else got in (None, -0.0)
    sd = combine(kernel("stddev", "Float64"), "Float64", items, rnd)
    if len(xs) < 2:
        assert sd is None
    else:
        assert isinstance(sd, float) and is_rounded_sqrt(sd, exact_variance(xs)), sd


@FAST
@given(values=maybe_null(any_floats), rnd=st.randoms(use_true_random=False))
def test_float_functions_with_nan_and_inf_follow_ieee_in_any_order(
    values: list[float | None], rnd: random.Random
) -> None:
    items = with_orders(values, rnd)
    for function in ("count", "sum", "mean", "min", "max", "stddev"):
        got = combine(kernel(function, "Float64"), "Float64", items, rnd)
        want = ref_float(function, values)
        if want == "sqrt":
            xs = [v for v in values if v is not None]
            assert isinstance(got, float) and is_rounded_sqrt(got, exact_variance(xs))
        else:
            assert same(got, want), (function, got, want)


def test_nan_and_inf_rules() -> None:
    def fin(function: str, xs: list[float]) -> Any:
        k = kernel(function, "Float64")
        return k.finalize(k.add(k.empty(), np.array(xs)))

    assert fin("sum", [1.0, math.inf]) == math.inf
    assert fin("mean", [1.0, -math.inf, -math.inf]) == -math.inf
    assert math.isnan(fin("sum", [math.inf, -math.inf]))
    assert math.isnan(fin("mean", [math.nan, 1.0]))
    assert math.isnan(fin("stddev", [1.0, math.inf]))
    assert fin("stddev", [math.inf]) is None
    assert math.isnan(fin("max", [1.0, math.nan])) and math.isnan(fin("min", [math.nan, 1.0]))
    assert fin("count", [math.nan, math.inf]) == 2  # NaN is a value, not a null
    assert same(fin("sum", [-0.0, -0.0]), -0.0) and same(fin("sum", [-0.0, 0.0]), 0.0)
    assert same(fin("sum", [1.0, -1.0]), 0.0) and same(fin("mean", [-0.0]), -0.0)
    assert same(fin("min", [0.0, -0.0]), -0.0) and same(fin("min", [-0.0, 0.0]), -0.0)
    assert same(fin("max", [-0.0, 0.0]), 0.0) and same(fin("max", [0.0, -0.0]), 0.0)
    assert fin("sum", [MAX, MAX]) == math.inf and fin("sum", [MAX, MAX, -MAX]) == MAX
    assert fin("mean", [MAX, MAX]) == MAX
    assert fin("stddev", [MAX, -MAX]) == math.inf  # sqrt(2) * MAX
    assert fin("stddev", [1e200, -1e200]) == math.sqrt(2.0) * 1e200  # no overflow of x**2
    assert fin("stddev", [TINY, -TINY]) == math.sqrt(2.0) * TINY
    assert fin("stddev", [3.0, 3.0, 3.0]) == 0.0
    for f in ("sum", "mean", "stddev", "min", "max"):
        assert fin(f, []) is None
    assert fin("count", []) == 0


def test_to_float_rounds_once_at_the_edges() -> None:
    tf = kmod._to_float
    half_ulp_max = Fraction(2) ** 970
    top = Fraction(MAX) + half_ulp_max  # tie between MAX (odd mantissa) and 2**1024 -> inf
    assert tf(top.numerator, top.denominator, 0) == math.inf
    below = top - Fraction(1, 2**1074)
    assert tf(below.numerator, below.denominator, 0) == MAX
    assert tf(1, 2, -1074) == 0.0  # half of the smallest subnormal: tie to even (0)
    assert tf(3, 2, -1074) == 2 * TINY  # 1.5 * TINY: tie to even (2)
    assert tf(-3, 4, -1074) == -TINY
    assert tf(1, 3, 0) == 1 / 3 and tf(-2, 3, 0) == -2 / 3
    for _ in range(2000):
        r = random.Random(_)
        num = r.randrange(-(2**200), 2**200)
        den = r.randrange(1, 2**120)
        e = r.randrange(-1300, 1000)
        x = Fraction(num, den) * Fraction(2) ** e
        assert same(tf(num, den, e), round_fraction(x) if num else 0.0)
        if den == 1 or r.random() < 0.3:
            assert same(tf(num, 1, e), round_fraction(Fraction(num) * Fraction(2) ** e))


def test_sqrt_is_correctly_rounded() -> None:
    r = random.Random(7)
    for _ in range(2000):
        num, den = (
            r.randrange(1, 2 ** r.randrange(1, 300)),
            r.randrange(1, 2 ** r.randrange(1, 200)),
        )
        e = 2 * r.randrange(-1100, 500)
        got = kmod._sqrt_to_float(num, den, e)
        assert is_rounded_sqrt(got, Fraction(num, den) * Fraction(2) ** e), (num, den, e)


def test_vector_and_small_paths_agree_on_large_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    n = 40_000
    x = rng.standard_normal(n) * np.exp2(rng.integers(-1074, 1000, n).astype(np.float64))
    x[::97] = -0.0
    x[::101] = rng.standard_normal(len(x[::101])) * 1e-310  # subnormals
    x[5] = MAX
    x[6] = -MAX
    k = kernel("stddev", "Float64")
    vec = k.add(k.empty(), x)
    ks = kernel("sum", "Float64")
    assert same(ks.finalize(ks.add(ks.empty(), x)), math.fsum(x))
    monkeypatch.setattr(kmod, "_SMALL", 10**9)
    small = k.add(k.empty(), x)
    assert vec == small
    ki = kernel("stddev", "Int64")
    xi = rng.integers(INT64_MIN, INT64_MAX, n, dtype=np.int64, endpoint=True)
    xi[:3] = [INT64_MIN, INT64_MAX, INT64_MIN]
    small_i = ki.add(ki.empty(), xi)
    monkeypatch.setattr(kmod, "_SMALL", 0)
    vec_i = ki.add(ki.empty(), xi)
    py = xi.tolist()
    assert vec_i == small_i == kmod.IntMoments(n, sum(py), sum(v * v for v in py))


# ----------------------------------------------------------------------------- exact ints


@FAST
@given(values=maybe_null(int64s), rnd=st.randoms(use_true_random=False))
def test_int_sum_mean_stddev_are_exact(values: list[int | None], rnd: random.Random) -> None:
    items = with_orders(values, rnd)
    xs = [v for v in values if v is not None]
    total = sum(xs)
    k = kernel("sum", "Int64")
    if not xs:
        assert combine(k, "Int64", items, rnd) is None
    elif INT64_MIN <= total <= INT64_MAX:
        assert same(combine(k, "Int64", items, rnd), total)
    else:
        with pytest.raises(ValidationError, match="outside the Int64 range"):
            combine(k, "Int64", items, rnd)
    mean = combine(kernel("mean", "Int64"), "Int64", items, rnd)
    assert same(mean, round_fraction(Fraction(total, len(xs)))) if xs else mean is None
    sd = combine(kernel("stddev", "Int64"), "Int64", items, rnd)
    if len(xs) < 2:
        assert sd is None
    else:
        assert isinstance(sd, float) and is_rounded_sqrt(sd, exact_variance(xs))
    for function, ref in (("min", min), ("max", max)):
        got = combine(kernel(function, "Int64"), "Int64", items, rnd)
        assert same(got, ref(xs)) if xs else got is None
    assert combine(kernel("count", "Int64"), "Int64", items, rnd) == len(xs)


def test_int_sum_overflow_is_reported_not_wrapped() -> None:
    k = kernel("sum", "Int64")
    p = k.add(k.empty(), np.array([INT64_MAX, 1], dtype=np.int64))
    with pytest.raises(ValidationError, match="Fix: declare the column Float64"):
        k.finalize(p)
    back = k.add(k.decode(k.encode(p)), np.array([-2], dtype=np.int64))
    assert k.finalize(back) == INT64_MAX - 1  # the partial itself never overflows


# ----------------------------------------------------------------------------- min/max/last


def typed_values(ctype: str) -> st.SearchStrategy[Any]:
    return {
        "Float64": any_floats,
        "Int64": int64s,
        "String": st.text(max_size=5),
        "Bool": st.booleans(),
        "Timestamp": st.integers(-(10**16), 10**16),
    }[ctype]


def as_py(ctype: str, v: Any) -> Any:
    if v is None or ctype != "Timestamp":
        return v
    return EPOCH + timedelta(microseconds=v)


@FAST
@given(data=st.data(), rnd=st.randoms(use_true_random=False))
def test_min_max_last_count_for_every_type(data: st.DataObject, rnd: random.Random) -> None:
    ctype = data.draw(st.sampled_from(["Float64", "Int64", "String", "Bool", "Timestamp"]))
    values = data.draw(maybe_null(typed_values(ctype)))
    items = with_orders(values, rnd)
    present = [(v, o) for v, o in items if v is not None]
    xs = [v for v, _ in present]
    for function in ("min", "max"):
        got = combine(kernel(function, ctype), ctype, items, rnd)
        if ctype == "Float64":
            assert same(got, ref_float(function, values))
        else:
            want = (min if function == "min" else max)(xs) if xs else None
            assert got == as_py(ctype, want) and type(got) is type(as_py(ctype, want))
    last = combine(kernel("last", ctype), ctype, items, rnd)
    want_last = max(present, key=lambda vo: vo[1])[0] if present else None
    assert same(last, as_py(ctype, want_last)) or last == as_py(ctype, want_last)
    assert combine(kernel("count", ctype), ctype, items, rnd) == len(xs)


def test_last_ignores_nulls_and_orders_lexicographically() -> None:
    k = kernel("last", "String")
    o = np.array([[5, INT64_MIN, 9, 0], [5, 0, 1, 1], [5, 0, 1, 2], [7, 0, 0, 3]], dtype=np.int64)
    p = k.add(k.empty(), pa.array(["a", "b", "c", None]), o)
    assert k.finalize(p) == "c"  # (5, 0, 1, 2) is the greatest order of a non-null value
    q = k.add(k.empty(), pa.array(["z"]), np.array([[5, 0, 1, 1]], dtype=np.int64))
    assert k.finalize(k.merge(q, p)) == "c" == k.finalize(k.merge(p, q))
    with pytest.raises(ValidationError, match="needs the order"):
        k.add(k.empty(), pa.array(["a"]))
    with pytest.raises(ValidationError, match=r"shape \(1, 4\)"):
        k.add(k.empty(), pa.array(["a"]), np.zeros((2, 4), dtype=np.int64))
    # A tie (impossible by contract) still gives an order-independent answer.
    tie = np.zeros((2, 4), dtype=np.int64)
    kf = kernel("last", "Float64")
    a = kf.finalize(kf.add(kf.empty(), np.array([1.0, 2.0]), tie))
    b = kf.finalize(kf.add(kf.empty(), np.array([2.0, 1.0]), tie))
    assert a == b == 2.0


def test_timestamps_are_returned_as_aware_datetimes() -> None:
    k = kernel("max", "Timestamp")
    ts = [datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 6, 1, 12, tzinfo=UTC)]
    assert k.finalize(k.add(k.empty(), ts)) == ts[1]
    arr = np.array(["2024-01-01T00:00:00", "2023-01-01T00:00:00"], dtype="datetime64[ns]")
    kmin = kernel("min", "Timestamp")
    assert kmin.finalize(kmin.add(kmin.empty(), arr)) == datetime(2023, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError, match="naive"):
        k.add(k.empty(), [datetime(2024, 1, 1)])
    with pytest.raises(ValidationError, match="naive"):
        k.add(k.empty(), pa.array([1], pa.timestamp("us")))


# ----------------------------------------------------------------------------- sketches


@FAST
@given(
    values=st.lists(st.one_of(st.integers(0, 3000), nulls), max_size=150),
    rnd=st.randoms(use_true_random=False),
)
def test_approx_count_distinct_is_order_independent_and_close(
    values: list[int | None], rnd: random.Random
) -> None:
    k = kernel("approx_count_distinct", "Int64", {"lg_k": 8})
    items = with_orders(values, rnd)
    a = combine(k, "Int64", items, rnd)
    b = combine(k, "Int64", items, rnd)
    assert a == b and isinstance(a, int)
    d = len({v for v in values if v is not None})
    assert abs(a - d) <= 3 * (1.04 / 16) * d + 1


def test_approx_count_distinct_large_and_every_type() -> None:
    rnd = random.Random(5)
    n = 60_000
    k = kernel("approx_count_distinct", "Float64")  # lg_k 12
    values = np.random.default_rng(1).standard_normal(n)
    pieces = np.array_split(values[rnd.sample(range(n), n)], 7)
    parts = [k.decode(k.encode(k.add(k.empty(), c))) for c in pieces]
    acc = k.empty()
    for p in parts:
        acc = k.merge(acc, p)
    direct = k.finalize(k.add(k.empty(), values))
    assert k.finalize(acc) == direct
    assert abs(direct - n) <= 3 * 1.04 / 64 * n
    s = kernel("approx_count_distinct", "String")
    assert s.finalize(s.add(s.empty(), pa.array(["", "a", None, "a", ""]))) == 2
    f = kernel("approx_count_distinct", "Float64")
    assert f.finalize(f.add(f.empty(), np.array([0.0, -0.0, math.nan, -math.nan]))) == 2
    for ctype, vals in (("Bool", [True, False, None]), ("Timestamp", [EPOCH, None])):
        kk = kernel("approx_count_distinct", ctype)
        assert kk.finalize(kk.add(kk.empty(), vals)) == len(vals) - 1
    assert k.finalize(k.empty()) == 0 and k.exact


@FAST
@given(
    values=st.lists(st.one_of(finite_floats, st.just(math.inf), nulls), max_size=100),
    q=st.floats(0.001, 0.999),
    rnd=st.randoms(use_true_random=False),
)
def test_approx_percentile_is_exact_while_the_sketch_holds_every_value(
    values: list[float | None], q: float, rnd: random.Random
) -> None:
    k = kernel("approx_percentile", "Float64", {"q": q, "k": 100})
    got = combine(k, "Float64", with_orders(values, rnd), rnd)
    xs = sorted(v for v in values if v is not None)
    assert got == (xs[math.ceil(q * len(xs)) - 1] if xs else None)
    assert not k.exact


def test_approx_percentile_rank_error_within_the_bound() -> None:
    rng = np.random.default_rng(11)
    n = 50_000
    values = rng.standard_normal(n)
    ordered = np.sort(values)
    for q, kk in ((0.5, 200), (0.99, 200), (0.1, 64)):
        k = kernel("approx_percentile", "Float64", {"q": q, "k": kk})
        acc = k.empty()
        for chunk in np.array_split(values, 9):
            acc = k.merge(acc, k.decode(k.encode(k.add(k.empty(), chunk))))
        got = k.finalize(acc)
        rank = np.searchsorted(ordered, got, "right") / n
        assert abs(rank - q) <= 3 * kmod.rank_error(kk), (q, kk, rank)
    ki = kernel("approx_percentile", "Int64", {"q": 0.5})
    assert ki.finalize(ki.add(ki.empty(), pa.array([1, 2, 3, None]))) == 2.0
    assert ki.finalize(ki.empty()) is None


# ----------------------------------------------------------------------------- interface


def test_output_types() -> None:
    assert output_type("count", "String") == "Int64"
    assert output_type("sum", "Int64") == "Int64" and output_type("sum", "Float64") == "Float64"
    assert output_type("mean", "Int64") == "Float64" == output_type("stddev", "Int64")
    for f in ("min", "max", "last"):
        for t in ("Int64", "Float64", "String", "Bool", "Timestamp"):
            assert output_type(f, t) == t
    assert output_type("approx_count_distinct", "String") == "Int64"
    assert output_type("approx_percentile", "Int64") == "Float64"
    assert {"sum", "mean", "stddev", "approx_percentile"} == NUMERIC_ONLY
    assert len(FUNCTIONS) == 9
    for f in FUNCTIONS:
        params = {"q": 0.5} if f == "approx_percentile" else None
        k = kernel(f, "Int64", params)
        assert k.function == f and k.exact == (f != "approx_percentile")
        assert k.finalize(k.decode(k.encode(k.empty()))) == (0 if "count" in f else None)
        assert k.encode(k.empty())[0] == kmod.FORMAT_VERSION


def test_bad_definitions_name_the_problem_and_the_fix() -> None:
    with pytest.raises(DefinitionError, match=r"Unknown aggregation function `avg`.*Valid:"):
        kernel("avg", "Float64")
    with pytest.raises(DefinitionError, match="Did you mean `stddev`"):
        kernel("stdev", "Float64")
    with pytest.raises(DefinitionError, match=r"`sum` needs a numeric column .* got `String`"):
        kernel("sum", "String")
    with pytest.raises(DefinitionError, match="of type `Bytes`"):
        output_type("max", "Bytes")
    with pytest.raises(DefinitionError, match="needs the parameter `q`"):
        kernel("approx_percentile", "Float64")
    with pytest.raises(DefinitionError, match="strictly between 0 and 1"):
        kernel("approx_percentile", "Float64", {"q": 1.0})
    with pytest.raises(DefinitionError, match=r"`lg_k` .* from 4 to 21"):
        kernel("approx_count_distinct", "Int64", {"lg_k": True})
    with pytest.raises(DefinitionError, match="takes no parameters"):
        kernel("sum", "Int64", {"lg_k": 4})
    found = problems("approx_percentile", "String", {"k": 3, "x": 1})
    assert len(found) == 4, found
    with pytest.raises(DefinitionError) as e:
        kernel("approx_percentile", "String", {"k": 3, "x": 1})
    assert e.value.problems == found and "4 problem(s)" in str(e.value)
    assert problems("approx_percentile", "Int64", {"q": 0.2, "k": 8}) == []


def test_bad_values_and_bad_bytes() -> None:
    k = kernel("sum", "Int64")
    with pytest.raises(ValidationError, match="as a Int64 column"):
        k.add(k.empty(), np.array([1.5]))
    with pytest.raises(ValidationError, match="exceed the Int64 range"):
        k.add(k.empty(), np.array([2**64 - 1], dtype=np.uint64))
    with pytest.raises(ValidationError, match="one-dimensional"):
        k.add(k.empty(), np.zeros((2, 2), dtype=np.int64))
    data = k.encode(k.add(k.empty(), [1, 2]))
    with pytest.raises(ValidationError, match=r"partial of `sum` over Int64, not of `mean`"):
        kernel("mean", "Int64").decode(data)
    with pytest.raises(ValidationError, match="format version 9"):
        k.decode(b"\x09" + data[1:])
    with pytest.raises(ValidationError, match="corrupt"):
        k.decode(data[:-1])
    with pytest.raises(ValidationError, match="corrupt"):
        k.decode(data + b"\x00")
    h = kernel("approx_count_distinct", "Int64")
    with pytest.raises(ValidationError, match="corrupt"):
        h.decode(h.encode(h.empty())[:5])


def test_exact_partials_are_immutable_values() -> None:
    k = kernel("sum", "Float64")
    a = k.add(k.empty(), [1.0, 2.0])
    b = k.add(k.empty(), [3.0])
    m = k.merge(a, b)
    assert k.finalize(a) == 3.0 and k.finalize(b) == 3.0 and k.finalize(m) == 6.0
    assert k.empty() == k.empty() and k.finalize(k.empty()) is None
    enc = k.encode(k.add(k.empty(), [1.0]))
    assert len(enc) <= 16  # 1.0 = 1 << 1074 is stored as (1, 1074)
