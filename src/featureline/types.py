"""Feature value types: Int64, Float64, String, Bool, Timestamp, Bytes, and Array(T)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from featureline.errors import ValidationError, did_you_mean

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class DType:
    """A Featureline value type. Use the module constants and `Array(...)`."""

    name: str
    element: DType | None = None

    def __str__(self) -> str:
        return f"Array({self.element})" if self.element is not None else self.name

    def __repr__(self) -> str:
        return str(self)

    @property
    def is_array(self) -> bool:
        return self.element is not None

    def to_arrow(self) -> pa.DataType:
        import pyarrow as pa

        if self.element is not None:
            return pa.large_list(self.element.to_arrow())
        return {
            "Int64": pa.int64(),
            "Float64": pa.float64(),
            "String": pa.large_string(),
            "Bool": pa.bool_(),
            "Timestamp": pa.timestamp("us", tz="UTC"),
            "Bytes": pa.large_binary(),
        }[self.name]


Int64 = DType("Int64")
Float64 = DType("Float64")
String = DType("String")
Bool = DType("Bool")
Timestamp = DType("Timestamp")
Bytes = DType("Bytes")
SCALARS = {t.name: t for t in (Int64, Float64, String, Bool, Timestamp, Bytes)}


def Array(element: DType) -> DType:
    if not isinstance(element, DType) or element.is_array:
        raise ValidationError(
            f"Array element must be a scalar type, got `{element}`. "
            f"Fix: use one of {', '.join(SCALARS)}, e.g. Array(Float64)."
        )
    return DType("Array", element)


def parse_dtype(text: str) -> DType:
    """Parse 'Int64' or 'Array(Float64)' (as written in the registry)."""
    s = text.strip()
    if s.startswith("Array(") and s.endswith(")"):
        return Array(parse_dtype(s[6:-1]))
    if s in SCALARS:
        return SCALARS[s]
    raise ValidationError(
        f"Unknown dtype `{text}`.{did_you_mean(s, SCALARS)} Valid: {', '.join(SCALARS)}, Array(T)."
    )


def from_arrow(t: pa.DataType) -> DType | None:
    """The Featureline type an Arrow type maps to, or None when there is none."""
    import pyarrow as pa
    import pyarrow.types as pt

    if pt.is_integer(t):
        return Int64
    if pt.is_floating(t) or pt.is_decimal(t):
        return Float64
    if pt.is_string(t) or pt.is_large_string(t) or pt.is_string_view(t):
        return String
    if pt.is_boolean(t):
        return Bool
    if pt.is_timestamp(t):
        return Timestamp
    if pt.is_binary(t) or pt.is_large_binary(t) or pt.is_fixed_size_binary(t):
        return Bytes
    if pt.is_dictionary(t):
        return from_arrow(t.value_type)
    if isinstance(t, pa.ListType | pa.LargeListType | pa.FixedSizeListType):
        inner = from_arrow(t.value_type)
        if inner is None or inner.is_array:
            return None
        return Array(inner)
    return None


def compatible(expected: DType, found: DType) -> bool:
    """Whether data of type `found` may be stored in a field of type `expected` (lossless cast)."""
    if expected == found:
        return True
    if expected == Float64 and found == Int64:
        return True
    if expected.element is not None and found.element is not None:
        return compatible(expected.element, found.element)
    return False


__all__ = [
    "Array",
    "Bool",
    "Bytes",
    "DType",
    "Float64",
    "Int64",
    "String",
    "Timestamp",
    "parse_dtype",
]
