"""The min, max and last kernels: the partial keeps one value, chosen by comparison (the
contract is in `featureline.aggregation.kernel`)."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureline.aggregation._codec import _Base, _get_flag, _put_flag
from featureline.aggregation._numbers import _get_value, _prepare, _put_value, _py, _Reader


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
        _put_flag(out, p is not None)
        if p is not None:
            _put_value(out, self.column_type, p)
        return bytes(out)

    def _decode(self, r: _Reader) -> Any:
        if not _get_flag(r):
            return None
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
        _put_flag(out, p is not None)
        if p is not None:
            out += struct.pack("<4q", *p[0])
            _put_value(out, self.column_type, p[1])
        return bytes(out)

    def _decode(self, r: _Reader) -> Any:
        if not _get_flag(r):
            return None
        order = struct.unpack("<4q", r.take(32))
        return (tuple(order), _get_value(r, self.column_type))
