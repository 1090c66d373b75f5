"""The aggregation kernel: partial aggregates (empty, add, merge, finalize, encode, decode).

One module, used identically by the offline training-set computation, the online tiles and the
stream worker, so that all three give the same number for the same events (DESIGN.md §3).

Contract (what the online = offline property tests rely on)
------------------------------------------------------------
* **Nulls are ignored** by every function; `count` counts the non-null values. NaN is a value,
  not a null: a float NumPy array has no nulls (pass a `pa.Array`, or an object array with
  `None`, to carry nulls).
* **Partials.** `empty()` returns a fresh partial. `add(p, values)` and `merge(a, b)` return the
  result; always use the returned value. The exact kernels never mutate their arguments
  (their partials are immutable values); the sketch kernels (`approx_*`) update `p` / `a` in
  place and return it, so do not reuse a partial after passing it as the *first* argument. The
  second argument of `merge` is never modified. `decode(encode(p))` is a copy.
* **exact = True** (count, sum, mean, min, max, last, stddev, approx_count_distinct):
  `finalize` is bit-identical whatever the split of the values into partials, the order of
  `add` / `merge` calls and any `encode`/`decode` round trips in between.
* **count** -> Int64, any column type.
* **sum / mean / stddev** (Int64, Float64) are computed *exactly*: the partial keeps the sum
  (and, for stddev, the sum of squares) as exact integers -- Float64 values as integer multiples
  of 2**-1074 (squares: of 2**-2148), built with a vectorised mantissa/exponent decomposition
  -- and `finalize` rounds once, correctly (round half to even).
  - `sum` (Float64) equals `math.fsum` bit for bit (when `fsum` does not raise): the correctly
    rounded exact sum; an exact sum beyond the Float64 range rounds to +-inf, as IEEE
    round-to-nearest does (fsum raises OverflowError). The sum is -0.0 only when every value is
    -0.0 (IEEE, and fsum from Python 3.12; 3.11's fsum gives +0.0), else +0.0 for an exact
    zero.
  - `mean` -> Float64: the correctly rounded exact mean (zero sign as for `sum`).
  - `stddev` -> Float64: the SAMPLE standard deviation (divisor n - 1), the correctly rounded
    square root of the exact variance (never negative, no cancellation); None for n < 2.
    (This is at least as accurate as `math.sqrt` of the rounded variance, and unlike it never
    overflows for values above 1e154.)
  - NaN / +-inf (Float64): counted separately, so the result is what IEEE arithmetic gives and
    still order-independent: `sum`/`mean` are NaN if any value is NaN or both +inf and -inf
    occur, else +inf / -inf if one of them occurs; `stddev` is NaN if any value is non-finite
    (n >= 2). NaN and inf count as values for n.
  - Int64 `sum` -> Int64, an exact Python int. If the exact sum leaves the Int64 range,
    `finalize` raises `ValidationError` (like BigQuery and Spark's ANSI mode; no silent wrap, no
    change of type); the partial itself never overflows. Int64 `mean`/`stddev` -> Float64,
    correctly rounded from the exact integers.
* **min / max** -> the column type, for Int64, Float64, String, Bool and Timestamp; by
  comparison, never subtraction. Float64: NaN propagates (any NaN -> NaN, as IEEE 754-2019
  minimum/maximum and NumPy), and -0.0 < +0.0 (so the result's zero sign is order-independent).
  Strings compare by code point (= UTF-8 byte order). Bool: False < True.
* **last** -> the column type, any column type: the value with the greatest order (`orders`,
  shape (n, 4) int64 = event_us, created_us (null = the smallest int64), ingested_us, seq).
  Null values are ignored (a null does not replace the last value). Ties are impossible by
  contract; if one happens anyway the greater value (by a total order of the type) wins so the
  result is still order-independent. `orders` is ignored by the other functions.
* **approx_count_distinct** -> Int64, any column type: an Apache DataSketches HLL sketch
  (param `lg_k`, 4..21, default 12), merged by union. `finalize` uses the sketch's composite
  estimator (from the registers alone, not the order-dependent HIP accumulator), so the
  estimate depends only on the set of values: exact = True. Error: relative standard error
  about 1.04 / sqrt(2**lg_k) (1.6 % at lg_k 12; 3 sigma = 4.9 %); small cardinalities (up to
  about 2**lg_k / 8 distinct values) are counted in list/set mode, nearly exactly. -0.0 and 0.0
  are one value, all NaNs are one value; Int64 1 and Float64 1.0 are not compared (one column
  has one type). The empty string is counted (DataSketches itself ignores it).
* **approx_percentile** -> Float64, Int64 or Float64 column: an Apache DataSketches KLL
  sketch of doubles (params `q` in (0, 1), required, and `k`, 8..65535, default 200). The
  quantile is the *inclusive* (inverted-CDF) one: the smallest value v with rank(v) >= q * n,
  i.e. sorted(values)[ceil(q * n) - 1]. Exact while the sketch holds every value (n <= k);
  beyond that the normalized rank error is at most `rank_error(k)` (1.33 % at k 200) with 99 %
  confidence. KLL compaction is randomised, so exact = False. NaN is ignored (it has no rank),
  +-inf are values; Int64 values are converted to float64 (exact up to 2**53).

Encoding: `encode` gives compact bytes: a format version byte (FORMAT_VERSION), the function's
and column type's codes, then the partial (counts as varints, exact sums as odd mantissa and
trailing-zero count, sketches in their DataSketches serialization). `decode` checks all three
and raises `ValidationError` for bytes of another kernel or a corrupt partial.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

# The kernel is split by concern: the functions and their validation (_functions), the binary
# framing (_codec), the comparison kernels (_extremes), the sketches (_sketches); the count and
# moment kernels are here. Every name stays importable from this module (re-exported).
from featureline.aggregation._codec import _Base
from featureline.aggregation._extremes import _Extreme, _float_key, _Last  # noqa: F401
from featureline.aggregation._functions import (  # noqa: F401
    _PARAMS,
    COLUMN_TYPES,
    EXACT,
    FORMAT_VERSION,
    FUNCTIONS,
    KLL_K_DEFAULT,
    KLL_K_RANGE,
    LG_K_DEFAULT,
    LG_K_RANGE,
    NUMERIC_ONLY,
    NUMERIC_TYPES,
    _is_int,
    _is_real,
    _param_problems,
    _raise,
    _type_problems,
    output_type,
    problems,
    rank_error,
)
from featureline.aggregation._numbers import (  # noqa: F401
    _count_valid,
    _float_sums,
    _get_value,
    _int_sums,
    _prepare,
    _put_int,
    _put_uint,
    _put_value,
    _py,
    _Reader,
    _sqrt_to_float,
    _to_float,
)
from featureline.aggregation._sketches import (  # noqa: F401
    _HLL_FAMILY,
    _HLL_FLAGS,
    _HLL_MODE,
    _HLL_OOO,
    HllPartial,
    _Hll,
    _Kll,
)
from featureline.errors import DefinitionError, ValidationError, unknown  # noqa: F401

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_SMALL = 16  # batches up to this size are added with a Python loop (same exact result)


# --------------------------------------------------------------------------- protocol


@runtime_checkable
class Kernel(Protocol):
    """Partial aggregates of one function over one column type (see the module docstring)."""

    function: str
    column_type: str
    exact: bool

    def empty(self) -> Any: ...

    def add(self, p: Any, values: Any, orders: np.ndarray | None = None) -> Any: ...

    def merge(self, a: Any, b: Any) -> Any: ...

    def finalize(self, p: Any) -> Any: ...

    def encode(self, p: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


def kernel(function: str, column_type: str, params: Mapping[str, Any] | None = None) -> Kernel:
    """The kernel of `function` over a column of `column_type` ("Int64", "Float64", "String",
    "Bool", "Timestamp"). Raises DefinitionError listing every problem."""
    _raise(problems(function, column_type, params), "aggregation")
    given = dict(params or {})
    if function == "count":
        return _Count(column_type)
    if function in ("sum", "mean", "stddev"):
        if column_type == "Float64":
            return _FloatMoments(function)
        return _IntMoments(function)
    if function in ("min", "max"):
        return _Extreme(function, column_type)
    if function == "last":
        return _Last(column_type)
    if function == "approx_count_distinct":
        return _Hll(column_type, int(given.get("lg_k", LG_K_DEFAULT)))
    return _Kll(column_type, float(given["q"]), int(given.get("k", KLL_K_DEFAULT)))


# --------------------------------------------------------------------------- count and moments


class _Count(_Base):
    def __init__(self, column_type: str) -> None:
        super().__init__("count", column_type)

    def empty(self) -> int:
        return 0

    def add(self, p: int, values: Any, orders: np.ndarray | None = None) -> int:
        return p + _count_valid(values)

    def merge(self, a: int, b: int) -> int:
        return a + b

    def finalize(self, p: int) -> int:
        return p

    def encode(self, p: int) -> bytes:
        out = self._header()
        _put_uint(out, p)
        return bytes(out)

    def _decode(self, r: _Reader) -> int:
        return r.uint()


class FloatMoments(NamedTuple):
    """A Float64 sum/mean/stddev partial: counts, and the exact sums as integers."""

    n: int = 0  # non-null values, NaN and inf included
    neg_zero: int = 0  # values that are -0.0
    nan: int = 0
    pos_inf: int = 0
    neg_inf: int = 0
    s1: int = 0  # sum of the finite values / 2**-1074
    s2: int = 0  # sum of their squares / 2**-2148 (stddev only)


class IntMoments(NamedTuple):
    """An Int64 sum/mean/stddev partial: the exact count, sum and sum of squares."""

    n: int = 0
    s1: int = 0
    s2: int = 0


_EMPTY_F = FloatMoments()
_EMPTY_I = IntMoments()


def _small_float_sums(xs: list[float], squares: bool) -> tuple[int, int, int, int, int, int]:
    nz = nan = pinf = ninf = s1 = s2 = 0
    for x in xs:
        if x != x:
            nan += 1
        elif x == math.inf:
            pinf += 1
        elif x == -math.inf:
            ninf += 1
        elif x == 0.0:
            if math.copysign(1.0, x) < 0:
                nz += 1
        else:
            num, den = x.as_integer_ratio()
            sh = 1075 - den.bit_length()  # den = 2**(1074 - sh)
            s1 += num << sh
            if squares:
                s2 += (num * num) << (2 * sh)
    return nz, nan, pinf, ninf, s1, s2


class _FloatMoments(_Base):
    def __init__(self, function: str) -> None:
        super().__init__(function, "Float64")
        self._squares = function == "stddev"

    def empty(self) -> FloatMoments:
        return _EMPTY_F

    def add(self, p: FloatMoments, values: Any, orders: np.ndarray | None = None) -> FloatMoments:
        x, _ = _prepare(values, "Float64")
        assert isinstance(x, np.ndarray)
        n = len(x)
        if n == 0:
            return p
        if n <= _SMALL:
            nz, nan, pinf, ninf, s1, s2 = _small_float_sums(x.tolist(), self._squares)
        else:
            nz, nan, pinf, ninf, s1, s2 = _vector_float_sums(x, self._squares)
        return FloatMoments(
            p.n + n,
            p.neg_zero + nz,
            p.nan + nan,
            p.pos_inf + pinf,
            p.neg_inf + ninf,
            p.s1 + s1,
            p.s2 + s2,
        )

    def merge(self, a: FloatMoments, b: FloatMoments) -> FloatMoments:
        return FloatMoments(
            a.n + b.n,
            a.neg_zero + b.neg_zero,
            a.nan + b.nan,
            a.pos_inf + b.pos_inf,
            a.neg_inf + b.neg_inf,
            a.s1 + b.s1,
            a.s2 + b.s2,
        )

    def finalize(self, p: FloatMoments) -> float | None:
        n = p.n
        if self._squares:
            if n < 2:
                return None
            if p.nan or p.pos_inf or p.neg_inf:
                return math.nan
            var_num = n * p.s2 - p.s1 * p.s1
            return _sqrt_to_float(var_num, n * (n - 1), -2148)
        if n == 0:
            return None
        if p.nan or (p.pos_inf and p.neg_inf):
            return math.nan
        if p.pos_inf:
            return math.inf
        if p.neg_inf:
            return -math.inf
        if p.s1 == 0:
            return -0.0 if p.neg_zero == n else 0.0
        if self.function == "sum":
            return _to_float(p.s1, 1, -1074)
        return _to_float(p.s1, n, -1074)

    def encode(self, p: FloatMoments) -> bytes:
        out = self._header()
        counts = (p.n, p.neg_zero, p.nan, p.pos_inf, p.neg_inf)
        if max(counts) < 0x80:  # each count one varint byte (the usual tile): the same bytes
            out += bytes(counts)
        else:
            for c in counts:
                _put_uint(out, c)
        _put_int(out, p.s1)
        if p.s2:
            _put_int(out, p.s2)
        else:
            out.append(0)  # _put_int of 0
        return bytes(out)

    def _decode(self, r: _Reader) -> FloatMoments:
        u = r.uint
        p = FloatMoments(u(), u(), u(), u(), u(), r.sint(), r.sint())
        if p.neg_zero + p.nan + p.pos_inf + p.neg_inf > p.n or p.s2 < 0:
            raise ValueError("inconsistent counts")
        return p


def _vector_float_sums(x: np.ndarray, squares: bool) -> tuple[int, int, int, int, int, int]:
    nan = pinf = ninf = 0
    finite = np.isfinite(x)
    if not finite.all():
        nan = int(np.count_nonzero(np.isnan(x)))
        pinf = int(np.count_nonzero(x == math.inf))
        ninf = int(np.count_nonzero(x == -math.inf))
        x = x[finite]
    nz = int(np.count_nonzero(x.view(np.uint64) == np.uint64(1 << 63)))
    s1, s2 = _float_sums(x, squares)
    return nz, nan, pinf, ninf, s1, s2


class _IntMoments(_Base):
    def __init__(self, function: str) -> None:
        super().__init__(function, "Int64")
        self._squares = function == "stddev"

    def empty(self) -> IntMoments:
        return _EMPTY_I

    def add(self, p: IntMoments, values: Any, orders: np.ndarray | None = None) -> IntMoments:
        x, _ = _prepare(values, "Int64")
        assert isinstance(x, np.ndarray)
        n = len(x)
        if n == 0:
            return p
        if n <= _SMALL:
            xs = x.tolist()
            s1 = sum(xs)
            s2 = sum(v * v for v in xs) if self._squares else 0
        else:
            s1, s2 = _int_sums(x, self._squares)
        return IntMoments(p.n + n, p.s1 + s1, p.s2 + s2)

    def merge(self, a: IntMoments, b: IntMoments) -> IntMoments:
        return IntMoments(a.n + b.n, a.s1 + b.s1, a.s2 + b.s2)

    def finalize(self, p: IntMoments) -> int | float | None:
        n = p.n
        if self.function == "sum":
            if n == 0:
                return None
            if not _INT64_MIN <= p.s1 <= _INT64_MAX:
                raise ValidationError(
                    f"The sum of {n} Int64 values is {p.s1}, outside the Int64 range "
                    "[-2**63, 2**63 - 1]. Fix: declare the column Float64 (its sum is exact, "
                    "then rounded once) or use a shorter window."
                )
            return p.s1
        if self.function == "mean":
            return None if n == 0 else _to_float(p.s1, n, 0)
        if n < 2:
            return None
        return _sqrt_to_float(n * p.s2 - p.s1 * p.s1, n * (n - 1), 0)

    def encode(self, p: IntMoments) -> bytes:
        out = self._header()
        _put_uint(out, p.n)
        _put_int(out, p.s1)
        _put_int(out, p.s2)
        return bytes(out)

    def _decode(self, r: _Reader) -> IntMoments:
        p = IntMoments(r.uint(), r.sint(), r.sint())
        if p.s2 < 0:
            raise ValueError("negative sum of squares")
        return p


__all__ = [
    "COLUMN_TYPES",
    "EXACT",
    "FORMAT_VERSION",
    "FUNCTIONS",
    "NUMERIC_ONLY",
    "FloatMoments",
    "HllPartial",
    "IntMoments",
    "Kernel",
    "kernel",
    "output_type",
    "problems",
    "rank_error",
]
