"""Suffix partials of many keys at once, for the online tiles (`featureline.online.tiles`).

A key's tiles are stored as the partial of every *suffix* of its tiles (tiles i..n-1), encoded,
plus each suffix's finalized value. The per-key path adds each tile's events to a running
partial with the kernel (`add`, `encode`, `finalize` per tile); for the Float64 moment kernels
(sum, mean) this module computes the same numbers for every key of a refresh with a few
NumPy passes over all the events, and leaves only the bytes of each suffix to Python.

Exactness: a finite float is M * 2**shift units of 2**-1074 (M an integer, |M| < 2**53, as
`_float_sums` decomposes it). Within one run of events (a key's tiled events) every nonzero
value is M * 2**(base + d), base the run's smallest shift; M is split in limbs hi * 2**26 + lo,
and hi * 2**d, lo * 2**d are summed in int64 -- exact while the run's d-range and length keep
every sum below 2**63 (checked per run: `ok`). Prefix sums over all events may wrap around
int64, but the difference of two of them is the exact suffix sum (arithmetic mod 2**64, the
true value in range). A run that is not `ok` goes through the kernel per tile, as before.
`finalize` is the kernel's rounding: float(int) and int / int are correctly rounded (ties to
even) in Python, and scaling by a power of two is exact in the normal range; anything else
(a subnormal or an overflowing result) is left to the kernel's own `_to_float`.
tests/unit/test_tiles_bulk.py compares every byte with the per-key path.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from featureline.aggregation._numbers import _put_uint, _to_float

_LIMB = 26
_LO_MASK = np.int64((1 << _LIMB) - 1)
_NO_SHIFT = np.int64(1 << 40)  # greater than any shift: not a nonzero finite value
_SUM_BITS = 34  # d-range + bit length of a run's size: hi * 2**d sums stay below 2**63
_MIN_NORMAL = 2.2250738585072014e-308
_LEN = [bytes((i,)) for i in range(0x80)]  # a one-byte varint


def supports(k: Any, values: Any) -> bool:
    """Whether `float_suffixes` computes `k`'s suffixes over `values` (else: per key)."""
    return (
        getattr(k, "column_type", None) == "Float64"
        and getattr(k, "function", None) in ("sum", "mean")
        and isinstance(values, np.ndarray)
        and values.dtype == np.float64
    )


def _run_of_events(n: int, run_lo: np.ndarray, run_hi: np.ndarray) -> np.ndarray:
    """The run of each event (-1: in no run); runs are disjoint ranges [run_lo, run_hi)."""
    out = np.full(n, -1, dtype=np.int64)
    lens = run_hi - run_lo
    total = int(lens.sum())
    if total:
        first = np.repeat(run_lo - (np.cumsum(lens) - lens), lens)
        out[np.arange(total) + first] = np.repeat(np.arange(len(run_lo)), lens)
    return out


def _prefix(a: np.ndarray) -> np.ndarray:
    """0, then the running sums of `a` (int64, wrapping: only differences are used)."""
    out = np.zeros(len(a) + 1, dtype=np.int64)
    np.cumsum(a, dtype=np.int64, out=out[1:])
    return out


def float_suffixes(
    k: Any,
    x: np.ndarray,
    run_lo: np.ndarray,
    run_hi: np.ndarray,
    starts: np.ndarray,
    run_of: np.ndarray,
) -> tuple[list[bool], list[bytes], list[Any]]:
    """For a Float64 sum/mean kernel `k` over the events `x` (float64, no nulls): runs of
    events [run_lo[r], run_hi[r]) (disjoint, ascending, non-empty) and suffixes, each from
    event starts[s] to the end of its run run_of[s]. Returns per run whether it was computed
    (`ok`), and per suffix `k.encode(p)` and `k.finalize(p)` of its partial `p` (b"" and None
    for a suffix of a run that is not ok)."""
    n_ev = len(x)
    n_runs = len(run_lo)
    if n_runs == 0:
        return [], [b""] * len(starts), [None] * len(starts)
    ev_run = _run_of_events(n_ev, run_lo, run_hi)
    in_run = ev_run >= 0
    finite = np.isfinite(x)
    m, e = np.frexp(np.where(finite, x, 0.0))
    big = m * 9007199254740992.0  # m * 2**53: exact integers
    shift = e.astype(np.int64) + 1021
    if n_ev and shift.min() < 0:  # subnormals: shift M's trailing zeros out
        big = np.where(shift < 0, np.ldexp(big, np.minimum(shift, 0)), big)
        shift = np.maximum(shift, 0)
    nonzero = (big != 0) & in_run
    lo_sh = np.minimum.reduceat(np.where(nonzero, shift, _NO_SHIFT), run_lo)
    hi_sh = np.maximum.reduceat(np.where(nonzero, shift, -_NO_SHIFT), run_lo)
    any_nz = lo_sh != _NO_SHIFT
    sizes = run_hi - run_lo
    size_bits = np.frexp(sizes.astype(np.float64))[1].astype(np.int64)
    ok = ~any_nz | (hi_sh - lo_sh + size_bits <= _SUM_BITS)
    base = np.where(any_nz, lo_sh, 0)
    use = nonzero & ok[np.maximum(ev_run, 0)]
    d = np.where(use, shift - base[np.maximum(ev_run, 0)], 0)
    mi = np.where(use, big, 0.0).astype(np.int64)
    scale = np.left_shift(np.int64(1), d)  # 2**d, d <= _SUM_BITS
    c_hi = _prefix((mi >> _LIMB) * scale)
    c_lo = _prefix((mi & _LO_MASK) * scale)
    neg_zero = np.zeros(n_ev, dtype=np.int64)
    neg_zero[x.view(np.uint64) == np.uint64(1 << 63)] = 1
    counts = [_prefix(neg_zero)]
    specials = not bool(finite.all())
    if specials:
        counts += [_prefix(np.isnan(x)), _prefix(x == math.inf), _prefix(x == -math.inf)]
    end = run_hi[run_of]
    a_l = (c_hi[end] - c_hi[starts]).tolist()
    b_l = (c_lo[end] - c_lo[starts]).tolist()
    n_l = (end - starts).tolist()
    cnt = [(c[end] - c[starts]).tolist() for c in counts]
    zeros = [0] * len(starts)
    nz_l = cnt[0]
    nan_l, pinf_l, ninf_l = cnt[1:] if specials else (zeros, zeros, zeros)
    base_l = base[run_of].tolist()
    ok_s = ok[run_of].tolist()
    header = bytes(k._header())
    mean = k.function == "mean"
    blobs: list[bytes] = []
    finals: list[Any] = []
    lead: dict[Any, bytes] = {}  # the header and the counts, encoded once per refresh
    tail: dict[int, bytes] = {}  # the exponent (trailing zeros) varint and s2 (0 for sum/mean)
    for a, b, n, nz, nan, pinf, ninf, sh, good in zip(
        a_l, b_l, n_l, nz_l, nan_l, pinf_l, ninf_l, base_l, ok_s, strict=True
    ):
        if not good:
            blobs.append(b"")
            finals.append(None)
            continue
        v = (a << _LIMB) + b  # the suffix's exact sum / 2**(base - 1074)
        key = (n, nz, nan, pinf, ninf) if nz or nan or pinf or ninf else n
        pre = lead.get(key)
        if pre is None:
            out = bytearray(header)
            five = (n, nz, nan, pinf, ninf)
            if max(five) < 0x80:
                out += bytes(five)
            else:
                for c in five:
                    _put_uint(out, c)
            pre = lead[key] = bytes(out)
        if v:
            tz = (v & -v).bit_length() - 1
            odd = v >> tz
            raw = odd.to_bytes((odd.bit_length() + 8) // 8, "little", signed=True)
            exp = tail.get(tz + sh)
            if exp is None:
                out = bytearray()
                _put_uint(out, tz + sh)
                exp = tail[tz + sh] = bytes(out) + b"\x00"
            blobs.append(pre + _LEN[len(raw)] + raw + exp)  # |v| < 2**90: len(raw) < 0x80
        else:
            blobs.append(pre + b"\x00\x00")  # s1 = 0, s2 = 0
        if nan or (pinf and ninf):
            finals.append(math.nan)
        elif pinf:
            finals.append(math.inf)
        elif ninf:
            finals.append(-math.inf)
        elif v == 0:
            finals.append(-0.0 if nz == n else 0.0)
        else:
            finals.append(_final(v, sh, n if mean else 1))
    return ok.tolist(), blobs, finals


def _final(v: int, sh: int, n: int) -> float:
    """v * 2**(sh - 1074) / n rounded to the nearest float (v != 0), as `_to_float` rounds."""
    try:
        r = math.ldexp(v / n if n != 1 else float(v), sh - 1074)
    except OverflowError:
        r = math.inf
    if _MIN_NORMAL < abs(r) < math.inf:  # normal, and not rounded up onto the boundary
        return r
    return _to_float(v << sh, n, -1074)  # subnormal, or beyond the range: the exact rounding


__all__ = ["float_suffixes", "supports"]
