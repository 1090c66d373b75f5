"""The binary framing shared by every aggregation kernel: a partial's bytes start with the format
version and the function's and column type's codes; `decode` checks them and turns bytes of
another kernel or version, or a corrupt partial, into a `ValidationError`. Each kernel encodes
the partial itself after that header (see `featureline.aggregation.kernel`)."""

from __future__ import annotations

import struct
from typing import Any

from featureline.aggregation._functions import COLUMN_TYPES, FORMAT_VERSION, FUNCTIONS, output_type
from featureline.aggregation._numbers import _Reader
from featureline.errors import ValidationError


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


def _put_flag(out: bytearray, flag: bool) -> None:
    """A flag byte of a partial: 1 for True, 0 for False."""
    out.append(1 if flag else 0)


def _get_flag(r: _Reader) -> bool:
    """A flag byte of a partial: 0 (False) or 1 (True); another value is corrupt."""
    flag = r.take(1)[0]
    if flag > 1:
        raise ValueError("bad flag")
    return flag == 1
