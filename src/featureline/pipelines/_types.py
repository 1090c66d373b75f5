"""Static type checks for connected steps: lenient, so only clear-cut mismatches are reported.

`compatible(src, dst)` says whether a value typed `src` may feed a parameter annotated `dst`
(unknown types, `Any`, type variables and exotic annotations always may; `int` feeds `float`;
`str` feeds `Path`; generics compare their arguments). `value_matches` does the same for a
literal value, and `element_type` gives what a fan-out over a list-typed value yields.
"""

from __future__ import annotations

import inspect
import numbers
import os
import types
import typing
from collections import abc
from pathlib import PurePath
from typing import Any, Literal, Union, get_args, get_origin


def is_unknown(tp: Any) -> bool:
    return (
        tp is Any
        or tp is inspect.Parameter.empty
        or tp is object
        or isinstance(tp, (typing.TypeVar, str))
    )


def _is_union(origin: Any) -> bool:
    return origin is Union or origin is types.UnionType


def type_name(tp: Any) -> str:
    if is_unknown(tp):
        return "Any"
    if tp is type(None):
        return "None"
    if isinstance(tp, type) and not get_args(tp):
        mod = tp.__module__
        if mod == "builtins":
            return tp.__qualname__
        top = mod.split(".")[0]
        if top == "featureline":
            return tp.__qualname__
        return (
            f"{top}.{tp.__qualname__}"
            if top in ("pyarrow", "pandas", "polars", "numpy")
            else f"{mod}.{tp.__qualname__}"
        )
    return repr(tp).replace("typing.", "")


def compatible(src: Any, dst: Any) -> bool:
    """Can a value statically typed `src` be passed to a parameter annotated `dst`? (lenient)"""
    if is_unknown(src) or is_unknown(dst):
        return True
    so, do = get_origin(src) or src, get_origin(dst) or dst
    if _is_union(do):
        return any(compatible(src, a) for a in get_args(dst))
    if _is_union(so):
        return any(compatible(a, dst) for a in get_args(src))
    if so is Literal:
        return all(value_matches(v, dst) for v in get_args(src))
    if do is Literal or not isinstance(so, type) or not isinstance(do, type):
        return True
    if issubclass(do, PurePath) and so is str:
        return True
    try:
        ok = issubclass(so, do)
    except TypeError:
        return True
    if not ok:
        return _numeric_ok(so, do)
    sa, da = get_args(src), get_args(dst)
    if not sa or not da:
        return True
    if issubclass(do, tuple) and issubclass(so, tuple):
        if Ellipsis in sa or Ellipsis in da:
            return compatible(sa[0], da[0])
        return len(sa) == len(da) and all(compatible(a, b) for a, b in zip(sa, da, strict=True))
    return all(compatible(a, b) for a, b in zip(sa, da, strict=False))


def _numeric_ok(so: type, do: type) -> bool:
    if do is float:
        return issubclass(so, numbers.Real)
    if do is int:
        return issubclass(so, numbers.Integral)
    if do is complex:
        return issubclass(so, numbers.Complex)
    return False


def value_matches(value: Any, tp: Any) -> bool:
    """Does a runtime value fit an annotation? Unknown or exotic annotations accept anything."""
    if is_unknown(tp):
        return True
    origin = get_origin(tp) or tp
    if _is_union(origin):
        return any(value_matches(value, a) for a in get_args(tp))
    if origin is Literal:
        return value in get_args(tp)
    if not isinstance(origin, type):
        return True
    if issubclass(origin, PurePath):
        return isinstance(value, (str, os.PathLike))
    if origin in (int, float, complex) and not isinstance(value, origin):
        return isinstance(value, numbers.Number) and _numeric_ok(type(value), origin)
    try:
        if not isinstance(value, origin):
            return False
    except TypeError:
        return True
    args = get_args(tp)
    if args and isinstance(value, (list, set, frozenset)):
        return all(value_matches(v, args[0]) for v in list(value)[:100])
    if args and isinstance(value, dict) and len(args) == 2:
        return all(
            value_matches(k, args[0]) and value_matches(v, args[1])
            for k, v in list(value.items())[:100]
        )
    return True


def element_type(tp: Any) -> Any | None:
    """The element type of a list-like type (`Any` when unknown), or None if not list-like."""
    if is_unknown(tp):
        return Any
    origin = get_origin(tp) or tp
    if _is_union(origin):
        elems = [element_type(a) for a in get_args(tp) if a is not type(None)]
        return elems[0] if len(elems) == 1 else (Any if any(e is not None for e in elems) else None)
    if not isinstance(origin, type) or issubclass(origin, (str, bytes, abc.Mapping)):
        return None
    if not issubclass(origin, (list, tuple, abc.Sequence)):
        return None
    args = get_args(tp)
    if not args:
        return Any
    if issubclass(origin, tuple) and not (len(args) == 2 and args[1] is Ellipsis):
        return args[0] if len(set(args)) == 1 else Any
    return args[0]


__all__ = ["compatible", "element_type", "is_unknown", "type_name", "value_matches"]
