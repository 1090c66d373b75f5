"""Step cache keys: a step is reused when its code, parameters, inputs and environment match.

`code_hash(fn)` hashes the function's source (decorators and comments ignored, so changing
`@step(retries=3)` or a comment does not invalidate the cache); it does not follow helper
functions the step calls: put a version in the step's params to invalidate on their change.

A step whose output depends on more than its inputs (the data a feature store holds now)
declares `@step(cache_key=fn)`; the runner passes what `fn` returns as `extra`, so the step is
reused only while that matches too (see `featureline.pipelines.dsl`).
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import inspect
import json
import math
import textwrap
import types
import uuid
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

from featureline.errors import ValidationError

_KEY_VERSION = 1


def _canonical(value: Any, where: str) -> Any:
    """A JSON value that identifies `value` exactly: types that JSON would merge are tagged."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, enum.Enum):
        kind = type(value)
        return {"__enum__": f"{kind.__module__}.{kind.__qualname__}.{value.name}"}
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, list):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"__tuple__": [_canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, set | frozenset):
        items = [_canonical(v, f"{where}{{}}") for v in value]
        return {"__set__": sorted(items, key=lambda v: json.dumps(v, sort_keys=True))}
    if isinstance(value, Mapping):
        if all(isinstance(k, str) for k in value):
            return {"__dict__": {k: _canonical(v, f"{where}.{k}") for k, v in value.items()}}
        pairs = [[_canonical(k, where), _canonical(v, f"{where}[{k!r}]")] for k, v in value.items()]
        return {"__pairs__": sorted(pairs, key=lambda p: json.dumps(p, sort_keys=True))}
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return {f"__{type(value).__name__}__": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"__timedelta__": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, PurePath):
        return {"__path__": value.as_posix()}
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return {f"__{type(value).__name__.lower()}__": str(value)}
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": hashlib.sha256(value).hexdigest()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {f"__{cls.__module__}.{cls.__qualname__}__": _canonical(fields, where)}
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__ == "numpy" and getattr(value, "ndim", 1) == 0:
        return _canonical(item(), where)
    raise ValidationError(
        f"Cannot build a cache key: `{where}` is `{value!r:.80}` of type "
        f"`{type(value).__qualname__}`, which has no stable identity. Fix: pass JSON-like "
        "values (str, int, float, bool, None, lists, dicts, tuples, dates, paths, enums, "
        "dataclasses of these), or pass `str(...)` of it."
    )


def cache_key(
    step_code_hash: str,
    params: dict[str, Any],
    input_ids: dict[str, str],
    env: dict[str, str] | None = None,
    extra: Any = None,
) -> str:
    """sha256 hex of a canonical JSON of the step's code hash, params, input ids and env, and
    of `extra` (JSON-like: what a step's `cache_key` function returned) when it is not None."""
    if not isinstance(step_code_hash, str) or not step_code_hash:
        raise ValidationError(
            f"`step_code_hash` must be a non-empty string, got `{step_code_hash!r}`. "
            "Fix: pass `code_hash(fn)`."
        )
    for name, arg in (("params", params), ("input_ids", input_ids), ("env", env or {})):
        if not isinstance(arg, Mapping):
            raise ValidationError(
                f"`{name}` must be a dict, got `{type(arg).__name__}`. Fix: pass e.g. `{{}}`."
            )
    bad = {k: v for k, v in {**input_ids, **(env or {})}.items() if not isinstance(v, str)}
    if bad:
        raise ValidationError(
            f"Input artifact ids and env values must be strings, got `{bad!r:.120}`. "
            "Fix: pass `ref.id` for inputs and `str(...)` for env values."
        )
    doc = {
        "v": _KEY_VERSION,
        "code": step_code_hash,
        "params": _canonical(dict(params), "params"),
        "inputs": dict(input_ids),
        "env": dict(env or {}),
    }
    if extra is not None:  # absent otherwise: keys of steps without a `cache_key` stay as they were
        doc["extra"] = _canonical(extra, "cache_key()")
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _normalized_source(fn: Callable[..., Any]) -> str:
    """Dedented source without decorators or comments (via the AST) when it parses."""
    source = textwrap.dedent(inspect.getsource(fn))
    try:
        tree = ast.parse(source)
    except SyntaxError:  # e.g. a lambda in the middle of an expression: keep the text
        return source
    if len(tree.body) == 1 and isinstance(
        tree.body[0], ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    ):
        tree.body[0].decorator_list = []
    return ast.unparse(tree)


def _code_fingerprint(code: types.CodeType) -> str:
    """Bytecode, constants (nested code included) and names: stable across line moves."""
    parts = [code.co_code.hex(), repr(code.co_names), repr(code.co_varnames)]
    for const in code.co_consts:
        parts.append(_code_fingerprint(const) if isinstance(const, types.CodeType) else repr(const))
    return "\n".join(parts)


def code_hash(fn: Callable[..., Any]) -> str:
    """sha256 hex of the function's module, qualified name and source (bytecode as fallback)."""
    target = inspect.unwrap(fn)
    module = getattr(target, "__module__", "") or ""
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    try:
        body = "source\n" + _normalized_source(target)
    except (OSError, TypeError):  # built in a REPL / exec, or a callable object
        code = getattr(target, "__code__", None)
        if code is None and callable(target):
            code = getattr(type(target).__call__, "__code__", None)
        if not isinstance(code, types.CodeType):
            raise ValidationError(
                f"Cannot hash the code of `{fn!r:.80}` ({type(fn).__qualname__}): it has no "
                "source and no bytecode. Fix: make the step a plain Python function."
            ) from None
        body = "bytecode\n" + _code_fingerprint(code)
    text = f"{module}\n{name}\n{body}"
    return hashlib.sha256(text.encode()).hexdigest()


__all__ = ["cache_key", "code_hash"]
