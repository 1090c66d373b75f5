"""Materializers: one per value type, each writing a file or folder and reading it back.

Private: import these names from `featureline.pipelines.artifacts`. Heavy libraries (pyarrow,
pandas, polars, numpy) are imported only when a value of their type is written or read; a
type check never imports a library that is not loaded already.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import pickle
import re
import shutil
import sys
import typing
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any, Protocol, runtime_checkable

from featureline.errors import (
    ValidationError,
)

ID_CHARS = 32
_ID_RE = re.compile(r"[0-9a-f]{32}")
_CHUNK = 1 << 20


@runtime_checkable
class Materializer(Protocol):
    """Turns values of one type into a file or folder at `path`, and back."""

    kind: str

    def can_handle(self, obj: object) -> bool: ...

    def write(self, obj: Any, path: Path) -> None: ...

    def read(self, path: Path) -> object: ...


class _Fallback(Exception):
    """Raised by `write`: this value is better stored by the next materializer that fits."""


def _metric(name: object, value: object) -> tuple[str, float]:
    if not isinstance(name, str) or not name:
        raise ValidationError(
            f"Metric names must be non-empty strings, got `{name!r}`. Fix: e.g. `Metrics(rmse=0.3)`."
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(
            f"Metric `{name}` must be a number, got `{value!r}` ({type(value).__name__}). "
            f"Fix: log `float(...)` of it, or store it as a separate output."
        )
    return name, float(value)


class Metrics(dict[str, float]):
    """Step metrics: metric name -> float. Return one from a step to have them tracked (a
    plain dict of numbers returned as an output named `metrics` is tracked too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.update(*args, **kwargs)

    def __setitem__(self, key: str, value: float) -> None:
        name, number = _metric(key, value)
        super().__setitem__(name, number)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value


METRICS_OUTPUT = "metrics"


def tracked_metrics(name: str, obj: object) -> dict[str, float] | None:
    """The metrics a step output stands for: a `Metrics`, or a dict of numbers (str keys, not
    bools) returned as the output named `metrics`; None for anything else."""
    if isinstance(obj, Metrics):
        return dict(obj)
    if name != METRICS_OUTPUT or not isinstance(obj, Mapping) or not obj:
        return None
    if all(
        isinstance(k, str) and k and isinstance(v, numbers.Real) and not isinstance(v, bool)
        for k, v in obj.items()
    ):
        return {k: float(v) for k, v in obj.items()}
    return None


def canonical_json(value: Any, *, allow_nan: bool = False) -> bytes:
    """Sorted keys, no spaces, UTF-8: equal values give equal bytes."""
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan
    )
    return text.encode()


def _json_able(obj: object, depth: int = 0) -> bool:
    """True when `obj` survives a JSON round trip unchanged (exact builtin types only)."""
    kind = type(obj)
    if obj is None or kind in (str, int, bool):
        return True
    if kind is float:
        return math.isfinite(obj)  # type: ignore[arg-type]
    if depth > 100:
        return False
    if kind is list:
        return all(_json_able(v, depth + 1) for v in obj)  # type: ignore[attr-defined]
    if kind is dict:
        items = obj.items()  # type: ignore[attr-defined]
        return all(type(k) is str and _json_able(v, depth + 1) for k, v in items)
    return False


def _has_module_type(obj: object, module: str, attr: str) -> bool:
    """isinstance(obj, module.attr), without importing `module` when it is not loaded yet."""
    mod = sys.modules.get(module)
    return mod is not None and isinstance(obj, getattr(mod, attr))


def _write_ipc(table: Any, path: Path) -> None:
    import pyarrow as pa

    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def _read_ipc(path: Path) -> Any:
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_stream(source).read_all()


class ArrowMaterializer:
    kind = "arrow"

    def can_handle(self, obj: object) -> bool:
        return _has_module_type(obj, "pyarrow", "Table")

    def write(self, obj: Any, path: Path) -> None:
        _write_ipc(obj, path)

    def read(self, path: Path) -> object:
        return _read_ipc(path)


class PandasMaterializer:
    """Arrow IPC with pandas metadata (index, dtypes); odd frames fall back to pickle."""

    kind = "pandas"

    def can_handle(self, obj: object) -> bool:
        return _has_module_type(obj, "pandas", "DataFrame")

    def write(self, obj: Any, path: Path) -> None:
        import pyarrow as pa

        cols = obj.columns
        if cols.nlevels != 1 or not cols.is_unique or not all(isinstance(c, str) for c in cols):
            raise _Fallback("column names are not unique strings")
        try:
            table = pa.Table.from_pandas(obj)
        except Exception as e:  # mixed-type object columns and the like: pickle keeps them
            raise _Fallback(str(e)) from e
        _write_ipc(table, path)

    def read(self, path: Path) -> object:
        return _read_ipc(path).to_pandas()


class PolarsMaterializer:
    kind = "polars"

    def can_handle(self, obj: object) -> bool:
        return _has_module_type(obj, "polars", "DataFrame")

    def write(self, obj: Any, path: Path) -> None:
        try:
            table = obj.to_arrow()
        except Exception as e:  # Object columns: pickle keeps them
            raise _Fallback(str(e)) from e
        _write_ipc(table, path)

    def read(self, path: Path) -> object:
        import polars as pl

        return pl.from_arrow(_read_ipc(path))


class NumpyMaterializer:
    kind = "numpy"

    def can_handle(self, obj: object) -> bool:
        np = sys.modules.get("numpy")
        arr: Any = obj
        return np is not None and type(arr) is np.ndarray and not arr.dtype.hasobject

    def write(self, obj: Any, path: Path) -> None:
        import numpy as np

        with open(path, "wb") as f:
            np.save(f, obj, allow_pickle=False)

    def read(self, path: Path) -> object:
        import numpy as np

        return np.load(path, allow_pickle=False)


class JsonMaterializer:
    kind = "json"

    def can_handle(self, obj: object) -> bool:
        return _json_able(obj)

    def write(self, obj: Any, path: Path) -> None:
        path.write_bytes(canonical_json(obj))

    def read(self, path: Path) -> object:
        return json.loads(path.read_bytes())


class MetricsMaterializer:
    kind = "metrics"

    def can_handle(self, obj: object) -> bool:
        return isinstance(obj, Metrics)

    def write(self, obj: Any, path: Path) -> None:
        path.write_bytes(canonical_json(dict(obj), allow_nan=True))

    def read(self, path: Path) -> object:
        return Metrics(json.loads(path.read_bytes()))


def _type_name(obj: object) -> str:
    t = type(obj)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


class PickleMaterializer:
    """Any picklable value (pickle protocol 5, written with cloudpickle: classes and functions
    of `__main__` are kept by value, other values give the bytes `pickle` gives). Loading a
    pickle runs code: trust the store."""

    kind = "pickle"

    def can_handle(self, obj: object) -> bool:
        return True

    def write(self, obj: Any, path: Path) -> None:
        import cloudpickle

        try:
            with open(path, "wb") as f:
                cloudpickle.dump(obj, f, protocol=5)
        except Exception as e:
            name = getattr(obj, "__qualname__", None)
            what = f"`{_type_name(obj)}`" + (f" (`{name}`)" if isinstance(name, str) else "")
            raise ValidationError(
                f"Cannot store an object of type {what}: it cannot be pickled "
                f"({type(e).__name__}: {e}). Fix: return plain data (a table, frame, array, "
                "dict or model), write it to a file and return its `pathlib.Path`, or create "
                "it inside the step that uses it instead of passing it between steps."
            ) from e

    def read(self, path: Path) -> object:
        with open(path, "rb") as f:
            return pickle.load(f)


class ModelMaterializer(PickleMaterializer):
    """scikit-learn-style models: anything with callable `fit` and `predict`."""

    kind = "model"

    def can_handle(self, obj: object) -> bool:
        return not isinstance(obj, type) and all(
            callable(getattr(obj, m, None)) for m in ("fit", "predict")
        )


class FileMaterializer:
    kind = "file"

    def can_handle(self, obj: object) -> bool:
        return isinstance(obj, Path) and obj.is_file()

    def write(self, obj: Any, path: Path) -> None:
        shutil.copyfile(obj, path)

    def read(self, path: Path) -> object:
        return path


class DirMaterializer:
    """A folder tree (files only: empty folders are not kept; symlinks are followed)."""

    kind = "dir"

    def can_handle(self, obj: object) -> bool:
        return isinstance(obj, Path) and obj.is_dir()

    def write(self, obj: Any, path: Path) -> None:
        shutil.copytree(obj, path, copy_function=shutil.copyfile)

    def read(self, path: Path) -> object:
        return path


DEFAULT_MATERIALIZERS: tuple[Materializer, ...] = (
    MetricsMaterializer(),
    ArrowMaterializer(),
    PandasMaterializer(),
    PolarsMaterializer(),
    NumpyMaterializer(),
    FileMaterializer(),
    DirMaterializer(),
    JsonMaterializer(),
    ModelMaterializer(),
    PickleMaterializer(),
)


def materializer_name(m: Materializer) -> str:
    """The name kept in an ArtifactRef: `featureline.<kind>` for built-ins (stable across
    refactors), else `module:QualName`, which `ArtifactStore.get` can import."""
    if type(m).__module__ == __name__:
        return f"featureline.{m.kind}"
    return f"{type(m).__module__}:{type(m).__qualname__}"


def _candidates(obj: object, materializers: tuple[Materializer, ...]) -> list[Materializer]:
    if isinstance(obj, PurePath) and not Path(obj).exists():
        raise ValidationError(
            f"Output path `{obj}` does not exist. Fix: write the file or folder before "
            "returning its path."
        )
    return [m for m in materializers if m.can_handle(obj)]


def materializer_for(
    obj: object, materializers: tuple[Materializer, ...] = DEFAULT_MATERIALIZERS
) -> Materializer:
    """The first (most specific) materializer that can handle `obj`."""
    found = _candidates(obj, materializers)
    if not found:
        raise ValidationError(
            f"No materializer can store an object of type `{_type_name(obj)}`. Fix: return a "
            "supported type or pass a materializer for it to `ArtifactStore(materializers=...)`."
        )
    return found[0]


def coerce(obj: object, hint: Any) -> object:
    """Apply a declared output type: a str path declared `Path` -> Path, a mapping -> Metrics."""
    target = typing.get_origin(hint) or hint
    if isinstance(target, type):
        if issubclass(target, PurePath) and isinstance(obj, str | os.PathLike):
            return Path(obj)
        if issubclass(target, Metrics) and isinstance(obj, Mapping):
            return obj if isinstance(obj, Metrics) else Metrics(obj)
    return obj


def _hash_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest(), path.stat().st_size


def _tree(path: Path) -> list[tuple[str, Path]]:
    return sorted((p.relative_to(path).as_posix(), p) for p in path.rglob("*") if p.is_file())


def hash_path(path: Path) -> tuple[str, int]:
    """(id, size) of a file (sha256 of its bytes) or a folder (of sorted paths + file hashes)."""
    if path.is_file():
        digest, size = _hash_file(path)
        return digest[:ID_CHARS], size
    h, total = hashlib.sha256(b"featureline-dir-v1\n"), 0
    for rel, p in _tree(path):
        digest, size = _hash_file(p)
        total += size
        h.update(f"{rel}\0{digest}\0{size}\n".encode())
    return h.hexdigest()[:ID_CHARS], total
