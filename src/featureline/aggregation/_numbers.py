"""Plumbing of the aggregation kernel: turning input columns into arrays, exact integer sums
of floats (and rounding them once), and the compact binary encoding of partials. The kernels
themselves are in `featureline.aggregation.kernel`."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from featureline.errors import ValidationError

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

_ARROW: dict[str, pa.DataType] = {
    "Int64": pa.int64(),
    "Float64": pa.float64(),
    "String": pa.large_string(),
    "Bool": pa.bool_(),
    "Timestamp": pa.timestamp("us", tz="UTC"),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHUNK = 1 << 24  # float64 bincount sums of < 2**28 weights stay exact for this many values

# --------------------------------------------------------------------------- input


def _bad(column_type: str, what: str) -> ValidationError:
    return ValidationError(
        f"Cannot aggregate {what} as a {column_type} column. Fix: pass a pyarrow Array or "
        f"NumPy array of {column_type} values (nulls as Arrow nulls or None)."
    )


def _from_numpy(values: np.ndarray, column_type: str) -> np.ndarray | pa.Array:
    kind = values.dtype.kind
    if values.ndim != 1:
        raise ValidationError(
            f"Aggregation values must be one-dimensional, got shape {values.shape}. "
            "Fix: pass one column of values."
        )
    if column_type == "Float64":
        if kind == "f" or kind in "iu":
            return np.ascontiguousarray(values, dtype=np.float64)
    elif column_type == "Int64":
        if kind == "i":
            return np.ascontiguousarray(values, dtype=np.int64)
        if kind == "u":
            if values.size and values.max() > _INT64_MAX:
                raise ValidationError(
                    "Aggregation values exceed the Int64 range (unsigned values above "
                    "2**63 - 1). Fix: declare the column Float64 or clip the values."
                )
            return values.astype(np.int64)
    elif column_type == "Bool":
        if kind == "b":
            return values
    elif column_type == "Timestamp":
        if kind == "M":
            return values.astype("datetime64[us]").view(np.int64)
        if kind == "i":
            return values.astype(np.int64)
    elif column_type == "String" and kind == "U":
        return pa.array(values.tolist(), pa.large_string())
    raise _bad(column_type, f"a NumPy array of dtype {values.dtype}")


def _to_arrow(values: Any, column_type: str) -> pa.Array:
    target = _ARROW[column_type]
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        t = values.type
        if t.equals(target):
            return values
        if column_type == "Timestamp" and pa.types.is_timestamp(t) and t.tz is None:
            raise ValidationError(
                "Aggregation values are naive timestamps (no time zone). Fix: make them "
                "timezone-aware UTC, e.g. pc.assume_timezone(values, 'UTC')."
            )
        try:
            return values.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            raise _bad(column_type, f"an Arrow array of type {t} ({e})") from None
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if not isinstance(values, Sequence) or isinstance(values, str | bytes):
        values = list(values)
    if column_type == "Timestamp":
        for v in values:
            if isinstance(v, datetime) and v.tzinfo is None:
                raise ValidationError(
                    f"Aggregation value {v!r} is a naive datetime. Fix: make it timezone-aware "
                    "(e.g. v.replace(tzinfo=datetime.timezone.utc))."
                )
    try:
        return pa.array(values, type=target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError, ValueError) as e:
        raise _bad(column_type, f"these values ({e})") from None


def _prepare(
    values: Any, column_type: str, orders: Any = None, need_orders: bool = False
) -> tuple[np.ndarray | pa.Array, np.ndarray | None]:
    """The non-null values (NumPy for numbers, bools and timestamps as int64 us; Arrow for
    strings) and, when asked, their orders."""
    mask: np.ndarray | None = None
    arr: np.ndarray | pa.Array
    if isinstance(values, np.ndarray) and values.dtype != object:
        arr = _from_numpy(values, column_type)
        n = len(arr)
    else:
        a = _to_arrow(values, column_type)
        n = len(a)
        if a.null_count:
            mask = np.asarray(a.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            a = a.filter(pa.array(mask))
        if column_type == "String":
            arr = a
        elif column_type == "Timestamp":
            arr = np.asarray(a.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
        else:
            arr = a.to_numpy(zero_copy_only=False)
    if not need_orders:
        return arr, None
    if orders is None:
        raise ValidationError(
            "`last` needs the order of every value. Fix: pass orders=, an int64 array of "
            "shape (n, 4): (event_us, created_us or the smallest int64, ingested_us, seq)."
        )
    o = np.asarray(orders)
    if o.shape != (n, 4) or o.dtype.kind not in "iu":
        raise ValidationError(
            f"`last` orders must be an int64 array of shape ({n}, 4), one row per value, got "
            f"shape {o.shape} of dtype {o.dtype}. Fix: (event_us, created_us, ingested_us, seq)."
        )
    o = o.astype(np.int64, copy=False)
    if mask is not None:
        o = o[mask]
    return arr, o


def _count_valid(values: Any) -> int:
    if isinstance(values, np.ndarray) and values.dtype != object:
        return len(values)
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return len(values) - values.null_count
    return sum(1 for v in values if v is not None)


# --------------------------------------------------------------------------- exact numbers


def _to_float(num: int, den: int, exp2: int) -> float:
    """num / den * 2**exp2 (den > 0) rounded to the nearest float, ties to even; +-inf beyond
    the Float64 range; subnormals rounded once."""
    if num == 0:
        return 0.0
    neg = num < 0
    a = -num if neg else num
    if den == 1:
        q, r, u = a, 0, exp2
        drop = max(q.bit_length() - 53, -1074 - u)
        if drop > 0:  # else a * 2**u is a float already
            rest = q & ((1 << drop) - 1)
            q >>= drop
            half = 1 << (drop - 1)
            if rest > half or (rest == half and q & 1):
                q += 1
            u += drop
    else:
        e = a.bit_length() - den.bit_length() + exp2
        u = max(e - 55, -1074)
        sh = exp2 - u
        if sh < 0:
            den <<= -sh
            sh = 0
        q, r = divmod(a << sh, den)
        drop = q.bit_length() - 53
        if drop > 0:
            rest = q & ((1 << drop) - 1)
            q >>= drop
            half = 1 << (drop - 1)
            if rest > half or (rest == half and (r or q & 1)):
                q += 1
            u += drop
        else:
            twice = 2 * r
            if twice > den or (twice == den and q & 1):
                q += 1
    try:
        x = math.ldexp(q, u)
    except OverflowError:
        x = math.inf
    return -x if neg else x


def _sqrt_to_float(num: int, den: int, exp2: int) -> float:
    """sqrt(num / den * 2**exp2) (num >= 0, den > 0, exp2 even), correctly rounded."""
    if num == 0:
        return 0.0
    s = 62 - (num.bit_length() - den.bit_length()) // 2  # the root scaled by 2**s has ~62 bits
    if s >= 0:
        m = num << (2 * s)
        root = math.isqrt(m // den)
        inexact = root * root * den != m
    else:
        d2 = den << (-2 * s)
        root = math.isqrt(num // d2)
        inexact = root * root * d2 != num
    return _to_float(root | int(inexact), 1, exp2 // 2 - s)  # round to odd, then to nearest


def _reduce(weights: Sequence[tuple[np.ndarray, int]]) -> int:
    """sum over buckets b and (w, offset) of w[b] * 2**(b + offset), exactly (w holds exact
    integers, as float64 or int64)."""
    nz = weights[0][0] != 0
    for w, _ in weights[1:]:
        nz = nz | (w != 0)
    idx = np.flatnonzero(nz)
    if not idx.size:
        return 0
    cols = [(w[idx].tolist(), off) for w, off in weights]
    total = 0
    for k, b in enumerate(idx.tolist()):
        v = 0
        for col, off in cols:
            c = col[k]
            if c:
                v += int(c) << off
        total += v << b
    return total


_SQ_CHUNK = 1 << 16  # float64 bincount sums of < 2**37 weights stay exact for this many values


def _float_sums(x: np.ndarray, squares: bool) -> tuple[int, int]:
    """(sum x / 2**-1074, sum x**2 / 2**-2148) exactly, for finite float64 x.

    x = M * 2**shift * 2**-1074 with M an integer (|M| < 2**53, from frexp) and shift >= 0;
    M is split in float64 limbs small enough that per-exponent bincount sums stay exact
    integers, and the buckets are combined once with Python ints."""
    s1 = s2 = 0
    for start in range(0, len(x), _CHUNK):
        m, e = np.frexp(x[start : start + _CHUNK])
        big = m * 9007199254740992.0  # m * 2**53: exact signed integers
        shift = e.astype(np.intp) + 1021
        if len(shift) and shift.min() < 0:  # subnormals: M has trailing zeros to shift out
            big = np.where(shift < 0, np.ldexp(big, np.minimum(shift, 0)), big)
            shift = np.maximum(shift, 0)
        hi = np.floor(big * 2.0**-26)  # |hi| <= 2**27
        lo = big - hi * 2.0**26  # 0 <= lo < 2**26
        s1 += _reduce([(np.bincount(shift, weights=hi), 26), (np.bincount(shift, weights=lo), 0)])
        if squares:
            # |M| = a * 2**36 + b * 2**18 + c (a < 2**17, b, c < 2**18);
            # M**2 = a2 * 2**72 + 2ab * 2**54 + (2ac + b2) * 2**36 + 2bc * 2**18 + c2
            mag = np.abs(big)
            a = np.floor(mag * 2.0**-36)
            rest = mag - a * 2.0**36
            b = np.floor(rest * 2.0**-18)
            c = rest - b * 2.0**18
            sq = 2 * shift
            nb = int(sq.max()) + 1
            acc = [np.zeros(nb, np.int64) for _ in range(5)]
            for st in range(0, len(mag), _SQ_CHUNK):
                aa, bb = a[st : st + _SQ_CHUNK], b[st : st + _SQ_CHUNK]
                cc, ss = c[st : st + _SQ_CHUNK], sq[st : st + _SQ_CHUNK]
                limbs = (aa * aa, 2 * aa * bb, 2 * aa * cc + bb * bb, 2 * bb * cc, cc * cc)
                for acc_i, w in zip(acc, limbs, strict=True):
                    acc_i += np.bincount(ss, weights=w, minlength=nb).astype(np.int64)
            s2 += _reduce(list(zip(acc, (72, 54, 36, 18, 0), strict=True)))
    return s1, s2


_M22 = np.uint64((1 << 22) - 1)


def _int_sums(x: np.ndarray, squares: bool) -> tuple[int, int]:
    """(sum x, sum x**2) exactly, for int64 x."""
    s1 = s2 = 0
    step = 1 << 18  # 2**18 terms below 2**45 each stay below 2**64
    for start in range(0, len(x), step):
        c = x[start : start + step]
        s1 += (int((c >> 32).sum()) << 32) + int((c & 0xFFFFFFFF).sum())
        if squares:
            u = c.view(np.uint64)
            u = np.where(c < 0, np.uint64(0) - u, u)  # |c|, exact even for -2**63
            c0 = u & _M22
            c1 = (u >> np.uint64(22)) & _M22
            c2 = u >> np.uint64(44)
            t4 = int((c2 * c2).sum(dtype=np.uint64))
            t3 = int((c2 * c1).sum(dtype=np.uint64)) * 2
            t2 = int((c1 * c1).sum(dtype=np.uint64)) + 2 * int((c2 * c0).sum(dtype=np.uint64))
            t1 = int((c1 * c0).sum(dtype=np.uint64)) * 2
            t0 = int((c0 * c0).sum(dtype=np.uint64))
            s2 += (t4 << 88) + (t3 << 66) + (t2 << 44) + (t1 << 22) + t0
    return s1, s2


# --------------------------------------------------------------------------- encoding


def _put_uint(out: bytearray, v: int) -> None:
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _put_int(out: bytearray, v: int) -> None:
    """A signed, possibly huge, integer: its odd part (length-prefixed) and its trailing zeros."""
    if v == 0:
        _put_uint(out, 0)
        return
    tz = (v & -v).bit_length() - 1
    m = v >> tz
    raw = m.to_bytes((m.bit_length() + 8) // 8, "little", signed=True)
    _put_uint(out, len(raw))
    out += raw
    _put_uint(out, tz)


class _Reader:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def uint(self) -> int:
        pos = self.pos
        b = self.data[pos]
        if b < 0x80:  # one byte: most counts
            self.pos = pos + 1
            return b
        v = shift = 0
        while True:
            b = self.data[self.pos]
            self.pos += 1
            v |= (b & 0x7F) << shift
            if b < 0x80:
                return v
            shift += 7
            if shift > 64 * 7:
                raise ValueError("varint too long")

    def sint(self) -> int:
        n = self.uint()
        if n == 0:
            return 0
        pos = self.pos
        if pos + n > len(self.data):
            raise ValueError("truncated")
        self.pos = pos + n
        return int.from_bytes(self.data[pos : pos + n], "little", signed=True) << self.uint()

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def rest(self) -> bytes:
        out = self.data[self.pos :]
        self.pos = len(self.data)
        return out

    def done(self) -> None:
        if self.pos != len(self.data):
            raise ValueError(f"{len(self.data) - self.pos} trailing byte(s)")


def _put_value(out: bytearray, column_type: str, v: Any) -> None:
    if column_type == "Float64":
        out += struct.pack("<d", v)
    elif column_type in ("Int64", "Timestamp"):
        out += struct.pack("<q", v)
    elif column_type == "Bool":
        out.append(1 if v else 0)
    else:
        raw = v.encode("utf-8", "surrogatepass")
        _put_uint(out, len(raw))
        out += raw


def _get_value(r: _Reader, column_type: str) -> Any:
    if column_type == "Float64":
        return struct.unpack("<d", r.take(8))[0]
    if column_type in ("Int64", "Timestamp"):
        return struct.unpack("<q", r.take(8))[0]
    if column_type == "Bool":
        b = r.take(1)[0]
        if b > 1:
            raise ValueError("bad bool")
        return bool(b)
    return r.take(r.uint()).decode("utf-8", "surrogatepass")


def _py(column_type: str, v: Any) -> Any:
    """A kept value as the Python scalar finalize returns."""
    if column_type == "Timestamp":
        try:
            return _EPOCH + timedelta(microseconds=v)
        except OverflowError:
            raise ValidationError(
                f"The timestamp {v} us since 1970 is outside Python's datetime range "
                "(years 1-9999). Fix: correct the event data."
            ) from None
    return v
