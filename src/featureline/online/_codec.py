"""Binary layout of online rows, shared by every online store.

key   = per join key: 8 bytes big-endian (Int64) or UTF-8 bytes + 0x00 (String), then 0x01
value = ORDER (32 bytes) + null bitmap + fixed-width features + msgpack of variable-width ones
ORDER = event_us, created_us, ingested_us, seq as big-endian uint64 with the sign bit flipped,
        so comparing ORDER bytes compares (event, created, ingested, seq) as DESIGN §3 orders them.
Encoding is vectorised with numpy (materialization writes millions of rows); decoding one row
is a precompiled struct.unpack (the read hot path).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureline._sql import NULL_CREATED  # a null created time sorts lowest (the winner order)
from featureline.definitions import FeatureView
from featureline.types import DType

ORDER_BYTES = 32

_FLIP = np.uint64(1 << 63)
_FIXED = {
    "Int64": ("q", "<i8"),
    "Float64": ("d", "<f8"),
    "Bool": ("?", "?"),
    "Timestamp": ("q", "<i8"),
}


def _order_part(values: np.ndarray) -> np.ndarray:
    return (values.astype(np.int64).view(np.uint64) ^ _FLIP).astype(">u8")


def encode_keys(table: pa.Table, keys: list[str], key_types: dict[str, str]) -> list[bytes]:
    """One bytes key per row; Int64 keys are vectorised, String keys are joined per row."""
    n = table.num_rows
    if all(key_types.get(k, "Int64") == "Int64" for k in keys):
        dt = np.dtype([*((f"k{i}", ">i8") for i in range(len(keys))), ("end", "u1")])
        arr = np.empty(n, dt)
        for i, k in enumerate(keys):
            arr[f"k{i}"] = table.column(k).to_numpy()
        arr["end"] = 1
        return arr.view(f"S{dt.itemsize}").tolist()
    cols = [table.column(k).to_pylist() for k in keys]
    return [encode_key(vals, keys, key_types) for vals in zip(*cols, strict=True)]


def encode_key(
    values: tuple[Any, ...] | list[Any], keys: list[str], key_types: dict[str, str]
) -> bytes:
    parts = []
    for v, k in zip(values, keys, strict=True):
        kind = key_types.get(k) or ("Int64" if isinstance(v, int) else "String")
        if kind == "Int64":
            parts.append(struct.pack(">q", v))
        else:
            parts.append(str(v).encode() + b"\x00")
    parts.append(b"\x01")
    return b"".join(parts)


def key_encoder(keys: list[str], key_types: dict[str, str]) -> Any:
    """A fast function (key values...) -> bytes, equal to `encode_key` (the read hot path)."""
    if len(keys) == 1 and key_types.get(keys[0]) == "Int64":
        pack = struct.Struct(">qB").pack

        def one_int(v: int) -> bytes:
            return pack(v, 1)

        return one_int
    return lambda *vals: encode_key(vals, keys, key_types)


@dataclass(frozen=True)
class ViewCodec:
    """Encoder/decoder of one view version's feature values."""

    names: tuple[str, ...]
    dtypes: tuple[DType, ...]

    @classmethod
    def for_view(cls, view: FeatureView) -> ViewCodec:
        return cls(tuple(f.name for f in view.features), tuple(f.dtype for f in view.features))

    @property
    def fixed(self) -> list[int]:
        return [i for i, d in enumerate(self.dtypes) if d.name in _FIXED and not d.is_array]

    @property
    def var(self) -> list[int]:
        return [i for i, d in enumerate(self.dtypes) if not (d.name in _FIXED and not d.is_array)]

    @property
    def bitmap_bytes(self) -> int:
        return (len(self.names) + 7) // 8

    def encode(self, table: pa.Table) -> list[bytes]:
        """Rows of `table` (order columns __event_us, __created_us, __ingested_us, __seq + features)."""
        import msgpack

        n = table.num_rows
        fields: list[tuple[str, str]] = [
            ("ev", ">u8"),
            ("cr", ">u8"),
            ("ing", ">u8"),
            ("seq", ">u8"),
        ]
        fields += [(f"b{j}", "u1") for j in range(self.bitmap_bytes)]
        fields += [(f"f{i}", _FIXED[self.dtypes[i].name][1]) for i in self.fixed]
        fields.append(("end", "u1"))
        arr = np.zeros(n, np.dtype(fields))
        arr["ev"] = _order_part(table.column("__event_us").to_numpy())
        arr["cr"] = _order_part(pc.fill_null(table.column("__created_us"), NULL_CREATED).to_numpy())
        arr["ing"] = _order_part(table.column("__ingested_us").to_numpy())
        arr["seq"] = _order_part(table.column("__seq").to_numpy())
        arr["end"] = 1
        bitmap = np.zeros((n, self.bitmap_bytes), np.uint8)
        for i, name in enumerate(self.names):
            col = table.column(name)
            if col.null_count:
                nulls = col.is_null().to_numpy(zero_copy_only=False)
                bitmap[:, i // 8] |= nulls.astype(np.uint8) << (i % 8)
        for j in range(self.bitmap_bytes):
            arr[f"b{j}"] = bitmap[:, j]
        for i in self.fixed:
            col = table.column(self.names[i])
            if self.dtypes[i].name == "Timestamp":
                col = col.cast(pa.int64())
            arr[f"f{i}"] = pc.fill_null(
                col, False if self.dtypes[i].name == "Bool" else 0
            ).to_numpy()
        rows: list[bytes] = arr.view(f"S{arr.dtype.itemsize}").tolist()
        if not self.var:
            return rows
        var_cols = [table.column(self.names[i]).to_pylist() for i in self.var]
        pack = msgpack.Packer(use_bin_type=True).pack
        return [r + pack(list(v)) for r, v in zip(rows, zip(*var_cols, strict=True), strict=True)]

    def decoder(self) -> Any:
        """A function bytes -> (event_us, [values]) for this layout (precompiled)."""
        import msgpack

        fixed, var, nb = self.fixed, self.var, self.bitmap_bytes
        # the order is big-endian, fixed-width values little-endian: one struct each
        head = struct.Struct(">Q24x" + "B" * nb)
        body = struct.Struct("<" + "".join(_FIXED[self.dtypes[i].name][0] for i in fixed))
        n = len(self.names)
        ts_fields = {i for i, d in enumerate(self.dtypes) if d.name == "Timestamp"}

        flip, wrap, hs, bs = 1 << 63, 1 << 64, head.size, body.size
        simple = not var and not ts_fields and fixed == list(range(n))

        def decode(raw: bytes) -> tuple[int, list[Any]]:
            h = head.unpack_from(raw, 0)
            ev = h[0] ^ flip
            if ev >= flip:
                ev -= wrap
            if simple:
                out = list(body.unpack_from(raw, hs))
            else:
                out = [None] * n
                vals = body.unpack_from(raw, hs)
                for pos, i in enumerate(fixed):
                    out[i] = vals[pos]
                if var:
                    rest = msgpack.unpackb(raw[hs + bs + 1 :], raw=False)
                    for pos, i in enumerate(var):
                        out[i] = rest[pos]
                if ts_fields:
                    from featureline.offline.store import us_to_dt

                    for i in ts_fields:
                        if out[i] is not None:
                            out[i] = us_to_dt(out[i])
            if any(h[1:]):  # some nulls: the bitmap says which
                bits = h[1:]
                for i in range(n):
                    if bits[i // 8] >> (i % 8) & 1:
                        out[i] = None
            return ev, out

        return decode


_NAMES: dict[int, tuple[FeatureView, str]] = {}


def table_name(view: FeatureView) -> str:
    """Online table of a view version; the suffix changes when its feature layout changes, so a
    non-breaking schema change starts a fresh table instead of misreading old rows."""
    hit = _NAMES.get(id(view))
    if hit is not None and hit[0] is view:  # the hot path reads the same view objects
        return hit[1]
    import hashlib

    layout = ";".join(f"{f.name}:{f.dtype}" for f in view.features)
    name = f"{view.name}__v{view.version}__{hashlib.sha1(layout.encode()).hexdigest()[:8]}"
    if len(_NAMES) > 256:  # few views are live at once; more objects are gone ones
        _NAMES.clear()
    _NAMES[id(view)] = (view, name)
    return name
