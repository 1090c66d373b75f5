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
import struct
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureline.aggregation._numbers import (
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
from featureline.errors import DefinitionError, ValidationError, unknown

FUNCTIONS: tuple[str, ...] = (
    "count",
    "sum",
    "mean",
    "min",
    "max",
    "last",
    "stddev",
    "approx_count_distinct",
    "approx_percentile",
)
COLUMN_TYPES: tuple[str, ...] = ("Int64", "Float64", "String", "Bool", "Timestamp")
NUMERIC_TYPES: frozenset[str] = frozenset({"Int64", "Float64"})
# Functions that need an Int64 or Float64 column; the others (count, min, max, last,
# approx_count_distinct) take any of COLUMN_TYPES.
NUMERIC_ONLY: frozenset[str] = frozenset({"sum", "mean", "stddev", "approx_percentile"})
# Functions whose finalize is bit-identical whatever the split and order.
EXACT: frozenset[str] = frozenset(FUNCTIONS) - {"approx_percentile"}
FORMAT_VERSION = 1

_PARAMS: dict[str, tuple[str, ...]] = {
    "approx_count_distinct": ("lg_k",),
    "approx_percentile": ("q", "k"),
}
LG_K_DEFAULT, LG_K_RANGE = 12, (4, 21)
KLL_K_DEFAULT, KLL_K_RANGE = 200, (8, 65535)

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_SMALL = 16  # batches up to this size are added with a Python loop (same exact result)


# --------------------------------------------------------------------------- validation


def problems(function: str, column_type: str, params: Mapping[str, Any] | None = None) -> list[str]:
    """Every problem with an aggregation (function, column type, params), as messages that name
    the problem and the fix; empty when it is valid. `kernel` raises them all at once."""
    out = _type_problems(function, column_type)
    if function not in FUNCTIONS:
        return out
    return out + _param_problems(function, params)


def _type_problems(function: str, column_type: str) -> list[str]:
    out: list[str] = []
    if function not in FUNCTIONS:
        out.append(unknown("aggregation function", str(function), FUNCTIONS))
        return out
    if column_type not in COLUMN_TYPES:
        out.append(
            f"`{function}` cannot aggregate a column of type `{column_type}`. "
            f"Fix: aggregate a column of type {', '.join(COLUMN_TYPES)}."
        )
    elif function in NUMERIC_ONLY and column_type not in NUMERIC_TYPES:
        anyt = ", ".join(f for f in FUNCTIONS if f not in NUMERIC_ONLY)
        out.append(
            f"`{function}` needs a numeric column (Int64 or Float64), got `{column_type}`. "
            f"Fix: aggregate an Int64 or Float64 column, or use one of {anyt} on a "
            f"{column_type} column."
        )
    return out


def _param_problems(function: str, params: Mapping[str, Any] | None) -> list[str]:
    out: list[str] = []
    if params is not None and not isinstance(params, Mapping):
        out.append(f"The params of `{function}` must be a mapping, got {type(params).__name__}.")
        return out
    given = dict(params or {})
    valid = _PARAMS.get(function, ())
    for key in given:
        if key not in valid:
            if valid:
                names = ", ".join(f"`{v}`" for v in valid)
                out.append(f"`{function}` has no parameter `{key}`. Valid: {names}.")
            else:
                out.append(
                    f"`{function}` takes no parameters, got `{key}`. Fix: remove it "
                    f"(only approx_count_distinct (lg_k) and approx_percentile (q, k) take any)."
                )
    if function == "approx_count_distinct" and "lg_k" in given:
        lo, hi = LG_K_RANGE
        if not _is_int(given["lg_k"]) or not lo <= given["lg_k"] <= hi:
            out.append(
                f"`lg_k` of approx_count_distinct must be an integer from {lo} to {hi}, got "
                f"{given['lg_k']!r}. Fix: use the default {LG_K_DEFAULT} (about 1.6 % error) or "
                f"more for less error (each step up doubles the sketch, error / 1.41)."
            )
    if function == "approx_percentile":
        if "q" not in given:
            out.append(
                "approx_percentile needs the parameter `q`, the quantile strictly between 0 and "
                "1. Fix: e.g. params={'q': 0.5} for the median, {'q': 0.99} for p99."
            )
        else:
            q = given["q"]
            if not _is_real(q) or not 0.0 < float(q) < 1.0:
                out.append(
                    f"`q` of approx_percentile must be a number strictly between 0 and 1, got "
                    f"{q!r}. Fix: e.g. 0.5 for the median, 0.99 for p99 (use min/max for 0/1)."
                )
        if "k" in given:
            lo, hi = KLL_K_RANGE
            if not _is_int(given["k"]) or not lo <= given["k"] <= hi:
                out.append(
                    f"`k` of approx_percentile must be an integer from {lo} to {hi}, got "
                    f"{given['k']!r}. Fix: use the default {KLL_K_DEFAULT} (rank error 1.33 %)."
                )
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _is_real(v: Any) -> bool:
    return (
        isinstance(v, int | float | np.integer | np.floating)
        and not isinstance(v, bool | np.bool_)
        and math.isfinite(float(v))
    )


def _raise(found: list[str], what: str) -> None:
    if len(found) == 1:
        raise DefinitionError(found[0], found)
    if found:
        raise DefinitionError.from_problems(found, what)


def output_type(function: str, column_type: str) -> str:
    """The type of the finalized value: "Int64", "Float64", or the column type."""
    _raise(_type_problems(function, column_type), "aggregation")
    if function in ("count", "approx_count_distinct"):
        return "Int64"
    if function in ("mean", "stddev", "approx_percentile"):
        return "Float64"
    return column_type  # sum, min, max, last


def rank_error(k: int = KLL_K_DEFAULT) -> float:
    """The KLL normalized rank error of one quantile at 99 % confidence for this `k`."""
    import datasketches

    return float(datasketches.kll_doubles_sketch.get_normalized_rank_error(int(k), False))


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


# --------------------------------------------------------------------------- kernels


class _Base:
    function: str
    column_type: str
    exact: bool = True

    def __init__(self, function: str, column_type: str) -> None:
        self.function = function
        self.column_type = column_type
        self.output_type = output_type(function, column_type)
        self._tag = bytes(
            (FORMAT_VERSION, FUNCTIONS.index(function), COLUMN_TYPES.index(column_type))
        )

    def __repr__(self) -> str:
        return f"kernel({self.function!r}, {self.column_type!r})"

    def _header(self) -> bytearray:
        return bytearray(self._tag)

    def _reader(self, data: bytes) -> _Reader:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ValidationError(
                f"A {self.function} partial decodes from bytes, got {type(data).__name__}."
            )
        if type(data) is not bytes:
            data = bytes(data)
        if len(data) < 3:
            raise self._corrupt("shorter than its 3-byte header")
        if data[0] != FORMAT_VERSION:
            raise ValidationError(
                f"A {self.function} partial has format version {data[0]}; this Featureline "
                f"reads version {FORMAT_VERSION}. Fix: rebuild the tiles (materialize again) "
                "or upgrade Featureline."
            )
        if data[1:3] != self._tag[1:3]:
            fn = FUNCTIONS[data[1]] if data[1] < len(FUNCTIONS) else f"#{data[1]}"
            ct = COLUMN_TYPES[data[2]] if data[2] < len(COLUMN_TYPES) else f"#{data[2]}"
            raise ValidationError(
                f"These bytes are a partial of `{fn}` over {ct}, not of `{self.function}` over "
                f"{self.column_type}. Fix: decode them with kernel({fn!r}, {ct!r})."
            )
        return _Reader(data, 3)

    def _corrupt(self, why: str) -> ValidationError:
        return ValidationError(
            f"A {self.function} partial over {self.column_type} is corrupt ({why}). "
            "Fix: rebuild the tile from the offline store (materialize again)."
        )

    def decode(self, data: bytes) -> Any:
        r = self._reader(data)
        try:
            p = self._decode(r)
            r.done()
        except ValidationError:
            raise
        except (ValueError, IndexError, struct.error, UnicodeDecodeError, RuntimeError) as e:
            raise self._corrupt(str(e) or type(e).__name__) from None
        return p

    def _decode(self, r: _Reader) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


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


def _float_key(v: float) -> int:
    """IEEE 754 totalOrder as an integer (-NaN < -inf < ... < -0.0 < 0.0 < ... < inf < NaN)."""
    b = struct.unpack("<q", struct.pack("<d", v))[0]
    return b if b >= 0 else b ^ 0x7FFFFFFFFFFFFFFF


class _Extreme(_Base):
    """min / max: the partial is None (no value yet) or the kept value (Timestamp: int us)."""

    def __init__(self, function: str, column_type: str) -> None:
        super().__init__(function, column_type)
        self._max = function == "max"

    def empty(self) -> Any:
        return None

    def add(self, p: Any, values: Any, orders: np.ndarray | None = None) -> Any:
        x, _ = _prepare(values, self.column_type)
        if len(x) == 0:
            return p
        if isinstance(x, pa.Array):  # strings
            mm = pc.min_max(x)
            v = mm["max" if self._max else "min"].as_py()
        elif self.column_type == "Float64":
            m = x.max() if self._max else x.min()
            if m != m:
                v = math.nan
            elif m == 0:
                zeros = x[x == 0]
                signs = np.signbit(zeros)
                # max prefers +0.0, min prefers -0.0
                v = (
                    (0.0 if not signs.all() else -0.0)
                    if self._max
                    else (-0.0 if signs.any() else 0.0)
                )
            else:
                v = float(m)
        else:
            v = (x.max() if self._max else x.min()).item()
        return self.merge(p, v)

    def merge(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        if b is None:
            return a
        if self.column_type == "Float64":
            if a != a:
                return a
            if b != b:
                return b
            if a == b:  # equal: only the zero sign can differ
                neg = math.copysign(1.0, a) < 0
                return (b if neg else a) if self._max else (a if neg else b)
        if self._max:
            return a if a > b else b
        return a if a < b else b

    def finalize(self, p: Any) -> Any:
        return None if p is None else _py(self.column_type, p)

    def encode(self, p: Any) -> bytes:
        out = self._header()
        if p is None:
            out.append(0)
        else:
            out.append(1)
            _put_value(out, self.column_type, p)
        return bytes(out)

    def _decode(self, r: _Reader) -> Any:
        flag = r.take(1)[0]
        if flag == 0:
            return None
        if flag != 1:
            raise ValueError("bad flag")
        return _get_value(r, self.column_type)


class _Last(_Base):
    """last: the partial is None or ((event_us, created_us, ingested_us, seq), value)."""

    def __init__(self, column_type: str) -> None:
        super().__init__("last", column_type)

    def empty(self) -> Any:
        return None

    def _key(self, v: Any) -> Any:
        return _float_key(v) if self.column_type == "Float64" else v

    def add(self, p: Any, values: Any, orders: np.ndarray | None = None) -> Any:
        x, o = _prepare(values, self.column_type, orders, need_orders=True)
        assert o is not None
        if len(x) == 0:
            return p
        idx = np.arange(len(o))
        for c in range(4):
            col = o[idx, c]
            idx = idx[col == col.max()]
            if len(idx) == 1:
                break
        if isinstance(x, pa.Array):
            cands = [x[int(i)].as_py() for i in idx]
        else:
            cands = [x[int(i)].item() for i in idx]
        v = cands[0] if len(cands) == 1 else max(cands, key=self._key)
        return self.merge(p, (tuple(int(c) for c in o[int(idx[0])]), v))

    def merge(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        if b is None:
            return a
        if a[0] != b[0]:
            return a if a[0] > b[0] else b
        return a if self._key(a[1]) >= self._key(b[1]) else b

    def finalize(self, p: Any) -> Any:
        return None if p is None else _py(self.column_type, p[1])

    def encode(self, p: Any) -> bytes:
        out = self._header()
        if p is None:
            out.append(0)
        else:
            out.append(1)
            out += struct.pack("<4q", *p[0])
            _put_value(out, self.column_type, p[1])
        return bytes(out)

    def _decode(self, r: _Reader) -> Any:
        flag = r.take(1)[0]
        if flag == 0:
            return None
        if flag != 1:
            raise ValueError("bad flag")
        order = struct.unpack("<4q", r.take(32))
        return (tuple(order), _get_value(r, self.column_type))


# --------------------------------------------------------------------------- sketches


class HllPartial:
    """An approx_count_distinct partial: a DataSketches HLL union (mutable) and whether the
    empty string was seen (DataSketches ignores it; we count it)."""

    __slots__ = ("empty_string", "union")

    def __init__(self, union: Any, empty_string: bool = False) -> None:
        self.union = union
        self.empty_string = empty_string


# HLL serialization (DataSketches HllPreambleUtil): byte 2 family id (7 = HLL), byte 5 flags,
# byte 7 low bits the current mode (2 = HLL array).
_HLL_FAMILY, _HLL_FLAGS, _HLL_MODE, _HLL_OOO = 2, 5, 7, 0x10


class _Hll(_Base):
    def __init__(self, column_type: str, lg_k: int) -> None:
        super().__init__("approx_count_distinct", column_type)
        import datasketches

        self._ds = datasketches
        self.lg_k = lg_k
        self.relative_error = 1.04 / math.sqrt(1 << lg_k)

    def empty(self) -> HllPartial:
        return HllPartial(self._ds.hll_union(self.lg_k))

    def add(self, p: HllPartial, values: Any, orders: np.ndarray | None = None) -> HllPartial:
        x, _ = _prepare(values, self.column_type)
        if len(x) == 0:
            return p
        u = p.union
        if isinstance(x, pa.Array):
            for s in x.to_pylist():
                if s:
                    u.update(s)
                else:
                    p.empty_string = True
        elif self.column_type == "Float64":
            for f in x.tolist():
                u.update(f)
        else:
            for i in x.astype(np.int64, copy=False).tolist():
                u.update(i)
        return p

    def merge(self, a: HllPartial, b: HllPartial) -> HllPartial:
        if not b.union.is_empty():
            a.union.update(b.union.get_result(self._ds.tgt_hll_type.HLL_8))
        a.empty_string = a.empty_string or b.empty_string
        return a

    def finalize(self, p: HllPartial) -> int:
        ds = self._ds
        if p.union.is_empty():
            return int(p.empty_string)
        raw = bytearray(p.union.get_result(ds.tgt_hll_type.HLL_8).serialize_compact())
        if raw[_HLL_FAMILY] != 7:
            raise RuntimeError(f"unexpected HLL serialization (family {raw[_HLL_FAMILY]})")
        if raw[_HLL_MODE] & 3 == 2:
            # The HIP estimate depends on the order of the updates; with the out-of-order flag
            # the sketch uses its composite estimator, a function of the registers alone.
            raw[_HLL_FLAGS] |= _HLL_OOO
        est = ds.hll_sketch.deserialize(bytes(raw)).get_estimate()
        return round(est) + int(p.empty_string)

    def encode(self, p: HllPartial) -> bytes:
        out = self._header()
        out.append(1 if p.empty_string else 0)
        out += p.union.get_result(self._ds.tgt_hll_type.HLL_4).serialize_compact()
        return bytes(out)

    def _decode(self, r: _Reader) -> HllPartial:
        flag = r.take(1)[0]
        if flag > 1:
            raise ValueError("bad flag")
        u = self._ds.hll_union(self.lg_k)
        u.update(self._ds.hll_sketch.deserialize(r.rest()))
        return HllPartial(u, bool(flag))


class _Kll(_Base):
    exact = False

    def __init__(self, column_type: str, q: float, k: int) -> None:
        super().__init__("approx_percentile", column_type)
        import datasketches

        self._ds = datasketches
        self.q, self.k = q, k
        self.rank_error = rank_error(k)

    def empty(self) -> Any:
        return self._ds.kll_doubles_sketch(self.k)

    def add(self, p: Any, values: Any, orders: np.ndarray | None = None) -> Any:
        x, _ = _prepare(values, self.column_type)
        assert isinstance(x, np.ndarray)
        if len(x):
            p.update(np.array(x, dtype=np.float64))  # the binding wants a writable array
        return p

    def merge(self, a: Any, b: Any) -> Any:
        if not b.is_empty():
            a.merge(b)
        return a

    def finalize(self, p: Any) -> float | None:
        if p.is_empty():
            return None
        return float(p.get_quantile(self.q, True))

    def encode(self, p: Any) -> bytes:
        return bytes(self._header()) + p.serialize()

    def _decode(self, r: _Reader) -> Any:
        return self._ds.kll_doubles_sketch.deserialize(r.rest())


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
