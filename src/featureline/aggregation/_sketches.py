"""The sketch kernels: approx_count_distinct (a DataSketches HLL union) and approx_percentile (a
DataSketches KLL sketch of doubles); the contract is in `featureline.aggregation.kernel`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from featureline.aggregation._codec import _Base, _get_flag, _put_flag
from featureline.aggregation._functions import rank_error
from featureline.aggregation._numbers import _prepare, _Reader


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
        _put_flag(out, p.empty_string)
        out += p.union.get_result(self._ds.tgt_hll_type.HLL_4).serialize_compact()
        return bytes(out)

    def _decode(self, r: _Reader) -> HllPartial:
        empty_string = _get_flag(r)
        u = self._ds.hll_union(self.lg_k)
        u.update(self._ds.hll_sketch.deserialize(r.rest()))
        return HllPartial(u, empty_string)


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
